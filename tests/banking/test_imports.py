"""statement_import_create: every good sample into a fitting bank account, counts and balances
in the database; duplicates, overlaps, broken files, mismatches, CSV layouts and tenancy."""

import datetime
from decimal import Decimal

import pytest

from accounting import services as ledger
from accounting.models import Account, AccountType
from banking import imports
from banking.imports import statement_import_create
from banking.models import BankAccount, ReconciliationMatch, StatementImport, StatementLine
from core.errors import PermissionDeniedError, ValidationFailed
from core.models import AuditEvent
from tests.banking.samples import sample
from tests.invoicing.conftest import books  # noqa: F401  (the fixture, reused)

D = datetime.date


class Accounts:
    """Bank accounts of company A (or B), each on its own ledger account under 1130."""

    def __init__(self, tenants):
        self.tenants = tenants
        self.clerk = tenants.users_a["clerk"]
        self.codes = iter(range(11301, 11399))

    def make(self, *, company=None, currency="EUR", iban="", masked="", mapping=None):
        company = company or self.tenants.a
        parent = Account.objects.get(company=company, code="1130")
        code = str(next(self.codes))
        ledger_account = ledger.account_create(
            actor=None,
            company=company,
            code=code,
            name=f"Bank {code}",
            type=AccountType.ASSET,
            parent=parent,
            is_postable=True,
        )
        return BankAccount.objects.create(
            company=company,
            name=f"Bank {code}",
            ledger_account=ledger_account,
            currency=currency,
            iban=iban,
            account_number_masked=masked,
            statement_mapping=mapping or {},
        )

    def run(self, account, content, **kwargs):
        return statement_import_create(
            actor=kwargs.pop("actor", self.clerk), bank_account=account, content=content, **kwargs
        )


@pytest.fixture
def accts(books):  # noqa: F811
    return Accounts(books)


def _lines(account):
    return list(StatementLine.objects.filter(bank_account=account).order_by("line_no"))


def _counts():
    return StatementImport.objects.count(), StatementLine.objects.count()


# file, account (iban / masked number), currency, lines, opening, closing, statement id
GOOD = [
    ("ofx/anzcc.ofx", {"masked": "****1234"}, "AUD", 1, None, "-123.45", ""),
    ("ofx/bank_medium.ofx", {"masked": "****5678"}, "CAD", 3, None, "382.34", ""),
    ("ofx/checking.ofx", {"masked": "****6877"}, "USD", 3, None, "100.99", ""),
    ("ofx/multiple_accounts2.ofx", {"masked": "9200"}, "USD", 0, None, "222.00", ""),
    ("ofx/suncorp.ofx", {"masked": "****6789"}, "AUD", 1, None, "1234.12", ""),
    (
        "mt940/jejik-abnamro.sta",
        {"masked": "****2257"},
        "EUR",
        10,
        "3236.28",
        "1849.75",
        "ABN AMRO BANK NV/19321/1 … ABN AMRO BANK NV/19322/1",
    ),
    ("mt940/jejik-ing.sta", {"masked": "****4567"}, "EUR", 7, "0.00", "3.47", "MPBZ/000"),
    (
        "mt940/jejik-rabobank-iban.sta",
        {"iban": "NL71RABO0123456789"},
        "EUR",
        4,
        "1000.00",
        "930.00",
        "940S130101/0 … 940S130101/0",
    ),
    (
        "mt940/betterplace-sepa_mt9401.sta",
        {"masked": "50880050/0194785000888"},
        "EUR",
        12,
        "-3612519.02",
        "-5113593.52",
        "T089414056000001/00004/00001 … T089414056000003/00004/00003",
    ),
    (
        "camt053/camt053.v2.all-balance-types.xml",
        {"iban": "CH2801234000123456789"},
        "EUR",
        1,
        "1.01",
        "4.04",
        "CAMT0532015012200001",
    ),
    (
        "camt053/camt053.v2.five.decimals.xml",
        {"iban": "NL26VAYB8060476890"},
        "EUR",
        1,
        "18.15",
        "27.05",
        "253EURNL26VAYB8060476890",
    ),
    (
        "camt053/camt053.v2.minimal.xml",
        {"iban": "NL26VAYB8060476890"},
        "EUR",
        1,
        "18.15",
        "-27.00",
        "253EURNL26VAYB8060476890",
    ),
    (
        "camt053/camt053.v2.multi.statement.xml",
        {"iban": "NL26 VAYB 8060 4768 90"},
        "EUR",
        2,
        "18.15",
        "20.00",
        "253EURNL26VAYB8060476890 … 254EURNL26VAYB8060476890",
    ),
    (
        "camt053/camt053.v4.xml",
        {"iban": "NL26VAYB8060476890"},
        "EUR",
        1,
        "18.15",
        "-27.00",
        "253EURNL26VAYB8060476890",
    ),
    (
        "camt053/camt053.v8.xml",
        {"iban": "NL26VAYB8060476890"},
        "EUR",
        1,
        "18.15",
        "-27.00",
        "253EURNL26VAYB8060476890",
    ),
]


