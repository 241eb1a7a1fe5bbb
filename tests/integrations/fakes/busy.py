"""A fake Kontor Busy bridge, implementing the contract in connectors/busy.py.

State in memory: accounts (name -> group, primary group, code), parties, and vouchers keyed by the
X-Kontor-Id that saved them. Busy's own checks are imitated: every AccountName must exist, the
VchType must match the root element, Date must be dd-mm-yyyy, debits (AmountType 1) must equal
credits (AmountType 2). `capabilities` controls whether /masters exists.

Faults: `add_fault(action, when=..., times=n)` with action "500", "malformed", "sleep:<s>" or
"sleep_after:<s>" (save, then sleep past the client's timeout) or "drop" (save, then cut the
reply off mid-body: the reply is lost, deterministically); `when(request)` gets the `Request`.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree as ET

from defusedxml.ElementTree import fromstring

from tests.integrations.fakes import Request, RequestLog, reply
from tests.integrations.fakes.tally import lost_reply

ROOT_BY_CODE = {9: "Sale", 2: "Purchase", 16: "Journal", 14: "Receipt", 3: "SaleReturn"}


@dataclass
class BusyVoucher:
    kontor_id: str
    vch_code: int
    version: int
    root: str
    vch_type: int
    series: str
    date: str
    number: str
    narration: str
    entries: list[tuple[str, int, Decimal]] = field(default_factory=list)

    @property
    def party(self) -> str:
        return self.entries[0][0] if self.entries and self.root in ("Sale", "SaleReturn") else ""


@dataclass
class Fault:
    action: str
    when: object = None
    times: int = 1


class FakeBusyBridge:
    def __init__(self, *, api_key: str = "bridge-key", company: str = "Alpha Traders"):
        self.api_key = api_key
        self.company = company
        self.capabilities = ["vouchers", "masters"]
        self.accounts: dict[str, dict] = {}
        self.parties: dict[str, dict] = {}
        self.vouchers: dict[str, BusyVoucher] = {}
        self.faults: list[Fault] = []
        self.log = RequestLog()
        self._next_code = 0
        self._version = 0
        self._lock = threading.RLock()

    # --- state -----------------------------------------------------------------------------
    def _bump(self) -> int:
        self._version += 1
        return self._version

    def add_account(self, name: str, group: str, primary: str = "", code: str = "") -> dict:
        with self._lock:
            account = {
                "code": code or f"A{len(self.accounts) + 1:04d}",
                "name": name,
                "group": group,
                "primary": primary or group,
                "version": self._bump(),
            }
            self.accounts[name] = account
            return account

    def add_party(self, name: str, kind: str = "customer", **fields) -> dict:
        with self._lock:
            group = "Sundry Debtors" if kind == "customer" else "Sundry Creditors"
            party = {
                "code": f"P{len(self.parties) + 1:04d}",
                "name": name,
                "group": group,
                "kind": kind,
                "email": "",
                "mobile": "",
                "tin": "",
                "address": "",
                "version": self._bump(),
            }
            party.update(fields)
            self.parties[name] = party
            self.accounts[name] = {**party, "primary": "Current Assets"}
            return party

    def edit_voucher(self, kontor_id: str, **fields) -> BusyVoucher:
        """Someone changes the voucher inside Busy."""
        with self._lock:
            voucher = self.vouchers[kontor_id]
            for key, value in fields.items():
                setattr(voucher, key, value)
            voucher.version = self._bump()
            return voucher

    def add_fault(self, action: str, *, when=None, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(action, when, times))

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.when is None or fault.when(request)):
                    fault.times -= 1
                    return fault
        return None

    # --- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        self.log.add(request)
        if request.headers.get("x-api-key") != self.api_key:
            return _xml(
                start_response,
                401,
                "<Result><Status>Error</Status><Error>Invalid API key</Error></Result>",
            )
        fault = self._take_fault(request)
        after = 0.0
        if fault is not None:
            action, _, arg = fault.action.partition(":")
            if action == "500":
                return reply(start_response, 500, "Busy is not responding")
            if action == "malformed":
                return _xml(start_response, 200, "<Result><Status>Crea")
            if action == "sleep":
                time.sleep(float(arg))
            if action == "sleep_after":
                after = float(arg)
            if action == "drop":
                status, body = self._route(request)
                data = body.encode("utf-8")
                return lost_reply(
                    start_response,
                    f"{status} OK",
                    [
                        ("Content-Type", "application/xml; charset=utf-8"),
                        ("Content-Length", str(len(data))),
                    ],
                    data,
                )
        status, body = self._route(request)
        if after:
            time.sleep(after)
        return _xml(start_response, status, body)

    def _route(self, request: Request) -> tuple[int, str]:
        with self._lock:
            if request.method == "GET" and request.path == "/ping":
                return 200, (
                    "<BusyBridge><Status>OK</Status><Version>1.0.0</Version>"
                    "<BusyVersion>Busy 21 (Rel 6.2)</BusyVersion>"
                    f"<Company>{_escape(self.company)}</Company>"
                    f"<Capabilities>{','.join(self.capabilities)}</Capabilities></BusyBridge>"
                )
            if request.method == "GET" and request.path == "/masters":
                if "masters" not in self.capabilities:
                    return (
                        404,
                        "<Result><Status>Error</Status><Error>Not supported</Error></Result>",
                    )
                return 200, self._masters(request)
            if request.method == "GET" and request.path.startswith("/vouchers/"):
                voucher = self.vouchers.get(request.path.removeprefix("/vouchers/"))
                if voucher is None:
                    return 404, "<Result><Status>Error</Status><Error>Not found</Error></Result>"
                return 200, _result("Exists", voucher)
            if request.method == "POST" and request.path == "/vouchers":
                return self._save(request)
            return 404, "<Result><Status>Error</Status><Error>No such endpoint</Error></Result>"

    def _masters(self, request: Request) -> str:
        kind = request.param("type")
        page = int(request.param("page", "1"))
        per_page = int(request.param("per_page", "200"))
        since = int(request.param("since", "0") or 0)
        if kind == "parties":
            rows = [p for p in self.parties.values() if p["version"] > since]
        else:
            rows = [
                a
                for a in self.accounts.values()
                if a["version"] > since and a["name"] not in self.parties
            ]
        rows.sort(key=lambda r: r["version"])
        chunk = rows[(page - 1) * per_page : page * per_page]
        root = ET.Element(
            "Masters",
            {"page": str(page), "hasMore": "true" if page * per_page < len(rows) else "false"},
        )
        for row in chunk:
            if kind == "parties":
                element = ET.SubElement(root, "Party")
                fields = (
                    "code",
                    "name",
                    "group",
                    "kind",
                    "email",
                    "mobile",
                    "tin",
                    "address",
                    "version",
                )
            else:
                element = ET.SubElement(root, "Account")
                fields = ("code", "name", "group", "primary", "version")
            for name in fields:
                tag = {"primary": "PrimaryGroup", "tin": "TIN"}.get(name, name.capitalize())
                ET.SubElement(element, tag).text = str(row[name])
        return ET.tostring(root, encoding="unicode")

    def _save(self, request: Request) -> tuple[int, str]:
        kontor_id = request.headers.get("x-kontor-id", "")
        if not kontor_id:
            return (
                400,
                "<Result><Status>Error</Status><Error>X-Kontor-Id is required</Error></Result>",
            )
        try:
            voucher = fromstring(request.body)
        except Exception:
            return 400, "<Result><Status>Error</Status><Error>Not well-formed XML</Error></Result>"
        problem, parsed = self._check(voucher)
        if problem:
            return 422, f"<Result><Status>Error</Status><Error>{_escape(problem)}</Error></Result>"
        existing = self.vouchers.get(kontor_id)
        if existing is not None:
            wanted = request.headers.get("if-match")
            if wanted and wanted != str(existing.version):
                return 409, (
                    f"<Result><Status>Conflict</Status><Version>{existing.version}</Version>"
                    "<Error>The voucher was modified in Busy</Error></Result>"
                )
            for key, value in parsed.items():
                setattr(existing, key, value)
            existing.version = self._bump()
            return 200, _result("Modified", existing)
        self._next_code += 1
        saved = BusyVoucher(
            kontor_id=kontor_id, vch_code=self._next_code, version=self._bump(), **parsed
        )
        self.vouchers[kontor_id] = saved
        return 200, _result("Created", saved)

    def _check(self, voucher) -> tuple[str, dict]:
        def text(path):
            found = voucher.find(path)
            return (found.text or "").strip() if found is not None else ""

        try:
            vch_type = int(text("VchType"))
        except ValueError:
            return "VchType is missing or not a number", {}
        if ROOT_BY_CODE.get(vch_type) != voucher.tag:
            return f"VchType {vch_type} does not match <{voucher.tag}>", {}
        date = text("Date")
        if not re.fullmatch(r"\d{2}-\d{2}-\d{4}", date):
            return f"Date '{date}' is not dd-mm-yyyy", {}
        datetime.strptime(date, "%d-%m-%Y")
        entries = []
        for detail in voucher.iterfind("AccEntries/AccDetail"):
            name = (detail.findtext("AccountName") or "").strip()
            if name not in self.accounts:
                return f"Account '{name}' not found in Busy", {}
            try:
                amount_type = int(detail.findtext("AmountType") or 0)
                amount = Decimal(detail.findtext("AmtMainCur") or "")
            except (ValueError, InvalidOperation):
                return f"Bad amount for account '{name}'", {}
            if amount_type not in (1, 2) or amount <= 0:
                return f"Bad AmountType or amount for account '{name}'", {}
            entries.append((name, amount_type, amount))
        debit = sum((a for _, t, a in entries if t == 1), Decimal(0))
        credit = sum((a for _, t, a in entries if t == 2), Decimal(0))
        if not entries or debit != credit:
            return f"Debit {debit} and credit {credit} are not equal", {}
        return "", {
            "root": voucher.tag,
            "vch_type": vch_type,
            "series": text("VchSeriesName"),
            "date": date,
            "number": text("VchNo"),
            "narration": text("Narration"),
            "entries": entries,
        }


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _result(status: str, voucher: BusyVoucher) -> str:
    return (
        f"<Result><Status>{status}</Status><VchCode>{voucher.vch_code}</VchCode>"
        f"<Version>{voucher.version}</Version><Party>{_escape(voucher.party)}</Party></Result>"
    )


def _xml(start_response, status: int, body: str):
    return reply(
        start_response, status, body.encode("utf-8"), content_type="application/xml; charset=utf-8"
    )
