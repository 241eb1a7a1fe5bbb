"""QuickBooks Online (Accounting API v3) connector.

Wire format, from Intuit's published API reference:
- `https://quickbooks.api.intuit.com/v3/company/<realmId>/...` (sandbox:
  `sandbox-quickbooks.api.intuit.com`; `base_url` in the settings overrides the host),
  `minorversion=75` on every call, `Authorization: Bearer <token>` (added and refreshed by the
  HTTP client's OAuth object; QuickBooks rotates the refresh token, hub-core's oauth stores the
  newest).
- Reads page through the query language: `SELECT * FROM Customer ORDERBY Id STARTPOSITION n
  MAXRESULTS m` answering `{"QueryResponse": {"Customer": [...], "startPosition", "maxResults"}}`
  (an empty page is `{"QueryResponse": {}}`).
- Create and update are both `POST .../<entity>`; an update carries `Id` and the `SyncToken` we
  last saw, and a stale one is refused with Fault code 5010, which we report as a conflict
  (never retried with a fresh token: that would overwrite the other side's change).
- Errors: `{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}`, lower-case
  `{"fault": {"error": [...]}}` for authentication failures, sometimes with HTTP 200.
- Change data capture: `GET .../cdc?entities=...&changedSince=...` (30 days back at most,
  1,000 objects per reply), deleted objects as `{"status": "Deleted", "Id"}`.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from accounting.integrations.connectors.base import (
    ACCOUNTS,
    CONTACTS,
    CREDIT_NOTES,
    INVOICES,
    JOURNALS,
    PAYMENTS,
    AuthFailure,
    Change,
    ConflictFailure,
    Connector,
    ExternalAccount,
    ExternalContact,
    InvoicePayload,
    JournalPayload,
    MalformedReply,
    NotFound,
    Page,
    PaymentPayload,
    PushResult,
    RateLimited,
    ServerFailure,
    SyncFailure,
    ValidationFailure,
)

HOSTS = {
    "production": "https://quickbooks.api.intuit.com",
    "sandbox": "https://sandbox-quickbooks.api.intuit.com",
}
MINOR_VERSION = "75"
MAX_RESULTS = 1000  # the most a query page may hold
CDC_LIMIT = 1000  # objects per CDC reply
CDC_LOOKBACK = timedelta(days=30)
CURSOR_OVERLAP = timedelta(minutes=5)
STALE_OBJECT = "5010"
OBJECT_NOT_FOUND = "610"
AUTH_CODES = {"100", "110", "120", "3100", "3200"}
THROTTLED = "3001"
DOC_NUMBER_MAX = 21  # QuickBooks' limit on DocNumber / PaymentRefNum

# QuickBooks entity -> our entity name
ENTITIES = {
    "Customer": CONTACTS,
    "Account": ACCOUNTS,
    "Invoice": INVOICES,
    "CreditMemo": CREDIT_NOTES,
    "Payment": PAYMENTS,
    "JournalEntry": JOURNALS,
}


def api_base_url(settings: dict) -> str:
    """`<host>/v3/company/<realmId>` for a connection's settings."""
    realm = str(settings.get("realm_id") or "")
    if not realm:
        raise ValidationFailure(
            "The QuickBooks connection has no realm_id.",
            suggested_fix="Reconnect QuickBooks (the realm id comes with the authorisation).",
        )
    host = settings.get("base_url") or HOSTS.get(settings.get("environment") or "production")
    if not host:
        raise ValidationFailure(
            f"Unknown QuickBooks environment {settings.get('environment')!r}.",
            suggested_fix="Set environment to production or sandbox.",
        )
    return f"{host.rstrip('/')}/v3/company/{realm}"