@pytest.mark.parametrize(
    ("path", "ident", "currency", "count", "opening", "closing", "statement_id"),
    GOOD,
    ids=[g[0] for g in GOOD],
)
def test_good_sample_imports_with_counts_and_balances(
    accts, path, ident, currency, count, opening, closing, statement_id
):
    account = accts.make(currency=currency, **ident)
    content = sample(path)
    record = accts.run(account, content, filename=path.split("/")[-1])
    record = StatementImport.objects.get(pk=record.pk)
    assert record.format == path.split("/")[0].replace("ofx", "ofx")[:7].replace(
        "camt053", "camt053"
    )
    assert (record.line_count, record.new_line_count) == (count, count)
    assert StatementLine.objects.filter(bank_account=account).count() == count
    assert record.opening_balance == (Decimal(opening) if opening else None)
    assert record.closing_balance == Decimal(closing)
    assert record.statement_id == statement_id
    assert bytes(record.raw) == content
    assert record.company_id == account.company_id
    assert record.imported_by == accts.clerk
    for line in _lines(account):
        assert line.raw
        assert line.currency == currency
        assert line.statement_import_id == record.pk


def test_mt940_lines_in_the_database_by_hand(accts):
    account = accts.make(iban="NL71RABO0123456789")
    accts.run(account, sample("mt940/jejik-rabobank-iban.sta"))
    lines = _lines(account)
    assert [(x.line_no, x.date, x.amount) for x in lines] == [
        (1, D(2013, 1, 1), Decimal("-25.00")),
        (2, D(2013, 1, 2), Decimal("-10.00")),
        (3, D(2013, 1, 8), Decimal("-25.00")),
        (4, D(2013, 1, 9), Decimal("-10.00")),
    ]
    assert all(x.bank_id == "" and len(x.content_hash) == 64 for x in lines)
    assert lines[0].counterparty_account == "NL70ABNA0987654321"
    assert lines[0].raw.startswith(":61:130101D000000000025,00N102EREF")


def test_camt_bank_id_stored(accts):
    account = accts.make(iban="NL26VAYB8060476890")
    accts.run(account, sample("camt053/camt053.v4.xml"))
    (line,) = _lines(account)
    assert line.bank_id == "AAAASESS-FP-CN_98765/01"
    assert (line.amount, line.counterparty) == (Decimal("8.85"), "NAME NAME")


def test_same_file_twice_adds_nothing(accts):
    account = accts.make(masked="****2257")
    content = sample("mt940/jejik-abnamro.sta")
    first = accts.run(account, content)
    before = _counts()
    again = accts.run(account, content, filename="renamed.sta")
    assert again.replayed is True and first.replayed is False
    assert again.pk == first.pk
    assert _counts() == before
    assert StatementLine.objects.filter(bank_account=account).count() == 10


MT940_A = b""":20:STMT-A
:25:NL71RABO0123456789
:28C:1
:60F:C260101EUR100,00
:61:2601020102D10,00NTRFNONREF
:86:Coffee
:61:2601020102D10,00NTRFNONREF
:86:Coffee
:61:2601030103C5,50NTRFINV-7
:86:Payment INV-7
:62F:C260103EUR85,50
"""

