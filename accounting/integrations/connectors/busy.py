"""Busy: voucher XML to Kontor's Busy bridge, a small HTTPS service running beside Busy.

Busy has no public API: integrations run on the Busy machine (its COM interface
`SaveVchFromXML`, or its database through ODBC). Kontor's bridge wraps that in HTTPS. This module
is the client side; the bridge implements the contract below (and
`tests/integrations/fakes/busy.py` implements it for the tests).

Connection settings: `bridge_url` (https://…; plain http is refused unless the Django setting
`BUSY_ALLOW_INSECURE` is on, which only the tests do, against a loopback fake), `series` (Busy's
VchSeriesName, default "Main"), optionally `vch_types` overriding {entity: [root element, VchType
code]} and `page_size` for master imports (default 200). Credentials: {"api_key": …}.

The bridge contract, version 1
------------------------------
Every request carries `X-Api-Key: <api key>`; a wrong or missing key is answered 401. Bodies are
UTF-8 XML.

- `GET /ping` -> 200 `<BusyBridge><Status>OK</Status><Version>bridge version</Version>
  <BusyVersion>Busy 21 (rel 6.2)</BusyVersion><Company>company name</Company>
  <Capabilities>vouchers,masters</Capabilities></BusyBridge>`. "masters" is listed only when the
  bridge can read Busy's account masters (ODBC configured).
- `POST /vouchers` with a Busy voucher (below) and `X-Kontor-Id: <stable id of the local record>`.
  The bridge remembers which Busy voucher (VchCode) each id saved: an id seen before modifies that
  voucher, never adds a second one. With `If-Match: <version>` the bridge first compares it with
  the voucher's current version (Busy's modification stamp) and answers 409 when they differ.
  Replies: 200 `<Result><Status>Created|Modified</Status><VchCode>…</VchCode><Version>…</Version>
  </Result>`; 409 `<Result><Status>Conflict</Status><Version>current</Version><Error>…</Error>
  </Result>`; 422 `<Result><Status>Error</Status><Error>Busy's message</Error></Result>` when Busy
  refused the voucher (an unknown account, unbalanced amounts…).
- `GET /vouchers/<kontor id>` -> 200 the same `<Result>` (Status "Exists") plus `<Party>` (the
  voucher's party account, which a receipt against an invoice needs), or 404.
- `GET /masters?type=accounts|parties&page=N&per_page=M[&since=<version>]` -> 200
  `<Masters page="N" hasMore="true|false">` holding `<Account>` (Code, Name, Group, PrimaryGroup,
  Version) or `<Party>` (Code, Name, Group, Kind customer|vendor, Email, Mobile, TIN, Address,
  Version) elements; 404 when the bridge has no "masters" capability.
- 5xx: the bridge or Busy failed; retried by the shared HTTP client.

Busy's voucher XML (one root element named after the voucher type, e.g. `<Sale>`, `<Journal>`):
VchSeriesName, Date (dd-mm-yyyy), VchType (Sale 9, Purchase 2, Journal 16; this module assumes
Receipt 14 and Sale Return 3 for credit notes: override `vch_types` if the installation differs),
VchNo, Narration, and AccEntries/AccDetail per line: SrNo, AccountName, AmountType (1 debit,
2 credit), AmtMainCur (positive), ShortNar.

Why hand-written: there is no Busy client library; the bridge is ours.
"""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from django.conf import settings as django_settings

from accounting.integrations.connectors._common import xml_text as _text
from accounting.integrations.connectors.base import (
    ACCOUNTS,
    CONTACTS,
    CREDIT_NOTES,
    INVOICES,
    JOURNALS,
    PAYMENTS,
    AuthFailure,
    ConflictFailure,
    Connector,
    ExternalAccount,
    ExternalContact,
    InvoicePayload,
    JournalPayload,
    LinePayload,
    MalformedReply,
    NotFound,
    Page,
    PaymentPayload,
    PushResult,
    SyncFailure,
    ValidationFailure,
)
from accounting.integrations.connectors.tally import parse_reply

DEFAULT_SERIES = "Main"
DEFAULT_PAGE_SIZE = 200
DEFAULT_VCH_TYPES = {
    "invoice": ("Sale", 9),
    "credit_note": ("SaleReturn", 3),
    "payment": ("Receipt", 14),
    "journal": ("Journal", 16),
}
DEBIT, CREDIT = 1, 2
CENT = Decimal("0.01")


def insecure_allowed() -> bool:
    return bool(django_settings.BUSY_ALLOW_INSECURE)


