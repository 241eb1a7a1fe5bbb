"""A draft invoice approved in the admin, then its Mushak-6.3 opened (the HTML page and the PDF)."""

import re
from decimal import Decimal

import pytest

from invoicing import services
from invoicing.models import Invoice, InvoiceStatus
from tests.e2e.conftest import expect, login, messages_text
from tests.factories import party_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_approve_an_invoice_and_open_its_mushak_6_3(page, office):
    company, owner = office.company, office.owner
    customer = party_for(
        company, name="Dhaka Retail Ltd", bin="001745707-0402", address="12 Motijheel C/A, Dhaka"
    )
    draft = services.invoice_create_draft(
        actor=owner,
        company=company,
        customer=customer,
        lines=[
            {
                "description": "Consulting hour",
                "unit": "hour",
                "quantity": "10",
                "unit_price": "1500.00",
                "vat_rate": "VAT15",
            },
            {
                "description": "Widget",
                "unit": "pcs",
                "quantity": "3",
                "unit_price": "100.00",
                "vat_rate": "VAT15",
            },
        ],
    )
    login(page, owner.username)

    page.goto(f"/admin/invoicing/invoice/{draft.pk}/change/")
    page.shots("draft")
    page.get_by_role("link", name="Approve…").click()
    expect(page).to_have_url(re.compile(rf"/admin/invoicing/invoice/{draft.pk}/approve/"))
    page.shots("approve-form")
    page.get_by_role("button", name="Approve and post").click()
    said = messages_text(page, "Approved as ")
    invoice = Invoice.objects.get(pk=draft.pk)
    assert invoice.status == InvoiceStatus.APPROVED
    assert invoice.total_amount == Decimal("17595.00")  # 15,300.00 + 15% VAT 2,295.00
    assert f"Approved as {invoice.number}: total" in said, said
    assert "17,595.00" in said
    assert invoice.journal_entry_id is not None
    page.shots("approved")

    # the printable Mushak-6.3 opens in a new tab
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Print Mushak-6.3").click()
    mushak = opened.value
    mushak.wait_for_load_state()
    assert mushak.title() == f"Mushak-6.3 {invoice.number}"
    body = mushak.locator("body").inner_text()
    assert invoice.number in body
    assert "Dhaka Retail Ltd" in body and "001745707-0402" in body
    totals = mushak.locator("tfoot tr[id^=totals-]").first.inner_text()
    for figure in ("15,300.00", "2,295.00", "17,595.00"):
        assert figure in totals, totals
    page.shots("mushak-6.3", page=mushak)

    # and the PDF beside it answers a PDF
    pdf_url = page.get_by_role("link", name="PDF", exact=True).get_attribute("href")
    answer = page.request.get(pdf_url)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.body().startswith(b"%PDF-")
    assert answer.headers["content-disposition"].endswith('.pdf"')
