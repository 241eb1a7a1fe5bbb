"""Fiscal years, periods and their transitions, year-end closing, and the company settings the
ledger fixes once it has entries."""

from datetime import date
from decimal import Decimal

import pytest

from accounting import selectors, services
from accounting.models import AccountingPeriod, FiscalYear
from core import services as core_services
from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from tests.accounting.conftest import post

pytestmark = pytest.mark.django_db


def _period(company, day):
    return AccountingPeriod.objects.get(company=company, start_date__lte=day, end_date__gte=day)


def test_a_fiscal_year_has_twelve_months_from_the_company_start_month(books):
    year = FiscalYear.objects.get(company=books.a, name="2025-26")
    periods = list(year.periods.order_by("number"))
    assert (year.start_date, year.end_date) == (date(2025, 7, 1), date(2026, 6, 30))
    assert [p.start_date for p in periods][:2] == [date(2025, 7, 1), date(2025, 8, 1)]
    assert (periods[7].start_date, periods[7].end_date) == (date(2026, 2, 1), date(2026, 2, 28))
    assert periods[-1].end_date == date(2026, 6, 30)
    calendar_year = FiscalYear.objects.get(company=books.b, name="2026")
    assert (calendar_year.start_date, calendar_year.end_date) == (
        date(2026, 1, 1),
        date(2026, 12, 31),
    )


def test_company_creation_sets_up_chart_roles_and_the_current_year(db):
    company = core_services.company_create(actor=None, name="Fresh Co", fiscal_year_start_month=7)
    from accounting.chart import STANDARD_CHART

    assert company.accounts.count() == len(STANDARD_CHART)
    assert company.accounts.filter(is_postable=True).count() == 46
    assert company.account_roles.get(role="retained_earnings").account.code == "3200"
    assert company.fiscal_years.count() == 1
    assert company.fiscal_years.get().start_date == company.fiscal_year_start(company.today())


def test_lock_close_reopen_follow_the_transition_map_and_roles(books):
    july, august = _period(books.a, "2025-07-01"), _period(books.a, "2025-08-01")
    accountant, owner = books.users_a["accountant"], books.users_a["owner"]
    assert services.period_lock(actor=accountant, period=july).status == "locked"
    assert services.period_reopen(actor=accountant, period=july).status == "open"
    with pytest.raises(ConflictError) as caught:
        services.period_close(actor=accountant, period=august)
    assert caught.value.code == "close_in_order"
    services.period_close(actor=accountant, period=july)
    services.period_close(actor=accountant, period=august)
    with pytest.raises(PermissionDeniedError) as denied:
        services.period_reopen(actor=accountant, period=august)
    assert denied.value.code == "role_required"
    with pytest.raises(ConflictError) as caught:
        services.period_reopen(actor=owner, period=july)
    assert caught.value.code == "reopen_in_order"
    assert services.period_reopen(actor=owner, period=august).status == "open"
    with pytest.raises(ConflictError) as caught:
        services.period_lock(actor=owner, period=_period(books.a, "2025-07-01"))
    assert caught.value.code == "invalid_transition"
    with pytest.raises(PermissionDeniedError):
        services.period_lock(actor=books.users_a["clerk"], period=august)


def _year_of_trading(company):
    post(company, "2025-08-01", ("1131", "1000.00", ""), ("4100", "", "1000.00"))
    post(company, "2025-09-01", ("6200", "300.00", ""), ("1131", "", "300.00"))
    post(company, "2026-06-30", ("6100", "400.00", ""), ("2210", "", "400.00"))


