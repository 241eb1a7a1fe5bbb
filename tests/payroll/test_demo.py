"""seed_demo's payroll part: fifty employees, twelve monthly periods with different rules, the
past ones paid through the real processor (payslips, journal entries), idempotent."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from accounting.models import JournalEntry
from payroll import demo
from payroll.models import (
    Employee,
    EmployeeDeduction,
    PayrollPeriod,
    PayrollRun,
    Payslip,
    PeriodStatus,
    RunStatus,
    TimeEntry,
)

pytestmark = pytest.mark.django_db


@time_machine.travel(datetime(2026, 2, 15, 9, 0, tzinfo=UTC), tick=False)
def test_demo_seeds_fifty_employees_and_pays_the_past_months(tenants):
    company = tenants.a  # Bangladesh, fiscal year July to June
    added = demo.seed(company=company, actor=None)
    assert added > 0

    employees = Employee.objects.filter(company=company)
    assert employees.count() == 50
    assert employees.filter(pay_type="hourly").count() == 15
    assert employees.exclude(department=None).count() == 50
    assert {e.department.code for e in employees} == {"ADMIN", "SALES", "OPS"}
    assert EmployeeDeduction.objects.filter(company=company).count() > 40
    assert TimeEntry.objects.filter(company=company).exists()

    periods = PayrollPeriod.objects.filter(company=company).order_by("start_date")
    assert periods.count() == 12
    assert periods.first().start_date.isoformat() == "2025-07-01"
    rules = {next(iter(p.automation_rule), "manual") for p in periods}
    assert rules == {"days_before_end", "run_on_date", "cron", "manual"}
    completed = periods.filter(status=PeriodStatus.COMPLETED)
    assert [p.start_date.month for p in completed] == [7, 8, 9, 10, 11, 12, 1]
    assert not periods.filter(start_date__month=2).exclude(status=PeriodStatus.ACTIVE).exists()

    for run in PayrollRun.objects.filter(period__company=company, status=RunStatus.COMPLETED):
        entry = JournalEntry.objects.get(pk=run.journal_entry_id)
        sums = entry.lines.aggregate(debit=Sum("debit"), credit=Sum("credit"))
        assert sums["debit"] == sums["credit"] > 0
        slips = Payslip.objects.filter(run=run)
        assert slips.count() == run.payslip_count > 40
        assert slips.aggregate(net=Sum("net"))["net"] == run.net_total
    # the bonus month pays more than the month before it
    gross = {
        p.start_date.month: Payslip.objects.filter(period=p).aggregate(g=Sum("gross"))["g"]
        for p in completed
    }
    assert gross[9] > gross[8]
    assert all(value > Decimal("0") for value in gross.values())

    # run again: nothing added, nothing changed
    counts = (Employee.objects.count(), PayrollPeriod.objects.count(), Payslip.objects.count())
    assert demo.seed(company=company, actor=None) == 0
    assert counts == (
        Employee.objects.count(),
        PayrollPeriod.objects.count(),
        Payslip.objects.count(),
    )


@time_machine.travel(datetime(2026, 3, 10, 18, 0, tzinfo=UTC), tick=False)
def test_demo_for_a_us_company_uses_state_overtime(tenants):
    company = tenants.b  # United States, calendar fiscal year
    demo.seed(company=company, actor=None)
    assert Employee.objects.filter(company=company).count() == 50
    assert {e.jurisdiction for e in Employee.objects.filter(company=company)} <= {
        "US-CA",
        "US-NV",
        "US",
    }
    completed = PayrollPeriod.objects.filter(company=company, status=PeriodStatus.COMPLETED)
    assert completed.count() == 2  # January and February 2026
    overtime = Payslip.objects.filter(period__company=company, overtime_hours__gt=0)
    assert overtime.exists()
