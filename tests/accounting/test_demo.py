import io

import pytest
from django.core.management import call_command

from accounting import selectors
from accounting.models import FiscalYear, JournalEntry
from core.models import Company

pytestmark = pytest.mark.django_db


def test_seed_demo_books_a_year_that_balances_and_runs_once():
    call_command("seed_demo", stdout=io.StringIO())
    for company in Company.objects.filter(slug__in=["dhaka-textiles", "northwind-trading"]):
        entries = JournalEntry.objects.filter(company=company, source_type="demo")
        months = {(d.year, d.month) for d in entries.values_list("date", flat=True)}
        assert len(months) == 12
        assert entries.count() > 100
        today = company.today()
        assert selectors.trial_balance(company=company, date_to=today)["balanced"]
        assert selectors.balance_sheet(company=company, as_of=today)["balanced"]
        assert selectors.ledger_verify(company=company)[1] is None
        assert (
            FiscalYear.objects.filter(company=company, end_date__lt=today, status="open").count()
            == 0
        )
    count = JournalEntry.objects.count()
    call_command("seed_demo", stdout=io.StringIO())
    assert JournalEntry.objects.count() == count
