"""Zoho Books (API v3) connector.

Wire format, from Zoho's published API documentation:
- API host per data centre (`https://www.zohoapis.<tld>/books/v3`), accounts (OAuth) server per
  data centre; `organization_id` on every request; `Authorization: Zoho-oauthtoken <token>`
  (the HTTP client's OAuth object adds it and refreshes on 401; Zoho's refresh token does not
  rotate).
- Replies are `{"code": 0, "message": "success", ...}`; any other `code` is an error (1002
  "... does not exist", 1001 "... already exists"), with HTTP 400/401/404/429/500.
- Lists page with `page` / `per_page` (200 at most) and say `page_context.has_more_page`;
  `last_modified_time` filters to records changed since then (our incremental cursor) and
  `sort_column=created_time` keeps the order stable while records change during paging (a
  sort by modification time would move an edited record to the end and shift a neighbour past
  the page we are on).
- Timestamps look like `2026-01-05T09:00:01+0530`; a record's `last_modified_time` is its
  version: an update is refused as a conflict when the remote one differs from the version we
  stored when we last pushed it, or when we stored none (we cannot tell, so we do not
  overwrite).
- Lost replies: writes are never repeated by the HTTP client (`idempotent=False`; Zoho has no
  idempotency key). Every record carries a reference we can search for: invoices and credit
  notes their number, journals their reference, payments `KONTOR-PAY-<local id>` in
  `reference_number` (Kontor's own payment reference goes in `description`); the engine's
  `find_by_reference` finds a record whose create reply was lost before it pushes again.
- Code 1002 ("... does not exist") answering a create names something the record points at (a
  customer, an account, an invoice): a validation failure of the record, not NotFound.
- VAT: Zoho's tax ids are per organisation and would need configuring per rate; the invoice's
  VAT goes instead as one line ("VAT", quantity 1, the VAT total) on the account named by the
  connection setting `tax_account_code`, which keeps Zoho's totals and ledger equal to ours.
  Zoho's own tax reports therefore do not see that VAT (it is not a Zoho tax). An invoice with
  VAT is refused while `tax_account_code` is unset.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
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

# data centre -> (API host, accounts server)
REGIONS: dict[str, tuple[str, str]] = {
    "com": ("https://www.zohoapis.com", "https://accounts.zoho.com"),
    "eu": ("https://www.zohoapis.eu", "https://accounts.zoho.eu"),
    "in": ("https://www.zohoapis.in", "https://accounts.zoho.in"),
    "com.au": ("https://www.zohoapis.com.au", "https://accounts.zoho.com.au"),
    "jp": ("https://www.zohoapis.jp", "https://accounts.zoho.jp"),
    "ca": ("https://www.zohoapis.ca", "https://accounts.zohocloud.ca"),
}
API_PATH = "/books/v3"
PER_PAGE = 200
CURSOR_OVERLAP = timedelta(minutes=5)
NOT_FOUND_CODE = 1002
# Zoho's "not authorised" codes: an invalid/expired OAuth token (14) or no permission (57).
AUTH_CODES = {14, 57}

# our document kind -> (path, singular reply key, id field, number field)
_DOCUMENTS = {
    "invoice": ("invoices", "invoice", "invoice_id", "invoice_number"),
    "credit_note": ("creditnotes", "creditnote", "creditnote_id", "creditnote_number"),
}
# entity in Change -> (path, list key, id field), for incremental sync
_CHANGE_FEEDS = [
    (CONTACTS, "contacts", "contacts", "contact_id"),
    (INVOICES, "invoices", "invoices", "invoice_id"),
    (CREDIT_NOTES, "creditnotes", "creditnotes", "creditnote_id"),
    (PAYMENTS, "customerpayments", "customerpayments", "payment_id"),
    (JOURNALS, "journals", "journals", "journal_id"),
]


def region_hosts(settings: dict) -> tuple[str, str]:
    """(API base URL ending in /books/v3, accounts server) for a connection's settings.

    `base_url` / `accounts_url` override the data centre's hosts (tests, proxies)."""
    region = settings.get("region") or "com"
    if region not in REGIONS and not settings.get("base_url"):
        raise ValidationFailure(
            f"Unknown Zoho data centre {region!r}.",
            suggested_fix=f"Set region to one of: {', '.join(REGIONS)}.",
        )
    api_host, accounts = REGIONS.get(region, REGIONS["com"])
    api_host = (settings.get("base_url") or api_host).rstrip("/")
    accounts = (settings.get("accounts_url") or settings.get("base_url") or accounts).rstrip("/")
    return api_host + API_PATH, accounts


