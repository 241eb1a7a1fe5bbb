"""Pay runs end to end through PayrollProcessor: figures an accountant can check by hand."""

from datetime import date
from decimal import Decimal

import pytest

from accounting.models import JournalEntry
from payroll import selectors, services
from payroll.models import Payslip, PayslipLine, PayslipStatus, PeriodStatus, RunStatus
from payroll.processing import PayrollProcessor
from tests.payroll.conftest import deduction_type, employee, monthly, period

D = Decimal
pytestmark = pytest.mark.django_db


def _lines(entry):
    return sorted(
        (
            line.account.roles.first().role if line.account.roles.exists() else line.account.code,
            line.debit,
            line.credit,
            line.department_id,
        )
        for line in entry.lines.select_related("account")
    )


def test_bangladesh_salary_with_provident_fund_and_health_insurance(books, dims):
    """1,200,000 a year, PF 10% pre-tax (employer matches), health 1,500 post-tax, July:
    taxable 90,000 a month, projected 1,080,000: 5,000 + 40,000 + 230,000 x 15% = 79,500 a
    year, /12 = 6,625.00 this month. Net = 100,000 - 10,000 - 6,625 - 1,500 = 81,875.00."""
    company = books.a
    emp = employee(company, "E001", department=dims["ops"], cost_center=dims["dhaka"])
    services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("PF")
    )
    services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("HEALTH"), amount=D("1500.00")
    )
    july = monthly(company, 2025, 7)

    outcome = PayrollProcessor(july).run_payroll()

    assert outcome.status == "completed", outcome.message
    slip = Payslip.objects.get(employee=emp, period=july)
    assert slip.status == PayslipStatus.ISSUED
    assert (slip.gross, slip.pre_tax_deductions, slip.taxable) == (
        D("100000.00"),
        D("10000.00"),
        D("90000.00"),
    )
    assert (slip.income_tax, slip.taxes) == (D("6625.00"), D("6625.00"))
    assert (slip.deductions, slip.employer_contributions, slip.net) == (
        D("11500.00"),
        D("10000.00"),
        D("81875.00"),
    )
    assert [(line.kind, line.code, line.amount) for line in slip.lines.all()] == [
        ("earning", "SALARY", D("100000.00")),
        ("pre_tax", "PF", D("10000.00")),
        ("tax", "INCOME_TAX", D("6625.00")),
        ("post_tax", "HEALTH", D("1500.00")),
        ("employer", "PF", D("10000.00")),
    ]
    run = outcome.run
    assert run.status == RunStatus.COMPLETED and run.payslip_count == 1
    assert (run.gross_total, run.net_total) == (D("100000.00"), D("81875.00"))
    entry = run.journal_entry
    assert entry.idempotency_key == f"payroll-run:{run.pk}"
    assert _lines(entry) == sorted(
        [
            ("salary_expense", D("100000.00"), D("0"), dims["ops"].pk),
            ("employer_contribution_expense", D("10000.00"), D("0"), dims["ops"].pk),
            ("payroll_tax_payable", D("0"), D("6625.00"), None),
            ("deductions_payable", D("0"), D("11500.00"), None),
            ("employer_contributions_payable", D("0"), D("10000.00"), None),
            ("salaries_payable", D("0"), D("81875.00"), None),
        ]
    )
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED


def test_tax_thresholds_by_category_and_mid_year_raise(books):
    """A woman earning 1,080,000 taxable: threshold 400,000, so 5,000 + 40,000 + 180,000 x 15%
    = 72,000 a year, 6,000.00 a month. A general taxpayer on 1,200,000 pays 8,125.00 a month;
    raised to 1,440,000 in October (month 4, 9 periods left, 24,375 withheld): projected
    300,000 + 120,000 x 9 = 1,380,000, tax 5,000 + 40,000 + 75,000 + 30,000 x 20% = 126,000,
    (126,000 - 24,375) / 9 = 11,291.67."""
    company = books.a
    woman = employee(company, "W1", annual_salary=D("1080000.00"), tax_category="women_senior")
    general = employee(company, "G1")
    for month in (7, 8, 9):
        assert PayrollProcessor(monthly(company, 2025, month)).run_payroll().status == "completed"
    assert Payslip.objects.get(employee=woman, period_start=date(2025, 7, 1)).income_tax == D(
        "6000.00"
    )
    september = Payslip.objects.get(employee=general, period_start=date(2025, 9, 1))
    assert september.income_tax == D("8125.00")
    assert (september.ytd_gross, september.ytd_income_tax) == (D("300000.00"), D("24375.00"))

    services.employee_update(actor=None, employee=general, annual_salary=D("1440000.00"))
    assert PayrollProcessor(monthly(company, 2025, 10)).run_payroll().status == "completed"
    october = Payslip.objects.get(employee=general, period_start=date(2025, 10, 1))
    assert october.income_tax == D("11291.67")
    assert october.ytd_income_tax == D("35666.67")