def test_year_end_close_moves_profit_to_retained_earnings(books):
    _year_of_trading(books.a)
    year = FiscalYear.objects.get(company=books.a, name="2025-26")
    before = selectors.balance_sheet(company=books.a, as_of=date(2026, 6, 30))
    assert before["current_year_earnings"] == Decimal("300.00")
    closed = services.fiscal_year_close(actor=books.users_a["accountant"], fiscal_year=year)
    assert closed.status == "closed"
    entry = closed.closing_entry
    assert entry.date == date(2026, 6, 30) and entry.source_type == "year_end_close"
    assert sorted(entry.lines.values_list("account__code", "debit", "credit")) == [
        ("3200", Decimal("0.00"), Decimal("300.00")),
        ("4100", Decimal("1000.00"), Decimal("0.00")),
        ("6100", Decimal("0.00"), Decimal("400.00")),
        ("6200", Decimal("0.00"), Decimal("300.00")),
    ]
    assert set(year.periods.values_list("status", flat=True)) == {"closed"}
    sheet = selectors.balance_sheet(company=books.a, as_of=date(2026, 6, 30))
    equity = {row["code"]: row["amount"] for row in sheet["sections"][2]["rows"]}
    assert equity == {"3200": Decimal("300.00")}
    assert sheet["current_year_earnings"] == Decimal("0.00")
    assert sheet["total_assets"] == Decimal("700.00")
    assert sheet["total_liabilities"] == Decimal("400.00")
    assert sheet["balanced"]
    # The year's profit and loss still shows what was earned: closing entries are left out.
    pnl = selectors.profit_and_loss(
        company=books.a, date_from=date(2025, 7, 1), date_to=date(2026, 6, 30)
    )
    assert pnl["net_profit"] == Decimal("300.00")
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2026-06-15", ("1131", "1.00", ""), ("4100", "", "1.00"))
    assert caught.value.code == "period_closed"
    with pytest.raises(ConflictError):
        services.fiscal_year_close(actor=None, fiscal_year=year)
    with pytest.raises(ConflictError) as caught:
        services.period_reopen(actor=books.users_a["owner"], period=_period(books.a, "2026-06-01"))
    assert caught.value.code == "fiscal_year_closed"


def test_years_close_in_order(books):
    later = FiscalYear.objects.get(company=books.a, name="2026-27")
    with pytest.raises(ConflictError) as caught:
        services.fiscal_year_close(actor=None, fiscal_year=later)
    assert caught.value.code == "close_in_order"


def test_a_loss_is_debited_to_retained_earnings(books):
    post(books.a, "2025-08-01", ("6200", "250.00", ""), ("1131", "", "250.00"))
    year = services.fiscal_year_close(
        actor=None, fiscal_year=FiscalYear.objects.get(company=books.a, name="2025-26")
    )
    assert year.closing_entry.lines.get(account__code="3200").debit == Decimal("250.00")


def test_base_currency_and_fiscal_month_are_fixed_once_the_ledger_has_entries(books):
    owner = books.users_a["owner"]
    core_services.company_update(actor=owner, company=books.b, fiscal_year_start_month=4)
    assert list(books.b.fiscal_years.values_list("name", flat=True)) == [
        f"{books.b.fiscal_year_start(books.b.today()).year}-"
        f"{str(books.b.fiscal_year_start(books.b.today()).year + 1)[-2:]}"
    ]
    post(books.a, "2025-08-01", ("1131", "1.00", ""), ("4100", "", "1.00"))
    for change in ({"base_currency": "USD"}, {"fiscal_year_start_month": 1}):
        with pytest.raises(ConflictError) as caught:
            core_services.company_update(actor=owner, company=books.a, **change)
        assert caught.value.code == "ledger_started"
    books.a.refresh_from_db()
    assert (books.a.base_currency, books.a.fiscal_year_start_month) == ("BDT", 7)
    core_services.company_update(actor=owner, company=books.a, name="Alpha Traders Ltd")


def test_open_next_fiscal_years_task_is_idempotent(books, time_machine):
    from accounting.tasks import open_next_fiscal_years

    time_machine.move_to("2027-05-15 10:00:00+06:00")
    open_next_fiscal_years()
    open_next_fiscal_years()
    names = set(FiscalYear.objects.filter(company=books.a).values_list("name", flat=True))
    assert {"2026-27", "2027-28"} <= names
    assert FiscalYear.objects.filter(company=books.a, name="2027-28").count() == 1
