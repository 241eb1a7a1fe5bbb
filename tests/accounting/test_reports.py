"""Reports from the selectors, with figures an accountant can add up by hand.

The books of Alpha Traders, fiscal year July 2025 to June 2026:
  Jul 01  share capital paid in          bank 5,000.00 / capital 5,000.00
  Aug 05  cash sale (cost centre Dhaka)  bank 1,000.00 / sales 1,000.00
  Aug 20  rent (cost centre Ctg)         rent 300.00   / bank 300.00
  Sep 10  salaries accrued (Dhaka)       salaries 400.00 / salaries payable 400.00
  Sep 25  sale on credit (Ctg)           receivables 250.00 / sales 250.00
"""

from datetime import date
from decimal import Decimal

import pytest

from accounting import selectors, services
from accounting.models import CostCenter
from tests.accounting.conftest import account, post

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def trading(books):
    a = books.a
    dhaka = services.dimension_create(
        actor=None, company=a, model=CostCenter, code="DHK", name="Dhaka"
    )
    ctg = services.dimension_create(actor=None, company=a, model=CostCenter, code="CTG", name="Ctg")
    post(a, "2025-07-01", ("1131", "5000.00", ""), ("3100", "", "5000.00"))
    post(
        a,
        "2025-08-05",
        ("1131", "1000.00", "", {"cost_center": dhaka.pk}),
        ("4100", "", "1000.00", {"cost_center": dhaka.pk}),
    )
    post(
        a,
        "2025-08-20",
        ("6200", "300.00", "", {"cost_center": ctg.pk}),
        ("1131", "", "300.00", {"cost_center": ctg.pk}),
    )
    post(
        a,
        "2025-09-10",
        ("6100", "400.00", "", {"cost_center": dhaka.pk}),
        ("2210", "", "400.00", {"cost_center": dhaka.pk}),
    )
    post(a, "2025-09-25", ("1200", "250.00", "", {"cost_center": ctg.pk}),
         ("4100", "", "250.00", {"cost_center": ctg.pk}))  # fmt: skip
    return books, dhaka, ctg


def _rows(report, *columns):
    return {row["code"]: tuple(row[c] for c in columns) for row in report["rows"]}


def test_trial_balance_for_the_quarter(trading):
    books, _, _ = trading
    report = selectors.trial_balance(company=books.a, date_to=date(2025, 9, 30))
    assert _rows(report, "closing_debit", "closing_credit") == {
        "1131": (D("5700.00"), D("0.00")),
        "1200": (D("250.00"), D("0.00")),
        "2210": (D("0.00"), D("400.00")),
        "3100": (D("0.00"), D("5000.00")),
        "4100": (D("0.00"), D("1250.00")),
        "6100": (D("400.00"), D("0.00")),
        "6200": (D("300.00"), D("0.00")),
    }
    assert report["totals"]["closing_debit"] == report["totals"]["closing_credit"] == D("6650.00")
    assert report["balanced"]


def test_trial_balance_for_a_range_that_cuts_through_months(trading):
    """Aug 10 to Sep 15: whole periods come from balances, the cut months from lines."""
    books, _, _ = trading
    report = selectors.trial_balance(
        company=books.a, date_from=date(2025, 8, 10), date_to=date(2025, 9, 15)
    )
    rows = _rows(report, "opening_debit", "opening_credit", "debit", "credit")
    assert rows["1131"] == (D("6000.00"), D("0.00"), D("0.00"), D("300.00"))
    assert rows["6200"] == (D("0.00"), D("0.00"), D("300.00"), D("0.00"))
    assert rows["6100"] == (D("0.00"), D("0.00"), D("400.00"), D("0.00"))
    assert "1200" not in rows  # posted Sep 25, after the range
    assert report["totals"]["debit"] == report["totals"]["credit"] == D("700.00")


