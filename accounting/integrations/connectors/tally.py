"""Tally (TallyPrime, Tally.ERP 9): XML envelopes over HTTP to the Tally XML server.

Connection settings: `host` (default "127.0.0.1"), `port` (default 9000), `company` (the Tally
company name; empty = the company open in Tally), and optionally `vat_ledger` (the duties & taxes
ledger VAT goes to, default "Output VAT" for sales), `page_size` (AlterIDs per contact page,
default 1000) and the voucher type names `voucher_types` {"invoice": "Sales", "credit_note":
"Credit Note", "payment": "Receipt", "journal": "Journal"}. Tally needs no credentials.

Requests, both of Tally's forms:
- classic `TALLYREQUEST Export Data` / `REPORTNAME List of Accounts` for the chart of accounts
  (every group and ledger; charts are small, so one page);
- newer `VERSION 1 / TALLYREQUEST Export / TYPE Collection / ID <name>` with an inline TDL
  collection (TYPE Company, Ledger or Voucher), FILTERs written as `SYSTEM TYPE="Formulae"`,
  for the connection test, contacts, one voucher by GUID and incremental changes;
- `TALLYREQUEST Import Data` / `REPORTNAME Vouchers` to create or alter vouchers.

Replies are decoded by their BOM, else the charset of the Content-Type, else the XML declaration
(Tally answers UTF-8 or UTF-16), then control characters - raw and as `&#4;`-style references,
which Tally puts into names - are stripped before parsing with defusedxml (no DTDs, no entities).

Identity and idempotency: every voucher we send carries REMOTEID `kontor-<company
id>-<entity>-<local id>`, which Tally keeps as the voucher's GUID. Before importing, the voucher is
looked up by that GUID: found means ACTION Alter (a re-export, or a retry whose first reply was
lost, never creates a second voucher), absent means ACTION Create. With an `ExternalRef` whose
version (the voucher's AlterID) differs from Tally's current AlterID, the voucher was edited in
Tally after our export: ConflictFailure, nothing is overwritten. After a successful import the
voucher's new AlterID is read back as the version.

Paging: Tally has no paging, so a page of contacts is a window of AlterIDs (`$AlterID > lo AND
$AlterID <= lo + page_size`), up to the company's highest master AlterID read on the first page;
the cursor is "lo:max". Masters and vouchers count AlterIDs in separate series (the company's
ALTMASTERID and ALTVCHID; TallyConnector too keeps a last master id and a last voucher id), so
incremental sync (`fetch_changes`) keeps two cursors, "<master AlterID>:<voucher AlterID>": it
asks for ledgers with `$AlterID > master` and vouchers with `$AlterID > voucher` and returns the
highest of each seen (one cursor for both would skip every master whose AlterID is below the
latest voucher's). A bare number (an older cursor) stands for both. Tally does not report deletions,
and it does not tell a new object from an altered one, so every change is reported as "update";
the engine tells them apart by its ExternalRefs.

Import results come as `ENVELOPE/BODY/DATA/IMPORTRESULT` or as a bare `<RESPONSE>`; ERRORS > 0,
EXCEPTIONS > 0 or any LINEERROR rejects the voucher (one voucher per request, so the errors belong
to it) with a ValidationFailure naming Tally's message and a suggested fix.

Why hand-written: no maintained Python client for Tally's XML server exists (see the integrations
reference); ElementTree builds the requests (escaping included) and defusedxml parses replies.
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from accounting.integrations.connectors._common import xml_text as _text
from accounting.integrations.connectors.base import (
    ACCOUNTS,
    CONTACTS,
    CREDIT_NOTES,
    INVOICES,
    JOURNALS,
    PAYMENTS,
    Change,
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

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_PAGE_SIZE = 1000
DEFAULT_VAT_LEDGER = "Output VAT"
DEFAULT_VOUCHER_TYPES = {
    "invoice": "Sales",
    "credit_note": "Credit Note",
    "payment": "Receipt",
    "journal": "Journal",
}
CENT = Decimal("0.01")

# XML 1.0 forbids these even as character references; Tally emits both forms (e.g. "&#4;").
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_REFS = re.compile(r"&#(?:x0*([0-9a-fA-F]{1,2})|0*([0-9]{1,3}));")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9_\-]+)[\"']")
_MISSING_LEDGER = re.compile(r"ledger\s+'([^']*)'\s+does not exist", re.I)
# Tally's messages about the company itself (not any message that merely names a company,
# e.g. a ledger called "Company Car"): SVCurrentCompany could not be set, no company open,
# a named company that does not exist or is not loaded.
_COMPANY_PROBLEM = re.compile(
    r"svcurrentcompany|\bno company\b|company\s+'[^']*'\s+(?:does not exist|is not (?:open|loaded))"
    r"|\bcompany (?:is )?not (?:open|loaded|found)",
    re.I,
)


# ---------------------------------------------------------------------------------------------
# Reply decoding and parsing
# ---------------------------------------------------------------------------------------------


def decode_reply(content: bytes, content_type: str = "", *, source: str = "Tally") -> str:
    """Bytes of a Tally reply as text: by BOM; else UTF-16 recognised by its zero bytes (the
    XML declaration cannot be read before knowing that); else the Content-Type charset or the
    declared encoding; else UTF-8."""
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif content.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif len(content) >= 2 and content[:2].count(0) == 1:  # "<E" as UTF-16: one byte is 0
        encoding = "utf-16-le" if content[1] == 0 else "utf-16-be"
    elif match := re.search(r"charset=\"?([\w\-]+)", content_type or "", re.I):
        encoding = match.group(1)
    elif match := _DECLARED_ENCODING.match(content):
        encoding = match.group(1).decode("ascii")
    else:
        encoding = "utf-8"
    try:
        return content.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise MalformedReply(
            f"{source}'s reply could not be decoded as {encoding}: {exc}",
            detail={"body": content[:200].decode("latin-1")},
        ) from exc


def _drop_control_ref(match: re.Match) -> str:
    code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
    if code in (9, 10, 13) or code >= 32:
        return match.group(0)
    return ""


def clean_xml(text: str) -> str:
    text = _XML_DECLARATION.sub("", text, count=1)
    text = _CONTROL_CHARS.sub("", text)
    return _CONTROL_REFS.sub(_drop_control_ref, text)


def parse_reply(content: bytes, content_type: str = "", *, source: str = "Tally") -> ET.Element:
    """Decode, strip control characters, parse safely (shared with the Busy connector)."""
    text = clean_xml(decode_reply(content, content_type, source=source))
    try:
        # No DTDs at all (Tally never sends one), no entity expansion, no external references.
        return fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedReply(
            f"{source}'s reply is not well-formed XML: {exc}", detail={"body": text[:500]}
        ) from exc


def _int(value: str) -> int:
    """Tally's numbers come padded (" 42"); anything else (an old timestamp cursor) is 0."""
    try:
        return int(value.strip() or 0)
    except ValueError:
        return 0


