"""The sync engine: one `sync_run` per connection, entity and direction.

    sync_run(*, connection, entity, direction, triggered_by=None, sync_type=None) -> SyncRun

Imports (`accounts`, `contacts`) page through the connector: accounts become AccountMapping rows
(mapped to a local account with the same code, or the same name, when there is one); contacts
become invoicing Party rows with invoicing's checks, one transaction and a fixed number of
queries per page (parties, audit events and ExternalRefs written in bulk; see `_contacts_apply`),
so a crash loses at most the page in flight and its retry duplicates nothing.
Exports (`invoices`, `credit_notes`, `payments`, `journals`) build the payload DTOs from local
rows (approved invoices and credit notes, their payments, posted journal entries other than
the invoices' own) and push those not yet exported or changed since (sha256 of the payload
against `ExternalRef.last_synced_hash`).

Idempotency:
- The ExternalRef of a record is written in the same transaction that records its success, so a
  retry after a crash never pushes or imports a recorded record twice.
- Before the first push of a record, a *pending* ExternalRef (external_id
  "pending:<local_type>:<local_id>") is committed. If the push's reply is lost (a timeout, a
  crash), the next attempt finds the pending ref and first asks the connector's
  `find_by_reference` (Tally REMOTEID, the invoice number…) whether the record already exists
  remotely. If it cannot confirm it, the push is repeated only when the connector declares
  the entity's creates idempotent (`Connector.idempotent_creates`: QuickBooks requestid, Xero
  Idempotency-Key, Tally/Busy REMOTEID), with the same idempotency key as the first attempt
  (made from the connection, entity, local id and a value kept on the pending ref, never from
  the body); otherwise the record becomes a non-retryable conflict "outcome unknown: check
  <system> for <number> before retrying" and nothing is sent (a person's Retry, after
  checking, clears the pending ref and sends it). A pending ref whose create certainly did not
  happen (the remote refused it, or the connection never opened) is dropped at once, so the
  next attempt is an ordinary create. The unique (connection, local_type, local_id)
  constraint also keeps two runs from pushing the same record at once. A lock per connection
  and entity keeps two runs of the same sync from overlapping at all.
- Conflicts never overwrite: a ConflictFailure from the connector (QuickBooks 5010, a newer
  remote version), or a contact changed on both sides since the last sync, becomes a `conflict`
  SyncError and the local and external rows are left as they are.

Records that leave the export selection (an invoice voided after its push failed) have their
open errors resolved ("no longer selected for export") by the next export run. A retry run of
contacts first re-fetches each record whose error is being retried (`fetch_contact`), then
imports incrementally as usual. Webhook runs leave page-level errors of scheduled imports
alone. A connector that answers the same next-page cursor twice is a MalformedReply, not the
end of the listing.

Failures: a record's SyncFailure becomes (or updates) one open SyncError with its category,
severity, retryable flag, next retry time (exponential) and suggested fix; the run goes on.
Auth, rate-limit and network failures stop the run (every further call would fail too). A page
that fails halfway ends the run `partial` (or `failed` if nothing succeeded) and keeps what the
earlier pages did. Messages and details are scrubbed of every credential value before they
are stored or logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounting.integrations import metrics
from accounting.integrations.connectors import ConnectorUnavailable, connector_for
from accounting.integrations.connectors.base import (
    AuthFailure,
    ConflictFailure,
    ExternalContact,
    InvoicePayload,
    JournalPayload,
    LinePayload,
    MalformedReply,
    NotFound,
    PaymentPayload,
    SyncFailure,
    ValidationFailure,
)
from accounting.integrations.models import (
    AccountMapping,
    ErrorCategory,
    ExternalRef,
    IntegrationConnection,
    Resolution,
    Severity,
    SyncError,
    SyncRun,
    SyncStatus,
    SyncType,
)
from core.errors import ConflictError, DomainError, ValidationFailed
from core.locks import lock_acquire, lock_release

logger = logging.getLogger(__name__)

IMPORT_ENTITIES = ("accounts", "contacts")
EXPORT_ENTITIES = ("invoices", "credit_notes", "payments", "journals")
REF_ENTITY = {
    "accounts": "account",
    "contacts": "contact",
    "invoices": "invoice",
    "credit_notes": "credit_note",
    "payments": "payment",
    "journals": "journal",
}
LOCAL_TYPE = {
    "contacts": "invoicing.party",
    "invoices": "invoicing.invoice",
    "credit_notes": "invoicing.invoice",
    "payments": "invoicing.invoicepayment",
    "journals": "accounting.journalentry",
}
# Categories that concern the whole connection: the run stops at the first one.
STOP_CATEGORIES = frozenset({ErrorCategory.AUTH, ErrorCategory.RATE_LIMIT, ErrorCategory.NETWORK})
SEVERITY = {
    "auth": Severity.CRITICAL,
    "validation": Severity.ERROR,
    "rate_limit": Severity.WARNING,
    "network": Severity.WARNING,
    "conflict": Severity.ERROR,
    "not_found": Severity.ERROR,
    "server": Severity.ERROR,
}
PENDING_PREFIX = "pending:"
RUN_LOCK_TTL_SECONDS = 60 * 60
EXPORT_CHUNK = 500
# First automatic retry after this many seconds, doubling per retry, capped at a day.
RETRY_BASE_SECONDS = 300
RETRY_CAP_SECONDS = 24 * 60 * 60


# ---------------------------------------------------------------------------------------------
# Secrets never leave: scrub every credential value from messages and details
# ---------------------------------------------------------------------------------------------


def secret_values(connection: IntegrationConnection) -> list[str]:
    try:
        credentials = connection.credentials
    except Exception:  # noqa: BLE001 - an undecryptable blob has nothing we could leak
        return []
    values = []
    for value in credentials.values():
        if isinstance(value, str) and len(value) >= 6:
            values.append(value)
    return sorted(values, key=len, reverse=True)


def scrub(value, secrets: list[str]):
    """`value` (str, dict, list) with every secret replaced by ******."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "******")
        # Bearer / Zoho-oauthtoken headers echoed back by a server
        return re.sub(
            r"(?i)((?:bearer|zoho-oauthtoken)\s+)[A-Za-z0-9._~+/=-]{8,}", r"\1******", value
        )
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Hashing of payloads
# ---------------------------------------------------------------------------------------------


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def payload_hash(payload) -> str:
    data = dataclasses.asdict(payload) if dataclasses.is_dataclass(payload) else payload
    text = json.dumps(data, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def pending_external_id(local_type: str, local_id) -> str:
    return f"{PENDING_PREFIX}{local_type}:{local_id}"


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Ends a run early (a connection-wide failure or a failed page); already recorded."""


class RunContext:
    def __init__(self, *, connection, run, connector, entity, sync_type):
        self.connection = connection
        self.company = connection.company
        self.run = run
        self.connector = connector
        self.entity = entity
        self.sync_type = sync_type
        self.secrets = secret_values(connection)
        self.page_failed = False
        self.fatal: SyncFailure | None = None
        self.refused = False  # the run did not start (disabled, needs reauth, unsupported)

    # -- counting -----------------------------------------------------------------------

    def succeeded(self) -> None:
        self.run.records_processed += 1
        self.run.records_succeeded += 1

    def failed(self) -> None:
        self.run.records_processed += 1
        self.run.records_failed += 1

    # -- errors -------------------------------------------------------------------------

    def error_record(
        self,
        failure: SyncFailure,
        *,
        external_id: str = "",
        local_type: str = "",
        local_id: str = "",
    ) -> SyncError:
        """Create, or update the open error of the same record with, a SyncError."""
        message = scrub(failure.message, self.secrets)[:2000]
        detail = scrub(failure.detail, self.secrets)
        external_id = external_id or failure.external_id
        now = timezone.now()
        key = Q(
            connection=self.connection,
            entity=self.entity,
            local_type=local_type,
            local_id=str(local_id),
            external_id=external_id,
            resolution__in=[Resolution.OPEN, Resolution.RETRYING],
        )
        error = SyncError.objects.filter(key).order_by("-id").first()
        if error is None:
            error = SyncError(
                company=self.company,
                connection=self.connection,
                entity=self.entity,
                external_id=external_id,
                local_type=local_type,
                local_id=str(local_id),
            )
        else:
            error.retry_count += 1
        error.sync_run = self.run
        error.category = failure.category
        error.severity = SEVERITY.get(failure.category, Severity.ERROR)
        error.message = message
        error.detail = detail
        error.suggested_fix = failure.suggested_fix
        error.retryable = bool(failure.retryable) and error.retry_count < error.max_retries
        error.resolution = Resolution.OPEN
        if error.retryable:
            wait = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**error.retry_count)
            if failure.retry_after:
                wait = max(wait, float(failure.retry_after))
            error.next_retry_at = now + timedelta(seconds=wait)
        else:
            error.next_retry_at = None
        error.save()
        metrics.accounting_sync_errors_total.labels(category=failure.category).inc()
        logger.warning(
            "Sync %s of connection %s (%s): %s %s failed: [%s] %s",
            self.entity,
            self.connection.pk,
            self.connection.system,
            local_type or "record",
            local_id or external_id or "(page)",
            failure.category,
            message,
        )
        return error

    def resolve_errors(self, *, local_type: str = "", local_id: str = "", external_id: str = ""):
        SyncError.objects.filter(
            connection=self.connection,
            entity=self.entity,
            local_type=local_type,
            local_id=str(local_id),
            external_id=external_id,
            resolution__in=[Resolution.OPEN, Resolution.RETRYING],
        ).update(
            resolution=Resolution.RESOLVED,
            resolved_at=timezone.now(),
            next_retry_at=None,
            updated_at=timezone.now(),
        )

    def resolve_record_errors(self, external_ids: list[str]) -> None:
        """Resolve the open errors of these imported records: one UPDATE for the lot."""
        if not external_ids:
            return
        SyncError.objects.filter(
            connection=self.connection,
            entity=self.entity,
            local_type="",
            local_id="",
            external_id__in=external_ids,
            resolution__in=[Resolution.OPEN, Resolution.RETRYING],
        ).update(
            resolution=Resolution.RESOLVED,
            resolved_at=timezone.now(),
            next_retry_at=None,
            updated_at=timezone.now(),
        )

    def close_unselected(self, local_type: str, selected: Iterable[str]) -> int:
        """Resolve the open errors of records no longer selected for export (an invoice voided
        after its push failed): they would otherwise come due for ever. Returns how many."""
        selected = {str(pk) for pk in selected}
        stale = [
            error
            for error in SyncError.objects.filter(
                connection=self.connection,
                entity=self.entity,
                local_type=local_type,
                resolution__in=[Resolution.OPEN, Resolution.RETRYING],
            ).exclude(local_id="")
            if error.local_id not in selected
        ]
        now = timezone.now()
        for error in stale:
            error.resolution = Resolution.RESOLVED
            error.resolved_at = now
            error.next_retry_at = None
            error.updated_at = now
            error.detail = {**(error.detail or {}), "note": "no longer selected for export"}
        SyncError.objects.bulk_update(
            stale, ["resolution", "resolved_at", "next_retry_at", "updated_at", "detail"]
        )
        return len(stale)

    def record_failure(self, failure: SyncFailure, **where) -> None:
        """A record failed: note it; stop the run when the whole connection is affected."""
        self.failed()
        self.error_record(failure, **where)
        if failure.category in STOP_CATEGORIES:
            self.fatal = failure
            raise _Stop

    def page_failure(self, failure: SyncFailure) -> None:
        self.page_failed = True
        self.error_record(failure)
        self.fatal = failure
        raise _Stop


def _finish(ctx: RunContext, started: float) -> SyncRun:
    run = ctx.run
    if ctx.fatal is not None or run.records_failed:
        status = SyncStatus.PARTIAL if run.records_succeeded else SyncStatus.FAILED
    else:
        status = SyncStatus.SUCCEEDED
    run.status = status
    run.completed_at = timezone.now()
    run.duration_ms = int((time.monotonic() - started) * 1000)
    summary = []
    if ctx.fatal is not None:
        summary.append(f"Stopped: [{ctx.fatal.category}] {scrub(ctx.fatal.message, ctx.secrets)}")
    if run.records_failed:
        summary.append(f"{run.records_failed} of {run.records_processed} records failed.")
    run.error_summary = " ".join(summary)[:2000]
    run.save()
    metrics.accounting_sync_total.labels(
        system=ctx.connection.system, entity=ctx.entity, status=status
    ).inc()
    metrics.accounting_sync_duration_seconds.labels(system=ctx.connection.system).observe(
        run.duration_ms / 1000
    )
    from accounting.integrations.services import connection_sync_recorded

    connection_sync_recorded(
        connection=ctx.connection, run=run, failure=ctx.fatal, refused=ctx.refused
    )
    return run


def sync_run(
    *,
    connection: IntegrationConnection,
    entity: str,
    direction: str,
    triggered_by=None,
    sync_type: str | None = None,
) -> SyncRun:
    """Run one sync of `entity` in `direction` ("import" or "export") and return its SyncRun.

    Raises ValidationFailed for an entity/direction the connection or its connector does not
    do, ConflictError when the same sync is already running. Every other failure is recorded on
    the run and its SyncErrors."""
    if direction not in ("import", "export"):
        raise ValidationFailed("Direction must be import or export.", code="direction_invalid")
    allowed = IMPORT_ENTITIES if direction == "import" else EXPORT_ENTITIES
    if entity not in allowed:
        raise ValidationFailed(
            f"{entity} cannot be synced in direction {direction}.", code="entity_invalid"
        )
    if connection.direction not in (direction, "bidirectional"):
        raise ValidationFailed(
            f"This connection is set to {connection.direction} only.", code="direction_not_allowed"
        )
    sync_type = sync_type or (SyncType.IMPORT if direction == "import" else SyncType.EXPORT)
    lock_name = f"integrations:sync:{connection.pk}:{entity}"
    lock_token = lock_acquire(lock_name, ttl_seconds=RUN_LOCK_TTL_SECONDS)
    if lock_token is None:
        raise ConflictError(
            f"A {entity} sync of this connection is already running.", code="sync_running"
        )
    try:
        return _sync_run_locked(
            connection=connection,
            entity=entity,
            direction=direction,
            triggered_by=triggered_by,
            sync_type=sync_type,
        )
    finally:
        lock_release(lock_name, lock_token)


def _sync_run_locked(*, connection, entity, direction, triggered_by, sync_type) -> SyncRun:
    started = time.monotonic()
    user = triggered_by if getattr(triggered_by, "is_authenticated", False) else None
    run = SyncRun.objects.create(
        company=connection.company,
        connection=connection,
        sync_type=sync_type,
        entity=entity,
        status=SyncStatus.RUNNING,
        started_at=timezone.now(),
        triggered_by=user,
    )
    ctx = RunContext(
        connection=connection, run=run, connector=None, entity=entity, sync_type=sync_type
    )
    try:
        if not connection.enabled:
            raise _refuse(ctx, ValidationFailure("The connection is disabled."))
        if connection.needs_reauth:
            raise _refuse(ctx, AuthFailure("The connection needs to be connected again."))
        try:
            ctx.connector = connector_for(connection)
        except ConnectorUnavailable as exc:
            raise _refuse(ctx, ValidationFailure(str(exc))) from exc
        if entity not in ctx.connector.supports:
            raise _refuse(
                ctx,
                ValidationFailure(
                    f"The {connection.get_system_display()} connector does not sync {entity}."
                ),
            )
        {
            "accounts": _import_accounts,
            "contacts": _import_contacts,
            "invoices": _export_invoices,
            "credit_notes": _export_invoices,
            "payments": _export_payments,
            "journals": _export_journals,
        }[entity](ctx)
    except _Stop:
        pass
    except SyncFailure as failure:  # raised outside a record: treat as a failed page
        ctx.fatal = failure
        ctx.error_record(failure)
    except Exception as exc:  # noqa: BLE001 - the run must end with a status, not hang running
        logger.exception("Sync %s of connection %s crashed", entity, connection.pk)
        ctx.fatal = SyncFailure(f"Internal error: {type(exc).__name__}")
        ctx.error_record(ctx.fatal)
    if sync_type == SyncType.RETRY:
        _retrying_reopen(ctx)
    return _finish(ctx, started)


def _retrying_reopen(ctx: RunContext) -> None:
    """Errors a person asked to retry that this retry run did not reach (it stopped early)
    go back to open, due again after the first back-off, instead of staying "retrying"."""
    now = timezone.now()
    base = SyncError.objects.filter(
        connection=ctx.connection, entity=ctx.entity, resolution=Resolution.RETRYING
    )
    base.filter(retryable=True).update(
        resolution=Resolution.OPEN,
        next_retry_at=now + timedelta(seconds=RETRY_BASE_SECONDS),
        updated_at=now,
    )
    base.update(resolution=Resolution.OPEN, next_retry_at=None, updated_at=now)


def _refuse(ctx: RunContext, failure: SyncFailure) -> _Stop:
    ctx.fatal = failure
    ctx.refused = True
    return _Stop()


def _pages(ctx: RunContext, fetch, *, since) -> Iterable[list]:
    cursor = None
    seen: set[str] = set()
    while True:
        try:
            page = fetch(cursor=cursor, since=since)
        except SyncFailure as failure:
            ctx.page_failure(failure)
        yield page.items
        if not page.next_cursor:
            return
        if page.next_cursor == cursor or page.next_cursor in seen:
            # The same page again would loop for ever, and stopping here would take a cut
            # listing for a complete one (and move the cursor past what was never read).
            ctx.page_failure(
                MalformedReply(
                    "The system returned a next-page cursor it had returned before "
                    f"({str(page.next_cursor)[:50]}): the listing cannot be completed.",
                    detail={"cursor": str(page.next_cursor)[:200]},
                )
            )
        seen.add(page.next_cursor)
        cursor = page.next_cursor


def _next_since(ctx: RunContext, versions: list[str], started_iso: str) -> str:
    """The incremental cursor after a complete import: the highest numeric version (Tally
    AlterID) when versions are numbers, else the run's start time (updated-since APIs)."""
    hook = getattr(ctx.connector, "import_since", None)
    if hook is not None:
        return hook(ctx.entity, versions, started_iso)
    numeric = [int(v) for v in versions if str(v).isdigit()]
    if versions and len(numeric) == len(versions):
        previous = ctx.connection.cursors.get(ctx.entity)
        base = int(previous) if str(previous or "").isdigit() else 0
        return str(max([base, *numeric]))
    return started_iso


def _cursor_save(ctx: RunContext, value: str) -> None:
    with transaction.atomic():
        row = IntegrationConnection.objects.select_for_update().get(pk=ctx.connection.pk)
        cursors = dict(row.cursors or {})
        cursors[ctx.entity] = value
        IntegrationConnection.objects.filter(pk=row.pk).update(cursors=cursors)
        ctx.connection.cursors = cursors


# ---------------------------------------------------------------------------------------------
# Imports
# ---------------------------------------------------------------------------------------------


def _import_accounts(ctx: RunContext) -> None:
    from accounting.models import Account

    started_iso = timezone.now().isoformat()
    since = (ctx.connection.cursors or {}).get("accounts")
    local = list(Account.objects.filter(company=ctx.company).only("id", "code", "name"))
    by_code = {a.code: a.id for a in local}
    by_name = {a.name.casefold(): a.id for a in local}
    versions: list[str] = []
    for items in _pages(ctx, ctx.connector.fetch_accounts, since=since):
        existing = {
            m.external_id: m
            for m in AccountMapping.objects.filter(
                connection=ctx.connection, external_id__in=[i.external_id for i in items]
            )
        }
        new, changed, succeeded = [], [], []
        for item in items:
            if not item.external_id or not item.name:
                ctx.failed()
                ctx.error_record(
                    ValidationFailure(
                        f"An account without {'a name' if item.external_id else 'an id'} was "
                        "skipped.",
                        detail={"code": item.code, "name": item.name},
                    ),
                    # never "": that is a page-level error, resolved by every complete run
                    external_id=item.external_id or f"(no id) {item.code or item.name}"[:255],
                )
                continue
            succeeded.append(item.external_id)
            versions.append(item.version)
            fields = {
                "external_code": (item.code or "")[:100],
                "external_name": item.name[:255],
                "external_type": (item.type or "")[:100],
            }
            mapping = existing.get(item.external_id)
            if mapping is None:
                mapping = AccountMapping(
                    company=ctx.company,
                    connection=ctx.connection,
                    external_id=item.external_id,
                    account_id=by_code.get(item.code) or by_name.get(item.name.casefold()),
                    **fields,
                )
                new.append(mapping)
            elif any(getattr(mapping, k) != v for k, v in fields.items()):
                for key, value in fields.items():
                    setattr(mapping, key, value)
                changed.append(mapping)
            ctx.succeeded()
        # One bulk write per page (the unique (connection, external_id) is the backstop).
        with transaction.atomic():
            AccountMapping.objects.bulk_create(new)
            AccountMapping.objects.bulk_update(
                changed, ["external_code", "external_name", "external_type"]
            )
            # Only the accounts that went through: one UPDATE for the page.
            ctx.resolve_record_errors(succeeded)
    ctx.resolve_errors()  # the page-level errors of earlier runs
    _cursor_save(ctx, _next_since(ctx, versions, started_iso))


def _party_fields(contact: ExternalContact) -> dict:
    digits = re.sub(r"\D", "", contact.tax_id or "")
    kind = contact.kind if contact.kind in ("customer", "vendor", "both") else "customer"
    fields = {
        "name": (contact.name or "").strip()[:200],
        "kind": kind,
        "email": (contact.email or "")[:254],
        "phone": (contact.phone or "")[:40],
        "address": contact.address or "",
    }
    if len(digits) == 13:
        fields["bin"] = digits
    elif len(digits) == 12:
        fields["etin"] = digits
    return fields


def _import_contacts(ctx: RunContext) -> None:
    started_iso = timezone.now().isoformat()
    since = (ctx.connection.cursors or {}).get("contacts")
    versions: list[str] = []
    if ctx.sync_type == SyncType.RETRY:
        _contacts_retry_records(ctx)
    for items in _pages(ctx, ctx.connector.fetch_contacts, since=since):
        versions.extend(contact.version for contact in items)
        _contacts_apply(ctx, items)
    if ctx.sync_type != SyncType.WEBHOOK:
        # A complete listing clears the page-level errors of earlier runs; a webhook's one
        # re-fetched contact says nothing about the pages of the scheduled import.
        ctx.resolve_errors()
    _cursor_save(ctx, _next_since(ctx, versions, started_iso))


def _contacts_retry_records(ctx: RunContext) -> None:
    """A retry run first re-fetches, one by one, the contacts whose errors are being retried
    (a person's Retry, or a retryable error come due): an incremental import would not list a
    contact that has not changed remotely again, and its error would stay "retrying"."""
    due = (
        SyncError.objects.filter(
            connection=ctx.connection,
            entity=ctx.entity,
            local_type="",
            local_id="",
            resolution__in=[Resolution.OPEN, Resolution.RETRYING],
        )
        .exclude(external_id="")
        .filter(
            Q(resolution=Resolution.RETRYING) | Q(retryable=True, next_retry_at__lte=timezone.now())
        )
        .order_by("id")
        .values_list("external_id", flat=True)
    )
    for external_id in list(dict.fromkeys(due)):
        try:
            contact = ctx.connector.fetch_contact(external_id)
        except SyncFailure as failure:
            if isinstance(failure, NotFound):
                failure.retryable = False
            ctx.record_failure(failure, external_id=external_id)
            continue
        _contacts_apply(ctx, [contact])


def _contacts_apply(ctx: RunContext, items: list[ExternalContact]) -> None:
    """Create or update the parties of one page of contacts in one transaction, with a fixed
    number of queries whatever the page's size: the page's ExternalRefs and their Parties are
    read (and locked) in two queries, every contact is checked and decided in memory (unchanged,
    create, update, conflict, invalid), then the parties, their audit events and the refs are
    written in bulk and the page's open record errors resolved by one UPDATE.

    Why not invoicing.services.party_create/party_update: they are one row at a time (a lock,
    a save and an audit row each: ~20 queries a contact, 28 contacts/s). This bulk path keeps
    invoicing's rules by calling its own field cleaning (`_party_fields`: unknown fields
    refused, BIN/e-TIN normalised to 13/12 digits, name trimmed), `_check_party` and the model's
    field validation, and writes the same audit events ("party.created"/"party.updated" with
    the PARTY_FIELDS snapshots) with one bulk INSERT. The table's CHECK constraints (BIN,
    e-TIN, kind) stay the backstop. A contact that fails a check becomes a SyncError after the
    page commits and never sinks the page; a database failure rolls the page back whole
    (earlier pages stay, and the retry finds their refs: nothing is duplicated)."""
    from django.core.exceptions import ValidationError
    from django_guid import get_guid

    from core.errors import ValidationFailed
    from core.models import AuditEvent
    from core.services import model_snapshot
    from invoicing.models import Party
    from invoicing.services import PARTY_FIELDS, _check_party
    from invoicing.services import _party_fields as party_fields_clean

    local_type = LOCAL_TYPE["contacts"]
    latest: dict[str, ExternalContact] = {}
    failures: list[tuple[SyncFailure, str]] = []
    for contact in items:
        if not contact.external_id:
            failures.append(
                (
                    ValidationFailure(
                        "A contact without an id was skipped.", detail={"name": contact.name}
                    ),
                    # never "": that is a page-level error, resolved by every complete run
                    f"(no id) {contact.name}"[:255],
                )
            )
            continue
        latest[contact.external_id] = contact  # a contact listed twice: the last one counts
    succeeded: list[str] = []
    with transaction.atomic():
        refs = {
            r.external_id: r
            for r in ExternalRef.objects.select_for_update().filter(
                connection=ctx.connection, entity="contact", external_id__in=list(latest)
            )
        }
        party_ids = [int(r.local_id) for r in refs.values() if str(r.local_id).isdigit()]
        parties = (
            Party.objects.select_for_update().filter(company=ctx.company).in_bulk(party_ids)
            if party_ids
            else {}
        )
        plan = []  # (contact, ref, party, before, digest)
        for external_id, contact in latest.items():
            ref = refs.get(external_id)
            digest = payload_hash(contact)
            if ref is not None and ref.last_synced_hash == digest:
                continue  # unchanged since the last import: nothing to do, nothing counted
            party = parties.get(int(ref.local_id)) if ref and ref.local_id.isdigit() else None
            try:
                fields = _party_fields(contact)
                if not fields["name"]:
                    raise ValidationFailure("The contact has no name.", external_id=external_id)
                fields = party_fields_clean(fields)
                if (
                    party is not None
                    and ref.last_synced_at
                    and party.updated_at > ref.last_synced_at + timedelta(seconds=1)
                ):
                    raise ConflictFailure(
                        f"{party.name} changed in Kontor and in "
                        f"{ctx.connection.get_system_display()} since the last sync.",
                        external_id=external_id,
                        detail={"local_id": party.pk, "remote_version": contact.version},
                    )
                before = None
                if party is None:
                    party = Party(company=ctx.company, **fields)
                else:
                    before = model_snapshot(party, PARTY_FIELDS)
                    for name, value in fields.items():
                        setattr(party, name, value)
                _check_party(party)
                try:
                    # CHECK constraints are left to the database (Django would run a query
                    # per row for them); the cleaned BIN/e-TIN already satisfy them.
                    party.full_clean(
                        exclude=["company"], validate_unique=False, validate_constraints=False
                    )
                except ValidationError as exc:
                    raise ValidationFailed.from_django(exc) from None
            except SyncFailure as failure:
                failures.append((failure, external_id))  # the party is not saved
                continue
            except DomainError as exc:  # invoicing refused the party (a bad BIN…)
                failures.append(
                    (ValidationFailure(exc.message, detail={"fields": exc.fields}), external_id)
                )
                continue
            plan.append((contact, ref, party, before, digest))

        now = timezone.now()
        new = [party for _, _, party, _, _ in plan if party.pk is None]
        changed = [party for _, _, party, _, _ in plan if party.pk is not None]
        for party in changed:
            party.updated_at = now
        Party.objects.bulk_create(new)
        if changed:
            Party.objects.bulk_update(changed, [*PARTY_FIELDS, "updated_at"])
        request_id = get_guid() or ""
        AuditEvent.objects.bulk_create(
            AuditEvent(
                company=ctx.company,
                actor=None,
                actor_label="system",  # what party_create/party_update record for a system job
                action="party.created" if before is None else "party.updated",
                object_type=party._meta.label_lower,
                object_id=str(party.pk),
                object_repr=str(party)[:200],
                before=before,
                after=model_snapshot(party, PARTY_FIELDS),
                request_id=request_id,
            )
            for _, _, party, before, _ in plan
        )
        new_refs, changed_refs = [], []
        for contact, ref, party, _, digest in plan:
            values = {
                "local_id": str(party.pk),
                "external_version": (contact.version or "")[:100],
                "last_synced_hash": digest,
                "last_synced_at": max(now, party.updated_at),
            }
            if ref is None:
                new_refs.append(
                    ExternalRef(
                        company=ctx.company,
                        connection=ctx.connection,
                        entity="contact",
                        local_type=local_type,
                        external_id=contact.external_id,
                        **values,
                    )
                )
            else:
                for name, value in values.items():
                    setattr(ref, name, value)
                changed_refs.append(ref)
            succeeded.append(contact.external_id)
        ExternalRef.objects.bulk_create(new_refs)
        if changed_refs:
            ExternalRef.objects.bulk_update(
                changed_refs, ["local_id", "external_version", "last_synced_hash", "last_synced_at"]
            )
        ctx.resolve_record_errors(succeeded)
    for _ in succeeded:
        ctx.succeeded()
    for failure, external_id in failures:
        ctx.record_failure(failure, external_id=external_id)


# ---------------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------------


class AccountNames:
    """Local account -> the external code and name (from AccountMapping when mapped)."""

    def __init__(self, ctx: RunContext):
        from accounting.models import Account

        self.local = {
            a.id: (a.code, a.name)
            for a in Account.objects.filter(company=ctx.company).only("id", "code", "name")
        }
        self.mapped = {
            m.account_id: (m.external_code or m.external_name, m.external_name)
            for m in AccountMapping.objects.filter(
                connection=ctx.connection, account__isnull=False
            ).order_by("id")
        }
        self.by_code = {code: pk for pk, (code, _name) in self.local.items()}

    def of(self, account_id) -> tuple[str, str]:
        return self.mapped.get(account_id) or self.local.get(account_id, ("", ""))

    def of_code(self, code: str) -> tuple[str, str]:
        pk = self.by_code.get(code)
        return self.of(pk) if pk else (code, code)

    def of_role(self, company, role: str) -> tuple[str, str]:
        from accounting.services import account_for_role

        try:
            account = account_for_role(company=company, role=role)
        except Exception:  # noqa: BLE001 - an unmapped role exports without an account
            return ("", "")
        return self.of(account.pk if hasattr(account, "pk") else account)


def _refs_for(ctx: RunContext, local_type: str, local_ids: list[str]) -> dict[str, ExternalRef]:
    return {
        r.local_id: r
        for r in ExternalRef.objects.filter(
            connection=ctx.connection, local_type=local_type, local_id__in=local_ids
        )
    }


# Failures after which a create certainly did not happen remotely: the system answered and
# refused it, or the request never left (the connection could not be opened).
NOT_APPLIED_CATEGORIES = frozenset(
    {
        ErrorCategory.VALIDATION,
        ErrorCategory.AUTH,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.NOT_FOUND,
        ErrorCategory.CONFLICT,
    }
)
NOT_SENT_ERRORS = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})


