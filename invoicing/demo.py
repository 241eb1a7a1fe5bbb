"""Demo invoicing for a Bangladeshi demo company (called by `manage.py seed_demo`).

Parties with valid BINs (two of them VAT-withholding entities), a catalogue across the VAT
rates (15 %, 10 %, 5 %, zero-rated export, exempt, SD on perfume, specific VAT with SD on
cigarettes), about two hundred and twenty invoices dated over the current fiscal year through
the real services (drafts, approved, partly paid, paid with VAT withheld at source, void,
overdue), credit and debit notes, and a monthly recurring invoice. Deterministic (seeded by the
company's slug); skipped when the company already has its demo parties. Companies outside
Bangladesh get none: Mushak forms are Bangladeshi.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from accounting import services as ledger
from core.models import Company
from invoicing import services
from invoicing.models import Party

JOB = "seed_demo"
INVOICES = 220

# name, BIN, e-TIN, withholding, address, payment terms (days)
PARTIES = [
    ("Aarong Retail Ltd", "000456712-0101", "", False, "Tejgaon I/A, Dhaka 1208", 30),
    ("Chittagong Garments Ltd", "001234567-0302", "2345-6789-0123", False,
     "CEPZ, Chattogram 4223", 45),
    ("Padma Bank PLC", "000765432-0101", "", True, "Gulshan Avenue, Dhaka 1212", 30),
    ("Roads and Highways Department", "000111222-0101", "", True, "Sarak Bhaban, Dhaka", 60),
    ("Sylhet Tea Traders", "002345678-0601", "", False, "Zindabazar, Sylhet 3100", 15),
    ("Khulna Shrimp Exports", "003456789-0401", "3456-7890-1234", False,
     "Rupsha, Khulna 9100", 30),
    ("Rajshahi Silk House", "004567890-0501", "", False, "Sapura, Rajshahi 6203", 30),
    ("Bashundhara City Outlet", "005678901-0101", "", False, "Panthapath, Dhaka 1215", 7),
]  # fmt: skip
VENDOR = ("Narayanganj Yarn Mills", "006789012-0201")

# code, name, unit, price, VAT rate code, specific VAT per unit, SD %
ITEMS = [
    ("TSHIRT", "Cotton knit T-shirt", "pcs", "350.00", "VAT15", None, "0"),
    ("DENIM", "Denim fabric", "metre", "420.00", "VAT15", None, "0"),
    ("YARN", "Combed cotton yarn", "kg", "310.00", "VAT5", None, "0"),
    ("TRANSPORT", "Covered van transport", "trip", "5000.00", "VAT10", None, "0"),
    ("DYEING", "Fabric dyeing service", "kg", "95.00", "VAT7.5", None, "0"),
    ("EXPORT-POLO", "Polo shirt for export", "pcs", "610.00", "ZERO", None, "0"),
    ("CATALOGUE", "Printed catalogue", "copy", "150.00", "EXEMPT", None, "0"),
    ("PERFUME", "Attar perfume 100 ml", "bottle", "1200.00", "VAT15", None, "30"),
    ("CIG", "Cigarettes, pack of 10", "pack", "140.00", "SPECIFIC", "2.50", "65"),
]


def seed(*, company: Company, actor, stdout=None) -> int:
    if company.country != "BD":
        return 0
    if Party.objects.filter(company=company, name=PARTIES[0][0]).exists():
        return 0
    ledger.company_ledger_setup(actor=actor, company=company)
    today = company.today()
    start = company.fiscal_year_start(today)
    ledger.fiscal_year_create(actor=actor, company=company, containing=today)
    services.vat_rates_seed(company=company)
    rng = random.Random(f"invoicing:{company.slug}")  # noqa: S311 - demo figures, not secrets
    added = 0

    customers = []
    for name, bin_, etin, withholding, address, terms in PARTIES:
        customers.append(
            services.party_create(
                actor=actor,
                company=company,
                name=name,
                bin=bin_,
                etin=etin,
                is_withholding_entity=withholding,
                address=address,
                payment_terms_days=terms,
            )
        )
    services.party_create(
        actor=actor, company=company, name=VENDOR[0], bin=VENDOR[1], kind="vendor"
    )
    added += len(customers) + 1
    items = [
        services.item_create(
            actor=actor,
            company=company,
            code=code,
            name=name,
            unit=unit,
            unit_price=price,
            vat_rate=rate,
            specific_vat_amount=specific,
            sd_rate=sd,
        )
        for code, name, unit, price, rate, specific, sd in ITEMS
    ]
    added += len(items)

    # Dates over the current fiscal year up to today (earlier years are closed by the ledger
    # demo). Oldest first, so each invoice's story (payments, notes) can follow it.
    span = max((today - start).days, 1)
    days = sorted(start + timedelta(days=rng.randrange(span + 1)) for _ in range(INVOICES))
    open_invoices = []
    for index, day in enumerate(days):
        customer = rng.choice(customers)
        lines = [
            {"item": item.pk, "quantity": str(rng.choice((1, 2, 3, 5, 10, 12, 20, 24, 50)))}
            for item in rng.sample(items, rng.choice((1, 1, 2, 2, 3, 4)))
        ]
        invoice = services.invoice_create_draft(
            actor=actor,
            system_job=JOB,
            company=company,
            customer=customer,
            lines=lines,
            issue_date=day,
            vehicle_type="Covered van" if index % 3 == 0 else "",
        )
        added += 1
        fate = rng.random()
        recent = (today - day).days < 10
        if recent and fate < 0.5:
            continue  # a draft still being prepared
        if fate < 0.03:
            services.invoice_void(
                actor=actor, system_job=JOB, invoice=invoice, reason="Drafted in error"
            )
            continue
        invoice = services.invoice_approve(actor=actor, system_job=JOB, invoice=invoice)
        if fate < 0.08:
            services.invoice_void(
                actor=actor,
                system_job=JOB,
                invoice=invoice,
                reason="Customer cancelled the order",
            )
            continue
        # Older invoices are mostly settled; recent ones mostly open or paid in part.
        age = (today - day).days
        paid_by = day + timedelta(days=rng.randrange(0, max(1, min(40, age))))
        full, part = (0.85, 0.92) if age > 45 else (0.35, 0.7)
        if fate < full:
            invoice = _pay(invoice, customer, paid_by, actor, rng, full=True)
        elif fate < part:
            invoice = _pay(invoice, customer, paid_by, actor, rng, full=False)
        open_invoices.append(invoice)

    # Notes on a few approved invoices: returns (credit) and extra supplies (debit).
    # Issued in date order: a note's number may not be dated before the previous one's.
    adjustable = [i for i in open_invoices if i.status == "approved"]
    planned = []
    for invoice in rng.sample(adjustable, min(10, len(adjustable))):
        day = min(today, invoice.issue_date + timedelta(days=rng.randrange(1, 15)))
        planned.append((day, invoice.pk, invoice, rng.random()))
    for day, _pk, invoice, coin in sorted(planned, key=lambda p: (p[0], p[1])):
        line = invoice.lines.order_by("serial").first()
        if coin < 0.5 and line.item_id:
            quantity = max(Decimal(1), (line.quantity / 4).quantize(Decimal(1)))
            services.credit_note_issue(
                actor=actor,
                system_job=JOB,
                invoice=invoice,
                reason=f"{quantity:f} {line.unit} returned, damaged in transit",
                lines=[{"item": line.item_id, "quantity": str(quantity)}],
                issue_date=day,
            )
        else:
            services.debit_note_issue(
                actor=actor,
                system_job=JOB,
                invoice=invoice,
                reason="Price revised upward as agreed (fuel surcharge)",
                lines=[
                    {
                        "description": "Fuel surcharge",
                        "unit": "lot",
                        "quantity": "1",
                        "unit_price": "750.00",
                        "vat_rate": "VAT15",
                    }
                ],
                issue_date=day,
            )
        added += 1

    # Overdue: open invoices past their due date, as the daily beat job would mark them.
    for invoice in open_invoices:
        invoice.refresh_from_db(fields=["status", "due_date", "amount_due", "version"])
        if invoice.amount_due > 0 and invoice.due_date and invoice.due_date < today:
            services.invoice_mark_overdue(actor=None, invoice=invoice, today=today)

    services.recurring_invoice_create(
        actor=actor,
        company=company,
        name="Monthly transport contract",
        customer=customers[0],
        lines=[{"item": items[3].pk, "quantity": "4"}],
        frequency="monthly",
        next_date=_first_of_next_month(today),
        due_days=30,
        notes="Four covered-van trips a month, Tejgaon to Ashulia.",
    )
    added += 1
    return added


def _pay(invoice, customer, day, actor, rng, *, full: bool):
    """Paid in full (a withholding buyer keeps the VDS back and sends its certificate), or in
    part (30 to 60 %)."""
    due = invoice.amount_due
    vds = invoice.vds_amount if customer.is_withholding_entity else Decimal("0.00")
    if full:
        amount = due - vds
    else:
        share = Decimal(rng.choice((30, 40, 50, 60))) / 100
        amount = (due * share).quantize(Decimal("0.01"))
        vds = Decimal("0.00")
    return services.invoice_payment_record(
        actor=actor,
        system_job=JOB,
        invoice=invoice,
        amount=str(amount),
        vds_withheld=str(vds),
        date=day,
        method="bank transfer" if full else "cheque",
        reference=f"RCPT-{invoice.pk:05d}",
    )


def _first_of_next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)