def _uppercase_tags(root: ET.Element) -> ET.Element:
    """Tally writes tags in upper case, but TDL computed fields may come back as written."""
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = element.tag.upper()
    return root


def _check_status(root: ET.Element) -> None:
    """HEADER/STATUS 0 is Tally's "request failed"; the reason is in a LINEERROR."""
    if root.tag == "ENVELOPE" and _text(root, "HEADER/STATUS") == "0":
        message = "; ".join(_line_errors(root)) or "Tally reported a failed request"
        raise ValidationFailure(
            f"Tally: {message}",
            suggested_fix=_suggested_fix(message),
            detail={"line_errors": _line_errors(root)},
        )
    if root.tag == "RESPONSE" and not len(root) and (root.text or "").strip():
        # A bare <RESPONSE>text</RESPONSE> answers a request Tally could not process.
        message = root.text.strip()
        raise ValidationFailure(f"Tally: {message}", suggested_fix=_suggested_fix(message))


def _line_errors(root: ET.Element) -> list[str]:
    return [(e.text or "").strip() for e in root.iter("LINEERROR") if (e.text or "").strip()]


def _suggested_fix(message: str) -> str:
    if match := _MISSING_LEDGER.search(message):
        return (
            f"Create the ledger '{match.group(1)}' in Tally, or map the Kontor account to an "
            "existing Tally ledger (its name must match exactly), then retry."
        )
    lowered = message.lower()
    if "voucher type" in lowered and "does not exist" in lowered:
        return "Create the voucher type in Tally or set the connection's voucher type names."
    if "totals do not match" in lowered:
        return "The voucher's debits and credits differ; check the record's amounts and retry."
    if _COMPANY_PROBLEM.search(message):
        return "Open the company in Tally, or correct the company name in the connection settings."
    return "Correct the record or the Tally masters it refers to, then retry."


@dataclass(frozen=True)
class ImportResult:
    created: int
    altered: int
    errors: int
    exceptions: int
    ignored: int
    last_voucher_id: str
    line_errors: list[str]


