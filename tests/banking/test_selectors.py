"""Cash position, dimensional analysis, transfer tracking: figures by hand, and on PostgreSQL
the plans (index scans on the transactions, never a sequential scan)."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from banking import selectors, services
from banking.models import BankTransaction
from core.errors import ValidationFailed
from tests.banking.makers import bank_account_for

D = date
pytestmark = pytest.mark.django_db


@pytest.fixture
def august(bank):
    """Main (opening 100,000.00 on 2025-07-01) in August 2026: a 75,000 deposit for the Dhaka
    cost centre on the 5th, a 1,234.56 fee with no dimension on the 14th (branch Gulshan),
    interest 250 on 30 September, and a draft withdrawal that does not count."""
    bank.txn(
        kind="deposit",
        amount="75000.00",
        date=D(2026, 8, 5),
        counter_account=bank.account("4200"),
        cost_center=bank.cost_center,
        project=bank.project,
        branch="Motijheel",
        post=True,
    )
    bank.txn(kind="fee", amount="1234.56", date=D(2026, 8, 14), branch="Gulshan", post=True)
    bank.txn(kind="interest", amount="250.00", date=D(2026, 9, 30), post=True)
    bank.txn(
        kind="withdrawal",
        amount="999.00",
        date=D(2026, 8, 20),
        counter_account=bank.account("6700"),
    )
    return bank


def test_cash_position_is_the_opening_balance_plus_posted_transactions(august):
    bank = august
    position = selectors.cash_position(
        company=bank.company, bank_account=bank.main, as_of=D(2026, 8, 31)
    )
    (main,) = position["accounts"]
    assert main["balance"] == Decimal("173765.44")  # 100,000 + 75,000 − 1,234.56
    assert (main["period_inflow"], main["period_outflow"]) == (
        Decimal("75000.00"),
        Decimal("1234.56"),
    )
    series = {point["date"]: point["balance"] for point in main["series"]}
    assert len(series) == 31
    assert series[D(2026, 8, 4)] == Decimal("100000.00")
    assert series[D(2026, 8, 5)] == Decimal("175000.00")
    assert series[D(2026, 8, 13)] == Decimal("175000.00")
    assert series[D(2026, 8, 31)] == Decimal("173765.44")

    earlier = selectors.cash_position(
        company=bank.company, bank_account=bank.main, as_of="2026-08-10"
    )
    assert earlier["accounts"][0]["balance"] == Decimal("175000.00")
    assert len(earlier["accounts"][0]["series"]) == 10  # 1..10 August
    later = selectors.book_balance(bank_account=bank.main, as_of=D(2026, 9, 30))
    assert later == Decimal("174015.44")


def test_cash_position_of_every_account_totals_per_currency(august):
    bank = august
    services.bank_transfer_receive(
        actor=bank.clerk,
        transfer=services.bank_transfer_send(
            actor=bank.clerk,
            transfer=services.bank_transfer_create(
                actor=bank.clerk,
                from_account=bank.main,
                to_account=bank.second,
                amount="10000.00",
                date=D(2026, 8, 20),
            ),
        ),
        date=D(2026, 8, 21),
    )
    position = selectors.cash_position(company=bank.company, as_of=D(2026, 8, 31))
    balances = {row["name"]: row["balance"] for row in position["accounts"]}
    assert balances == {"Main": Decimal("163765.44"), "Second": Decimal("10000.00")}
    assert position["totals"] == [{"currency": "BDT", "balance": Decimal("173765.44")}]


def test_cash_position_by_cost_center_splits_the_balance(august):
    bank = august
    position = selectors.cash_position(
        company=bank.company, bank_account=bank.main, as_of=D(2026, 8, 31), by="cost_center"
    )
    rows = {row["code"]: row for row in position["breakdown"]}
    assert rows["CC-DHK"]["balance"] == Decimal("75000.00")
    unassigned = rows[""]
    assert unassigned["opening"] == Decimal("100000.00")
    assert unassigned["outflow"] == Decimal("1234.56")
    assert unassigned["balance"] == Decimal("98765.44")
    assert sum(row["balance"] for row in position["breakdown"]) == Decimal("173765.44")

    by_branch = selectors.cash_position(
        company=bank.company, bank_account=bank.main, as_of=D(2026, 8, 31), by="branch"
    )
    branches = {row["key"]: row["balance"] for row in by_branch["breakdown"]}
    assert branches == {
        "Motijheel": Decimal("75000.00"),
        "Gulshan": Decimal("-1234.56"),
        "": Decimal("100000.00"),
    }


def test_dimensional_analysis_gives_inflow_outflow_and_net_per_value(august):
    bank = august
    result = selectors.dimensional_analysis(
        bank_account=bank.main, period="2026-08", dimension="project"
    )
    rows = [(r["code"], r["inflow"], r["outflow"], r["net"], r["count"]) for r in result["rows"]]
    assert rows == [
        ("P-ERP", Decimal("75000.00"), Decimal("0.00"), Decimal("75000.00"), 1),
        ("", Decimal("0.00"), Decimal("1234.56"), Decimal("-1234.56"), 1),
    ]
    assert result["totals"]["net"] == Decimal("73765.44")
    september = selectors.dimensional_analysis(
        bank_account=bank.main, period="2026-09", dimension="department"
    )
    assert [(r["name"], r["inflow"]) for r in september["rows"]] == [
        ("(no department)", Decimal("250.00"))
    ]
    with pytest.raises(ValidationFailed):
        selectors.dimensional_analysis(bank_account=bank.main, period="2026-8", dimension="x")


def test_period_bounds():
    assert selectors.period_bounds("2026-02") == (D(2026, 2, 1), D(2026, 2, 28))
    assert selectors.period_bounds(D(2028, 2, 15)) == (D(2028, 2, 1), D(2028, 2, 29))
    assert selectors.period_bounds(("2026-01-05", "2026-03-01")) == (D(2026, 1, 5), D(2026, 3, 1))
    for bad in ("2026-13", "Aug", None):
        with pytest.raises(ValidationFailed):
            selectors.period_bounds(bad)


def test_transfer_tracking_counts_statuses_and_ages_open_transfers(bank):
    from tests.banking.test_transfers import clear_legs

    def transfer(day, amount, send=False, receive=None, cancel=False, clear=False):
        made = services.bank_transfer_create(
            actor=bank.clerk,
            from_account=bank.main,
            to_account=bank.second,
            amount=amount,
            date=day,
            expected_settlement_date=day,
        )
        if cancel:
            return services.bank_transfer_cancel(actor=bank.clerk, transfer=made)
        if send:
            made = services.bank_transfer_send(actor=bank.clerk, transfer=made)
        for when, part in receive or ():
            services.bank_transfer_receive(actor=bank.clerk, transfer=made, amount=part, date=when)
        if clear:
            clear_legs(bank, made)
        return made

    old = transfer(D(2026, 7, 15), "7000.00", send=True)  # July, still in transit: 47 days
    june = transfer(  # settled in June: not shown
        D(2026, 6, 1), "1.00", send=True, receive=[(D(2026, 6, 2), "1.00")], clear=True
    )
    fresh = transfer(D(2026, 8, 29), "1000.00")  # initiated, 2 days
    partial = transfer(D(2026, 8, 25), "5000.00", send=True, receive=[(D(2026, 8, 26), "3000.00")])
    settled = transfer(
        D(2026, 8, 3), "2000.00", send=True, receive=[(D(2026, 8, 6), "2000.00")], clear=True
    )
    received_not_cleared = transfer(
        D(2026, 8, 20), "400.00", send=True, receive=[(D(2026, 8, 21), "400.00")]
    )
    transfer(D(2026, 8, 10), "300.00", cancel=True)

    report = selectors.transfer_tracking(
        company=bank.company, period="2026-08", as_of=D(2026, 8, 31)
    )
    summary = report["summary"]
    assert summary["initiated"] == {"count": 1, "amount": Decimal("1000.00")}
    # received in full but its legs not cleared by the bank yet: still in transit
    assert summary["in_transit"] == {"count": 3, "amount": Decimal("12400.00")}
    assert summary["settled"] == {"count": 1, "amount": Decimal("2000.00")}
    assert summary["cancelled"] == {"count": 1, "amount": Decimal("300.00")}
    ageing = {row["bucket"]: row for row in report["ageing"]}
    assert ageing["0-2"]["initiated"] == {"count": 1, "amount": Decimal("1000.00")}
    assert ageing["3-7"]["in_transit"] == {
        "count": 1,
        "amount": Decimal("2000.00"),
    }  # 5,000 − 3,000
    assert ageing[">30"]["in_transit"] == {"count": 1, "amount": Decimal("7000.00")}
    assert ageing["8-30"]["in_transit"] == {"count": 1, "amount": Decimal("0.00")}
    items = {row["id"]: row for row in report["transfers"]}
    assert items[old.pk]["age_days"] == 47 and items[old.pk]["overdue"] is True
    assert items[partial.pk]["in_transit"] == Decimal("2000.00")
    assert items[settled.pk]["days_to_settle"] == 3
    assert items[fresh.pk]["bucket"] == "0-2"
    assert june.pk not in items
    assert items[received_not_cleared.pk]["status"] == "in_transit"
    # as it stood on Aug 4: the August transfer was in transit, June's long settled, the
    # late-August ones not yet initiated... (they are outside the as-of date)
    early = selectors.transfer_tracking(company=bank.company, period="2026-08", as_of=D(2026, 8, 4))
    early_items = {row["id"]: row for row in early["transfers"]}
    assert early_items[settled.pk]["status"] == "in_transit"
    assert early_items[old.pk]["status"] == "in_transit"
    only_second = selectors.transfer_tracking(
        company=bank.company, bank_account=bank.second, period="2026-08", as_of=D(2026, 8, 31)
    )
    assert len(only_second["transfers"]) == 6


def test_open_cash_in_transit_by_bank_account(bank):
    services.cash_submission_create(
        actor=bank.clerk,
        bank_account=bank.second,
        branch="Sylhet",
        expected_amount="700.00",
        submitted_on=D(2026, 8, 3),
        from_account=bank.account("1110"),
    )
    assert selectors.cash_in_transit_open(company=bank.company, bank_account=bank.main)[
        "total"
    ] == Decimal("0.00")
    assert selectors.cash_in_transit_open(company=bank.company)["total"] == Decimal("700.00")


def test_the_selectors_run_a_fixed_number_of_queries(august):
    bank = august
    for n in range(30):
        bank.txn(kind="fee", amount="1.00", date=D(2026, 8, 1 + n % 28), post=True, **bank.dims)
    with CaptureQueriesContext(connection) as queries:
        selectors.cash_position(
            company=bank.company, bank_account=bank.main, as_of=D(2026, 8, 31), by="project"
        )
        selectors.dimensional_analysis(
            bank_account=bank.main, period="2026-08", dimension="cost_center"
        )
    assert len(queries) <= 10  # the ledger balance: periods, per-period balances, lines


@pytest.mark.postgres
def test_the_month_of_one_account_is_read_by_index_among_many_rows(bank):
    """300,000 posted transactions over 30 accounts and 400 days; after ANALYZE the selectors'
    queries on the transactions use the (bank_account, date) indexes, never a sequential scan
    of the table. (The figure with 1,000,000 rows is bench/banking.py's.)"""
    accounts = [bank.main] + [bank_account_for(bank.company) for _ in range(29)]
    entry = bank.txn(kind="fee", amount="1.00", date=D(2026, 8, 1), post=True).journal_entry_id
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO banking_banktransaction
                (company_id, bank_account_id, kind, direction, amount, date, reference,
                 counterparty, memo, branch, cost_center_id, project_id, department_id,
                 posting_status, journal_entry_id, posted_at, source, source_id,
                 reconciled_amount, version, created_at, updated_at)
            SELECT %s, (ARRAY[%s])[1 + g %% 30],
                   CASE WHEN g %% 3 = 0 THEN 'deposit' ELSE 'withdrawal' END,
                   CASE WHEN g %% 3 = 0 THEN 'in' ELSE 'out' END,
                   1 + (g %% 1000), DATE '2025-08-01' + (g %% 400), 'R' || g, '', '',
                   '', CASE WHEN g %% 2 = 0 THEN %s END, NULL, NULL,
                   'posted', %s, now(), 'manual', '', 0, 1, now(), now()
              FROM generate_series(1, 300000) AS g
            """.replace("ARRAY[%s]", "ARRAY[" + ",".join(str(a.pk) for a in accounts) + "]"),
            [bank.company.pk, bank.cost_center.pk, entry],
        )
        cursor.execute("ANALYZE banking_banktransaction")
        cursor.execute("ANALYZE banking_bankdailybalance")
    assert BankTransaction.objects.count() > 300000

    with CaptureQueriesContext(connection) as captured:
        position = selectors.cash_position(
            company=bank.company, bank_account=bank.main, as_of=D(2026, 8, 31), by="project"
        )
        selectors.cash_position(  # branch is in the covering index too
            company=bank.company, bank_account=bank.main, as_of=D(2026, 8, 31), by="branch"
        )
        selectors.dimensional_analysis(
            bank_account=bank.main, period="2026-08", dimension="cost_center"
        )
    assert position["accounts"][0]["balance"] != 0
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            if "banking_banktransaction" not in query["sql"]:
                continue
            cursor.execute("EXPLAIN " + query["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
            print(query["sql"], plans[-1], sep="\n")  # shown with pytest -s
    assert plans, "the selectors read banking_banktransaction"
    for plan in plans:
        assert "Seq Scan on banking_banktransaction" not in plan, plan
        assert "banking_txn_account_date" in plan or "banking_txn_unreconciled" in plan, plan
