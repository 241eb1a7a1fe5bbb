"""Invoicing's panels on the admin dashboard (format: core/dashboard.py): receivables per
company (open and overdue) and the latest invoices."""

from django.db.models import Count, Q, Sum
from django.urls import reverse

from core.selectors import companies_for
from invoicing.admin_reports import money
from invoicing.models import Invoice, InvoiceKind, InvoiceStatus
from invoicing.selectors import OPEN_STATUSES


def panels(request) -> list[dict]:
    companies = list(companies_for(request.user, "invoicing", write=False).order_by("name")[:20])
    if not companies:
        return []
    several = len(companies) > 1
    invoices_url = reverse("admin:invoicing_invoice_changelist")
    return [
        {
            "title": "Receivables",
            "columns": ["Company", "Open invoices", "Due", "Overdue", "Overdue amount"],
            "rows": _receivable_rows(companies, invoices_url),
            "empty": "",
            "link": invoices_url,
            "nowrap_columns": 1,
        },
        {
            "title": "Recent invoices",
            "columns": [
                "Number",
                "Date",
                *(["Company"] if several else []),
                "Customer",
                "Total",
                "Status",
            ],
            "rows": _recent_rows(companies, several),
            "empty": "No invoices yet.",
            "link": invoices_url,
            "nowrap_columns": 2,
            "wide": True,
        },
    ]


def _receivable_rows(companies, invoices_url) -> list[list]:
    """One grouped query over the (company, status) index for all companies."""
    figures = {
        row["company_id"]: row
        for row in Invoice.objects.filter(
            company__in=companies, kind=InvoiceKind.INVOICE, status__in=OPEN_STATUSES
        )
        .values("company_id")
        .annotate(
            open=Count("id"),
            due=Sum("amount_due"),
            overdue=Count("id", filter=Q(status=InvoiceStatus.OVERDUE)),
            overdue_due=Sum("amount_due", filter=Q(status=InvoiceStatus.OVERDUE)),
        )
    }
    rows = []
    for company in companies:
        row = figures.get(company.pk, {})
        base = f"{invoices_url}?company={company.pk}&" if len(companies) > 1 else f"{invoices_url}?"
        open_count, overdue = row.get("open", 0), row.get("overdue", 0)
        rows.append(
            [
                company.name,
                (str(open_count), f"{base}kind__exact=invoice") if open_count else "0",
                f"{company.base_currency} {money(row.get('due') or 0)}",
                (str(overdue), f"{base}status__exact=overdue") if overdue else "0",
                money(row.get("overdue_due") or 0),
            ]
        )
    return rows


def _recent_rows(companies, several: bool) -> list[list]:
    invoices = (
        Invoice.objects.filter(company__in=companies)
        .select_related("customer", "company")
        .order_by("-issue_date", "-id")[:8]
    )
    return [
        [
            (str(invoice), reverse("admin:invoicing_invoice_change", args=[invoice.pk])),
            invoice.issue_date.isoformat(),
            *([invoice.company.name] if several else []),
            invoice.customer.name if invoice.customer else "",
            money(invoice.total_amount),
            invoice.get_status_display(),
        ]
        for invoice in invoices
    ]
