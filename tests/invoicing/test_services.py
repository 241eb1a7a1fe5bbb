"""Invoice services end to end on the database: numbers, tax, postings, refusals."""

from datetime import date
from decimal import Decimal

import pytest
from django.core import mail

from accounting.models import Account, JournalEntry, JournalLine
from core.errors import ConflictError, DomainError, PermissionDeniedError
from core.models import AuditEvent
from invoicing import services
from invoicing.models import (
    Invoice,
    InvoiceCounter,
    InvoiceEvent,
    InvoiceLine,
    InvoicePayment,
    Party,
    VatRate,
)

D = Decimal


def lines_by_account(entry) -> dict:
    """{account code: (debit, credit)} of a journal entry."""
    out = {}
    for line in JournalLine.objects.filter(entry=entry).select_related("account"):
        d, c = out.get(line.account.code, (D(0), D(0)))
        out[line.account.code] = (d + line.debit, c + line.credit)
    return out


def role_code(company, role):
    from accounting.services import account_for_role

    return account_for_role(company=company, role=role).code


def written(company):
    """Everything a refused command must leave untouched."""
    return (
        InvoiceEvent.objects.count(),
        list(Invoice.objects.order_by("pk").values_list("pk", "version", "status", "amount_paid")),
        InvoiceLine.objects.count(),
        InvoicePayment.objects.count(),
        JournalEntry.objects.filter(company=company).count(),
        list(InvoiceCounter.objects.values_list("series", "last")),
        AuditEvent.objects.count(),
        Party.objects.count(),
    )


# --- parties, BIN and e-TIN --------------------------------------------------------------


def test_bin_is_stored_as_13_digits_and_shown_9_4(sales):
    assert sales.customer.bin == "0017457070402"
    assert sales.customer.bin_display == "001745707-0402"
    assert sales.customer.etin == "123456789012"
    assert sales.customer.etin_display == "1234-5678-9012"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("bin", "00174570704", "invalid_bin"),
        ("bin", "001745707-04021", "invalid_bin"),
        ("bin", "00174570A-0402", "invalid_bin"),
        ("etin", "1234-5678-901", "invalid_etin"),
        ("etin", "abcd56789012", "invalid_etin"),
    ],
)
def test_invalid_bin_or_etin_is_refused_and_nothing_written(sales, field, value, code):
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        services.party_create(actor=sales.owner, company=sales.company, name="X", **{field: value})
    assert info.value.code == code and field in info.value.fields
    with pytest.raises(DomainError):
        services.party_update(actor=sales.owner, party=sales.customer, **{field: value})
    assert written(sales.company) == before
    sales.customer.refresh_from_db()
    assert sales.customer.bin == "0017457070402"


def test_database_refuses_a_malformed_bin_going_around_python(sales):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Party.objects.filter(pk=sales.customer.pk).update(bin="12345")


def test_new_company_gets_the_standard_vat_rates(db):
    from core.services import company_create

    company = company_create(actor=None, name="Gamma", slug="gamma")
    codes = set(VatRate.objects.filter(company=company).values_list("code", flat=True))
    assert codes == {"VAT15", "VAT10", "VAT7.5", "VAT5", "ZERO", "EXEMPT", "SPECIFIC"}


# --- tax on real invoices --------------------------------------------------------------


def test_three_lines_of_10_05_give_4_53_vat_on_the_invoice(sales):
    line = {"item": sales.widget.pk, "quantity": "1"}
    invoice = sales.approved(line, line, line)
    invoice.refresh_from_db()
    assert (invoice.total_value, invoice.total_vat, invoice.total_amount) == (
        D("30.15"),
        D("4.53"),
        D("34.68"),
    )
    assert list(invoice.lines.values_list("serial", "vat_amount", "vat_label", "brand")) == [
        (1, D("1.51"), "15%", "Acme"),
        (2, D("1.51"), "15%", "Acme"),
        (3, D("1.51"), "15%", "Acme"),
    ]


