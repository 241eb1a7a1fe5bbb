"""The payroll benchmark's workload, loaded set-based (COPY on PostgreSQL), never through the
services or the processor being measured.

A Bangladesh company (taxpayer income year July to June, BDT) pays December 2025:

- `scale` employees: 70% salaried (annual salary 300,000-3,000,000, about 2% joined and 1% left
  during December: prorated), 30% hourly (150-600 an hour) with a time entry for every working
  day of the month (Fridays off; 7.5-11 hours, so some days and weeks carry overtime);
- the shipped progressive income tax (the open-ended assessment year 2025-26 table) by
  taxpayer category (mostly general, some women / 65+, third gender, freedom fighters);
- the company's own overtime rule for Bangladesh (Labour Act 2006 s.108: over 8 hours a day or
  48 a week at twice the ordinary rate);
- three deductions each: provident fund 10% pre-tax with a 10% employer share, health insurance
  500 post-tax, a loan repayment of 2,000 against a balance;
- five issued months before (July to November), one payslip per employee per month with its
  tax and deduction lines, so the run reads real year-to-date figures;
- departments and cost centres spread over the employees (the journal entry splits salary
  expense by them).
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from bench._bulk import analyze, table_insert

SEED = 4
YEAR, MONTH = 2025, 12
PRIOR_MONTHS = (7, 8, 9, 10, 11)  # issued earlier in the income year (July to November 2025)
SALARIED_SHARE = 0.7
DEPARTMENTS = 6
COST_CENTERS = 4
HEALTH = Decimal("500.00")
LOAN_INSTALMENT = Decimal("2000.00")
LOAN_BALANCE = Decimal("60000.00")
DAILY_HOURS = (
    Decimal("8"),
    Decimal("8"),
    Decimal("8"),
    Decimal("8.5"),
    Decimal("9"),
    Decimal("10"),
    Decimal("7.5"),
    Decimal("8"),
    Decimal("11"),
)
CATEGORIES = (
    ["general"] * 16
    + ["women_senior"] * 3
    + ["third_gender_disabled", "war_wounded_freedom_fighter"]
)


@dataclass
class Workload:
    company: object
    period: object
    employees: int
    salaried: int
    hourly: int
    time_entries: int
    deductions: int
    prior_payslips: int
    prior_lines: int


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _company():
    from accounting import services as ledger
    from core.models import User
    from core.services import company_create

    owner = User.objects.create_user(username="bench-payroll", password=None)
    company = company_create(
        actor=None,
        name="Bench Payroll Ltd",
        slug="bench-payroll",
        owner=owner,
        fiscal_year_start_month=7,
        base_currency="BDT",
        time_zone="Asia/Dhaka",
        country="BD",
    )
    ledger.fiscal_year_create(actor=None, company=company, containing=date(YEAR, MONTH, 1))
    return company


def _dimensions(company) -> tuple[list[int], list[int]]:
    from accounting.models import CostCenter, Department
    from accounting.services import dimension_create

    def make(model, prefix: str, count: int) -> list[int]:
        return [
            dimension_create(
                actor=None, company=company, model=model, code=f"{prefix}{n}", name=f"{prefix} {n}"
            ).pk
            for n in range(1, count + 1)
        ]

    return make(Department, "DP", DEPARTMENTS), make(CostCenter, "CC", COST_CENTERS)


def _overtime_rule(company) -> None:
    from payroll.models import OvertimeRule

    OvertimeRule.objects.create(
        company=company,
        jurisdiction="BD",
        name="Bangladesh: over 8 h a day or 48 h a week at twice the ordinary rate",
        daily_threshold=Decimal("8"),
        weekly_threshold=Decimal("48"),
        weekly_excludes_daily_ot=True,
        ot_multiplier=Decimal("2"),
        dt_multiplier=Decimal("2"),
        effective_from=date(2006, 10, 11),
        source="Bangladesh Labour Act 2006 s.108(1): a worker who works overtime (over 8 hours "
        "a day or 48 a week, s.100 and s.102) is paid twice the ordinary rate of basic wage.",
    )


def _employees(company, rng: random.Random, scale: int, departments, cost_centers) -> list:
    """Insert the employees; returns (id, pay_type, start, end) in code order."""
    from payroll.models import Employee

    start, end = _month_bounds(YEAR, MONTH)
    now = datetime.now(UTC)
    columns = (
        "company_id",
        "code",
        "name",
        "email",
        "department_id",
        "cost_center_id",
        "role",
        "pay_type",
        "annual_salary",
        "hourly_rate",
        "jurisdiction",
        "tax_category",
        "start_date",
        "end_date",
        "bank_name",
        "bank_branch",
        "bank_account_name",
        "bank_account_number",
        "bank_routing_number",
        "created_at",
        "updated_at",
    )
    salaried_count = round(scale * SALARIED_SHARE)

    def rows():
        for n in range(1, scale + 1):
            salaried = n <= salaried_count
            joined = date(2019 + n % 6, 1 + n % 12, 1)
            left = None
            roll = rng.random()
            if salaried and roll < 0.02:
                joined = start + timedelta(days=rng.randint(1, 27))  # a joiner: prorated
            elif salaried and roll < 0.03:
                left = start + timedelta(days=rng.randint(0, 27))  # a leaver: prorated
            yield (
                company.pk,
                f"E{n:07d}",
                f"Employee {n}",
                f"e{n}@bench.example",
                departments[n % len(departments)],
                cost_centers[n % len(cost_centers)],
                "Officer" if salaried else "Operator",
                "salaried" if salaried else "hourly",
                Decimal(rng.randrange(300_000_00, 3_000_000_00, 100)) / 100 if salaried else None,
                None if salaried else Decimal(rng.randrange(150_00, 600_00, 25)) / 100,
                "BD",
                rng.choice(CATEGORIES),
                joined,
                left,
                "Sonali Bank",
                "Motijheel",
                f"Employee {n}",
                f"{n:013d}",
                "200270000",
                now,
                now,
            )

    table_insert(Employee._meta.db_table, columns, rows())
    found = Employee.objects.filter(company=company).order_by("code")
    return list(found.values_list("id", "pay_type", "start_date", "end_date"))


def _time_entries(company, rng: random.Random, employees) -> int:
    from payroll.models import TimeEntry

    start, end = _month_bounds(YEAR, MONTH)
    days = [start + timedelta(days=d) for d in range((end - start).days + 1)]
    workdays = [day for day in days if day.weekday() != 4]  # Friday: the weekly holiday

    def rows():
        for pk, pay_type, *_ in employees:
            if pay_type != "hourly":
                continue
            for day in workdays:
                yield (company.pk, pk, day, rng.choice(DAILY_HOURS), "")

    return table_insert(
        TimeEntry._meta.db_table, ("company_id", "employee_id", "day", "hours", "note"), rows()
    )


def _deductions(company, employees) -> int:
    from payroll.models import DeductionType, EmployeeDeduction

    types = dict(
        DeductionType.objects.filter(company=None, code__in=["PF", "HEALTH", "LOAN"]).values_list(
            "code", "pk"
        )
    )

    def rows():
        for pk, *_ in employees:
            yield (company.pk, pk, types["PF"], None, None, None, None, None, True)
            yield (company.pk, pk, types["HEALTH"], HEALTH, None, None, None, None, True)
            yield (
                company.pk,
                pk,
                types["LOAN"],
                LOAN_INSTALMENT,
                None,
                LOAN_BALANCE,
                None,
                None,
                True,
            )

    columns = (
        "company_id",
        "employee_id",
        "deduction_type_id",
        "amount",
        "rate",
        "balance",
        "start_date",
        "end_date",
        "is_active",
    )
    return table_insert(EmployeeDeduction._meta.db_table, columns, rows())


# Issued months before: simple, consistent figures (net = gross - taxes - deductions, as the
# database checks) that give every employee year-to-date taxable pay, tax and deductions.
_PRIOR_PAYSLIPS = """
INSERT INTO payroll_payslip (
    company_id, employee_id, period_id, run_id, period_start, period_end, pay_date, currency,
    status, pay_type, department_id, cost_center_id, regular_hours, overtime_hours,
    double_time_hours, gross, taxable, income_tax, other_taxes, taxes, pre_tax_deductions,
    post_tax_deductions, deductions, employer_contributions, net, ytd_gross, ytd_taxable,
    ytd_taxes, ytd_income_tax, ytd_deductions, ytd_net, warnings, carried, created_at,
    tax_year_start)
