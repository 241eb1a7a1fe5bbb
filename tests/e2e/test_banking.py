"""A bank statement uploaded in the admin and reconciled on the reconciliation screen: a fee
booked after the upload is matched by the Auto-reconcile button (by its reference), the deposit
(booked a week before the bank credited it, outside the automatic date window) is matched by
hand, the variance goes to 0.00 and the month is signed off."""

from datetime import timedelta

import pytest

from accounting import services as ledger
from accounting.models import Account
from banking import services
from banking.models import LineStatus, StatementLine
from tests.banking.makers import CSV_MAPPING, bank_account_for
from tests.e2e.conftest import login, messages_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _figure(page, key: str) -> str:
    return page.locator(f"#recon-figures .figure-{key} .value").inner_text()


def _booked(account, **fields):
    """A bank transaction in the books: made and posted through banking's services."""
    txn = services.bank_transaction_create(actor=None, bank_account=account, **fields)
    services.bank_transaction_post(actor=None, transaction=txn)
    return txn


def test_upload_a_statement_and_reconcile_it_on_the_screen(page, office, tmp_path):
    company, owner = office.company, office.owner
    month = (company.today().replace(day=1) - timedelta(days=1)).replace(day=1)  # last month
    ledger.fiscal_year_create(actor=None, company=company, containing=month)
    account = bank_account_for(
        company,
        name="City Bank current",
        opening_balance="0.00",
        statement_mapping={**CSV_MAPPING, "balance": "Balance"},
    )
    deposit = _booked(
        account,
        kind="deposit",
        amount="1500.00",
        date=month.replace(day=3),
        reference="RCPT-77",
        counterparty="Dhaka Retail Ltd",
        counter_account=Account.objects.get(company=company, code="4100"),
    )
    statement = tmp_path / "city-bank.csv"
    statement.write_text(
        "Date,Amount,Reference,Text,Balance\n"
        f"{month.replace(day=10)},1500.00,TRX99881,Customer deposit,1500.00\n"
        f"{month.replace(day=12)},-100.00,FEE-0412,Account maintenance fee,1400.00\n"
    )
    login(page, owner.username)

    # the upload
    page.goto("/admin/banking/statementimport/add/")
    page.select_option("#id_bank_account", label="City Bank current")
    page.set_input_files("#id_file", str(statement))
    page.shots("upload-form")
    page.click("input[type=submit][value='Upload and import']")
    messages_text(page, "2 lines read, 2 new")
    page.shots("imported")
    assert StatementLine.objects.filter(bank_account=account).count() == 2

    # the reconciliation screen for that month
    period = f"{month:%Y-%m}"
    page.goto(f"/admin/banking/bankaccount/{account.pk}/reconcile/?period={period}")
    assert _figure(page, "statement_closing") == "1,400.00"
    assert _figure(page, "book_balance") == "1,500.00"
    assert _figure(page, "unmatched_statement_lines") == "2"
    # (1,400.00 on the statement + the 1,500.00 deposit not matched to it) − 1,500.00 booked
    assert _figure(page, "outstanding_deposits") == "1,500.00"
    assert _figure(page, "variance") == "1,400.00"
    page.shots("screen-after-upload")

    # the fee is booked (by a colleague, meanwhile); Auto-reconcile matches it by its reference
    _booked(account, kind="fee", amount="100.00", date=month.replace(day=12), reference="FEE-0412")
    page.reload()
    assert _figure(page, "book_balance") == "1,400.00"
    assert _figure(page, "outstanding_payments") == "100.00"
    page.get_by_role("button", name=f"Auto-reconcile {month:%B %Y}").click()
    messages_text(page, "Auto-reconcile done: 2 lines looked at")
    fee_line = StatementLine.objects.get(bank_account=account, reference="FEE-0412")
    assert fee_line.status == LineStatus.MATCHED
    assert "exact reference" in page.locator(f"#line-{fee_line.pk}").inner_text()
    assert _figure(page, "unmatched_statement_lines") == "1"
    assert _figure(page, "outstanding_payments") == "0.00"
    assert _figure(page, "outstanding_deposits") == "1,500.00"  # booked the 3rd, banked the 10th
    assert _figure(page, "variance") == "1,500.00"
    assert "variance exceeds threshold" in page.locator("#recon-figures h2").inner_text()
    page.shots("after-auto-reconcile")

    # the deposit by hand: its line on the left, the book transaction on the right, Match
    deposit_line = StatementLine.objects.get(bank_account=account, reference="TRX99881")
    page.check(f"#line-{deposit_line.pk} input[type=radio]")
    page.check(f"#txn-{deposit.pk} input[type=checkbox]")
    page.get_by_role("button", name="Match the chosen line with the ticked transactions").click()
    messages_text(page, "matched with 1 transaction")
    deposit_line.refresh_from_db()
    assert deposit_line.status == LineStatus.MATCHED
    assert _figure(page, "unmatched_statement_lines") == "0"
    assert _figure(page, "outstanding_deposits") == "0.00"
    assert _figure(page, "variance") == "0.00"
    assert "variance within threshold" in page.locator("#recon-figures h2").inner_text()
    assert "Customer deposit" in page.locator(f"#line-{deposit_line.pk}").inner_text()
    assert "↔" in page.locator(f"#line-{deposit_line.pk}").inner_text()
    page.shots("reconciled")

    # within the threshold the month can be signed off
    page.get_by_role("button", name="Sign off this month").click()
    messages_text(page, f"{month:%B %Y} signed off (variance 0.00)")
    assert page.locator("#recon-signed").inner_text().startswith("Signed off")
    assert "Sign off this month" not in page.locator("#recon-figures").inner_text()
