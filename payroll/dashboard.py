"""Payroll's panels on the admin dashboard (format: core/dashboard.py): the periods coming up
with their next automatic run, and the latest pay runs with their progress and totals."""

from __future__ import annotations

from django.urls import reverse

from core.selectors import companies_for
from payroll.models import PayrollPeriod, PayrollRun, PeriodStatus

UPCOMING = (PeriodStatus.DRAFT, PeriodStatus.ACTIVE, PeriodStatus.PROCESSING, PeriodStatus.FAILED)


def _money(value) -> str:
    return f"{value:,.2f}"


def _next_run(period) -> str:
    if not period.automation_enabled:
        return "manual"
    value = period.automation_next_run()
    if value is None:
        return "-"
    if hasattr(value, "hour"):
        return f"{value.astimezone(period.company.tz):%Y-%m-%d %H:%M}"
    return value.isoformat()


def panels(request) -> list[dict]:
    companies = list(companies_for(request.user, "payroll", write=False).order_by("name")[:20])
    if not companies:
        return []
    several = len(companies) > 1
    periods = (
        PayrollPeriod.objects.filter(company__in=companies, status__in=UPCOMING)
        .select_related("company")
        .order_by("end_date", "pk")[:8]
    )
    period_rows = [
        [
            (str(period), reverse("admin:payroll_payrollperiod_change", args=[period.pk])),
            *([period.company.name] if several else []),
            period.pay_date.isoformat(),
            period.get_status_display(),
            _next_run(period),
        ]
        for period in periods
    ]
    runs = (
        PayrollRun.objects.filter(company__in=companies)
        .select_related("period", "company")
        .order_by("-started_at", "-pk")[:8]
    )
    run_rows = [
        [
            (str(run.period), reverse("admin:payroll_payrollrun_change", args=[run.pk])),
            *([run.company.name] if several else []),
            run.get_status_display(),
            f"{run.done} / {run.total} ({run.progress_percent}%)",
            _money(run.net_total),
        ]
        for run in runs
    ]
    return [
        {
            "title": "Upcoming payroll periods",
            "columns": [
                "Period",
                *(["Company"] if several else []),
                "Pay date",
                "Status",
                "Next run",
            ],
            "rows": period_rows,
            "empty": "No payroll period is open: add one or generate them from a pay schedule.",
            "link": reverse("admin:payroll_payrollperiod_changelist"),
            "nowrap_columns": 1,
        },
        {
            "title": "Last pay runs",
            "columns": ["Period", *(["Company"] if several else []), "Status", "Progress", "Net"],
            "rows": run_rows,
            "empty": "No pay run yet.",
            "link": reverse("admin:payroll_payrollrun_changelist"),
            "nowrap_columns": 1,
        },
    ]