SELECT company_id, id, %(period)s, %(run)s, %(start)s, %(end)s, %(end)s, 'BDT',
    'issued', pay_type, department_id, cost_center_id, hours, 0, 0,
    gross, gross - pf, tax, 0, tax, pf, %(post)s, pf + %(post)s, pf,
    gross - tax - pf - %(post)s, 0, 0, 0, 0, 0, 0, '[]', '{}', %(now)s, %(tax_year_start)s
FROM (
    SELECT e.*, g.gross, g.hours, ROUND(g.gross * 0.10, 2) AS pf,
           ROUND((g.gross - ROUND(g.gross * 0.10, 2)) * 0.05, 2) AS tax
    FROM payroll_employee e
    JOIN (SELECT id AS gid,
                 CASE WHEN pay_type = 'salaried' THEN ROUND(annual_salary / 12, 2)
                      ELSE ROUND(hourly_rate * 208, 2) END AS gross,
                 CASE WHEN pay_type = 'salaried' THEN 0 ELSE 208 END AS hours
          FROM payroll_employee WHERE company_id = %(company)s) g ON g.gid = e.id
    WHERE e.company_id = %(company)s AND e.start_date <= %(start)s
      AND (e.end_date IS NULL OR e.end_date >= %(end)s)
) AS s
"""

_PRIOR_LINES = """
INSERT INTO payroll_payslipline (
    payslip_id, line_no, kind, code, description, quantity, rate, amount, taxable,
    account_role, employee_deduction_id)
