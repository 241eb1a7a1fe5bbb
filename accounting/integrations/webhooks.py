"""Incoming webhooks: signature checks, parsing into events, dedupe, queueing.

A webhook is answered within a second: `webhook_receive` only verifies the signature, stores one
`WebhookEvent` per change (a unique (connection, event_id) drops repeats) and queues
`webhook_process` for the new ones after commit. The task re-fetches the entity through the
connector; the payload is never trusted as data, only as a hint of what changed.

Signatures (the signing secret lives in the connection's encrypted credentials under
`webhook_key`):
- QuickBooks Online: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)).
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
def webhook_receive(*, system: str, connection_id: int, headers, body: bytes) -> WebhookReceipt:
    """Verify, store new events, queue their processing after commit. Makes no outgoing call
    (the sender waits for our answer: QuickBooks 3 s, Xero 5 s)."""
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
