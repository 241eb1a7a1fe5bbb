"""MT940 through mt-940: every good sample against the library project's own expected parse."""

import re
from decimal import Decimal

import pytest

from banking.parsers import StatementParseError, parse_statement
from tests.banking.samples import (
    MT940_BROKEN,
    MT940_GOOD,
    assert_every_sample_listed,
    mt940_expected,
    sample,
)


def test_every_mt940_sample_is_classified():
    assert_every_sample_listed("mt940", ".sta", MT940_GOOD + MT940_BROKEN)


def _balance(value):
    return (value["amount"]["amount"], value["date"]) if value else None


@pytest.mark.parametrize("name", MT940_GOOD)
def test_good_file_matches_expected_parse(name):
    statements = parse_statement(sample(f"mt940/{name}.sta"))
    expected = mt940_expected(name)
    lines = [line for s in statements for line in s.lines]
    expected_amounts = [t["data"]["amount"]["amount"] for t in expected["transactions"]]
    assert len(lines) == len(expected_amounts)
    # The expected parse predates mt-940's reversal fix: it reads "RC" (reversal of a credit,
    # i.e. money out) as money in. We read it as money out, which is what makes the statement
    # balance (test_betterplace_reversal_of_credit_is_money_out).
    for line, amount in zip(lines, expected_amounts, strict=True):
        if re.match(r":61:\d{6}(\d{4})?RC", line.raw):
            assert line.amount == -amount
        else:
            assert line.amount == amount
    # The expected parse is one object per file: later statements overwrite earlier balances,
    # so each balance it kept must be one of ours, with its date.
    data = expected["data"]
    openings = {(s.opening_balance, s.opening_date) for s in statements}
    closings = {(s.closing_balance, s.closing_date) for s in statements}
    for key in ("final_opening_balance", "intermediate_opening_balance"):
        if data.get(key):
            assert _balance(data[key]) in openings
    for key in ("final_closing_balance", "intermediate_closing_balance"):
        if data.get(key):
            assert _balance(data[key]) in closings
    assert statements[-1].account_id == data["account_identification"]
    assert all(s.currency == "EUR" for s in statements)
    assert all(line.bank_id == "" for line in lines)  # MT940 has no unique entry id


def test_abnamro_two_statements_by_hand():
    first, second = parse_statement(sample("mt940/jejik-abnamro.sta"))
    assert first.account_id == second.account_id == "517852257"
    assert (first.opening_balance, first.closing_balance) == (Decimal("3236.28"), Decimal("876.84"))
    assert (second.opening_balance, second.closing_balance) == (
        Decimal("2876.84"),
        Decimal("1849.75"),
    )
    assert [len(first.lines), len(second.lines)] == [8, 2]
    assert first.lines[0].amount == Decimal("-9.00")
    assert "KPN - DIGITENNE" in first.lines[0].description
    assert first.lines[0].raw.startswith(":61:1105240524D9,N192NONREF\n:86:GIRO")


def test_betterplace_reversal_of_credit_is_money_out():
    statements = parse_statement(sample("mt940/betterplace-sepa_mt9401.sta"))
    first = statements[0]
    assert first.opening_balance == Decimal("-1234718.36")
    assert first.closing_balance == Decimal("-1237628.23")
    reversal = first.lines[5]
    assert reversal.raw.startswith(":61:0709040904RCR204,88")
    assert reversal.amount == Decimal("-204.88")
    assert first.opening_balance + sum(line.amount for line in first.lines) == first.closing_balance


def test_several_accounts_in_one_file():
    statements = parse_statement(sample("mt940/betterplace-sepa_mt9401.sta"))
    assert len(statements) == 26
    assert len({s.account_id for s in statements}) > 1


def test_rabobank_counterparty_iban_from_the_entry_line():
    statements = parse_statement(sample("mt940/jejik-rabobank-iban.sta"))
    assert statements[0].account_id == "NL71RABO0123456789"
    assert statements[0].lines[0].counterparty_account == "NL70ABNA0987654321"
    assert statements[0].lines[0].date.isoformat() == "2013-01-01"


def test_broken_snippet_refused_naming_the_line():
    with pytest.raises(StatementParseError) as caught:
        parse_statement(sample("mt940/betterplace-sepa_snippet_broken.sta"))
    assert caught.value.line == 6
    assert "second account identification (:25:)" in str(caught.value)
    assert str(caught.value).startswith("line 6: ")


STATEMENT = b""":20:REF1
:25:NL71RABO0123456789
:28C:1
:60F:C260101EUR100,00
:61:2601020102D10,00NTRFNONREF
:86:first
:61:2601030103C5,50NTRFINV-7
:86:second
:62F:C260103EUR95,50
"""


def test_content_key_is_stable_across_files():
    a = parse_statement(STATEMENT)[0].lines
    b = parse_statement(b"junk header\n" + STATEMENT.replace(b":20:REF1", b":20:REF2"))[0].lines
    assert [x.content_key() for x in a] == [y.content_key() for y in b]
    assert a[1].reference == "INV-7" and a[1].amount == Decimal("5.50")


@pytest.mark.parametrize(
    ("broken", "line", "reason"),
    [
        (STATEMENT.replace(b"D10,00NTRF", b"D1x,00NTRF"), 5, "entry (:61:) is malformed"),
        (STATEMENT.replace(b"C260101EUR100,00", b"C260101EUR"), 4, ":60F: balance is malformed"),
        (STATEMENT.replace(b":62F:C260103EUR95,50\n", b""), 1, "without a closing balance"),
        (STATEMENT.replace(b":60F:", b":99X:"), 4, "unknown MT940 tag :99X:"),
        (
            STATEMENT.replace(b":61:2601020102", b":86:x\n:61:2601020102"),
            5,
            "details (:86:) that follow no entry",
        ),
    ],
)
def test_malformed_statement_names_line_and_reason(broken, line, reason):
    with pytest.raises(StatementParseError) as caught:
        parse_statement(broken, format="mt940")
    assert caught.value.line == line
    assert reason in str(caught.value)