SELECT p.id, v.no, v.kind, v.code, v.description, NULL, NULL,
    CASE v.code WHEN 'SALARY' THEN p.gross WHEN 'INCOME_TAX' THEN p.income_tax
                WHEN 'PF' THEN p.pre_tax_deductions WHEN 'HEALTH' THEN %(health)s
                ELSE %(loan)s END,
    TRUE, v.role, NULL
FROM payroll_payslip p CROSS JOIN (
    SELECT 1 AS no, 'earning' AS kind, 'SALARY' AS code, 'Salary' AS description,
           'salary_expense' AS role
    UNION ALL SELECT 2, 'pre_tax', 'PF', 'Provident fund', 'deductions_payable'
    UNION ALL SELECT 3, 'tax', 'INCOME_TAX', 'Income tax', 'payroll_tax_payable'
    UNION ALL SELECT 4, 'post_tax', 'HEALTH', 'Health insurance', 'deductions_payable'
    UNION ALL SELECT 5, 'post_tax', 'LOAN', 'Loan repayment', 'employee_loans'
) AS v
WHERE p.run_id = %(run)s
"""


def _prior_months(company) -> tuple[int, int]:
    """Completed periods July-November with one issued payslip per employee each."""
    from django.db import connection

    from payroll.models import PayrollPeriod, PayrollRun
    from payroll.services import payroll_period_create

    now = datetime.now(UTC)
    payslips = lines = 0
    for month in PRIOR_MONTHS:
        start, end = _month_bounds(YEAR, month)
        period = payroll_period_create(
            actor=None, company=company, start_date=start, end_date=end, activate=True
        )
        PayrollPeriod.objects.filter(pk=period.pk).update(status="completed", completed_at=now)
        run = PayrollRun.objects.create(
            company=company,
            period=period,
            attempt=1,
            trigger="command",
            status="completed",
            started_at=now,
            finished_at=now,
        )
        params = {
            "company": company.pk,
            "period": period.pk,
            "run": run.pk,
            "start": start,
            "end": end,
            "post": HEALTH + LOAN_INSTALMENT,
            "health": HEALTH,
            "loan": LOAN_INSTALMENT,
            "now": now,
            # Bangladesh's income year starts in July (payroll.reference_data).
            "tax_year_start": date(YEAR, 7, 1),
        }
        with connection.cursor() as cursor:
            cursor.execute(_PRIOR_PAYSLIPS, params)
            count = cursor.rowcount
            cursor.execute(_PRIOR_LINES, params)
            lines += cursor.rowcount
        PayrollRun.objects.filter(pk=run.pk).update(total=count, done=count, payslip_count=count)
        payslips += count
    return payslips, lines


def build(scale: int) -> Workload:
    """Make the company and its data; returns the December period, active and ready to run."""
    from django.apps import apps
    from django.db import connection, transaction

    from payroll.reference_data import reference_data_load
    from payroll.services import payroll_period_create

    rng = random.Random(SEED)
    # The shipped reference rows (migration 0002), in case a flushed test database lost them.
    reference_data_load(apps)
    company = _company()
    departments, cost_centers = _dimensions(company)
    _overtime_rule(company)
    with transaction.atomic():
        employees = _employees(company, rng, scale, departments, cost_centers)
        time_entries = _time_entries(company, rng, employees)
        deductions = _deductions(company, employees)
        prior_payslips, prior_lines = _prior_months(company)
    start, end = _month_bounds(YEAR, MONTH)
    period = payroll_period_create(
        actor=None,
        company=company,
        start_date=start,
        end_date=end,
        pay_date=end,
        activate=True,
        name="December 2025",
    )
    if connection.vendor == "postgresql":
        analyze(
            "payroll_employee",
            "payroll_timeentry",
            "payroll_employeededuction",
            "payroll_payslip",
            "payroll_payslipline",
        )
    hourly = sum(1 for _pk, pay_type, *_ in employees if pay_type == "hourly")
    return Workload(
        company=company,
        period=period,
        employees=len(employees),
        salaried=len(employees) - hourly,
        hourly=hourly,
        time_entries=time_entries,
        deductions=deductions,
        prior_payslips=prior_payslips,
        prior_lines=prior_lines,
    )
