import logging
from datetime import timedelta

from celery import shared_task

log = logging.getLogger(__name__)

OPEN_FISCAL_YEARS_TASK = "accounting.tasks.open_next_fiscal_years"
LEAD_DAYS = 60


@shared_task(name=OPEN_FISCAL_YEARS_TASK, ignore_result=True)
def open_next_fiscal_years() -> int:
    """Daily: every active company gets its current fiscal year, and the next one once the
    current year ends within LEAD_DAYS, so payroll and invoices dated after the turn of the
    year find their periods. Safe to run twice: an existing year is left as it is."""
    from accounting.services import fiscal_year_create
    from core.models import Company

    opened = 0
    for company in Company.objects.filter(is_active=True).order_by("pk"):
        today = company.today()
        for day in (today, today + timedelta(days=LEAD_DAYS)):
            year = fiscal_year_create(actor=None, company=company, containing=day)
            opened += int(year.start_date > today)
    log.info("fiscal years checked", extra={"upcoming_years": opened})
    return opened
