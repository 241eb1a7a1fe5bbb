"""SWIFT MT940 statements, read with `mt-940` (BSD-3).

The library is lenient: it reads a misplaced tag (an `:86:` text written under a second `:25:`)
as a new account number without complaint, and stops with an exception that does not say where.
So the file is first walked tag by tag here, checking the order a statement must follow and the
shape of every balance and entry tag, naming the line that breaks it; only then does the library
read each statement. MT940 has no unique id per entry: `bank_id` stays blank and the import
builds a content hash from date, amount, references and the `:86:` text (ParsedLine.content_key).
"""

from __future__ import annotations

import dataclasses
import re

from .types import ParsedLine, ParsedStatement, StatementParseError, to_money

_TAG_RE = re.compile(r"^:(\d{2}[A-Z]?|NS):(.*)$")
_END_RE = re.compile(r"^-(\}|XXX)?\s*$")
_BALANCE_RE = re.compile(r"^[DC]\d{6}[A-Z]{3}\d+,\d{0,2}$")
_ENTRY_RE = re.compile(r"^\d{6}(\d{4}|\s{4})?R?[DC][A-Z]?\d+,\d{0,2}[NSF][A-Z0-9]{3}")
_KNOWN = {"20", "21", "25", "28", "28C", "60F", "60M", "61", "86", "62F", "62M", "64", "65"}
_KNOWN |= {"13", "13D", "34F", "90C", "90D", "NS"}


@dataclasses.dataclass
class _Tag:
    name: str
    value: str
    line: int


def parse_mt940(content: bytes) -> list[ParsedStatement]:
    import mt940

    text = _decode(content)
    blocks = _check_structure(text)
    try:
        parsed = mt940.parse_statements(text, options=mt940.Options.all())
    except Exception as exc:  # the library raises RuntimeError, InvalidOperation, ValueError, ...
        raise StatementParseError(f"MT940: {' '.join(str(exc).split())[:200]}") from None
    if len(parsed) != len(blocks):
        raise StatementParseError(
            f"MT940: {len(blocks)} statements found but the parser read {len(parsed)}"
        )
    return [_statement(tags, lib) for tags, lib in zip(blocks, parsed, strict=True)]