def test_california_overtime_and_social_security(books):
    """The reference's California week at 20.00/h (Mon 10, Tue 13, Wed 8, Thu 8, Fri 8):
    40 h regular, 6 h at 1.5x, 1 h at 2x = 1,020.00; social security 6.2% = 63.24 from the
    employee and 63.24 from the employer; no progressive table for the US here, so net 956.76."""
    company = books.b
    worker = employee(
        company, "H1", pay_type="hourly", hourly_rate=D("20.00"), jurisdiction="US-CA"
    )
    week = period(
        company,
        date(2026, 3, 2),
        date(2026, 3, 8),
        period_type="weekly",
        pay_date=date(2026, 3, 13),
    )
    hours = {2: "10", 3: "13", 4: "8", 5: "8", 6: "8"}
    services.time_entries_upsert(
        actor=None,
        company=company,
        entries=[
            {"employee": worker.pk, "day": date(2026, 3, d), "hours": h} for d, h in hours.items()
        ],
    )
    outcome = PayrollProcessor(week).run_payroll()
    assert outcome.status == "completed", outcome.message
    slip = Payslip.objects.get(employee=worker)
    assert [(x.code, x.quantity, x.amount) for x in slip.lines.filter(kind="earning")] == [
        ("REG", D("40.0000"), D("800.00")),
        ("OT", D("6.0000"), D("180.00")),
        ("DT", D("1.0000"), D("40.00")),
    ]
    assert (slip.gross, slip.taxes, slip.employer_contributions, slip.net) == (
        D("1020.00"),
        D("63.24"),
        D("63.24"),
        D("956.76"),
    )
    assert (slip.regular_hours, slip.overtime_hours, slip.double_time_hours) == (
        D("40.00"),
        D("6.00"),
        D("1.00"),
    )
    entry = outcome.run.journal_entry
    assert entry.total == D("1083.24")


def test_reopen_voids_payslips_reverses_the_entry_and_restores_loans(books):
    company = books.a
    emp = employee(company, "L1")
    loan = services.employee_deduction_create(
        actor=None,
        employee=emp,
        deduction_type=deduction_type("LOAN"),
        amount=D("5000.00"),
        balance=D("12000.00"),
    )
    july = monthly(company, 2025, 7)
    first = PayrollProcessor(july).run_payroll()
    loan.refresh_from_db()
    assert loan.balance == D("7000.00")

    services.payroll_period_reopen(actor=None, period=july, reason="wrong bonus")

    july.refresh_from_db()
    loan.refresh_from_db()
    assert july.status == PeriodStatus.DRAFT  # reopened: activated again explicitly
    assert loan.balance == D("12000.00")
    assert set(Payslip.objects.filter(period=july).values_list("status", flat=True)) == {"void"}
    entry = JournalEntry.objects.get(pk=first.run.journal_entry_id)
    assert entry.status == "reversed"

    services.payroll_period_activate(actor=None, period=july)
    second = PayrollProcessor(july).run_payroll()
    assert second.status == "completed"
    assert second.run.attempt == 2
    assert Payslip.objects.filter(period=july, status="issued").count() == 1
    loan.refresh_from_db()
    assert loan.balance == D("7000.00")


def test_a_completed_period_is_never_paid_again_even_forced(books):
    company = books.a
    employee(company, "E1")
    july = monthly(company, 2025, 7)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    again = PayrollProcessor(july).run_payroll(force=True)
    assert again.status == "already_completed"
    assert Payslip.objects.filter(period=july).count() == 1
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1