MT940_B = b""":20:STMT-B
:25:NL71RABO0123456789
:28C:2
:60F:C260101EUR100,00
:61:2601020102D10,00NTRFNONREF
:86:Coffee
:61:2601020102D10,00NTRFNONREF
:86:Coffee
:61:2601030103C5,50NTRFINV-7
:86:Payment INV-7
:61:2601040104D20,00NTRFNONREF
:86:Rent
:62F:C260104EUR65,50
"""


def test_overlapping_file_adds_only_new_lines(accts):
    account = accts.make(iban="NL71RABO0123456789")
    first = accts.run(account, MT940_A)
    assert first.new_line_count == 3  # the two identical coffees are two entries
    second = accts.run(account, MT940_B)
    assert (second.line_count, second.new_line_count, second.skipped_count) == (4, 1, 3)
    (rent,) = StatementLine.objects.filter(statement_import=second)
    assert (rent.amount, rent.description, rent.line_no) == (Decimal("-20.00"), "Rent", 4)
    assert StatementLine.objects.filter(bank_account=account).count() == 4


def test_overlap_by_bank_id(accts):
    account = accts.make(iban="NL26VAYB8060476890")
    accts.run(account, sample("camt053/camt053.v4.xml"))
    reissued = (
        sample("camt053/camt053.v4.xml")
        .replace(b"Ustrd", b"Ustrd")
        .replace(b"<Id>253EURNL26VAYB8060476890</Id>", b"<Id>253-REISSUED</Id>")
    )
    record = accts.run(account, reissued)
    assert (record.line_count, record.new_line_count) == (1, 0)
    assert StatementLine.objects.filter(bank_account=account).count() == 1


@pytest.mark.parametrize(
    ("path", "ident", "line"),
    [
        ("mt940/betterplace-sepa_snippet_broken.sta", {"masked": "****0888"}, 6),
        ("ofx/fail_nice/date_missing.ofx", {"masked": "****9749"}, 33),
        ("ofx/fail_nice/decimal_error.ofx", {"masked": "****9749"}, 34),
        ("ofx/fail_nice/empty_balance.ofx", {"masked": "****9749"}, 37),
        ("camt053/camt053.v2.wrong.xml", {"iban": "NL26VAYB8060476890"}, 3),
    ],
)
def test_broken_file_imports_nothing_and_names_the_line(accts, path, ident, line):
    account = accts.make(currency="EUR", **ident)
    before = _counts()
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample(path))
    assert caught.value.code == "invalid_statement"
    assert f"line {line}: " in caught.value.message
    assert caught.value.fields["line"] == [str(line)]
    assert _counts() == before
    assert AuditEvent.objects.count() == events


def test_empty_ofx_refused(accts):
    account = accts.make(masked="****1234")
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample("ofx/bank_small.ofx"))
    assert caught.value.code == "invalid_statement"
    assert caught.value.message == "The file holds no statement."


def test_iban_mismatch_refused(accts):
    account = accts.make(iban="NL02ABNA0123456789")
    before = _counts()
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample("mt940/jejik-rabobank-iban.sta"))
    assert caught.value.code == "account_mismatch"
    assert "NL71RABO0123456789" in caught.value.message
    assert _counts() == before


def test_account_without_identifier_refused(accts):
    account = accts.make()
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample("mt940/jejik-ing.sta"))
    assert caught.value.code == "account_mismatch"
    assert "no IBAN or account number" in caught.value.message


def test_currency_mismatch_refused(accts):
    account = accts.make(currency="BDT", iban="NL71RABO0123456789")
    before = _counts()
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample("mt940/jejik-rabobank-iban.sta"))
    assert caught.value.code == "currency_mismatch"
    assert "EUR" in caught.value.message and "BDT" in caught.value.message
    assert _counts() == before


def test_multi_account_file_imports_only_this_accounts_statements(accts):
    account = accts.make(masked="50880050/0194774600888")
    record = accts.run(account, sample("mt940/betterplace-sepa_mt9401.sta"))
    assert (record.line_count, record.opening_balance, record.closing_balance) == (
        7,
        Decimal("-1234718.36"),
        Decimal("-1237628.23"),
    )
    total = sum(x.amount for x in _lines(account))
    assert record.opening_balance + total == record.closing_balance
    # the same file into another of the file's accounts is a different import, not a replay
    other = accts.make(masked="50880050/0194777100888")
    second = accts.run(account=other, content=sample("mt940/betterplace-sepa_mt9401.sta"))
    assert second.replayed is False and second.line_count == 2


