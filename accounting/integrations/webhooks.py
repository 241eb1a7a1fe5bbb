"""Incoming webhooks: signature checks, parsing into events, dedupe, queueing.

A webhook is answered within a second: `webhook_receive` only verifies the signature, stores one
`WebhookEvent` per change (a unique (connection, event_id) drops repeats) and queues
`webhook_process` for the new ones after commit. The task re-fetches the entity through the
connector; the payload is never trusted as data, only as a hint of what changed.

Signatures (the signing secret lives in the connection's encrypted credentials under
`webhook_key`):
- QuickBooks Online: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)); both
  the `eventNotifications` payload and the newer CloudEvents array are read.
- Xero: `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)); the "intent to receive"
  handshake is a correctly signed delivery with no events (answered 200) and a wrongly signed one
  (answered 401), both with an empty body.
- Zoho Books publishes no webhook signature: the webhook is configured in Zoho with a custom
  header `X-Kontor-Webhook-Secret: <secret>`, compared to the stored secret.
All comparisons are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction

log = logging.getLogger(__name__)

QUICKBOOKS_SIGNATURE_HEADER = "intuit-signature"
XERO_SIGNATURE_HEADER = "x-xero-signature"
ZOHO_SECRET_HEADER = "X-Kontor-Webhook-Secret"  # noqa: S105 - a header name, not a secret
CREDENTIAL_KEY = "webhook_key"

WEBHOOK_SYSTEMS = frozenset({"quickbooks", "xero", "zoho_books"})

# External entity names -> the hub's entity names (ExternalRef.entity).
_QUICKBOOKS_ENTITIES = {
    "Customer": "contact",
    "Vendor": "contact",
    "Account": "account",
    "Invoice": "invoice",
    "CreditMemo": "credit_note",
    "Payment": "payment",
    "JournalEntry": "journal",
}
_XERO_CATEGORIES = {
    "CONTACT": "contact",
    "INVOICE": "invoice",
    "CREDITNOTE": "credit_note",
}
_ZOHO_ENTITIES = {
    "contact": "contact",
    "invoice": "invoice",
    "creditnote": "credit_note",
    "customerpayment": "payment",
}


class WebhookRejected(Exception):
    """The delivery is not authentic (or not for this connection): answer 401, store nothing."""


class WebhookMalformed(Exception):
    """Authentic but unreadable: answer 400 so the sender's retries show up in its logs."""


@dataclass(frozen=True)
class ParsedEvent:
    event_id: str  # stable across redeliveries of the same change
    entity: str  # contact, invoice, credit_note, payment, journal, account, or the raw name
    external_id: str
    operation: str  # create, update, delete, ... (lower case)
    occurred_at: str  # the sender's own timestamp text
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookReceipt:
    stored: list[int]  # ids of new WebhookEvent rows (each queued once)
    duplicates: int
    handshake: bool  # Xero intent-to-receive (no events)


