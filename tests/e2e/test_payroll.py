"""A payroll period made in the admin, paid with the period list's Run now action; its payslips
and its journal entry (with the amounts) read back in the admin."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from accounting import services as ledger
from accounting.models import JournalLine
from payroll.models import PayrollRun, Payslip
from tests.e2e.conftest import expect, login, messages_text
from tests.payroll.conftest import employee

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _last_month(company):
    end = company.today().replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def test_create_a_period_run_payroll_and_see_payslips_and_journal_entry(page, office):
    company = office.company
    start, end = _last_month(company)
    ledger.fiscal_year_create(actor=None, company=company, containing=start)
    employee(company, "E001", name="Karim Uddin")  # 1,200,000.00 a year: 100,000.00 a month
    employee(company, "E002", name="Nasrin Akter", annual_salary=Decimal("600000.00"))
    login(page, office.owner.username)

    # the period, through the add form
    page.goto("/admin/payroll/payrollperiod/add/")
    page.select_option("#id_company", label="Padma Traders")
    page.fill("#id_name", "E2E month")
    page.select_option("#id_period_type", "monthly")
    page.fill("#id_start_date", start.isoformat())
    page.fill("#id_end_date", end.isoformat())
    page.fill("#id_pay_date", end.isoformat())
    page.check("#id_activate")
    page.shots("period-form")
    page.click("input[name=_save]")
    messages_text(page, "was added successfully")

    # Run now, the list's action
    row = page.locator("#result_list tbody tr", has_text="E2E month")
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "run_now")
    page.click("button[name=index]")
    said = messages_text(page, "started for")
    assert "run 1 started for 2 employees" in said, said
    page.reload()
    row = page.locator("#result_list tbody tr", has_text="E2E month")
    assert "2 / 2 (100%)" in row.inner_text()
    assert "Completed" in row.inner_text()
    page.shots("period-paid")

    # the payslips
    page.goto("/admin/payroll/payslip/")
    slips = {s.employee.name: s for s in Payslip.objects.select_related("employee")}
    assert sorted(slips) == ["Karim Uddin", "Nasrin Akter"]
    assert slips["Karim Uddin"].gross == Decimal("100000.00")
    assert slips["Nasrin Akter"].gross == Decimal("50000.00")
    for name, gross_shown in (("Karim Uddin", "100000.00"), ("Nasrin Akter", "50000.00")):
        slip = slips[name]
        cells = page.locator("#result_list tbody tr", has_text=name).locator("td")
        shown = [cells.nth(n).inner_text() for n in range(4, 8)]  # gross, taxes, deductions, net
        assert shown[0] == gross_shown
        gross, taxes, deductions, net = (Decimal(text) for text in shown)
        assert (gross, taxes, deductions, net) == (
            slip.gross,
            slip.taxes,
            slip.deductions,
            slip.net,
        )
        assert gross - taxes - deductions == net
        assert taxes > 0  # income tax was withheld
    page.shots("payslips")

    # the run and its journal entry
    run = PayrollRun.objects.get()
    assert run.gross_total == Decimal("150000.00")
    page.goto(f"/admin/payroll/payrollrun/{run.pk}/change/")
    assert page.locator(".field-gross_total .readonly").inner_text() == "150000.00"
    page.shots("run")
    page.locator(".field-journal_entry a").click()
    expect(page).to_have_url(
        re.compile(rf"/admin/accounting/journalentry/{run.journal_entry_id}/change/")
    )
    lines = JournalLine.objects.filter(entry_id=run.journal_entry_id)
    debit = sum(line.debit for line in lines)
    credit = sum(line.credit for line in lines)
    assert debit == credit >= Decimal("150000.00")
    table = page.locator("#lines-group").inner_text()
    for line in lines:
        amount = line.debit or line.credit
        assert f"{amount:,.2f}" in table
    assert "150,000.00" in table  # the salaries expense: the gross pay
    page.shots("journal-entry")
