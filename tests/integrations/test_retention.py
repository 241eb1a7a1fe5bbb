"""Sync logs: archived after INTEGRATIONS_ARCHIVE_AFTER_DAYS, deleted after
INTEGRATIONS_DELETE_AFTER_DAYS; open errors are never lost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounting.integrations.models import SyncError, SyncRun
from accounting.integrations.services import sync_logs_retain
from accounting.integrations.tasks import integrations_retention
from tests.integrations.conftest import connection_make

pytestmark = pytest.mark.django_db


def _run(conn, days_ago):
    run = SyncRun.objects.create(
        company=conn.company,
        connection=conn,
        sync_type="import",
        entity="contacts",
        status="succeeded",
        started_at=timezone.now() - timedelta(days=days_ago),
    )
    return run


def _error(conn, run, days_ago, resolution):
    error = SyncError.objects.create(
        company=conn.company,
        connection=conn,
        sync_run=run,
        entity="contacts",
        category="network",
        message="x",
        resolution=resolution,
    )
    SyncError.objects.filter(pk=error.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    return error


def test_default_ages_archive_after_a_year_and_delete_after_two(tenants):
    conn = connection_make(tenants.a)
    recent, year_old, ancient = _run(conn, 10), _run(conn, 400), _run(conn, 800)
    closed = _error(conn, ancient, 800, "resolved")
    still_open = _error(conn, ancient, 800, "open")
    counts = integrations_retention()
    assert counts == {"archived": 1, "deleted_runs": 1, "deleted_errors": 1}
    assert set(SyncRun.objects.values_list("pk", "archived")) == {
        (recent.pk, False),
        (year_old.pk, True),
    }
    assert not SyncError.objects.filter(pk=closed.pk).exists()
    still_open.refresh_from_db()
    assert still_open.sync_run is None  # kept, detached from its deleted run
    assert sync_logs_retain() == {"archived": 0, "deleted_runs": 0, "deleted_errors": 0}


def test_ages_are_configurable(tenants, settings):
    settings.INTEGRATIONS_ARCHIVE_AFTER_DAYS = 5
    settings.INTEGRATIONS_DELETE_AFTER_DAYS = 30
    conn = connection_make(tenants.a)
    _run(conn, 1)
    _run(conn, 10)
    _run(conn, 40)
    assert sync_logs_retain() == {"archived": 1, "deleted_runs": 1, "deleted_errors": 0}