def _not_applied(failure: SyncFailure) -> bool:
    if failure.category in NOT_APPLIED_CATEGORIES:
        return True
    if failure.category == ErrorCategory.NETWORK:
        return (failure.detail or {}).get("error") in NOT_SENT_ERRORS
    return (failure.detail or {}).get("status") == 503  # unavailable: nothing was done


def idempotency_key(connection_id, entity: str, local_id, attempt: str) -> str:
    """Stable for one record's create (or one update) across attempts: never from the body,
    which may change between a lost reply and the retry. 47 characters (QuickBooks: 50)."""
    text = f"{connection_id}|{entity}|{local_id}|{attempt}"
    return "kontor-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _accepts_key(push) -> bool:
    try:
        parameters = inspect.signature(push).parameters
    except (TypeError, ValueError):
        return False
    return "idempotency_key" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _outcome_unknown(ctx: RunContext, *, number: str, local_id: str) -> ConflictFailure:
    system = ctx.connection.get_system_display()
    what = number or f"{ctx.entity[:-1].replace('_', ' ')} {local_id}"
    return ConflictFailure(
        f"outcome unknown: check {system} for {what} before retrying",
        retryable=False,
        detail={"outcome_unknown": True, "number": number, "local_id": local_id},
        suggested_fix=(
            f"An earlier export of {what} may have reached {system} without its answer coming "
            f"back, and {system} cannot be asked whether it did. Look for {what} in {system}: "
            "if it is not there, press Retry to send it again; if it is, leave this error "
            "open or ignore it so nothing is sent twice."
        ),
    )


