"""Beat entries, the retry-due sweep, the scheduled syncs, and the task wrapper."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounting.integrations import tasks
from accounting.integrations.models import SyncError
from tests.integrations.conftest import connection_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.integrations_sync, "delay", lambda *args: calls.append(args))
    return calls


def test_beat_entries_are_declared_and_operator_edits_survive():
    tasks.declare_schedules()
    entries = {p.name: p for p in PeriodicTask.objects.filter(name__startswith="integrations: ")}
    assert set(tasks.SCHEDULES) <= set(entries)
    retry = entries["integrations: retry due sync errors"]
    assert (retry.interval.every, retry.interval.period, retry.queue) == (
        300,
        "seconds",
        "integrations",
    )
    contacts = entries["integrations: import contacts at local midnight"]
    # hourly: each company's contacts at its own midnight (see the next tests)
    assert (contacts.crontab.minute, contacts.crontab.hour) == ("0", "*")
    invoices = entries["integrations: sync invoices"]
    assert invoices.interval.every == 6 * 3600
    assert entries["integrations: sync log retention"].task == tasks.RETENTION_TASK
    # An operator switches one off; the next deploy declares again and keeps that.
    PeriodicTask.objects.filter(pk=retry.pk).update(enabled=False)
    tasks.declare_schedules()
    assert PeriodicTask.objects.get(pk=retry.pk).enabled is False
    assert PeriodicTask.objects.filter(name__startswith="integrations: ").count() == len(entries)


def test_tasks_are_routed_to_the_integrations_queue(settings):
    from config.celery_app import app

    router = app.amqp.router
    route = router.route({}, tasks.SYNC_TASK, args=(), kwargs={})
    assert route["queue"].name == "integrations"
    from pathlib import Path

    assert "integrations" in Path("Procfile").read_text()


def _error(conn, entity, *, due, retryable=True, resolution="open"):
    return SyncError.objects.create(
        company=conn.company,
        connection=conn,
        entity=entity,
        category="network",
        message="down",
        retryable=retryable,
        resolution=resolution,
        next_retry_at=timezone.now() + (timedelta(minutes=-1) if due else timedelta(hours=1)),
    )


def test_retry_due_queues_one_sync_per_connection_and_entity(tenants, queued):
    conn = connection_make(tenants.a)
    other = connection_make(tenants.b)
    _error(conn, "contacts", due=True)
    _error(conn, "contacts", due=True)  # same connection and entity: one sync
    _error(conn, "invoices", due=True)
    _error(conn, "payments", due=False)  # not yet
    _error(conn, "journals", due=True, retryable=False)
    _error(conn, "accounts", due=True, resolution="ignored")
    _error(other, "contacts", due=True)
    other.enabled = False
    other.save()
    assert tasks.integrations_retry_due() == 2
    assert sorted(queued) == [
        (conn.pk, "contacts", "import", None, "retry"),
        (conn.pk, "invoices", "export", None, "retry"),
    ]


def test_contact_and_invoice_schedules_pick_the_right_connections(tenants, queued):
    from datetime import UTC, datetime

    both = connection_make(
        tenants.a, name="Both", frequency="daily", entities=["contacts", "invoices", "payments"]
    )
    export_only = connection_make(
        tenants.a,
        name="Out",
        frequency="daily",
        direction="export",
        entities=["contacts", "invoices"],
    )
    connection_make(tenants.a, name="Off", frequency="daily", enabled=False, entities=["contacts"])
    # manual: synced only when someone asks (the fixed jobs skip it too)
    connection_make(tenants.a, name="Manual", entities=["contacts", "invoices"])
    # Company A is in Asia/Dhaka (UTC+6): 18:30 UTC is 00:30 there.
    dhaka_midnight = datetime(2026, 3, 9, 18, 30, tzinfo=UTC)
    assert tasks.integrations_import_contacts(now=dhaka_midnight) == 1
    assert queued == [(both.pk, "contacts", "import", None, None)]
    queued.clear()
    assert tasks.integrations_import_contacts(now=datetime(2026, 3, 10, 0, 30, tzinfo=UTC)) == 0
    assert queued == []  # midnight UTC is 06:30 in Dhaka
    tasks.integrations_sync_invoices()
    assert sorted(queued) == sorted(
        [
            (both.pk, "invoices", "export", None, None),
            (both.pk, "payments", "export", None, None),
            (export_only.pk, "invoices", "export", None, None),
        ]
    )


def _ran(conn, entity, sync_type, hours_ago):
    from accounting.integrations.models import SyncRun

    return SyncRun.objects.create(
        company=conn.company,
        connection=conn,
        sync_type=sync_type,
        entity=entity,
        status="succeeded",
        started_at=timezone.now() - timedelta(hours=hours_ago),
    )


def test_frequency_schedules_sync_only_when_due(tenants, queued):
    hourly = connection_make(tenants.a, name="H", frequency="hourly", entities=["contacts"])
    daily = connection_make(tenants.a, name="D", frequency="daily", entities=["contacts"])
    connection_make(tenants.a, name="M", frequency="manual", entities=["contacts"])
    _ran(hourly, "contacts", "import", 2)
    _ran(daily, "contacts", "import", 2)
    assert tasks.integrations_sync_scheduled() == 1
    assert queued == [(hourly.pk, "contacts", "import", None, None)]


def test_webhook_and_retry_runs_do_not_hold_back_the_scheduled_sync(tenants, queued):
    """Per entity, from import/export runs only: a webhook that updated one contact a minute
    ago, or a retry run, says nothing about the rest of the listing or about invoices."""
    conn = connection_make(
        tenants.a, name="H", frequency="hourly", entities=["contacts", "invoices"]
    )
    _ran(conn, "contacts", "import", 3)
    _ran(conn, "invoices", "export", 0.2)  # invoices were exported minutes ago
    _ran(conn, "contacts", "webhook", 0.01)
    _ran(conn, "contacts", "retry", 0.02)
    type(conn).objects.filter(pk=conn.pk).update(last_sync_at=timezone.now())
    assert tasks.integrations_sync_scheduled() == 1
    assert queued == [(conn.pk, "contacts", "import", None, None)]


def test_runs_stuck_in_running_past_the_task_time_limit_are_marked_failed(tenants, settings):
    from accounting.integrations.models import SyncRun

    settings.CELERY_TASK_TIME_LIMIT = 1800
    conn = connection_make(tenants.a)
    stuck = _ran(conn, "contacts", "import", 1)  # an hour: past 30 min + 5 min margin
    fresh = _ran(conn, "invoices", "export", 0.25)
    SyncRun.objects.filter(pk__in=[stuck.pk, fresh.pk]).update(status="running")
    counts = tasks.integrations_retention()
    assert counts["reaped_runs"] == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert (stuck.status, fresh.status) == ("failed", "running")
    assert stuck.completed_at is not None and "time limit" in stuck.error_summary


def test_the_sync_task_runs_the_engine_and_skips_a_running_sync(tenants, remote):
    from core.locks import lock_acquire

    conn = connection_make(tenants.a, entities=["contacts"])
    assert tasks.integrations_sync(conn.pk, "contacts", "import")["status"] == "succeeded"
    lock_acquire(f"integrations:sync:{conn.pk}:contacts", ttl_seconds=60)
    assert tasks.integrations_sync(conn.pk, "contacts", "import") == {
        "status": "skipped",
        "reason": "sync_running",
    }
    assert tasks.integrations_sync(999999, "contacts", "import") == {"status": "missing"}
