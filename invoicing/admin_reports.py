"""The VAT reports as admin pages: the sales register (Mushak-6.2 style) and the monthly VAT
summary for the Mushak-9.1 return, each with filters and a CSV export.

They read through invoicing.reports only, for one company at a time that the user may read
(any role of the "invoicing" scope); another company's id answers 404.

Registering (in invoicing/admin.py, on the invoice admin):

    from invoicing import admin_reports

    class InvoiceAdmin(admin.ModelAdmin):
        def get_urls(self):
            return admin_reports.report_urls(self) + super().get_urls()

That adds `<admin>/invoicing/invoice/reports/sales-register/` and `.../reports/vat-summary/`,
named `admin:invoicing_report_sales_register` and `admin:invoicing_report_vat_summary`;
`admin_reports.report_links()` gives [{"title", "url"}] for buttons on the change list.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from core.errors import DomainError
from core.models import Company
from core.selectors import companies_for
from invoicing import reports

REGISTER_ROWS_SHOWN = 2000


def money(value: Decimal | None, *, blank_zero: bool = False) -> str:
    if value is None or (blank_zero and not value):
        return ""
    return f"{value:,.2f}"


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    path: str
    template: str

    @property
    def url_name(self) -> str:
        return f"invoicing_report_{self.kind}"

    @property
    def url(self) -> str:
        return reverse(f"admin:{self.url_name}")


REPORTS = [
    Report(
        "sales_register",
        "Sales register (Mushak-6.2)",
        "reports/sales-register/",
        "admin/invoicing/reports/sales_register.html",
    ),
    Report(
        "vat_summary",
        "VAT summary (Mushak-9.1)",
        "reports/vat-summary/",
        "admin/invoicing/reports/vat_summary.html",
    ),
]
BY_KIND = {report.kind: report for report in REPORTS}


def report_urls(model_admin) -> list:
    """URL patterns for ModelAdmin.get_urls (see the module docstring)."""
    return [
        path(
            report.path,
            model_admin.admin_site.admin_view(partial(report_view, model_admin, kind=report.kind)),
            name=report.url_name,
        )
        for report in REPORTS
    ]


def report_links() -> list[dict]:
    """[{"title", "url"}] of the report pages (empty until report_urls is registered)."""
    links = []
    for report in REPORTS:
        with contextlib.suppress(NoReverseMatch):  # the pages are not registered yet
            links.append({"title": report.title, "url": report.url})
    return links


# --- filters ---------------------------------------------------------------------------------


class SalesRegisterForm(forms.Form):
    date_from = forms.DateField(widget=AdminDateWidget, label="From date")
    date_to = forms.DateField(widget=AdminDateWidget, label="To date")
    branch = forms.CharField(
        required=False, max_length=30, help_text="Place-of-supply code; empty: all branches."
    )

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to"):
            try:
                reports.check_range(data["date_from"], data["date_to"])
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from None
        return data


class VatSummaryForm(forms.Form):
    month = forms.CharField(
        max_length=7,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
        help_text="YYYY-MM",
    )
    branch = forms.CharField(
        required=False, max_length=30, help_text="Place-of-supply code; empty: all branches."
    )

    def clean_month(self):
        month = self.cleaned_data["month"]
        try:
            reports.month_range(month)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return month


def _defaults(company: Company, kind: str) -> dict[str, str]:
    today = company.today()
    if kind == "sales_register":
        return {"date_from": today.replace(day=1).isoformat(), "date_to": today.isoformat()}
    previous = today.replace(day=1) - timedelta(days=1)
    return {"month": f"{previous:%Y-%m}"}


# --- the views -------------------------------------------------------------------------------


def readable_companies(user) -> list[Company]:
    return list(companies_for(user, "invoicing", write=False).order_by("name"))


def chosen_company(request, companies: list[Company]) -> Company:
    if not companies:
        raise PermissionDenied
    raw = request.GET.get("company", "")
    if not raw:
        return companies[0]
    for company in companies:
        if str(company.pk) == raw:
            return company
    raise Http404("No such company among yours.")


def _branch(value: str) -> str | None:
    return value.strip() or None


def _register_layout(report: dict) -> dict:
    linked = _has_invoice_admin()
    rows = [
        {
            **row,
            "url": reverse("admin:invoicing_invoice_change", args=[row["invoice_id"]])
            if linked
            else "",
            "amounts": [money(row[name]) for name in ("value", "sd", "vat", "total")]
            + [money(row["vds"], blank_zero=True)],
        }
        for row in report["rows"][:REGISTER_ROWS_SHOWN]
    ]
    by_kind = [
        (label, [money(report["by_kind"][key][name]) for name in ("value", "sd", "vat", "total")])
        for key, label in (
            ("invoices", "Tax invoices (6.3)"),
            ("debit_notes", "Debit notes (6.8)"),
            ("credit_notes", "Credit notes (6.7)"),
            ("voids", "Earlier invoices voided"),
        )
    ]
    totals = report["totals"]
    return {
        "rows": rows,
        "hidden_rows": len(report["rows"]) - len(rows),
        "by_kind": by_kind,
        "totals": [money(totals[name]) for name in ("value", "sd", "vat", "total")]
        + [money(totals["vds"])],
        "summary": " · ".join(
            x
            for x in (
                report["company"],
                f"BIN {report['company_bin']}" if report["company_bin"] else "",
                f"{report['date_from']} to {report['date_to']}",
                f"branch {report['branch']}" if report["branch"] else "",
            )
            if x
        ),
    }


def _summary_layout(report: dict) -> dict:
    def rows(section):
        return [
            {
                "label": row["label"],
                "count": row.get("count", row.get("lines")),
                "amounts": [money(row[name]) for name in ("value", "sd", "vat")],
            }
            for row in section["rows"]
        ]

    def totals(section):
        return [money(section["totals"][name]) for name in ("value", "sd", "vat")]

    net = report["net"]
    return {
        "output_rows": rows(report["output"]),
        "output_totals": totals(report["output"]),
        "increasing_rows": rows(report["increasing"]),
        "increasing_totals": totals(report["increasing"]),
        "decreasing_rows": rows(report["decreasing"]),
        "decreasing_totals": totals(report["decreasing"]),
        "net_vat": money(net["vat"]),
        "net_sd": money(net["sd"]),
        "net_total": money(net["total"]),
        "summary": " · ".join(
            x
            for x in (
                report["company"],
                f"BIN {report['company_bin']}" if report["company_bin"] else "",
                f"{report['date_from']:%B %Y}",
                f"branch {report['branch']}" if report["branch"] else "",
                f"return due {report['return_due_date']:%d %B %Y}",
            )
            if x
        ),
    }


def _has_invoice_admin() -> bool:
    try:
        reverse("admin:invoicing_invoice_change", args=[0])
    except NoReverseMatch:  # until the invoice admin is registered
        return False
    return True


def _run(kind: str, company: Company, data: dict) -> dict:
    if kind == "sales_register":
        return reports.sales_register(
            company=company,
            date_from=data["date_from"],
            date_to=data["date_to"],
            branch=_branch(data.get("branch", "")),
        )
    return reports.vat_summary(
        company=company, month=data["month"], branch=_branch(data.get("branch", ""))
    )


FORMS = {"sales_register": SalesRegisterForm, "vat_summary": VatSummaryForm}


def report_view(model_admin, request, kind: str):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    meta = BY_KIND[kind]
    companies = readable_companies(request.user)
    company = chosen_company(request, companies)
    data = {**_defaults(company, kind), **request.GET.dict()}
    form = FORMS[kind](data)
    report = layout = None
    if form.is_valid():
        report = _run(kind, company, form.cleaned_data)
        if request.GET.get("export") == "csv":
            response = HttpResponse(
                reports.report_csv(report), content_type="text/csv; charset=utf-8"
            )
            filename = reports.report_filename(report, company.slug)
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        layout = _register_layout(report) if kind == "sales_register" else _summary_layout(report)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": meta.title,
        "subtitle": company.name,
        "report_kind": kind,
        "reports": report_links(),
        "companies": companies,
        "company": company,
        "form": form,
        "report": report,
        "layout": layout,
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
    }
    return TemplateResponse(request, meta.template, context)


__all__ = ["REPORTS", "report_links", "report_urls", "report_view"]