def test_sd_and_specific_vat_on_an_invoice_and_their_posting(sales):
    invoice = sales.approved(
        {"item": sales.cigarette.pk, "quantity": "7"},  # 700.00, SD 455.00, VAT 17.50
        {"item": sales.service.pk, "quantity": "2", "sd_rate": "10"},  # 3000, SD 300, VAT 495
    )
    invoice.refresh_from_db()
    assert (invoice.total_value, invoice.total_sd, invoice.total_vat, invoice.total_amount) == (
        D("3700.00"),
        D("755.00"),
        D("512.50"),
        D("4967.50"),
    )
    c = sales.company
    assert lines_by_account(invoice.journal_entry) == {
        role_code(c, "accounts_receivable"): (D("4967.50"), D(0)),
        role_code(c, "sales_revenue"): (D(0), D("3700.00")),
        role_code(c, "sd_payable"): (D(0), D("755.00")),
        role_code(c, "vat_payable"): (D(0), D("512.50")),
    }
    assert invoice.journal_entry.source_type == "invoice"


def test_withholding_buyer_gets_vds_and_a_payment_can_settle_it(sales):
    invoice = sales.approved(
        {"item": sales.service.pk, "quantity": "1"}, customer=sales.withholding
    )  # 1500 + 225 VAT
    invoice.refresh_from_db()
    assert invoice.vds_amount == D("225.00")
    paid = services.invoice_payment_record(
        actor=sales.clerk,
        invoice=invoice,
        amount="1500.00",
        vds_withheld="225.00",
        date="2025-08-20",
        reference="TT-1",
    )
    paid.refresh_from_db()
    assert (paid.status, paid.amount_paid, paid.amount_due) == ("paid", D("1725.00"), D(0))
    entry = paid.payments.get().journal_entry
    c = sales.company
    assert lines_by_account(entry) == {
        role_code(c, "bank"): (D("1500.00"), D(0)),
        role_code(c, "vds_receivable"): (D("225.00"), D(0)),
        role_code(c, "accounts_receivable"): (D(0), D("1725.00")),
    }


def test_rates_are_snapshotted_at_approval(sales):
    draft = sales.draft({"item": sales.service.pk, "quantity": "1"})
    rate = VatRate.objects.get(company=sales.company, code="VAT15")
    services.vat_rate_update(actor=sales.owner, vat_rate=rate, rate="10")  # changed before approval
    invoice = services.invoice_approve(actor=sales.clerk, invoice=draft)
    invoice.refresh_from_db()
    assert invoice.total_vat == D("150.00")
    services.vat_rate_update(actor=sales.owner, vat_rate=rate, rate="15")  # after: no effect
    invoice.refresh_from_db()
    assert invoice.total_vat == D("150.00")
    assert invoice.lines.get().vat_rate == D("10")


# --- numbers ---------------------------------------------------------------------------


def test_numbers_run_per_series_branch_and_fiscal_year(sales):
    a1 = sales.approved()
    a2 = sales.approved()
    next_year = sales.approved(issue_date=date(2026, 7, 1))
    branch = sales.approved(branch="CTG")
    note = services.credit_note_issue(
        actor=sales.clerk,
        invoice=a1,
        reason="Returned",
        issue_date="2025-08-12",
        lines=[sales.line(unit_price="10.00")],
    )
    debit = services.debit_note_issue(
        actor=sales.clerk,
        invoice=a1,
        reason="Price rise",
        issue_date="2025-08-12",
        lines=[sales.line(unit_price="5.00")],
    )
    assert [a1.number, a2.number, next_year.number, branch.number] == [
        "INV/2025-26/000001",
        "INV/2025-26/000002",
        "INV/2026-27/000001",
        "INV/CTG/2025-26/000001",
    ]
    assert (note.number, note.mushak_form, debit.number, debit.mushak_form) == (
        "CN/2025-26/000001",
        "6.7",
        "DN/2025-26/000001",
        "6.8",
    )
    assert a1.mushak_number == a1.number and a1.mushak_form == "6.3"


def test_calendar_year_company_numbers_by_year(books):
    b = books.b
    customer = services.party_create(actor=books.owner_b, company=b, name="NY Deli")
    draft = services.invoice_create_draft(
        actor=books.owner_b,
        company=b,
        customer=customer,
        issue_date=date(2026, 3, 1),
        lines=[
            {"description": "Bagels", "quantity": "10", "unit_price": "2.50", "vat_rate": "ZERO"}
        ],
    )
    assert draft.currency == "USD"
    invoice = services.invoice_approve(actor=books.owner_b, invoice=draft)
    assert invoice.number == "INV/2026/000001"


def test_voided_number_stays_marked_void_and_its_entry_is_reversed(sales):
    invoice = sales.approved()
    voided = services.invoice_void(actor=sales.clerk, invoice=invoice, reason="Wrong customer")
    voided.refresh_from_db()
    assert (voided.status, voided.number, voided.amount_due) == ("void", "INV/2025-26/000001", 0)
    assert voided.journal_entry.status == "reversed"
    assert voided.void_journal_entry.reversal_of_id == voided.journal_entry_id
    again = sales.approved()
    assert again.number == "INV/2025-26/000002"  # the voided number is not reused


