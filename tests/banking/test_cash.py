"""Branch cash through cash in transit, and petty cash floats (imprest)."""

from datetime import date
from decimal import Decimal

import pytest

from accounting.models import AccountRoleName, JournalLine
from banking import services
from banking.errors import InvalidTransition
from banking.models import CashSubmissionStatus, PettyCashVoucher, VoucherStatus
from banking.selectors import cash_in_transit_open
from core.errors import ValidationFailed

D = date
pytestmark = pytest.mark.django_db


def _submit(bank, amount="100000.00", **kw):
    fields = {
        "branch": "Chittagong",
        "submitted_on": D(2026, 8, 10),
        "from_account": bank.account("1110"),
        "reference": "CS-0810",
        **bank.dims,
        **kw,
    }
    return services.cash_submission_create(
        actor=bank.clerk, bank_account=bank.main, expected_amount=amount, **fields
    )


def test_cash_submitted_then_deposited_short_puts_the_difference_to_over_short(bank):
    in_transit = bank.role_account(AccountRoleName.CASH_IN_TRANSIT)
    over_short = bank.role_account(AccountRoleName.CASH_OVER_SHORT)
    submission = _submit(bank)
    assert bank.balance(in_transit) == Decimal("100000.00")
    assert bank.balance("1110") == Decimal("-100000.00")
    assert cash_in_transit_open(company=bank.company)["total"] == Decimal("100000.00")

    submission = services.cash_submission_deposit(
        actor=bank.clerk,
        submission=submission,
        deposited_amount="99500.00",
        deposited_on=D(2026, 8, 11),
    )
    assert submission.status == CashSubmissionStatus.DEPOSITED
    assert submission.variance == Decimal("-500.00")
    assert bank.balance(in_transit) == Decimal("0.00")
    assert bank.balance(over_short) == Decimal("500.00")  # a debit: money short
    assert bank.balance("1131") == Decimal("99500.00")
    assert cash_in_transit_open(company=bank.company)["total"] == Decimal("0.00")

    txn = submission.deposit_transaction
    assert (txn.kind, txn.direction, txn.amount, txn.is_posted) == (
        "deposit",
        "in",
        Decimal("99500.00"),
        True,
    )
    assert txn.source == "cash_submission"
    lines = JournalLine.objects.filter(entry=txn.journal_entry)
    assert lines.count() == 3
    assert {(line.cost_center_id, line.project_id, line.department_id) for line in lines} == {
        (bank.cost_center.pk, bank.project.pk, bank.department.pk)
    }
    # posting the deposit transaction again answers its entry, never a second one
    assert (
        services.bank_transaction_post(actor=bank.clerk, transaction=txn).pk == txn.journal_entry_id
    )


def test_cash_deposited_over_credits_over_short(bank):
    submission = services.cash_submission_deposit(
        actor=bank.clerk,
        submission=_submit(bank, amount="20000.00"),
        deposited_amount="20050.00",
        deposited_on=D(2026, 8, 12),
    )
    assert submission.variance == Decimal("50.00")
    assert bank.balance(bank.role_account(AccountRoleName.CASH_OVER_SHORT)) == Decimal("-50.00")


def test_open_cash_in_transit_is_what_was_submitted_and_not_yet_credited(bank):
    first = _submit(bank, amount="1000.00")
    _submit(bank, amount="2500.00", branch="Sylhet")
    services.cash_submission_deposit(
        actor=bank.clerk, submission=first, deposited_amount="1000.00", deposited_on=D(2026, 8, 11)
    )
    open_items = cash_in_transit_open(company=bank.company)
    assert open_items["total"] == Decimal("2500.00")
    assert [row["branch"] for row in open_items["items"]] == ["Sylhet"]
    assert bank.balance(bank.role_account(AccountRoleName.CASH_IN_TRANSIT)) == Decimal("2500.00")


def test_a_submission_is_deposited_once_and_closed_after(bank):
    submission = services.cash_submission_deposit(
        actor=bank.clerk,
        submission=_submit(bank),
        deposited_amount="100000.00",
        deposited_on=D(2026, 8, 11),
    )
    with pytest.raises(InvalidTransition):
        services.cash_submission_deposit(
            actor=bank.clerk, submission=submission, deposited_amount="1.00"
        )
    closed = services.cash_submission_close(actor=bank.clerk, submission=submission)
    assert closed.status == CashSubmissionStatus.CLOSED