def parse_import_result(root: ET.Element) -> ImportResult:
    """Counters of an import reply in either shape: ENVELOPE/BODY/DATA/IMPORTRESULT or a bare
    RESPONSE."""
    if root.tag == "RESPONSE":
        result = root
    else:
        result = root.find("BODY/DATA/IMPORTRESULT")
        if result is None:
            result = root.find(".//IMPORTRESULT")
    if result is None or result.find("ERRORS") is None and result.find("CREATED") is None:
        if root.tag == "ENVELOPE" and _line_errors(root):
            result = root
        else:
            _check_status(root)
            raise MalformedReply(
                "Tally's import reply has no import result",
                detail={"body": ET.tostring(root, encoding="unicode")[:500]},
            )
    return ImportResult(
        created=_int(_text(result, "CREATED")),
        altered=_int(_text(result, "ALTERED")),
        errors=_int(_text(result, "ERRORS")),
        exceptions=_int(_text(result, "EXCEPTIONS")),
        ignored=_int(_text(result, "IGNORED")),
        last_voucher_id=_text(result, "LASTVCHID"),
        line_errors=_line_errors(root),
    )


# ---------------------------------------------------------------------------------------------
# Request building
# ---------------------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _serialize(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _static_variables(parent: ET.Element, company: str) -> None:
    static = _sub(parent, "STATICVARIABLES")
    _sub(static, "SVEXPORTFORMAT", "$$SysName:XML")
    if company:
        _sub(static, "SVCURRENTCOMPANY", company)


def list_of_accounts_request(company: str) -> bytes:
    """Classic form: every group and ledger of the company."""
    root = ET.Element("ENVELOPE")
    _sub(_sub(root, "HEADER"), "TALLYREQUEST", "Export Data")
    desc = _sub(_sub(_sub(root, "BODY"), "EXPORTDATA"), "REQUESTDESC")
    _sub(desc, "REPORTNAME", "List of Accounts")
    _static_variables(desc, company)
    desc.find("STATICVARIABLES").append(_element("ACCOUNTTYPE", "All Masters"))
    return _serialize(root)


def _element(tag: str, text: str) -> ET.Element:
    element = ET.Element(tag)
    element.text = text
    return element


def collection_request(
    name: str,
    *,
    object_type: str,
    company: str,
    fetch: Iterable[str] = (),
    filters: Iterable[str] = (),
    computes: Iterable[str] = (),
) -> bytes:
    """Newer form: an inline TDL collection; each filter formula becomes a named SYSTEM formula
    (several FILTERs must all hold)."""
    root = ET.Element("ENVELOPE")
    header = _sub(root, "HEADER")
    _sub(header, "VERSION", "1")
    _sub(header, "TALLYREQUEST", "Export")
    _sub(header, "TYPE", "Collection")
    _sub(header, "ID", name)
    desc = _sub(_sub(root, "BODY"), "DESC")
    _static_variables(desc, company)
    message = _sub(_sub(desc, "TDL"), "TDLMESSAGE")
    collection = _sub(message, "COLLECTION", NAME=name, ISMODIFY="No")
    _sub(collection, "TYPE", object_type)
    fetch = list(fetch)
    if fetch:
        _sub(collection, "FETCH", ", ".join(fetch))
    for compute in computes:
        _sub(collection, "COMPUTE", compute)
    formulas = list(filters)
    for index, _formula in enumerate(formulas):
        _sub(collection, "FILTER", f"KontorFilter{index}")
    for index, formula in enumerate(formulas):
        _sub(message, "SYSTEM", formula, TYPE="Formulae", NAME=f"KontorFilter{index}")
    return _serialize(root)


def _amount(value: Decimal) -> str:
    return f"{value.quantize(CENT):f}"


@dataclass(frozen=True)
class Entry:
    """One ALLLEDGERENTRIES.LIST line: Tally's sign convention is debit negative."""

    ledger: str
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    bill: tuple[str, str] | None = None  # (bill type "New Ref"/"Agst Ref", bill name)

    @property
    def tally_amount(self) -> Decimal:
        return (self.credit - self.debit).quantize(CENT)


