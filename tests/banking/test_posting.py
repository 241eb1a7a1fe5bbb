"""Bank transactions: create, update, delete while draft; post one balanced entry with the
dimensions on every line; posting twice answers the same entry; posted figures are fixed."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from accounting.models import AccountRoleName, JournalEntry, JournalLine
from banking import services
from banking.errors import AlreadyPosted, VersionConflict
from banking.models import BankTransaction, PostingStatus
from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from core.models import AuditEvent

D = date
pytestmark = pytest.mark.django_db


def _lines(entry):
    return {
        line.account.code: line
        for line in JournalLine.objects.filter(entry=entry).select_related("account")
    }


def test_a_fee_posts_bank_charges_against_the_bank_with_dimensions_on_both_lines(bank):
    txn = bank.txn(
        kind="fee", amount="1234.56", date=D(2026, 8, 14), reference="CHG-0814", **bank.dims
    )
    assert txn.direction == "out"
    assert txn.counter_account.code == "6700"

    entry = services.bank_transaction_post(actor=bank.clerk, transaction=txn)

    lines = _lines(entry)
    assert set(lines) == {"6700", "1131"}
    assert (lines["6700"].debit, lines["6700"].credit) == (Decimal("1234.56"), Decimal("0.00"))
    assert (lines["1131"].debit, lines["1131"].credit) == (Decimal("0.00"), Decimal("1234.56"))
    for line in lines.values():
        assert line.cost_center_id == bank.cost_center.pk
        assert line.project_id == bank.project.pk
        assert line.department_id == bank.department.pk
    assert entry.date == D(2026, 8, 14)
    assert entry.idempotency_key == f"banking.txn:{txn.pk}"
    txn.refresh_from_db()
    assert txn.posting_status == PostingStatus.POSTED
    assert txn.journal_entry_id == entry.pk
    assert txn.posted_at is not None
    assert (
        AuditEvent.objects.filter(action="banking.transaction.post", object_id=str(txn.pk)).count()
        == 1
    )


def test_interest_credits_interest_income_and_a_deposit_its_counter_account(bank):
    interest = bank.txn(kind="interest", amount="250.00", date=D(2026, 9, 30), post=True)
    lines = _lines(interest.journal_entry)
    assert lines["1131"].debit == Decimal("250.00")
    assert lines["4800"].credit == Decimal("250.00")

    deposit = bank.txn(
        kind="deposit",
        amount="75000.00",
        date=D(2026, 9, 2),
        counter_account=bank.account("4200"),
        counterparty="Walk-in customer",
        post=True,
    )
    lines = _lines(deposit.journal_entry)
    assert (lines["1131"].debit, lines["4200"].credit) == (Decimal("75000.00"), Decimal("75000.00"))


def test_a_deposit_or_withdrawal_needs_its_counter_account(bank):
    with pytest.raises(ValidationFailed) as caught:
        bank.txn(kind="withdrawal", amount="10.00", date=D(2026, 8, 1))
    assert caught.value.code == "counter_account_required"
    assert "counter_account" in caught.value.fields


def test_a_transfer_says_which_way_and_a_kind_fixes_the_direction(bank):
    with pytest.raises(ValidationFailed) as caught:
        bank.txn(kind="transfer", amount="10.00", date=D(2026, 8, 1))
    assert "direction" in caught.value.fields
    with pytest.raises(ValidationFailed):
        bank.txn(kind="fee", direction="in", amount="10.00", date=D(2026, 8, 1))
    out = bank.txn(kind="transfer", direction="out", amount="10.00", date=D(2026, 8, 1))
    assert out.counter_account == bank.role_account(AccountRoleName.INTERNAL_TRANSFER)


@pytest.mark.parametrize("amount", ["0", "-5.00", "1.005", "abc", 12.5])
def test_amounts_are_positive_decimals_with_two_places(bank, amount):
    with pytest.raises(ValidationFailed) as caught:
        bank.txn(kind="fee", amount=amount, date=D(2026, 8, 1))
    assert "amount" in caught.value.fields


def test_posting_twice_returns_the_same_entry(bank):
    txn = bank.txn(kind="fee", amount="500.00", date=D(2026, 8, 1), **bank.dims)
    first = services.bank_transaction_post(actor=bank.clerk, transaction=txn)
    again = services.bank_transaction_post(actor=bank.clerk, transaction=txn, expected_version=1)
    assert again.pk == first.pk
    assert again.replayed is True
    assert JournalEntry.objects.filter(company=bank.company, source_type="banking").count() == 1


def test_a_posted_transaction_cannot_be_changed_or_deleted(bank):
    txn = bank.txn(kind="fee", amount="500.00", date=D(2026, 8, 1), post=True)
    with pytest.raises(AlreadyPosted) as caught:
        services.bank_transaction_update(actor=bank.clerk, transaction=txn, amount="600.00")
    assert caught.value.code == "already_posted"
    assert caught.value.http_status == 409
    with pytest.raises(AlreadyPosted):
        services.bank_transaction_delete(actor=bank.clerk, transaction=txn)
    txn.refresh_from_db()
    assert txn.amount == Decimal("500.00")


def test_a_posted_transaction_changed_behind_the_services_back_is_not_posted_again(bank):
    """Posting checks the entry against the transaction: if the row was changed (here the
    guard trigger is dropped inside the test's transaction, so the change can happen at all),
    posting again answers 409 already_posted instead of the old entry."""
    txn = bank.txn(kind="fee", amount="500.00", date=D(2026, 8, 1), post=True)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER banking_txn_posted_fixed ON banking_banktransaction")
        else:
            cursor.execute("DROP TRIGGER banking_txn_posted_fixed")
    BankTransaction.objects.filter(pk=txn.pk).update(amount=Decimal("600.00"))
    with pytest.raises(AlreadyPosted) as caught:
        services.bank_transaction_post(actor=bank.clerk, transaction=txn)
    assert caught.value.http_status == 409
    assert isinstance(caught.value, ConflictError)


def test_updates_raise_the_version_and_a_stale_version_is_refused(bank):
    txn = bank.txn(kind="fee", amount="500.00", date=D(2026, 8, 1))
    assert txn.version == 1
    txn = services.bank_transaction_update(
        actor=bank.clerk, transaction=txn, expected_version=1, amount="550.00", **bank.dims
    )
    assert (txn.version, txn.amount, txn.cost_center_id) == (
        2,
        Decimal("550.00"),
        bank.cost_center.pk,
    )
    with pytest.raises(VersionConflict) as caught:
        services.bank_transaction_update(
            actor=bank.clerk, transaction=txn, expected_version=1, amount="560.00"
        )
    assert caught.value.code == "version_conflict"
    with pytest.raises(VersionConflict):
        services.bank_transaction_post(actor=bank.clerk, transaction=txn, expected_version=1)
    entry = services.bank_transaction_post(actor=bank.clerk, transaction=txn, expected_version=2)
    assert _lines(entry)["6700"].debit == Decimal("550.00")


def test_changing_the_kind_takes_the_new_kinds_counter_account(bank):
    txn = bank.txn(kind="fee", amount="40.00", date=D(2026, 8, 1))
    txn = services.bank_transaction_update(actor=bank.clerk, transaction=txn, kind="interest")
    assert (txn.direction, txn.counter_account.code) == ("in", "4800")


def test_a_draft_can_be_deleted(bank):
    txn = bank.txn(kind="fee", amount="40.00", date=D(2026, 8, 1))
    services.bank_transaction_delete(actor=bank.clerk, transaction=txn, expected_version=1)
    assert not BankTransaction.objects.filter(pk=txn.pk).exists()


def test_the_auditor_reads_but_does_not_write(bank):
    with pytest.raises(PermissionDeniedError):
        services.bank_transaction_create(
            actor=bank.auditor,
            bank_account=bank.main,
            kind="fee",
            amount="1.00",
            date=D(2026, 8, 1),
        )


def test_another_companys_dimension_or_account_is_refused(bank):
    from accounting.models import Account, CostCenter

    other = bank.tenants.b
    from accounting import services as ledger

    ledger.company_ledger_setup(company=other)
    foreign_cc = CostCenter.objects.create(company=other, code="X", name="Other")
    with pytest.raises(ValidationFailed) as caught:
        bank.txn(kind="fee", amount="1.00", date=D(2026, 8, 1), cost_center=foreign_cc)
    assert "cost_center" in caught.value.fields
    foreign_account = Account.objects.get(company=other, code="4200")
    with pytest.raises(ValidationFailed):
        bank.txn(kind="deposit", amount="1.00", date=D(2026, 8, 1), counter_account=foreign_account)


def test_a_foreign_currency_account_keeps_drafts_but_does_not_post(bank):
    usd = services.bank_account_create(
        actor=bank.owner,
        company=bank.company,
        name="USD account",
        ledger_account=_new_bank_ledger(bank, "1133"),
        currency="usd",
    )
    assert usd.currency == "USD"
    txn = bank.txn(account=usd, kind="fee", amount="5.00", date=D(2026, 8, 1))
    with pytest.raises(ValidationFailed) as caught:
        services.bank_transaction_post(actor=bank.clerk, transaction=txn)
    assert caught.value.code == "foreign_currency"


def _new_bank_ledger(bank, code):
    from accounting import services as ledger
    from accounting.models import Account

    return ledger.account_create(
        actor=bank.owner,
        company=bank.company,
        code=code,
        name=f"Bank {code}",
        type="asset",
        parent=Account.objects.get(company=bank.company, code="1130"),
        is_postable=True,
    )


# --- bank accounts ---------------------------------------------------------------------------


def test_a_ledger_account_serves_one_bank_account_and_must_be_a_postable_asset(bank):
    with pytest.raises(ValidationFailed) as caught:
        services.bank_account_create(
            actor=bank.owner,
            company=bank.company,
            name="Dup",
            ledger_account=bank.main.ledger_account,
        )
    assert caught.value.code == "ledger_account_taken"
    for code in ("4100", "1130", "1160"):  # income; a heading; the transit account
        with pytest.raises(ValidationFailed) as caught:
            services.bank_account_create(
                actor=bank.owner, company=bank.company, name="X", ledger_account=bank.account(code)
            )
        assert "ledger_account" in caught.value.fields


def test_iban_is_normalised_checked_and_unique(bank):
    account = services.bank_account_update(
        actor=bank.owner, bank_account=bank.second, iban="gb29 nwbk 6016 1331 9268 19"
    )
    assert account.iban == "GB29NWBK60161331926819"
    with pytest.raises(ValidationFailed):
        services.bank_account_update(
            actor=bank.owner, bank_account=bank.main, iban="GB29NWBK60161331926819"
        )
    with pytest.raises(ValidationFailed):
        services.bank_account_update(
            actor=bank.owner, bank_account=bank.main, iban="GB00NWBK60161331926819"
        )


def test_the_ledger_account_and_opening_balance_are_fixed_once_transactions_are_posted(bank):
    services.bank_account_update(
        actor=bank.owner, bank_account=bank.main, opening_balance="90000.00"
    )
    bank.txn(kind="fee", amount="1.00", date=D(2026, 8, 1), post=True)
    with pytest.raises(ConflictError) as caught:
        services.bank_account_update(
            actor=bank.owner, bank_account=bank.main, opening_balance="80000.00"
        )
    assert caught.value.code == "account_in_use"
    same = services.bank_account_update(
        actor=bank.owner, bank_account=bank.main, opening_balance="90000.00", bank_name="DBL"
    )
    assert same.bank_name == "DBL"


def test_banking_settings_fall_back_to_the_project_settings(bank, settings):
    effective = services.banking_settings_for(bank.company)
    assert effective.reconciliation_threshold == Decimal("1000.00")
    assert effective.variance_alert_threshold == Decimal("5000.00")
    assert effective.auto_accept_confidence == Decimal("0.95")
    settings.BANKING_RECONCILIATION_THRESHOLD = "250.00"
    assert services.banking_settings_for(bank.company).reconciliation_threshold == Decimal("250.00")
    services.banking_settings_update(
        actor=bank.owner,
        company=bank.company,
        reconciliation_threshold="10.00",
        auto_accept_confidence="0.9",
        alert_recipients="cfo@example.com; ops@example.com",
    )
    effective = services.banking_settings_for(bank.company)
    assert effective.reconciliation_threshold == Decimal("10.00")
    assert effective.variance_alert_threshold == Decimal("5000.00")
    assert effective.auto_accept_for(bank.main) == Decimal("0.9")
    assert effective.alert_recipients == ("cfo@example.com", "ops@example.com")
    services.bank_account_update(
        actor=bank.owner, bank_account=bank.main, auto_accept_confidence="0.99"
    )
    bank.main.refresh_from_db()
    assert effective.auto_accept_for(bank.main) == Decimal("0.99")


def test_a_csv_mapping_is_checked_by_the_csv_parser(bank):
    pytest.importorskip("banking.parsers.csv")
    mapping = {"date": "Date", "amount": "Amount", "date_format": "%d/%m/%Y"}
    account = services.bank_account_update(
        actor=bank.owner, bank_account=bank.main, statement_mapping=mapping
    )
    assert account.statement_mapping == mapping
    with pytest.raises(ValidationFailed) as caught:
        services.bank_account_update(
            actor=bank.owner, bank_account=bank.main, statement_mapping={"amount": "Amount"}
        )
    assert caught.value.code == "invalid_mapping"
    assert any(m.startswith("date:") for m in caught.value.fields["statement_mapping"])
