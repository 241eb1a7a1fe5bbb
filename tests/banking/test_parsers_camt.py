"""CAMT.053 (our lxml reader): every good sample against genkgo/camt's expected parse."""

import datetime
from decimal import Decimal

import pytest

from banking.parsers import StatementParseError, parse_statement
from tests.banking.samples import (
    CAMT_BROKEN,
    CAMT_GOOD,
    assert_every_sample_listed,
    camt_expected,
    camt_record_count,
    minor_units,
    sample,
)


def test_every_camt_sample_is_classified():
    assert_every_sample_listed("camt053", ".xml", CAMT_GOOD + CAMT_BROKEN)


def _first(balances, kind):
    return next((b for b in balances if b["getType"] == kind), None)


@pytest.mark.parametrize("name", CAMT_GOOD)
def test_good_file_matches_expected_parse(name):
    statements = parse_statement(sample(f"camt053/{name}.xml"))
    assert len(statements) == camt_record_count(name)
    by_id = {s.statement_id: s for s in statements}
    expected = camt_expected(name)
    assert expected
    for record in expected:
        ours = by_id[record["getId"]]
        assert ours.format == "camt053"
        assert ours.account_id == record["getAccount"]["getIdentification"]
        assert len(ours.lines) == len(record["getEntries"])
        opening = _first(record["getBalances"], "opening")
        closing = _first(record["getBalances"], "closing")
        assert ours.opening_balance == minor_units(opening["getAmount"])
        assert ours.opening_date.isoformat() == opening["getDate"]["0"][:10]
        assert ours.closing_balance == minor_units(closing["getAmount"])
        assert ours.closing_date.isoformat() == closing["getDate"]["0"][:10]


def test_multi_statement_by_hand():
    first, second = parse_statement(sample("camt053/camt053.v2.multi.statement.xml"))
    assert (first.opening_balance, first.closing_balance) == (Decimal("18.15"), Decimal("27.00"))
    assert [line.amount for line in first.lines] == [Decimal("8.85")]
    assert (second.opening_balance, second.closing_balance) == (Decimal("27.00"), Decimal("20.00"))
    debit = second.lines[0]
    assert debit.amount == Decimal("-7.00")
    assert debit.counterparty == "Company Name 2"  # a debit's counterparty is the creditor
    assert debit.counterparty_account == "NL56AGDH9619008421"
    assert (debit.date, debit.value_date) == (
        datetime.date(2014, 12, 31),
        datetime.date(2015, 1, 2),
    )


def test_v4_account_servicer_reference_is_the_bank_id():
    (statement,) = parse_statement(sample("camt053/camt053.v4.xml"))
    assert statement.account_id == "NL26VAYB8060476890"  # Acct/Id/Othr/Id
    assert statement.currency == "EUR"  # no Acct/Ccy: taken from the entries
    line = statement.lines[0]
    assert line.bank_id == "AAAASESS-FP-CN_98765/01"
    assert line.reference == "4654654654654654"
    assert line.raw.startswith("<Ntry")


def test_five_decimals_with_trailing_zeros_read_as_cents():
    (statement,) = parse_statement(sample("camt053/camt053.v2.five.decimals.xml"))
    assert statement.opening_balance == Decimal("18.15")
    assert statement.closing_balance == Decimal("27.05")
    assert statement.lines[0].amount == Decimal("8.85")


def test_fraction_of_a_cent_refused():
    content = sample("camt053/camt053.v2.five.decimals.xml").replace(b">8.850<", b">8.85001<")
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content)
    assert "entry amount 8.85001 has more than two decimal places" in str(caught.value)
    assert caught.value.line == 62


def test_wrong_file_refused():
    with pytest.raises(StatementParseError) as caught:
        parse_statement(sample("camt053/camt053.v2.wrong.xml"))
    assert "no statement" in str(caught.value)
    assert caught.value.line == 3


def test_malformed_xml_names_the_line():
    content = sample("camt053/camt053.v2.minimal.xml").replace(b"</BookgDt>", b"</BookgDat>", 1)
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content, format="camt053")
    assert "not well-formed XML" in str(caught.value)
    assert caught.value.line is not None


def test_missing_booking_date_names_the_entry():
    content = sample("camt053/camt053.v2.minimal.xml").replace(
        b"<Dt>2014-12-31</Dt>\n                </BookgDt>", b"</BookgDt>"
    )
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content)
    assert "booking date missing" in str(caught.value)


ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt>&c;</BkToCstmrStmt></Document>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Id>&xxe;</Id></Stmt></BkToCstmrStmt></Document>
"""


@pytest.mark.parametrize("content", [ENTITY_BOMB, EXTERNAL_ENTITY])
def test_doctype_and_entities_refused(content):
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content, format="camt053")
    assert "DOCTYPE" in str(caught.value)


def test_other_iso_message_refused():
    content = sample("camt053/camt053.v2.minimal.xml").replace(
        b"camt.053.001.02", b"camt.052.001.02"
    )
    with pytest.raises(StatementParseError) as caught:
        parse_statement(content, format="camt053")
    assert "not a camt.053 document" in str(caught.value)
