"""Payroll demo data for `manage.py seed_demo`: fifty employees per company and the twelve
monthly periods of its current fiscal year, the past ones paid through the real processor.

- Employees: 35 salaried and 15 hourly, in the ledger demo's departments (Administration,
  Sales, Operations) and cost centres (Head office, Plant, Sales outlet); Bangladesh staff
  (taxpayer categories mixed) for a BD company, California, Nevada and federal staff for a US
  one. Deductions: provident fund (pre-tax, employer match) for BD salaried staff, health
  insurance for most, a few loans being repaid. Hourly staff log weekday hours, some days long
  enough for overtime; a few hourly staff are paid their role's rate for the location.
- Periods: the fiscal year's twelve months, with different automation rules (days before end,
  a run date, a cron expression, one manual). Months that ended before today are paid now
  (payslips, one journal entry each, year-to-date figures); an Eid/year-end bonus is in one.
  A month that cannot be paid is left failed, with its reason, and the demo goes on.
  Their payslips are not emailed (they are back-dated demo runs).

Deterministic (seeded by the company's slug); skipped when the company already has employees.
"""

from __future__ import annotations

import calendar
import random
from datetime import date, timedelta
from decimal import Decimal

from accounting import services as ledger
from accounting.models import CostCenter, Department
from core.models import Company
from payroll import services
from payroll.models import (
    DeductionType,
    EarningType,
    Employee,
    PayRate,
    PayrollPeriod,
    PeriodStatus,
    RunTrigger,
)

EMPLOYEES = 50
HOURLY = 15
CENT = Decimal("0.01")

BD_FIRST = [
    "Rahima", "Karim", "Nusrat", "Tanvir", "Farhana", "Imran", "Sadia", "Arif", "Mitu", "Rafiq",
    "Shirin", "Jamal", "Ayesha", "Habib", "Laila", "Masud", "Ruma", "Sohel", "Tania", "Zahid",
]  # fmt: skip
BD_LAST = [
    "Akter", "Uddin", "Jahan", "Hossain", "Rahman", "Islam", "Chowdhury", "Sarkar", "Begum",
    "Khan", "Ahmed", "Mia",
]  # fmt: skip
US_FIRST = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Mason", "Sophia", "Lucas", "Mia", "Ethan",
    "Harper", "Logan", "Ella", "James", "Grace", "Daniel", "Chloe", "Henry", "Lily", "Jack",
]  # fmt: skip
US_LAST = [
    "Smith", "Garcia", "Johnson", "Lee", "Brown", "Martinez", "Davis", "Lopez", "Miller",
    "Wilson", "Anderson", "Taylor",
]  # fmt: skip

