"""VAT reports from the invoice read model: the sales register (Mushak-6.2 style) and the
monthly VAT summary that feeds the Mushak-9.1 return. Each comes as a dict of rows and totals
(Decimal amounts, for the API and the admin) and as CSV.

Which documents count, and when (the same rule in both reports, so that months add up to the
year and nothing is counted twice):

- Tax invoices (6.3), credit notes (6.7) and debit notes (6.8) that were approved; drafts and
  vendor bills never. A document counts on its date of issue.
- Credit notes count negative (a decreasing adjustment), debit notes positive (increasing).
- A void invoice whose void falls in the same range as its issue is left out (its number is
  listed under `void_numbers`, so the gap in the series is explained). An invoice issued
  earlier and voided inside the range counts again, negative, on the day it was voided: a
  return already filed for its month is not rewritten, the void reduces the month it happens.
- VAT deducted at source by withholding buyers (recorded with their payments, certified by
  their Mushak-6.6) reduces the VAT the seller pays in the month of the payment.

Output VAT is broken down by the rate snapshotted on each line: zero-rated, exempt, standard
15 %, each reduced rate, specific VAT. The return is due by the 15th of the next month.
"""

from __future__ import annotations

import calendar
import csv
import io
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from core.errors import ValidationFailed
from core.models import Company
from invoicing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoicePayment,
    InvoiceStatus,
    VatKind,
)

ZERO = Decimal("0.00")
STANDARD_RATE = Decimal("15")
VAT_DOCUMENTS = (InvoiceKind.INVOICE, InvoiceKind.CREDIT_NOTE, InvoiceKind.DEBIT_NOTE)
SIGN = {InvoiceKind.INVOICE: 1, InvoiceKind.DEBIT_NOTE: 1, InvoiceKind.CREDIT_NOTE: -1}
FORM = {InvoiceKind.INVOICE: "6.3", InvoiceKind.CREDIT_NOTE: "6.7", InvoiceKind.DEBIT_NOTE: "6.8"}
MAX_RANGE_DAYS = 366 * 5 + 1
RETURN_DUE_DAY = 15

# --- ranges -------------------------------------------------------------------------------


def month_range(month: str) -> tuple[date, date]:
    """ "2025-11" -> (2025-11-01, 2025-11-30); anything else is refused with a clear message."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", (month or "").strip())
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1900:
        raise ValidationFailed(
            f"month must look like 2025-11, not {month!r}.",
            code="invalid_month",
            fields={"month": ["Use YYYY-MM."]},
        )
    year, number = int(match[1]), int(match[2])
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


def check_range(date_from: date, date_to: date) -> None:
    if date_from > date_to:
        raise ValidationFailed(
            f"The range starts ({date_from}) after it ends ({date_to}).",
            code="invalid_range",
            fields={"from": ["Must be on or before 'to'."]},
        )
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise ValidationFailed(
            "The range is longer than five years; ask for a shorter one.",
            code="range_too_long",
            fields={"from": ["At most five years before 'to'."]},
        )


def _bounds(company: Company, date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """The range as aware datetimes in the company's time zone: [start of from, start of to+1)."""
    tz = company.tz
    start = timezone.make_aware(datetime.combine(date_from, time.min), tz)
    end = timezone.make_aware(datetime.combine(date_to + timedelta(days=1), time.min), tz)
    return start, end


def _local_date(company: Company, moment: datetime | None) -> date | None:
    return timezone.localtime(moment, company.tz).date() if moment else None


# --- which documents count ------------------------------------------------------------------


def _issued(company: Company, date_from: date, date_to: date, branch: str | None):
    """Approved VAT documents issued in the range, except those voided by the range's end."""
    _start, end = _bounds(company, date_from, date_to)
    queryset = Invoice.objects.filter(
        company=company,
        kind__in=VAT_DOCUMENTS,
        approved_at__isnull=False,
        issue_date__gte=date_from,
        issue_date__lte=date_to,
    ).exclude(status=InvoiceStatus.DRAFT)
    if branch is not None:
        queryset = queryset.filter(branch=branch)
    counted = queryset.filter(Q(voided_at__isnull=True) | Q(voided_at__gte=end))
    voided = queryset.filter(voided_at__lt=end)
    return counted, voided


