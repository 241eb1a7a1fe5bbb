"""CSV through a saved column mapping: the three amount layouts, European numbers, validation."""

import datetime
from decimal import Decimal

import pytest

from banking.parsers import CsvMapping, CsvMappingError, StatementParseError, parse_statement

SIGNED_EU = """Musterbank Kontoauszug
Konto DE89370400440532013000
Buchungstag;Valuta;Verwendungszweck;Empfaenger;Betrag;Saldo
02.01.2026;03.01.2026;Miete Januar;Hausverwaltung GmbH;-1.234,50;8.765,50
05.01.2026;05.01.2026;Rechnung 2026-17;Kunde AG;2.000,00;10.765,50
""".encode("cp1252")

SIGNED_EU_MAPPING = {
    "delimiter": ";",
    "encoding": "cp1252",
    "decimal_separator": ",",
    "thousands_separator": ".",
    "date_format": "%d.%m.%Y",
    "skip_rows": 2,
    "date": "Buchungstag",
    "value_date": "Valuta",
    "description": "Verwendungszweck",
    "counterparty": "Empfaenger",
    "amount": "Betrag",
    "balance": "Saldo",
    "currency": "eur",
}


def test_signed_amount_with_european_decimal_comma():
    (statement,) = parse_statement(SIGNED_EU, format="csv", mapping=SIGNED_EU_MAPPING)
    first, second = statement.lines
    assert (first.date, first.value_date) == (datetime.date(2026, 1, 2), datetime.date(2026, 1, 3))
    assert first.amount == Decimal("-1234.50")
    assert second.amount == Decimal("2000.00")
    assert (first.counterparty, second.description) == ("Hausverwaltung GmbH", "Rechnung 2026-17")
    assert statement.currency == "EUR"
    # balance before the first row: 8,765.50 after paying 1,234.50
    assert statement.opening_balance == Decimal("10000.00")
    assert statement.closing_balance == Decimal("10765.50")
    assert first.source_line == 4
    assert first.raw == "02.01.2026;03.01.2026;Miete Januar;Hausverwaltung GmbH;-1.234,50;8.765,50"


def test_debit_and_credit_columns_by_index_without_header():
    content = b"2026-02-01,Bank charge,15.00,\n2026-02-03,Receipt INV-9,,1200.00\n"
    mapping = {
        "has_header": False,
        "date": 0,
        "description": 1,
        "amount_mode": "debit_credit",
        "debit": 2,
        "credit": 3,
    }
    (statement,) = parse_statement(content, mapping=mapping)
    assert [line.amount for line in statement.lines] == [Decimal("-15.00"), Decimal("1200.00")]
    assert statement.opening_balance is None


def test_amount_with_dc_flag_column():
    content = b"Date|Text|Amount|DC\n01/03/2026|Salary|5,000.00|CR\n02/03/2026|Rent|1,500.00|DR\n"
    mapping = {
        "delimiter": "|",
        "thousands_separator": ",",
        "date_format": "%d/%m/%Y",
        "date": "Date",
        "description": "Text",
        "amount_mode": "flag",
        "amount": "Amount",
        "flag": "DC",
        "credit_values": ["CR"],
        "debit_values": ["DR"],
    }
    (statement,) = parse_statement(content, format="csv", mapping=mapping)
    assert [line.amount for line in statement.lines] == [Decimal("5000.00"), Decimal("-1500.00")]
    assert statement.lines[0].date == datetime.date(2026, 3, 1)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"Date|Text|Amount|DC\n01/03/2026|Salary|5000.00|XX\n", 2, "flag 'XX' is neither"),
        (b"Date|Text|Amount|DC\n31/02/2026|Salary|5000.00|CR\n", 2, "does not match the format"),
        (
            b"Date|Text|Amount|DC\n01/03/2026|Salary|abc|CR\n01/03/2026|x|1|CR\n",
            2,
            "is not a number",
        ),
        (
            b"Date|Text|Amount|DC\n01/03/2026|ok|1.00|CR\n01/03/2026|Salary|5.001|CR\n",
            3,
            "more than two",
        ),
        (b"Date|Text|Amount\n01/03/2026|Salary|5.00\n", 1, "'DC' (flag) is not in the header"),
    ],
)
def test_broken_row_names_line_and_reason(content, line, reason):
    mapping = {
        "delimiter": "|",
        "date_format": "%d/%m/%Y",
        "date": "Date",
        "amount_mode": "flag",
        "amount": "Amount",
        "flag": "DC",
    }
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content, format="csv", mapping=mapping)
    assert caught.value.line == line
    assert reason in str(caught.value)


