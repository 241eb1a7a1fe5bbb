"""The load benchmark's data: what the simulated clients read and write, made with the other
benchmarks' builders (COPY where they use it) and the services.

- A sales company (BDT, fiscal years 2025-26 and 2026-27): 40 customers, 8 items, `invoices`
  invoices over 2025-26 with their event streams, lines and payments (clones of invoices made
  by the services: drafts, approved, paid, partly paid, voided), and `entries` posted journal
  entries of 2 to 4 lines through the ledger's bulk service.
- A banking company: the banking benchmark's history, `bank_rows` posted bank transactions
  over ten accounts (2022 to mid 2026) with reconciled months and an imported statement.
- PAYROLL_COMPANIES small payroll companies (the payroll benchmark's employees, deductions,
  time entries and five issued months): PAYROLL_EMPLOYEES employees each and
  PAYROLL_PERIODS active monthly periods from December 2025, paid in order by the clients.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from bench import _banking_data, _invoicing_data, _payroll_data
from bench._bulk import analyze

SEED = 8
ENTRY_BATCH = 500
PAYROLL_COMPANIES = 8
PAYROLL_EMPLOYEES = 8
PAYROLL_PERIODS = 19  # December 2025 to June 2027: two fiscal years
FIRST_PAYROLL_MONTH = (2025, 12)


@dataclass
class PayrollCompany:
    slug: str
    user_id: int
    periods: list[int]  # active periods, in the order they must be paid


@dataclass
class Dataset:
    sales_slug: str
    sales_user_id: int
    customers: list[int]
    items: list[int]
    accounts: list[int]  # postable accounts of the sales company (journal entries)
    invoice_ids: list[int]
    invoice_numbers: list[str]
    bank_slug: str
    bank_user_id: int
    bank_account_ids: list[int]
    payroll: list[PayrollCompany] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _months(start: tuple[int, int], count: int):
    year, month = start
    for _ in range(count):
        first = date(year, month, 1)
        following = date(year + month // 12, month % 12 + 1, 1)
        yield first, following - timedelta(days=1)
        year, month = following.year, following.month


def _fiscal_years(company, *days: date) -> None:
    """The fiscal years containing `days` (and today: drafts are dated today), where missing."""
    from accounting.models import FiscalYear
    from accounting.services import fiscal_year_create

    for day in (*days, company.today()):
        years = FiscalYear.objects.filter(company=company, start_date__lte=day, end_date__gte=day)
        if not years.exists():
            fiscal_year_create(actor=None, company=company, containing=day)


def _entries(rng: random.Random, accounts: list[int], count: int) -> list[dict]:
    first = _invoicing_data.FIRST_DAY
    entries = []
    for n in range(count):
        size = rng.choice((2, 2, 3, 4))
        amounts = [Decimal(rng.randint(1_000, 500_000)) / 100 for _ in range(size - 1)]
        chosen = rng.sample(accounts, size)
        lines = [{"account": a, "debit": str(v)} for a, v in zip(chosen[:-1], amounts, strict=True)]
        lines.append({"account": chosen[-1], "credit": str(sum(amounts))})
        entries.append(
            {
                "date": first + timedelta(days=rng.randrange(_invoicing_data.DAYS)),
                "lines": lines,
                "memo": f"Seeded entry {n + 1}",
                "source_type": "bench",
                "idempotency_key": f"load-seed-{n}",
            }
        )
    return entries


def _sales(invoices: int, entries: int, rng: random.Random) -> dict:
    from accounting.models import Account
    from accounting.services import journal_entries_post_bulk
    from invoicing.models import Invoice

    sales = _invoicing_data.company_make("load-sales", "Load Sales Ltd", "load-sales")
    _fiscal_years(sales.company, date(2026, 12, 1))  # the load's journal entries
    templates = _invoicing_data.templates(sales, rng)
    _invoicing_data.clone_streams(
        sales, templates, streams=max(invoices - len(templates), 1), first_sequence=100
    )
    postable = Account.objects.filter(company=sales.company, is_postable=True, is_active=True)
    # Retained earnings is left to year-end closing, as in the ledger benchmark.
    accounts = sorted(postable.exclude(code="3200").values_list("pk", flat=True))
    specs = _entries(rng, accounts, entries)
    for start in range(0, len(specs), ENTRY_BATCH):
        journal_entries_post_bulk(
            actor=None,
            system_job="bench",
            company=sales.company,
            entries=specs[start : start + ENTRY_BATCH],
        )
    rows = Invoice.objects.filter(company=sales.company)
    numbered = rows.exclude(number="").order_by("?").values_list("number", flat=True)[:50]
    return {
        "sales_slug": sales.company.slug,
        "sales_user_id": sales.owner.pk,
        "customers": sales.customers,
        "items": sales.items,
        "accounts": accounts,
        "invoice_ids": list(rows.order_by("?").values_list("pk", flat=True)[:500]),
        "invoice_numbers": list(numbered),
    }


def _bank(rows: int) -> dict:
    setup = _banking_data.company_make("load-bank")
    _banking_data.history_load(setup, rows, SEED)
    return {
        "bank_slug": setup.company.slug,
        "bank_user_id": setup.owner.pk,
        "bank_account_ids": [a.bank_account.pk for a in setup.accounts],
    }


def _payroll_company(n: int, rng: random.Random) -> PayrollCompany:
    from django.db import transaction

    from payroll.services import payroll_period_create

    slug = f"load-payroll-{n}"
    # A BDT company (July to June) with its ledger and the current fiscal year; the periods
    # start in December 2025.
    setup = _banking_data.company_make(slug)
    company, owner = setup.company, setup.owner
    _fiscal_years(company, date(2025, 12, 1), date(2026, 12, 1))
    departments, cost_centers = _payroll_data._dimensions(company)
    _payroll_data._overtime_rule(company)
    with transaction.atomic():
        employees = _payroll_data._employees(
            company, rng, PAYROLL_EMPLOYEES, departments, cost_centers
        )
        _payroll_data._time_entries(company, rng, employees)
        _payroll_data._deductions(company, employees)
        _payroll_data._prior_months(company)
    periods = [
        payroll_period_create(
            actor=None,
            company=company,
            start_date=start,
            end_date=end,
            pay_date=end,
            activate=True,
            name=start.strftime("%B %Y"),
        ).pk
        for start, end in _months(FIRST_PAYROLL_MONTH, PAYROLL_PERIODS)
    ]
    return PayrollCompany(slug=slug, user_id=owner.pk, periods=periods)


def build(*, invoices: int, entries: int, bank_rows: int) -> Dataset:
    from django.apps import apps

    from payroll.reference_data import reference_data_load

    rng = random.Random(SEED)
    reference_data_load(apps)  # the shipped tax tables, in case a flushed database lost them
    dataset = Dataset(**_sales(invoices, entries, rng), **_bank(bank_rows))
    dataset.payroll = [_payroll_company(n, rng) for n in range(1, PAYROLL_COMPANIES + 1)]
    analyze(
        "invoicing_invoice",
        "invoicing_invoiceline",
        "accounting_journalentry",
        "accounting_journalline",
        "payroll_employee",
        "payroll_payslip",
    )
    dataset.counts = _counts()
    return dataset


def _counts() -> dict[str, int]:
    from accounting.models import JournalEntry, JournalLine
    from banking.models import BankTransaction
    from invoicing.models import Invoice
    from payroll.models import Employee

    return {
        "seed_invoices": Invoice.objects.count(),
        "seed_journal_entries": JournalEntry.objects.count(),
        "seed_journal_lines": JournalLine.objects.count(),
        "seed_bank_transactions": BankTransaction.objects.count(),
        "seed_employees": Employee.objects.count(),
    }
