"""The ledger reports as admin pages: trial balance, general ledger, profit and loss and balance
sheet, each with filters and a CSV export.

They read through accounting.selectors only, for one company at a time that the user may read
(any role of the "accounting" scope); another company's id answers 404. The URLs hang off the
account admin (see AccountAdmin.get_urls) and are named `admin:accounting_report_<kind>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from accounting import selectors
from accounting.exports import csv_filename, csv_text
from accounting.forms import BalanceSheetForm, GeneralLedgerForm, ReportForm, default_range
from accounting.models import CostCenter, Department, Project
from core.models import Company
from core.selectors import companies_for

GL_ROWS_SHOWN = 2000


def money(value: Decimal | None, *, blank_zero: bool = False) -> str:
    """1234567.5 -> "1,234,567.50"; the thousands separator is for reading, CSV has none."""
    if value is None or (blank_zero and not value):
        return ""
    return f"{value:,.2f}"


def balance_text(value: Decimal) -> str:
    """A signed balance (debit minus credit) the way a ledger card shows it: 250.00 Dr."""
    if not value:
        return "0.00"
    return f"{abs(value):,.2f} {'Dr' if value > 0 else 'Cr'}"


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    path: str

    @property
    def url_name(self) -> str:
        return f"accounting_report_{self.kind}"

    @property
    def url(self) -> str:
        return reverse(f"admin:{self.url_name}")


REPORTS = [
    Report("trial_balance", "Trial balance", "reports/trial-balance/"),
    Report("general_ledger", "General ledger", "reports/general-ledger/"),
    Report("profit_and_loss", "Profit and loss", "reports/profit-and-loss/"),
    Report("balance_sheet", "Balance sheet", "reports/balance-sheet/"),
]
BY_KIND = {report.kind: report for report in REPORTS}


def report_links() -> list[dict]:
    return [{"title": report.title, "url": report.url} for report in REPORTS]


def readable_companies(user) -> list[Company]:
    return list(companies_for(user, "accounting", write=False).order_by("name"))


def chosen_company(request, companies: list[Company]) -> Company:
    """The company named by ?company=<id> (404 unless the user may read its books), else the
    first of the user's companies."""
    if not companies:
        raise PermissionDenied
    raw = request.GET.get("company", "")
    if not raw:
        return companies[0]
    for company in companies:
        if str(company.pk) == raw:
            return company
    raise Http404("No such company among yours.")


def _query(**params) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None})


def _dimension_names(company: Company) -> dict[str, dict[int, str]]:
    return {
        name: dict(model.objects.filter(company=company).values_list("pk", "code"))
        for name, model in (
            ("cost_center", CostCenter),
            ("project", Project),
            ("department", Department),
        )
    }


def _filter_summary(company: Company, form, span: str) -> str:
    parts = [company.name, span]
    labels = {"cost_center": "Cost center", "project": "Project", "department": "Department"}
    for name, value in form.dimensions().items():
        if value is not None:
            parts.append(f"{labels[name]} {value.code} {value.name}")
    return " · ".join(parts)


def _span(date_from: date | None, date_to: date) -> str:
    return f"{date_from or 'start of the books'} to {date_to}"


# --- one function per report: run the selector, lay the figures out for the page -------------


def _trial_balance(company, form, base_query):
    data = form.cleaned_data
    report = selectors.trial_balance(
        company=company, date_from=data["date_from"], date_to=data["date_to"], **form.dimensions()
    )
    ledger_url = BY_KIND["general_ledger"].url
    rows = [
        {
            "code": row["code"],
            "name": row["name"],
            "type": row["type"].capitalize(),
            "url": f"{ledger_url}?{base_query}&{_query(account=row['account_id'])}",
            "amounts": [
                money(row[column], blank_zero=True)
                for column in (
                    "opening_debit",
                    "opening_credit",
                    "debit",
                    "credit",
                    "closing_debit",
                    "closing_credit",
                )
            ],
        }
        for row in report["rows"]
    ]
    totals = report["totals"]
    difference = totals["closing_debit"] - totals["closing_credit"]
    layout = {
        "rows": rows,
        "totals": [money(value) for value in totals.values()],
        "balanced": report["balanced"],
        "difference": money(abs(difference)),
        "summary": _filter_summary(company, form, _span(data["date_from"], data["date_to"])),
    }
    return report, layout