def _push_one(ctx: RunContext, *, local_type, local_id, payload, ref, push, number="") -> None:
    """Push one record; on success write its ExternalRef (same transaction as the success)."""
    entity = REF_ENTITY[ctx.entity]
    digest = payload_hash(payload)
    exported = ref is not None and not ref.external_id.startswith(PENDING_PREFIX)
    if exported and ref.last_synced_hash == digest:
        return  # exported and unchanged
    remote_ref = None
    attempt_create = False
    try:
        if ref is None:
            try:
                with transaction.atomic():
                    ref = ExternalRef.objects.create(
                        company=ctx.company,
                        connection=ctx.connection,
                        entity=entity,
                        local_type=local_type,
                        local_id=local_id,
                        external_id=pending_external_id(local_type, local_id),
                        # the attempt value of the create's idempotency key, kept until the
                        # create is known to have happened or not
                        external_version=secrets.token_hex(8),
                    )
            except IntegrityError:
                return  # another run is pushing it right now
        elif ref.external_id.startswith(PENDING_PREFIX):
            # An earlier push may have succeeded with its reply lost: look before pushing.
            found = ctx.connector.find_by_reference(entity, local_id, number)
            if found is not None:
                _ref_record(
                    ctx, ref, found.external_id, found.version, digest, local_type, local_id
                )
                ctx.succeeded()
                return
            if ctx.entity not in getattr(ctx.connector, "idempotent_creates", frozenset()):
                # Pushing again could create it twice: a person has to look.
                ctx.record_failure(
                    _outcome_unknown(ctx, number=number, local_id=local_id),
                    local_type=local_type,
                    local_id=local_id,
                )
                return
            remote_ref = None  # the same key as the lost create: the remote replays it
        else:
            remote_ref = ref
        if remote_ref is None:
            attempt_create = True
            key = idempotency_key(
                ctx.connection.pk, entity, local_id, f"create:{ref.external_version}"
            )
        else:
            # An update is keyed on the version it updates from and what it sends: a lost
            # reply repeated unchanged is replayed, a changed record is a new update.
            key = idempotency_key(
                ctx.connection.pk, entity, local_id, f"update:{ref.external_version}:{digest}"
            )
        if _accepts_key(push):
            result = push(payload, ref=remote_ref, idempotency_key=key)
        else:
            result = push(payload, ref=remote_ref)
        _ref_record(ctx, ref, result.external_id, result.version, digest, local_type, local_id)
    except SyncFailure as failure:
        if attempt_create and _not_applied(failure):
            # The create certainly did not happen: no pending ref, the next attempt is a
            # plain create (with a new key: a refused body must not be replayed).
            ExternalRef.objects.filter(pk=ref.pk).delete()
        ctx.record_failure(failure, local_type=local_type, local_id=local_id)
    except IntegrityError:
        ctx.record_failure(
            ConflictFailure(
                "The external id returned is already linked to another local record.",
                retryable=False,
            ),
            local_type=local_type,
            local_id=local_id,
        )
    else:
        ctx.succeeded()


