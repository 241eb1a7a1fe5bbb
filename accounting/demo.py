"""A year of realistic books for the demo companies (called by `manage.py seed_demo`).

Twelve months up to today: capital paid in, cash and credit sales with VAT, customer receipts,
purchases on account and supplier payments, rent, utilities, salaries with tax withheld, bank
charges; cost centres, projects and departments on the lines. Fiscal years that
ended before today are closed to retained earnings by `finish`, which seed_demo runs after every
app's demo (banking, invoicing and payroll post into the last twelve months too, and nothing
posts into a closed year). Deterministic (seeded by the company's slug) and skipped when the
company already has demo entries.
"""

import random
from datetime import date, timedelta
from decimal import Decimal

from accounting import services
from accounting.models import CostCenter, Department, FiscalYear, JournalEntry, Project
from core.models import Company

DEMO_SOURCE = "demo"
CENT = Decimal("0.01")

# Monthly scale per currency: a Dhaka garment exporter books lakhs of taka, a US trader dollars.
SCALE = {"BDT": Decimal("1000"), "USD": Decimal("10")}


def _month_starts(today: date, months: int) -> list[date]:
    first = today.replace(day=1)
    starts = []
    for back in range(months - 1, -1, -1):
        month0 = first.year * 12 + first.month - 1 - back
        starts.append(date(month0 // 12, month0 % 12 + 1, 1))
    return starts


def _amount(rng: random.Random, low: int, high: int, scale: Decimal) -> Decimal:
    return (Decimal(rng.randint(low * 100, high * 100)) / 100 * scale).quantize(CENT)


def seed(*, company: Company, actor, stdout=None) -> int:
    if JournalEntry.objects.filter(company=company, source_type=DEMO_SOURCE).exists():
        return 0
    services.company_ledger_setup(actor=actor, company=company)
    rng = random.Random(company.slug)  # noqa: S311 - repeatable demo figures, not secrets
    scale = SCALE.get(company.base_currency, Decimal("10"))
    today = company.today()
    months = _month_starts(today, 12)
    for start in months:
        services.fiscal_year_create(actor=actor, company=company, containing=start)

    def dims(model, *codes_names):
        return [
            model.objects.filter(company=company, code=code).first()
            or services.dimension_create(
                actor=actor, company=company, model=model, code=code, name=name
            )
            for code, name in codes_names
        ]

    centres = dims(CostCenter, ("HQ", "Head office"), ("PLANT", "Plant"), ("SHOP", "Sales outlet"))
    projects = dims(Project, ("EXPORT", "Export orders"), ("LOCAL", "Local market"))
    departments = dims(
        Department, ("ADMIN", "Administration"), ("SALES", "Sales"), ("OPS", "Operations")
    )

    entries, n = [], 0

    def add(day: date, memo: str, *lines):
        nonlocal n
        if day > today:
            return
        n += 1
        entries.append(
            {
                "date": day,
                "memo": memo,
                "source_type": DEMO_SOURCE,
                "source_id": str(n),
                "idempotency_key": f"demo:{company.slug}:{n}",
                "lines": [line for line in lines if line],
            }
        )

    def dr(role_or_code, amount, **dim):
        return _line(role_or_code, amount, "debit", dim)

    def cr(role_or_code, amount, **dim):
        return _line(role_or_code, amount, "credit", dim)

    capital = 500 * scale * 100
    add(months[0], "Share capital paid in", dr("bank", capital), cr("3100", capital))
    for start in months:
        for week in range(4):
            day = start + timedelta(days=2 + week * 7)
            centre, project = rng.choice(centres[1:]), rng.choice(projects)
            net = _amount(rng, 800, 2400, scale)
            vat = (net * Decimal("0.15")).quantize(CENT)
            if week % 2:
                add(day, f"Credit sale, invoice {start:%y%m}-{week}",
                    dr("accounts_receivable", net + vat, cost_center=centre, project=project),
                    cr("sales_revenue", net, cost_center=centre, project=project,
                       department=departments[1]),
                    cr("vat_payable", vat))  # fmt: skip
            else:
                add(day, f"Cash sale, outlet {start:%b}",
                    dr("bank", net + vat, cost_center=centre),
                    cr("sales_revenue", net, cost_center=centre, project=project,
                       department=departments[1]),
                    cr("vat_payable", vat))  # fmt: skip
        receipt = _amount(rng, 1200, 2600, scale)
        add(start + timedelta(days=20), "Customer receipts", dr("bank", receipt),
            cr("accounts_receivable", receipt))  # fmt: skip
        purchase = _amount(rng, 900, 1500, scale)
        add(start + timedelta(days=6), "Raw material purchase on account",
            dr("5100", purchase, cost_center=centres[1], department=departments[2]),
            cr("accounts_payable", purchase))  # fmt: skip
        add(start + timedelta(days=24), "Supplier payment",
            dr("accounts_payable", purchase), cr("bank", purchase))  # fmt: skip
        rent = (120 * scale).quantize(CENT)
        add(start, "Office and plant rent", dr("6200", rent, cost_center=centres[0],
            department=departments[0]), cr("bank", rent))  # fmt: skip
        power = _amount(rng, 25, 60, scale)
        add(start + timedelta(days=12), "Electricity and gas",
            dr("6300", power, cost_center=centres[1], department=departments[2]),
            cr("bank", power))  # fmt: skip
        gross = _amount(rng, 650, 720, scale)
        tax = (gross * Decimal("0.05")).quantize(CENT)
        month_end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        add(month_end, f"Salaries {start:%B %Y}",
            dr("salary_expense", gross, cost_center=centres[0], department=departments[0]),
            cr("payroll_tax_payable", tax), cr("salaries_payable", gross - tax))  # fmt: skip
        add(month_end, f"Salary payment {start:%B %Y}", dr("salaries_payable", gross - tax),
            cr("bank", gross - tax))  # fmt: skip
        fee = _amount(rng, 1, 3, scale)
        add(month_end, "Bank charges", dr("bank_fees", fee), cr("bank", fee))

    services.journal_entries_post_bulk(
        actor=actor, system_job="seed_demo", company=company, entries=entries
    )
    return len(entries)


def finish(*, company: Company, actor, stdout=None) -> int:
    """The demo's last step, after every app's seed: close the fiscal years that ended before
    today (idempotent: a closed year is not closed again). Returns the years closed."""
    return _close_past_years(company, actor)


def _line(role_or_code: str, amount: Decimal, side: str, dims: dict) -> dict:
    key = "account_code" if role_or_code[0].isdigit() else "account_role"
    line = {key: role_or_code, side: amount}
    line.update({name: obj.pk for name, obj in dims.items()})
    return line


def _close_past_years(company: Company, actor) -> int:
    """Close the years that ended before today, so the balance sheet shows retained earnings."""
    closed = 0
    for year in FiscalYear.objects.filter(
        company=company, status="open", end_date__lt=company.today()
    ).order_by("start_date"):
        services.fiscal_year_close(actor=actor, system_job="seed_demo", fiscal_year=year)
        closed += 1
    return closed
