"""Celery tasks of the integration hub (queue "integrations", see CELERY_TASK_ROUTES).

Tasks take ids, re-read their rows, and are safe to run twice: a sync already running for the
same connection and entity is skipped (the engine's lock), and the engine skips records that
are already in sync.

Schedules (declared on migrate with update_or_create, editable in the admin afterwards):
- retry of due sync errors every 5 minutes (each error's `next_retry_at` backs off
  exponentially; an error past its max_retries is no longer retryable); the same sweep marks
  failed the runs stuck in `running` past the task time limit;
- contact import at midnight in each company's own time zone: the task runs hourly and takes
  the connections whose company's local time is between 00:00 and 00:59;
- invoice sync (invoices, credit notes and payments, in the connection's direction) every 6
  hours: the connector contract has no invoice import, so "invoice import" is this exchange;
- connections with an hourly / 6-hourly / daily frequency synced when due (checked hourly),
  per entity: an entity is due when its last import/export run (scheduled or started by a
  person) is older than the frequency; webhook and retry runs do not count, so a busy webhook
  never holds back the scheduled sync of the rest;
- retention of sync logs (runs, errors, webhook events) daily.

Decision: a connection whose frequency is `manual` is synced only when a person asks (or a
due error is retried): the fixed contact and invoice jobs skip it too. The fixed jobs are the
guide's defaults for connections that sync on their own; a connection set to manual has said
it does not.

The alert of a connection switched off after repeated failures is sent by
`integrations_connection_alert`, retried with backoff when the mail server fails.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounting.integrations.models import Frequency, IntegrationConnection
from core.rls import tenant_context

# Webhook processing tasks live beside the webhooks (hub-xero-webhooks); importing them here
# registers them with every worker (Celery autodiscovery reads tasks.py only).
try:
    from accounting.integrations.webhook_tasks import (  # noqa: F401
        declare_webhook_schedules,
        webhook_process,
    )
except ImportError:  # pragma: no cover - the webhook module is optional for the engine
    declare_webhook_schedules = None

logger = logging.getLogger(__name__)

QUEUE = "integrations"
PREFIX = "accounting.integrations.tasks."
SYNC_TASK = PREFIX + "integrations_sync"
RETRY_DUE_TASK = PREFIX + "integrations_retry_due"
CONTACTS_TASK = PREFIX + "integrations_import_contacts"
ALERT_TASK = PREFIX + "integrations_connection_alert"
INVOICES_TASK = PREFIX + "integrations_sync_invoices"
SCHEDULED_TASK = PREFIX + "integrations_sync_scheduled"
RETENTION_TASK = PREFIX + "integrations_retention"

SCHEDULES = {
    "integrations: retry due sync errors": (RETRY_DUE_TASK, {"every": timedelta(minutes=5)}),
    "integrations: import contacts at local midnight": (CONTACTS_TASK, {"cron": "0 * * * *"}),
    "integrations: sync invoices": (INVOICES_TASK, {"every": timedelta(hours=6)}),
    "integrations: scheduled syncs": (SCHEDULED_TASK, {"every": timedelta(hours=1)}),
    "integrations: sync log retention": (RETENTION_TASK, {"cron": "30 3 * * *"}),
}
FREQUENCY_EVERY = {
    Frequency.HOURLY: timedelta(hours=1),
    Frequency.EVERY_6_HOURS: timedelta(hours=6),
    Frequency.DAILY: timedelta(days=1),
}
INVOICE_ENTITIES = ("invoices", "credit_notes", "payments")


def declare_schedules() -> None:
    from django_celery_beat.models import PeriodicTask

    from core.schedules import periodic_task_declare

    descriptions = {
        RETRY_DUE_TASK: "Re-runs the syncs of sync errors whose next retry is due.",
        CONTACTS_TASK: "Imports contacts of the enabled, scheduled connections whose "
        "company's local time is midnight (runs hourly).",
        INVOICES_TASK: "Exports approved invoices, credit notes and payments not yet synced.",
        SCHEDULED_TASK: "Syncs connections whose hourly/6-hourly/daily frequency is due.",
        RETENTION_TASK: "Archives sync runs after a year and deletes them after two.",
    }
    # The contact import ran once a day at midnight UTC under this name before.
    PeriodicTask.objects.filter(name="integrations: import contacts", task=CONTACTS_TASK).delete()
    for name, (task, when) in SCHEDULES.items():
        periodic_task_declare(
            name=name, task=task, queue=QUEUE, description=descriptions[task], **when
        )
    if declare_webhook_schedules is not None:
        declare_webhook_schedules()


def _direction_for(entity: str) -> str:
    from accounting.integrations.sync import IMPORT_ENTITIES

    return "import" if entity in IMPORT_ENTITIES else "export"


def _pairs(connection: IntegrationConnection, entities) -> list[tuple[str, str]]:
    pairs = []
    for entity in entities:
        direction = _direction_for(entity)
        if entity in connection.entities and connection.direction in (direction, "bidirectional"):
            pairs.append((entity, direction))
    return pairs


@shared_task(name=SYNC_TASK, ignore_result=True)
def integrations_sync(
    connection_id: int,
    entity: str,
    direction: str,
    triggered_by_id: int | None = None,
    sync_type: str | None = None,
) -> dict:
    from accounting.integrations.sync import sync_run
    from core.errors import DomainError

    connection = (
        IntegrationConnection.objects.select_related("company").filter(pk=connection_id).first()
    )
    if connection is None:
        return {"status": "missing"}
    user = get_user_model().objects.filter(pk=triggered_by_id).first() if triggered_by_id else None
    try:
        with tenant_context(connection.company_id):
            run = sync_run(
                connection=connection,
                entity=entity,
                direction=direction,
                triggered_by=user,
                sync_type=sync_type,
            )
    except DomainError as exc:  # already running, or not allowed any more
        logger.info(
            "Sync %s/%s of connection %s skipped: %s", entity, direction, connection_id, exc
        )
        return {"status": "skipped", "reason": exc.code}
    return {"status": run.status, "run_id": run.pk}


def _queue_for(connections, entities, *, sync_type=None) -> int:
    queued = 0
    for connection in connections:
        for entity, direction in _pairs(connection, entities):
            integrations_sync.delay(connection.pk, entity, direction, None, sync_type)
            queued += 1
    return queued


def _enabled():
    return IntegrationConnection.objects.filter(enabled=True, needs_reauth=False)


def _scheduled():
    """Enabled connections that sync on their own (frequency other than manual)."""
    return _enabled().exclude(frequency=Frequency.MANUAL).select_related("company")


@shared_task(name=RETRY_DUE_TASK, ignore_result=True)
def integrations_retry_due() -> int:
    """Every 5 minutes: one sync per (connection, entity) that has due errors."""
    from accounting.integrations.services import queue_size_measure, sync_errors_due

    due = set(
        sync_errors_due()
        .filter(connection__enabled=True, connection__needs_reauth=False)
        .exclude(entity="")
        .values_list("connection_id", "entity")
    )
    for connection_id, entity in sorted(due):
        integrations_sync.delay(connection_id, entity, _direction_for(entity), None, "retry")
    queue_size_measure()
    _reap()
    return len(due)


def _reap() -> int:
    from accounting.integrations.services import sync_runs_reap

    return sync_runs_reap()


@shared_task(name=CONTACTS_TASK, ignore_result=True)
def integrations_import_contacts(now=None) -> int:
    """Hourly: the contacts of the connections whose company's local time is midnight."""
    now = now or timezone.now()
    at_midnight = [
        connection
        for connection in _scheduled()
        if timezone.localtime(now, connection.company.tz).hour == 0
    ]
    return _queue_for(at_midnight, ("contacts",))