def _ref_record(ctx, ref, external_id, version, digest, local_type, local_id) -> None:
    with transaction.atomic():
        ref.external_id = external_id
        ref.external_version = (version or "")[:100]
        ref.last_synced_hash = digest
        ref.last_synced_at = timezone.now()
        ref.save(
            update_fields=["external_id", "external_version", "last_synced_hash", "last_synced_at"]
        )
        ctx.resolve_errors(local_type=local_type, local_id=local_id)


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


EXPORTABLE_STATUSES = ("approved", "partially_paid", "paid", "overdue")


def invoice_payload(invoice, *, contact_ref: ExternalRef | None, accounts: AccountNames, sales):
    lines = [
        LinePayload(
            description=line.description,
            account_code=sales[0],
            account_name=sales[1],
            amount=_money(line.value),
            tax_amount=_money(line.vat_amount) + _money(line.sd_amount),
            quantity=Decimal(line.quantity),
            unit_price=Decimal(line.unit_price),
        )
        for line in invoice.lines.all()
    ]
    return InvoicePayload(
        local_id=str(invoice.pk),
        number=invoice.number,
        kind="credit_note" if invoice.kind == "credit_note" else "invoice",
        date=invoice.issue_date,
        due_date=invoice.due_date,
        contact_external_id=(
            contact_ref.external_id
            if contact_ref is not None and not contact_ref.external_id.startswith(PENDING_PREFIX)
            else ""
        ),
        contact_name=invoice.buyer_name or (invoice.customer.name if invoice.customer else ""),
        currency=invoice.currency,
        lines=lines,
        total=_money(invoice.total_amount),
        tax_total=_money(invoice.total_vat) + _money(invoice.total_sd),
        reference=invoice.original.number if invoice.original_id else "",
    )