def test_both_debit_and_credit_refused():
    mapping = {"date": "d", "amount_mode": "debit_credit", "debit": "dr", "credit": "cr"}
    with pytest.raises(StatementParseError) as caught:
        parse_statement(b"d,dr,cr\n2026-01-01,5,6\n", format="csv", mapping=mapping)
    assert str(caught.value) == "line 2: both debit and credit are filled"


def test_mapping_validation_names_every_bad_field():
    with pytest.raises(CsvMappingError) as caught:
        CsvMapping.from_dict(
            {
                "amount_mode": "debit_credit",
                "debit": "Out",
                "delimiter": ";;",
                "decimal_separator": ",",
                "thousands_separator": ",",
                "date_format": "dd.mm.yyyy",
                "encoding": "klingon",
                "colour": "blue",
                "skip_rows": -1,
            }
        )
    fields = caught.value.fields
    assert set(fields) == {
        "date",
        "credit",
        "delimiter",
        "thousands_separator",
        "date_format",
        "encoding",
        "colour",
        "skip_rows",
    }
    assert fields["colour"] == ["Unknown mapping key."]


def test_named_columns_need_a_header():
    with pytest.raises(CsvMappingError) as caught:
        CsvMapping.from_dict({"has_header": False, "date": "Date", "amount": 1})
    assert caught.value.fields == {
        "date": ["Columns can be named only when the file has a header row."]
    }


def test_mapping_round_trips():
    mapping = CsvMapping.from_dict(SIGNED_EU_MAPPING)
    assert CsvMapping.from_dict(mapping.to_dict()) == mapping
    assert mapping.currency == "EUR"


def test_csv_needs_a_mapping():
    with pytest.raises(StatementParseError, match="needs a column mapping"):
        parse_statement(b"a,b\n1,2\n")


ONE_DAY_NEWEST_FIRST = b"""Date,Text,Amount,Balance
2026-03-02,Card payment,-30.00,970.00
2026-03-02,Transfer in,500.00,1000.00
2026-03-02,Fee,-2.00,500.00
"""


def test_a_one_day_export_newest_first_takes_its_balances_from_the_running_balance():
    """Opening 502.00: -2.00 -> 500.00, +500.00 -> 1,000.00, -30.00 -> 970.00 (read upward)."""
    mapping = {"date": "Date", "description": "Text", "amount": "Amount", "balance": "Balance"}
    (statement,) = parse_statement(ONE_DAY_NEWEST_FIRST, format="csv", mapping=mapping)
    assert statement.opening_balance == Decimal("502.00")
    assert statement.closing_balance == Decimal("970.00")
    oldest_first = b"Date,Text,Amount,Balance\n" + b"".join(
        reversed(ONE_DAY_NEWEST_FIRST.splitlines(keepends=True)[1:])
    )
    (statement,) = parse_statement(oldest_first, format="csv", mapping=mapping)
    assert (statement.opening_balance, statement.closing_balance) == (
        Decimal("502.00"), Decimal("970.00")
    )  # fmt: skip


@pytest.mark.parametrize(
    "amount", ["99999999999999999999.00", "10000000000000000", "-10000000000000000.00"]
)
def test_an_amount_too_large_for_the_books_is_refused_naming_its_line(amount):
    content = f"Date,Amount\n2026-03-02,1.00\n2026-03-03,{amount}\n".encode()
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content, format="csv", mapping={"date": "Date", "amount": "Amount"})
    assert "too large" in str(caught.value)
    assert caught.value.line == 3


def test_the_largest_amount_the_books_hold_is_read():
    content = b"Date,Amount\n2026-03-02,9999999999999999.99\n"
    (statement,) = parse_statement(
        content, format="csv", mapping={"date": "Date", "amount": "Amount"}
    )
    assert statement.lines[0].amount == Decimal("9999999999999999.99")
