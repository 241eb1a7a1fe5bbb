"""Defects found in review of the invoicing core, each shown fixed with figures by hand."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounting.models import JournalLine
from core.errors import PermissionDeniedError, ValidationFailed
from core.models import Membership
from invoicing import services
from invoicing.domain import InvoiceError
from invoicing.models import Invoice, InvoiceEvent

API = "/api/v1/invoicing"
INVOICES = f"{API}/invoices/"


def balance(company, code, *, credit=False):
    rows = JournalLine.objects.filter(entry__company=company, account__code=code)
    total = sum((r.debit - r.credit for r in rows), D(0))
    return -total if credit else total


@pytest.fixture
def clerk_api(sales):
    client = APIClient()
    client.force_authenticate(sales.clerk)
    client.credentials(HTTP_X_COMPANY=sales.company.slug)
    return client


# --- 1. generating a recurring invoice needs write on the template's company -----------------


@pytest.fixture
def template_in_b(sales):
    b, owner_b = sales.tenants.b, sales.tenants.owner_b
    Membership.objects.create(user=sales.clerk, company=b, role="auditor")
    party = services.party_create(actor=owner_b, company=b, name="B customer")
    return services.recurring_invoice_create(
        actor=owner_b,
        company=b,
        name="B retainer",
        customer=party.pk,
        lines=[{"description": "x", "quantity": "1", "unit_price": "10", "vat_rate": "VAT15"}],
        frequency="monthly",
        next_date=date(2025, 8, 1),
        auto_approve=True,
    )


def test_generate_refuses_a_reader_of_the_company(sales, template_in_b):
    with pytest.raises(PermissionDeniedError):
        services.recurring_invoice_generate(
            actor=sales.clerk, recurring=template_in_b, today=date(2025, 9, 1)
        )
    assert not Invoice.objects.filter(company=sales.tenants.b).exists()
    template_in_b.refresh_from_db()
    assert template_in_b.next_date == date(2025, 8, 1)


def test_admin_issue_due_checks_the_role_per_row(sales, template_in_b):
    sales.clerk.is_staff = True
    sales.clerk.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(sales.clerk)
    response = client.post(
        "/admin/invoicing/recurringinvoice/",
        {"action": "issue_due", "_selected_action": [template_in_b.pk]},
        follow=True,
    )
    assert response.status_code in (200, 403)
    assert not Invoice.objects.filter(company=sales.tenants.b).exists()


def test_generate_by_a_writer_issues_up_to_the_company_today_only(sales):
    template = services.recurring_invoice_create(
        actor=sales.owner,
        company=sales.company,
        name="Retainer",
        customer=sales.customer.pk,
        lines=[sales.line(unit_price="1000.00")],
        frequency="monthly",
        next_date=sales.company.today(),
    )
    far = date(sales.company.today().year + 5, 1, 1)
    made = services.recurring_invoice_generate(actor=sales.clerk, recurring=template, today=far)
    assert len(made) == 1  # today's only; the future is not issued ahead of time
    assert made[0].total_amount == D("1150.00")


# --- 2. a payment lands in cash or at the bank -------------------------------------------------


@pytest.mark.parametrize("code", ["1200", "4100", "2120"])
def test_payment_to_a_non_cash_account_is_refused(sales, code):
    invoice = sales.approved()  # 100 + 15 VAT
    ar = balance(sales.company, "1200")
    events = InvoiceEvent.objects.count()
    with pytest.raises(ValidationFailed) as refused:
        services.invoice_payment_record(
            actor=sales.clerk, invoice=invoice, amount="115.00", account=code
        )
    assert refused.value.code == "invalid_account"
    assert (balance(sales.company, "1200"), InvoiceEvent.objects.count()) == (ar, events)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("approved", D("115.00"))


def test_payment_to_petty_cash_is_booked(sales, clerk_api):
    invoice = sales.approved()
    response = clerk_api.post(
        f"{INVOICES}{invoice.pk}/payments/",
        {"amount": "115.00", "account": "1120", "date": "2025-08-11", "version": 2},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert balance(sales.company, "1120") == D("115.00")
    assert balance(sales.company, "1200") == D("0.00")
    bad = clerk_api.post(
        f"{INVOICES}{sales.approved().pk}/payments/",
        {"amount": "10.00", "account": "1200", "version": 2},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_account"


def test_admin_payment_form_offers_cash_and_bank_accounts_only(sales):
    from invoicing.forms import PaymentForm

    form = PaymentForm(invoice=sales.approved())
    codes = sorted(form.fields["account"].queryset.values_list("code", flat=True))
    assert codes == ["1120", "1131", "1140", "1150"]


_ = InvoiceError