def _export_invoices(ctx: RunContext) -> None:
    from invoicing.models import Invoice

    kind = "credit_note" if ctx.entity == "credit_notes" else "invoice"
    local_type = LOCAL_TYPE[ctx.entity]
    accounts = AccountNames(ctx)
    sales = accounts.of_role(ctx.company, "sales_revenue")
    ids = list(
        Invoice.objects.filter(company=ctx.company, kind=kind, status__in=EXPORTABLE_STATUSES)
        .order_by("issue_date", "id")
        .values_list("id", flat=True)
    )
    ctx.close_unselected(local_type, ids)
    for start in range(0, len(ids), EXPORT_CHUNK):
        chunk = (
            Invoice.objects.filter(id__in=ids[start : start + EXPORT_CHUNK])
            .select_related("customer", "original")
            .prefetch_related("lines")
            .order_by("issue_date", "id")
        )
        chunk = list(chunk)
        refs = _refs_for(ctx, local_type, [str(i.id) for i in chunk])
        contact_refs = _refs_for(
            ctx, "invoicing.party", [str(i.customer_id) for i in chunk if i.customer_id]
        )
        for invoice in chunk:
            payload = invoice_payload(
                invoice,
                contact_ref=contact_refs.get(str(invoice.customer_id)),
                accounts=accounts,
                sales=sales,
            )
            _push_one(
                ctx,
                local_type=local_type,
                local_id=str(invoice.pk),
                payload=payload,
                ref=refs.get(str(invoice.pk)),
                push=ctx.connector.push_invoice,
                number=invoice.number,
            )
    ctx.resolve_errors()


