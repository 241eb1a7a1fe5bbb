"""Seed a database for the PostgreSQL restart test: a company with its chart of accounts and
fiscal year, and an accountant who signs in with a password. Run in a Kontor process
pointed at that database: `manage.py shell -c "from tests.faults.seed_books import seed; seed()"`.
"""

from datetime import date

from django.contrib.auth import get_user_model

from accounting import services as ledger
from core.models import Company, Membership
from core.roles import Role

SLUG = "pg-faults"
USERNAME = "pg-accountant"
PASSWORD = "restart-Me-123"  # noqa: S105 (a throwaway test database)


def seed() -> None:
    company = Company.objects.create(name="Restart Traders", slug=SLUG, legal_name="Restart Ltd")
    ledger.company_ledger_setup(company=company)
    ledger.fiscal_year_create(actor=None, company=company, containing=date(2025, 8, 5))
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    Membership.objects.create(user=user, company=company, role=Role.ACCOUNTANT)
