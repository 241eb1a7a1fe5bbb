"""The invoice aggregate without a database: replay and decisions."""

from datetime import date
from decimal import Decimal

import pytest

from core.errors import ConflictError
from invoicing import domain

D = Decimal
RATES = {
    "VAT15": domain.RateInfo("VAT15", "percent", D(15), D(0)),
    "EXEMPT": domain.RateInfo("EXEMPT", "exempt", D(0), D(0), "SRO 123"),
}


def draft_state(lines=None):
    state = domain.InvoiceState(stream_id="s1")
    built = domain.build_lines(
        lines
        or [{"description": "A", "quantity": "3", "unit_price": "10.05", "vat_rate": "VAT15"}],
        RATES,
    )
    for event in domain.decide_create_draft(
        state,
        header={"customer_id": 1, "issue_date": "2025-08-01", "due_date": "2025-08-31"},
        lines=built,
    ):
        domain.apply(state, *event)
    return state


def approve(state, number="INV/2025-26/000001"):
    for event in domain.decide_approve(
        state,
        lines=state.lines,
        number=number,
        series="INV",
        sequence=1,
        fiscal_year="2025-26",
        issue_date=date(2025, 8, 1),
        issue_time="10:00:00",
        due_date=date(2025, 8, 31),
        withholding_buyer=True,
        journal_entry_id=7,
        approved_at="2025-08-01T04:00:00+00:00",
    ):
        domain.apply(state, *event)
    return state


def test_draft_then_approve_then_pay_in_parts():
    state = approve(draft_state())
    assert (state.version, state.status, state.total_amount) == (2, "approved", D("34.67"))
    assert state.vds_amount == D("4.52")  # withholding buyer: the VAT charged
    for amount in ("10.00", "24.67"):
        events = domain.decide_payment(
            state,
            amount=amount,
            vds_withheld="0",
            day=date(2025, 8, 5),
            method="",
            reference="",
            account_code="1131",
            journal_entry_id=None,
        )
        domain.apply(state, *events[0])
        if amount == "10.00":
            assert state.status == "partially_paid"
    assert (state.status, state.amount_due) == ("paid", D("0.00"))


def test_overpayment_is_refused_with_the_amount_due():
    state = approve(draft_state())
    with pytest.raises(domain.InvoiceError) as info:
        domain.check_payment(state, amount="34.68", vds_withheld="0")
    assert info.value.code == "overpayment"
    assert "34.67" in info.value.message


def test_unknown_vat_rate_is_refused():
    with pytest.raises(domain.InvoiceError) as info:
        domain.build_lines(
            [{"description": "A", "quantity": 1, "unit_price": "1", "vat_rate": "VAT99"}], RATES
        )
    assert info.value.code == "vat_rate_not_allowed"


def test_float_amounts_are_refused():
    with pytest.raises(domain.InvoiceError) as info:
        domain.build_lines(
            [{"description": "A", "quantity": 1.5, "unit_price": "1", "vat_rate": "VAT15"}], RATES
        )
    assert info.value.code == "invalid_number"


def test_approved_invoice_cannot_be_edited_or_approved_again():
    state = approve(draft_state())
    with pytest.raises(domain.InvoiceError) as info:
        domain.decide_edit_draft(state, header={"notes": "x"})
    assert info.value.code == "not_draft"
    with pytest.raises(domain.InvoiceError) as info:
        domain.check_approvable(state)
    assert info.value.code == "not_draft"


def test_no_lines_cannot_be_approved():
    state = domain.InvoiceState(stream_id="s2")
    for event in domain.decide_create_draft(state, header={"customer_id": 1}, lines=()):
        domain.apply(state, *event)
    with pytest.raises(domain.InvoiceError) as info:
        domain.check_approvable(state)
    assert info.value.code == "no_lines"


def test_stale_version_is_a_conflict():
    state = draft_state()
    domain.check_version(state, 1)
    with pytest.raises(ConflictError) as info:
        domain.check_version(state, 0)
    assert (info.value.code, info.value.http_status) == ("stale_version", 409)


def test_credit_note_cannot_exceed_the_amount_due_and_reduces_it():
    original = approve(draft_state())
    note = domain.InvoiceState(stream_id="n1")
    lines = domain.build_lines(
        [{"description": "Return", "quantity": "1", "unit_price": "10.05", "vat_rate": "VAT15"}],
        RATES,
    )
    note_events, original_events = domain.decide_note(
        original,
        note,
        kind="credit_note",
        lines=lines,
        reason="Damaged",
        number="CN/1",
        series="CN",
        sequence=1,
        fiscal_year="2025-26",
        issue_date=date(2025, 8, 2),
        issue_time="11:00:00",
        journal_entry_id=8,
        approved_at="x",
    )
    domain.apply(note, *note_events[0])
    domain.apply(original, *original_events[0])
    assert note.total_amount == D("11.56") and note.status == "approved"
    assert original.amount_due == D("34.67") - D("11.56")
    too_much = domain.build_lines(
        [{"description": "All", "quantity": "3", "unit_price": "10.05", "vat_rate": "VAT15"}], RATES
    )
    with pytest.raises(domain.InvoiceError) as info:
        domain.check_note(original, kind="credit_note", lines=too_much, reason="x")
    assert info.value.code == "credit_exceeds_invoice"


def test_mark_overdue_only_once_and_only_past_due():
    state = approve(draft_state())
    assert domain.decide_mark_overdue(state, today=date(2025, 8, 31)) == []
    events = domain.decide_mark_overdue(state, today=date(2025, 9, 1))
    domain.apply(state, *events[0])
    assert state.status == "overdue"
    assert domain.decide_mark_overdue(state, today=date(2025, 9, 2)) == []


def test_void_refused_after_payment():
    state = approve(draft_state())
    events = domain.decide_payment(
        state,
        amount="1.00",
        vds_withheld="0",
        day=date(2025, 8, 5),
        method="",
        reference="",
        account_code="",
        journal_entry_id=None,
    )
    domain.apply(state, *events[0])
    with pytest.raises(domain.InvoiceError) as info:
        domain.check_void(state, "wrong customer")
    assert info.value.code == "has_payments"