def voucher_request(
    *,
    company: str,
    remote_id: str,
    action: str,
    voucher_type: str,
    date,
    number: str,
    narration: str,
    entries: list[Entry],
    party: str = "",
    reference: str = "",
) -> bytes:
    root = ET.Element("ENVELOPE")
    _sub(_sub(root, "HEADER"), "TALLYREQUEST", "Import Data")
    importdata = _sub(_sub(root, "BODY"), "IMPORTDATA")
    desc = _sub(importdata, "REQUESTDESC")
    _sub(desc, "REPORTNAME", "Vouchers")
    if company:
        _sub(_sub(desc, "STATICVARIABLES"), "SVCURRENTCOMPANY", company)
    message = _sub(_sub(importdata, "REQUESTDATA"), "TALLYMESSAGE", **{"xmlns:UDF": "TallyUDF"})
    voucher = _sub(
        message,
        "VOUCHER",
        REMOTEID=remote_id,
        VCHTYPE=voucher_type,
        ACTION=action,
        OBJVIEW="Accounting Voucher View",
    )
    _sub(voucher, "DATE", date.strftime("%Y%m%d"))
    _sub(voucher, "EFFECTIVEDATE", date.strftime("%Y%m%d"))
    _sub(voucher, "VOUCHERTYPENAME", voucher_type)
    _sub(voucher, "VOUCHERNUMBER", number)
    if reference:
        _sub(voucher, "REFERENCE", reference)
    if party:
        _sub(voucher, "PARTYLEDGERNAME", party)
    _sub(voucher, "NARRATION", narration)
    _sub(voucher, "PERSISTEDVIEW", "Accounting Voucher View")
    for entry in entries:
        line = _sub(voucher, "ALLLEDGERENTRIES.LIST")
        _sub(line, "LEDGERNAME", entry.ledger)
        _sub(line, "ISDEEMEDPOSITIVE", "Yes" if entry.tally_amount < 0 else "No")
        _sub(line, "ISPARTYLEDGER", "Yes" if party and entry.ledger == party else "No")
        _sub(line, "AMOUNT", _amount(entry.tally_amount))
        if entry.bill:
            bill = _sub(line, "BILLALLOCATIONS.LIST")
            _sub(bill, "NAME", entry.bill[1])
            _sub(bill, "BILLTYPE", entry.bill[0])
            _sub(bill, "AMOUNT", _amount(entry.tally_amount))
    return _serialize(root)


# ---------------------------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------------------------

_LEDGER_FIELDS = (
    "NAME",
    "GUID",
    "PARENT",
    "ALTERID",
    "MASTERID",
    "EMAIL",
    "LEDGERPHONE",
    "LEDGERMOBILE",
    "PARTYGSTIN",
    "VATTINNUMBER",
    "ADDRESS",
)
_PARTY_COMPUTES = (
    "KontorIsDebtor : $$IsBelongsTo:$$GroupSundryDebtors",
    "KontorIsCreditor : $$IsBelongsTo:$$GroupSundryCreditors",
)
_PARTY_FILTER = "$$IsBelongsTo:$$GroupSundryDebtors OR $$IsBelongsTo:$$GroupSundryCreditors"


@dataclass(frozen=True)
class RemoteVoucher:
    remote_id: str
    alter_id: str
    voucher_type: str
    party: str