def test_masked_digits_fitting_several_accounts_refused(accts):
    account = accts.make(masked="****0888")
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample("mt940/betterplace-sepa_mt9401.sta"))
    assert caught.value.code == "account_mismatch"
    assert "Several accounts" in caught.value.message


def test_multi_account_ofx_none_matching_refused(accts):
    account = accts.make(currency="USD", masked="****9300")
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, sample("ofx/multiple_accounts2.ofx"))
    assert caught.value.code == "account_mismatch"
    assert "9100, 9200" in caught.value.message


# --- CSV -----------------------------------------------------------------------------------

EU_SIGNED = (
    "Buchungstag;Verwendungszweck;Betrag\n"
    "02.01.2026;Miete;-1.234,50\n"
    "05.01.2026;Kunde AG;2.000,00\n"
)
EU_MAPPING = {
    "delimiter": ";",
    "decimal_separator": ",",
    "thousands_separator": ".",
    "date_format": "%d.%m.%Y",
    "date": "Buchungstag",
    "description": "Verwendungszweck",
    "amount": "Betrag",
}


def test_csv_signed_amount_european_comma_with_saved_mapping(accts):
    account = accts.make(currency="BDT", mapping=EU_MAPPING)
    record = accts.run(account, EU_SIGNED.encode(), filename="januar.csv")
    assert record.format == "csv"
    assert [(x.date, x.amount) for x in _lines(account)] == [
        (D(2026, 1, 2), Decimal("-1234.50")),
        (D(2026, 1, 5), Decimal("2000.00")),
    ]
    assert all(x.currency == "BDT" for x in _lines(account))


def test_csv_debit_credit_columns(accts):
    account = accts.make(currency="BDT")
    content = (
        b"Date,Narration,Withdrawal,Deposit\n"
        b"2026-02-01,Bank charge,15.00,\n"
        b"2026-02-03,INV-9,,1200.00\n"
    )
    mapping = {
        "date": "Date",
        "description": "Narration",
        "amount_mode": "debit_credit",
        "debit": "Withdrawal",
        "credit": "Deposit",
    }
    record = accts.run(account, content, format="csv", mapping=mapping)
    assert record.new_line_count == 2
    assert [x.amount for x in _lines(account)] == [Decimal("-15.00"), Decimal("1200.00")]


def test_csv_amount_with_dc_flag(accts):
    account = accts.make(currency="BDT")
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
    accts.run(account, content, mapping=mapping)
    assert [x.amount for x in _lines(account)] == [Decimal("5000.00"), Decimal("-1500.00")]


def test_csv_without_mapping_refused(accts):
    account = accts.make(currency="BDT")
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, EU_SIGNED.encode())
    assert caught.value.code == "invalid_format"


def test_csv_bad_mapping_names_the_field(accts):
    account = accts.make(currency="BDT")
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, EU_SIGNED.encode(), mapping={"date": "Buchungstag", "amount_mode": "x"})
    assert caught.value.code == "invalid_mapping"
    assert "mapping.amount_mode" in caught.value.fields


def test_csv_broken_row_names_the_line(accts):
    account = accts.make(currency="BDT", mapping=EU_MAPPING)
    before = _counts()
    content = EU_SIGNED + "06.01.2026;Kaputt;zwölf\n"
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, content.encode())
    assert caught.value.message.endswith("line 4: amount 'zwölf' is not a number")
    assert _counts() == before


# --- tenancy, roles, audit, follow-up -------------------------------------------------------


def test_another_companys_bank_account_cannot_be_targeted(accts):
    theirs = accts.make(company=accts.tenants.b, currency="EUR", iban="NL71RABO0123456789")
    before = _counts()
    with pytest.raises(PermissionDeniedError):
        accts.run(theirs, sample("mt940/jejik-rabobank-iban.sta"))  # company A's clerk
    assert _counts() == before
    # B's owner may
    record = accts.run(theirs, sample("mt940/jejik-rabobank-iban.sta"), actor=accts.tenants.owner_b)
    assert record.company_id == accts.tenants.b.pk