def test_profit_and_loss_whole_and_by_cost_centre(trading):
    books, dhaka, ctg = trading
    report = selectors.profit_and_loss(company=books.a, date_to=date(2025, 9, 30))
    assert report["date_from"] == date(2025, 7, 1)
    assert (report["total_income"], report["total_expenses"]) == (D("1250.00"), D("700.00"))
    assert report["net_profit"] == D("550.00")
    by_dhaka = selectors.profit_and_loss(
        company=books.a, date_to=date(2025, 9, 30), cost_center=dhaka
    )
    assert by_dhaka["net_profit"] == D("600.00")  # 1,000 sales - 400 salaries
    by_ctg = selectors.profit_and_loss(
        company=books.a, date_to=date(2025, 9, 30), cost_center=ctg.pk
    )
    assert by_ctg["net_profit"] == D("-50.00")  # 250 sales - 300 rent


def test_balance_sheet_balances_with_current_earnings(trading):
    books, _, _ = trading
    sheet = selectors.balance_sheet(company=books.a, as_of=date(2025, 9, 30))
    assert sheet["total_assets"] == D("5950.00")  # bank 5,700 + receivables 250
    assert sheet["total_liabilities"] == D("400.00")
    assert sheet["total_equity"] == D("5000.00")
    assert sheet["current_year_earnings"] == D("550.00")
    assert sheet["prior_years_unclosed_earnings"] == D("0.00")
    assert sheet["total_liabilities_and_equity"] == D("5950.00")
    assert sheet["balanced"]
    mid_august = selectors.balance_sheet(company=books.a, as_of=date(2025, 8, 15))
    assert (mid_august["total_assets"], mid_august["current_year_earnings"]) == (
        D("6000.00"),
        D("1000.00"),
    )


def test_last_years_profit_shows_as_unclosed_until_the_year_is_closed(trading):
    books, _, _ = trading
    post(books.a, "2026-07-03", ("1131", "10.00", ""), ("4100", "", "10.00"))
    sheet = selectors.balance_sheet(company=books.a, as_of=date(2026, 7, 31))
    assert sheet["prior_years_unclosed_earnings"] == D("550.00")
    assert sheet["current_year_earnings"] == D("10.00")
    assert sheet["balanced"]


def test_general_ledger_runs_a_balance(trading):
    books, _, _ = trading
    report = selectors.general_ledger(
        company=books.a, account=account(books.a, "1131"), date_from=date(2025, 8, 1),
        date_to=date(2025, 9, 30),
    )  # fmt: skip
    assert report["opening_balance"] == D("5000.00")
    assert [(r["reference"], r["debit"], r["credit"], r["balance"]) for r in report["rows"]] == [
        ("JE/2025-26/000002", D("1000.00"), D("0.00"), D("6000.00")),
        ("JE/2025-26/000003", D("0.00"), D("300.00"), D("5700.00")),
    ]
    assert report["closing_balance"] == D("5700.00")


def test_csv_export_of_the_trial_balance(trading):
    from accounting.exports import csv_text

    books, _, _ = trading
    text = csv_text(selectors.trial_balance(company=books.a, date_to=date(2025, 9, 30)))
    assert "1131,Main operating bank account,asset,0.00,0.00,6000.00,300.00,5700.00,0.00" in text
    assert text.splitlines()[-1] == ",Total,,0.00,0.00,6950.00,6950.00,6650.00,6650.00"


def test_general_ledger_limit_keeps_the_totals_whole(trading):
    books, _, _ = trading
    report = selectors.general_ledger(
        company=books.a, account=account(books.a, "1131"), date_to=date(2025, 9, 30), limit=1
    )
    assert len(report["rows"]) == 1 and report["line_count"] == 3 and report["truncated"]
    assert report["closing_balance"] == D("5700.00")


def test_csv_quotes_text_a_spreadsheet_would_run(trading):
    from accounting.exports import csv_text

    books, _, _ = trading
    post(books.a, "2025-09-26", ("1131", "1.00", ""), ("4100", "", "1.00"), memo="=HYPERLINK(1)")
    text = csv_text(
        selectors.general_ledger(
            company=books.a, account=account(books.a, "1131"), date_to=date(2025, 9, 30)
        )
    )
    assert "'=HYPERLINK(1)" in text
