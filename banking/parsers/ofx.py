"""OFX 1.x (SGML) and 2.x (XML) bank and credit-card statements, read with `ofxparse`.

Library choice (both were run over ../shared/samples/statements/ofx):
- `ofxtools` (GPLv3, maintained, strict) refused three of the six good sample files: checking.ofx
  (a BANKID longer than the spec's nine characters), multiple_accounts2.ofx (a statement with no
  BANKTRANLIST), bank_small.ofx (no SIGNON); and it refused the broken files only for a missing
  header, not for what is wrong in them. Its GPLv3 licence would also oblige anyone who ships
  Kontor (a Docker image to a customer) to ship it under GPLv3, which a proprietary back office
  cannot accept for one file format.
- `ofxparse` (MIT, unmaintained since 2021, lenient) reads all six good files, and with
  `fail_fast=True` refuses each broken file with the reason (missing date, amount '$120', empty
  balance). Chosen. Its weaknesses are handled here: it converts times to naive UTC (so the date
  of an entry posted in the evening west of Greenwich moves a day), so the posting date is read
  from the DTPOSTED text itself; and it does not say which entry failed, so the entry is found
  again to name the line.
"""

from __future__ import annotations

import datetime
import io
import re
import warnings
from decimal import Decimal

from .types import ParsedLine, ParsedStatement, StatementParseError, to_money

_STATEMENT_RE = {
    "bank": re.compile(rb"<STMTRS>(.*?)</STMTRS>", re.IGNORECASE | re.DOTALL),
    "creditcard": re.compile(rb"<CCSTMTRS>(.*?)</CCSTMTRS>", re.IGNORECASE | re.DOTALL),
}
_TXN_RE = re.compile(rb"<STMTTRN>.*?</STMTTRN>", re.IGNORECASE | re.DOTALL)
_DTPOSTED_RE = re.compile(rb"<DTPOSTED>\s*(\d{8})", re.IGNORECASE)
_DTUSER_RE = re.compile(rb"<DTUSER>\s*(\d{8})", re.IGNORECASE)


def parse_ofx(content: bytes) -> list[ParsedStatement]:
    with warnings.catch_warnings():
        # bs4 warns that an XML-looking file goes through its HTML parser: ofxparse's choice.
        warnings.simplefilter("ignore")
        from ofxparse import OfxParser
        from ofxparse.ofxparse import OfxParserException

        try:
            ofx = OfxParser.parse(io.BytesIO(content), fail_fast=True)
        except (OfxParserException, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise _locate(content, exc) from None

    # ofxparse lists bank statements first, then credit-card ones, each in file order: so do we.
    blocks = [m for kind in ("bank", "creditcard") for m in _STATEMENT_RE[kind].finditer(content)]
    accounts = [a for a in ofx.accounts if getattr(a, "statement", None) is not None]
    accounts = [a for a in accounts if type(a.statement).__name__ != "InvestmentStatement"]
    statements = []
    for index, account in enumerate(accounts):
        block = blocks[index] if index < len(blocks) else None
        statements.append(_statement(content, account, block))
    return statements


def _statement(content: bytes, account, block) -> ParsedStatement:
    stmt = account.statement
    currency = (getattr(stmt, "currency", None) or account.curdef or "").upper()
    if not currency:
        raise StatementParseError(f"account {account.account_id}: no currency (CURDEF)")
    txn_blocks = list(_TXN_RE.finditer(block.group(1))) if block is not None else []
    if len(txn_blocks) != len(stmt.transactions):
        txn_blocks = []  # cannot pair source text with entries; keep what ofxparse read
    base = block.start(1) if block is not None else 0
    lines = []
    for n, txn in enumerate(stmt.transactions, start=1):
        raw = txn_blocks[n - 1].group(0) if txn_blocks else b""
        src_line = (
            content.count(b"\n", 0, base + txn_blocks[n - 1].start()) + 1 if txn_blocks else None
        )
        date = _local_date(raw, _DTPOSTED_RE) or txn.date.date()
        user_date = _local_date(raw, _DTUSER_RE) or (
            txn.user_date.date() if txn.user_date else None
        )
        lines.append(
            ParsedLine(
                line_no=n,
                date=date,
                value_date=user_date,
                amount=to_money(Decimal(txn.amount), what="amount", line=src_line),
                currency=currency,
                bank_id=(txn.id or "").strip(),
                reference=(txn.checknum or "").strip() if txn.checknum not in ("", "0") else "",
                counterparty=(txn.payee or "").strip(),
                description=(txn.memo or "").strip(),
                raw=raw.decode("utf-8", "replace"),
                source_line=src_line,
            )
        )
    closing = getattr(stmt, "balance", None)
    closing_date = getattr(stmt, "balance_date", None)
    start = getattr(stmt, "start_date", None)
    return ParsedStatement(
        format="ofx",
        account_id=(account.account_id or "").strip(),
        currency=currency,
        statement_id="",
        # OFX carries no opening balance, only the ledger balance as of a date (LEDGERBAL).
        opening_balance=None,
        opening_date=start.date() if start else None,
        closing_balance=to_money(Decimal(closing), what="ledger balance")
        if closing is not None
        else None,
        closing_date=closing_date.date() if closing_date else None,
        lines=lines,
    )


def _local_date(raw: bytes, pattern: re.Pattern) -> datetime.date | None:
    match = pattern.search(raw)
    if not match:
        return None
    try:
        return datetime.datetime.strptime(match.group(1).decode(), "%Y%m%d").date()  # noqa: DTZ007
    except ValueError:
        return None


def _locate(content: bytes, exc: Exception) -> StatementParseError:
    """Name the entry ofxparse stopped at: re-read each STMTTRN on its own."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from bs4 import BeautifulSoup
        from ofxparse import OfxParser
        from ofxparse.ofxparse import OfxParserException

        for n, match in enumerate(_TXN_RE.finditer(content), start=1):
            line = content.count(b"\n", 0, match.start()) + 1
            soup = BeautifulSoup(match.group(0).decode("utf-8", "replace"), "html.parser")
            element = soup.find("stmttrn")
            try:
                OfxParser.parseTransaction(element)
            except (OfxParserException, ValueError, TypeError, AttributeError, IndexError) as e:
                detail = " ".join(str(e).split()) or type(e).__name__
                return StatementParseError(f"OFX transaction {n}: {detail}", line)
        for tag in (b"<LEDGERBAL>", b"<AVAILBAL>"):
            pos = content.upper().find(tag)
            if pos >= 0 and "balance" in reason.lower():
                return StatementParseError(f"OFX: {reason}", content.count(b"\n", 0, pos) + 1)
    return StatementParseError(f"OFX: {reason}")