def test_branch_cash_must_be_a_cash_account_not_a_bank_or_transit(bank):
    for code in ("1131", "1140", "4100"):
        with pytest.raises(ValidationFailed):
            services.cash_submission_create(
                actor=bank.clerk,
                bank_account=bank.main,
                branch="X",
                expected_amount="1.00",
                submitted_on=D(2026, 8, 10),
                from_account=bank.account(code),
            )


# --- petty cash floats -----------------------------------------------------------------------


def _float(bank):
    return services.float_allocation_create(
        actor=bank.clerk,
        bank_account=bank.main,
        name="Head office imprest",
        custodian="Rahim (office manager)",
        float_amount="10000.00",
        issued_on=D(2026, 8, 1),
        **bank.dims,
    )


def test_float_ten_thousand_vouchers_five_thousand_counted_4900_is_short_100(bank):
    petty = bank.role_account(AccountRoleName.PETTY_CASH)
    over_short = bank.role_account(AccountRoleName.CASH_OVER_SHORT)
    imprest = _float(bank)
    assert bank.balance(petty) == Decimal("10000.00")
    assert bank.balance("1131") == Decimal("-10000.00")
    assert imprest.issue_transaction.is_posted

    other_cc = bank.cost_center.__class__.objects.create(
        company=bank.company, code="CC-CTG", name="Ctg"
    )
    v1 = services.petty_cash_voucher_create(
        actor=bank.clerk,
        float_allocation=imprest,
        date=D(2026, 8, 5),
        amount="3200.00",
        expense_account=bank.account("6700"),
        description="Courier and stamps",
        **bank.dims,
    )
    v2 = services.petty_cash_voucher_create(
        actor=bank.clerk,
        float_allocation=imprest,
        date=D(2026, 8, 9),
        amount="1800.00",
        expense_account=bank.account("6700"),
        description="Office tea",
        cost_center=other_cc,
    )
    replenishment = services.float_replenish(
        actor=bank.clerk, float_allocation=imprest, counted_cash="4900.00", date=D(2026, 8, 20)
    )
    assert replenishment.vouchers_total == Decimal("5000.00")
    assert replenishment.over_short == Decimal("-100.00")
    lines = list(
        JournalLine.objects.filter(entry=replenishment.journal_entry).select_related("account")
    )
    debits = sorted(
        (line.account.code, line.debit, line.cost_center_id) for line in lines if line.debit
    )
    credits = sorted((line.account.code, line.credit) for line in lines if line.credit)
    assert debits == sorted(
        [
            ("6700", Decimal("3200.00"), bank.cost_center.pk),
            ("6700", Decimal("1800.00"), other_cc.pk),
            (over_short.code, Decimal("100.00"), bank.cost_center.pk),
        ]
    )
    # imprest: the bank pays float − counted = 10,000 − 4,900 = 5,100 (vouchers 5,000 and the
    # 100 shortage); petty cash stays at the float
    assert credits == [("1131", Decimal("5100.00"))]
    assert bank.balance("1131") == Decimal("-15100.00")
    assert bank.balance(petty) == Decimal("10000.00")
    assert bank.balance(over_short) == Decimal("100.00")
    assert replenishment.bank_transaction.amount == Decimal("5100.00")
    assert set(
        PettyCashVoucher.objects.filter(pk__in=[v1.pk, v2.pk]).values_list("status", flat=True)
    ) == {VoucherStatus.REPLENISHED}
    with pytest.raises(InvalidTransition):  # nothing left to replenish, no difference
        services.float_replenish(
            actor=bank.clerk, float_allocation=imprest, counted_cash="10000.00"
        )


def test_vouchers_cannot_exceed_the_float(bank):
    imprest = _float(bank)
    services.petty_cash_voucher_create(
        actor=bank.clerk,
        float_allocation=imprest,
        date=D(2026, 8, 5),
        amount="9000.00",
        expense_account=bank.account("6700"),
        description="Big",
    )
    with pytest.raises(ValidationFailed) as caught:
        services.petty_cash_voucher_create(
            actor=bank.clerk,
            float_allocation=imprest,
            date=D(2026, 8, 6),
            amount="1000.01",
            expense_account=bank.account("6700"),
            description="Too much",
        )
    assert caught.value.code == "exceeds_float"