def test_read_only_role_refused(accts):
    account = accts.make(iban="NL71RABO0123456789")
    with pytest.raises(PermissionDeniedError):
        accts.run(
            account, sample("mt940/jejik-rabobank-iban.sta"), actor=accts.tenants.users_a["auditor"]
        )


def test_audit_event_and_reconcile_queued_after_commit(
    accts, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(imports, "_queue_reconcile", queued.append)
    account = accts.make(iban="NL71RABO0123456789")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record = accts.run(account, sample("mt940/jejik-rabobank-iban.sta"))
        assert queued == []  # nothing before commit
    assert len(callbacks) == 1
    assert queued == [account.pk]
    event = AuditEvent.objects.get(action="banking.statement.import", object_id=str(record.pk))
    assert event.company_id == account.company_id
    assert event.after["new_lines"] == 4 and event.after["closing_balance"] == "930.00"
    # a replay queues nothing and records nothing
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        accts.run(account, sample("mt940/jejik-rabobank-iban.sta"))
    assert callbacks == []
    assert AuditEvent.objects.filter(action="banking.statement.import").count() == 1


def test_reconcile_task_queued_with_the_account_id(monkeypatch):
    from banking import tasks

    calls = []
    monkeypatch.setattr(tasks.reconcile_account, "delay", lambda *args: calls.append(args))
    imports._queue_reconcile(42)
    assert calls == [(42,)]


# --- performance ----------------------------------------------------------------------------


def camt_file(iban: str, entries: int) -> bytes:
    head = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-01-31T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>BENCH-1</Id><CreDtTm>2026-01-31T18:00:00</CreDtTm>
<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1000.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-01</Dt></Dt></Bal>
"""
    body = []
    total = Decimal("1000.00")
    for n in range(entries):
        amount = Decimal(n % 997 + 1) / 100 + 1
        credit = n % 3 == 0
        total += amount if credit else -amount
        day = 1 + n % 28
        body.append(
            f'<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="EUR">{amount:.2f}</Amt>'
            f"<CdtDbtInd>{'CRDT' if credit else 'DBIT'}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
            f"<BookgDt><Dt>2026-01-{day:02d}</Dt></BookgDt><ValDt><Dt>2026-01-{day:02d}</Dt></ValDt>"
            f"<AcctSvcrRef>BENCH-{n:06d}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>E2E-{n}"
            f"</EndToEndId></Refs><RltdPties><Dbtr><Nm>Customer {n % 500}</Nm></Dbtr></RltdPties>"
            f"<RmtInf><Ustrd>Invoice INV-{n:06d}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n"
        )
    sign = "CRDT" if total >= 0 else "DBIT"
    tail = (
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{abs(total):.2f}</Amt>'
        f"<CdtDbtInd>{sign}</CdtDbtInd><Dt><Dt>2026-01-31</Dt></Dt></Bal>\n"
    )
    # balances come before entries in camt.053: put the closing balance after the opening one
    head = head + tail
    return (head + "".join(body) + "</Stmt></BkToCstmrStmt></Document>\n").encode()


def test_generated_camt_file_imports(accts):
    account = accts.make(iban="DE89370400440532013000")
    record = accts.run(account, camt_file("DE89370400440532013000", 200))
    assert record.new_line_count == 200
    lines = _lines(account)
    assert record.opening_balance + sum(x.amount for x in lines) == record.closing_balance


@pytest.mark.postgres
def test_ten_thousand_line_camt_imports_in_a_bounded_number_of_queries(
    accts, django_assert_max_num_queries
):
    """10,000 lines through COPY with no query per line. The issue's figure (at most 5 s) is
    measured by bench/banking.py, not here: CI never depends on a wall-clock figure."""
    account = accts.make(iban="DE89370400440532013000")
    content = camt_file("DE89370400440532013000", 10_000)
    with django_assert_max_num_queries(20):
        record = accts.run(account, content)
    assert record.new_line_count == 10_000
    assert StatementLine.objects.filter(bank_account=account).count() == 10_000


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_into_one_account_are_serialised(accts):
    """Two overlapping files and the same file twice, all at once: the account row lock makes
    each import see what the others wrote, so every entry lands once and nothing fails on the
    unique constraints."""
    import threading

    from django.db import connection as main_connection
    from django.db import connections

    account = accts.make(iban="NL71RABO0123456789")
    files = [MT940_A, MT940_B, MT940_B]
    barrier = threading.Barrier(len(files))
    results, errors = [], []

    def work(content):
        try:
            barrier.wait()
            results.append(accts.run(account, content))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(content,)) for content in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert main_connection.vendor == "postgresql"
    assert StatementLine.objects.filter(bank_account=account).count() == 4
    assert StatementImport.objects.filter(bank_account=account).count() == 2
    assert sorted(r.replayed for r in results) == [False, False, True]


# --- review fixes: zero lines, IBAN against masked digits, undo, ignore -----------------------

ZERO_CSV = b"date,amount,text\n2026-03-02,0.00,Card hold released\n2026-03-03,-12.00,Fee\n"
ZERO_MAPPING = {"date": "date", "amount": "amount", "description": "text"}


def test_a_zero_amount_line_is_imported_as_ignored_and_counted(accts):
    account = accts.make(currency="EUR", mapping=ZERO_MAPPING)
    record = accts.run(account, ZERO_CSV)
    assert (record.new_line_count, record.ignored_count) == (2, 1)
    statuses = {line.amount: line.status for line in _lines(account)}
    assert statuses == {Decimal("0.00"): "ignored", Decimal("-12.00"): "unmatched"}
    assert accts.run(account, ZERO_CSV).ignored_count == 1  # the replay says it too


def test_a_full_iban_is_refused_against_four_masked_digits_and_read_against_eight(accts):
    content = camt_file("DE89370400440532013000", 2)
    four = accts.make(masked="****3000")
    with pytest.raises(ValidationFailed) as caught:
        accts.run(four, content)
    assert caught.value.code == "account_mismatch"
    assert "IBAN" in caught.value.message
    eight = accts.make(masked="****32013000")
    assert accts.run(eight, content).new_line_count == 2


def test_an_import_is_deleted_only_while_none_of_its_lines_is_matched(accts):
    from banking import reconciliation, services
    from banking.imports import statement_import_delete, statement_line_ignore
    from core.errors import ConflictError

    account = accts.make(currency="BDT", mapping=ZERO_MAPPING)
    record = accts.run(account, ZERO_CSV)
    line = StatementLine.objects.get(bank_account=account, amount=Decimal("-12.00"))
    fee = services.bank_transaction_create(
        actor=accts.clerk, bank_account=account, kind="fee", amount="12.00",
        date=datetime.date(2026, 3, 3),
    )  # fmt: skip
    services.bank_transaction_post(actor=accts.clerk, transaction=fee)
    ReconciliationMatch.objects.filter(statement_line__bank_account=account).delete()
    (match,) = reconciliation.reconciliation_match(
        actor=accts.clerk, statement_line=line, allocations=[(fee, None)]
    )
    with pytest.raises(ConflictError) as caught:
        statement_import_delete(actor=accts.clerk, statement_import=record)
    assert caught.value.code == "import_matched"
    with pytest.raises(ConflictError):
        statement_line_ignore(actor=accts.clerk, statement_line=line)
    reconciliation.reconciliation_unmatch(actor=accts.clerk, match=match)
    assert statement_import_delete(actor=accts.clerk, statement_import=record)["lines"] == 2
    assert not StatementLine.objects.filter(bank_account=account).exists()
    assert accts.run(account, ZERO_CSV).replayed is False  # the right file goes in again


@pytest.mark.postgres
def test_an_amount_too_large_is_refused_on_postgresql_before_the_insert(accts):
    """The database's numeric(18,2) would refuse the COPY as a whole (a 500); the parser names
    the line instead."""
    account = accts.make(currency="EUR", mapping=ZERO_MAPPING)
    with pytest.raises(ValidationFailed) as caught:
        accts.run(account, b"date,amount,text\n2026-03-02,99999999999999999999.00,big\n")
    assert caught.value.code == "invalid_statement"
    assert "too large" in caught.value.message
    assert not StatementLine.objects.filter(bank_account=account).exists()
