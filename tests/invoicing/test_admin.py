"""The invoicing admin as finance staff use it. Figures (VAT 15 % per line, half-up):
10 Widgets x 10.05 = 100.50 + VAT 15.08 = 115.58; 2 consulting hours x 1,500.00 = 3,000.00 +
VAT 450.00 = 3,450.00; invoice total 3,565.58."""

from datetime import date

import pytest
from django.test import Client

from core.models import AuditEvent
from invoicing import services
from invoicing.models import (
    Invoice,
    InvoiceCounter,
    InvoiceEvent,
    InvoiceLine,
    InvoicePayment,
    Party,
    RecurringInvoice,
)

ADMIN = "/admin/invoicing"
INVOICES = f"{ADMIN}/invoice/"
PARTIES = f"{ADMIN}/party/"


def login(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_role(sales):
    return lambda role: login(sales.tenants.users_a[role])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def written():
    return (
        InvoiceEvent.objects.count(),
        list(Invoice.objects.order_by("pk").values_list("pk", "version", "status", "amount_paid")),
        InvoiceLine.objects.count(),
        InvoicePayment.objects.count(),
        list(InvoiceCounter.objects.values_list("series", "last")),
        AuditEvent.objects.count(),
        Party.objects.count(),
    )


def two_line_draft(sales) -> Invoice:
    return sales.draft(
        {"item": sales.widget.pk, "quantity": "10"}, {"item": sales.service.pk, "quantity": "2"}
    )


def form_data(response) -> dict:
    """What the browser would send back for the page as rendered (the main form and inlines)."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value is not None and value is not False:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[f"{formset.prefix}-{name}"] = management[name].value()
        for line in formset.forms:
            for name in line.fields:
                value = line[name].value()
                if value is not None and value is not False:
                    data[line.add_prefix(name)] = value
    return data


def new_draft_data(sales) -> dict:
    data = {
        "company": sales.company.pk,
        "customer": sales.customer.pk,
        "issue_date": "2025-08-10",
        "currency": "BDT",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "200",
        "lines-0-item": sales.widget.pk,
        "lines-0-quantity": "10",
        "lines-1-item": sales.service.pk,
        "lines-1-quantity": "2",
        "_save": "Save",
    }
    return data


# --- pages load --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "accountant", "clerk", "auditor", "payroll_manager"])
def test_every_invoicing_screen_loads_for_members(sales, as_role, role):
    draft = two_line_draft(sales)
    approved = sales.approved()
    client = as_role(role)
    for url in (
        INVOICES,
        PARTIES,
        f"{ADMIN}/item/",
        f"{ADMIN}/vatrate/",
        f"{ADMIN}/recurringinvoice/",
        f"{INVOICES}{draft.pk}/change/",
        f"{INVOICES}{approved.pk}/change/",
        f"{PARTIES}{sales.customer.pk}/change/",
        f"{INVOICES}reports/sales-register/",
        f"{INVOICES}reports/vat-summary/",
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    page = client.get(f"{INVOICES}{approved.pk}/change/").content.decode()
    assert "INV/2025-26/000001" in page and "InvoiceApproved" in page
    assert "Print Mushak-6.3" in page
    assert ("Record payment" in page) is (role in ("owner", "accountant", "clerk"))
    listed = client.get(INVOICES).content.decode()
    assert "Sales register" in listed and "115.00" in listed


def test_the_mushak_buttons_open_html_and_pdf(sales, as_role):
    approved = sales.approved(issue_date=date(2025, 8, 10))
    client = as_role("auditor")
    html = client.get(f"{INVOICES}{approved.pk}/mushak/")
    assert html.status_code == 200 and "INV/2025-26/000001" in html.content.decode()
    pdf = client.get(f"{INVOICES}{approved.pk}/mushak/pdf/")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf["Content-Type"] == "application/pdf"


# --- parties -----------------------------------------------------------------------------------


def test_a_party_is_added_with_a_formatted_bin(sales, as_role):
    client = as_role("clerk")
    response = client.post(
        f"{PARTIES}add/",
        {
            "company": sales.company.pk,
            "name": "Meghna Cement",
            "kind": "customer",
            "bin": "004567891-0203",
            "etin": "9876-5432-1098",
            "payment_terms_days": "15",
            "is_active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    party = Party.objects.get(name="Meghna Cement")
    assert (party.bin, party.etin) == ("0045678910203", "987654321098")
    listed = client.get(PARTIES).content.decode()
    assert "004567891-0203" in listed and "9876-5432-1098" in listed
    found = client.get(PARTIES, {"q": "004567891-0203"}).content.decode()
    assert "Meghna Cement" in found and "Dhaka Retail" not in found
    change = client.get(f"{PARTIES}{party.pk}/change/").content.decode()
    assert 'value="004567891-0203"' in change


def test_an_invalid_bin_is_answered_on_the_form_and_nothing_written(sales, as_role):
    client = as_role("clerk")
    before = written()
    response = client.post(
        f"{PARTIES}add/",
        {
            "company": sales.company.pk,
            "name": "Typo Traders",
            "kind": "customer",
            "bin": "00456789-0203",
            "payment_terms_days": "30",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "13 digits" in errors["bin"][0]
    assert written() == before


# --- drafts ------------------------------------------------------------------------------------


def test_a_draft_is_added_with_its_lines_through_the_service(sales, as_role):
    client = as_role("clerk")
    response = client.post(f"{INVOICES}add/", new_draft_data(sales))
    assert response.status_code == 302, response.context and (
        response.context["errors"],
        [f.errors for s in response.context["inline_admin_formsets"] for f in s.formset],
    )
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.version, invoice.total_amount) == (
        "draft",
        1,
        services.Decimal("3565.58"),
    )
    assert [(line.description, str(line.total)) for line in invoice.lines.all()] == [
        ("Widget", "115.58"),
        ("Consulting hour", "3450.00"),
    ]
    assert InvoiceEvent.objects.filter(stream_id=invoice.stream_id).count() == 1
    assert AuditEvent.objects.filter(action="invoice.drafted").count() == 1


def test_a_draft_is_edited_inline_and_a_stale_page_is_refused(sales, as_role):
    draft = two_line_draft(sales)
    client = as_role("clerk")
    url = f"{INVOICES}{draft.pk}/change/"
    page = client.get(url)
    data = form_data(page)
    data["lines-0-quantity"] = "20"  # 20 x 10.05 = 201.00 + 30.15 VAT = 231.15
    data["notes"] = "Deliver to gate 3"
    data["_continue"] = "Save"
    stale = dict(data)
    saved = client.post(url, data)
    assert saved.status_code == 302
    draft.refresh_from_db()
    assert (draft.version, draft.notes, str(draft.total_amount)) == (
        2,
        "Deliver to gate 3",
        "3681.15",
    )
    assert [str(line.total) for line in draft.lines.all()] == ["231.15", "3450.00"]

    before = written()
    stale["notes"] = "Someone else's idea"
    refused = client.post(url, stale)
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "has changed" in page and "reload" in page
    assert written() == before


def test_a_line_with_a_vat_rate_outside_the_list_is_refused(sales, as_role):
    client = as_role("clerk")
    data = new_draft_data(sales)
    data.update(
        {
            "lines-2-description": "Gold",
            "lines-2-unit": "g",
            "lines-2-quantity": "1",
            "lines-2-unit_price": "9000",
            "lines-2-vat_rate_code": "VAT99",
        }
    )
    before = written()
    response = client.post(f"{INVOICES}add/", data)
    assert response.status_code == 200
    assert written() == before


def test_an_approved_invoice_is_read_only(sales, as_role):
    approved = sales.approved()
    client = as_role("clerk")
    page = client.get(f"{INVOICES}{approved.pk}/change/")
    assert page.context["has_change_permission"] is False
    before = written()
    response = client.post(f"{INVOICES}{approved.pk}/change/", {"notes": "sneaky"})
    assert response.status_code == 403
    assert written() == before


# --- commands ----------------------------------------------------------------------------------


def test_approve_button_numbers_and_posts(sales, as_role):
    draft = two_line_draft(sales)
    client = as_role("clerk")
    url = f"{INVOICES}{draft.pk}/approve/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"expected_version": draft.version}, follow=True)
    assert messages_of(response) == [
        "Approved as INV/2025-26/000001: total 3,565.58, due 2025-09-09; the receivable is posted."
    ]
    draft.refresh_from_db()
    assert draft.status == "approved" and draft.journal_entry_id


def test_approving_an_empty_draft_says_why_and_writes_nothing(sales, as_role):
    empty = services.invoice_create_draft(
        actor=sales.clerk, company=sales.company, customer=sales.customer, lines=[]
    )
    client = as_role("clerk")
    before = written()
    response = client.post(f"{INVOICES}{empty.pk}/approve/", {"expected_version": 1})
    assert response.status_code == 200
    assert "at least one line" in response.content.decode()
    assert written() == before


def test_payment_form_records_and_refuses_overpayment(sales, as_role):
    invoice = sales.approved(
        {"item": sales.widget.pk, "quantity": "10"}, {"item": sales.service.pk, "quantity": "2"}
    )
    client = as_role("accountant")
    url = f"{INVOICES}{invoice.pk}/payment/"
    page = client.get(url)
    assert page.status_code == 200 and "3,565.58 is due" in page.content.decode()
    before = written()
    over = client.post(url, {"amount": "3565.59", "date": "2025-08-20", "expected_version": 2})
    assert over.status_code == 200
    assert "overpay" in over.content.decode().lower() or "more than" in over.content.decode()
    assert written() == before
    paid = client.post(
        url,
        {"amount": "1000.00", "date": "2025-08-20", "reference": "TT-99", "expected_version": 2},
        follow=True,
    )
    assert messages_of(paid) == [
        "Payment of 1,000.00 recorded on INV/2025-26/000001: partially paid, 2,565.58 still due."
    ]


def test_void_and_credit_note_forms(sales, as_role):
    first = sales.approved()  # one widget line: 100.00 + 15.00 VAT
    second = sales.approved()
    client = as_role("clerk")
    voided = client.post(
        f"{INVOICES}{second.pk}/void/",
        {"reason": "Duplicate", "expected_version": second.version},
        follow=True,
    )
    assert messages_of(voided) == ["INV/2025-26/000002 is void; its receivable entry is reversed."]
    no_reason = client.post(f"{INVOICES}{first.pk}/void/", {"reason": ""})
    assert no_reason.status_code == 200 and first.__class__.objects.get(pk=first.pk).status == (
        "approved"
    )

    url = f"{INVOICES}{first.pk}/credit-note/"
    assert client.get(url).status_code == 200
    credit = client.post(
        url,
        {
            "reason": "Discount agreed",
            "issue_date": "2025-08-12",
            "expected_version": first.version,
            "lines-TOTAL_FORMS": "3",
            "lines-INITIAL_FORMS": "0",
            "lines-MIN_NUM_FORMS": "0",
            "lines-MAX_NUM_FORMS": "200",
            "lines-0-description": "Discount",
            "lines-0-unit": "pcs",
            "lines-0-quantity": "1",
            "lines-0-unit_price": "20",
            "lines-0-vat_rate": "VAT15",
        },
        follow=True,
    )
    assert messages_of(credit) == [
        "CN/2025-26/000001 issued on INV/2025-26/000001: 23.00 (credit note, Mushak-6.7)."
    ]
    first.refresh_from_db()
    assert str(first.amount_due) == "92.00"  # 115.00 - 23.00

    too_much = client.post(
        url,
        {
            "reason": "More than due",
            "issue_date": "2025-08-12",
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "0",
            "lines-MIN_NUM_FORMS": "0",
            "lines-MAX_NUM_FORMS": "200",
            "lines-0-description": "All",
            "lines-0-unit": "pcs",
            "lines-0-quantity": "1",
            "lines-0-unit_price": "500",
            "lines-0-vat_rate": "VAT15",
        },
    )
    assert too_much.status_code == 200
    assert "Nothing was changed" in too_much.content.decode()


def test_approve_action_reports_each_refusal(sales, as_role):
    good = two_line_draft(sales)
    empty = services.invoice_create_draft(
        actor=sales.clerk, company=sales.company, customer=sales.customer, lines=[]
    )
    client = as_role("clerk")
    response = client.post(
        INVOICES,
        {"action": "approve_drafts", "_selected_action": [good.pk, empty.pk]},
        follow=True,
    )
    found = messages_of(response)
    assert "1 invoice approved: INV/2025-26/000001." in found
    assert any("at least one line" in m for m in found)


def test_auditor_sees_no_buttons_and_cannot_pay(sales, as_role):
    invoice = sales.approved()
    client = as_role("auditor")
    before = written()
    response = client.post(f"{INVOICES}{invoice.pk}/payment/", {"amount": "1"})
    assert response.status_code == 403
    assert written() == before


# --- recurring ---------------------------------------------------------------------------------


def test_a_recurring_invoice_is_set_up_and_issued_from_the_list(sales, as_role):
    client = as_role("clerk")
    response = client.post(
        f"{ADMIN}/recurringinvoice/add/",
        {
            "company": sales.company.pk,
            "name": "Monthly retainer",
            "customer": sales.customer.pk,
            "lines": f'[{{"item": {sales.service.pk}, "quantity": "1"}}]',
            "frequency": "monthly",
            "interval": "1",
            "next_date": "2025-08-01",
            "due_days": "15",
            "is_active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    template = RecurringInvoice.objects.get()
    issued = client.post(
        f"{ADMIN}/recurringinvoice/",
        {"action": "issue_due", "_selected_action": [template.pk]},
        follow=True,
    )
    found = messages_of(issued)[-1]
    count = template.invoices.count()  # one a month from August 2025 to today
    assert count >= 12 and found == f"Monthly retainer: {count} invoices issued."
    again = client.post(
        f"{ADMIN}/recurringinvoice/",
        {"action": "issue_due", "_selected_action": [template.pk]},
        follow=True,
    )
    assert messages_of(again) == ["Nothing was due."]
    assert template.invoices.count() == count
    page = client.get(f"{ADMIN}/recurringinvoice/{template.pk}/change/").content.decode()
    assert f"?recurring__id__exact={template.pk}" in page
    assert "Consulting hour — 1 hour at 1,500.00 (VAT15)" in page
    issued_list = client.get(INVOICES, {"recurring__id__exact": template.pk})
    assert issued_list.status_code == 200
    assert issued_list.context["cl"].result_count == count


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_shows_receivables_and_recent_invoices(sales, as_role):
    overdue = sales.approved(issue_date=date(2025, 8, 1), due_date=date(2025, 8, 31))
    services.invoice_mark_overdue(invoice=overdue, today=date(2025, 9, 15))
    sales.approved(issue_date=date(2025, 8, 20))
    sales.draft()
    page = as_role("auditor").get("/admin/")
    assert page.status_code == 200
    panels = {panel["title"]: panel for panel in page.context["panels"]}
    receivables = panels["Receivables"]["rows"]
    assert [[cell["text"] for cell in row] for row in receivables] == [
        ["Alpha Traders", "2", "BDT 230.00", "1", "115.00"]
    ]
    recent = [row[0]["text"] for row in panels["Recent invoices"]["rows"]]
    assert recent[0] == "INV/2025-26/000002" and recent[2] == "INV/2025-26/000001"
    assert recent[1].startswith("Draft ")  # issued 10 August, between the two


def test_the_add_pages_preselect_the_only_company(sales, as_role):
    client = as_role("clerk")
    for model in ("invoice", "party", "item", "vatrate", "recurringinvoice"):
        page = client.get(f"{ADMIN}/{model}/add/")
        assert page.status_code == 200, model
        assert page.context["adminform"].form.initial.get("company") == sales.company.pk, model
