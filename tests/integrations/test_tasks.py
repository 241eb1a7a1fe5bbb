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
    contacts = entries["integrations: import contacts"]
    assert (contacts.crontab.minute, contacts.crontab.hour) == ("0", "0")
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
    both = connection_make(tenants.a, name="Both", entities=["contacts", "invoices", "payments"])
    export_only = connection_make(
        tenants.a, name="Out", direction="export", entities=["contacts", "invoices"]
    )
    connection_make(tenants.a, name="Off", enabled=False, entities=["contacts"])
    assert tasks.integrations_import_contacts() == 1
    assert queued == [(both.pk, "contacts", "import", None, None)]
    queued.clear()
    tasks.integrations_sync_invoices()
    assert sorted(queued) == sorted(
        [
            (both.pk, "invoices", "export", None, None),
            (both.pk, "payments", "export", None, None),
            (export_only.pk, "invoices", "export", None, None),
        ]
    )


def test_frequency_schedules_sync_only_when_due(tenants, queued):
    hourly = connection_make(tenants.a, name="H", frequency="hourly", entities=["contacts"])
    daily = connection_make(tenants.a, name="D", frequency="daily", entities=["contacts"])
    connection_make(tenants.a, name="M", frequency="manual", entities=["contacts"])
    now = timezone.now()
    type(hourly).objects.filter(pk=hourly.pk).update(last_sync_at=now - timedelta(hours=2))
    type(daily).objects.filter(pk=daily.pk).update(last_sync_at=now - timedelta(hours=2))
    assert tasks.integrations_sync_scheduled() == 1
    assert queued == [(hourly.pk, "contacts", "import", None, None)]


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