def zoho_timestamp(value: str | datetime | None) -> str:
    """Our cursor (ISO 8601 or Zoho's own form) as Zoho's `2026-01-05T09:00:01+0530`."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else parse_zoho_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_zoho_time(value: str) -> datetime:
    # Zoho writes the offset without a colon (+0530); fromisoformat accepts both forms.
    return datetime.fromisoformat(value.strip())


class ZohoBooksConnector(Connector):
    system = "zoho_books"
    supports = frozenset({ACCOUNTS, CONTACTS, INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})
    # find_by_reference is authoritative for every export (number, reference, KONTOR-PAY-<id>):
    # when it finds nothing, nothing was created and pushing again is safe.
    idempotent_creates = frozenset({INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})

    def __init__(self, connection, *, http):
        super().__init__(connection, http=http)
        settings = connection.settings or {}
        self.organization_id = str(settings.get("organization_id") or "")
        self._api_base = ""
        self._chart: list[dict] | None = None
        self._mapped: tuple[dict[str, str], dict[str, str]] | None = None
        self._latest: dict[str, datetime] = {}
        self._since: dict[str, str] = {}

    @property
    def api_base(self) -> str:
        """The data centre's `https://www.zohoapis.<tld>/books/v3`. Requests go to absolute
        URLs, so the shared client's `base_url` (the bare host override) does not matter."""
        if not self._api_base:
            self._api_base = region_hosts(self.connection.settings or {})[0]
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
        if not self.organization_id:
            raise ValidationFailure(
                "The Zoho Books connection has no organization_id.",
                suggested_fix="Set organization_id in the connection settings.",
            )
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content = exact_json(body)
            headers["Content-Type"] = "application/json"
        try:
            response = self.http.request(
                method,
                self.api_base + path,
                params={"organization_id": self.organization_id, **(params or {})},
                content=content,
                headers=headers,
                entity=entity,
                # A write is not repeated within one call (its reply may be lost after Zoho
                # saved it); the engine looks it up by its reference before pushing again.
                idempotent=method == "GET",
            )
        except SyncFailure as failure:
            # The HTTP client raises for what it gave up on; add the record it was about.
            if external_id and not failure.external_id:
                failure.external_id = external_id
            raise
        return self._reply(response, external_id=external_id)

    def _reply(self, response: httpx.Response, *, external_id: str = "") -> dict:
        status = response.status_code
        payload = reply_object(response, source="Zoho Books", external_id=external_id)
        code = payload.get("code")
        if status < 300 and code == 0:
            return payload
        raise _failure(status, payload, response, external_id=external_id)

    def _pages(self, path: str, key: str, params: dict, entity: str):
        """Every record of a list (for lookups and the change feed)."""
        page = 1
        while True:
            reply = self._call(
                "GET", path, params={**params, "page": page, "per_page": PER_PAGE}, entity=entity
            )
            yield from reply.get(key) or []
            if not (reply.get("page_context") or {}).get("has_more_page"):
                return
            page += 1

    # --- contract ----------------------------------------------------------------------------
    def test_connection(self) -> dict:
        started = time.monotonic()
        try:
            reply = self._call("GET", f"/organizations/{self.organization_id}")
        except SyncFailure as failure:
            return {
                "success": False,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "version": "",
                "message": failure.message,
            }
        org = reply.get("organization") or {}
        return {
            "success": True,
            "latency_ms": int((time.monotonic() - started) * 1000),
            "version": "Zoho Books API v3",
            "message": f"Connected to {org.get('name', 'the organisation')} "
            f"({org.get('currency_code', '')}).".replace(" ()", ""),
        }

    def fetch_accounts(self, *, cursor=None, since=None) -> Page[ExternalAccount]:
        page = int(cursor or 1)
        params: dict[str, Any] = {"page": page, "per_page": PER_PAGE}
        if since:
            params |= {"last_modified_time": zoho_timestamp(since)}
        reply = self._call("GET", "/chartofaccounts", params=params, entity=ACCOUNTS)
        items = [_account(row) for row in reply.get("chartofaccounts") or []]
        self._note(ACCOUNTS, since, [a.version for a in items])
        more = (reply.get("page_context") or {}).get("has_more_page")
        return Page(items=items, next_cursor=str(page + 1) if more else None)

    def fetch_contacts(self, *, cursor=None, since=None) -> Page[ExternalContact]:
        page = int(cursor or 1)
        params: dict[str, Any] = {
            "page": page,
            "per_page": PER_PAGE,
            "sort_column": "created_time",
        }
        if since:
            params["last_modified_time"] = zoho_timestamp(since)
        reply = self._call("GET", "/contacts", params=params, entity=CONTACTS)
        items = [_contact(row) for row in reply.get("contacts") or []]
        self._note(CONTACTS, since, [c.version for c in items])
        more = (reply.get("page_context") or {}).get("has_more_page")
        return Page(items=items, next_cursor=str(page + 1) if more else None)

    def fetch_contact(self, external_id: str) -> ExternalContact:
        reply = self._call(
            "GET", f"/contacts/{external_id}", entity=CONTACTS, external_id=external_id
        )
        return _contact(reply.get("contact") or {})

    def fetch_invoice(self, external_id: str) -> Change:
        """An invoice's current state (webhook re-fetch): its version (`last_modified_time`)
        tells whether it changed in Zoho after we exported it."""
        reply = self._call(
            "GET", f"/invoices/{external_id}", entity=INVOICES, external_id=external_id
        )
        row = reply.get("invoice") or {}
        return Change(
            entity=INVOICES,
            external_id=str(row.get("invoice_id", external_id)),
            operation="delete" if row.get("status") == "void" else "update",
            version=row.get("last_modified_time", ""),
        )

    def fetch_changes(self, *, since: str | None) -> tuple[list[Change], str]:
        """Records changed since the cursor in each list Zoho can filter by
        `last_modified_time`; the new cursor is the latest `last_modified_time` seen. Zoho lists
        do not show deleted records, so deletions are not reported."""
        changes: list[Change] = []
        latest = parse_zoho_time(since) if since else None
        params: dict[str, Any] = {"sort_column": "created_time"}
        if since:
            params["last_modified_time"] = zoho_timestamp(since)
        for entity, path, key, id_field in _CHANGE_FEEDS:
            for row in self._pages(f"/{path}", key, params, entity):
                version = row.get("last_modified_time", "")
                created = row.get("created_time", "")
                changes.append(
                    Change(
                        entity=entity,
                        external_id=str(row[id_field]),
                        operation="create" if created and created == version else "update",
                        version=version,
                    )
                )
                if version:
                    moment = parse_zoho_time(version)
                    latest = moment if latest is None or moment > latest else latest
        return changes, (latest.isoformat() if latest else (since or ""))

    def find_by_reference(self, entity: str, local_id: str, number: str = ""):
        """A record pushed before whose reply was lost, found by its number (invoices, credit
        notes), its reference (journals) or `KONTOR-PAY-<local id>` (payments)."""
        searches = {
            "invoice": ("invoices", "invoice_id", "invoice_number"),
            "credit_note": ("creditnotes", "creditnote_id", "creditnote_number"),
            "payment": ("customerpayments", "payment_id", "reference_number"),
            "journal": ("journals", "journal_id", "reference_number"),
        }
        singular = _SINGULAR.get(entity, entity)
        if singular == "payment":
            number = payment_reference(local_id)
        if not number or singular not in searches:
            return None
        path, id_field, number_field = searches[singular]
        reply = self._call("GET", f"/{path}", params={number_field: number}, entity=entity)
        rows = [row for row in reply.get(path) or [] if row.get(number_field) == number]
        if not rows:
            return None
        row = rows[0]
        return PushResult(external_id=str(row[id_field]), version=row.get("last_modified_time", ""))

    def import_since(self, entity: str, versions: list[str], started_iso: str) -> str:
        """The next import's cursor (the engine's hook): the latest `last_modified_time` this
        import saw, on Zoho's clock so our clock's skew cannot skip a change, less a short
        overlap; the cursor it started from when nothing came back; the run's start on a
        first, empty import."""
        return _cursor_after(self._latest.get(entity), self._since.get(entity), started_iso)

    def push_invoice(self, invoice: InvoicePayload, *, ref) -> PushResult:
        path, key, id_field, number_field = _DOCUMENTS[invoice.kind]
        entity = INVOICES if invoice.kind == "invoice" else CREDIT_NOTES
        lines = [
            {
                "description": line.description,
                **_rate_and_quantity(line),
                "account_id": self._account_id(line.account_code, line.account_name),
            }
            for line in invoice.lines
        ]
        if invoice.tax_total:
            lines.append(self._tax_line(invoice.tax_total))
        date_field = "date"
        body: dict[str, Any] = {
            "customer_id": invoice.contact_external_id or self._contact_id(invoice.contact_name),
            number_field: invoice.number,
            date_field: invoice.date,
            "reference_number": invoice.reference or invoice.number,
            "line_items": lines,
        }
        if invoice.due_date and invoice.kind == "invoice":
            body["due_date"] = invoice.due_date
        return self._save(path, key, id_field, entity, body, ref, number=True)

    def push_payment(self, payment: PaymentPayload, *, ref) -> PushResult:
        invoice = self._call(
            "GET",
            f"/invoices/{payment.invoice_external_id}",
            entity=PAYMENTS,
            external_id=payment.invoice_external_id,
        ).get("invoice", {})
        body = {
            "customer_id": invoice.get("customer_id"),
            "payment_mode": "banktransfer",
            "amount": payment.amount,
            "date": payment.date,
            "reference_number": payment_reference(payment.local_id),
            "description": " ".join(
                part for part in (payment.reference, payment.invoice_number) if part
            ),
            "account_id": self._account_id(payment.account_code, payment.account_name),
            "invoices": [
                {"invoice_id": payment.invoice_external_id, "amount_applied": payment.amount}
            ],
        }
        return self._save("customerpayments", "payment", "payment_id", PAYMENTS, body, ref)

    def push_journal(self, journal: JournalPayload, *, ref) -> PushResult:
        body = {
            "journal_date": journal.date,
            "reference_number": journal.reference,
            "notes": journal.memo or journal.reference,
            "line_items": [
                {
                    "account_id": self._account_id(line.account_code, line.account_name),
                    "debit_or_credit": "debit" if line.debit else "credit",
                    "amount": line.amount,
                    "description": line.description,
                }
                for line in journal.lines
            ],
        }
        return self._save("journals", "journal", "journal_id", JOURNALS, body, ref)

    # --- helpers -----------------------------------------------------------------------------
    def _note(self, entity: str, since, versions: list[str]) -> None:
        """Remember, for `import_since`, where this import started and the latest change seen."""
        self._since[entity] = zoho_timestamp(since) if since else ""
        for version in versions:
            if version:
                moment = parse_zoho_time(version)
                latest = self._latest.get(entity)
                self._latest[entity] = moment if latest is None or moment > latest else latest

    def _save(self, path, key, id_field, entity, body, ref, *, number=False) -> PushResult:
        """Create, or update the record `ref` points at, unless it changed in Zoho since we
        last pushed it (then a conflict: never overwritten)."""
        if ref is not None and ref.external_id:
            current = self._call(
                "GET", f"/{path}/{ref.external_id}", entity=entity, external_id=ref.external_id
            ).get(key, {})
            remote_version = current.get("last_modified_time", "")
            if not ref.external_version:
                raise ConflictFailure(
                    f"Kontor has no stored version of the exported {key}: it cannot tell "
                    "whether it changed in Zoho Books, so it is not overwritten.",
                    external_id=ref.external_id,
                    detail={"remote_version": remote_version},
                )
            if remote_version != ref.external_version:
                raise ConflictFailure(
                    f"The {key} was changed in Zoho Books after Kontor last exported it "
                    f"(remote version {remote_version}, ours {ref.external_version}).",
                    external_id=ref.external_id,
                    detail={"remote_version": remote_version, "our_version": ref.external_version},
                )
            reply = self._call(
                "PUT",
                f"/{path}/{ref.external_id}",
                body=body,
                entity=entity,
                external_id=ref.external_id,
            )
        else:
            params = {"ignore_auto_number_generation": "true"} if number else None
            try:
                reply = self._call("POST", f"/{path}", params=params, body=body, entity=entity)
            except NotFound as failure:
                # 1002 on a create: something the record points at does not exist.
                raise ValidationFailure(
                    failure.message,
                    detail=failure.detail,
                    suggested_fix="Export or map what the record refers to (customer, account, "
                    "invoice), then retry.",
                ) from failure
        record = reply.get(key) or {}
        if id_field not in record:
            raise MalformedReply(f"Zoho Books did not return the saved {key}.", detail={"key": key})
        return PushResult(
            external_id=str(record[id_field]), version=record.get("last_modified_time", "")
        )

    def _contact_id(self, name: str) -> str:
        """The Zoho contact of that name, created when there is none."""
        reply = self._call("GET", "/contacts", params={"contact_name": name}, entity=CONTACTS)
        rows = reply.get("contacts") or []
        if rows:
            return str(rows[0]["contact_id"])
        created = self._call(
            "POST",
            "/contacts",
            body={"contact_name": name, "contact_type": "customer"},
            entity=CONTACTS,
        )
        return str(created["contact"]["contact_id"])

    def _tax_line(self, amount: Decimal) -> dict:
        """VAT goes to Zoho as its own line on the account named by `tax_account_code`: a
        Zoho tax id would have to be configured per organisation, an account keeps the totals
        and the ledger right without one."""
        code = (self.connection.settings or {}).get("tax_account_code")
        if not code:
            raise ValidationFailure(
                "The invoice carries VAT but the connection has no tax_account_code.",
                suggested_fix="Set tax_account_code (the Zoho account VAT is posted to) in the "
                "connection settings.",
            )
        return {
            "description": "VAT",
            "rate": amount,
            "quantity": Decimal(1),
            "account_id": self._account_id(code, ""),
        }

    def _account_id(self, code: str, name: str) -> str:
        """The Zoho account id for a line's account. The sync engine sends the Zoho code and
        name of a mapped account (else the Kontor code and name): look it up in the imported
        chart (AccountMapping) by code, then by name, then in Zoho's chart itself."""
        if self._mapped is None:
            self._mapped = account_mappings(self.connection)
        by_code, by_name = self._mapped
        account_id = (code and by_code.get(code)) or (name and by_name.get(name))
        if account_id:
            return account_id
        if self._chart is None:
            self._chart = list(self._pages("/chartofaccounts", "chartofaccounts", {}, ACCOUNTS))
        for field_name, wanted in (("account_code", code), ("account_name", name)):
            for row in self._chart:
                if wanted and row.get(field_name) == wanted:
                    return str(row["account_id"])
        raise ValidationFailure(
            f"No Zoho Books account for Kontor account {code} {name}.".strip(),
            suggested_fix="Import the Zoho chart of accounts and map this account.",
            detail={"account_code": code},
        )


