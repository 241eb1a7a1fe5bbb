"""The trial balance report, reached from the dashboard: every posted figure and the totals,
which balance."""

import re

import pytest

from accounting import services as ledger
from tests.e2e.conftest import expect, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _post(company, memo, *lines):
    return ledger.journal_entry_post(
        system_job="e2e", company=company, date=company.today(), memo=memo, lines=list(lines)
    )


def test_trial_balance_shows_the_postings_and_balances(page, office):
    company = office.company
    _post(
        company,
        "Share capital paid in",
        {"account_code": "1110", "debit": "500000.00"},
        {"account_code": "3100", "credit": "500000.00"},
    )
    _post(
        company,
        "Cash sale",
        {"account_code": "1110", "debit": "10000.00"},
        {"account_code": "4100", "credit": "10000.00"},
    )
    _post(
        company,
        "Goods bought",
        {"account_code": "5100", "debit": "4250.50"},
        {"account_code": "1110", "credit": "4250.50"},
    )
    login(page, office.owner.username)

    page.get_by_role("link", name="Trial balance").first.click()
    expect(page).to_have_url(re.compile(r"/admin/accounting/account/reports/trial-balance/"))
    table = page.locator("table#trial-balance")
    # (text_content: the page's own words; inner_text would give them as CSS upper-cases them)
    assert table.locator("caption .ledger-state.ok").text_content() == "Balanced"
    assert table.locator("caption .ledger-state.bad").count() == 0

    def row(code):
        cells = table.locator("tbody tr", has_text=code).first.locator("td").all_text_contents()
        cells = [cell.strip() for cell in cells]
        return cells[0], cells[3:]  # code; opening Dr/Cr, movements Dr/Cr, closing Dr/Cr

    assert row("1110") == ("1110", ["", "", "510,000.00", "4,250.50", "505,749.50", ""])
    assert row("3100") == ("3100", ["", "", "", "500,000.00", "", "500,000.00"])
    assert row("4100") == ("4100", ["", "", "", "10,000.00", "", "10,000.00"])
    assert row("5100") == ("5100", ["", "", "4,250.50", "", "4,250.50", ""])
    assert table.locator("tbody tr").count() == 4
    totals = [cell.strip() for cell in table.locator("tfoot td").all_text_contents()]
    assert totals[1] == "Total"
    assert totals[3:] == [
        "0.00",
        "0.00",
        "514,250.50",
        "514,250.50",
        "510,000.00",
        "510,000.00",
    ]
    page.shots("trial-balance")
