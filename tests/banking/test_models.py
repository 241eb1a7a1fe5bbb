"""The database as backstop: constraints and triggers hold when Python is bypassed
(QuerySet.update, raw SQL), and the makers give one row of every banking model per company."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from banking import services
from banking.models import (
    BankDailyBalance,
    BankTransaction,
    ReconciliationMatch,
    StatementImport,
    StatementLine,
)
from tests.banking.makers import _banking_makers

D = date
DB = pytest.mark.django_db(transaction=True)


def _refused(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def _statement(bank, account, *amounts, day=None):
    day = day or D(2026, 8, 14)
    made = StatementImport.objects.create(
        company=bank.company,
        bank_account=account,
        format="csv",
        sha256=f"{account.pk}-{len(amounts)}-{amounts}"[:64],
        raw=b"",
        line_count=len(amounts),
        new_line_count=len(amounts),
    )
    return [
        StatementLine.objects.create(
            company=bank.company,
            bank_account=account,
            statement_import=made,
            line_no=n,
            date=day,
            amount=Decimal(amount),
            content_hash=f"{made.pk}-{n}",
            bank_id=f"B{made.pk}-{n}",
        )
        for n, amount in enumerate(amounts, 1)
    ]


@DB
def test_a_posted_transaction_is_fixed_in_the_database(bank):
    txn = bank.txn(kind="fee", amount="1234.56", date=D(2026, 8, 14), post=True, **bank.dims)
    rows = BankTransaction.objects.filter(pk=txn.pk)
    for change in (
        {"amount": Decimal("1.00")},
        {"date": D(2026, 8, 15)},
        {"kind": "withdrawal"},
        {"counter_account": bank.account("4200")},
        {"bank_account": bank.second},
        {"cost_center": None},
        {"project": None},
        {"department": None},
        {"posting_status": "draft", "journal_entry": None},
        {"branch": "Sylhet"},
    ):
        _refused(lambda change=change: rows.update(**change))
    if connection.vendor == "postgresql":  # SQLite: services refuse it (see the migration)
        _refused(lambda: rows.delete())
    with connection.cursor() as cursor:
        _refused(
            lambda: cursor.execute(
                "UPDATE banking_banktransaction SET amount = 1 WHERE id = %s", [txn.pk]
            )
        )
    # what reconciliation leaves to people may still move (reconciled_amount follows the
    # matches: PostgreSQL refuses it set directly, see test_reconciliation)
    rows.update(value_date=D(2026, 8, 15), memo="seen")
    if connection.vendor != "postgresql":
        rows.update(reconciled_amount=Decimal("1234.56"))
    else:
        _refused(lambda: rows.update(reconciled_amount=Decimal("1234.56")))
    txn.refresh_from_db()
    assert (txn.amount, txn.value_date) == (Decimal("1234.56"), D(2026, 8, 15))


@DB
def test_check_constraints_on_transactions(bank):
    txn = bank.txn(kind="fee", amount="100.00", date=D(2026, 8, 14))
    rows = BankTransaction.objects.filter(pk=txn.pk)
    _refused(lambda: rows.update(amount=Decimal("0")))
    _refused(lambda: rows.update(reconciled_amount=Decimal("100.01")))
    _refused(lambda: rows.update(reconciled_amount=Decimal("-0.01")))
    _refused(lambda: rows.update(direction="in"))  # a fee is money out
    _refused(lambda: rows.update(posting_status="posted"))  # posted needs its entry
    rows.update(kind="transfer", direction="in")  # a transfer goes either way
    # a draft may still be changed and deleted
    rows.delete()


@DB
def test_daily_balances_follow_posted_transactions_also_in_bulk(bank):
    a = bank.txn(kind="fee", amount="100.00", date=D(2026, 8, 14))
    assert not BankDailyBalance.objects.filter(bank_account=bank.main).exists()
    services.bank_transaction_post(actor=bank.clerk, transaction=a)
    bank.txn(kind="interest", amount="40.00", date=D(2026, 8, 14), post=True)
    # rows written around the services (as a bulk loader would) count when posted
    a.refresh_from_db()
    entry = a.journal_entry
    BankTransaction.objects.bulk_create(
        [
            BankTransaction(
                company=bank.company,
                bank_account=bank.main,
                kind="deposit",
                direction="in",
                amount=Decimal("10.00"),
                date=D(2026, 8, 15),
                posting_status="posted",
                journal_entry=entry,
            )
            for _ in range(3)
        ]
        + [
            BankTransaction(
                company=bank.company,
                bank_account=bank.main,
                kind="deposit",
                direction="in",
                amount=Decimal("99.00"),
                date=D(2026, 8, 15),
                counter_account=bank.account("4200"),
            )
        ]
    )
    days = {
        row.date: (row.inflow, row.outflow, row.count)
        for row in BankDailyBalance.objects.filter(bank_account=bank.main)
    }
    assert days == {
        D(2026, 8, 14): (Decimal("40.00"), Decimal("100.00"), 2),
        D(2026, 8, 15): (Decimal("30.00"), Decimal("0.00"), 3),
    }


@DB
def test_statement_lines_are_unique_per_account_by_bank_id_and_content_hash(bank):
    (line,) = _statement(bank, bank.main, "-50.00")
    fields = {
        "company": bank.company,
        "bank_account": bank.main,
        "statement_import": line.statement_import,
        "line_no": 2,
        "date": line.date,
        "amount": Decimal("-50.00"),
    }
    _refused(lambda: StatementLine.objects.create(**fields, bank_id=line.bank_id, content_hash="x"))
    _refused(lambda: StatementLine.objects.create(**fields, content_hash=line.content_hash))
    # blank bank ids do not clash; another account may hold the same id
    StatementLine.objects.create(**fields, content_hash="y")
    StatementLine.objects.create(**fields, content_hash="z")
    _refused(
        lambda: StatementLine.objects.filter(pk=line.pk).update(reconciled_amount=Decimal("50.01"))
    )


def _match(bank, line, txn, amount, status="accepted"):
    return ReconciliationMatch.objects.create(
        company=bank.company,
        statement_line=line,
        bank_transaction=txn,
        amount=Decimal(amount),
        method="manual",
        status=status,
    )


@DB
@pytest.mark.postgres
def test_accepted_allocations_never_exceed_the_line_or_the_transaction(bank):
    fee = bank.txn(kind="fee", amount="100.00", date=D(2026, 8, 14), post=True)
    other = bank.txn(kind="fee", amount="80.00", date=D(2026, 8, 14), post=True)
    line, second = _statement(bank, bank.main, "-150.00", "-100.00")
    _match(bank, line, fee, "100.00")
    _refused(lambda: _match(bank, line, other, "50.01"))  # 100 + 50.01 > |−150|
    _match(bank, line, other, "50.00")
    _refused(lambda: _match(bank, second, fee, "0.01"))  # the fee is fully allocated
    # suggestions are not allocations: they may overlap until accepted
    suggestion = _match(bank, second, fee, "100.00", status="suggested")
    _refused(lambda: ReconciliationMatch.objects.filter(pk=suggestion.pk).update(status="accepted"))
    # going around with raw SQL is refused the same way
    with connection.cursor() as cursor:
        _refused(
            lambda: cursor.execute(
                "UPDATE banking_reconciliationmatch SET amount = 200 WHERE statement_line_id = %s "
                "AND status = 'accepted'",
                [line.pk],
            )
        )
    # a line is only matched to a transaction of its own bank account
    elsewhere = bank.txn(account=bank.second, kind="fee", amount="5.00", date=D(2026, 8, 14))
    _refused(lambda: _match(bank, second, elsewhere, "5.00", status="suggested"))


@DB
@pytest.mark.postgres
def test_bulk_allocations_are_checked_per_statement(bank):
    fee = bank.txn(kind="fee", amount="100.00", date=D(2026, 8, 14), post=True)
    a, b = _statement(bank, bank.main, "-60.00", "-60.00")
    rows = [
        ReconciliationMatch(
            company=bank.company,
            statement_line=line,
            bank_transaction=fee,
            amount=Decimal("60.00"),
            method="amount_date",
            status="accepted",
        )
        for line in (a, b)
    ]
    _refused(lambda: ReconciliationMatch.objects.bulk_create(rows))
    assert ReconciliationMatch.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["a", "b"])
def test_the_makers_give_one_row_of_each_banking_model_per_company(tenants, which):
    company = getattr(tenants, which)
    for model, make in _banking_makers(company).items():
        row = make()
        assert isinstance(row, model)
        assert row.company_id == company.pk, model.__name__


@pytest.mark.django_db
def test_daily_balances_can_be_rebuilt_from_the_posted_transactions(bank):
    bank.txn(kind="fee", amount="100.00", date=D(2026, 8, 14), post=True)
    bank.txn(kind="interest", amount="40.00", date=D(2026, 8, 14), post=True)
    bank.txn(kind="interest", amount="5.00", date=D(2026, 8, 16))  # draft: not counted
    BankDailyBalance.objects.filter(bank_account=bank.main).update(inflow=Decimal("999.00"))
    assert services.bank_daily_balances_rebuild(company=bank.company) == 1
    (row,) = BankDailyBalance.objects.filter(bank_account=bank.main)
    assert (row.date, row.inflow, row.outflow, row.count) == (
        D(2026, 8, 14),
        Decimal("40.00"),
        Decimal("100.00"),
        2,
    )
