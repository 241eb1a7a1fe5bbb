"""Payroll reads that span tables: due periods, run progress, year-to-date figures, reference
rows visible to a company. The admin, the API, documents and commands use these."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from payroll.models import (
    DeductionType,
    EarningType,
    FlatTax,
    OvertimeRule,
    PayrollPeriod,
    PayrollRun,
    Payslip,
    PayslipStatus,
    PeriodStatus,
    TaxTable,
)

CENT = Decimal("0.01")


def _cents(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT)


def periods_due(*, now: dt.datetime | None = None, company=None) -> list[PayrollPeriod]:
    """Active periods (and failed ones, ready to run again) with automation on whose rule makes
    them due now, each in its company's time zone; oldest first."""
    now = now or timezone.now()
    candidates = PayrollPeriod.objects.select_related("company").filter(
        status__in=[PeriodStatus.ACTIVE, PeriodStatus.FAILED],
        automation_enabled=True,
        company__is_active=True,
    )
    if company is not None:
        candidates = candidates.filter(company=company)
    return [p for p in candidates.order_by("start_date", "pk") if p.is_due_for_automation(now=now)]


def visible_to(model, company) -> QuerySet:
    """Shared (company-less) rows and the company's own, for the reference models."""
    return model.objects.filter(Q(company__isnull=True) | Q(company=company))


def tax_tables_for(company) -> QuerySet:
    return visible_to(TaxTable, company).prefetch_related("brackets")


def flat_taxes_for(company) -> QuerySet:
    return visible_to(FlatTax, company)


def overtime_rules_for(company) -> QuerySet:
    return visible_to(OvertimeRule, company)


def deduction_types_for(company) -> QuerySet:
    return visible_to(DeductionType, company)


def earning_types_for(company) -> QuerySet:
    return visible_to(EarningType, company)


def run_progress(run: PayrollRun) -> dict:
    """Progress as the admin bar and the API show it."""
    return {
        "status": run.status,
        "done": run.done,
        "total": run.total,
        "percent": run.progress_percent,
        "chunks_done": run.chunks_done,
        "chunks_total": run.chunks_total,
    }


def latest_run(period: PayrollPeriod) -> PayrollRun | None:
    return period.runs.order_by("-attempt").first()


def payslip_year_to_date(payslip: Payslip) -> dict:
    """Tax-year-to-date totals up to and including this payslip, from the issued payslips (the
    payslip's own ytd_* fields hold the same figures as they were when it was issued)."""
    start = payslip.tax_year_start
    rows = Payslip.objects.filter(
        employee_id=payslip.employee_id,
        tax_year_start=start,
        period_end__lte=payslip.period_end,
    ).filter(Q(status=PayslipStatus.ISSUED) | Q(pk=payslip.pk))
    sums = rows.aggregate(
        gross=Sum("gross"),
        taxable=Sum("taxable"),
        income_tax=Sum("income_tax"),
        taxes=Sum("taxes"),
        deductions=Sum("deductions"),
        employer_contributions=Sum("employer_contributions"),
        net=Sum("net"),
    )
    return {"tax_year_start": start, **{k: _cents(v) for k, v in sums.items()}}


def period_totals(period: PayrollPeriod) -> dict:
    """Totals of the period's live payslips."""
    sums = (
        Payslip.objects.filter(period=period)
        .exclude(status=PayslipStatus.VOID)
        .aggregate(
            gross=Sum("gross"),
            taxes=Sum("taxes"),
            deductions=Sum("deductions"),
            employer=Sum("employer_contributions"),
            net=Sum("net"),
        )
    )
    return {k: _cents(v) for k, v in sums.items()}