def _voided_later(company: Company, date_from: date, date_to: date, branch: str | None):
    """Approved documents issued before the range and voided inside it."""
    start, end = _bounds(company, date_from, date_to)
    queryset = Invoice.objects.filter(
        company=company,
        kind__in=VAT_DOCUMENTS,
        approved_at__isnull=False,
        issue_date__lt=date_from,
        voided_at__gte=start,
        voided_at__lt=end,
    )
    if branch is not None:
        queryset = queryset.filter(branch=branch)
    return queryset


def _with_description(queryset):
    first_line = InvoiceLine.objects.filter(invoice=OuterRef("pk")).order_by("serial")
    return queryset.select_related("customer", "original").annotate(
        first_description=Subquery(first_line.values("description")[:1]),
        line_count=Count("lines"),
    )


# --- sales register -------------------------------------------------------------------------

REGISTER_AMOUNTS = ("value", "sd", "vat", "total", "vds")


def _signed(sign: int, value: Decimal) -> Decimal:
    """value or its negation, never -0.00 (which a CSV would print as "-0.00")."""
    return value if sign > 0 else ZERO - value


def _bin_display(digits: str) -> str:
    return f"{digits[:9]}-{digits[9:]}" if len(digits) == 13 else digits


def _register_row(invoice: Invoice, *, sign: int, entry: str, on: date) -> dict:
    description = invoice.first_description or ""
    if invoice.line_count > 1:
        description += f" (+{invoice.line_count - 1} more)"
    customer = invoice.customer
    vds = invoice.vds_amount if invoice.kind == InvoiceKind.INVOICE else ZERO
    return {
        "date": on,
        "time": invoice.issue_time if entry == "issued" else None,
        "entry": entry,  # issued | void
        "form": FORM[invoice.kind],
        "kind": invoice.kind,
        "number": invoice.mushak_number or invoice.number,
        "original_number": (
            (invoice.original.mushak_number or invoice.original.number) if invoice.original else ""
        ),
        "invoice_id": invoice.pk,
        # The buyer as at issue; live party data only for rows issued before snapshots.
        "customer": invoice.buyer_name or (customer.name if customer else ""),
        "customer_bin": (
            _bin_display(invoice.buyer_bin)
            if invoice.buyer_name
            else (customer.bin_display if customer else "")
        ),
        "customer_address": (
            invoice.buyer_address if invoice.buyer_name else (customer.address if customer else "")
        ),
        "description": description,
        "branch": invoice.branch,
        "value": _signed(sign, invoice.total_value),
        "sd": _signed(sign, invoice.total_sd),
        "vat": _signed(sign, invoice.total_vat),
        "total": _signed(sign, invoice.total_amount),
        "vds": _signed(sign, vds),
    }


def sales_register(
    *, company: Company, date_from: date, date_to: date, branch: str | None = None
) -> dict:
    """Every VAT document of the range in date order, signed (credit notes and voids of earlier
    invoices negative), with totals by kind and overall."""
    check_range(date_from, date_to)
    counted, voided = _issued(company, date_from, date_to, branch)
    rows = [
        _register_row(invoice, sign=SIGN[invoice.kind], entry="issued", on=invoice.issue_date)
        for invoice in _with_description(counted)
    ]
    rows += [
        _register_row(
            invoice,
            sign=-SIGN[invoice.kind],
            entry="void",
            on=_local_date(company, invoice.voided_at),
        )
        for invoice in _with_description(_voided_later(company, date_from, date_to, branch))
    ]
    rows.sort(key=lambda r: (r["date"], r["time"] or time.max, r["form"], r["number"]))
    for serial, row in enumerate(rows, start=1):
        row["serial"] = serial

    def total(selected) -> dict:
        selected = list(selected)
        return {name: sum((r[name] for r in selected), ZERO) for name in REGISTER_AMOUNTS}

    by_kind = {
        "invoices": total(
            r for r in rows if r["kind"] == InvoiceKind.INVOICE and r["entry"] == "issued"
        ),
        "credit_notes": total(r for r in rows if r["kind"] == InvoiceKind.CREDIT_NOTE),
        "debit_notes": total(r for r in rows if r["kind"] == InvoiceKind.DEBIT_NOTE),
        "voids": total(r for r in rows if r["entry"] == "void"),
    }
    void_numbers = sorted(
        invoice.mushak_number or invoice.number
        for invoice in voided.only("number", "mushak_number")
    )
    return {
        "report": "sales_register",
        "company": company.legal_name or company.name,
        "company_bin": company.bin_display,
        "date_from": date_from,
        "date_to": date_to,
        "branch": branch,
        "currency": company.base_currency,
        "rows": rows,
        "count": len(rows),
        "by_kind": by_kind,
        "totals": total(rows),
        "void_numbers": void_numbers,
    }


