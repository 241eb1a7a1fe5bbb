"""The connector contract: DTOs exchanged with the sync engine, the errors a connector raises,
and the abstract `Connector` every system implements.

A connector only speaks its system's wire format and maps failures to `SyncFailure`
subclasses. The sync engine (accounting/integrations/sync.py) owns paging loops, ExternalRef
writes, SyncRun counts and SyncError rows. An entity a connector cannot handle is simply absent
from its `supports` set; the engine never calls it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from accounting.integrations.http import HttpClient
    from accounting.integrations.models import ExternalRef, IntegrationConnection

T = TypeVar("T")

# Entity names a connector may list in `supports` (the plural names of Entity in models.py).
ACCOUNTS = "accounts"
CONTACTS = "contacts"
INVOICES = "invoices"
CREDIT_NOTES = "credit_notes"
PAYMENTS = "payments"
JOURNALS = "journals"


# ---------------------------------------------------------------------------------------------
# DTOs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalAccount:
    external_id: str
    code: str
    name: str
    type: str
    parent_id: str = ""
    active: bool = True
    version: str = ""


@dataclass(frozen=True)
class ExternalContact:
    external_id: str
    name: str
    email: str = ""
    phone: str = ""
    tax_id: str = ""
    kind: str = "customer"  # "customer" | "vendor" | "both"
    address: str = ""
    version: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class LinePayload:
    description: str
    account_code: str
    account_name: str
    amount: Decimal  # positive; for journals `debit` says which side
    tax_amount: Decimal = Decimal(0)
    debit: bool = False
    cost_center: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class InvoicePayload:
    local_id: str
    number: str
    kind: str  # "invoice" | "credit_note"
    date: date
    due_date: date | None
    contact_external_id: str
    contact_name: str
    currency: str
    lines: list[LinePayload]
    total: Decimal
    tax_total: Decimal
    reference: str = ""


@dataclass(frozen=True)
class PaymentPayload:
    local_id: str
    invoice_external_id: str
    invoice_number: str
    date: date
    amount: Decimal
    account_code: str
    account_name: str
    reference: str = ""


@dataclass(frozen=True)
class JournalPayload:
    local_id: str
    reference: str
    date: date
    memo: str
    lines: list[LinePayload]  # amounts positive, `debit` flag per line


@dataclass(frozen=True)
class PushResult:
    external_id: str
    version: str = ""


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: no more pages


@dataclass(frozen=True)
class Change:
    entity: str
    external_id: str
    operation: str  # "create" | "update" | "delete"
    version: str = ""


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class SyncFailure(Exception):
    """A failure talking to the external system, classified for SyncError rows.

    `message` must never contain credentials or tokens; `detail` holds safe diagnostics
    (HTTP status, the system's error code, a truncated reply body).
    """

    category: ClassVar[str] = "server"
    default_retryable: ClassVar[bool] = False
    default_suggested_fix: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        external_id: str = "",
        detail: dict[str, Any] | None = None,
        suggested_fix: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.external_id = external_id
        self.detail = dict(detail or {})
        self.suggested_fix = suggested_fix or self.default_suggested_fix

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class AuthFailure(SyncFailure):
    """Credentials rejected (after one refresh was tried), or re-authorisation is needed."""

    category = "auth"
    default_suggested_fix = "Reconnect the integration to grant access again."


class ValidationFailure(SyncFailure):
    category = "validation"
    default_suggested_fix = "Correct the record (or its account mapping) and retry."


class RateLimited(SyncFailure):
    category = "rate_limit"
    default_retryable = True
    default_suggested_fix = "Wait; the record is retried automatically."


class NetworkFailure(SyncFailure):
    category = "network"
    default_retryable = True
    default_suggested_fix = "Check that the system is reachable; the record is retried."


class ConflictFailure(SyncFailure):
    """Changed on both sides (QuickBooks SyncToken 5010, a newer remote version): never
    overwritten automatically."""

    category = "conflict"
    default_suggested_fix = (
        "The record changed in both systems: compare them, then resolve or re-export by hand."
    )


class NotFound(SyncFailure):
    category = "not_found"
    default_suggested_fix = "The record no longer exists remotely; re-create or unlink it."


class ServerFailure(SyncFailure):
    category = "server"
    default_retryable = True
    default_suggested_fix = "The remote system failed; the record is retried automatically."


class MalformedReply(SyncFailure):
    category = "server"
    default_retryable = False
    default_suggested_fix = "The remote system replied in an unexpected format; contact support."


# ---------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------


class Connector(ABC):
    system: ClassVar[str]
    supports: ClassVar[frozenset[str]] = frozenset()
    # Entities (names as in `supports`) whose creates the remote system deduplicates by an
    # idempotency key (QuickBooks `requestid`, Xero `Idempotency-Key`) or by our own reference
    # (Tally/Busy REMOTEID looked up before Create): a create repeated with the same key is
    # answered with the record the first one made. When the reply of a create was lost and
    # `find_by_reference` cannot confirm the record, the engine repeats the push only for these
    # entities; for the others it records a conflict ("outcome unknown") for a person to check.
    idempotent_creates: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, connection: IntegrationConnection, *, http: HttpClient):
        self.connection = connection
        self.http = http

    def __repr__(self) -> str:
        return f"<{type(self).__name__} connection={self.connection.pk}>"

    @abstractmethod
    def test_connection(self) -> dict:
        """{"success": bool, "latency_ms": int, "version": str, "message": str}"""

    def fetch_accounts(
        self, *, cursor: str | None = None, since: str | None = None
    ) -> Page[ExternalAccount]:
        raise NotImplementedError  # only called when "accounts" is in `supports`

    def fetch_contacts(
        self, *, cursor: str | None = None, since: str | None = None
    ) -> Page[ExternalContact]:
        raise NotImplementedError

    # push_*: `idempotency_key` (optional keyword; the engine passes it only to a connector
    # whose push_* accepts it) is stable for one record across attempts: for a create it is made
    # from the connection, the entity, our local id and a value the engine keeps with the
    # pending ExternalRef until the create is known to have succeeded or been refused (never
    # from the body, which may change between attempts); for an update it also names the
    # version updated from. At most 47 characters ("kontor-" + 40 hex), within QuickBooks' 50.
    def push_invoice(
        self, invoice: InvoicePayload, *, ref: ExternalRef | None, idempotency_key: str = ""
    ) -> PushResult:
        raise NotImplementedError

    def push_payment(
        self, payment: PaymentPayload, *, ref: ExternalRef | None, idempotency_key: str = ""
    ) -> PushResult:
        raise NotImplementedError

    def push_journal(
        self, journal: JournalPayload, *, ref: ExternalRef | None, idempotency_key: str = ""
    ) -> PushResult:
        raise NotImplementedError

    def fetch_changes(self, *, since: str | None) -> tuple[list[Change], str]:
        """Incremental changes since the cursor (AlterID / updated-since / CDC) and the new
        cursor."""
        raise NotImplementedError

    def fetch_contact(self, external_id: str) -> ExternalContact:
        raise NotImplementedError

    def find_by_reference(self, entity: str, local_id: str, number: str = "") -> PushResult | None:
        """Look a pushed record up by our reference (Tally REMOTEID, the invoice number, a
        QuickBooks DocNumber…). The engine calls it before re-creating a record whose earlier
        push may have succeeded remotely with the reply lost. None means "not found, or cannot
        tell": the engine then pushes again only when the entity is in `idempotent_creates`,
        and otherwise records a non-retryable "outcome unknown" conflict for a person to check
        (their Retry, after checking, sends it again)."""
        return None
