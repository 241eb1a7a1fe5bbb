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
  1,000 objects per entity in a reply, oldest first), deleted objects as
  `{"status": "Deleted", "Id"}`. When an entity's list is cut at 1,000 the next cursor is the
  earliest cut point (the smallest, over the cut entities, of the latest stamp each returned),
  never the latest stamp overall, so nothing after a cut is skipped (what comes twice is
  absorbed by the engine). A cursor older than 30 days is clamped to 30 days and
  `resync_required` names the entities that need a full import instead.
- Lost replies: every write carries `requestid=<stable key>` (at most 50 characters): the
  engine's `idempotency_key` when it passes one (stable across attempts even if the body
  changed), else a hash of the connection, the path, our local id and the body sent.
  QuickBooks answers a repeated requestid with the original response instead of performing the
  operation again, so when a create's reply was lost (a timeout after QuickBooks saved it) the
  engine's next attempt, with the same key, gets the record that exists, not a duplicate. The
  HTTP client is told `idempotent=False` on writes (not retried on a read timeout or a 500
  inside one call); the next sync attempt does that, with the same requestid.
- VAT: an invoice line carries `TaxCodeRef` from the connection setting `tax_codes`, a dict
  whose keys are a Kontor VAT rate code (`"VAT15"`, the line's `vat_rate_code`) or a rate in
  percent (`"15"`, `"7.5"`, `"0"`) and whose values are QuickBooks TaxCode ids. QuickBooks
  computes the tax from the code (a bare `TxnTaxDetail.TotalTax` without codes is not how QBO
  takes VAT). A line with VAT (or any line of an invoice that has VAT, or any line when
  `tax_codes` is set) and no matching code refuses the export with a ValidationFailure naming
  the missing rate. An invoice without VAT on a connection without `tax_codes` goes without
  tax codes (a company not registered for VAT).
- An update of a record whose SyncToken we never recorded is refused as a conflict: fetching
  QuickBooks' current token and writing over it would overwrite whatever changed there.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from accounting.integrations.connectors._common import (
    account_mappings,
    exact_json,
    reply_object,
)
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
REQUEST_ID_MAX = 50  # QuickBooks' limit on requestid
CENT = Decimal("0.01")

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
    # Every write carries a requestid (the engine's idempotency key when it gives one).
    idempotent_creates = frozenset({INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})

    def __init__(self, connection, *, http, now=None):
        super().__init__(connection, http=http)
        # QuickBooks' clock for the 30-day CDC window (tests pass the fake's).
        self.now = now or (lambda: datetime.now(UTC))
        self.resync_required: set[str] = set()
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
        local_id: str = "",
        request_id: str = "",
    ) -> dict:
        headers = {"Accept": "application/json"}
        content = None
        params = {**(params or {}), "minorversion": MINOR_VERSION}
        if body is not None:
            content = exact_json(body)
            headers["Content-Type"] = "application/json"
            params["requestid"] = (request_id or self.request_id(path, local_id, content))[
                :REQUEST_ID_MAX
            ]
        try:
            response = self.http.request(
                method,
                self.api_base + path,
                params=params,
                content=content,
                headers=headers,
                entity=entity,
                # A write is not repeated inside one call (a lost reply may mean it was saved);
                # the engine's next attempt repeats it with the same requestid.
                idempotent=method == "GET",
            )
        except SyncFailure as failure:
            if external_id and not failure.external_id:
                failure.external_id = external_id
            raise
        return self._reply(response, external_id=external_id)

    def request_id(self, path: str, local_id: str, content: bytes) -> str:
        """The stable requestid of one write: the same record and body give the same id, so
        QuickBooks replays its first answer instead of creating the record twice."""
        digest = hashlib.sha256(
            b"|".join(
                [
                    str(self.connection.company_id).encode(),
                    str(self.connection.pk).encode(),
                    path.encode(),
                    local_id.encode(),
                    content,
                ]
            )
        ).hexdigest()
        return ("kontor-" + digest)[:REQUEST_ID_MAX]

    def _reply(self, response: httpx.Response, *, external_id: str = "") -> dict:
        status = response.status_code
        payload = reply_object(response, source="QuickBooks", external_id=external_id)
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
        time when no entity was cut at 1,000 objects. When one was, it is the earliest cut
        point: the smallest, over the cut entities, of the latest stamp each returned (CDC
        lists oldest first), so the next call starts where the shortest cut list stopped and
        nothing after it is skipped. A cursor older than QuickBooks' 30 days is clamped to 30
        days and the entities are named in `resync_required` (a full import is needed: CDC
        cannot tell what changed before)."""
        floor = self.now() - CDC_LOOKBACK + timedelta(minutes=1)
        self.resync_required = set()
        if since:
            moment = datetime.fromisoformat(_iso(since))
            if moment < floor:
                moment = floor
                self.resync_required = set(ENTITIES.values())
            changed_since = moment.isoformat()
        else:
            changed_since = floor.isoformat()
        reply = self._call(
            "GET",
            "/cdc",
            params={"entities": ",".join(ENTITIES), "changedSince": changed_since},
            entity="changes",
        )
        changes: list[Change] = []
        cut_points: list[datetime] = []
        for block in reply.get("CDCResponse") or []:
            for group in block.get("QueryResponse") or []:
                for name, entity in ENTITIES.items():
                    rows = group.get(name) or []
                    latest: datetime | None = None
                    for row in rows:
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
                        if updated:
                            moment = datetime.fromisoformat(_iso(updated))
                            latest = moment if latest is None or moment > latest else latest
                    if len(rows) >= CDC_LIMIT and latest is not None:
                        cut_points.append(latest)
        if cut_points:
            return changes, min(cut_points).isoformat()
        server_time = reply.get("time")
        return changes, _iso(server_time) if isinstance(server_time, str) else changed_since

    def find_by_reference(self, entity: str, local_id: str, number: str = ""):
        """A record pushed before whose reply was lost, found by its DocNumber (invoices,
        credit memos, journal entries). Payments have no searchable number: None, and the
        engine's repeated push carries the same requestid, which QuickBooks answers with the
        payment it already saved."""
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

    def push_invoice(
        self, invoice: InvoicePayload, *, ref, idempotency_key: str = ""
    ) -> PushResult:
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
                    "SalesItemLineDetail": {
                        "ItemRef": item,
                        **_quantity_and_price(line),
                        **({"TaxCodeRef": {"value": code}} if code else {}),
                    },
                }
                for line, code in zip(invoice.lines, self._tax_codes(invoice), strict=True)
            ],
        }
        if invoice.due_date and name == "Invoice":
            body["DueDate"] = invoice.due_date
        return self._save(
            name, entity, body, ref, local_id=invoice.local_id, request_id=idempotency_key
        )

    def _tax_codes(self, invoice: InvoicePayload) -> list[str]:
        """The QuickBooks TaxCode id of each line (see the module docstring), "" for none."""
        return line_tax_codes(
            self.connection, invoice, setting="tax_codes", system="QuickBooks", what="tax code"
        )

    def push_payment(
        self, payment: PaymentPayload, *, ref, idempotency_key: str = ""
    ) -> PushResult:
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
        return self._save(
            "Payment", PAYMENTS, body, ref, local_id=payment.local_id, request_id=idempotency_key
        )

    def push_journal(
        self, journal: JournalPayload, *, ref, idempotency_key: str = ""
    ) -> PushResult:
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
        return self._save(
            "JournalEntry",
            JOURNALS,
            body,
            ref,
            local_id=journal.local_id,
            request_id=idempotency_key,
        )

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

    def _save(
        self, name: str, entity: str, body: dict, ref, *, local_id: str, request_id: str = ""
    ) -> PushResult:
        """Create, or update with the SyncToken we stored when we last pushed: if QuickBooks
        has a newer one it answers 5010 and we raise a conflict instead of overwriting. With
        no stored SyncToken we cannot tell whether QuickBooks' copy changed: a conflict too
        (taking its current token would overwrite blindly)."""
        if ref is not None and ref.external_id:
            sync_token = ref.external_version
            if not sync_token:
                raise ConflictFailure(
                    f"Kontor has no SyncToken for the exported QuickBooks {name}: it cannot "
                    "tell whether it changed in QuickBooks, so it is not overwritten.",
                    external_id=ref.external_id,
                    detail={"entity": name},
                )
            body = {**body, "Id": ref.external_id, "SyncToken": sync_token, "sparse": False}
        reply = self._call(
            "POST",
            f"/{name.lower()}",
            body=body,
            entity=entity,
            external_id=ref.external_id if ref is not None else "",
            local_id=local_id,
            request_id=request_id,
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
            self._mapped = account_mappings(self.connection)
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


def line_tax_codes(connection, invoice: InvoicePayload, *, setting: str, system: str, what: str):
    """The remote tax code of each line of an invoice, from the connection setting `setting`
    ({Kontor VAT rate code or rate in percent: remote code}); "" for every line when the
    invoice has no VAT and nothing is configured. A line whose rate has no code refuses the
    export (ValidationFailure naming the rate). The rate of a line is its Kontor invoice line's
    (`vat_rate_code`, `vat_rate`); for a payload that is not a Kontor invoice, the configured
    rate whose tax on the line's amount is the line's tax."""
    configured = (connection.settings or {}).get(setting) or {}
    taxed = bool(invoice.tax_total) or any(line.tax_amount for line in invoice.lines)
    if not configured and not taxed:
        return [""] * len(invoice.lines)
    by_rate: dict[Decimal, str] = {}
    for key, value in configured.items():
        try:
            by_rate.setdefault(Decimal(str(key)).normalize(), str(value))
        except ArithmeticError:
            continue
    local = _local_vat(connection, invoice)
    codes = []
    for index, line in enumerate(invoice.lines):
        rate_code, rate = local[index] if local else ("", None)
        code = configured.get(rate_code) if rate_code else None
        if code is None and rate is not None:
            code = by_rate.get(Decimal(rate).normalize())
        if code is None and rate is None:
            # Not an invoice of ours (or its lines changed): the rate whose tax on the
            # line's amount is the line's tax.
            code = next(
                (
                    by_rate[r]
                    for r in by_rate
                    if (line.amount * r / 100).quantize(CENT, ROUND_HALF_UP) == line.tax_amount
                ),
                None,
            )
        if code is None:
            shown = (
                f"{Decimal(rate).normalize():f}%"
                if rate is not None
                else (
                    f"{(line.tax_amount * 100 / line.amount).quantize(CENT):f}%"
                    if line.amount
                    else "0%"
                )
            )
            wanted = rate_code or shown.rstrip("%")
            raise ValidationFailure(
                f"No {system} {what} is mapped for VAT {rate_code or shown} "
                f"(invoice {invoice.number}, line {line.description!r}).",
                external_id="",
                detail={"missing_tax_code": wanted, "setting": setting},
                suggested_fix=(
                    f'Add it to the connection setting {setting}, e.g. {{"'
                    + wanted
                    + f'": "<{system} {what}>"}}.'
                ),
            )
        codes.append(str(code))
    return codes


def _local_vat(connection, invoice: InvoicePayload) -> list[tuple[str, Decimal]] | None:
    """(vat_rate_code, vat_rate) of the Kontor invoice's lines in payload order, or None when
    the payload is not one of this company's invoices with the same number of lines."""
    from invoicing.models import InvoiceLine

    if not str(invoice.local_id).isdigit():
        return None
    rows = list(
        InvoiceLine.objects.filter(
            invoice_id=int(invoice.local_id), invoice__company_id=connection.company_id
        )
        .order_by("serial")
        .values_list("vat_rate_code", "vat_rate")
    )
    if len(rows) != len(invoice.lines):
        return None
    return rows


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
