"""Xero: the Accounting API 2.0 over the shared HTTP client.

- Every API call carries `xero-tenant-id` (the organisation chosen at connect time, kept in
  `connection.settings["tenant_id"]`); `GET /connections` lists the organisations the token may
  reach and is the connection test.
- OAuth2 with `offline_access`: access tokens last 30 minutes, refresh tokens are single-use and
  rotate on every refresh. The HTTP client's auth (accounting.integrations.oauth) refreshes on a
  401 once and stores the newest pair atomically; a reused refresh token answers invalid_grant
  and marks the connection as needing re-authorisation.
- Limits per organisation: 60 calls a minute, 5 at once, 5,000 a day. The shared limiter keeps
  us under them; Xero's own counters (`X-MinLimit-Remaining`, `X-DayLimit-Remaining`) are read
  from every reply and, near zero, the connector pauses (minute) or stops with RateLimited
  (day) instead of provoking 429s; a 429 with or without `Retry-After` is retried by the client.
- Contacts page by `page` (100 a page); `If-Modified-Since` gives the incremental feed.
- Invoices are `Type: ACCREC`, credit notes `CreditNotes` with `Type: ACCRECCREDIT`, journals
  `ManualJournals` (positive LineAmount = debit), payments `PUT /Payments` (Xero cannot edit a
  payment: a re-export of an exported one checks it still exists and returns it).
- A record exported before is updated by its id (POST to `/<Entity>/<id>`) only when Xero's
  `UpdatedDateUTC` still equals the version we stored; otherwise it changed in Xero too and the
  export stops with ConflictFailure (never overwritten). No stored version at all is a conflict
  too: we cannot tell whether it changed there.
- Writes are never repeated inside one call (`idempotent=False`: a timeout or a 500 after Xero
  saved the record would create it twice) and carry an `Idempotency-Key` (a hash of the
  company, the connection, the entity, our local id and the body): when a create's reply was
  lost, the engine's next attempt sends the same key (the engine's `idempotency_key`, stable
  across attempts, when it passes one) and Xero answers with the record it already created.
  Invoices and credit notes are also found by their number.
- Amounts leave as exact decimals (never through float): LineAmount to the cent, Quantity and
  UnitAmount to 4 places with `unitdp=4`. Xero computes Quantity x UnitAmount and refuses a
  LineAmount that differs, so a line whose quantity x price (half up to the cent) is not its
  amount (a discount, a rounded price) goes as Quantity 1 and UnitAmount = its amount.
- VAT: `TaxAmount` carries our figure on every line (Xero takes it over its own computation).
  With the connection setting `tax_types`, keyed like QuickBooks' `tax_codes` (a Kontor VAT
  rate code or a rate in percent -> a Xero TaxType such as "OUTPUT" or "TAX002"), each line
  names its TaxType and a line whose rate has no mapping refuses the export with a
  ValidationFailure naming the rate. Without `tax_types` no TaxType is sent and Xero applies the
  line account's default tax rate (Xero refuses a TaxAmount under a 0% rate, so a wrong
  default shows up as a validation error, never as silently different VAT).
- Contacts page in a stable order (`order=ContactID ASC`): an edit made while an import pages
  does not move a contact across pages (Xero's default order is not stable under edits).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from accounting.integrations.connectors._common import exact_json
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
from accounting.integrations.connectors.quickbooks import line_tax_codes

API_HOST = "https://api.xero.com"  # the API and /connections; settings["base_url"] overrides
API = "/api.xro/2.0"
PAGE_SIZE = 100
API_VERSION = "2.0"
# Pause when Xero says this few calls are left in its current minute: the minute counter
# resets within 60 s, so a short sleep lets it roll over instead of earning a 429.
MIN_LIMIT_LOW_WATER = 2
MIN_LIMIT_PAUSE_SECONDS = 10.0
DAY_LIMIT_RETRY_AFTER = 3600.0

_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def parse_xero_datetime(value: str | None) -> datetime | None:
    """`/Date(1573755038314+0000)/` (JSON) or ISO 8601 -> aware UTC datetime."""
    if not value:
        return None
    match = _DATE.search(value)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _since_header(since: str | datetime | None) -> dict[str, str]:
    """If-Modified-Since as Xero takes it: a UTC timestamp `yyyy-mm-ddThh:mm:ss`."""
    if not since:
        return {}
    moment = since if isinstance(since, datetime) else parse_xero_datetime(str(since))
    if moment is None:
        return {}
    return {"If-Modified-Since": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")}


CENT = Decimal("0.01")
UNIT = Decimal("0.0001")  # unitdp=4


def _amount(value: Decimal | None, places: Decimal = CENT) -> Decimal | None:
    """An exact decimal (half up) for the JSON body; `exact_json` writes it as a JSON number."""
    if value is None:
        return None
    return Decimal(value).quantize(places, ROUND_HALF_UP)


def _line_quantities(line) -> tuple[Decimal, Decimal]:
    """(Quantity, UnitAmount) whose product, half up to the cent, is the line's amount."""
    amount = _amount(line.amount)
    if line.quantity is not None and line.unit_price is not None and line.quantity:
        quantity = _amount(line.quantity, UNIT)
        price = _amount(line.unit_price, UNIT)
        exact = quantity == line.quantity and price == line.unit_price
        if exact and (quantity * price).quantize(CENT, ROUND_HALF_UP) == amount:
            return quantity, price
    return Decimal("1"), amount


