from datetime import date

import pytest

from accounting import services
from accounting.models import Account


@pytest.fixture
def books(tenants):
    """Company A (fiscal year July to June) with the standard chart and fiscal years 2025-26
    and 2026-27; company B (calendar year) with the chart and 2026."""
    services.company_ledger_setup(company=tenants.a)
    services.fiscal_year_create(actor=None, company=tenants.a, containing=date(2025, 7, 1))
    services.fiscal_year_create(actor=None, company=tenants.a, containing=date(2026, 7, 1))
    services.company_ledger_setup(company=tenants.b)
    services.fiscal_year_create(actor=None, company=tenants.b, containing=date(2026, 1, 1))
    return tenants


def account(company, code) -> Account:
    return Account.objects.get(company=company, code=code)


def post(company, day, *pairs, actor=None, **kwargs):
    """post(company, "2025-08-01", ("1131", "1000.00", ""), ("4100", "", "1000.00"))"""
    lines = [
        {"account_code": code, "debit": debit, "credit": credit, **(extra[0] if extra else {})}
        for code, debit, credit, *extra in pairs
    ]
    return services.journal_entry_post(
        actor=actor, system_job="test", company=company, date=day, lines=lines, **kwargs
    )