def test_voiding_a_draft_posts_nothing(sales):
    draft = sales.draft()
    entries = JournalEntry.objects.count()
    voided = services.invoice_void(actor=sales.clerk, invoice=draft, reason="Duplicate")
    assert (voided.status, voided.number) == ("void", "")
    assert JournalEntry.objects.count() == entries


# --- refusals, nothing written -----------------------------------------------------------


def test_approving_without_lines_is_refused(sales):
    draft = services.invoice_create_draft(
        actor=sales.clerk,
        company=sales.company,
        customer=sales.customer,
        lines=[],
        issue_date=date(2025, 8, 1),
    )
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        services.invoice_approve(actor=sales.clerk, invoice=draft)
    assert info.value.code == "no_lines"
    assert written(sales.company) == before


def test_editing_an_approved_invoice_is_refused(sales):
    invoice = sales.approved()
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        services.invoice_edit_draft(actor=sales.clerk, invoice=invoice, lines=[sales.line()])
    assert info.value.code == "not_draft"
    with pytest.raises(DomainError) as info:
        services.invoice_edit_draft(actor=sales.clerk, invoice=invoice, notes="changed")
    assert info.value.code == "not_draft"
    assert written(sales.company) == before


def test_paying_more_than_due_is_refused_with_a_clear_message(sales):
    invoice = sales.approved()  # 100 + 15
    services.invoice_payment_record(
        actor=sales.clerk, invoice=invoice, amount="100.00", date="2025-08-11"
    )
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        services.invoice_payment_record(
            actor=sales.clerk, invoice=invoice, amount="15.01", date="2025-08-12"
        )
    assert info.value.code == "overpayment"
    assert info.value.message == (
        "A payment of 15.01 is more than the 15.00 due on INV/2025-26/000001; record at most 15.00."
    )
    assert written(sales.company) == before


def test_vat_rate_not_in_the_company_list_is_refused(sales):
    before = written(sales.company)
    for code in ("VAT99", ""):
        with pytest.raises(DomainError) as info:
            sales.draft(sales.line(vat_rate=code))
        assert info.value.code == "vat_rate_not_allowed"
    # another company's rate code that this company switched off
    rate = VatRate.objects.get(company=sales.company, code="VAT5")
    services.vat_rate_update(actor=sales.owner, vat_rate=rate, is_active=False)
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        sales.draft(sales.line(vat_rate="VAT5"))
    assert info.value.code == "vat_rate_not_allowed"
    assert written(sales.company) == before


def test_stale_version_is_a_409_and_nothing_is_written(sales):
    draft = sales.draft()
    services.invoice_edit_draft(actor=sales.clerk, invoice=draft, expected_version=1, notes="v2")
    before = written(sales.company)
    with pytest.raises(ConflictError) as info:
        services.invoice_edit_draft(
            actor=sales.clerk, invoice=draft, expected_version=1, notes="lost update"
        )
    assert (info.value.code, info.value.http_status) == ("stale_version", 409)
    with pytest.raises(ConflictError):
        services.invoice_approve(actor=sales.clerk, invoice=draft, expected_version=1)
    assert written(sales.company) == before
    assert Invoice.objects.get(pk=draft.pk).notes == "v2"


def test_a_racing_append_of_the_same_version_is_a_conflict(sales):
    from invoicing.events import events_append

    draft = sales.draft()
    with pytest.raises(ConflictError) as info:
        events_append(
            company_id=sales.company.pk,
            stream_id=draft.stream_id,
            expected_version=0,
            events=[("DraftEdited", {"notes": "x"})],
            metadata={},
        )
    assert info.value.code == "stale_version"


def test_auditor_cannot_write_and_nothing_is_written(sales):
    before = written(sales.company)
    with pytest.raises(PermissionDeniedError):
        sales.draft(actor=sales.auditor)
    assert written(sales.company) == before


def test_customer_of_another_company_is_refused(sales):
    other = services.party_create(actor=sales.tenants.owner_b, company=sales.tenants.b, name="B")
    with pytest.raises(DomainError) as info:
        sales.draft(customer=other)
    assert info.value.code == "invalid_customer"