class XeroConnector(Connector):
    system = "xero"
    supports = frozenset({ACCOUNTS, CONTACTS, INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})
    # Every write carries an Idempotency-Key (the engine's when it gives one).
    idempotent_creates = frozenset({INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})

    def __init__(self, connection, *, http, sleep: Callable[[float], None] = time.sleep):
        super().__init__(connection, http=http)
        self.sleep = sleep
        self.min_remaining: int | None = None
        self.day_remaining: int | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def tenant_id(self) -> str:
        return str((self.connection.settings or {}).get("tenant_id", ""))

    def _call(
        self,
        method: str,
        path: str,
        *,
        entity: str = "",
        params: dict | None = None,
        json_body: Any = None,
        headers: dict | None = None,
        tenant: bool = True,
        external_id: str = "",
        local_id: str = "",
        idem_key: str = "",
    ) -> Any:
        """One call; returns the decoded JSON body or raises the matching SyncFailure. A write
        carries an Idempotency-Key and is not repeated by the client (see the docstring)."""
        self._respect_limits()
        all_headers = {"Accept": "application/json", **(headers or {})}
        content = None
        if json_body is not None:
            content = exact_json(json_body, sort_keys=True)
            all_headers["Content-Type"] = "application/json"
            all_headers["Idempotency-Key"] = idem_key or self.idempotency_key(
                path, local_id, content
            )
        if tenant:
            if not self.tenant_id:
                raise AuthFailure(
                    "No Xero organisation is chosen for this connection.",
                    suggested_fix="Reconnect and choose the organisation (tenant).",
                )
            all_headers["xero-tenant-id"] = self.tenant_id
        url = path if getattr(self.http, "base_url", "") else f"{API_HOST}{path}"
        try:
            response = self.http.request(
                method,
                url,
                params=params,
                content=content,
                headers=all_headers,
                entity=entity,
                idempotent=method == "GET",
            )
        except SyncFailure as failure:
            if not failure.external_id and external_id:
                failure.external_id = external_id
            raise
        self._read_limits(response)
        if response.status_code >= 400:
            raise self._failure(response, external_id=external_id)
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError) as exc:
            raise MalformedReply(
                f"Xero's reply to {method} {path.rsplit('/', 1)[-1]} is not JSON.",
                external_id=external_id,
                detail={"status": response.status_code, "body": response.text[:200]},
            ) from exc

    def idempotency_key(self, path: str, local_id: str, content: bytes) -> str:
        """The same record and body give the same key (Xero replays the first answer)."""
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
        return f"kontor-{digest}"

    def _read_limits(self, response: httpx.Response) -> None:
        for header, attr in (
            ("X-MinLimit-Remaining", "min_remaining"),
            ("X-DayLimit-Remaining", "day_remaining"),
        ):
            value = response.headers.get(header)
            if value is not None and value.strip().lstrip("-").isdigit():
                setattr(self, attr, int(value))

    def _respect_limits(self) -> None:
        if self.day_remaining is not None and self.day_remaining <= 0:
            raise RateLimited(
                "Xero's daily call limit for this organisation is used up.",
                retry_after=DAY_LIMIT_RETRY_AFTER,
                detail={"limit": "day"},
            )
        if self.min_remaining is not None and self.min_remaining <= MIN_LIMIT_LOW_WATER:
            self.sleep(MIN_LIMIT_PAUSE_SECONDS)
            self.min_remaining = None  # unknown until the next reply tells us

    def _failure(self, response: httpx.Response, *, external_id: str = "") -> SyncFailure:
        status = response.status_code
        body: Any
        try:
            body = response.json()
        except ValueError:
            body = None
        detail: dict[str, Any] = {"status": status}
        if status == 400 and isinstance(body, dict) and body.get("Type") == "ValidationException":
            messages = [
                error.get("Message", "")
                for element in body.get("Elements") or []
                for error in element.get("ValidationErrors") or []
            ]
            detail["errors"] = messages
            return ValidationFailure(
                "Xero refused the record: " + ("; ".join(messages) or body.get("Message", "")),
                external_id=external_id,
                detail=detail,
            )
        problem = body.get("Detail", "") if isinstance(body, dict) else ""
        if problem:
            detail["detail"] = str(problem)[:200]
        if status == 401:
            return AuthFailure(
                "Xero did not accept the access token"
                + (" (expired)." if "TokenExpired" in str(problem) else "."),
                external_id=external_id,
                detail=detail,
            )
        if status == 403:
            return AuthFailure(
                "Xero refused access to this organisation (tenant).",
                external_id=external_id,
                detail=detail,
                suggested_fix="Reconnect Xero and grant access to the organisation again.",
            )
        if status == 404:
            return NotFound("Xero has no such record.", external_id=external_id, detail=detail)
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            detail["problem"] = response.headers.get("X-Rate-Limit-Problem", "")
            return RateLimited(
                "Xero's rate limit was reached.",
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                external_id=external_id,
                detail=detail,
            )
        if status >= 500:
            return ServerFailure(
                f"Xero failed with HTTP {status}.", external_id=external_id, detail=detail
            )
        return ValidationFailure(
            f"Xero refused the request with HTTP {status}.", external_id=external_id, detail=detail
        )

    @staticmethod
    def _rows(reply: Any, key: str) -> list[dict]:
        if not isinstance(reply, dict) or not isinstance(reply.get(key), list):
            raise MalformedReply(f"Xero's reply has no {key} list.")
        return reply[key]

    # ------------------------------------------------------------------ test and read
    def test_connection(self) -> dict:
        started = time.monotonic()
        try:
            tenants = self._call("GET", "/connections", entity="test", tenant=False)
        except SyncFailure as failure:
            return {
                "success": False,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "version": API_VERSION,
                "message": failure.message,
            }
        latency = int((time.monotonic() - started) * 1000)
        if not isinstance(tenants, list):
            return {
                "success": False,
                "latency_ms": latency,
                "version": API_VERSION,
                "message": "Xero's connection list is not in the expected format.",
            }
        match = next((t for t in tenants if t.get("tenantId") == self.tenant_id), None)
        if match is None:
            return {
                "success": False,
                "latency_ms": latency,
                "version": API_VERSION,
                "message": "The chosen Xero organisation is no longer connected to Kontor; "
                "reconnect and choose it again.",
            }
        return {
            "success": True,
            "latency_ms": latency,
            "version": API_VERSION,
            "message": f"Connected to {match.get('tenantName') or 'the organisation'}.",
        }

    def fetch_accounts(self, *, cursor=None, since=None) -> Page[ExternalAccount]:
        reply = self._call("GET", f"{API}/Accounts", entity=ACCOUNTS, headers=_since_header(since))
        accounts = [
            ExternalAccount(
                external_id=row["AccountID"],
                code=row.get("Code", "") or "",
                name=row.get("Name", ""),
                type=row.get("Type", ""),
                active=row.get("Status", "ACTIVE") == "ACTIVE",
                version=row.get("UpdatedDateUTC", ""),
            )
            for row in self._rows(reply, "Accounts")
        ]
        return Page(items=accounts, next_cursor=None)  # Xero returns the whole chart at once

    def fetch_contacts(self, *, cursor=None, since=None) -> Page[ExternalContact]:
        page = int(cursor or 1)
        reply = self._call(
            "GET",
            f"{API}/Contacts",
            entity=CONTACTS,
            params={"page": page, "order": "ContactID ASC"},
            headers=_since_header(since),
        )
        rows = self._rows(reply, "Contacts")
        return Page(
            items=[self._contact(row) for row in rows],
            next_cursor=str(page + 1) if len(rows) >= PAGE_SIZE else None,
        )

    def fetch_contact(self, external_id: str) -> ExternalContact:
        reply = self._call(
            "GET", f"{API}/Contacts/{external_id}", entity=CONTACTS, external_id=external_id
        )
        rows = self._rows(reply, "Contacts")
        if not rows:
            raise NotFound("Xero has no such contact.", external_id=external_id)
        return self._contact(rows[0])

    def fetch_invoice(self, external_id: str) -> Change:
        """The invoice's current state as a Change (webhook re-fetch): its version
        (UpdatedDateUTC) tells whether it changed in Xero after we exported it."""
        reply = self._call(
            "GET", f"{API}/Invoices/{external_id}", entity=INVOICES, external_id=external_id
        )
        rows = self._rows(reply, "Invoices")
        if not rows:
            raise NotFound("Xero has no such invoice.", external_id=external_id)
        row = rows[0]
        return Change(
            entity=INVOICES,
            external_id=row.get("InvoiceID", external_id),
            operation="delete" if row.get("Status") in ("DELETED", "VOIDED") else "update",
            version=row.get("UpdatedDateUTC", ""),
        )

    @staticmethod
    def _contact(row: dict) -> ExternalContact:
        customer, supplier = bool(row.get("IsCustomer")), bool(row.get("IsSupplier"))
        kind = "both" if customer and supplier else "vendor" if supplier else "customer"
        phone = next(
            (
                " ".join(
                    part
                    for part in (
                        p.get("PhoneCountryCode", ""),
                        p.get("PhoneAreaCode", ""),
                        p.get("PhoneNumber", ""),
                    )
                    if part
                )
                for p in row.get("Phones") or []
                if p.get("PhoneNumber")
            ),
            "",
        )
        address = next(
            (
                ", ".join(
                    a.get(part, "")
                    for part in ("AddressLine1", "AddressLine2", "City", "PostalCode", "Country")
                    if a.get(part)
                )
                for a in row.get("Addresses") or []
                if a.get("AddressLine1") or a.get("City")
            ),
            "",
        )
        return ExternalContact(
            external_id=row["ContactID"],
            name=row.get("Name", ""),
            email=row.get("EmailAddress", "") or "",
            phone=phone,
            tax_id=row.get("TaxNumber", "") or "",
            kind=kind,
            address=address,
            version=row.get("UpdatedDateUTC", ""),
            updated_at=parse_xero_datetime(row.get("UpdatedDateUTC")),
        )

    def fetch_changes(self, *, since: str | None) -> tuple[list[Change], str]:
        """Contacts and invoices modified since the cursor (If-Modified-Since, all pages). The
        new cursor is the latest UpdatedDateUTC seen, to the second (Xero's precision): a
        record changed within that second comes again next time, which the engine absorbs."""
        headers = _since_header(since)
        changes: list[Change] = []
        latest = parse_xero_datetime(since) if since else None
        for entity, path, key, id_field, deleted in (
            (CONTACTS, "Contacts", "Contacts", "ContactID", {"ARCHIVED"}),
            (INVOICES, "Invoices", "Invoices", "InvoiceID", {"DELETED", "VOIDED"}),
        ):
            page = 1
            while True:
                reply = self._call(
                    "GET",
                    f"{API}/{path}",
                    entity=entity,
                    params={"page": page, "order": f"{id_field} ASC"},
                    headers=headers,
                )
                rows = self._rows(reply, key)
                for row in rows:
                    status = row.get("ContactStatus") or row.get("Status") or ""
                    changes.append(
                        Change(
                            entity=entity,
                            external_id=row[id_field],
                            operation="delete" if status in deleted else "update",
                            version=row.get("UpdatedDateUTC", ""),
                        )
                    )
                    moment = parse_xero_datetime(row.get("UpdatedDateUTC"))
                    if moment and (latest is None or moment > latest):
                        latest = moment
                if len(rows) < PAGE_SIZE:
                    break
                page += 1
        cursor = latest.strftime("%Y-%m-%dT%H:%M:%S") if latest else (since or "")
        return changes, cursor

    def import_since(self, entity: str, versions: list[str], started_iso: str) -> str:
        """The next incremental cursor after a complete import: the latest UpdatedDateUTC seen,
        in Xero's own clock (our clock may run ahead of Xero's, and a cursor from it could skip
        changes), to the second as If-Modified-Since takes it; unchanged when nothing came."""
        previous = (self.connection.cursors or {}).get(entity) or ""
        seen = [moment for moment in map(parse_xero_datetime, versions) if moment is not None]
        if not seen:
            return previous
        latest = max(seen)
        before = parse_xero_datetime(previous)
        if before is not None and before > latest:
            return previous
        return latest.strftime("%Y-%m-%dT%H:%M:%S")

    # ------------------------------------------------------------------ export
    def _check_version(self, path: str, key: str, ref, *, entity: str) -> None:
        """Refuse to overwrite a record someone changed in Xero after our last export."""
        reply = self._call(
            "GET", f"{API}/{path}/{ref.external_id}", entity=entity, external_id=ref.external_id
        )
        rows = self._rows(reply, key)
        remote = rows[0].get("UpdatedDateUTC", "") if rows else ""
        if not ref.external_version:
            raise ConflictFailure(
                "Kontor has no stored version of the exported Xero record: it cannot tell "
                "whether it changed in Xero, so it is not overwritten.",
                external_id=ref.external_id,
                detail={"theirs": remote},
            )
        if remote != ref.external_version:
            raise ConflictFailure(
                "The record changed in Xero after Kontor exported it.",
                external_id=ref.external_id,
                detail={"ours": ref.external_version, "theirs": remote},
            )

    def _post_one(
        self,
        path: str,
        key: str,
        item: dict,
        *,
        entity: str,
        local_id: str,
        external_id: str = "",
        method: str = "POST",
        params: dict | None = None,
        idem_key: str = "",
    ) -> PushResult:
        target = f"{API}/{path}/{external_id}" if external_id else f"{API}/{path}"
        reply = self._call(
            method,
            target,
            entity=entity,
            json_body={key: [item]},
            external_id=external_id,
            local_id=local_id,
            params=params,
            idem_key=idem_key,
        )
        rows = self._rows(reply, key)
        if not rows:
            raise MalformedReply(f"Xero's reply has no {key[:-1]}.", external_id=external_id)
        id_field = {
            "Invoices": "InvoiceID",
            "CreditNotes": "CreditNoteID",
            "Payments": "PaymentID",
            "ManualJournals": "ManualJournalID",
        }[key]
        return PushResult(external_id=rows[0][id_field], version=rows[0].get("UpdatedDateUTC", ""))

    def push_invoice(
        self, invoice: InvoicePayload, *, ref, idempotency_key: str = ""
    ) -> PushResult:
        credit = invoice.kind == "credit_note"
        path = "CreditNotes" if credit else "Invoices"
        entity = CREDIT_NOTES if credit else INVOICES
        tax_types = (
            line_tax_codes(
                self.connection, invoice, setting="tax_types", system="Xero", what="tax type"
            )
            if (self.connection.settings or {}).get("tax_types")
            else [""] * len(invoice.lines)
        )
        item: dict[str, Any] = {
            "Type": "ACCRECCREDIT" if credit else "ACCREC",
            "Contact": (
                {"ContactID": invoice.contact_external_id}
                if invoice.contact_external_id
                else {"Name": invoice.contact_name}
            ),
            "Date": invoice.date.isoformat(),
            "CurrencyCode": invoice.currency,
            "LineAmountTypes": "Exclusive",
            "Status": "AUTHORISED",
            "Reference": invoice.reference or "",
            "LineItems": [
                {
                    "Description": line.description,
                    "Quantity": quantity,
                    "UnitAmount": price,
                    "AccountCode": line.account_code,
                    **({"TaxType": tax_type} if tax_type else {}),
                    "TaxAmount": _amount(line.tax_amount),
                    "LineAmount": _amount(line.amount),
                }
                for line, tax_type in zip(invoice.lines, tax_types, strict=True)
                for quantity, price in [_line_quantities(line)]
            ],
        }
        if credit:
            item["CreditNoteNumber"] = invoice.number
        else:
            item["InvoiceNumber"] = invoice.number
            item["DueDate"] = (invoice.due_date or invoice.date).isoformat()
        options = {
            "entity": entity,
            "local_id": invoice.local_id,
            "params": {"unitdp": 4},
            "idem_key": idempotency_key,
        }
        if ref is not None and ref.external_id:
            self._check_version(path, path, ref, entity=entity)
            # The version we update from is part of the key: an edit back to an earlier body
            # is a new request, not a replay of the first update.
            options["local_id"] = f"{invoice.local_id}@{ref.external_version}"
            return self._post_one(path, path, item, external_id=ref.external_id, **options)
        return self._post_one(path, path, item, **options)

    def push_payment(
        self, payment: PaymentPayload, *, ref, idempotency_key: str = ""
    ) -> PushResult:
        if ref is not None and ref.external_id:
            # Xero cannot edit a payment (only delete it): an exported one stays as it is.
            reply = self._call(
                "GET",
                f"{API}/Payments/{ref.external_id}",
                entity=PAYMENTS,
                external_id=ref.external_id,
            )
            rows = self._rows(reply, "Payments")
            if not rows or rows[0].get("Status") == "DELETED":
                raise NotFound("The payment was deleted in Xero.", external_id=ref.external_id)
            return PushResult(ref.external_id, rows[0].get("UpdatedDateUTC", ""))
        item = {
            "Invoice": {"InvoiceID": payment.invoice_external_id},
            "Account": {"Code": payment.account_code},
            "Date": payment.date.isoformat(),
            "Amount": _amount(payment.amount),
            "Reference": payment.reference or payment.local_id,
        }
        return self._post_one(
            "Payments",
            "Payments",
            item,
            entity=PAYMENTS,
            local_id=payment.local_id,
            method="PUT",
            idem_key=idempotency_key,
        )

    def push_journal(
        self, journal: JournalPayload, *, ref, idempotency_key: str = ""
    ) -> PushResult:
        narration = " ".join(part for part in (journal.reference, journal.memo) if part)
        item = {
            "Narration": narration or f"Kontor journal {journal.local_id}",
            "Date": journal.date.isoformat(),
            "Status": "POSTED",
            "LineAmountTypes": "NoTax",
            "JournalLines": [
                {
                    "LineAmount": _amount(line.amount if line.debit else -line.amount),
                    "AccountCode": line.account_code,
                    "Description": line.description or narration,
                }
                for line in journal.lines
            ],
        }
        if ref is not None and ref.external_id:
            self._check_version("ManualJournals", "ManualJournals", ref, entity=JOURNALS)
            return self._post_one(
                "ManualJournals",
                "ManualJournals",
                item,
                entity=JOURNALS,
                local_id=f"{journal.local_id}@{ref.external_version}",
                external_id=ref.external_id,
                idem_key=idempotency_key,
            )
        return self._post_one(
            "ManualJournals",
            "ManualJournals",
            item,
            entity=JOURNALS,
            local_id=journal.local_id,
            idem_key=idempotency_key,
        )

    def find_by_reference(self, entity: str, local_id: str, number: str = "") -> PushResult | None:
        """An invoice or credit note whose export reply was lost is found by its number."""
        if not number or entity not in (INVOICES, CREDIT_NOTES, "invoice", "credit_note"):
            return None
        credit = entity in (CREDIT_NOTES, "credit_note")
        path, id_field = ("CreditNotes", "CreditNoteID") if credit else ("Invoices", "InvoiceID")
        number_field = "CreditNoteNumber" if credit else "InvoiceNumber"
        escaped = number.replace('"', '\\"')
        reply = self._call(
            "GET",
            f"{API}/{path}",
            entity=CREDIT_NOTES if credit else INVOICES,
            params={"where": f'{number_field}=="{escaped}"'},
        )
        rows = [row for row in self._rows(reply, path) if row.get(number_field) == number]
        if not rows:
            return None
        return PushResult(rows[0][id_field], rows[0].get("UpdatedDateUTC", ""))