def test_counted_cash_over_the_float_credits_over_short(bank):
    imprest = _float(bank)
    services.petty_cash_voucher_create(
        actor=bank.clerk,
        float_allocation=imprest,
        date=D(2026, 8, 5),
        amount="1000.00",
        expense_account=bank.account("6700"),
        description="Fuel",
    )
    replenishment = services.float_replenish(
        actor=bank.clerk, float_allocation=imprest, counted_cash="9020.00", date=D(2026, 8, 20)
    )
    assert replenishment.over_short == Decimal("20.00")
    assert bank.balance(bank.role_account(AccountRoleName.CASH_OVER_SHORT)) == Decimal("-20.00")
    # the bank pays 10,000 − 9,020 = 980; petty cash stays at the float
    assert bank.balance(bank.role_account(AccountRoleName.PETTY_CASH)) == Decimal("10000.00")
    assert replenishment.bank_transaction.amount == Decimal("980.00")


def test_imprest_shortage_is_booked_once_and_petty_cash_stays_at_the_float(bank):
    """Hand figures: float 1,000; vouchers 300, counted 650 → the bank pays 350, short 50;
    next period vouchers 200, counted 800 → the bank pays 200, no over/short; the petty cash
    ledger holds 1,000 throughout."""
    petty = bank.role_account(AccountRoleName.PETTY_CASH)
    over_short = bank.role_account(AccountRoleName.CASH_OVER_SHORT)
    imprest = services.float_allocation_create(
        actor=bank.clerk,
        bank_account=bank.main,
        name="F",
        custodian="R",
        float_amount="1000.00",
        issued_on=D(2026, 8, 1),
    )
    services.petty_cash_voucher_create(
        actor=bank.clerk,
        float_allocation=imprest,
        date=D(2026, 8, 5),
        amount="300.00",
        expense_account=bank.account("6700"),
        description="x",
    )
    first = services.float_replenish(
        actor=bank.clerk, float_allocation=imprest, counted_cash="650.00", date=D(2026, 8, 20)
    )
    assert first.over_short == Decimal("-50.00")
    assert first.bank_transaction.amount == Decimal("350.00")
    assert bank.balance(petty) == Decimal("1000.00")
    assert bank.balance(over_short) == Decimal("50.00")
    services.petty_cash_voucher_create(
        actor=bank.clerk,
        float_allocation=imprest,
        date=D(2026, 9, 5),
        amount="200.00",
        expense_account=bank.account("6700"),
        description="y",
    )
    second = services.float_replenish(
        actor=bank.clerk, float_allocation=imprest, counted_cash="800.00", date=D(2026, 9, 20)
    )
    assert second.over_short == Decimal("0.00")
    assert second.bank_transaction.amount == Decimal("200.00")
    assert bank.balance(petty) == Decimal("1000.00")
    assert bank.balance(over_short) == Decimal("50.00")  # not booked a second time
    assert bank.balance("6700") == Decimal("500.00")
    assert bank.balance("1131") == Decimal("-1550.00")  # float 1,000 + 350 + 200


def test_cash_in_transit_as_of_a_date_is_rebuilt_from_the_dates(bank):
    submission = _submit(bank)  # submitted Aug 10
    services.cash_submission_deposit(
        actor=bank.clerk,
        submission=submission,
        deposited_amount="100000.00",
        deposited_on=D(2026, 8, 14),
    )
    on = lambda day: cash_in_transit_open(company=bank.company, as_of=day)["total"]  # noqa: E731
    assert on(D(2026, 8, 9)) == Decimal("0.00")  # not submitted yet
    assert on(D(2026, 8, 10)) == Decimal("100000.00")
    assert on(D(2026, 8, 13)) == Decimal("100000.00")  # deposited since, open then
    assert on(D(2026, 8, 14)) == Decimal("0.00")
    assert cash_in_transit_open(company=bank.company)["total"] == Decimal("0.00")