def _encode(body: dict) -> bytes:
    """JSON with Decimal amounts written as exact JSON numbers (never through float)."""
    numbers: dict[str, str] = {}

    def default(value):
        if isinstance(value, Decimal):
            key = f"@@dec{len(numbers)}@@"
            numbers[key] = format(value, "f")
            return key
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        raise TypeError(f"cannot encode {type(value).__name__}")

    text = json.dumps(body, default=default)
    if numbers:
        text = re.sub(r'"(@@dec\d+@@)"', lambda m: numbers[m.group(1)], text)
    return text.encode()


def _quote(value: str) -> str:
    """A string literal of the query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _iso(value: str | datetime) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


class QuickBooksConnector(Connector):
    system = "quickbooks"
    supports = frozenset({ACCOUNTS, CONTACTS, INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})

    def __init__(self, connection, *, http):
        super().__init__(connection, http=http)
        settings = connection.settings or {}
        self.realm_id = str(settings.get("realm_id") or "")
        self._api_base = ""
        self.page_size = min(int(settings.get("page_size") or MAX_RESULTS), MAX_RESULTS)
        self._chart: list[dict] | None = None
        self._mapped: tuple[dict[str, str], dict[str, str]] | None = None
        self._latest: dict[str, datetime] = {}
        self._since: dict[str, str] = {}
        self._item_id: str | None = settings.get("item_id")

    @property
    def api_base(self) -> str:
        """`<host>/v3/company/<realmId>`. Requests go to absolute URLs, so the shared client's
        `base_url` (the bare host override) does not matter."""
        if not self._api_base:
            self._api_base = api_base_url(self.connection.settings or {})
        return self._api_base

    # --- plumbing ----------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: dict | None = None,
        entity: str = "",
        external_id: str = "",
    ) -> dict:
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content = _encode(body)
            headers["Content-Type"] = "application/json"
        try:
            response = self.http.request(
                method,
                self.api_base + path,
                params={**(params or {}), "minorversion": MINOR_VERSION},
                content=content,
                headers=headers,
                entity=entity,
            )
        except SyncFailure as failure:
            if external_id and not failure.external_id:
                failure.external_id = external_id
            raise
        return self._reply(response, external_id=external_id)

    def _reply(self, response: httpx.Response, *, external_id: str = "") -> dict:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            detail = {"status": status, "body": response.text[:500]}
            if status >= 500:
                raise ServerFailure(
                    f"QuickBooks answered HTTP {status}.", detail=detail, external_id=external_id
                )
            raise MalformedReply(
                f"QuickBooks answered HTTP {status} with a body that is not JSON.",
                detail=detail,
                external_id=external_id,
            )
        fault = payload.get("Fault") or payload.get("fault")
        if status < 300 and not fault:
            return payload
        raise _failure(status, fault or {}, response, external_id=external_id)

    def _query(self, statement: str, *, entity: str) -> list[dict]:
        reply = self._call("GET", "/query", params={"query": statement}, entity=entity)
        response = reply.get("QueryResponse")
        if not isinstance(response, dict):
            raise MalformedReply("QuickBooks answered a query without QueryResponse.")
        name = statement.split(" FROM ", 1)[1].split()[0]
        return response.get(name) or []

    def _page(self, name: str, *, cursor, since, entity) -> tuple[list[dict], str | None]:
        start = int(cursor or 1)
        where = f" WHERE MetaData.LastUpdatedTime >= {_quote(_iso(since))}" if since else ""
        rows = self._query(
            f"SELECT * FROM {name}{where} ORDERBY Id "  # noqa: S608 - QuickBooks query, quoted
            f"STARTPOSITION {start} MAXRESULTS {self.page_size}",
            entity=entity,
        )
        # QuickBooks gives no total: a full page means there may be more.
        return rows, (str(start + len(rows)) if len(rows) >= self.page_size else None)

    def _all(self, name: str, *, entity: str) -> list[dict]:
        rows: list[dict] = []
        cursor: str | None = "1"
        while cursor:
            page, cursor = self._page(name, cursor=cursor, since=None, entity=entity)
            rows += page
        return rows

    # --- contract ----------------------------------------------------------------------------
    def test_connection(self) -> dict:
        started = time.monotonic()
        try:
            reply = self._call("GET", f"/companyinfo/{self.realm_id}")
        except SyncFailure as failure:
            return {
                "success": False,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "version": "",
                "message": failure.message,
            }
        company = reply.get("CompanyInfo") or {}
        return {
            "success": True,
            "latency_ms": int((time.monotonic() - started) * 1000),
            "version": f"QuickBooks Online API v3 (minorversion {MINOR_VERSION})",
            "message": f"Connected to {company.get('CompanyName', 'the company')}.",
        }

    def fetch_accounts(self, *, cursor=None, since=None) -> Page[ExternalAccount]:
        rows, next_cursor = self._page("Account", cursor=cursor, since=since, entity=ACCOUNTS)
        self._note(ACCOUNTS, since, rows)
        return Page(items=[_account(row) for row in rows], next_cursor=next_cursor)

    def fetch_contacts(self, *, cursor=None, since=None) -> Page[ExternalContact]:
        rows, next_cursor = self._page("Customer", cursor=cursor, since=since, entity=CONTACTS)
        self._note(CONTACTS, since, rows)
        return Page(items=[_contact(row) for row in rows], next_cursor=next_cursor)

    def fetch_contact(self, external_id: str) -> ExternalContact:
        reply = self._call(
            "GET", f"/customer/{external_id}", entity=CONTACTS, external_id=external_id
        )
        return _contact(reply.get("Customer") or {})

    def fetch_invoice(self, external_id: str) -> Change:
        """An invoice's current state (webhook re-fetch): its SyncToken tells whether it
        changed in QuickBooks after we exported it."""
        reply = self._call(
            "GET", f"/invoice/{external_id}", entity=INVOICES, external_id=external_id
        )
        row = reply.get("Invoice") or {}
        return Change(
            entity=INVOICES,
            external_id=str(row.get("Id", external_id)),
            operation="update",
            version=str(row.get("SyncToken", "")),
        )

    def fetch_changes(self, *, since: str | None) -> tuple[list[Change], str]:
        """Change data capture for every entity we sync. The new cursor is the reply's server
        time; when the reply was cut at 1,000 objects it is the latest change seen instead, so
        the next call picks up the rest."""
        changed_since = _iso(since) if since else (datetime.now(UTC) - CDC_LOOKBACK).isoformat()
        reply = self._call(
            "GET",
            "/cdc",
            params={"entities": ",".join(ENTITIES), "changedSince": changed_since},
            entity="changes",
        )
        changes: list[Change] = []
        latest = ""
        for block in reply.get("CDCResponse") or []:
            for group in block.get("QueryResponse") or []:
                for name, entity in ENTITIES.items():
                    for row in group.get(name) or []:
                        meta = row.get("MetaData") or {}
                        updated = meta.get("LastUpdatedTime", "")
                        if row.get("status") == "Deleted":
                            operation = "delete"
                        elif meta.get("CreateTime") and meta.get("CreateTime") == updated:
                            operation = "create"
                        else:
                            operation = "update"
                        changes.append(
                            Change(
                                entity=entity,
                                external_id=str(row["Id"]),
                                operation=operation,
                                version=str(row.get("SyncToken", "")),
                            )
                        )
                        if updated and (not latest or _iso(updated) > _iso(latest)):
                            latest = updated
        if len(changes) >= CDC_LIMIT and latest:
            return changes, _iso(latest)
        server_time = reply.get("time")
        return changes, _iso(server_time) if isinstance(server_time, str) else changed_since

    def find_by_reference(self, entity: str, local_id: str, number: str = ""):
        """A record pushed before whose reply was lost, found by its DocNumber (invoices,
        credit memos, journal entries; payments have no searchable number: None)."""
        names = {
            "invoice": "Invoice",
            "credit_note": "CreditMemo",
            "journal": "JournalEntry",
            INVOICES: "Invoice",
            CREDIT_NOTES: "CreditMemo",
            JOURNALS: "JournalEntry",
        }
        if entity not in names or not number:
            return None
        statement = f"SELECT * FROM {names[entity]} WHERE DocNumber = "  # noqa: S608
        rows = self._query(statement + _quote(number[:DOC_NUMBER_MAX]), entity=entity)
        if not rows:
            return None
        return PushResult(external_id=str(rows[0]["Id"]), version=str(rows[0]["SyncToken"]))

    def import_since(self, entity: str, versions: list[str], started_iso: str) -> str:
        """The next import's cursor (the engine's hook; our versions are SyncTokens, not
        times): the latest `MetaData.LastUpdatedTime` this import saw, on QuickBooks' clock,
        less a short overlap;
        the cursor it started from when nothing came back; the run's start on a first, empty
        import."""
        if entity in self._latest:
            # Step back a little: a record edited while the import paged past it may carry a
            # stamp older than the latest one seen; the engine skips unchanged re-reads.
            return (self._latest[entity] - CURSOR_OVERLAP).isoformat()
        return self._since.get(entity) or started_iso

    def push_invoice(self, invoice: InvoicePayload, *, ref) -> PushResult:
        name = "Invoice" if invoice.kind == "invoice" else "CreditMemo"
        entity = INVOICES if invoice.kind == "invoice" else CREDIT_NOTES
        item = {"value": self._item()}
        body: dict[str, Any] = {
            "CustomerRef": {
                "value": invoice.contact_external_id or self._customer_id(invoice.contact_name)
            },
            "DocNumber": invoice.number[:DOC_NUMBER_MAX],
            "TxnDate": invoice.date,
            "PrivateNote": invoice.reference,
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": line.amount,
                    "Description": line.description,
                    "SalesItemLineDetail": {"ItemRef": item, **_quantity_and_price(line)},
                }
                for line in invoice.lines
            ],
        }
        if invoice.tax_total:
            body["TxnTaxDetail"] = {"TotalTax": invoice.tax_total}
        if invoice.due_date and name == "Invoice":
            body["DueDate"] = invoice.due_date
        return self._save(name, entity, body, ref)

    def push_payment(self, payment: PaymentPayload, *, ref) -> PushResult:
        invoice = self._call(
            "GET",
            f"/invoice/{payment.invoice_external_id}",
            entity=PAYMENTS,
            external_id=payment.invoice_external_id,
        ).get("Invoice", {})
        body = {
            "CustomerRef": invoice.get("CustomerRef"),
            "TotalAmt": payment.amount,
            "TxnDate": payment.date,
            "PaymentRefNum": (payment.reference or payment.invoice_number)[:DOC_NUMBER_MAX],
            "DepositToAccountRef": {
                "value": self._account_id(payment.account_code, payment.account_name)
            },
            "Line": [
                {
                    "Amount": payment.amount,
                    "LinkedTxn": [{"TxnId": payment.invoice_external_id, "TxnType": "Invoice"}],
                }
            ],
        }
        return self._save("Payment", PAYMENTS, body, ref)

    def push_journal(self, journal: JournalPayload, *, ref) -> PushResult:
        body = {
            "DocNumber": journal.reference[:DOC_NUMBER_MAX],
            "TxnDate": journal.date,
            "PrivateNote": journal.memo,
            "Line": [
                {
                    "Id": str(number),
                    "Description": line.description,
                    "Amount": line.amount,
                    "DetailType": "JournalEntryLineDetail",
                    "JournalEntryLineDetail": {
                        "PostingType": "Debit" if line.debit else "Credit",
                        "AccountRef": {
                            "value": self._account_id(line.account_code, line.account_name),
                            "name": line.account_name,
                        },
                    },
                }
                for number, line in enumerate(journal.lines)
            ],
        }
        return self._save("JournalEntry", JOURNALS, body, ref)

    # --- helpers -----------------------------------------------------------------------------
    def _note(self, entity: str, since, rows: list[dict]) -> None:
        """Remember, for `import_since`, where this import started and the latest change seen."""
        self._since[entity] = _iso(since) if since else ""
        for row in rows:
            updated = (row.get("MetaData") or {}).get("LastUpdatedTime")
            if updated:
                moment = datetime.fromisoformat(updated)
                latest = self._latest.get(entity)
                self._latest[entity] = moment if latest is None or moment > latest else latest

    def _save(self, name: str, entity: str, body: dict, ref) -> PushResult:
        """Create, or update with the SyncToken we stored when we last pushed: if QuickBooks
        has a newer one it answers 5010 and we raise a conflict instead of overwriting."""
        if ref is not None and ref.external_id:
            sync_token = ref.external_version
            if not sync_token:  # never recorded: take QuickBooks' current one
                current = self._call(
                    "GET",
                    f"/{name.lower()}/{ref.external_id}",
                    entity=entity,
                    external_id=ref.external_id,
                ).get(name, {})
                sync_token = str(current.get("SyncToken", "0"))
            body = {**body, "Id": ref.external_id, "SyncToken": sync_token, "sparse": False}
        reply = self._call(
            "POST",
            f"/{name.lower()}",
            body=body,
            entity=entity,
            external_id=ref.external_id if ref is not None else "",
        )
        saved = reply.get(name) or {}
        if "Id" not in saved:
            raise MalformedReply(f"QuickBooks did not return the saved {name}.")
        return PushResult(external_id=str(saved["Id"]), version=str(saved.get("SyncToken", "")))

    def _customer_id(self, name: str) -> str:
        """The QuickBooks customer of that display name, created when there is none."""
        rows = self._query(
            f"SELECT * FROM Customer WHERE DisplayName = {_quote(name)}",  # noqa: S608
            entity=CONTACTS,
        )
        if rows:
            return str(rows[0]["Id"])
        created = self._call("POST", "/customer", body={"DisplayName": name}, entity=CONTACTS)
        return str(created["Customer"]["Id"])

    def _item(self) -> str:
        """The product/service invoice lines are booked on (`item_id`, else the item named
        `item_name`, "Services" by default). QuickBooks takes an invoice line's income account
        from its item, so the line's Kontor account is not sent."""
        if self._item_id:
            return str(self._item_id)
        wanted = (self.connection.settings or {}).get("item_name") or "Services"
        statement = f"SELECT * FROM Item WHERE Name = {_quote(wanted)}"  # noqa: S608
        rows = self._query(statement, entity=INVOICES)
        if not rows:
            raise ValidationFailure(
                f"QuickBooks has no item named {wanted!r} to book invoice lines on.",
                suggested_fix="Set item_id or item_name in the connection settings.",
            )
        self._item_id = str(rows[0]["Id"])
        return self._item_id

    def _account_id(self, code: str, name: str) -> str:
        """The QuickBooks account id for a line's account. The sync engine sends the
        QuickBooks number and name of a mapped account (else the Kontor code and name): look it
        up in the imported chart (AccountMapping) by number, then by name, then in QuickBooks'
        chart itself."""
        if self._mapped is None:
            self._mapped = _mappings(self.connection)
        by_code, by_name = self._mapped
        account_id = (code and by_code.get(code)) or (name and by_name.get(name))
        if account_id:
            return account_id
        if self._chart is None:
            self._chart = self._all("Account", entity=ACCOUNTS)
        for field_name, wanted in (("AcctNum", code), ("Name", name)):
            for row in self._chart:
                if wanted and row.get(field_name) == wanted:
                    return str(row["Id"])
        raise ValidationFailure(
            f"No QuickBooks account for Kontor account {code} {name}.".strip(),
            suggested_fix="Import the QuickBooks chart of accounts and map this account.",
            detail={"account_code": code},
        )


