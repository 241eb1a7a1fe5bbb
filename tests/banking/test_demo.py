"""`seed_demo`'s banking part: two bank accounts, a year of posted transactions with dimensions,
statements generated as CAMT.053 and CSV files and imported through the import service, one
month reconciled and the latest month left with lines to match; fast, and once only."""

from decimal import Decimal

import pytest
from django.db.models import Q

from accounting import demo as accounting_demo
from accounting.models import JournalLine
from banking import demo
from banking.models import (
    BankAccount,
    BankTransaction,
    BankTransfer,
    CashSubmission,
    FloatAllocation,
    LineStatus,
    PostingStatus,
    StatementImport,
    StatementLine,
)
from core import services as core_services
from tests.factories import UserFactory


@pytest.fixture
def dhaka(db):
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    company = core_services.company_create(
        actor=admin,
        name="Dhaka Textiles",
        slug="dhaka-textiles",
        country="BD",
        base_currency="BDT",
        time_zone="Asia/Dhaka",
        fiscal_year_start_month=7,
    )
    accounting_demo.seed(company=company, actor=admin)  # the ledger demo runs first
    return company, admin


def test_the_demo_books_a_year_and_imports_statements_through_the_services(dhaka):
    company, admin = dhaka
    added = demo.seed(company=company, actor=admin)
    assert added > 50
    # A year of months for a July fiscal-year company, whatever today is: the ledger demo no
    # longer closes last year before banking posts (accounting.demo.finish runs last).
    today = company.today()
    months = {
        (d.year, d.month)
        for d in BankTransaction.objects.filter(company=company).values_list("date", flat=True)
    }
    assert len(months) >= 12, sorted(months)
    assert (today.year, today.month) in months

    accounts = BankAccount.objects.filter(company=company)
    assert accounts.count() == 2
    second = accounts.get(name=demo.SECOND)
    assert second.statement_mapping["amount_mode"] == "debit_credit"

    txns = BankTransaction.objects.filter(company=company)
    assert not txns.filter(posting_status=PostingStatus.DRAFT).exists()
    assert set(txns.values_list("kind", flat=True)) >= {
        "deposit", "withdrawal", "fee", "interest", "transfer"
    }  # fmt: skip
    # every posted line carries the dimensions of its transaction
    manual = txns.filter(source="manual").exclude(kind__in=["fee", "interest"])
    assert manual.exists() and not manual.filter(cost_center__isnull=True).exists()
    entry_ids = manual.values_list("journal_entry_id", flat=True)
    assert not JournalLine.objects.filter(entry_id__in=entry_ids, cost_center__isnull=True).exists()

    assert BankTransfer.objects.filter(
        company=company, status__in=["in_transit", "settled"]
    ).exists()
    assert CashSubmission.objects.filter(company=company, status="deposited").exists()
    assert FloatAllocation.objects.filter(company=company).exists()

    imports = StatementImport.objects.filter(company=company)
    assert set(imports.values_list("format", flat=True)) == {"camt053", "csv"}
    assert all(i.new_line_count == i.line_count > 0 for i in imports)
    lines = StatementLine.objects.filter(company=company)
    assert lines.filter(status=LineStatus.MATCHED).exists()
    open_lines = lines.filter(
        Q(status=LineStatus.UNMATCHED) | Q(status=LineStatus.PARTIALLY_MATCHED)
    )
    assert open_lines.exists(), "the latest month keeps lines for the reconciliation screen"


def test_the_statements_balance_with_the_books(dhaka):
    company, admin = dhaka
    demo.seed(company=company, actor=admin)
    main = BankAccount.objects.get(company=company, name=demo.OPERATING)
    for record in StatementImport.objects.filter(bank_account=main).order_by("opening_date"):
        moved = sum(record.lines.values_list("amount", flat=True), Decimal("0.00"))
        assert record.opening_balance + moved == record.closing_balance


def test_seeding_twice_adds_nothing(dhaka):
    company, admin = dhaka
    demo.seed(company=company, actor=admin)
    counts = (BankTransaction.objects.count(), StatementLine.objects.count())
    assert demo.seed(company=company, actor=admin) == 0
    assert (BankTransaction.objects.count(), StatementLine.objects.count()) == counts
