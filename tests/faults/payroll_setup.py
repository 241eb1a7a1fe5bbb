"""A company with books and staff, committed (the fault tests' workers read it from their own
connections), and the checks an accountant would make of a completed period."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db.models import Sum

from accounting import services as ledger
from accounting.models import JournalEntry, JournalLine
from payroll.models import (
    PayrollPeriod,
    PayrollRun,
    Payslip,
    PayslipStatus,
    PeriodStatus,
    RunStatus,
)
from tests.factories import CompanyFactory
from tests.payroll.conftest import employee, monthly

D = Decimal
# 1,200,000 a year, Bangladesh: 100,000.00 gross and 8,125.00 income tax a month (the figures
# of tests/payroll/test_exactly_once.py).
GROSS = D("100000.00")
NET = GROSS - D("8125.00")


def company_with_staff(count: int, *, slug: str = "faults"):
    company = CompanyFactory(name="Fault Tolerant Ltd", slug=slug)
    ledger.company_ledger_setup(company=company)
    ledger.fiscal_year_create(actor=None, company=company, containing=date(2025, 7, 1))
    for index in range(count):
        employee(company, f"F{index:03d}")
    return company


def july(company, **kwargs) -> PayrollPeriod:
    return monthly(company, 2025, 7, **kwargs)


def assert_paid_once(period: PayrollPeriod, employees: int) -> PayrollRun:
    """One completed run, one issued payslip per employee and nothing else, one balanced
    journal entry whose lines add up to the payslips."""
    period.refresh_from_db()
    assert period.status == PeriodStatus.COMPLETED, period.last_error
    run = PayrollRun.objects.get(period=period, status=RunStatus.COMPLETED)
    slips = Payslip.objects.filter(period=period)
    assert slips.count() == employees, "payslips of unfinished attempts were left behind"
    assert slips.filter(status=PayslipStatus.ISSUED, run=run).count() == employees
    assert slips.values("employee_id").distinct().count() == employees
    assert set(slips.values_list("gross", "net")) == {(GROSS, NET)}
    assert (run.payslip_count, run.gross_total, run.net_total) == (
        employees,
        GROSS * employees,
        NET * employees,
    )
    entries = JournalEntry.objects.filter(source_type="payroll.run")
    assert list(entries.values_list("source_id", flat=True)) == [str(run.pk)]
    entry = entries.get()
    assert run.journal_entry_id == entry.pk
    sums = JournalLine.objects.filter(entry=entry).aggregate(
        debit=Sum("debit"), credit=Sum("credit")
    )
    assert sums["debit"] == sums["credit"] == entry.total
    assert entry.total == run.gross_total + run.employer_total
    net_pay = JournalLine.objects.filter(entry=entry, memo="Net pay").aggregate(s=Sum("credit"))
    assert net_pay["s"] == run.net_total
    return run