def test_uncollectable_deduction_is_carried_and_collected_next_period(books):
    """2,000 a month with health 1,500 and a loan instalment of 1,000 (balance 5,000): July
    pays health and 500 of the loan, carries 500 with a warning, net 0.00. August brings a
    5,000 bonus: health 1,500, loan 1,000 + the 500 carried, net 4,000.00; the loan balance is
    5,000 - 500 - 1,500 = 3,000.00."""
    company = books.a
    emp = employee(company, "C1", annual_salary=D("24000.00"))
    services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("HEALTH"), amount=D("1500.00")
    )
    loan = services.employee_deduction_create(
        actor=None,
        employee=emp,
        deduction_type=deduction_type("LOAN"),
        amount=D("1000.00"),
        balance=D("5000.00"),
    )
    assert PayrollProcessor(monthly(company, 2025, 7)).run_payroll().status == "completed"
    july = Payslip.objects.get(employee=emp, period_start=date(2025, 7, 1))
    assert (july.gross, july.deductions, july.net) == (D("2000.00"), D("2000.00"), D("0.00"))
    assert july.carried == {"LOAN": "500.00"}
    assert any("carried" in warning for warning in july.warnings)

    august = monthly(company, 2025, 8)
    from tests.payroll.conftest import earning_type

    services.employee_earning_create(
        actor=None,
        employee=emp,
        earning_type=earning_type("BONUS"),
        amount=D("5000.00"),
        period=august,
    )
    assert PayrollProcessor(august).run_payroll().status == "completed"
    slip = Payslip.objects.get(employee=emp, period=august)
    assert (slip.gross, slip.deductions, slip.net, slip.carried) == (
        D("7000.00"),
        D("3000.00"),
        D("4000.00"),
        {},
    )
    loan.refresh_from_db()
    assert loan.balance == D("3000.00")


@pytest.mark.parametrize(
    ("period_type", "start", "end", "tax_year_end", "expected"),
    [
        ("monthly", date(2025, 7, 1), date(2025, 7, 31), date(2026, 6, 30), 12),
        ("monthly", date(2025, 10, 1), date(2025, 10, 31), date(2026, 6, 30), 9),
        ("monthly", date(2026, 6, 1), date(2026, 6, 30), date(2026, 6, 30), 1),
        ("semi_monthly", date(2026, 1, 1), date(2026, 1, 15), date(2026, 12, 31), 24),
        ("semi_monthly", date(2026, 12, 16), date(2026, 12, 31), date(2026, 12, 31), 1),
        ("weekly", date(2026, 12, 22), date(2026, 12, 28), date(2026, 12, 31), 1),
        ("weekly", date(2026, 12, 15), date(2026, 12, 21), date(2026, 12, 31), 2),
        ("bi_weekly", date(2026, 1, 1), date(2026, 1, 14), date(2026, 12, 31), 26),
    ],
)
def test_periods_left_in_the_tax_year(period_type, start, end, tax_year_end, expected):
    from payroll.models import PayrollPeriod
    from payroll.processing import remaining_periods

    p = PayrollPeriod(period_type=period_type, start_date=start, end_date=end, pay_date=end)
    assert remaining_periods(p, tax_year_end) == expected


def test_social_security_stops_at_the_wage_base(books):
    """240,000 a year in the US, paid monthly in 2025 (wage base 176,100): January to August
    tax 20,000 x 6.2% = 1,240.00 a month (160,000 of wages); September only the 16,100 left,
    998.20; October nothing. The employer pays the same."""
    company = books.b
    emp = employee(company, "US1", annual_salary=D("240000.00"), jurisdiction="US-TX")
    for month in range(1, 11):
        outcome = PayrollProcessor(monthly(company, 2025, month)).run_payroll()
        assert outcome.status == "completed", outcome.message
    oasdi = {
        line.payslip.period_start.month: line
        for line in PayslipLine.objects.filter(
            payslip__employee=emp, kind="tax", code="OASDI"
        ).select_related("payslip")
    }
    assert oasdi[8].amount == D("1240.00")
    assert (oasdi[9].quantity, oasdi[9].amount) == (D("16100.0000"), D("998.20"))
    assert 10 not in oasdi  # nothing left under the base: no line
    october = Payslip.objects.get(employee=emp, period_start=date(2025, 10, 1))
    assert (october.taxes, october.net) == (D("0.00"), D("20000.00"))
    employer = Payslip.objects.get(employee=emp, period_start=date(2025, 9, 1))
    assert employer.employer_contributions == D("998.20")
    assert sum(line.amount for line in oasdi.values()) == D("10918.20")  # 176,100 x 6.2%


