"""`seed_demo`'s invoicing part: parties, items and a few hundred invoices in every state, all
made through the real services (so the read model, events and ledger agree), once only."""

from decimal import Decimal

import pytest
from django.db.models import F, Sum

from accounting import demo as accounting_demo
from accounting.models import JournalLine
from accounting.services import account_for_role
from core import services as core_services
from invoicing import demo, selectors
from invoicing.models import Invoice, InvoiceEvent, Item, Party, RecurringInvoice
from invoicing.projection import projections_match
from tests.factories import UserFactory


@pytest.fixture
def dhaka(db):
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    company = core_services.company_create(
        actor=admin,
        name="Dhaka Textiles",
        slug="dhaka-textiles",
        country="BD",
        base_currency="BDT",
        time_zone="Asia/Dhaka",
        fiscal_year_start_month=7,
        bin="0001234567891",
    )
    accounting_demo.seed(company=company, actor=admin)  # the ledger demo runs first
    return company, admin


def test_demo_invoices_cover_every_state_through_the_services(dhaka):
    company, admin = dhaka
    added = demo.seed(company=company, actor=admin)
    assert added > 200
    invoices = Invoice.objects.filter(company=company)
    states = set(invoices.values_list("kind", "status"))
    for state in ("draft", "approved", "partially_paid", "paid", "void", "overdue"):
        assert ("invoice", state) in states, state
    assert ("credit_note", "approved") in states and ("debit_note", "approved") in states
    assert invoices.filter(kind="invoice").count() >= 200
    # every row is the projection of its events: a rebuild changes nothing
    assert projections_match(company=company)
    assert InvoiceEvent.objects.filter(company=company).count() >= invoices.count()
    # parties with valid BINs, two withholding entities; items across the VAT rates
    parties = Party.objects.filter(company=company)
    assert all(len(p.bin) == 13 and p.bin.isdigit() for p in parties)
    assert parties.filter(is_withholding_entity=True).count() == 2
    rates = set(Item.objects.filter(company=company).values_list("vat_rate__code", flat=True))
    assert rates >= {"VAT15", "VAT10", "VAT7.5", "VAT5", "ZERO", "EXEMPT", "SPECIFIC"}
    assert Item.objects.filter(company=company, sd_rate__gt=0).count() == 2
    assert RecurringInvoice.objects.filter(company=company, is_active=True).count() == 1
    # a withholding buyer's settled invoice shows the VAT it kept back
    assert invoices.filter(customer__is_withholding_entity=True, status="paid").exists()
    assert invoices.filter(payments__vds_withheld__gt=0).exists()
    # numbers are gapless 1..n per series and fiscal year
    numbered = invoices.filter(kind="invoice").exclude(number="")
    sequences = sorted(numbered.values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))


def test_the_ledger_holds_what_the_invoices_say_is_due(dhaka):
    company, admin = dhaka
    demo.seed(company=company, actor=admin)
    receivable = account_for_role(company=company, role="accounts_receivable")
    posted = JournalLine.objects.filter(
        entry__company=company, entry__source_type="invoice", account=receivable
    ).aggregate(net=Sum(F("debit") - F("credit")))["net"]
    assert posted == selectors.receivables_total(company)
    assert posted > Decimal("0")


def test_seeding_twice_adds_nothing(dhaka):
    company, admin = dhaka
    demo.seed(company=company, actor=admin)
    counts = (Invoice.objects.count(), InvoiceEvent.objects.count(), Party.objects.count())
    assert demo.seed(company=company, actor=admin) == 0
    assert (Invoice.objects.count(), InvoiceEvent.objects.count(), Party.objects.count()) == counts


def test_a_company_outside_bangladesh_gets_no_mushak_demo(db):
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    company = core_services.company_create(
        actor=admin, name="Northwind", slug="northwind", country="US", base_currency="USD"
    )
    assert demo.seed(company=company, actor=admin) == 0
    assert not Invoice.objects.filter(company=company).exists()