@shared_task(name=INVOICES_TASK, ignore_result=True)
def integrations_sync_invoices() -> int:
    return _queue_for(_scheduled(), INVOICE_ENTITIES)


def last_scheduled_runs(connections) -> dict[tuple[int, str], object]:
    """(connection id, entity) -> when its last import/export run started (one query).
    Webhook, retry and test runs are not counted: they sync one record or the errors only."""
    from django.db.models import Max

    from accounting.integrations.models import SyncRun, SyncType

    rows = (
        SyncRun.objects.filter(
            connection__in=[c.pk for c in connections],
            sync_type__in=[SyncType.IMPORT, SyncType.EXPORT],
            started_at__isnull=False,
        )
        .values("connection_id", "entity")
        .annotate(last=Max("started_at"))
    )
    return {(row["connection_id"], row["entity"]): row["last"] for row in rows}


@shared_task(name=SCHEDULED_TASK, ignore_result=True)
def integrations_sync_scheduled(now=None) -> int:
    """Hourly: each entity of each scheduled connection whose last import/export run is older
    than the connection's frequency."""
    now = now or timezone.now()
    connections = list(_scheduled())
    last = last_scheduled_runs(connections)
    queued = 0
    for connection in connections:
        every = FREQUENCY_EVERY.get(connection.frequency)
        if every is None:
            continue
        # A little slack so an hourly beat does not drift past an hourly connection.
        due = [
            entity
            for entity in connection.entities
            if (at := last.get((connection.pk, entity))) is None
            or at <= now - every + timedelta(minutes=5)
        ]
        queued += _queue_for([connection], due)
    return queued


@shared_task(name=RETENTION_TASK, ignore_result=True)
def integrations_retention() -> dict:
    from accounting.integrations.services import sync_logs_retain

    counts = sync_logs_retain()
    counts["reaped_runs"] = _reap()
    return counts


@shared_task(
    name=ALERT_TASK,
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=60,
    retry_backoff_max=3600,
    max_retries=8,
)
def integrations_connection_alert(connection_id: int) -> int:
    """Email that a connection was switched off; a failed send is retried with backoff."""
    from accounting.integrations.services import connection_disabled_alert_send

    company_id = (
        IntegrationConnection.objects.filter(pk=connection_id)
        .values_list("company_id", flat=True)
        .first()
    )
    if company_id is None:
        return 0
    with tenant_context(company_id):
        return connection_disabled_alert_send(connection_id=connection_id)