def _export_payments(ctx: RunContext) -> None:
    from invoicing.models import InvoicePayment

    local_type = LOCAL_TYPE["payments"]
    accounts = AccountNames(ctx)
    payments = list(
        InvoicePayment.objects.filter(company=ctx.company, amount__gt=0)
        .select_related("invoice")
        .order_by("date", "id")
    )
    ctx.close_unselected(local_type, [p.id for p in payments])
    for start in range(0, len(payments), EXPORT_CHUNK):
        chunk = payments[start : start + EXPORT_CHUNK]
        refs = _refs_for(ctx, local_type, [str(p.id) for p in chunk])
        invoice_refs = _refs_for(ctx, "invoicing.invoice", [str(p.invoice_id) for p in chunk])
        for payment in chunk:
            invoice_ref = invoice_refs.get(str(payment.invoice_id))
            if invoice_ref is None or invoice_ref.external_id.startswith(PENDING_PREFIX):
                continue  # its invoice is not exported yet: the next run takes it
            code, name = accounts.of_code(payment.account_code)
            payload = PaymentPayload(
                local_id=str(payment.pk),
                invoice_external_id=invoice_ref.external_id,
                invoice_number=payment.invoice.number,
                date=payment.date,
                amount=_money(payment.amount),
                account_code=code,
                account_name=name,
                reference=payment.reference,
            )
            _push_one(
                ctx,
                local_type=local_type,
                local_id=str(payment.pk),
                payload=payload,
                ref=refs.get(str(payment.pk)),
                push=ctx.connector.push_payment,
                number=payment.reference,
            )
    ctx.resolve_errors()