def _decode(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = content.decode("cp1252", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _check_structure(text: str) -> list[list[_Tag]]:
    """Statements as lists of tags, each statement checked for order and shape."""
    blocks: list[list[_Tag]] = []
    current: list[_Tag] | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        match = _TAG_RE.match(line)
        if match:
            name, value = match.groups()
            if name == "20":
                current = []
                blocks.append(current)
            if current is None:
                continue  # headers (":940:", SWIFT blocks) before the first statement
            if name not in _KNOWN:
                raise StatementParseError(f"unknown MT940 tag :{name}:", number)
            current.append(_Tag(name, value, number))
        elif _END_RE.match(line):
            current = None
        elif current:
            current[-1].value += "\n" + line
        elif line.strip() and current is not None:
            raise StatementParseError("text before the first tag of the statement", number)
    if not blocks:
        raise StatementParseError("MT940: no statement (:20: tag) in the file")
    for block in blocks:
        _check_block(block)
    return blocks


def _check_block(tags: list[_Tag]) -> None:
    state = "header"  # header -> opened (after :60:) -> closed (after :62:)
    seen_25 = False
    previous = ""
    for tag in tags:
        name, line = tag.name, tag.line
        value = tag.value.strip()
        if name == "25":
            if seen_25:
                raise StatementParseError(
                    "a second account identification (:25:) inside one statement", line
                )
            seen_25 = True
        elif name in ("60F", "60M"):
            if state != "header" or not seen_25:
                raise StatementParseError(f":{name}: opening balance out of place", line)
            _check_balance(name, value, line)
            state = "opened"
        elif name == "61":
            if state != "opened":
                raise StatementParseError(
                    "entry (:61:) outside the opening and closing balance", line
                )
            if not _ENTRY_RE.match(value):
                raise StatementParseError(
                    f"entry (:61:) is malformed: {value.splitlines()[0]!r}", line
                )
        elif name == "86":
            if previous != "61" and state != "closed":
                raise StatementParseError("details (:86:) that follow no entry (:61:)", line)
        elif name in ("62F", "62M"):
            if state != "opened":
                raise StatementParseError(f":{name}: closing balance out of place", line)
            _check_balance(name, value, line)
            state = "closed"
        elif name in ("64", "65"):
            if state != "closed":
                raise StatementParseError(f":{name}: balance before the closing balance", line)
            _check_balance(name, value, line)
        previous = name
    first = tags[0].line
    if not seen_25:
        raise StatementParseError("statement without an account identification (:25:)", first)
    if state == "header":
        raise StatementParseError("statement without an opening balance (:60F:/:60M:)", first)
    if state == "opened":
        raise StatementParseError("statement without a closing balance (:62F:/:62M:)", first)


def _check_balance(name: str, value: str, line: int) -> None:
    if not _BALANCE_RE.match(value):
        raise StatementParseError(f":{name}: balance is malformed: {value!r}", line)


def _statement(tags: list[_Tag], lib) -> ParsedStatement:
    data = lib.data
    account = next(t.value.strip() for t in tags if t.name == "25")
    opening = data.get("final_opening_balance") or data.get("intermediate_opening_balance")
    closing = data.get("final_closing_balance") or data.get("intermediate_closing_balance")
    entries = [t for t in tags if t.name == "61"]
    if len(entries) != len(lib):
        raise StatementParseError(
            f"statement has {len(entries)} entries but the parser read {len(lib)}", tags[0].line
        )
    currency = (opening.amount.currency if opening else "") or (lib.currency or "")
    details = _details_by_entry(tags)
    lines = []
    for n, (tag, txn) in enumerate(zip(entries, lib, strict=True), start=1):
        d = txn.data
        booked = d.get("entry_date") or d.get("date")
        narrative = details.get(id(tag), "")
        refs = [
            r
            for r in (d.get("customer_reference"), d.get("bank_reference"))
            if r and r.strip() and r.strip().upper() != "NONREF"
        ]
        raw = f":61:{tag.value}" + (f"\n:86:{narrative}" if narrative else "")
        lines.append(
            ParsedLine(
                line_no=n,
                date=_plain_date(booked),
                value_date=_plain_date(d.get("date")),
                amount=to_money(d["amount"].amount, what="amount", line=tag.line),
                currency=(d.get("currency") or currency or "").upper(),
                bank_id="",
                reference=" ".join(" ".join(refs).split()),
                counterparty=" ".join((d.get("applicant_name") or "").split()),
                counterparty_account=_counterparty_account(d),
                description=" ".join(narrative.split()),
                raw=raw,
                source_line=tag.line,
            )
        )
    return ParsedStatement(
        format="mt940",
        account_id=account,
        currency=currency.upper(),
        statement_id=_statement_id(data),
        opening_balance=to_money(opening.amount.amount, what="opening balance")
        if opening
        else None,
        opening_date=_plain_date(opening.date) if opening else None,
        closing_balance=to_money(closing.amount.amount, what="closing balance")
        if closing
        else None,
        closing_date=_plain_date(closing.date) if closing else None,
        lines=lines,
    )


_IBAN_RE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$")


def _counterparty_account(data) -> str:
    iban = (data.get("applicant_iban") or "").strip()
    if iban:
        return iban
    # Rabobank and others put the counterparty's IBAN on the :61: continuation line.
    extra = "".join((data.get("extra_details") or "").split())
    return extra if _IBAN_RE.match(extra) else ""


def _details_by_entry(tags: list[_Tag]) -> dict[int, str]:
    out = {}
    for previous, tag in zip(tags, tags[1:], strict=False):
        if previous.name == "61" and tag.name == "86":
            out[id(previous)] = tag.value
    return out


def _statement_id(data) -> str:
    number = data.get("statement_number") or ""
    sequence = data.get("sequence_number") or ""
    reference = data.get("transaction_reference") or ""
    return "/".join(p for p in (reference, number, sequence) if p)


def _plain_date(value):
    import datetime

    return datetime.date(value.year, value.month, value.day) if value else None
