"""Transfers between own accounts through the internal transfer (transit) account."""

from datetime import date
from decimal import Decimal

import pytest

from accounting.models import AccountRoleName
from banking import services
from banking.errors import InvalidTransition
from banking.models import BankTransferAllocation, TransferStatus
from core.errors import ValidationFailed

D = date
pytestmark = pytest.mark.django_db


def _transfer(bank, amount="50000.00", **kw):
    return services.bank_transfer_create(
        actor=bank.clerk,
        from_account=bank.main,
        to_account=bank.second,
        amount=amount,
        date=D(2026, 8, 3),
        expected_settlement_date=D(2026, 8, 5),
        reference="TRF-1",
        **{**bank.dims, **kw},
    )


def clear_legs(bank, transfer, lag_days=0):
    """Each leg's transaction matched to a statement line of its account `lag_days` later."""
    from datetime import timedelta

    from banking import reconciliation as recon
    from tests.banking.recon_helpers import statement

    for leg in BankTransferAllocation.objects.filter(transfer=transfer).select_related(
        "bank_transaction", "bank_account"
    ):
        txn = leg.bank_transaction
        (line,) = statement(
            bank,
            leg.bank_account,
            [(leg.date + timedelta(days=lag_days), str(txn.signed_amount))],
        )
        recon.reconciliation_match(actor=bank.clerk, statement_line=line, allocations=[(txn, None)])


def test_fifty_thousand_out_then_thirty_and_twenty_in_settles_and_empties_transit(bank):
    transit = bank.role_account(AccountRoleName.INTERNAL_TRANSFER)
    transfer = _transfer(bank)
    assert transfer.status == TransferStatus.INITIATED
    assert bank.balance(transit) == 0

    transfer = services.bank_transfer_send(actor=bank.clerk, transfer=transfer)
    assert transfer.status == TransferStatus.IN_TRANSIT
    assert bank.balance(transit) == Decimal("50000.00")
    assert bank.balance("1131") == Decimal("-50000.00")

    first = services.bank_transfer_receive(
        actor=bank.clerk, transfer=transfer, amount="30000.00", date=D(2026, 8, 4)
    )
    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.IN_TRANSIT
    assert bank.balance(transit) == Decimal("20000.00")
    assert first.amount == Decimal("30000.00")

    services.bank_transfer_receive(actor=bank.clerk, transfer=transfer, date=D(2026, 8, 6))
    transfer.refresh_from_db()
    # received in full, but settled only once every leg is cleared by a statement line
    assert transfer.status == TransferStatus.IN_TRANSIT
    assert bank.balance(transit) == Decimal("0.00")
    clear_legs(bank, transfer, lag_days=1)
    transfer.refresh_from_db()
    assert transfer.status == TransferStatus.SETTLED
    assert transfer.settled_on == D(2026, 8, 7)  # the last leg cleared a day after Aug 6
    assert bank.balance("1132") == Decimal("50000.00")

    legs = list(BankTransferAllocation.objects.filter(transfer=transfer).order_by("id"))
    assert [(leg.leg, leg.amount, leg.bank_account_id) for leg in legs] == [
        ("out", Decimal("50000.00"), bank.main.pk),
        ("in", Decimal("30000.00"), bank.second.pk),
        ("in", Decimal("20000.00"), bank.second.pk),
    ]
    for leg in legs:
        txn = leg.bank_transaction
        assert txn.kind == "transfer" and txn.is_posted
        assert txn.source == "transfer" and txn.source_id == str(transfer.pk)
        assert set(txn.journal_entry.lines.values_list("cost_center_id", flat=True)) == {
            bank.cost_center.pk
        }


def test_more_than_is_in_transit_is_refused(bank):
    transfer = services.bank_transfer_send(actor=bank.clerk, transfer=_transfer(bank))
    services.bank_transfer_receive(
        actor=bank.clerk, transfer=transfer, amount="30000.00", date=D(2026, 8, 4)
    )
    with pytest.raises(ValidationFailed) as caught:
        services.bank_transfer_receive(
            actor=bank.clerk, transfer=transfer, amount="20000.01", date=D(2026, 8, 4)
        )
    assert caught.value.code == "exceeds_in_transit"


def test_money_cannot_arrive_before_it_is_sent_nor_after_settlement(bank):
    transfer = _transfer(bank)
    with pytest.raises(InvalidTransition):
        services.bank_transfer_receive(actor=bank.clerk, transfer=transfer, date=D(2026, 8, 4))
    transfer = services.bank_transfer_send(actor=bank.clerk, transfer=transfer)
    with pytest.raises(InvalidTransition):
        services.bank_transfer_send(actor=bank.clerk, transfer=transfer)
    with pytest.raises(ValidationFailed):
        services.bank_transfer_receive(actor=bank.clerk, transfer=transfer, date=D(2026, 8, 2))
    services.bank_transfer_receive(actor=bank.clerk, transfer=transfer, date=D(2026, 8, 4))
    with pytest.raises(InvalidTransition):
        services.bank_transfer_receive(actor=bank.clerk, transfer=transfer, date=D(2026, 8, 4))


def test_cancel_only_before_anything_is_posted(bank):
    transfer = services.bank_transfer_cancel(actor=bank.clerk, transfer=_transfer(bank))
    assert transfer.status == TransferStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        services.bank_transfer_send(actor=bank.clerk, transfer=transfer)

    sent = services.bank_transfer_send(actor=bank.clerk, transfer=_transfer(bank))
    with pytest.raises(InvalidTransition) as caught:
        services.bank_transfer_cancel(actor=bank.clerk, transfer=sent)
    assert caught.value.http_status == 409


def test_a_transfer_needs_two_accounts_of_the_company_in_one_currency(bank):
    with pytest.raises(ValidationFailed):
        services.bank_transfer_create(
            actor=bank.clerk,
            from_account=bank.main,
            to_account=bank.main,
            amount="1.00",
            date=D(2026, 8, 1),
        )
    with pytest.raises(ValidationFailed):
        _transfer(bank, amount="0")


def test_legs_clear_when_their_transactions_are_reconciled(bank):
    from banking import reconciliation as recon
    from tests.banking.recon_helpers import statement

    transfer = services.bank_transfer_send(actor=bank.clerk, transfer=_transfer(bank))
    out = transfer.legs.get(leg="out")
    (line,) = statement(bank, bank.main, [(out.date, "-50000.00")])
    recon.reconciliation_match(
        actor=bank.clerk, statement_line=line, allocations=[(out.bank_transaction_id, None)]
    )
    out.refresh_from_db()
    assert out.cleared is True