class TallyConnector(Connector):
    system = "tally"
    supports = frozenset({ACCOUNTS, CONTACTS, INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})
    # A create is preceded by the REMOTEID lookup (found: Alter), so repeating one is safe.
    idempotent_creates = frozenset({INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})

    def __init__(self, connection, *, http):
        super().__init__(connection, http=http)
        # entity -> the highest AlterID an import in progress has covered (see import_since)
        self._seen_high: dict[str, int] = {}
        self._ledger_names: dict[str, str] = {}  # ledger GUID -> name, for this run

    @staticmethod
    def base_url(connection) -> str:
        """http://host:port from the connection settings (a `base_url` setting wins: tests)."""
        settings = connection.settings or {}
        if settings.get("base_url"):
            return str(settings["base_url"]).rstrip("/")
        host = settings.get("host") or DEFAULT_HOST
        port = int(settings.get("port") or DEFAULT_PORT)
        return f"http://{host}:{port}"

    # --- settings --------------------------------------------------------------------------
    @property
    def _settings(self) -> dict:
        return self.connection.settings or {}

    @property
    def company(self) -> str:
        return str(self._settings.get("company") or "")

    def _voucher_type(self, kind: str) -> str:
        return {**DEFAULT_VOUCHER_TYPES, **(self._settings.get("voucher_types") or {})}[kind]

    def remote_id(self, entity: str, local_id: str) -> str:
        return f"kontor-{self.connection.company_id}-{entity}-{local_id}"

    # --- transport -------------------------------------------------------------------------
    def _post(self, body: bytes, *, entity: str = "", reads_only: bool) -> ET.Element:
        """POST an envelope to the XML server. Exports only read, so the shared client may
        retry them after a timeout or a 5xx; an import is retried only where it certainly did
        not arrive (a lost reply is settled by the REMOTEID lookup before the next attempt)."""
        response = self.http.request(
            "POST",
            f"{self.base_url(self.connection)}/",
            content=body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            entity=entity,
            # Exports only read: retried freely. An import is never repeated within one call
            # (a lost reply may mean Tally saved it); the REMOTEID lookup settles it next time.
            idempotent=reads_only,
        )
        if response.status_code >= 400:
            # The shared client retried what was retryable; whatever is left is not XML.
            raise MalformedReply(
                f"Tally answered HTTP {response.status_code}",
                detail={"status": response.status_code, "body": response.text[:300]},
            )
        return _uppercase_tags(
            parse_reply(response.content, response.headers.get("content-type", ""))
        )

    def _collection(self, name: str, **kwargs) -> list[ET.Element]:
        entity = kwargs.pop("entity", "")
        root = self._post(
            collection_request(name, company=self.company, **kwargs), entity=entity, reads_only=True
        )
        _check_status(root)
        collection = root.find("BODY/DATA/COLLECTION")
        if collection is None:
            if root.tag == "ENVELOPE" and root.find("BODY") is not None:
                return []  # an empty collection may come without the element
            raise MalformedReply(
                "Tally's reply has no BODY/DATA/COLLECTION",
                detail={"body": ET.tostring(root, encoding="unicode")[:500]},
            )
        return list(collection)

    # --- connection test -------------------------------------------------------------------
    def test_connection(self) -> dict:
        started = time.monotonic()
        try:
            companies = self._company_info()
        except SyncFailure as exc:
            return {
                "success": False,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "version": "",
                "message": exc.message,
            }
        latency_ms = int((time.monotonic() - started) * 1000)
        names = [c["name"] for c in companies]
        version = next((c["version"] for c in companies if c["version"]), "")
        if not companies:
            return {
                "success": False,
                "latency_ms": latency_ms,
                "version": version,
                "message": "Tally answered, but no company is open.",
            }
        return {
            "success": True,
            "latency_ms": latency_ms,
            "version": version,
            "message": f"Connected to {version or 'Tally'}; company {', '.join(names)}.",
        }

    def _company_info(self) -> list[dict]:
        elements = self._collection(
            "KontorCompany",
            object_type="Company",
            fetch=("NAME", "ALTMASTERID", "ALTVCHID"),
            computes=("KontorVersion : $$SysInfo:Version",),
        )
        return [
            {
                "name": _text(e, "NAME") or e.get("NAME", ""),
                "version": _text(e, "KONTORVERSION"),
                "max_master_alter_id": _int(_text(e, "ALTMASTERID")),
                "max_voucher_alter_id": _int(_text(e, "ALTVCHID")),
            }
            for e in elements
            if e.tag == "COMPANY"
        ]

    # --- masters ---------------------------------------------------------------------------
    def import_since(self, entity: str, versions: list[str], started_iso: str) -> str:
        """The sync engine's incremental cursor after a complete import: an AlterID, never a
        timestamp. Everything up to the highest master AlterID that Tally reported when the
        import started was seen, as were the versions imported; with nothing new the cursor
        stays where it was (a full re-read would cost the whole chart again)."""
        previous = _int(str((self.connection.cursors or {}).get(entity) or ""))
        seen = [_int(v) for v in versions if str(v).strip().isdigit()]
        return str(max([previous, self._seen_high.get(entity, 0), *seen]))

    def fetch_accounts(self, *, cursor: str | None = None, since: str | None = None):
        root = self._post(list_of_accounts_request(self.company), entity=ACCOUNTS, reads_only=True)
        _check_status(root)
        messages = root.findall("BODY/IMPORTDATA/REQUESTDATA/TALLYMESSAGE")
        if not messages and root.find("BODY/IMPORTDATA") is None:
            raise MalformedReply(
                "Tally's List of Accounts reply has no BODY/IMPORTDATA",
                detail={"body": ET.tostring(root, encoding="unicode")[:500]},
            )
        groups: dict[str, str] = {}
        ledgers: list[ET.Element] = []
        for message in messages:
            for element in message:
                if element.tag == "GROUP":
                    groups[element.get("NAME", "")] = _text(element, "PARENT")
                elif element.tag == "LEDGER":
                    ledgers.append(element)
        after = _int(since or "")
        accounts = []
        for ledger in ledgers:
            alter_id = _int(_text(ledger, "ALTERID"))
            self._seen_high["accounts"] = max(self._seen_high.get("accounts", 0), alter_id)
            if after and alter_id <= after:
                continue
            name = ledger.get("NAME", "") or _text(ledger, "NAME")
            parent = _text(ledger, "PARENT")
            accounts.append(
                ExternalAccount(
                    external_id=_text(ledger, "GUID") or name,
                    code=name,  # Tally ledgers have no codes; vouchers refer to them by name
                    name=name,
                    type=_primary_group(parent, groups),
                    parent_id=parent,
                    active=True,
                    version=str(alter_id) if alter_id else "",
                )
            )
        return Page(items=accounts, next_cursor=None)

    def fetch_contacts(self, *, cursor: str | None = None, since: str | None = None):
        page_size = int(self._settings.get("page_size") or DEFAULT_PAGE_SIZE)
        if cursor:
            low_text, _, high_text = cursor.partition(":")
            low, highest = _int(low_text), _int(high_text)
        else:
            low = _int(since or "")
            info = self._company_info()
            highest = max((c["max_master_alter_id"] for c in info), default=0)
            self._seen_high["contacts"] = highest
        upper = low + page_size
        elements = self._collection(
            "KontorParties",
            object_type="Ledger",
            fetch=_LEDGER_FIELDS,
            computes=_PARTY_COMPUTES,
            filters=(f"$AlterID > {low}", f"$AlterID <= {upper}", _PARTY_FILTER),
            entity=CONTACTS,
        )
        contacts = [_contact(e) for e in elements if e.tag == "LEDGER"]
        next_cursor = f"{upper}:{highest}" if upper < highest else None
        return Page(items=contacts, next_cursor=next_cursor)

    def fetch_contact(self, external_id: str) -> ExternalContact:
        elements = self._collection(
            "KontorParty",
            object_type="Ledger",
            fetch=_LEDGER_FIELDS,
            computes=_PARTY_COMPUTES,
            filters=(f'$GUID = "{_formula_string(external_id)}"',),
            entity=CONTACTS,
        )
        for element in elements:
            if element.tag == "LEDGER":
                return _contact(element)
        raise NotFound(f"No ledger with GUID {external_id} in Tally", external_id=external_id)

    def fetch_changes(self, *, since: str | None) -> tuple[list[Change], str]:
        """Ledgers and vouchers altered since the cursor "<master>:<voucher>" (see the
        module docstring); masters first, each series in AlterID order."""
        master_text, _, voucher_text = (since or "").partition(":")
        after = _int(master_text)
        voucher_after = _int(voucher_text) if voucher_text else after
        changes: list[tuple[int, Change]] = []
        voucher_changes: list[tuple[int, Change]] = []
        for element in self._collection(
            "KontorChangedLedgers",
            object_type="Ledger",
            fetch=("NAME", "GUID", "PARENT", "ALTERID"),
            computes=_PARTY_COMPUTES,
            filters=(f"$AlterID > {after}",),
        ):
            if element.tag != "LEDGER":
                continue
            alter_id = _int(_text(element, "ALTERID"))
            party = _yes(element, "KONTORISDEBTOR") or _yes(element, "KONTORISCREDITOR")
            entity = "contact" if party else "account"
            external_id = _text(element, "GUID") or element.get("NAME", "")
            changes.append((alter_id, Change(entity, external_id, "update", str(alter_id))))
        voucher_entities = {v: k for k, v in {**DEFAULT_VOUCHER_TYPES}.items()}
        voucher_entities.update({self._voucher_type(k): k for k in DEFAULT_VOUCHER_TYPES})
        for element in self._collection(
            "KontorChangedVouchers",
            object_type="Voucher",
            fetch=("GUID", "ALTERID", "VOUCHERTYPENAME", "VOUCHERNUMBER", "DATE"),
            filters=(f"$AlterID > {voucher_after}",),
        ):
            if element.tag != "VOUCHER":
                continue
            alter_id = _int(_text(element, "ALTERID"))
            type_name = _text(element, "VOUCHERTYPENAME") or element.get("VCHTYPE", "")
            entity = voucher_entities.get(type_name)
            if entity is None:
                continue  # a voucher type Kontor does not sync (stock journal, contra…)
            external_id = _text(element, "GUID") or element.get("REMOTEID", "")
            voucher_changes.append((alter_id, Change(entity, external_id, "update", str(alter_id))))
        changes.sort(key=lambda pair: pair[0])
        voucher_changes.sort(key=lambda pair: pair[0])
        master = max([after] + [alter_id for alter_id, _ in changes])
        voucher = max([voucher_after] + [alter_id for alter_id, _ in voucher_changes])
        return [change for _, change in changes + voucher_changes], f"{master}:{voucher}"

    # --- vouchers --------------------------------------------------------------------------
    def find_by_reference(self, entity: str, local_id: str, number: str = "") -> PushResult | None:
        remote_id = self.remote_id(entity, local_id)
        found = self._voucher(remote_id)
        return PushResult(remote_id, found.alter_id) if found else None

    def _voucher(self, remote_id: str) -> RemoteVoucher | None:
        elements = self._collection(
            "KontorVoucher",
            object_type="Voucher",
            fetch=("GUID", "ALTERID", "VOUCHERTYPENAME", "PARTYLEDGERNAME"),
            filters=(f'$GUID = "{_formula_string(remote_id)}"',),
        )
        for element in elements:
            if element.tag == "VOUCHER":
                return RemoteVoucher(
                    remote_id=_text(element, "GUID") or element.get("REMOTEID", ""),
                    alter_id=str(_int(_text(element, "ALTERID"))),
                    voucher_type=_text(element, "VOUCHERTYPENAME"),
                    party=_text(element, "PARTYLEDGERNAME"),
                )
        return None

    def _party_ledger(self, guid: str) -> str:
        """The current Tally name of a party imported from Tally (vouchers name ledgers, and the
        ledger may have been renamed in Tally, or the party in Kontor, since the import)."""
        if not guid:
            return ""
        if guid not in self._ledger_names:
            try:
                self._ledger_names[guid] = self.fetch_contact(guid).name
            except NotFound:
                self._ledger_names[guid] = ""
        return self._ledger_names[guid]

    def push_invoice(self, invoice: InvoicePayload, *, ref) -> PushResult:
        kind = "credit_note" if invoice.kind == "credit_note" else "invoice"
        party = self._party_ledger(invoice.contact_external_id) or invoice.contact_name
        if not party:
            raise ValidationFailure(
                f"Invoice {invoice.number} has no party ledger name",
                suggested_fix="Import the contact from Tally or give the party its Tally name.",
            )
        vat_ledger = str(self._settings.get("vat_ledger") or DEFAULT_VAT_LEDGER)
        income: dict[str, Decimal] = {}
        tax = Decimal(0)
        for line in invoice.lines:
            ledger = _ledger_name(line, invoice.number)
            income[ledger] = income.get(ledger, Decimal(0)) + line.amount
            tax += line.tax_amount
        total = sum(income.values(), Decimal(0)) + tax
        if total.quantize(CENT) != Decimal(invoice.total).quantize(CENT):
            raise ValidationFailure(
                f"Invoice {invoice.number}: lines add up to {total:.2f}, the total is "
                f"{Decimal(invoice.total):.2f}",
                suggested_fix="Recalculate the invoice so its lines and VAT match its total.",
            )
        # A sale debits the party and credits income and VAT; a credit note the other way round.
        sale = kind == "invoice"
        entries = [
            Entry(
                party,
                debit=total if sale else Decimal(0),
                credit=Decimal(0) if sale else total,
                bill=("New Ref" if sale else "Agst Ref", invoice.reference or invoice.number),
            )
        ]
        for ledger, amount in income.items():
            entries.append(Entry(ledger, credit=amount) if sale else Entry(ledger, debit=amount))
        if tax:
            entries.append(Entry(vat_ledger, credit=tax) if sale else Entry(vat_ledger, debit=tax))
        return self._push(
            entity=kind,
            local_id=invoice.local_id,
            ref=ref,
            voucher_type=self._voucher_type(kind),
            date=invoice.date,
            number=invoice.number,
            narration=f"Kontor {invoice.number}"
            + (f" ({invoice.reference})" if invoice.reference else ""),
            entries=entries,
            party=party,
            reference=invoice.reference,
        )

    def push_payment(self, payment: PaymentPayload, *, ref) -> PushResult:
        if not payment.account_name:
            raise ValidationFailure(
                f"Payment {payment.reference or payment.local_id} has no bank ledger",
                suggested_fix="Map the bank account to a Tally ledger.",
            )
        invoice = (
            self._voucher(payment.invoice_external_id) if payment.invoice_external_id else None
        )
        if invoice is None or not invoice.party:
            raise NotFound(
                f"Invoice {payment.invoice_number} is not in Tally, so the receipt has no party",
                retryable=True,
                detail={"invoice_remote_id": payment.invoice_external_id},
                suggested_fix="Export the invoice first; the payment is retried after it.",
            )
        amount = Decimal(payment.amount)
        entries = [
            Entry(payment.account_name, debit=amount),
            Entry(invoice.party, credit=amount, bill=("Agst Ref", payment.invoice_number)),
        ]
        return self._push(
            entity="payment",
            local_id=payment.local_id,
            ref=ref,
            voucher_type=self._voucher_type("payment"),
            date=payment.date,
            number=payment.reference,
            narration=f"Kontor payment for {payment.invoice_number}",
            entries=entries,
            party=invoice.party,
            reference=payment.reference,
        )

    def push_journal(self, journal: JournalPayload, *, ref) -> PushResult:
        entries = []
        for line in journal.lines:
            ledger = _ledger_name(line, journal.reference)
            entries.append(
                Entry(ledger, debit=line.amount)
                if line.debit
                else Entry(ledger, credit=line.amount)
            )
        if sum((e.tally_amount for e in entries), Decimal(0)) != 0 or not entries:
            raise ValidationFailure(
                f"Journal {journal.reference}: debits and credits differ",
                suggested_fix="A journal must balance; correct it and retry.",
            )
        return self._push(
            entity="journal",
            local_id=journal.local_id,
            ref=ref,
            voucher_type=self._voucher_type("journal"),
            date=journal.date,
            number=journal.reference,
            narration=journal.memo,
            entries=entries,
        )

    def _push(self, *, entity: str, local_id: str, ref, **voucher) -> PushResult:
        remote_id = ref.external_id if ref is not None else self.remote_id(entity, local_id)
        current = self._voucher(remote_id)
        if ref is not None:
            if current is None:
                raise NotFound(
                    f"Voucher {voucher['number']} was exported to Tally but is no longer there",
                    detail={"remote_id": remote_id},
                    suggested_fix="It was deleted in Tally: unlink it to export it again, or "
                    "ignore the error.",
                )
            if ref.external_version and current.alter_id != str(ref.external_version):
                raise ConflictFailure(
                    f"Voucher {voucher['number']} was changed in Tally after Kontor exported it "
                    f"(AlterID {ref.external_version} -> {current.alter_id})",
                    detail={
                        "remote_id": remote_id,
                        "local_version": ref.external_version,
                        "remote_version": current.alter_id,
                    },
                )
        action = "Alter" if current is not None else "Create"
        body = voucher_request(company=self.company, remote_id=remote_id, action=action, **voucher)
        root = self._post(body, entity=entity, reads_only=False)
        result = parse_import_result(root)
        if result.errors or result.exceptions or result.line_errors:
            message = "; ".join(result.line_errors) or (
                f"{result.errors} error(s), {result.exceptions} exception(s)"
            )
            raise ValidationFailure(
                f"Tally rejected voucher {voucher['number']}: {message}",
                suggested_fix=_suggested_fix(message),
                detail={
                    "remote_id": remote_id,
                    "line_errors": result.line_errors,
                    "action": action,
                },
            )
        if result.created + result.altered == 0:
            raise ValidationFailure(
                f"Tally neither created nor altered voucher {voucher['number']}"
                + (" (ignored as a duplicate)" if result.ignored else ""),
                detail={"remote_id": remote_id},
                suggested_fix="Check the voucher in Tally; it may be locked or a duplicate.",
            )
        after = self._voucher(remote_id)
        return PushResult(external_id=remote_id, version=after.alter_id if after else "")


