"""The cash position reads the ledger's balances once for all the bank accounts, not once per
account (bench/load.py found 37 queries for ten accounts)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from banking import services
from banking.reconciliation import _book_balance
from banking.selectors import book_balances, cash_position
from tests.banking.makers import bank_account_for

pytestmark = pytest.mark.django_db
AS_OF = date(2026, 8, 31)


def _fee(account, amount: str) -> None:
    txn = services.bank_transaction_create(
        actor=None,
        bank_account=account,
        kind="fee",
        amount=amount,
        date=date(2026, 8, 10),
        reference=f"FEE-{account.pk}",
    )
    services.bank_transaction_post(actor=None, transaction=txn)


def _queries(company) -> int:
    with CaptureQueriesContext(connection) as captured:
        cash_position(company=company, as_of=AS_OF)
    return len(captured.captured_queries)


def test_cash_position_queries_do_not_grow_with_the_accounts(bank):
    company = bank.company
    one_more = bank_account_for(company, opening_date=date(2026, 7, 1))
    _fee(one_more, "10.00")
    few = _queries(company)
    for n in range(4):
        _fee(bank_account_for(company, opening_date=date(2026, 7, 1)), f"{n + 1}0.00")
    assert _queries(company) == few


def test_book_balances_at_once_equal_one_at_a_time(bank):
    company = bank.company
    early = bank_account_for(company, opening_date=date(2026, 7, 1))
    late = bank_account_for(company, opening_date=date(2026, 9, 1), opening_balance="5.00")
    plain = bank_account_for(company)
    _fee(early, "25.00")
    accounts = [bank.main, bank.second, early, late, plain]
    together = book_balances(accounts=accounts, as_of=AS_OF)
    assert together == {a.pk: _book_balance(a, AS_OF) for a in accounts}
    assert together[early.pk] == Decimal("975.00")  # 1,000.00 opening less the fee
    assert together[late.pk] == Decimal("0.00")  # not open yet on the day
