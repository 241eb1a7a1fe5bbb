"""Reads that span invoicing tables (for the API, admin, reports and dashboard)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from core.models import Company
from invoicing.models import Invoice, InvoiceEvent, InvoiceKind, InvoiceStatus, Party

OPEN_STATUSES = (InvoiceStatus.APPROVED, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE)
ZERO = Decimal("0.00")


def invoice_list(company: Company) -> QuerySet[Invoice]:
    """Invoices and notes of a company, newest first, with what a list shows joined in."""
    return (
        Invoice.objects.filter(company=company)
        .select_related("customer", "original")
        .order_by("-issue_date", "-id")
    )


def invoice_detail(company: Company, pk) -> Invoice:
    return (
        Invoice.objects.filter(company=company)
        .select_related("company", "customer", "vendor", "original", "journal_entry")
        .prefetch_related("lines", "payments", "adjustments")
        .get(pk=pk)
    )


def invoice_events(invoice: Invoice) -> QuerySet[InvoiceEvent]:
    """The stream's history, oldest first (read-only)."""
    return InvoiceEvent.objects.filter(stream_id=invoice.stream_id).order_by("version")


def receivables_open(company: Company) -> QuerySet[Invoice]:
    return Invoice.objects.filter(
        company=company, kind=InvoiceKind.INVOICE, status__in=OPEN_STATUSES
    )


def receivables_total(company: Company) -> Decimal:
    """Sum of amounts due on open invoices: equals the accounts-receivable balance posted by
    invoicing."""
    return receivables_open(company).aggregate(s=Sum("amount_due"))["s"] or ZERO


def receivables_by_customer(company: Company) -> list[dict]:
    return list(
        receivables_open(company)
        .values("customer_id", "customer__name")
        .annotate(
            due=Sum("amount_due"),
            invoices=Count("id"),
            overdue=Sum("amount_due", filter=Q(status=InvoiceStatus.OVERDUE)),
        )
        .order_by("-due")
    )


def status_counts(company: Company) -> dict[str, int]:
    rows = (
        Invoice.objects.filter(company=company, kind=InvoiceKind.INVOICE)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    return dict(rows)


def customers(company: Company) -> QuerySet[Party]:
    return Party.objects.filter(company=company, kind__in=["customer", "both"], is_active=True)