# --- monthly VAT summary (feeds Mushak-9.1) ---------------------------------------------------


def _category(kind: str, rate: Decimal) -> tuple[tuple, str, str]:
    """(order, key, label) of a line's VAT treatment for the return's output section."""
    rate = Decimal(rate)
    if kind == VatKind.ZERO:
        return ((0, ZERO), "zero_rated", "Zero-rated supplies")
    if kind == VatKind.EXEMPT:
        return ((1, ZERO), "exempt", "Exempt supplies")
    if kind == VatKind.SPECIFIC:
        return ((4, ZERO), "specific", "Supplies at specific VAT (per unit)")
    shown = f"{rate.normalize():f}"
    if rate == STANDARD_RATE:
        return ((2, ZERO), "standard", f"Standard rate {shown}%")
    # other rates after the standard, highest first
    return ((3, -rate), f"reduced_{shown}", f"Reduced rate {shown}%")


def _output_rows(company: Company, counted) -> list[dict]:
    sums = (
        InvoiceLine.objects.filter(
            invoice__in=counted.filter(kind=InvoiceKind.INVOICE).values("pk")
        )
        .values("vat_kind", "vat_rate")
        .annotate(
            value=Sum("value"),
            sd=Sum("sd_amount"),
            vat=Sum("vat_amount"),
            lines=Count("id"),
        )
    )
    merged: dict[str, dict] = {}
    for row in sums:
        order, key, label = _category(row["vat_kind"], row["vat_rate"])
        target = merged.setdefault(
            key,
            {"order": order, "category": key, "label": label, "lines": 0}
            | dict.fromkeys(("value", "sd", "vat"), ZERO),
        )
        target["lines"] += row["lines"]
        for name in ("value", "sd", "vat"):
            target[name] += row[name] or ZERO
    return [
        {k: v for k, v in row.items() if k != "order"}
        for row in sorted(merged.values(), key=lambda r: (r["order"], r["category"]))
    ]


def _document_sums(queryset) -> dict:
    sums = queryset.aggregate(
        count=Count("id"),
        value=Sum("total_value"),
        sd=Sum("total_sd"),
        vat=Sum("total_vat"),
    )
    return {
        "count": sums["count"],
        **{name: sums[name] or ZERO for name in ("value", "sd", "vat")},
    }


def vat_summary(*, company: Company, month: str, branch: str | None = None) -> dict:
    """Output VAT and SD of the month by rate, increasing adjustments (debit notes), decreasing
    adjustments (credit notes, voids of earlier months' invoices, VAT deducted at source by
    buyers) and the net VAT and SD payable."""
    date_from, date_to = month_range(month)
    counted, voided = _issued(company, date_from, date_to, branch)
    output_rows = _output_rows(company, counted)
    output = {
        "rows": output_rows,
        "totals": {
            name: sum((r[name] for r in output_rows), ZERO) for name in ("value", "sd", "vat")
        },
    }
    debit = _document_sums(counted.filter(kind=InvoiceKind.DEBIT_NOTE))
    credit = _document_sums(counted.filter(kind=InvoiceKind.CREDIT_NOTE))
    voids = _document_sums(_voided_later(company, date_from, date_to, branch))
    payments = InvoicePayment.objects.filter(
        company=company,
        date__gte=date_from,
        date__lte=date_to,
        vds_withheld__gt=0,
        invoice__kind=InvoiceKind.INVOICE,
    )
    if branch is not None:
        payments = payments.filter(invoice__branch=branch)
    vds = payments.aggregate(count=Count("id"), vat=Sum("vds_withheld"))
    increasing_rows = [
        {"adjustment": "debit_notes", "label": "Debit notes issued (Mushak-6.8)", **debit},
    ]
    decreasing_rows = [
        {"adjustment": "credit_notes", "label": "Credit notes issued (Mushak-6.7)", **credit},
        {
            "adjustment": "voided_invoices",
            "label": "Invoices of earlier months voided this month",
            **voids,
        },
        {
            "adjustment": "vds",
            "label": "VAT deducted at source by buyers (Mushak-6.6 received)",
            "count": vds["count"],
            "value": ZERO,
            "sd": ZERO,
            "vat": vds["vat"] or ZERO,
        },
    ]

    def sums(rows) -> dict:
        return {name: sum((r[name] for r in rows), ZERO) for name in ("value", "sd", "vat")}

    increasing = {"rows": increasing_rows, "totals": sums(increasing_rows)}
    decreasing = {"rows": decreasing_rows, "totals": sums(decreasing_rows)}
    net_vat = output["totals"]["vat"] + increasing["totals"]["vat"] - decreasing["totals"]["vat"]
    net_sd = output["totals"]["sd"] + increasing["totals"]["sd"] - decreasing["totals"]["sd"]
    due = date_to + timedelta(days=RETURN_DUE_DAY)
    return {
        "report": "vat_summary",
        "company": company.legal_name or company.name,
        "company_bin": company.bin_display,
        "month": f"{date_from:%Y-%m}",
        "date_from": date_from,
        "date_to": date_to,
        "branch": branch,
        "currency": company.base_currency,
        "return_due_date": due,
        "output": output,
        "increasing": increasing,
        "decreasing": decreasing,
        "net": {"vat": net_vat, "sd": net_sd, "total": net_vat + net_sd},
        "void_numbers": sorted(
            invoice.mushak_number or invoice.number
            for invoice in voided.only("number", "mushak_number")
        ),
    }