def _general_ledger(company, form, base_query, *, exporting=False):
    data = form.cleaned_data
    report = selectors.general_ledger(
        company=company,
        account=data["account"],
        date_from=data["date_from"],
        date_to=data["date_to"],
        limit=None if exporting else GL_ROWS_SHOWN,  # the page shows a screenful; CSV has all
        **form.dimensions(),
    )
    names = _dimension_names(company)
    rows = []
    for row in report["rows"][:GL_ROWS_SHOWN]:
        dims = [names[name].get(row[name], "?") for name in names if row[name] is not None]
        rows.append(
            {
                "date": row["date"],
                "reference": row["reference"],
                "url": reverse("admin:accounting_journalentry_change", args=[row["entry_id"]]),
                "memo": row["memo"],
                "source": row["source"],
                "dimensions": " / ".join(dims),
                "debit": money(row["debit"], blank_zero=True),
                "credit": money(row["credit"], blank_zero=True),
                "balance": balance_text(row["balance"]),
            }
        )
    layout = {
        "account": report["account"],
        "rows": rows,
        "hidden_rows": report["line_count"] - len(rows),
        "opening": balance_text(report["opening_balance"]),
        "total_debit": money(report["total_debit"]),
        "total_credit": money(report["total_credit"]),
        "closing": balance_text(report["closing_balance"]),
        "summary": _filter_summary(company, form, _span(data["date_from"], data["date_to"])),
    }
    return report, layout


SECTION_TITLES = {
    "asset": "Assets",
    "liability": "Liabilities",
    "equity": "Equity",
    "income": "Income",
    "expense": "Expenses",
}


def _sections(report) -> list[dict]:
    return [
        {
            "title": SECTION_TITLES[section["type"]],
            "rows": [
                {"code": row["code"], "name": row["name"], "amount": money(row["amount"])}
                for row in section["rows"]
            ],
            "total": money(section["total"]),
        }
        for section in report["sections"]
    ]


def _profit_and_loss(company, form, base_query):
    data = form.cleaned_data
    report = selectors.profit_and_loss(
        company=company, date_from=data["date_from"], date_to=data["date_to"], **form.dimensions()
    )
    net = report["net_profit"]
    layout = {
        "sections": _sections(report),
        "total_income": money(report["total_income"]),
        "total_expenses": money(report["total_expenses"]),
        "net_label": "Net profit" if net >= 0 else "Net loss",
        "net": money(abs(net)),
        "summary": _filter_summary(company, form, _span(report["date_from"], report["date_to"])),
    }
    return report, layout


def _balance_sheet(company, form, base_query):
    as_of = form.cleaned_data["as_of"]
    report = selectors.balance_sheet(company=company, as_of=as_of, **form.dimensions())
    difference = report["total_assets"] - report["total_liabilities_and_equity"]
    layout = {
        "sections": _sections(report),
        "total_assets": money(report["total_assets"]),
        "current_year_earnings": money(report["current_year_earnings"]),
        "prior_years_unclosed_earnings": money(report["prior_years_unclosed_earnings"]),
        "total_liabilities_and_equity": money(report["total_liabilities_and_equity"]),
        "balanced": report["balanced"],
        "difference": money(abs(difference)),
        "summary": _filter_summary(company, form, f"as of {as_of}"),
    }
    return report, layout


@dataclass(frozen=True)
class _Spec:
    form: type
    run: object
    template: str
    needs: str = ""  # a parameter without which the report is not run (the GL's account)


SPECS = {
    "trial_balance": _Spec(ReportForm, _trial_balance, "trial_balance.html"),
    "general_ledger": _Spec(GeneralLedgerForm, _general_ledger, "general_ledger.html", "account"),
    "profit_and_loss": _Spec(ReportForm, _profit_and_loss, "profit_and_loss.html"),
    "balance_sheet": _Spec(BalanceSheetForm, _balance_sheet, "balance_sheet.html"),
}


def _data(request, company: Company, kind: str) -> dict:
    """The query string, with the fiscal year to date where a date was not given at all
    (an emptied field stays empty: the start of the books, or today)."""
    data = request.GET.dict()
    if kind != "balance_sheet":
        for name, value in default_range(company).items():
            data.setdefault(name, value.isoformat())
    return data


def report_view(model_admin, request, kind: str):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    spec, meta = SPECS[kind], BY_KIND[kind]
    companies = readable_companies(request.user)
    company = chosen_company(request, companies)
    data = _data(request, company, kind)
    ready = not spec.needs or data.get(spec.needs)
    form = spec.form(data if ready else None, company=company, initial=data)
    report = layout = None
    if ready and form.is_valid():
        base_query = _query(company=company.pk, **_filters_query(form))
        exporting = request.GET.get("export") == "csv"
        if kind == "general_ledger":
            report, layout = spec.run(company, form, base_query, exporting=exporting)
        else:
            report, layout = spec.run(company, form, base_query)
        if exporting:
            response = HttpResponse(csv_text(report), content_type="text/csv; charset=utf-8")
            filename = csv_filename(report, company.slug)
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
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
    return TemplateResponse(request, f"admin/accounting/reports/{spec.template}", context)


def _filters_query(form) -> dict:
    """The filters as the query string carries them, for links from one report to another."""
    data = form.cleaned_data
    out = {}
    for name in ("date_from", "date_to"):
        if name in data:
            out[name] = data[name].isoformat() if data[name] else ""
    for name in ("cost_center", "project", "department"):
        if data.get(name) is not None:
            out[name] = data[name].pk
    return out