_SINGULAR = {
    INVOICES: "invoice",
    CREDIT_NOTES: "credit_note",
    PAYMENTS: "payment",
    JOURNALS: "journal",
}


def payment_reference(local_id: str) -> str:
    """The reference a Kontor payment carries in Zoho (searchable, unique per payment)."""
    return f"KONTOR-PAY-{local_id}"


def _rate_and_quantity(line) -> dict[str, Decimal]:
    """Zoho computes a line as rate x quantity: send the unit price and quantity when they
    give the line's amount, else the amount as one unit (a discounted line), so Zoho's total
    is ours."""
    if line.quantity and line.unit_price is not None:
        product = (line.quantity * line.unit_price).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if product == line.amount:
            return {"rate": line.unit_price, "quantity": line.quantity}
    return {"rate": line.amount, "quantity": Decimal(1)}


def _cursor_after(latest: datetime | None, since: str, started_iso: str) -> str:
    if latest is not None:
        # Step back a little: a record edited while the import paged past it may carry a stamp
        # older than the latest one seen. Re-reading the overlap costs nothing (the engine
        # skips records whose hash is unchanged).
        return (latest - CURSOR_OVERLAP).isoformat()
    if since:
        return parse_zoho_time(since).isoformat()
    return started_iso


def _failure(status: int, payload: dict, response: httpx.Response, *, external_id: str):
    code = payload.get("code")
    message = str(payload.get("message") or f"HTTP {status}")
    detail = {"status": status, "code": code, "message": message[:500]}
    text = f"Zoho Books: {message}"
    if code == NOT_FOUND_CODE or status == 404:
        return NotFound(text, detail=detail, external_id=external_id)
    if status == 401 or code in AUTH_CODES:
        return AuthFailure(text, detail=detail, external_id=external_id)
    if status == 429:
        retry_after = response.headers.get("Retry-After")
        return RateLimited(
            text,
            detail=detail,
            external_id=external_id,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if status >= 500:
        return ServerFailure(text, detail=detail, external_id=external_id)
    return ValidationFailure(text, detail=detail, external_id=external_id)


def _contact(row: dict) -> ExternalContact:
    version = row.get("last_modified_time", "")
    return ExternalContact(
        external_id=str(row.get("contact_id", "")),
        name=row.get("contact_name") or row.get("company_name") or "",
        email=row.get("email") or "",
        phone=row.get("phone") or row.get("mobile") or "",
        tax_id=row.get("tax_reg_no") or row.get("gst_no") or row.get("vat_reg_no") or "",
        kind="vendor" if row.get("contact_type") == "vendor" else "customer",
        address=_address(row.get("billing_address")),
        version=version,
        updated_at=parse_zoho_time(version) if version else None,
    )


def _address(value) -> str:
    if not isinstance(value, dict):
        return ""
    parts = [value.get(k) for k in ("address", "street2", "city", "state", "zip", "country")]
    return ", ".join(p for p in parts if p)


def _account(row: dict) -> ExternalAccount:
    return ExternalAccount(
        external_id=str(row.get("account_id", "")),
        code=row.get("account_code") or "",
        name=row.get("account_name") or "",
        type=row.get("account_type") or "",
        parent_id=str(row.get("parent_account_id") or ""),
        active=bool(row.get("is_active", True)),
        version=row.get("last_modified_time", ""),
    )