ROLES = {
    "ADMIN": ["Accountant", "HR officer", "Office manager"],
    "SALES": ["Sales executive", "Account manager"],
    "OPS": ["Supervisor", "Quality inspector", "Machine operator"],
}
HOURLY_ROLE = "Machine operator"


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _fiscal_months(company: Company, today: date) -> list[tuple[date, date]]:
    start = company.fiscal_year_start(today)
    months = []
    for offset in range(12):
        month0 = start.year * 12 + start.month - 1 + offset
        months.append(_month_bounds(month0 // 12, month0 % 12 + 1))
    return months


def _rule(index: int, start: date, end: date) -> tuple[bool, dict]:
    """Different automation rules through the year."""
    kind = index % 4
    if kind == 0:
        return True, {"days_before_end": 3}
    if kind == 1:
        return True, {"run_on_date": (end - timedelta(days=5)).isoformat()}
    if kind == 2:
        return True, {"cron": "0 6 25 * *"}  # the 25th at 06:00, company time
    return False, {}


def seed(*, company: Company, actor, stdout=None) -> int:
    if Employee.objects.filter(company=company).exists():
        return 0
    ledger.company_ledger_setup(actor=actor, company=company)
    today = company.today()
    months = _fiscal_months(company, today)
    ledger.fiscal_year_create(actor=actor, company=company, containing=months[0][0])
    rng = random.Random(f"payroll:{company.slug}")  # noqa: S311 - repeatable demo figures
    bd = company.country == "BD"

    def dimension(model, code, name):
        return model.objects.filter(company=company, code=code).first() or ledger.dimension_create(
            actor=actor, company=company, model=model, code=code, name=name
        )

    departments = {
        "ADMIN": dimension(Department, "ADMIN", "Administration"),
        "SALES": dimension(Department, "SALES", "Sales"),
        "OPS": dimension(Department, "OPS", "Operations"),
    }
    centres = {
        "ADMIN": dimension(CostCenter, "HQ", "Head office"),
        "SALES": dimension(CostCenter, "SHOP", "Sales outlet"),
        "OPS": dimension(CostCenter, "PLANT", "Plant"),
    }

    locations = ["BD"] if bd else ["US-CA", "US-CA", "US-NV", "US"]
    for location in set(locations):
        services.reference_row_save(
            actor=actor,
            obj=PayRate(
                company=company,
                role=HOURLY_ROLE,
                jurisdiction=location,
                pay_type="hourly",
                hourly_rate=Decimal("210.0000") if bd else Decimal("24.5000"),
                effective_from=months[0][0],
            ),
            company=company,
        )

    first, last = (BD_FIRST, BD_LAST) if bd else (US_FIRST, US_LAST)
    pf = DeductionType.objects.get(company=None, code="PF")
    health = DeductionType.objects.get(company=None, code="HEALTH")
    loan = DeductionType.objects.get(company=None, code="LOAN")
    employees = []
    for number in range(1, EMPLOYEES + 1):
        hourly = number > EMPLOYEES - HOURLY
        unit = "OPS" if hourly else rng.choice(["ADMIN", "SALES", "OPS", "SALES"])
        name = f"{rng.choice(first)} {rng.choice(last)}"
        joined = months[0][0] - timedelta(days=rng.randint(60, 2500))
        if number == 7:  # a joiner in the fourth month: prorated pay
            joined = months[3][0] + timedelta(days=9)
        fields = {
            "code": f"E{number:03d}",
            "name": name,
            "email": f"{name.lower().replace(' ', '.')}.{number}@{company.slug}.example",
            "department": departments[unit],
            "cost_center": centres[unit],
            "role": HOURLY_ROLE if hourly else rng.choice(ROLES[unit]),
            "jurisdiction": rng.choice(locations),
            "start_date": joined,
            "bank_name": "Dutch-Bangla Bank" if bd else "First Republic",
            "bank_account_name": name,
            "bank_account_number": f"{rng.randint(10**11, 10**12 - 1)}",
        }
        if bd and number % 5 == 0:
            fields["tax_category"] = "women_senior"
        if hourly:
            fields["pay_type"] = "hourly"
            if number % 3:  # the others are paid the role's rate for their location
                low, high = (150, 400) if bd else (18, 45)
                fields["hourly_rate"] = Decimal(rng.randint(low * 4, high * 4)) / 4
        else:
            fields["pay_type"] = "salaried"
            low, high = (360, 2400) if bd else (45, 140)
            fields["annual_salary"] = Decimal(rng.randint(low, high) * 1000)
        if number == 12:  # a leaver in the sixth month
            fields["end_date"] = months[5][0] + timedelta(days=14)
        employee = services.employee_create(actor=actor, company=company, **fields)
        employees.append(employee)
        if bd and not hourly:
            services.employee_deduction_create(actor=actor, employee=employee, deduction_type=pf)
        if number % 4:
            services.employee_deduction_create(
                actor=actor,
                employee=employee,
                deduction_type=health,
                amount=Decimal("1500.00") if bd else Decimal("120.00"),
            )
        if number % 9 == 0:
            services.employee_deduction_create(
                actor=actor,
                employee=employee,
                deduction_type=loan,
                amount=Decimal("5000.00") if bd else Decimal("250.00"),
                balance=Decimal("32000.00") if bd else Decimal("1600.00"),
            )

    past = [(start, end) for start, end in months if end < today]
    hourly_staff = [e for e in employees if e.pay_type == "hourly"]
    entries = []
    for start, end in past:
        day = start
        while day <= end:
            if day.weekday() < 5:
                for employee in hourly_staff:
                    if not employee.is_employed_during(day, day):
                        continue
                    hours = "8.00"
                    if rng.random() < 0.15:
                        hours = rng.choice(["9.50", "10.00", "11.00", "13.00"])
                    entries.append({"employee": employee.pk, "day": day, "hours": hours})
            day += timedelta(days=1)
    if entries:
        services.time_entries_upsert(actor=actor, company=company, entries=entries)

    periods = []
    for index, (start, end) in enumerate(months):
        enabled, rule = _rule(index, start, end)
        periods.append(
            services.payroll_period_create(
                actor=actor,
                company=company,
                name=f"{start:%B %Y}",
                start_date=start,
                end_date=end,
                pay_date=end,
                period_type="monthly",
                automation_enabled=enabled,
                automation_rule=rule,
                activate=True,
            )
        )

    bonus = EarningType.objects.get(company=None, code="BONUS")
    if len(past) >= 3:
        bonus_period = periods[2]
        for employee in employees[:20]:
            if employee.pay_type == "salaried":
                services.employee_earning_create(
                    actor=actor,
                    employee=employee,
                    earning_type=bonus,
                    amount=(employee.annual_salary / 24).quantize(CENT),
                    period=bonus_period,
                    memo="Festival bonus" if bd else "Year-end bonus",
                )

    for period in periods:
        if period.end_date >= today:
            break
        outcome = services.payroll_period_run(
            actor=actor,
            period=period,
            force=True,
            trigger=RunTrigger.MANUAL,
            asynchronous=False,
            mail_payslips=False,  # back-dated: nobody is mailed last year's payslips
        )
        if outcome.status != "completed" and stdout is not None:
            # Left failed, with its reason, in the admin; the rest of the demo goes on.
            stdout.write(f"  {company.slug}: payroll {period} failed: {outcome.message}")
    return (
        len(employees)
        + len(periods)
        + PayrollPeriod.objects.filter(company=company, status=PeriodStatus.COMPLETED).count()
    )
