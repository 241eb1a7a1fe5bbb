"""ISO 20022 camt.053 (bank-to-customer statement), any 001.xx version, read with lxml.

No maintained Python library reads camt.053 across versions, so this is our own: the element
paths we need have stayed the same from 001.02 to 001.13, so they are read in whatever
namespace the document declares. Safety: lxml's own parser options rather than
`defusedxml.lxml` (deprecated by defusedxml itself since 0.7, and doing no more than these
options): entities are not resolved (no billion laughs, no XXE), no DTD is loaded, nothing is
fetched from the network, the huge-tree switch stays off (libxml2's depth and size limits
apply), and a document that carries a DOCTYPE at all is refused since camt.053 never has one.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

from lxml import etree

from .types import ParsedLine, ParsedStatement, StatementParseError, to_money

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
OPENING_CODES = ("OPBD", "PRCD")
CLOSING_CODES = ("CLBD",)


def parse_camt053(content: bytes) -> list[ParsedStatement]:
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise StatementParseError(f"not well-formed XML: {exc.msg}", exc.lineno) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise StatementParseError("XML with a DOCTYPE is refused (camt.053 has none)", 1)
    namespace = etree.QName(root).namespace or ""
    if namespace and "camt.053" not in namespace:
        raise StatementParseError(
            f"not a camt.053 document (namespace {namespace})", root.sourceline
        )
    reader = _Reader(namespace)
    body = root.find(reader.q("BkToCstmrStmt"))
    if body is None:
        raise StatementParseError(
            f"not a camt.053 document: <{etree.QName(root).localname}> has no <BkToCstmrStmt>",
            root.sourceline,
        )
    statements = body.findall(reader.q("Stmt"))
    if not statements:
        raise StatementParseError("the document holds no statement (<Stmt>)", body.sourceline)
    return [reader.statement(stmt) for stmt in statements]


def _pick(balances, codes):
    for code in codes:
        for balance in balances:
            if balance[0] == code:
                return balance
    return None


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class _Reader:
    """Reads one document. Paths are qualified with the document's own namespace, whichever
    camt.053 version it is (every element of the message is in that one namespace)."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self._paths: dict[str, str] = {}

    def q(self, path: str) -> str:
        found = self._paths.get(path)
        if found is None:
            ns = self.namespace
            found = "/".join(f"{{{ns}}}{part}" for part in path.split("/")) if ns else path
            self._paths[path] = found
        return found

    def statement(self, stmt) -> ParsedStatement:
        account_el = stmt.find(self.q("Acct"))
        if account_el is None:
            raise StatementParseError("statement without an account (<Acct>)", stmt.sourceline)
        account_id = self._text(account_el, "Id/IBAN") or self._text(account_el, "Id/Othr/Id")
        if not account_id:
            raise StatementParseError(
                "statement without an account id (IBAN or Othr/Id)", account_el.sourceline
            )
        currency = self._text(account_el, "Ccy")
        balances = [self._balance(b) for b in stmt.findall(self.q("Bal"))]
        entries = stmt.findall(self.q("Ntry"))
        if not currency:
            first = entries[0].find(self.q("Amt")) if entries else None
            if first is None and balances:
                currency = balances[0][4]
            elif first is not None:
                currency = first.get("Ccy", "")
        if not currency:
            raise StatementParseError("statement without a currency", stmt.sourceline)
        opening = _pick(balances, OPENING_CODES)
        closing = _pick(balances, CLOSING_CODES)
        lines = []
        for entry in entries:
            status = self._text(entry, "Sts/Cd") or self._text(entry, "Sts")
            if status and status.upper() != "BOOK":
                # Pending and information-only entries are not in the booked balance; a later
                # statement carries them once booked.
                continue
            lines.append(self._line(entry, len(lines) + 1, currency))
        return ParsedStatement(
            format="camt053",
            account_id=account_id.replace(" ", ""),
            currency=currency.upper(),
            statement_id=self._text(stmt, "Id"),
            opening_balance=opening[1] if opening else None,
            opening_date=opening[2] if opening else None,
            closing_balance=closing[1] if closing else None,
            closing_date=closing[2] if closing else None,
            lines=lines,
        )

    def _balance(self, bal):
        code = self._text(bal, "Tp/CdOrPrtry/Cd") or self._text(bal, "Tp/CdOrPrtry/Prtry")
        amount, currency = self._amount(bal, "balance")
        day = self._date(bal.find(self.q("Dt")), "balance date", bal.sourceline, required=True)
        return code.upper(), amount, day, bal.sourceline, currency

    def _line(self, entry, number: int, currency: str) -> ParsedLine:
        where = entry.sourceline
        amount, amount_ccy = self._amount(entry, "entry amount")
        booked = self._date(entry.find(self.q("BookgDt")), "booking date", where, required=True)
        value = self._date(entry.find(self.q("ValDt")), "value date", where, required=False)
        details = entry.findall(self.q("NtryDtls/TxDtls"))
        single = details[0] if len(details) == 1 else None
        credit = amount > 0
        bank_id = self._text(entry, "AcctSvcrRef") or (
            self._text(single, "Refs/AcctSvcrRef") if single is not None else ""
        )
        references = []
        if single is not None:
            references += [
                self._text(single, "RmtInf/Strd/CdtrRefInf/Ref"),
                self._text(single, "Refs/EndToEndId"),
            ]
        references.append(self._text(entry, "NtryRef"))
        references = [r for r in references if r and r.upper() != "NOTPROVIDED"]
        counterparty = account = ""
        if single is not None:
            side = "Dbtr" if credit else "Cdtr"
            party = single.find(self.q(f"RltdPties/{side}"))
            if party is not None:
                counterparty = self._text(party, "Nm") or self._text(party, "Pty/Nm")
            account = self._text(single, f"RltdPties/{side}Acct/Id/IBAN") or self._text(
                single, f"RltdPties/{side}Acct/Id/Othr/Id"
            )
        texts = [
            " ".join((t.text or "").split())
            for t in entry.iterfind(self.q("NtryDtls/TxDtls/RmtInf/Ustrd"))
        ]
        texts += [self._text(entry, "AddtlNtryInf")]
        texts += [
            " ".join((t.text or "").split())
            for t in entry.iterfind(self.q("NtryDtls/TxDtls/AddtlTxInf"))
        ]
        return ParsedLine(
            line_no=number,
            date=booked,
            value_date=value,
            amount=amount,
            currency=(amount_ccy or currency).upper(),
            bank_id=bank_id,
            reference=references[0] if references else "",
            counterparty=counterparty,
            counterparty_account=account.replace(" ", ""),
            description=" | ".join(t for t in texts if t),
            raw=etree.tostring(entry, encoding="unicode"),
            source_line=where,
        )

    def _amount(self, element, what: str) -> tuple[Decimal, str]:
        amt = element.find(self.q("Amt"))
        where = element.sourceline
        if amt is None or not (amt.text or "").strip():
            raise StatementParseError(f"{what} missing (<Amt>)", where)
        value = to_money(amt.text, what=what, line=amt.sourceline)
        indicator = self._text(element, "CdtDbtInd").upper()
        if indicator not in ("CRDT", "DBIT"):
            raise StatementParseError(
                f"{what}: credit/debit indicator {indicator!r} is not CRDT or DBIT", where
            )
        return (value if indicator == "CRDT" else -value), amt.get("Ccy", "")

    def _date(self, holder, what: str, where: int, *, required: bool) -> datetime.date | None:
        text = ""
        if holder is not None:
            text = self._text(holder, "Dt") or self._text(holder, "DtTm")
        if not text:
            if required:
                raise StatementParseError(f"{what} missing", where)
            return None
        # The calendar day as the bank wrote it; a DtTm's offset is not applied.
        if not _DATE_RE.match(text):
            raise StatementParseError(f"{what} {text!r} is not a date", holder.sourceline)
        try:
            return datetime.date.fromisoformat(text[:10])
        except ValueError:
            raise StatementParseError(f"{what} {text!r} is not a date", holder.sourceline) from None

    def _text(self, element, path: str) -> str:
        if element is None:
            return ""
        return (element.findtext(self.q(path)) or "").strip()