# --- the tax year a payslip belongs to -------------------------------------------------------


def test_oasdi_wage_base_follows_the_pay_date_year(books, statutory):
    """US wages belong to the year they are paid in. December 2025 paid on 5 January 2026 is
    2026 wages: after 200,000 of 2025 wages in January 2025, OASDI on December's 200,000 is
    6.2% of the 2026 base 184,500 = 11,439.00 (with the 2025 key: 0.00)."""
    company = books.b
    employee(company, "U1", annual_salary=D("2400000.00"), jurisdiction="US")
    jan = monthly(company, 2025, 1)
    assert PayrollProcessor(jan).run_payroll(force=True).status == "completed"
    dec = services.payroll_period_create(
        actor=None,
        company=company,
        start_date=date(2025, 12, 1),
        end_date=date(2025, 12, 31),
        pay_date=date(2026, 1, 5),
        activate=True,
    )
    assert PayrollProcessor(dec).run_payroll(force=True).status == "completed"
    slip = Payslip.objects.get(period=dec)
    assert slip.tax_year_start == date(2026, 1, 1)
    assert Payslip.objects.get(period=jan).tax_year_start == date(2025, 1, 1)
    assert slip.lines.get(kind="tax", code="OASDI").amount == D("11439.00")
    assert slip.ytd_gross == D("200000.00")  # January 2025 is another year
    assert selectors.payslip_year_to_date(slip)["gross"] == D("200000.00")


def test_straddling_week_counts_in_the_next_weeks_year_to_date(books, statutory):
    """A week 29 Dec 2025 - 4 Jan 2026 paid on 4 January is 2026 wages; the week after reads
    it as year to date: 1,000 + 1,000 = 2,000 (52,000 / 52 = 1,000 a week)."""
    company = books.b
    employee(company, "U1", annual_salary=D("52000.00"), jurisdiction="US")
    w1 = period(company, date(2025, 12, 29), date(2026, 1, 4), period_type="weekly")
    w2 = period(company, date(2026, 1, 5), date(2026, 1, 11), period_type="weekly")
    assert PayrollProcessor(w1).run_payroll().status == "completed"
    assert PayrollProcessor(w2).run_payroll().status == "completed"
    first, second = Payslip.objects.get(period=w1), Payslip.objects.get(period=w2)
    assert first.tax_year_start == second.tax_year_start == date(2026, 1, 1)
    assert first.ytd_gross == D("1000.00")
    assert second.ytd_gross == D("2000.00")
    assert selectors.payslip_year_to_date(second)["gross"] == D("2000.00")


def test_bangladesh_keeps_the_period_end_for_the_tax_year(books):
    """Bangladesh: June 2026 paid on 3 July 2026 still belongs to income year 2025-26."""
    from payroll.reference_data import payslip_tax_year

    company = books.a
    assert payslip_tax_year("BD", company, date(2026, 6, 30), date(2026, 7, 3)) == (
        date(2025, 7, 1),
        date(2026, 6, 30),
    )
    assert payslip_tax_year("US", books.b, date(2025, 12, 31), date(2026, 1, 5)) == (
        date(2026, 1, 1),
        date(2026, 12, 31),
    )


# --- periods are paid in order; reopening goes back latest first, to draft --------------------


def test_later_period_cannot_be_paid_before_an_earlier_open_one(books):
    from core.errors import ConflictError

    company = books.a
    employee(company, "E001")
    july, august = monthly(company, 2025, 7), monthly(company, 2025, 8)
    outcome = PayrollProcessor(august).run_payroll(force=True)
    assert outcome.status == "not_runnable"
    assert "July" in outcome.message or "2025-07-01" in outcome.message
    with pytest.raises(ConflictError) as caught:
        services.payroll_period_run(actor=None, period=august, force=True)
    assert caught.value.code == "earlier_period_open"
    assert not Payslip.objects.exists()
    august.refresh_from_db()
    assert august.status == PeriodStatus.ACTIVE
    # in order, August's year to date includes July: 100,000 + 100,000
    assert PayrollProcessor(july).run_payroll().status == "completed"
    assert PayrollProcessor(august).run_payroll().status == "completed"
    assert Payslip.objects.get(period=august).ytd_gross == D("200000.00")


