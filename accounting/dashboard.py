"""Accounting's panels on the admin dashboard (format: core/dashboard.py): the reports, where
each company's periods stand, and the latest journal entries."""

from django.urls import reverse

from accounting.admin_reports import REPORTS, money
from accounting.models import AccountingPeriod, JournalEntry, PeriodStatus
from core.selectors import companies_for

REPORT_NOTES = {
    "trial_balance": "Balances and movements per account",
    "general_ledger": "One account's postings, running balance",
    "profit_and_loss": "Income less expenses",
    "balance_sheet": "Assets, liabilities and equity at a date",
}


def panels(request) -> list[dict]:
    companies = list(companies_for(request.user, "accounting", write=False).order_by("name")[:20])
    if not companies:
        return []
    several = len(companies) > 1
    periods_url = reverse("admin:accounting_accountingperiod_changelist")
    return [
        {
            "title": "Ledger reports",
            "columns": ["Report", ""],
            "rows": [[(report.title, report.url), REPORT_NOTES[report.kind]] for report in REPORTS],
            "empty": "",
            "link": reverse("admin:app_list", args=["accounting"]),
            "nowrap_columns": 1,
        },
        {
            "title": "Accounting periods",
            "columns": ["Company", "This month", "Earlier months not closed"],
            "rows": _period_rows(companies, periods_url),
            "empty": "No fiscal year is open yet.",
            "link": periods_url,
            "nowrap_columns": 2,
        },
        {
            "title": "Latest journal entries",
            "columns": ["Reference", "Date", *(["Company"] if several else []), "Memo", "Total"],
            "rows": _entry_rows(companies, several),
            "empty": "Nothing posted yet.",
            "link": reverse("admin:accounting_journalentry_changelist"),
            "nowrap_columns": 2,
            "wide": True,
        },
    ]


def _period_rows(companies, periods_url) -> list[list]:
    """Per company: the status of the month containing today, and how many earlier months are
    still open or locked (a nudge to close them). One query for all companies."""
    not_closed = {}
    current = {}
    todays = {company.pk: company.today() for company in companies}
    earliest = min(todays.values()).replace(day=1)
    for period in (
        AccountingPeriod.objects.filter(company__in=companies)
        .exclude(status=PeriodStatus.CLOSED, end_date__lt=earliest)
        .select_related("fiscal_year")
        .order_by("start_date")
    ):
        today = todays[period.company_id]
        if period.start_date <= today <= period.end_date:
            current[period.company_id] = period
        elif period.end_date < today and period.status != PeriodStatus.CLOSED:
            not_closed[period.company_id] = not_closed.get(period.company_id, 0) + 1
    rows = []
    for company in companies:
        period = current.get(company.pk)
        this_month = f"{period.label}: {period.status}" if period else "no open fiscal year"
        earlier = not_closed.get(company.pk, 0)
        link = f"{periods_url}?company={company.pk}"
        rows.append([company.name, this_month, (str(earlier), link) if earlier else "0"])
    return rows


def _entry_rows(companies, several: bool) -> list[list]:
    entries = (
        JournalEntry.objects.filter(company__in=companies)
        .select_related("fiscal_year", "company")
        .order_by("-posted_at", "-pk")[:8]
    )
    return [
        [
            (entry.reference, reverse("admin:accounting_journalentry_change", args=[entry.pk])),
            entry.date.isoformat(),
            *([entry.company.name] if several else []),
            entry.memo,
            money(entry.total),
        ]
        for entry in entries
    ]
