"""What every statement parser returns: plain data, no ORM.

Amounts are SIGNED Decimals (+ money in, - money out) in the statement's currency; dates are the
dates the bank printed (its local calendar day), never shifted through UTC.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


class StatementParseError(Exception):
    """A file that cannot be read as a statement. `line` is the 1-based line of the source file
    (or, for CSV, the data row) where the reading failed, when it is known."""

    def __init__(self, message: str, line: int | None = None):
        self.reason = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)

    @property
    def message(self) -> str:
        return str(self)


@dataclasses.dataclass
class ParsedLine:
    line_no: int  # 1-based position of the entry among the statement's entries
    date: datetime.date  # booking date
    amount: Decimal  # signed
    currency: str
    value_date: datetime.date | None = None
    bank_id: str = ""  # the bank's unique id for the entry (FITID, AcctSvcrRef); "" when none
    reference: str = ""
    counterparty: str = ""
    counterparty_account: str = ""
    description: str = ""
    raw: str = ""  # the entry's source text
    source_line: int | None = None  # line of the file where the entry starts

    def content_key(self) -> str:
        """The entry as it would read in any file that carries it: the basis of the content hash
        for formats without a unique id (MT940, CSV). Neither the file name, the position in the
        file nor the import date is part of it, so the same entry in an overlapping statement
        gives the same key."""
        parts = [
            self.date.isoformat(),
            self.value_date.isoformat() if self.value_date else "",
            f"{self.amount:.2f}",
            self.currency.upper(),
            self.bank_id,
            _norm(self.reference),
            _norm(self.counterparty),
            _norm(self.counterparty_account),
            _norm(self.description),
        ]
        return "\x1f".join(parts)


@dataclasses.dataclass
class ParsedStatement:
    account_id: str  # IBAN or account number as written in the file ("" for CSV)
    currency: str
    lines: list[ParsedLine]
    statement_id: str = ""
    opening_balance: Decimal | None = None
    opening_date: datetime.date | None = None
    closing_balance: Decimal | None = None
    closing_date: datetime.date | None = None
    format: str = ""


def _norm(text: str) -> str:
    return " ".join((text or "").split()).casefold()


def content_hashes(account_key: str, lines: list[ParsedLine]) -> list[str]:
    """sha256 per line of (account, content key, occurrence among identical lines in the file).

    The occurrence number keeps two genuinely identical entries (two coffees of 3.50 on one day)
    apart, while an overlapping file that carries the same two entries gives the same two hashes.
    """
    seen: dict[str, int] = {}
    out = []
    for line in lines:
        key = line.content_key()
        n = seen.get(key, 0)
        seen[key] = n + 1
        digest = hashlib.sha256(f"{account_key}\x1e{key}\x1e{n}".encode()).hexdigest()
        out.append(digest)
    return out


CENT = Decimal("0.01")
# The amount columns hold 18 digits with 2 decimals (below 10**16): a larger figure is a
# broken file, refused naming its line before the database would refuse the whole insert.
MONEY_LIMIT = Decimal("1e16")


def to_money(value: str | Decimal, *, what: str, line: int | None = None) -> Decimal:
    """A decimal amount with at most two places. Trailing zeros beyond the cent are accepted
    (8.850 is 8.85); a real fraction of a cent is refused rather than rounded away."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise StatementParseError(f"{what} {value!r} is not a number", line) from None
    if not amount.is_finite():
        raise StatementParseError(f"{what} {value!r} is not a number", line)
    if abs(amount) >= MONEY_LIMIT:  # before quantize, which fails past 28 digits
        raise StatementParseError(
            f"{what} {value} is too large (at most 16 digits before the decimal point)", line
        )
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if rounded != amount:
        raise StatementParseError(f"{what} {value} has more than two decimal places", line)
    return rounded