# ------------------------------------------------------------------------------ signatures
def hmac_sha256_base64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signature_matches(*, secret: str, body: bytes, signature: str) -> bool:
    """base64(HMAC-SHA256(secret, body)) == signature, compared in constant time."""
    if not secret or not signature:
        return False
    expected = hmac_sha256_base64(secret, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def shared_secret_matches(*, secret: str, presented: str) -> bool:
    if not secret or not presented:
        return False
    return hmac.compare_digest(secret.encode(), presented.encode())


def webhook_verify(*, system: str, secret: str, headers, body: bytes) -> None:
    """Raise WebhookRejected unless the delivery carries the right signature or secret.
    `headers` is case-insensitive (Django's `request.headers`)."""
    if system == "quickbooks":
        ok = signature_matches(
            secret=secret, body=body, signature=headers.get(QUICKBOOKS_SIGNATURE_HEADER, "")
        )
    elif system == "xero":
        ok = signature_matches(
            secret=secret, body=body, signature=headers.get(XERO_SIGNATURE_HEADER, "")
        )
    elif system == "zoho_books":
        ok = shared_secret_matches(secret=secret, presented=headers.get(ZOHO_SECRET_HEADER, ""))
    else:
        ok = False
    if not ok:
        raise WebhookRejected("signature does not match")


# ------------------------------------------------------------------------------ parsing
def _stable_id(*parts: str) -> str:
    """The dedupe key of one change: sha256 of its identifying parts (fixed length, so long
    QuickBooks or Xero ids never overflow the column)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _load_json(body: bytes):
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise WebhookMalformed("body is not JSON") from exc


def parse_quickbooks(body: bytes, *, realm_id: str) -> list[ParsedEvent]:
    """`{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id",
    "operation", "lastUpdated"}]}}]}`; notifications for another realm are ignored. A change is
    identified by realmId + entity + id + operation + lastUpdated (QuickBooks sends no event id
    and redelivers the same notification until it gets a 200)."""
    data = _load_json(body)
    if isinstance(data, list):
        return _parse_quickbooks_cloudevents(data, realm_id=realm_id)
    if not isinstance(data, dict) or not isinstance(data.get("eventNotifications"), list):
        raise WebhookMalformed("no eventNotifications")
    events = []
    for notification in data["eventNotifications"]:
        realm = str(notification.get("realmId", ""))
        if realm_id and realm != realm_id:
            log.warning("quickbooks webhook for another realm ignored")
            continue
        for entity in (notification.get("dataChangeEvent") or {}).get("entities") or []:
            name, external_id = str(entity.get("name", "")), str(entity.get("id", ""))
            operation, updated = (
                str(entity.get("operation", "")),
                str(entity.get("lastUpdated", "")),
            )
            if not name or not external_id:
                continue
            events.append(
                ParsedEvent(
                    event_id=_stable_id("quickbooks", realm, name, external_id, operation, updated),
                    entity=_QUICKBOOKS_ENTITIES.get(name, name.lower()),
                    external_id=external_id,
                    operation=operation.lower(),
                    occurred_at=updated,
                    payload={"realmId": realm, **entity},
                )
            )
    return events


# CloudEvents type "qbo.<entity>.<operation>.v1": entity names in lower case.
_QUICKBOOKS_CLOUDEVENT_ENTITIES = {name.lower(): hub for name, hub in _QUICKBOOKS_ENTITIES.items()}
# ... and past-tense operations, named as in the older payload.
_CLOUDEVENT_OPERATIONS = {
    "created": "create",
    "updated": "update",
    "deleted": "delete",
    "merged": "merge",
    "voided": "void",
}


def _parse_quickbooks_cloudevents(data: list, *, realm_id: str) -> list[ParsedEvent]:
    """Intuit's newer payload (announced November 2025): a JSON array of CloudEvents, each
    with its own `id`, `type` "qbo.customer.updated.v1", `intuitentityid` and
    `intuitaccountid` (the realm). The event id is the dedupe key."""
    events = []
    for item in data:
        if not isinstance(item, dict):
            raise WebhookMalformed("a CloudEvent is not an object")
        realm = str(item.get("intuitaccountid", ""))
        if realm_id and realm != realm_id:
            log.warning("quickbooks webhook for another realm ignored")
            continue
        parts = str(item.get("type", "")).split(".")
        external_id, event_id = str(item.get("intuitentityid", "")), str(item.get("id", ""))
        if len(parts) < 3 or not external_id or not event_id:
            continue
        events.append(
            ParsedEvent(
                event_id=_stable_id("quickbooks", realm, "cloudevent", event_id),
                entity=_QUICKBOOKS_CLOUDEVENT_ENTITIES.get(parts[1].lower(), parts[1].lower()),
                external_id=external_id,
                operation=_CLOUDEVENT_OPERATIONS.get(parts[2].lower(), parts[2].lower()),
                occurred_at=str(item.get("time", "")),
                payload={k: item.get(k) for k in ("id", "type", "time", "intuitentityid")},
            )
        )
    return events


def parse_xero(body: bytes, *, tenant_id: str) -> list[ParsedEvent]:
    """`{"events": [{"resourceUrl", "resourceId", "eventDateUtc", "eventType", "eventCategory",
    "tenantId", "tenantType"}], "firstEventSequence", "lastEventSequence", "entropy"}`. Xero
    sends no per-event id: tenant + category + resource + type + eventDateUtc identify a change.
    Events for another tenant are ignored."""
    data = _load_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise WebhookMalformed("no events list")
    events = []
    for event in data["events"]:
        tenant = str(event.get("tenantId", ""))
        if tenant_id and tenant != tenant_id:
            log.warning("xero webhook for another tenant ignored")
            continue
        category, resource = str(event.get("eventCategory", "")), str(event.get("resourceId", ""))
        operation, when = str(event.get("eventType", "")), str(event.get("eventDateUtc", ""))
        if not category or not resource:
            continue
        events.append(
            ParsedEvent(
                event_id=_stable_id("xero", tenant, category, resource, operation, when),
                entity=_XERO_CATEGORIES.get(category, category.lower()),
                external_id=resource,
                operation=operation.lower(),
                occurred_at=when,
                payload=event,
            )
        )
    return events


def parse_zoho(body: bytes, *, organization_id: str) -> list[ParsedEvent]:
    """Zoho Books posts the changed record under its entity key (`{"contact": {...}}`,
    `{"invoice": {...}}`, `creditnote`, `customerpayment`); the record's `<entity>_id` and
    `last_modified_time` identify the change. Only the id is used: the task re-fetches."""
    data = _load_json(body)
    if not isinstance(data, dict):
        raise WebhookMalformed("body is not an object")
    events = []
    for key, entity in _ZOHO_ENTITIES.items():
        record = data.get(key)
        if not isinstance(record, dict):
            continue
        external_id = str(record.get(f"{key}_id", ""))
        if not external_id:
            continue
        modified = str(record.get("last_modified_time", ""))
        events.append(
            ParsedEvent(
                event_id=_stable_id("zoho_books", organization_id, key, external_id, modified),
                entity=entity,
                external_id=external_id,
                operation=str(data.get("event_type") or "update").lower(),
                occurred_at=modified,
                payload={f"{key}_id": external_id, "last_modified_time": modified},
            )
        )
    if not events:
        raise WebhookMalformed("no known entity in the body")
    return events


def webhook_parse(*, system: str, settings: dict, body: bytes) -> list[ParsedEvent]:
    if system == "quickbooks":
        return parse_quickbooks(body, realm_id=str(settings.get("realm_id", "")))
    if system == "xero":
        return parse_xero(body, tenant_id=str(settings.get("tenant_id", "")))
    if system == "zoho_books":
        return parse_zoho(body, organization_id=str(settings.get("organization_id", "")))
    raise WebhookRejected(f"no webhooks for {system}")


# ------------------------------------------------------------------------------ the service
def webhook_receive(
    *, system: str, connection_id: int, headers, body: bytes, authentic=None
) -> WebhookReceipt:
    """Verify, store new events, queue their processing after commit. Makes no outgoing call
    (the sender waits for our answer: QuickBooks 3 s, Xero 5 s). `authentic(connection)` is
    called once the signature is verified, before anything is stored (the view's throttle of
    authentic deliveries: a forger cannot use up a connection's allowance)."""
    from accounting.integrations.models import IntegrationConnection, WebhookEvent
    from accounting.integrations.webhook_tasks import webhook_process

    connection = (
        IntegrationConnection.objects.filter(pk=connection_id, system=system)
        .only("id", "company_id", "system", "settings", "credentials_encrypted", "enabled")
        .first()
    )
    # An unknown connection and a wrong signature look the same from outside: 401 for both.
    if connection is None or system not in WEBHOOK_SYSTEMS:
        raise WebhookRejected("unknown connection")
    secret = str((connection.credentials or {}).get(CREDENTIAL_KEY) or "")
    webhook_verify(system=system, secret=secret, headers=headers, body=body)
    if authentic is not None:
        authentic(connection)
    events = webhook_parse(system=system, settings=connection.settings or {}, body=body)
    if not events:
        return WebhookReceipt(stored=[], duplicates=0, handshake=system == "xero")

    unique = {event.event_id: event for event in events}  # one delivery may repeat a change
    with transaction.atomic():
        seen = set(
            WebhookEvent.objects.filter(
                connection=connection, event_id__in=list(unique)
            ).values_list("event_id", flat=True)
        )
        fresh = [event for event_id, event in unique.items() if event_id not in seen]
        # ignore_conflicts: a concurrent redelivery that won the race is not an error; the
        # unique (connection, event_id) keeps one row.
        WebhookEvent.objects.bulk_create(
            [
                WebhookEvent(
                    company_id=connection.company_id,
                    connection=connection,
                    system=system,
                    event_id=event.event_id,
                    entity=event.entity,
                    external_id=event.external_id,
                    operation=event.operation,
                    occurred_at=event.occurred_at,
                    payload=event.payload,
                )
                for event in fresh
            ],
            ignore_conflicts=True,
        )
        stored = list(
            WebhookEvent.objects.filter(
                connection=connection,
                event_id__in=[event.event_id for event in fresh],
                status=WebhookEvent.Status.RECEIVED,
            ).values_list("id", flat=True)
        )
        for event_id in stored:
            transaction.on_commit(lambda pk=event_id: webhook_process.delay(pk))
    return WebhookReceipt(stored=stored, duplicates=len(events) - len(stored), handshake=False)


# ------------------------------------------------------------------------------ processing
# An event claimed this long ago and not finished was left by a dead worker.
STALE_CLAIM = timedelta(minutes=30)
# An event still `received` this long after it came in lost its queue message (broker down
# at commit time): the sweep queues it again.
STALE_RECEIVED = timedelta(minutes=10)
REQUEUE_BATCH = 500


def webhook_events_requeue(*, now=None) -> int:
    """Queue again the events whose processing was lost: still `received` after
    STALE_RECEIVED, or claimed longer than STALE_CLAIM ago. Returns how many were queued."""
    from django.db.models import Q
    from django.utils import timezone

    from accounting.integrations.models import WebhookEvent
    from accounting.integrations.webhook_tasks import webhook_process

    now = now or timezone.now()
    status = WebhookEvent.Status
    ids = list(
        WebhookEvent.objects.filter(
            Q(status=status.RECEIVED, received_at__lt=now - STALE_RECEIVED)
            | Q(status=status.PROCESSING, claimed_at__lt=now - STALE_CLAIM)
        )
        .order_by("received_at")
        .values_list("id", flat=True)[:REQUEUE_BATCH]
    )
    for event_id in ids:
        webhook_process.delay(event_id)
    if ids:
        log.warning("requeued %d stalled webhook events", len(ids))
    return len(ids)


@dataclass(frozen=True)
class ProcessOutcome:
    status: str  # processed, ignored, failed, skipped (already taken by another run)
    retry_after: float | None = None  # set when the task should try again later


def _backoff_seconds(attempts: int) -> float:
    return float(min(30 * 2 ** max(attempts - 1, 0), 3600))


def _finish(event, status: str, note: str = "") -> ProcessOutcome:
    from django.utils import timezone

    from accounting.integrations.models import WebhookEvent

    WebhookEvent.objects.filter(pk=event.pk).update(
        status=status, error=note[:2000], processed_at=timezone.now()
    )
    return ProcessOutcome(status)


def webhook_event_process(*, event_id: int) -> ProcessOutcome:
    """Claim one stored event (received/failed -> processing; a second run finds it taken and
    does nothing), re-fetch what it names through the connector and bring local rows up to date
    through the sync engine. Retryable failures (network, 5xx, rate limit) leave the event
    `failed` with a retry time for the task; others leave it `failed` for good."""
    from django.db.models import F, Q
    from django.utils import timezone

    from accounting.integrations.connectors.base import SyncFailure
    from accounting.integrations.models import WebhookEvent

    status = WebhookEvent.Status
    now = timezone.now()
    # A claim older than STALE_CLAIM belongs to a worker that died mid-way (tasks are acked
    # late, so its message comes back): that event may be taken again.
    claimed = (
        WebhookEvent.objects.filter(pk=event_id)
        .filter(
            Q(status__in=[status.RECEIVED, status.FAILED])
            | Q(status=status.PROCESSING, claimed_at__lt=now - STALE_CLAIM)
        )
        .update(status=status.PROCESSING, attempts=F("attempts") + 1, claimed_at=now)
    )
    if not claimed:
        return ProcessOutcome("skipped")
    event = WebhookEvent.objects.select_related("connection", "connection__company").get(
        pk=event_id
    )
    connection = event.connection
    if not connection.enabled or connection.needs_reauth:
        return _finish(event, status.IGNORED, "The connection is disabled or needs reconnecting.")
    try:
        outcome, note = _apply(event, connection)
    except SyncFailure as failure:
        from accounting.integrations.sync import scrub, secret_values

        _finish(event, status.FAILED, scrub(failure.message, secret_values(connection)))
        retry = None
        if failure.retryable:
            retry = failure.retry_after or _backoff_seconds(event.attempts)
        return ProcessOutcome("failed", retry_after=retry)
    except Exception as exc:
        _finish(event, status.FAILED, f"Unexpected error: {type(exc).__name__}")
        raise
    return _finish(event, outcome, note)


def _apply(event, connection) -> tuple[str, str]:
    """Re-fetch what the event names and apply it; returns (status, note)."""
    from accounting.integrations.connectors import connector_for
    from accounting.integrations.connectors.base import NotFound

    if event.entity not in ("contact", "invoice", "credit_note"):
        return "ignored", f"{event.entity} changes are not imported."
    connector = connector_for(connection)
    if event.entity == "contact":
        if event.operation in ("delete", "merge"):
            return "ignored", "Contacts deleted remotely are kept in Kontor."
        try:
            contact = connector.fetch_contact(event.external_id)
        except NotFound:
            return "ignored", "The contact no longer exists remotely."
        run = _engine_run(connection, "contacts", connector, contact=contact)
        return _run_outcome(run)
    fetch = getattr(connector, "fetch_invoice", None)
    if fetch is None or event.entity == "credit_note":
        return "ignored", f"The {connection.system} connector cannot re-fetch a {event.entity}."
    try:
        remote = fetch(event.external_id)
    except NotFound:
        return "ignored", "The invoice no longer exists remotely."
    run = _engine_run(connection, "invoices", connector, invoice=remote)
    return _run_outcome(run)


def _run_outcome(run) -> tuple[str, str]:
    if run.status in ("succeeded", "partial") and not run.records_failed:
        return "processed", f"Sync run {run.pk}."
    if run.records_processed == 0 and not run.error_summary:
        return "processed", f"Sync run {run.pk}: nothing to change."
    return "processed", f"Sync run {run.pk}: {run.error_summary}"


class _OneContact:
    """The connector as the sync engine sees it for a webhook: the contacts "page" is the one
    contact just re-fetched by id, and the incremental cursor stays where the scheduled import
    left it (the engine's `import_since` hook), so a webhook never skips other changes."""

    def __init__(self, connector, contact, cursor):
        self.supports = connector.supports
        self.system = connector.system
        self._contact = contact
        self._cursor = cursor

    def fetch_contacts(self, *, cursor=None, since=None):
        from accounting.integrations.connectors.base import Page

        return Page(items=[self._contact], next_cursor=None)

    def import_since(self, entity, versions, started_iso):
        return self._cursor


def _engine_run(connection, entity: str, connector, *, contact=None, invoice=None):
    """One SyncRun of type webhook through the sync engine's own per-record code (party
    create/update with ExternalRef, conflict detection, SyncError bookkeeping), under the same
    per-connection-and-entity lock as scheduled runs so the two never overlap."""
    import time as clock

    from django.utils import timezone

    from accounting.integrations import sync
    from accounting.integrations.connectors.base import SyncFailure
    from accounting.integrations.models import IntegrationConnection, SyncRun, SyncStatus, SyncType
    from core.locks import lock_acquire, lock_release

    lock_name = f"integrations:sync:{connection.pk}:{entity}"
    lock_token = lock_acquire(lock_name, ttl_seconds=sync.RUN_LOCK_TTL_SECONDS)
    if lock_token is None:
        raise SyncFailure(
            f"A {entity} sync of this connection is running; the webhook waits for it.",
            retryable=True,
            retry_after=60,
        )
    try:
        started = clock.monotonic()
        connection.cursors = (
            IntegrationConnection.objects.filter(pk=connection.pk)
            .values_list("cursors", flat=True)
            .get()
        )
        run = SyncRun.objects.create(
            company=connection.company,
            connection=connection,
            sync_type=SyncType.WEBHOOK,
            entity=entity,
            status=SyncStatus.RUNNING,
            started_at=timezone.now(),
        )
        ctx = sync.RunContext(
            connection=connection,
            run=run,
            connector=None,
            entity=entity,
            sync_type=SyncType.WEBHOOK,
        )
        try:
            if contact is not None:
                cursor = (connection.cursors or {}).get("contacts")
                ctx.connector = _OneContact(connector, contact, cursor)
                sync._import_contacts(ctx)
            else:
                ctx.connector = connector
                _invoice_check(ctx, invoice)
        except sync._Stop:
            pass
        except SyncFailure as failure:
            ctx.fatal = failure
            ctx.error_record(failure)
        return sync._finish(ctx, started)
    finally:
        lock_release(lock_name, lock_token)


def _invoice_check(ctx, remote) -> None:
    """Kontor is the source of the invoices it exports: a change made in the other system is
    never copied back silently. If the remote version moved past what we exported, record a
    conflict for someone to look at; an echo of our own export (same version) is nothing."""
    from accounting.integrations.connectors.base import ConflictFailure
    from accounting.integrations.models import ExternalRef

    ref = ExternalRef.objects.filter(
        connection=ctx.connection, entity="invoice", external_id=remote.external_id
    ).first()
    if ref is None:
        return  # not one of ours: Kontor does not import invoices
    if remote.version and remote.version != ref.external_version:
        ctx.record_failure(
            ConflictFailure(
                "The invoice changed in "
                f"{ctx.connection.get_system_display()} after Kontor exported it.",
                external_id=remote.external_id,
                detail={"ours": ref.external_version, "theirs": remote.version},
            ),
            external_id=remote.external_id,
            local_type=ref.local_type,
            local_id=ref.local_id,
        )
        return
    ctx.succeeded()