def voucher_xml(
    *,
    root: str,
    vch_type: int,
    series: str,
    date,
    number: str,
    narration: str,
    entries: list[tuple[str, int, Decimal, str]],
) -> bytes:
    """Busy's voucher XML; `entries` are (account name, AmountType, amount, short narration)."""
    voucher = ET.Element(root)
    for tag, text in (
        ("VchSeriesName", series),
        ("Date", date.strftime("%d-%m-%Y")),
        ("VchType", str(vch_type)),
        ("VchNo", number),
        ("Narration", narration),
    ):
        ET.SubElement(voucher, tag).text = text
    acc_entries = ET.SubElement(voucher, "AccEntries")
    for index, (account, amount_type, amount, note) in enumerate(entries, start=1):
        detail = ET.SubElement(acc_entries, "AccDetail")
        ET.SubElement(detail, "SrNo").text = str(index)
        ET.SubElement(detail, "AccountName").text = account
        ET.SubElement(detail, "AmountType").text = str(amount_type)
        ET.SubElement(detail, "AmtMainCur").text = f"{amount.quantize(CENT):f}"
        if note:
            ET.SubElement(detail, "ShortNar").text = note[:100]
    return ET.tostring(voucher, encoding="utf-8", xml_declaration=True)


class BusyConnector(Connector):
    system = "busy"
    supports = frozenset({ACCOUNTS, CONTACTS, INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})
    # The bridge keys vouchers by X-Kontor-Id (a repeat alters), so repeating a create is safe.
    idempotent_creates = frozenset({INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})

    @staticmethod
    def base_url(connection) -> str:
        settings = connection.settings or {}
        return str(settings.get("bridge_url") or settings.get("base_url") or "").rstrip("/")

    # --- settings --------------------------------------------------------------------------
    @property
    def _settings(self) -> dict:
        return self.connection.settings or {}

    def _vch_type(self, kind: str) -> tuple[str, int]:
        override = (self._settings.get("vch_types") or {}).get(kind)
        if override:
            return str(override[0]), int(override[1])
        return DEFAULT_VCH_TYPES[kind]

    def kontor_id(self, entity: str, local_id: str) -> str:
        return f"kontor-{self.connection.company_id}-{entity}-{local_id}"

    def _check_url(self) -> None:
        url = self.base_url(self.connection)
        parts = urlsplit(url)
        if not url or not parts.netloc:
            raise ValidationFailure(
                "The Busy bridge URL is not set",
                suggested_fix="Enter the bridge's https:// address in the connection settings.",
            )
        if parts.scheme != "https" and not (parts.scheme == "http" and insecure_allowed()):
            raise ValidationFailure(
                f"The Busy bridge must be reached over HTTPS, not {parts.scheme}://",
                suggested_fix="Serve the bridge over HTTPS and enter its https:// address.",
            )

    # --- transport -------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, entity: str = "", **kwargs):
        self._check_url()
        api_key = self.connection.credentials.get("api_key", "")
        if not api_key:
            raise AuthFailure("No API key is stored for the Busy bridge")
        headers = {"X-Api-Key": api_key, **kwargs.pop("headers", {})}
        url = f"{self.base_url(self.connection)}{path}"
        response = self.http.request(
            method,
            url,
            headers=headers,
            entity=entity,
            # Reads are retried; a voucher POST never within one call (a lost reply may mean the
            # bridge saved it): the X-Kontor-Id lookup settles it on the next attempt.
            idempotent=method == "GET",
            **kwargs,
        )
        if response.status_code in (401, 403):
            raise AuthFailure(
                "The Busy bridge refused the API key",
                detail={"status": response.status_code},
                suggested_fix="Enter the bridge's current API key in the connection's credentials.",
            )
        return response

    def _xml(self, response) -> ET.Element:
        return parse_reply(
            response.content, response.headers.get("content-type", ""), source="The Busy bridge"
        )

    def _unexpected(self, response) -> SyncFailure:
        return MalformedReply(
            f"The Busy bridge answered HTTP {response.status_code}",
            detail={"status": response.status_code, "body": response.text[:300]},
        )

    # --- connection test -------------------------------------------------------------------
    def _ping(self) -> ET.Element:
        response = self._request("GET", "/ping")
        if response.status_code != 200:
            raise self._unexpected(response)
        root = self._xml(response)
        if root.tag != "BusyBridge":
            raise MalformedReply("The Busy bridge's ping reply is not <BusyBridge>")
        return root

    def capabilities(self) -> set[str]:
        raw = _text(self._ping(), "Capabilities")
        return {c.strip().lower() for c in raw.split(",") if c.strip()}

    def test_connection(self) -> dict:
        started = time.monotonic()
        try:
            root = self._ping()
        except SyncFailure as exc:
            return {
                "success": False,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "version": "",
                "message": exc.message,
            }
        latency_ms = int((time.monotonic() - started) * 1000)
        busy_version = _text(root, "BusyVersion")
        bridge = _text(root, "Version")
        ok = _text(root, "Status").upper() == "OK"
        company = _text(root, "Company")
        return {
            "success": ok,
            "latency_ms": latency_ms,
            "version": busy_version or bridge,
            "message": (
                f"Bridge {bridge} connected to {busy_version or 'Busy'}, company {company}."
                if ok
                else f"The bridge answered status {_text(root, 'Status') or '(none)'}."
            ),
        }

    # --- masters ---------------------------------------------------------------------------
    def import_since(self, entity: str, versions: list[str], started_iso: str) -> str:
        """The engine's cursor after a complete import: the bridge's version counter, kept where
        it was when nothing changed (never a timestamp: the bridge's `since` is a number)."""
        previous = str((self.connection.cursors or {}).get(entity) or "")
        numbers = [int(v) for v in [previous, *versions] if str(v).strip().isdigit()]
        return str(max(numbers, default=0))

    def _masters(self, kind: str, *, cursor: str | None, since: str | None) -> tuple[list, bool]:
        page = int(cursor or 1)
        params = {
            "type": kind,
            "page": page,
            "per_page": int(self._settings.get("page_size") or DEFAULT_PAGE_SIZE),
        }
        if since and str(since).isdigit():
            params["since"] = since
        response = self._request("GET", "/masters", params=params, entity=kind)
        if response.status_code == 404:
            raise ValidationFailure(
                "This Busy bridge cannot read masters (no 'masters' capability)",
                suggested_fix="Configure the bridge's ODBC access to Busy, or import accounts and "
                "parties by hand.",
            )
        if response.status_code != 200:
            raise self._unexpected(response)
        root = self._xml(response)
        if root.tag != "Masters":
            raise MalformedReply("The Busy bridge's masters reply is not <Masters>")
        return list(root), root.get("hasMore", "").lower() == "true"

    def fetch_accounts(self, *, cursor: str | None = None, since: str | None = None):
        elements, more = self._masters("accounts", cursor=cursor, since=since)
        accounts = [
            ExternalAccount(
                external_id=_text(e, "Code") or _text(e, "Name"),
                code=_text(e, "Code"),
                name=_text(e, "Name"),
                type=_text(e, "PrimaryGroup") or _text(e, "Group"),
                parent_id=_text(e, "Group"),
                version=_text(e, "Version"),
            )
            for e in elements
            if e.tag == "Account"
        ]
        return Page(items=accounts, next_cursor=str(int(cursor or 1) + 1) if more else None)

    def fetch_contacts(self, *, cursor: str | None = None, since: str | None = None):
        elements, more = self._masters("parties", cursor=cursor, since=since)
        contacts = [_party(e) for e in elements if e.tag == "Party"]
        return Page(items=contacts, next_cursor=str(int(cursor or 1) + 1) if more else None)

    def fetch_contact(self, external_id: str) -> ExternalContact:
        cursor = None
        while True:
            page = self.fetch_contacts(cursor=cursor)
            for contact in page.items:
                if contact.external_id == external_id:
                    return contact
            if page.next_cursor is None:
                raise NotFound(f"No Busy party {external_id}", external_id=external_id)
            cursor = page.next_cursor

    # --- vouchers --------------------------------------------------------------------------
    def find_by_reference(self, entity: str, local_id: str, number: str = "") -> PushResult | None:
        kontor_id = self.kontor_id(entity, local_id)
        found = self._voucher(kontor_id, entity=entity)
        return PushResult(kontor_id, _text(found, "Version")) if found is not None else None

    def push_invoice(self, invoice: InvoicePayload, *, ref) -> PushResult:
        kind = "credit_note" if invoice.kind == "credit_note" else "invoice"
        if not invoice.contact_name:
            raise ValidationFailure(f"Invoice {invoice.number} has no party account name")
        vat_account = str(self._settings.get("vat_account") or "Output VAT")
        sale = kind == "invoice"
        lines: list[tuple[str, int, Decimal, str]] = []
        total = Decimal(0)
        tax = Decimal(0)
        for line in invoice.lines:
            side = CREDIT if sale else DEBIT
            lines.append((_account(line, invoice.number), side, line.amount, line.description))
            total += line.amount
            tax += line.tax_amount
        if tax:
            lines.append((vat_account, CREDIT if sale else DEBIT, tax, "VAT"))
        total += tax
        if total.quantize(CENT) != Decimal(invoice.total).quantize(CENT):
            raise ValidationFailure(
                f"Invoice {invoice.number}: lines add up to {total:.2f}, the total is "
                f"{Decimal(invoice.total):.2f}"
            )
        party = (invoice.contact_name, DEBIT if sale else CREDIT, total, invoice.number)
        return self._push(
            kind,
            invoice.local_id,
            ref,
            date=invoice.date,
            number=invoice.number,
            narration=invoice.reference or f"Kontor {invoice.number}",
            entries=[party, *lines],
        )

    def _voucher(self, kontor_id: str, *, entity: str = "") -> ET.Element | None:
        response = self._request("GET", f"/vouchers/{kontor_id}", entity=entity)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response)
        return self._xml(response)

    def push_payment(self, payment: PaymentPayload, *, ref) -> PushResult:
        invoice = (
            self._voucher(payment.invoice_external_id) if payment.invoice_external_id else None
        )
        party = _text(invoice, "Party")
        if not party:
            raise NotFound(
                f"Invoice {payment.invoice_number} is not in Busy, so the receipt has no party",
                retryable=True,
                detail={"invoice_remote_id": payment.invoice_external_id},
                suggested_fix="Export the invoice first; the payment is retried after it.",
            )
        amount = Decimal(payment.amount)
        return self._push(
            "payment",
            payment.local_id,
            ref,
            date=payment.date,
            number=payment.reference,
            narration=f"Kontor payment for {payment.invoice_number}",
            entries=[
                (payment.account_name, DEBIT, amount, payment.reference),
                (party, CREDIT, amount, payment.invoice_number),
            ],
        )

    def push_journal(self, journal: JournalPayload, *, ref) -> PushResult:
        entries = [
            (
                _account(line, journal.reference),
                DEBIT if line.debit else CREDIT,
                line.amount,
                line.description,
            )
            for line in journal.lines
        ]
        debits = sum((amount for _, side, amount, _ in entries if side == DEBIT), Decimal(0))
        credits = sum((amount for _, side, amount, _ in entries if side == CREDIT), Decimal(0))
        if debits != credits or not entries:
            raise ValidationFailure(f"Journal {journal.reference}: debits and credits differ")
        return self._push(
            "journal",
            journal.local_id,
            ref,
            date=journal.date,
            number=journal.reference,
            narration=journal.memo,
            entries=entries,
        )

    def _push(self, kind: str, local_id: str, ref, **voucher) -> PushResult:
        root_name, vch_type = self._vch_type(kind)
        kontor_id = ref.external_id if ref is not None else self.kontor_id(kind, local_id)
        headers = {"X-Kontor-Id": kontor_id, "Content-Type": "application/xml; charset=utf-8"}
        if ref is not None and ref.external_version:
            headers["If-Match"] = str(ref.external_version)
        body = voucher_xml(
            root=root_name,
            vch_type=vch_type,
            series=str(self._settings.get("series") or DEFAULT_SERIES),
            **voucher,
        )
        response = self._request("POST", "/vouchers", content=body, headers=headers, entity=kind)
        if response.status_code == 409:
            current = _text(self._xml(response), "Version")
            raise ConflictFailure(
                f"Voucher {voucher['number']} was changed in Busy after Kontor exported it",
                detail={
                    "remote_id": kontor_id,
                    "local_version": getattr(ref, "external_version", ""),
                    "remote_version": current,
                },
            )
        if response.status_code in (400, 422):
            message = _text(self._xml(response), "Error") or "Busy refused the voucher"
            raise ValidationFailure(
                f"Busy rejected voucher {voucher['number']}: {message}",
                suggested_fix=(
                    "Create the account in Busy, or map the Kontor account to an existing Busy "
                    "account (the name must match exactly), then retry."
                    if "account" in message.lower()
                    else ""
                ),
                detail={"remote_id": kontor_id, "status": response.status_code},
            )
        if response.status_code != 200:
            raise self._unexpected(response)
        result = self._xml(response)
        if _text(result, "Status") not in ("Created", "Modified"):
            raise MalformedReply(
                f"The Busy bridge answered status {_text(result, 'Status') or '(none)'}",
                detail={"body": response.text[:300]},
            )
        return PushResult(external_id=kontor_id, version=_text(result, "Version"))


def _account(line: LinePayload, number: str) -> str:
    name = line.account_name or line.account_code
    if not name:
        raise ValidationFailure(
            f"{number}: line '{line.description}' has no Busy account",
            suggested_fix="Map the Kontor account to a Busy account (Account mappings).",
        )
    return name


def _party(element: ET.Element) -> ExternalContact:
    kind = _text(element, "Kind").lower()
    return ExternalContact(
        external_id=_text(element, "Code") or _text(element, "Name"),
        name=_text(element, "Name"),
        email=_text(element, "Email"),
        phone=_text(element, "Mobile"),
        tax_id=_text(element, "TIN"),
        kind=kind if kind in ("customer", "vendor", "both") else "customer",
        address=_text(element, "Address"),
        version=_text(element, "Version"),
    )