# Journal entries that other entities already carry (an invoice's own entry) are not exported
# again as journals.
JOURNAL_SOURCES_SKIPPED = ("invoice",)


def _export_journals(ctx: RunContext) -> None:
    from accounting.models import JournalEntry

    local_type = LOCAL_TYPE["journals"]
    accounts = AccountNames(ctx)
    ids = list(
        JournalEntry.objects.filter(company=ctx.company, status="posted")
        .exclude(source_type__in=JOURNAL_SOURCES_SKIPPED)
        .order_by("date", "id")
        .values_list("id", flat=True)
    )
    ctx.close_unselected(local_type, ids)
    for start in range(0, len(ids), EXPORT_CHUNK):
        chunk = list(
            JournalEntry.objects.filter(id__in=ids[start : start + EXPORT_CHUNK])
            .select_related("fiscal_year")
            .prefetch_related("lines__cost_center")
            .order_by("date", "id")
        )
        refs = _refs_for(ctx, local_type, [str(e.id) for e in chunk])
        for entry in chunk:
            lines = []
            for line in sorted(entry.lines.all(), key=lambda item: item.line_no):
                code, name = accounts.of(line.account_id)
                debit = _money(line.debit)
                lines.append(
                    LinePayload(
                        description=line.memo or entry.memo,
                        account_code=code,
                        account_name=name,
                        amount=debit if debit else _money(line.credit),
                        debit=bool(debit),
                        cost_center=line.cost_center.code if line.cost_center_id else "",
                    )
                )
            reference = getattr(entry, "reference", "") or f"JE-{entry.pk}"
            payload = JournalPayload(
                local_id=str(entry.pk),
                reference=reference,
                date=entry.date,
                memo=entry.memo,
                lines=lines,
            )
            _push_one(
                ctx,
                local_type=local_type,
                local_id=str(entry.pk),
                payload=payload,
                ref=refs.get(str(entry.pk)),
                push=ctx.connector.push_journal,
                number=reference,
            )
    ctx.resolve_errors()
