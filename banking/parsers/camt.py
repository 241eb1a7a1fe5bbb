"""ISO 20022 camt.053 (bank-to-customer statement), any 001.xx version, read with lxml.

No maintained Python library reads camt.053 across versions, so this is our own: the element
paths we need have stayed the same from 001.02 to 001.13, so namespaces are stripped and the
paths read by local name. Safety: lxml's own parser options, not `defusedxml.lxml` (deprecated
by defusedxml itself since 0.7 and doing no more than these options): entities are not resolved
(no billion laughs, no XXE), no DTD is loaded, nothing is fetched from the network, the
huge-tree switch stays off (libxml2's depth and size limits apply), and a document that carries
a DOCTYPE at all is refused since camt.053 never has one.
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
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = etree.QName(element).localname
    body = root.find("BkToCstmrStmt")
    if body is None:
        raise StatementParseError(
            f"not a camt.053 document: <{root.tag}> has no <BkToCstmrStmt>", root.sourceline
        )
    statements = body.findall("Stmt")
    if not statements:
        raise StatementParseError("the document holds no statement (<Stmt>)", body.sourceline)
    return [_statement(stmt) for stmt in statements]


def _statement(stmt) -> ParsedStatement:
    account_el = stmt.find("Acct")
    if account_el is None:
        raise StatementParseError("statement without an account (<Acct>)", stmt.sourceline)
    account_id = _text(account_el, "Id/IBAN") or _text(account_el, "Id/Othr/Id")
    if not account_id:
        raise StatementParseError(
            "statement without an account id (IBAN or Othr/Id)", account_el.sourceline
        )
    currency = _text(account_el, "Ccy")
    balances = [_balance(b) for b in stmt.findall("Bal")]
    entries = stmt.findall("Ntry")
    if not currency:
        first = entries[0].find("Amt") if entries else None
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
        status = _text(entry, "Sts/Cd") or _text(entry, "Sts")
        if status and status.upper() != "BOOK":
            # Pending and information-only entries are not in the booked balance; a later
            # statement carries them once booked.
            continue
        lines.append(_line(entry, len(lines) + 1, currency))
    return ParsedStatement(
        format="camt053",
        account_id=account_id.replace(" ", ""),
        currency=currency.upper(),
        statement_id=_text(stmt, "Id"),
        opening_balance=opening[1] if opening else None,
        opening_date=opening[2] if opening else None,
        closing_balance=closing[1] if closing else None,
        closing_date=closing[2] if closing else None,
        lines=lines,
    )


def _balance(bal):
    code = _text(bal, "Tp/CdOrPrtry/Cd") or _text(bal, "Tp/CdOrPrtry/Prtry")
    amount, currency = _amount(bal, "balance")
    day = _date(bal.find("Dt"), "balance date", bal.sourceline, required=True)
    return code.upper(), amount, day, bal.sourceline, currency


def _pick(balances, codes):
    for code in codes:
        for balance in balances:
            if balance[0] == code:
                return balance
    return None


def _line(entry, number: int, currency: str) -> ParsedLine:
    where = entry.sourceline
    amount, amount_ccy = _amount(entry, "entry amount")
    booked = _date(entry.find("BookgDt"), "booking date", where, required=True)
    value = _date(entry.find("ValDt"), "value date", where, required=False)
    details = entry.findall("NtryDtls/TxDtls")
    single = details[0] if len(details) == 1 else None
    credit = amount > 0
    bank_id = _text(entry, "AcctSvcrRef") or (
        _text(single, "Refs/AcctSvcrRef") if single is not None else ""
    )
    references = []
    if single is not None:
        references += [
            _text(single, "RmtInf/Strd/CdtrRefInf/Ref"),
            _text(single, "Refs/EndToEndId"),
        ]
    references.append(_text(entry, "NtryRef"))
    references = [r for r in references if r and r.upper() != "NOTPROVIDED"]
    counterparty = account = ""
    if single is not None:
        side = "Dbtr" if credit else "Cdtr"
        party = single.find(f"RltdPties/{side}")
        if party is not None:
            counterparty = _text(party, "Nm") or _text(party, "Pty/Nm")
        account = _text(single, f"RltdPties/{side}Acct/Id/IBAN") or _text(
            single, f"RltdPties/{side}Acct/Id/Othr/Id"
        )
    texts = [" ".join(t.split()) for t in entry.xpath("NtryDtls/TxDtls/RmtInf/Ustrd/text()")]
    texts += [_text(entry, "AddtlNtryInf")]
    texts += [" ".join(t.split()) for t in entry.xpath("NtryDtls/TxDtls/AddtlTxInf/text()")]
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


def _amount(element, what: str) -> tuple[Decimal, str]:
    amt = element.find("Amt")
    where = element.sourceline
    if amt is None or not (amt.text or "").strip():
        raise StatementParseError(f"{what} missing (<Amt>)", where)
    value = to_money(amt.text, what=what, line=amt.sourceline)
    indicator = _text(element, "CdtDbtInd").upper()
    if indicator not in ("CRDT", "DBIT"):
        raise StatementParseError(
            f"{what}: credit/debit indicator {indicator!r} is not CRDT or DBIT", where
        )
    return (value if indicator == "CRDT" else -value), amt.get("Ccy", "")


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _date(holder, what: str, where: int, *, required: bool) -> datetime.date | None:
    text = ""
    if holder is not None:
        text = _text(holder, "Dt") or _text(holder, "DtTm")
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


def _text(element, path: str) -> str:
    if element is None:
        return ""
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""
