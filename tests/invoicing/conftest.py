"""Fixtures for invoicing tests (shared with the documents, reports and API tests).

`books`: companies A (July-June, BDT) and B (calendar year, USD) with their chart of accounts,
fiscal years 2025-26 .. 2026-27 (A) and 2025 .. 2026 (B), and the standard VAT rates.
`sales`: company A with a customer, a VAT-withholding customer, a vendor and items.
"""

from dataclasses import dataclass
from datetime import date

import pytest

from accounting import services as ledger
from invoicing import services
from invoicing.models import Invoice

D = date


@pytest.fixture
def books(tenants):
    for company, days in (
        (tenants.a, (D(2025, 7, 1), D(2026, 7, 1))),
        (tenants.b, (D(2025, 1, 1), D(2026, 1, 1))),
    ):
        ledger.company_ledger_setup(company=company)
        for day in days:
            ledger.fiscal_year_create(actor=None, company=company, containing=day)
        services.vat_rates_seed(company=company)
    return tenants


@dataclass
class Sales:
    company: object
    owner: object
    clerk: object
    auditor: object
    customer: object
    withholding: object
    vendor: object
    widget: object
    service: object
    cigarette: object
    tenants: object

    def line(self, **kw):
        base = {
            "description": "Widget",
            "unit": "pcs",
            "quantity": "1",
            "unit_price": "100.00",
            "vat_rate": "VAT15",
        }
        base.update(kw)
        return base

    def draft(self, *lines, customer=None, actor=None, **kw) -> Invoice:
        return services.invoice_create_draft(
            actor=actor or self.clerk,
            company=self.company,
            customer=customer or self.customer,
            lines=list(lines) or [self.line()],
            **{"issue_date": D(2025, 8, 10), **kw},
        )

    def approved(self, *lines, **kw) -> Invoice:
        draft = self.draft(*lines, **kw)
        return services.invoice_approve(actor=self.clerk, invoice=draft)


@pytest.fixture
def sales(books) -> Sales:
    a = books.a
    owner = books.users_a["owner"]
    customer = services.party_create(
        actor=owner,
        company=a,
        name="Dhaka Retail Ltd",
        bin="001745707-0402",
        etin="1234-5678-9012",
        address="12 Motijheel C/A, Dhaka",
        email="ap@dhakaretail.example",
        payment_terms_days=30,
    )
    withholding = services.party_create(
        actor=owner,
        company=a,
        name="Padma Bank PLC",
        bin="000123456-0101",
        is_withholding_entity=True,
        address="Gulshan 1, Dhaka",
        email="ap@padma.example",
    )
    vendor = services.party_create(actor=owner, company=a, name="Jute Supplies", kind="vendor")
    widget = services.item_create(
        actor=owner,
        company=a,
        code="W-1",
        name="Widget",
        unit="pcs",
        unit_price="10.05",
        vat_rate="VAT15",
        brand="Acme",
    )
    service = services.item_create(
        actor=owner,
        company=a,
        code="SVC",
        name="Consulting hour",
        unit="hour",
        unit_price="1500.00",
        vat_rate="VAT15",
    )
    cigarette = services.item_create(
        actor=owner,
        company=a,
        code="CIG",
        name="Cigarettes (10-stick pack)",
        unit="pack",
        unit_price="100.00",
        vat_rate="SPECIFIC",
        specific_vat_amount="2.50",
        sd_rate="65",
    )
    return Sales(
        company=a,
        owner=owner,
        clerk=books.users_a["clerk"],
        auditor=books.users_a["auditor"],
        customer=customer,
        withholding=withholding,
        vendor=vendor,
        widget=widget,
        service=service,
        cigarette=cigarette,
        tenants=books,
    )