def test_ledger_refusal_rolls_the_number_back(sales):
    """A posting the ledger refuses (no fiscal year for 2030) leaves no number used."""
    draft = sales.draft(issue_date=date(2030, 1, 5))
    before = written(sales.company)
    with pytest.raises(DomainError):
        services.invoice_approve(actor=sales.clerk, invoice=draft)
    assert written(sales.company) == before
    assert sales.approved().number == "INV/2025-26/000001"


# --- notes -----------------------------------------------------------------------------


def test_credit_note_posts_back_and_reduces_the_amount_due(sales):
    invoice = sales.approved({"item": sales.service.pk, "quantity": "2"})  # 3000 + 450
    note = services.credit_note_issue(
        actor=sales.clerk,
        invoice=invoice,
        reason="One hour not delivered",
        lines=[{"item": sales.service.pk, "quantity": "1"}],
        issue_date="2025-08-15",
    )
    invoice.refresh_from_db()
    note.refresh_from_db()
    assert (note.kind, note.original_id, note.total_amount, note.reason) == (
        "credit_note",
        invoice.pk,
        D("1725.00"),
        "One hour not delivered",
    )
    assert (invoice.credited_amount, invoice.amount_due) == (D("1725.00"), D("1725.00"))
    c = sales.company
    assert lines_by_account(note.journal_entry) == {
        role_code(c, "accounts_receivable"): (D(0), D("1725.00")),
        role_code(c, "sales_revenue"): (D("1500.00"), D(0)),
        role_code(c, "vat_payable"): (D("225.00"), D(0)),
    }
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        services.credit_note_issue(
            actor=sales.clerk,
            invoice=invoice,
            reason="Too much",
            lines=[{"item": sales.service.pk, "quantity": "2"}],
        )
    assert info.value.code == "credit_exceeds_invoice"
    assert written(sales.company) == before


def test_debit_note_raises_the_amount_due(sales):
    invoice = sales.approved()
    services.invoice_payment_record(
        actor=sales.clerk, invoice=invoice, amount="115.00", date="2025-08-11"
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    services.debit_note_issue(
        actor=sales.clerk,
        invoice=invoice,
        reason="Freight",
        lines=[sales.line(unit_price="20.00")],
        issue_date="2025-08-12",
    )
    invoice.refresh_from_db()
    assert (invoice.debited_amount, invoice.amount_due, invoice.status) == (
        D("23.00"),
        D("23.00"),
        "partially_paid",
    )


# --- events, audit ---------------------------------------------------------------------


def test_every_change_is_an_event_with_actor_and_an_audit_row(sales):
    invoice = sales.approved()
    services.invoice_payment_record(
        actor=sales.clerk, invoice=invoice, amount="15.00", date="2025-08-11"
    )
    events = list(InvoiceEvent.objects.filter(stream_id=invoice.stream_id).order_by("version"))
    assert [(e.version, e.type) for e in events] == [
        (1, "InvoiceDrafted"),
        (2, "InvoiceApproved"),
        (3, "PaymentRecorded"),
    ]
    assert all(e.metadata["actor"] == "a-clerk" for e in events)
    assert invoice.pk == events[0].id  # the read-model id is the stream's first position
    actions = list(
        AuditEvent.objects.filter(object_type="invoicing.invoice", object_id=str(invoice.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["invoice.drafted", "invoice.approved", "invoice.payment_recorded"]


def test_ar_account_equals_open_amounts(sales):
    a = sales.approved({"item": sales.service.pk, "quantity": "1"})
    b = sales.approved()
    sales.approved()
    services.invoice_payment_record(
        actor=sales.clerk, invoice=a, amount="700.00", date="2025-08-20"
    )
    services.invoice_void(actor=sales.clerk, invoice=b, reason="Duplicate")
    from invoicing.selectors import receivables_total

    ar = Account.objects.get(
        company=sales.company, code=role_code(sales.company, "accounts_receivable")
    )
    lines = JournalLine.objects.filter(account=ar)
    balance = sum(x.debit - x.credit for x in lines)
    assert balance == receivables_total(sales.company) == D("1025.00") + D("115.00")


def test_no_email_is_sent_by_drafting_or_approving(sales):
    sales.approved()
    assert mail.outbox == []


def test_foreign_currency_is_refused_until_exchange_rates_exist(sales):
    before = written(sales.company)
    with pytest.raises(DomainError) as info:
        sales.draft(currency="usd")
    assert info.value.code == "currency_not_supported"
    assert written(sales.company) == before
    assert sales.draft(currency="bdt").currency == "BDT"
