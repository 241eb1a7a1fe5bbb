"""CSV statements read through a saved column mapping (BankAccount.statement_mapping).

Banks' CSV exports share no layout, so there is no library to lean on: the mapping says how to
read one bank's export, and `CsvMapping.from_dict` is the one validation of it (the model field,
the admin form and the API all go through it).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime
import io
import re
from decimal import Decimal, InvalidOperation

from .types import ParsedLine, ParsedStatement, StatementParseError, to_money

AMOUNT_MODES = ("signed", "debit_credit", "flag")
_COLUMN_FIELDS = (
    "date",
    "value_date",
    "description",
    "reference",
    "counterparty",
    "counterparty_account",
    "bank_id",
    "amount",
    "debit",
    "credit",
    "flag",
    "balance",
)


class CsvMappingError(ValueError):
    """An invalid mapping. `fields` maps each bad key to its messages."""

    def __init__(self, fields: dict[str, list[str]]):
        self.fields = fields
        first = next(iter(fields.items()))
        super().__init__(f"{first[0]}: {first[1][0]}")


Column = str | int


@dataclasses.dataclass(frozen=True)
class CsvMapping:
    date: Column
    amount_mode: str = "signed"
    amount: Column | None = None  # signed mode, and flag mode (unsigned amount)
    debit: Column | None = None  # debit_credit mode
    credit: Column | None = None
    flag: Column | None = None  # flag mode: the column holding the D/C mark
    credit_values: tuple[str, ...] = ("C", "CR", "CRDT", "CREDIT")
    debit_values: tuple[str, ...] = ("D", "DR", "DBIT", "DEBIT")
    value_date: Column | None = None
    description: Column | None = None
    reference: Column | None = None
    counterparty: Column | None = None
    counterparty_account: Column | None = None
    bank_id: Column | None = None
    balance: Column | None = None  # running balance after each row, when the bank gives one
    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"
    decimal_separator: str = "."
    thousands_separator: str = ""
    date_format: str = "%Y-%m-%d"
    skip_rows: int = 0  # lines before the column header (bank name, account, period...)
    has_header: bool = True  # the first row after skip_rows names the columns
    skip_footer: int = 0  # trailing rows to drop (totals)
    currency: str = ""  # blank: the bank account's currency

    @classmethod
    def from_dict(cls, data) -> CsvMapping:
        if isinstance(data, CsvMapping):
            return data
        errors: dict[str, list[str]] = {}

        def bad(key, message):
            errors.setdefault(key, []).append(message)

        if not isinstance(data, dict):
            raise CsvMappingError({"non_field_errors": ["The mapping must be an object."]})
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                bad(key, "Unknown mapping key.")
        values = {k: v for k, v in data.items() if k in known}
        for key in _COLUMN_FIELDS:
            value = values.get(key)
            if value in (None, ""):
                values[key] = None
            elif isinstance(value, bool) or not isinstance(value, (str, int)):
                bad(key, "A column is a header name or a 0-based index.")
            elif isinstance(value, int) and value < 0:
                bad(key, "A column index cannot be negative.")
            elif isinstance(value, str):
                values[key] = value.strip()
        if values.get("date") is None:
            bad("date", "The date column is required.")
        mode = values.get("amount_mode", "signed")
        if mode not in AMOUNT_MODES:
            bad("amount_mode", f"Choose one of {', '.join(AMOUNT_MODES)}.")
        elif mode == "signed" and values.get("amount") is None:
            bad("amount", "A signed amount column is required.")
        elif mode == "debit_credit":
            for key in ("debit", "credit"):
                if values.get(key) is None:
                    bad(key, "Debit and credit columns are both required.")
        elif mode == "flag":
            for key in ("amount", "flag"):
                if values.get(key) is None:
                    bad(key, "The flag layout needs an amount column and a D/C flag column.")
        for key in ("credit_values", "debit_values"):
            if key in values:
                raw = values[key]
                if isinstance(raw, str):
                    raw = [raw]
                if (
                    not isinstance(raw, (list, tuple))
                    or not raw
                    or not all(isinstance(v, str) and v.strip() for v in raw)
                ):
                    bad(key, "A non-empty list of flag values.")
                else:
                    values[key] = tuple(v.strip().upper() for v in raw)
        if set(values.get("credit_values", ())) & set(values.get("debit_values", ())):
            bad("debit_values", "A flag value cannot mean both credit and debit.")
        for key in ("delimiter", "quotechar"):
            value = values.get(key, cls.__dataclass_fields__[key].default)
            if not isinstance(value, str) or len(value) != 1:
                bad(key, "One character.")
        encoding = values.get("encoding", "utf-8")
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            bad("encoding", f"Unknown encoding {encoding!r}.")
        decimal_sep = values.get("decimal_separator", ".")
        if decimal_sep not in (".", ","):
            bad("decimal_separator", "Either '.' or ','.")
        thousands = values.get("thousands_separator", "")
        if thousands not in ("", ".", ",", " ", "'", "\u00a0"):
            bad("thousands_separator", "One of '', '.', ',', ' ', \"'\".")
        elif thousands and thousands == decimal_sep:
            bad("thousands_separator", "Cannot be the decimal separator.")
        date_format = values.get("date_format", "%Y-%m-%d")
        if not isinstance(date_format, str) or "%" not in date_format:
            bad("date_format", "A strftime format such as %d.%m.%Y.")
        else:
            try:
                datetime.date(2024, 12, 31).strftime(date_format)
            except ValueError:
                bad("date_format", "Not a valid date format.")
        for key in ("skip_rows", "skip_footer"):
            value = values.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                bad(key, "A whole number, 0 or more.")
        if not isinstance(values.get("has_header", True), bool):
            bad("has_header", "true or false.")
        named = [k for k in _COLUMN_FIELDS if isinstance(values.get(k), str)]
        if named and values.get("has_header") is False:
            for key in named:
                bad(key, "Columns can be named only when the file has a header row.")
        currency = values.get("currency", "")
        if currency and not re.fullmatch(r"[A-Za-z]{3}", str(currency)):
            bad("currency", "An ISO 4217 code such as BDT.")
        if errors:
            raise CsvMappingError(errors)
        if currency:
            values["currency"] = currency.upper()
        return cls(**values)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["credit_values"] = list(self.credit_values)
        out["debit_values"] = list(self.debit_values)
        return {k: v for k, v in out.items() if v is not None}


def parse_csv(content: bytes, mapping: CsvMapping | dict) -> list[ParsedStatement]:
    if not isinstance(mapping, CsvMapping):
        try:
            mapping = CsvMapping.from_dict(mapping)
        except CsvMappingError as exc:
            raise StatementParseError(f"CSV mapping: {exc}") from None
    try:
        text = content.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        raise StatementParseError(f"not {mapping.encoding} text", line) from None
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text), delimiter=mapping.delimiter, quotechar=mapping.quotechar)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise StatementParseError(f"CSV: {exc}", reader.line_num) from None
    rows = rows[mapping.skip_rows :]
    header: dict[str, int] = {}
    if mapping.has_header:
        if not rows:
            raise StatementParseError("no header row", mapping.skip_rows + 1)
        header_line, names = rows[0]
        header = {name.strip().casefold(): i for i, name in enumerate(names)}
        rows = rows[1:]
    if mapping.skip_footer:
        rows = rows[: len(rows) - mapping.skip_footer] if mapping.skip_footer < len(rows) else []
    indexes = {}
    for key in _COLUMN_FIELDS:
        column = getattr(mapping, key)
        if column is None:
            continue
        if isinstance(column, str):
            if column.casefold() not in header:
                raise StatementParseError(
                    f"column {column!r} ({key}) is not in the header", header_line
                )
            indexes[key] = header[column.casefold()]
        else:
            indexes[key] = column
    currency = mapping.currency
    lines: list[ParsedLine] = []
    balances: list[Decimal] = []
    for line_num, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        cells = _Cells(row, indexes, line_num)
        date = _parse_date(cells.get("date", required=True), mapping.date_format, "date", line_num)
        value_date = cells.get("value_date")
        amount = _row_amount(cells, mapping, line_num)
        if "balance" in indexes and cells.get("balance"):
            balances.append(_number(cells.get("balance"), mapping, "balance", line_num))
        lines.append(
            ParsedLine(
                line_no=len(lines) + 1,
                date=date,
                value_date=_parse_date(value_date, mapping.date_format, "value date", line_num)
                if value_date
                else None,
                amount=amount,
                currency=currency,
                bank_id=cells.get("bank_id"),
                reference=cells.get("reference"),
                counterparty=cells.get("counterparty"),
                counterparty_account=cells.get("counterparty_account").replace(" ", ""),
                description=" ".join(cells.get("description").split()),
                raw=mapping.delimiter.join(row),
                source_line=line_num,
            )
        )
    if not lines:
        raise StatementParseError("the CSV file holds no rows")
    statement = ParsedStatement(
        format="csv",
        account_id="",
        currency=currency,
        lines=lines,
        opening_date=min(line.date for line in lines),
        closing_date=max(line.date for line in lines),
    )
    if balances and len(balances) == len(lines):
        # Rows may run newest first: the opening is the balance before the earliest row.
        first, last = (0, -1) if _oldest_first(lines, balances) else (-1, 0)
        statement.opening_balance = balances[first] - lines[first].amount
        statement.closing_balance = balances[last]
    return [statement]


def _oldest_first(lines: list[ParsedLine], balances: list[Decimal]) -> bool:
    """Do the rows run oldest first? The dates tell when the first and last differ; when they
    are the same day (a one-day export), the running balance tells: oldest first, each row's
    balance is the one above plus its amount; newest first, the one below plus its amount."""
    if lines[0].date != lines[-1].date:
        return lines[0].date < lines[-1].date
    pairs = range(1, len(lines))
    if all(balances[i] == balances[i - 1] + lines[i].amount for i in pairs):
        return True
    return not all(balances[i - 1] == balances[i] + lines[i - 1].amount for i in pairs)


class _Cells:
    def __init__(self, row, indexes, line_num):
        self.row, self.indexes, self.line_num = row, indexes, line_num

    def get(self, key, *, required=False) -> str:
        index = self.indexes.get(key)
        if index is None:
            return ""
        if index >= len(self.row):
            if required:
                raise StatementParseError(
                    f"row has {len(self.row)} columns, {key} is column {index + 1}", self.line_num
                )
            return ""
        value = self.row[index].strip()
        if required and not value:
            raise StatementParseError(f"{key} is empty", self.line_num)
        return value


def _parse_date(text: str, fmt: str, what: str, line: int) -> datetime.date:
    try:
        return datetime.datetime.strptime(text.strip(), fmt).date()  # noqa: DTZ007 (a calendar day)
    except ValueError:
        raise StatementParseError(
            f"{what} {text!r} does not match the format {fmt}", line
        ) from None


_NUMBER_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _number(text: str, mapping: CsvMapping, what: str, line: int) -> Decimal:
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    negative = False
    if value.startswith("(") and value.endswith(")"):
        negative, value = True, value[1:-1]
    if value.endswith("-"):
        negative, value = True, value[:-1]
    if mapping.thousands_separator and mapping.thousands_separator not in (" ", "\u00a0"):
        value = value.replace(mapping.thousands_separator, "")
    if mapping.decimal_separator == ",":
        value = value.replace(",", ".")
    if not _NUMBER_RE.match(value):
        raise StatementParseError(f"{what} {text!r} is not a number", line)
    try:
        number = to_money(value, what=what, line=line)
    except InvalidOperation:
        raise StatementParseError(f"{what} {text!r} is not a number", line) from None
    return -number if negative else number


def _row_amount(cells: _Cells, mapping: CsvMapping, line: int) -> Decimal:
    if mapping.amount_mode == "signed":
        return _number(cells.get("amount", required=True), mapping, "amount", line)
    if mapping.amount_mode == "debit_credit":
        debit_text, credit_text = cells.get("debit"), cells.get("credit")
        debit = abs(_number(debit_text, mapping, "debit", line)) if debit_text else Decimal(0)
        credit = abs(_number(credit_text, mapping, "credit", line)) if credit_text else Decimal(0)
        if debit and credit:
            raise StatementParseError("both debit and credit are filled", line)
        if not debit_text and not credit_text:
            raise StatementParseError("neither debit nor credit is filled", line)
        return credit - debit
    amount = abs(_number(cells.get("amount", required=True), mapping, "amount", line))
    flag = cells.get("flag", required=True).upper()
    if flag in mapping.credit_values:
        return amount
    if flag in mapping.debit_values:
        return -amount
    raise StatementParseError(
        f"flag {flag!r} is neither credit ({'/'.join(mapping.credit_values)}) "
        f"nor debit ({'/'.join(mapping.debit_values)})",
        line,
    )
