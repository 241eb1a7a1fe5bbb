"""A fake TallyPrime XML server: masters and vouchers in memory, real Tally XML on the wire.

What it answers (shapes as in Tally's XML integration documentation):
- `GET /`: `<RESPONSE>TallyPrime Server is Running</RESPONSE>`.
- classic export, `TALLYREQUEST Export Data` + `REPORTNAME List of Accounts`: every group and ledger
  in the import-envelope shape Tally uses for masters (`BODY/IMPORTDATA/REQUESTDATA/TALLYMESSAGE`).
- newer export, `VERSION 1 / TALLYREQUEST Export / TYPE Collection / ID <name>` with an inline TDL
  `COLLECTION NAME=<name>` of TYPE Company, Ledger or Voucher, FILTERs naming
  `SYSTEM TYPE="Formulae"` (understood: `$AlterID > n`, `$AlterID <= n`, `$GUID = "x"`,
  belongs to Sundry Debtors/Creditors) and COMPUTEs (`$$SysInfo:Version`,
  `$$IsBelongsTo:$$GroupSundryDebtors|Creditors`); reply `ENVELOPE/BODY/DATA/COLLECTION/<OBJECT>`.
- import, `TALLYREQUEST Import Data` + `REPORTNAME Vouchers`: each `TALLYMESSAGE/VOUCHER` checked
  like Tally does (ledgers exist, voucher type exists, amounts sum to zero, ISDEEMEDPOSITIVE agrees
  with the sign); reply with the counters and one LINEERROR per rejected voucher, either as
  `ENVELOPE/BODY/DATA/IMPORTRESULT` (`import_shape="envelope"`) or a bare `<RESPONSE>`
  (`import_shape="response"`). A voucher whose REMOTEID exists is altered, never duplicated.
Masters and vouchers take AlterIDs from two separate series (ALTMASTERID, ALTVCHID), as in Tally.

Faults for tests: `add_fault(action, when=..., times=n)`, where action is "500", "malformed"
(truncated XML), "sleep:<seconds>" (then answer normally, after the client gave up),
"sleep_after:<s>" (process the request, then sleep: the client times out although the work was
done), "drop" (process the request, then cut the reply off mid-body: the work is done and the
reply lost, deterministically) or "garbage" (a reply full of control characters and `&#4;`
references around valid XML), and
`when(info)` selects requests by `info` (kind: "list_of_accounts", "collection", "import"; type:
collection object type; after/upto: the AlterID window bounds, else None). `encoding="utf-16"`
answers everything in UTF-16 LE with a BOM.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from xml.etree import ElementTree as ET

import httpx
from defusedxml.ElementTree import fromstring

from tests.integrations.fakes import Request, RequestLog, reply

PRIMARY_GROUPS = {
    "Capital Account": "",
    "Current Assets": "",
    "Current Liabilities": "",
    "Fixed Assets": "",
    "Sales Accounts": "",
    "Purchase Accounts": "",
    "Direct Expenses": "",
    "Indirect Expenses": "",
    "Indirect Incomes": "",
    "Sundry Debtors": "Current Assets",
    "Sundry Creditors": "Current Liabilities",
    "Bank Accounts": "Current Assets",
    "Cash-in-Hand": "Current Assets",
    "Duties & Taxes": "Current Liabilities",
}
VOUCHER_TYPES = {"Sales", "Purchase", "Credit Note", "Debit Note", "Receipt", "Payment", "Journal"}


@dataclass
class Fault:
    action: str
    when: object = None
    times: int = 1


@dataclass
class Voucher:
    remote_id: str
    master_id: int
    alter_id: int
    vch_type: str
    date: str
    number: str
    narration: str
    party: str
    entries: list[tuple[str, Decimal]] = field(default_factory=list)


class FakeTally:
    def __init__(self, *, company: str = "Alpha Traders", version: str = "TallyPrime 6.0"):
        self.company = company
        self.version = version
        self.encoding = "utf-8"
        self.import_shape = "envelope"
        self.groups: dict[str, str] = dict(PRIMARY_GROUPS)
        self.ledgers: dict[str, dict] = {}
        self.vouchers: list[Voucher] = []
        self.faults: list[Fault] = []
        self.log = RequestLog()
        # Masters and vouchers count AlterIDs in separate series, as Tally does (ALTMASTERID,
        # ALTVCHID).
        self.master_alter_id = 0
        self.voucher_alter_id = 0
        self.master_id = 0
        self._lock = threading.RLock()
        self.add_ledger("Cash", "Cash-in-Hand")
        self.add_ledger("Profit & Loss A/c", "")

    # --- state -----------------------------------------------------------------------------
    def _next_alter_id(self, *, voucher: bool = False) -> int:
        if voucher:
            self.voucher_alter_id += 1
            return self.voucher_alter_id
        self.master_alter_id += 1
        return self.master_alter_id

    def add_group(self, name: str, parent: str) -> None:
        with self._lock:
            self.groups[name] = parent
            self._next_alter_id()

    def add_ledger(self, name: str, parent: str, **fields) -> dict:
        with self._lock:
            self.master_id += 1
            ledger = {
                "name": name,
                "parent": parent,
                "guid": str(uuid.uuid4()),
                "master_id": self.master_id,
                "alter_id": self._next_alter_id(),
                "email": "",
                "phone": "",
                "gstin": "",
                "address": [],
            }
            ledger.update(fields)
            self.ledgers[name] = ledger
            return ledger

    def alter_ledger(self, name: str, **fields) -> dict:
        with self._lock:
            ledger = self.ledgers[name]
            ledger.update(fields)
            ledger["alter_id"] = self._next_alter_id()
            return ledger

    def alter_voucher(self, remote_id: str, **fields) -> Voucher:
        """An accountant edits the voucher inside Tally."""
        with self._lock:
            (voucher,) = self.vouchers_with(remote_id)
            for key, value in fields.items():
                setattr(voucher, key, value)
            voucher.alter_id = self._next_alter_id(voucher=True)
            return voucher

    def vouchers_with(self, remote_id: str) -> list[Voucher]:
        return [v for v in self.vouchers if v.remote_id == remote_id]

    def belongs_to(self, group: str, target: str) -> bool:
        seen = set()
        while group and group not in seen:
            if group == target:
                return True
            seen.add(group)
            group = self.groups.get(group, "")
        return False

    def add_fault(self, action: str, *, when=None, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(action, when, times))

    # --- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        self.log.add(request)
        if request.method == "GET":
            return self._send(start_response, "<RESPONSE>TallyPrime Server is Running</RESPONSE>")
        try:
            envelope = fromstring(_decode(request.body))
        except Exception:
            return self._send(
                start_response, "<RESPONSE>Unknown Request, cannot be processed</RESPONSE>"
            )
        info = self._describe(envelope)
        fault = self._take_fault(info)
        if fault is not None:
            action, _, arg = fault.action.partition(":")
            if action == "500":
                return reply(start_response, 500, "Internal Server Error")
            if action == "malformed":
                return self._send(
                    start_response, "<ENVELOPE><HEADER><VERSION>1</VERSION><BODY><DATA><COLL"
                )
            if action == "sleep":
                time.sleep(float(arg))
            if action == "sleep_after":
                body = self._answer(envelope, info)
                time.sleep(float(arg))
                return self._send(start_response, body)
            if action == "drop":
                data = self._answer(envelope, info).encode("utf-8")
                return lost_reply(
                    start_response,
                    "200 OK",
                    [
                        ("Content-Type", "text/xml; charset=utf-8"),
                        ("Content-Length", str(len(data))),
                    ],
                    data,
                )
            if action == "garbage":
                body = self._answer(envelope, info)
                body = body.replace("<ENVELOPE>", "<ENVELOPE>\x04&#4;", 1).replace(
                    "</BODY>", "\x01&#x1f;</BODY>"
                )
                return self._send(start_response, body)
        return self._send(start_response, self._answer(envelope, info))

    def _send(self, start_response, text: str):
        if self.encoding == "utf-16":
            data = codecs.BOM_UTF16_LE + ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode(
                "utf-16-le"
            )
            return reply(start_response, 200, data, content_type="text/xml; charset=utf-16")
        return reply(
            start_response, 200, text.encode("utf-8"), content_type="text/xml; charset=utf-8"
        )

    def _take_fault(self, info: dict) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.when is None or fault.when(info)):
                    fault.times -= 1
                    return fault
        return None

    def _describe(self, envelope) -> dict:
        request = _text(envelope, "HEADER/TALLYREQUEST").lower()
        info = {"kind": "unknown", "type": "", "after": None, "upto": None, "guid": None}
        if request == "export data":
            info["kind"] = "list_of_accounts"
        elif request == "import data":
            info["kind"] = "import"
        elif request == "export" and _text(envelope, "HEADER/TYPE").lower() == "collection":
            info["kind"] = "collection"
            collection = self._collection(envelope)
            if collection is not None:
                info["type"] = _text(collection, "TYPE").lower()
                for formula in self._filters(envelope, collection):
                    if m := re.fullmatch(r"\$AlterID\s*>\s*(\d+)", formula, re.I):
                        info["after"] = int(m.group(1))
                    elif m := re.fullmatch(r"\$AlterID\s*<=\s*(\d+)", formula, re.I):
                        info["upto"] = int(m.group(1))
                    elif m := re.fullmatch(r'\$GUID\s*=\s*"([^"]*)"', formula, re.I):
                        info["guid"] = m.group(1)
        return info

    def _answer(self, envelope, info: dict) -> str:
        with self._lock:
            company = _text(envelope, ".//STATICVARIABLES/SVCURRENTCOMPANY")
            if company and company != self.company:
                return _failed(f"Could not set 'SVCurrentCompany' to '{company}'")
            if info["kind"] == "list_of_accounts":
                report = _text(envelope, "BODY/EXPORTDATA/REQUESTDESC/REPORTNAME")
                if report.lower() != "list of accounts":
                    return _failed(f"Report '{report}' does not exist")
                return self._list_of_accounts()
            if info["kind"] == "collection":
                return self._export_collection(envelope, info)
            if info["kind"] == "import":
                return self._import(envelope)
            return "<RESPONSE>Unknown Request, cannot be processed</RESPONSE>"

    # --- exports ---------------------------------------------------------------------------
    def _list_of_accounts(self) -> str:
        root = ET.Element("ENVELOPE")
        ET.SubElement(ET.SubElement(root, "HEADER"), "TALLYREQUEST").text = "Import Data"
        importdata = ET.SubElement(ET.SubElement(root, "BODY"), "IMPORTDATA")
        desc = ET.SubElement(importdata, "REQUESTDESC")
        ET.SubElement(desc, "REPORTNAME").text = "All Masters"
        ET.SubElement(
            ET.SubElement(desc, "STATICVARIABLES"), "SVCURRENTCOMPANY"
        ).text = self.company
        data = ET.SubElement(importdata, "REQUESTDATA")
        for name, parent in self.groups.items():
            message = ET.SubElement(data, "TALLYMESSAGE", {"xmlns:UDF": "TallyUDF"})
            group = ET.SubElement(message, "GROUP", {"NAME": name, "RESERVEDNAME": name})
            ET.SubElement(group, "PARENT").text = parent
            ET.SubElement(group, "ISREVENUE").text = (
                "Yes" if "Sales" in name or "Expenses" in name else "No"
            )
        for ledger in self.ledgers.values():
            message = ET.SubElement(data, "TALLYMESSAGE", {"xmlns:UDF": "TallyUDF"})
            self._ledger_element(message, ledger, computes=[])
        return ET.tostring(root, encoding="unicode")

    def _collection(self, envelope):
        wanted = _text(envelope, "HEADER/ID")
        for collection in envelope.iterfind(".//TDL/TDLMESSAGE/COLLECTION"):
            if collection.get("NAME", "").lower() == wanted.lower():
                return collection
        return None

    def _filters(self, envelope, collection) -> list[str]:
        formulas = {
            system.get("NAME", ""): (system.text or "").strip()
            for system in envelope.iterfind(".//TDL/TDLMESSAGE/SYSTEM")
            if system.get("TYPE", "").lower() == "formulae"
        }
        names = []
        for item in collection.iterfind("FILTER"):
            names += [n.strip() for n in (item.text or "").split(",") if n.strip()]
        return [formulas.get(name, "") for name in names]

    def _matches(self, formula: str, obj: dict, is_voucher: bool) -> bool:
        if m := re.fullmatch(r"\$AlterID\s*>\s*(\d+)", formula, re.I):
            return obj["alter_id"] > int(m.group(1))
        if m := re.fullmatch(r"\$AlterID\s*<=\s*(\d+)", formula, re.I):
            return obj["alter_id"] <= int(m.group(1))
        if m := re.fullmatch(r'\$GUID\s*=\s*"([^"]*)"', formula, re.I):
            return obj["guid"] == m.group(1)
        groups = re.findall(
            r"\$\$IsBelongsTo:\$\$Group(SundryDebtors|SundryCreditors)", formula, re.I
        )
        if groups and not is_voucher:
            targets = {"sundrydebtors": "Sundry Debtors", "sundrycreditors": "Sundry Creditors"}
            return any(self.belongs_to(obj["parent"], targets[g.lower()]) for g in groups)
        raise ValueError(f"fake Tally does not understand the formula {formula!r}")

    def _export_collection(self, envelope, info: dict) -> str:
        collection = self._collection(envelope)
        if collection is None:
            return _failed(f"Could not find Collection '{_text(envelope, 'HEADER/ID')}'")
        obj_type = info["type"]
        computes = [c.text or "" for c in collection.iterfind("COMPUTE")]
        filters = self._filters(envelope, collection)
        root = ET.Element("ENVELOPE")
        header = ET.SubElement(root, "HEADER")
        ET.SubElement(header, "VERSION").text = "1"
        ET.SubElement(header, "STATUS").text = "1"
        body = ET.SubElement(root, "BODY")
        ET.SubElement(body, "DESC")
        out = ET.SubElement(ET.SubElement(body, "DATA"), "COLLECTION")
        try:
            if obj_type == "company":
                company = ET.SubElement(out, "COMPANY", {"NAME": self.company})
                ET.SubElement(company, "NAME").text = self.company
                masters = [lg["alter_id"] for lg in self.ledgers.values()]
                ET.SubElement(company, "ALTMASTERID").text = f" {max(masters, default=0)}"
                ET.SubElement(
                    company, "ALTVCHID"
                ).text = f" {max((v.alter_id for v in self.vouchers), default=0)}"
                self._computes(company, computes, None)
            elif obj_type == "ledger":
                for ledger in sorted(self.ledgers.values(), key=lambda lg: lg["alter_id"]):
                    if all(self._matches(f, ledger, False) for f in filters):
                        self._ledger_element(out, ledger, computes)
            elif obj_type == "voucher":
                for voucher in sorted(self.vouchers, key=lambda v: v.alter_id):
                    obj = {"alter_id": voucher.alter_id, "guid": voucher.remote_id}
                    if all(self._matches(f, obj, True) for f in filters):
                        self._voucher_element(out, voucher)
            else:
                return _failed(f"Unknown object type '{obj_type}'")
        except ValueError as exc:
            return _failed(str(exc))
        return ET.tostring(root, encoding="unicode")

    def _computes(self, element, computes: list[str], ledger: dict | None) -> None:
        for compute in computes:
            name, _, formula = compute.partition(":")
            formula = formula.strip()
            if formula.lower() == "$$sysinfo:version":
                value = self.version
            elif ledger is not None and (
                m := re.fullmatch(r"\$\$IsBelongsTo:\$\$Group(\w+)", formula, re.I)
            ):
                target = {"sundrydebtors": "Sundry Debtors", "sundrycreditors": "Sundry Creditors"}[
                    m.group(1).lower()
                ]
                value = "Yes" if self.belongs_to(ledger["parent"], target) else "No"
            else:
                continue
            ET.SubElement(element, name.strip().upper()).text = value

    def _ledger_element(self, parent, ledger: dict, computes: list[str]):
        element = ET.SubElement(parent, "LEDGER", {"NAME": ledger["name"], "RESERVEDNAME": ""})
        ET.SubElement(element, "GUID").text = ledger["guid"]
        ET.SubElement(element, "PARENT").text = ledger["parent"]
        ET.SubElement(element, "MASTERID").text = f" {ledger['master_id']}"
        ET.SubElement(element, "ALTERID").text = f" {ledger['alter_id']}"
        ET.SubElement(element, "EMAIL").text = ledger["email"]
        ET.SubElement(element, "LEDGERPHONE").text = ledger["phone"]
        ET.SubElement(element, "PARTYGSTIN").text = ledger["gstin"]
        if ledger["address"]:
            addresses = ET.SubElement(element, "ADDRESS.LIST", {"TYPE": "String"})
            for line in ledger["address"]:
                ET.SubElement(addresses, "ADDRESS").text = line
        names = ET.SubElement(element, "LANGUAGENAME.LIST")
        name_list = ET.SubElement(names, "NAME.LIST", {"TYPE": "String"})
        ET.SubElement(name_list, "NAME").text = ledger["name"]
        self._computes(element, computes, ledger)
        return element

    def _voucher_element(self, parent, voucher: Voucher):
        element = ET.SubElement(
            parent,
            "VOUCHER",
            {"REMOTEID": voucher.remote_id, "VCHTYPE": voucher.vch_type, "ACTION": "Create"},
        )
        ET.SubElement(element, "GUID").text = voucher.remote_id
        ET.SubElement(element, "MASTERID").text = f" {voucher.master_id}"
        ET.SubElement(element, "ALTERID").text = f" {voucher.alter_id}"
        ET.SubElement(element, "DATE").text = voucher.date
        ET.SubElement(element, "VOUCHERTYPENAME").text = voucher.vch_type
        ET.SubElement(element, "VOUCHERNUMBER").text = voucher.number
        ET.SubElement(element, "PARTYLEDGERNAME").text = voucher.party
        ET.SubElement(element, "NARRATION").text = voucher.narration
        for ledger, amount in voucher.entries:
            entry = ET.SubElement(element, "ALLLEDGERENTRIES.LIST")
            ET.SubElement(entry, "LEDGERNAME").text = ledger
            ET.SubElement(entry, "ISDEEMEDPOSITIVE").text = "Yes" if amount < 0 else "No"
            ET.SubElement(entry, "AMOUNT").text = f"{amount:.2f}"

    # --- import ----------------------------------------------------------------------------
    def _import(self, envelope) -> str:
        report = _text(envelope, "BODY/IMPORTDATA/REQUESTDESC/REPORTNAME")
        counters = dict.fromkeys(
            (
                "CREATED",
                "ALTERED",
                "DELETED",
                "LASTVCHID",
                "LASTMID",
                "COMBINED",
                "IGNORED",
                "ERRORS",
                "CANCELLED",
                "EXCEPTIONS",
            ),  # fmt: skip
            0,
        )
        errors: list[str] = []
        if report.lower() != "vouchers":
            errors.append(f"Report '{report}' cannot be imported by this fake")
            counters["ERRORS"] += 1
        for element in envelope.iterfind("BODY/IMPORTDATA/REQUESTDATA/TALLYMESSAGE/VOUCHER"):
            problem = self._import_voucher(element, counters)
            if problem:
                errors.append(problem)
                counters["ERRORS"] += 1
        if self.import_shape == "response":
            root = ET.Element("RESPONSE")
            target = root
        else:
            root = ET.Element("ENVELOPE")
            header = ET.SubElement(root, "HEADER")
            ET.SubElement(header, "VERSION").text = "1"
            ET.SubElement(header, "STATUS").text = "1"
            body = ET.SubElement(root, "BODY")
            ET.SubElement(ET.SubElement(body, "DESC"), "CMPINFO")
            target = ET.SubElement(ET.SubElement(body, "DATA"), "IMPORTRESULT")
        for name, value in counters.items():
            ET.SubElement(target, name).text = str(value)
        for message in errors:
            ET.SubElement(target, "LINEERROR").text = message
        return ET.tostring(root, encoding="unicode")

    def _import_voucher(self, element, counters: dict) -> str:
        remote_id = element.get("REMOTEID", "")
        action = element.get("ACTION", "Create").lower()
        vch_type = _text(element, "VOUCHERTYPENAME") or element.get("VCHTYPE", "")
        if vch_type not in VOUCHER_TYPES:
            return f"Voucher Type '{vch_type}' does not exist!"
        entries: list[tuple[str, Decimal]] = []
        for entry in element.iterfind("ALLLEDGERENTRIES.LIST"):
            name = _text(entry, "LEDGERNAME")
            if name not in self.ledgers:
                return f"Ledger '{name}' does not exist!"
            amount = Decimal(_text(entry, "AMOUNT") or "0")
            deemed_positive = _text(entry, "ISDEEMEDPOSITIVE").lower() == "yes"
            if deemed_positive != (amount < 0):
                return f"ISDEEMEDPOSITIVE does not agree with the amount for ledger '{name}'"
            entries.append((name, amount))
        debit = -sum((a for _, a in entries if a < 0), Decimal(0))
        credit = sum((a for _, a in entries if a > 0), Decimal(0))
        if debit != credit or not entries:
            return f"Voucher totals do not match! Dr: {debit:.2f} Dr Cr: {credit:.2f} Cr"
        party = _text(element, "PARTYLEDGERNAME")
        if party and party not in self.ledgers:
            return f"Ledger '{party}' does not exist!"
        existing = self.vouchers_with(remote_id) if remote_id else []
        if action == "alter" and not existing:
            return f"Voucher with REMOTEID '{remote_id}' does not exist"
        fields = {
            "vch_type": vch_type,
            "date": _text(element, "DATE"),
            "number": _text(element, "VOUCHERNUMBER"),
            "narration": _text(element, "NARRATION"),
            "party": party,
            "entries": entries,
        }
        if existing:
            voucher = existing[0]
            for key, value in fields.items():
                setattr(voucher, key, value)
            voucher.alter_id = self._next_alter_id(voucher=True)
            counters["ALTERED"] += 1
        else:
            self.master_id += 1
            voucher = Voucher(
                remote_id=remote_id or str(uuid.uuid4()),
                master_id=self.master_id,
                alter_id=self._next_alter_id(voucher=True),
                **fields,
            )
            self.vouchers.append(voucher)
            counters["CREATED"] += 1
        counters["LASTVCHID"] = voucher.master_id
        return ""


def _decode(body: bytes) -> str:
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = body.decode("utf-16")
    else:
        text = body.decode("utf-8-sig")
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", text)


def _text(element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _failed(message: str) -> str:
    root = ET.Element("ENVELOPE")
    header = ET.SubElement(root, "HEADER")
    ET.SubElement(header, "VERSION").text = "1"
    ET.SubElement(header, "STATUS").text = "0"
    ET.SubElement(ET.SubElement(ET.SubElement(root, "BODY"), "DATA"), "LINEERROR").text = message
    return ET.tostring(root, encoding="unicode")


# --- shared by the connector tests (Tally, Busy, Zoho, QuickBooks, Xero) -----------------------


class ReplyDropped(Exception):
    """Raised inside a fake's reply after its headers went out: the server closes the
    connection mid-body, so the client sees the reply lost (httpx.RemoteProtocolError) although
    the request was processed. Deterministic: no sleep against a client timeout."""


def lost_reply(start_response, status: str, headers: list[tuple[str, str]], body: bytes):
    """A WSGI answer whose body is cut off: the work is done, the reply never arrives."""
    start_response(status, headers)

    def cut():
        yield body[: max(1, len(body) // 2)]
        raise ReplyDropped("the fake dropped its reply on purpose")

    return cut()


class TimeoutTransport(httpx.BaseTransport):
    """An httpx transport that raises ReadTimeout for the requests `when(request)` selects,
    `times` times: with `forward=True` after the server has processed the request (its reply is
    read and thrown away: "saved, then the reply was lost"), with `forward=False` before it is
    sent. Deterministic, unlike a fake that sleeps longer than a client timeout."""

    def __init__(self, *, when=lambda request: True, times: int = 1, forward: bool = False):
        self.inner = httpx.HTTPTransport()
        self.when = when
        self.times = times
        self.forward = forward
        self.hits = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            fire = self.times > 0 and self.when(request)
            if fire:
                self.times -= 1
                self.hits += 1
        if not fire:
            return self.inner.handle_request(request)
        if self.forward:
            response = self.inner.handle_request(request)
            response.read()
            response.close()
        raise httpx.ReadTimeout("timed out (TimeoutTransport)", request=request)

    def close(self) -> None:
        self.inner.close()