def test_a_cancelled_earlier_period_does_not_block(books):
    company = books.a
    employee(company, "E001")
    july, august = monthly(company, 2025, 7), monthly(company, 2025, 8)
    services.payroll_period_cancel(actor=None, period=july)
    assert PayrollProcessor(august).run_payroll().status == "completed"


def test_reopen_refused_while_a_later_period_is_completed(books):
    from core.errors import ConflictError

    company = books.a
    employee(company, "E001")
    july, august = monthly(company, 2025, 7), monthly(company, 2025, 8)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    assert PayrollProcessor(august).run_payroll().status == "completed"
    with pytest.raises(ConflictError) as caught:
        services.payroll_period_reopen(actor=None, period=july, reason="salary was wrong")
    assert caught.value.code == "later_period_completed"
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED
    assert Payslip.objects.filter(status=PayslipStatus.ISSUED).count() == 2
    # latest first works
    services.payroll_period_reopen(actor=None, period=august, reason="salary was wrong")
    services.payroll_period_reopen(actor=None, period=july, reason="salary was wrong")
    assert Payslip.objects.filter(status=PayslipStatus.ISSUED).count() == 0


def test_reopened_period_goes_to_draft_and_is_not_picked_by_the_nightly_run(books):
    from django.utils import timezone

    from core.models import AuditEvent
    from payroll.selectors import periods_due

    company = books.a
    employee(company, "E001")
    july = monthly(
        company, 2025, 7, automation_enabled=True, automation_rule={"days_before_end": 3}
    )
    assert PayrollProcessor(july).run_payroll().status == "completed"
    services.payroll_period_reopen(actor=None, period=july, reason="wrong salary")
    july.refresh_from_db()
    assert july.status == PeriodStatus.DRAFT
    assert july.pk not in [p.pk for p in periods_due(now=timezone.now())]
    assert PayrollProcessor(july).run_payroll().status == "not_runnable"
    assert AuditEvent.objects.filter(action="payroll.period.reopened").count() == 1
    services.payroll_period_activate(actor=None, period=july)
    assert july.pk in [p.pk for p in periods_due(now=timezone.now())]
    assert PayrollProcessor(july).run_payroll().status == "completed"


def test_carried_loan_instalment_still_repays_the_loan_after_its_row_ended(books):
    """Salary 1,000 a month, loan instalment 1,500 on a 5,000 balance: July collects 1,000
    (income tax nil under the threshold) and carries 500; balance 4,000. The loan row ends on
    31 July; August (bonus 5,000) collects the carried 500 to employee_loans: balance 3,500."""
    from payroll.models import EmployeeDeduction
    from tests.payroll.conftest import earning_type

    company = books.a
    emp = employee(company, "E001", annual_salary=D("12000.00"))
    loan = services.employee_deduction_create(
        actor=None,
        employee=emp,
        deduction_type=deduction_type("LOAN"),
        amount=D("1500.00"),
        balance=D("5000.00"),
    )
    july, august = monthly(company, 2025, 7), monthly(company, 2025, 8)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    assert Payslip.objects.get(period=july).carried == {"LOAN": "500.00"}
    loan.refresh_from_db()
    assert loan.balance == D("4000.00")
    EmployeeDeduction.objects.filter(pk=loan.pk).update(end_date=date(2025, 7, 31))
    services.employee_earning_create(
        actor=None,
        employee=emp,
        earning_type=earning_type("BONUS"),
        amount=D("5000.00"),
        period=august,
    )
    assert PayrollProcessor(august).run_payroll().status == "completed"
    line = Payslip.objects.get(period=august).lines.get(code="LOAN")
    assert (line.amount, line.account_role, line.employee_deduction_id) == (
        D("500.00"),
        "employee_loans",
        loan.pk,
    )
    loan.refresh_from_db()
    assert loan.balance == D("3500.00")
