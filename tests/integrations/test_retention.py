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
    assert counts == {
        "archived": 1,
        "deleted_runs": 1,
        "deleted_errors": 1,
        "deleted_webhook_events": 0,
        "reaped_runs": 0,
    }
    assert set(SyncRun.objects.values_list("pk", "archived")) == {
        (recent.pk, False),
        (year_old.pk, True),
    }
    assert not SyncError.objects.filter(pk=closed.pk).exists()
    still_open.refresh_from_db()
    assert still_open.sync_run is None  # kept, detached from its deleted run
    assert sync_logs_retain() == {
        "archived": 0,
        "deleted_runs": 0,
        "deleted_errors": 0,
        "deleted_webhook_events": 0,
    }


def test_ages_are_configurable(tenants, settings):
    settings.INTEGRATIONS_ARCHIVE_AFTER_DAYS = 5
    settings.INTEGRATIONS_DELETE_AFTER_DAYS = 30
    conn = connection_make(tenants.a)
    _run(conn, 1)
    _run(conn, 10)
    _run(conn, 40)
    assert sync_logs_retain() == {
        "archived": 1,
        "deleted_runs": 1,
        "deleted_errors": 0,
        "deleted_webhook_events": 0,
    }


def test_runs_that_never_started_age_from_their_creation(tenants):
    """A run queued but never started (started_at empty) is archived and deleted by its
    creation time instead of being kept for ever."""
    conn = connection_make(tenants.a)
    never = SyncRun.objects.create(
        company=conn.company, connection=conn, sync_type="import", entity="contacts"
    )
    old = SyncRun.objects.create(
        company=conn.company, connection=conn, sync_type="import", entity="contacts"
    )
    SyncRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=800))
    fresh_pending = SyncRun.objects.filter(pk=never.pk)
    counts = sync_logs_retain()
    assert (counts["deleted_runs"], counts["archived"]) == (1, 0)
    assert fresh_pending.exists() and not SyncRun.objects.filter(pk=old.pk).exists()


def test_finished_webhook_events_are_deleted_with_the_logs_waiting_ones_kept(tenants):
    from accounting.integrations.models import WebhookEvent

    conn = connection_make(tenants.a)

    def event(n, status, days_ago):
        row = WebhookEvent.objects.create(
            company=conn.company,
            connection=conn,
            system="zoho_books",
            event_id=f"e{n}",
            entity="contact",
            external_id=f"C{n}",
            status=status,
        )
        WebhookEvent.objects.filter(pk=row.pk).update(
            received_at=timezone.now() - timedelta(days=days_ago)
        )
        return row

    old_done, old_failed = event(1, "processed", 800), event(2, "failed", 800)
    old_waiting, recent = event(3, "received", 800), event(4, "processed", 10)
    assert sync_logs_retain()["deleted_webhook_events"] == 2
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {old_waiting.pk, recent.pk}
    assert not WebhookEvent.objects.filter(pk__in=[old_done.pk, old_failed.pk]).exists()