def _mappings(connection) -> tuple[dict[str, str], dict[str, str]]:
    """The connection's imported chart: external code -> id and external name -> id (read
    once per connector, not per line)."""
    from accounting.integrations.models import AccountMapping

    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    rows = AccountMapping.objects.filter(connection=connection).order_by("id")
    for external_id, code, name in rows.values_list(
        "external_id", "external_code", "external_name"
    ):
        if code:
            by_code.setdefault(code, external_id)
        by_name.setdefault(name, external_id)
    return by_code, by_name


def _quantity_and_price(line) -> dict:
    """Qty and UnitPrice only when they give the line's Amount: QuickBooks refuses a line
    whose Amount is not UnitPrice x Qty (a discounted line goes as its amount alone)."""
    if line.quantity and line.unit_price is not None:
        product = (line.quantity * line.unit_price).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if product == line.amount:
            return {"Qty": line.quantity, "UnitPrice": line.unit_price}
    return {}


def _failure(status: int, fault: dict, response: httpx.Response, *, external_id: str):
    errors = fault.get("Error") or fault.get("error") or [{}]
    first = errors[0] if isinstance(errors, list) and errors else {}
    code = str(first.get("code") or "")
    message = str(first.get("Message") or first.get("message") or f"HTTP {status}")
    detail_text = str(first.get("Detail") or first.get("detail") or "")
    detail = {
        "status": status,
        "code": code,
        "type": fault.get("type", ""),
        "message": message[:300],
        "detail": detail_text[:500],
        "intuit_tid": response.headers.get("intuit_tid", ""),
    }
    text = f"QuickBooks: {message}" + (f" ({detail_text})" if detail_text else "")
    if code == STALE_OBJECT:
        return ConflictFailure(text, detail=detail, external_id=external_id)
    if code == OBJECT_NOT_FOUND or status == 404:
        return NotFound(text, detail=detail, external_id=external_id)
    if status in (401, 403) or code in AUTH_CODES:
        return AuthFailure(text, detail=detail, external_id=external_id)
    if status == 429 or code == THROTTLED:
        retry_after = response.headers.get("Retry-After")
        return RateLimited(
            text,
            detail=detail,
            external_id=external_id,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if status >= 500 or fault.get("type") == "SystemFault":
        return ServerFailure(text, detail=detail, external_id=external_id)
    return ValidationFailure(text, detail=detail, external_id=external_id)


def _contact(row: dict) -> ExternalContact:
    meta = row.get("MetaData") or {}
    updated = meta.get("LastUpdatedTime")
    return ExternalContact(
        external_id=str(row.get("Id", "")),
        name=row.get("DisplayName") or row.get("CompanyName") or "",
        email=(row.get("PrimaryEmailAddr") or {}).get("Address", ""),
        phone=(row.get("PrimaryPhone") or {}).get("FreeFormNumber", ""),
        tax_id=row.get("PrimaryTaxIdentifier") or row.get("ResaleNum") or "",
        kind="customer",
        address=_address(row.get("BillAddr")),
        version=str(row.get("SyncToken", "")),
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )


def _address(value) -> str:
    if not isinstance(value, dict):
        return ""
    keys = ("Line1", "Line2", "City", "CountrySubDivisionCode", "PostalCode", "Country")
    return ", ".join(value[k] for k in keys if value.get(k))


def _account(row: dict) -> ExternalAccount:
    return ExternalAccount(
        external_id=str(row.get("Id", "")),
        code=row.get("AcctNum") or "",
        name=row.get("Name") or "",
        type=row.get("AccountType") or "",
        parent_id=str((row.get("ParentRef") or {}).get("value") or ""),
        active=bool(row.get("Active", True)),
        version=str(row.get("SyncToken", "")),
    )