# --- CSV ------------------------------------------------------------------------------------


def _text(value) -> str:
    """Text a spreadsheet would run as a formula (=, +, -, @) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


REGISTER_COLUMNS = [
    "serial",
    "date",
    "time",
    "entry",
    "form",
    "number",
    "original_number",
    "customer",
    "customer_bin",
    "customer_address",
    "description",
    "value",
    "sd",
    "vat",
    "total",
    "vds",
]


def _register_csv(report: dict):
    span = f"{report['date_from']} to {report['date_to']}"
    yield [f"Sales register (Mushak-6.2) {report['company']} BIN {report['company_bin']} {span}"]
    yield REGISTER_COLUMNS
    for row in report["rows"]:
        yield [
            row["serial"],
            row["date"].isoformat(),
            row["time"].strftime("%H:%M") if row["time"] else "",
            row["entry"],
            row["form"],
            row["number"],
            row["original_number"],
            _text(row["customer"]),
            row["customer_bin"],
            _text(row["customer_address"].replace("\n", ", ")),
            _text(row["description"]),
            *(_money(row[name]) for name in ("value", "sd", "vat", "total", "vds")),
        ]
    totals = report["totals"]
    yield [
        "", "", "", "", "", "Total", "", "", "", "", "",
        *(_money(totals[name]) for name in ("value", "sd", "vat", "total", "vds")),
    ]  # fmt: skip
    if report["void_numbers"]:
        yield ["Void (left out)", " ".join(report["void_numbers"])]


def _summary_csv(report: dict):
    yield [
        f"VAT summary for Mushak-9.1 {report['company']} BIN {report['company_bin']} "
        f"{report['month']} (return due {report['return_due_date']})"
    ]
    yield ["section", "line", "label", "count", "value", "sd", "vat"]
    for row in report["output"]["rows"]:
        yield ["output", row["category"], row["label"], row["lines"],
               _money(row["value"]), _money(row["sd"]), _money(row["vat"])]  # fmt: skip
    t = report["output"]["totals"]
    yield [
        "output",
        "total",
        "Output tax",
        "",
        _money(t["value"]),
        _money(t["sd"]),
        _money(t["vat"]),
    ]
    for section in ("increasing", "decreasing"):
        for row in report[section]["rows"]:
            yield [section, row["adjustment"], row["label"], row["count"],
                   _money(row["value"]), _money(row["sd"]), _money(row["vat"])]  # fmt: skip
        t = report[section]["totals"]
        label = f"{section.capitalize()} adjustments"
        yield [section, "total", label, "", _money(t["value"]), _money(t["sd"]), _money(t["vat"])]
    net = report["net"]
    yield ["net", "payable", "Net payable (VAT, SD)", "", "", _money(net["sd"]), _money(net["vat"])]


def report_csv(report: dict) -> str:
    rows = _register_csv(report) if report["report"] == "sales_register" else _summary_csv(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def report_filename(report: dict, slug: str) -> str:
    if report["report"] == "sales_register":
        return f"{slug}-sales-register-{report['date_from']}-{report['date_to']}.csv"
    return f"{slug}-vat-summary-{report['month']}.csv"
