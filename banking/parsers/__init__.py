"""Statement parsers: bytes in, `ParsedStatement`s out. Pure: no ORM, no settings.

`parse_statement(content, format=None, mapping=None)` reads OFX, MT940, CAMT.053 or (with a
mapping) CSV; without a format it tells them apart by their first bytes.
"""

from __future__ import annotations

import re

from .csv import CsvMapping, CsvMappingError
from .types import ParsedLine, ParsedStatement, StatementParseError, content_hashes

FORMATS = ("ofx", "mt940", "camt053", "csv")

__all__ = [
    "FORMATS",
    "CsvMapping",
    "CsvMappingError",
    "ParsedLine",
    "ParsedStatement",
    "StatementParseError",
    "content_hashes",
    "parse_statement",
    "sniff_format",
]

_MT940_RE = re.compile(rb"^:20:", re.MULTILINE)


def sniff_format(content: bytes) -> str | None:
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    upper = head.upper()
    if upper.startswith(b"OFXHEADER") or b"<OFX>" in upper or b"<?OFX" in upper:
        return "ofx"
    if head.startswith(b"<") and (b"camt.053" in head or b"BkToCstmrStmt" in head):
        return "camt053"
    if _MT940_RE.search(content[:65536]):
        return "mt940"
    return None


def parse_statement(
    content: bytes, *, format: str | None = None, mapping: CsvMapping | dict | None = None
) -> list[ParsedStatement]:
    """Every statement in the file, in file order. Raises StatementParseError naming the line
    and the reason; a file that holds no statement at all (an empty OFX) gives []."""
    if not content or not content.strip():
        raise StatementParseError("the file is empty")
    fmt = format or sniff_format(content) or ("csv" if mapping is not None else None)
    if fmt is None:
        raise StatementParseError(
            "unknown statement format: not OFX, MT940 or CAMT.053 "
            "(a CSV file needs a column mapping)"
        )
    if fmt == "ofx":
        from .ofx import parse_ofx

        statements = parse_ofx(content)
    elif fmt == "mt940":
        from .mt940 import parse_mt940

        statements = parse_mt940(content)
    elif fmt == "camt053":
        from .camt import parse_camt053

        statements = parse_camt053(content)
    elif fmt == "csv":
        from .csv import parse_csv

        if mapping is None:
            raise StatementParseError("a CSV statement needs a column mapping")
        statements = parse_csv(content, mapping)
    else:
        raise StatementParseError(f"unknown statement format {fmt!r}; one of {', '.join(FORMATS)}")
    _refuse_repeated_ids(statements)
    return statements


def _refuse_repeated_ids(statements: list[ParsedStatement]) -> None:
    """A bank id names one entry of one account: the same id twice in a file is a broken file
    (importing it would silently drop the second entry)."""
    seen: dict[tuple[str, str], ParsedLine] = {}
    for statement in statements:
        for line in statement.lines:
            if not line.bank_id:
                continue
            key = (statement.account_id, line.bank_id)
            earlier = seen.get(key)
            if earlier is not None:
                where = f"line {earlier.source_line}" if earlier.source_line else "an earlier entry"
                raise StatementParseError(
                    f"bank id {line.bank_id!r} repeats the entry on {where}", line.source_line
                )
            seen[key] = line