def _ledger_name(line: LinePayload, number: str) -> str:
    name = line.account_name or line.account_code
    if not name:
        raise ValidationFailure(
            f"{number}: line '{line.description}' has no Tally ledger",
            suggested_fix="Map the Kontor account to a Tally ledger (Account mappings).",
        )
    return name


def _formula_string(value: str) -> str:
    return value.replace('"', "")


def _yes(element: ET.Element, path: str) -> bool:
    return _text(element, path).lower() == "yes"


def _primary_group(parent: str, groups: dict[str, str]) -> str:
    """The top-level group a ledger sits under (Tally's primary groups classify accounts)."""
    seen = set()
    group = parent
    while groups.get(group) and group not in seen:
        seen.add(group)
        group = groups[group]
    return group


def _contact(element: ET.Element) -> ExternalContact:
    debtor, creditor = _yes(element, "KONTORISDEBTOR"), _yes(element, "KONTORISCREDITOR")
    kind = "both" if debtor and creditor else "vendor" if creditor else "customer"
    address = ", ".join(
        (a.text or "").strip()
        for a in element.iterfind("ADDRESS.LIST/ADDRESS")
        if (a.text or "").strip()
    )
    alter_id = _int(_text(element, "ALTERID"))
    name = element.get("NAME", "") or _text(element, "NAME")
    return ExternalContact(
        external_id=_text(element, "GUID") or name,
        name=name,
        email=_text(element, "EMAIL"),
        phone=_text(element, "LEDGERPHONE") or _text(element, "LEDGERMOBILE"),
        tax_id=_text(element, "PARTYGSTIN") or _text(element, "VATTINNUMBER"),
        kind=kind,
        address=address,
        version=str(alter_id) if alter_id else "",
    )
