"""OFX through ofxparse: the figures each sample file states, and the broken ones refused."""

import datetime
from decimal import Decimal

import pytest

from banking.parsers import StatementParseError, parse_statement
from tests.banking.samples import OFX_BROKEN, OFX_GOOD, assert_every_sample_listed, sample


def test_every_ofx_sample_is_classified():
    assert_every_sample_listed("ofx", ".ofx", OFX_GOOD + OFX_BROKEN)


# file -> [(account, currency, closing balance, closing date, entries, sum of entries)]
EXPECTED = {
    "anzcc": [("1234123412341234", "AUD", "-123.45", "2017-05-10", 1, "-5.50")],
    "bank_medium": [("12300 000012345678", "CAD", "382.34", "2009-05-23", 3, "-345.27")],
    "bank_small": [],
    "checking": [("1452687~7", "USD", "100.99", "2013-05-25", 3, "-59.50")],
    "multiple_accounts2": [
        ("9100", "USD", "111.00", "2012-06-03", 0, "0"),
        ("9200", "USD", "222.00", "2012-06-03", 0, "0"),
    ],
    "suncorp": [("123456789", "AUD", "1234.12", "2013-12-15", 1, "-16.85")],
}


@pytest.mark.parametrize("name", OFX_GOOD)
def test_good_file_figures(name):
    statements = parse_statement(sample(f"ofx/{name}.ofx"))
    got = [
        (
            s.account_id,
            s.currency,
            str(s.closing_balance),
            s.closing_date.isoformat(),
            len(s.lines),
            str(sum((line.amount for line in s.lines), Decimal(0))),
        )
        for s in statements
    ]
    assert got == EXPECTED[name]
    for statement in statements:
        assert statement.format == "ofx"
        assert statement.opening_balance is None  # OFX states no opening balance
        for line in statement.lines:
            assert line.bank_id  # FITID
            assert line.raw.upper().startswith("<STMTTRN>")


def test_checking_entries_by_hand():
    (statement,) = parse_statement(sample("ofx/checking.ofx"))
    first, second, third = statement.lines
    assert (first.date, first.amount, first.bank_id) == (
        datetime.date(2011, 3, 31),
        Decimal("0.01"),
        "0000486",
    )
    assert first.counterparty == "DIVIDEND EARNED FOR PERIOD OF 03"
    assert second.amount == Decimal("-34.51")
    assert third.reference == "319"  # CHECKNUM
    assert statement.opening_date == datetime.date(2000, 1, 1)  # DTSTART


def test_date_is_the_banks_day_not_utc():
    """20090401122017 at -5:EST stays 1 April; an entry late in the evening west of Greenwich
    would move to the next day if converted to UTC."""
    content = sample("ofx/bank_medium.ofx").replace(
        b"20090401122017.000[-5:EST]", b"20090401223000.000[-5:EST]"
    )
    (statement,) = parse_statement(content)
    assert statement.lines[0].date == datetime.date(2009, 4, 1)


@pytest.mark.parametrize(
    ("name", "line", "reason"),
    [
        ("fail_nice/date_missing", 33, "Missing Transaction Date"),
        ("fail_nice/decimal_error", 34, "Invalid Transaction Amount: '$120'"),
        ("fail_nice/empty_balance", 37, "Empty ledger balance"),
    ],
)
def test_broken_file_refused_naming_line_and_reason(name, line, reason):
    with pytest.raises(StatementParseError) as caught:
        parse_statement(sample(f"ofx/{name}.ofx"))
    assert caught.value.line == line
    assert reason in str(caught.value)


def test_repeated_fitid_refused():
    content = sample("ofx/bank_medium.ofx").replace(
        b"0000123456782009040200004", b"0000123456782009040100001"
    )
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content)
    assert "bank id '0000123456782009040100001' repeats the entry on line 15" in str(caught.value)
    assert caught.value.line == 16
