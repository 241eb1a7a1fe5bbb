"""Payroll fixtures: companies with books, employees and periods made through the services."""

from datetime import date
from decimal import Decimal

import pytest

from accounting import services as ledger
from accounting.models import CostCenter, Department
from payroll import services
from payroll.models import DeductionType, EarningType

D = Decimal


@pytest.fixture(autouse=True)
def _celery_eager(settings):
    """Tasks queued with .delay() run in the test's process. Errors are kept in the result
    (not propagated) so that Celery's eager mode carries out retries as a worker would."""
    from config.celery_app import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = False
    settings.PAYROLL_RETRY_BACKOFF_SECONDS = 0
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def books(tenants):
    """Company A (Bangladesh, fiscal year July-June) with its chart and fiscal years 2025-26 and
    2026-27; company B (United States, calendar year) with 2025 and 2026."""
    ledger.company_ledger_setup(company=tenants.a)
    ledger.fiscal_year_create(actor=None, company=tenants.a, containing=date(2025, 7, 1))
    ledger.fiscal_year_create(actor=None, company=tenants.a, containing=date(2026, 7, 1))
    ledger.company_ledger_setup(company=tenants.b)
    ledger.fiscal_year_create(actor=None, company=tenants.b, containing=date(2025, 1, 1))
    ledger.fiscal_year_create(actor=None, company=tenants.b, containing=date(2026, 1, 1))
    return tenants


@pytest.fixture
def dims(books):
    company = books.a
    return {
        "ops": Department.objects.create(company=company, code="OPS", name="Operations"),
        "sales": Department.objects.create(company=company, code="SAL", name="Sales"),
        "dhaka": CostCenter.objects.create(company=company, code="DHK", name="Dhaka"),
    }


def deduction_type(code: str) -> DeductionType:
    return DeductionType.objects.get(company=None, code=code)


def earning_type(code: str) -> EarningType:
    return EarningType.objects.get(company=None, code=code)


def employee(company, code, **fields):
    defaults = {
        "name": f"Employee {code}",
        "email": f"{code.lower()}@example.test",
        "pay_type": "salaried",
        "jurisdiction": "BD" if company.country == "BD" else "US",
        "start_date": date(2020, 1, 1),
    }
    if fields.get("pay_type", "salaried") == "salaried" and "annual_salary" not in fields:
        defaults["annual_salary"] = D("1200000.00")
    return services.employee_create(
        actor=None, company=company, code=code, **{**defaults, **fields}
    )


def period(company, start, end, *, period_type="monthly", activate=True, **kwargs):
    return services.payroll_period_create(
        actor=None,
        company=company,
        start_date=start,
        end_date=end,
        period_type=period_type,
        activate=activate,
        **kwargs,
    )


def monthly(company, year, month, **kwargs):
    import calendar

    last = calendar.monthrange(year, month)[1]
    return period(company, date(year, month, 1), date(year, month, last), **kwargs)


@pytest.fixture
def statutory(db):
    """The shipped reference data (migration 0002). Transactional tests flush the database
    after themselves, so they load it again (idempotent)."""
    from django.apps import apps

    from payroll.reference_data import reference_data_load

    reference_data_load(apps)
