"""The banking reports as admin pages: cash position (with a balance-over-time chart), transfer
tracking, dimensional analysis and the variance report (with a variance-by-month chart), each
with filters and a CSV export.

They read through banking.selectors and banking.reconciliation only, for one company at a time
that the user may read (any role of the "banking" scope); another company's id, or another
company's bank account, answers 404. The charts are inline SVG drawn on the server
(banking.charts): no script, no CDN.

Registered on the bank account admin (banking/admin.py):

    def get_urls(self):
        return admin_reports.report_urls(self) + super().get_urls()

which adds `<admin>/banking/bankaccount/reports/<kind>/`, named `admin:banking_report_<kind>`;
`admin_reports.report_links()` gives [{"title", "url"}] for the buttons on the account list.
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
from django.utils.safestring import mark_safe

from banking import reconciliation, selectors
from banking.api import reports as api_reports
from banking.charts import CHART_STYLE, Point, bar_chart, line_chart
from banking.models import BankAccount
from banking.periods import check_day, parse_month
from core.errors import DomainError
from core.models import Company
from core.selectors import companies_for

DIMENSION_CHOICES = [
    ("cost_center", "Cost center"),
    ("project", "Project"),
    ("department", "Department"),
    ("branch", "Branch"),
]


def money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    path: str

    @property
    def url_name(self) -> str:
        return f"banking_report_{self.kind}"

    @property
    def url(self) -> str:
        return reverse(f"admin:{self.url_name}")


REPORTS = [
    Report("cash_position", "Cash position", "reports/cash-position/"),
    Report("transfer_tracking", "Transfer tracking", "reports/transfer-tracking/"),
    Report("dimensional_analysis", "Dimensional analysis", "reports/dimensional-analysis/"),
    Report("variance", "Variance report", "reports/variance/"),
]
BY_KIND = {report.kind: report for report in REPORTS}


def report_urls(model_admin) -> list:
    return [
        path(
            report.path,
            model_admin.admin_site.admin_view(partial(report_view, model_admin, kind=report.kind)),
            name=report.url_name,
        )
        for report in REPORTS
    ]


def report_links() -> list[dict]:
    links = []
    for report in REPORTS:
        with contextlib.suppress(NoReverseMatch):
            links.append({"title": report.title, "url": report.url})
    return links


# --- filters ---------------------------------------------------------------------------------


class _ReportForm(forms.Form):
    def __init__(self, *args, accounts, required_account: bool, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["bank_account"]
        field.queryset = accounts
        field.required = required_account
        field.empty_label = "(choose one)" if required_account else "All accounts"


def _month_field():
    return forms.CharField(
        max_length=7,
        label="Month",
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
    )


def _check_month(value: str) -> str:
    try:
        parse_month(value)
    except ValueError as exc:
        raise forms.ValidationError(f"{exc} Use YYYY-MM, for example 2026-08.") from None
    return value


class CashPositionForm(_ReportForm):
    bank_account = forms.ModelChoiceField(queryset=BankAccount.objects.none())
    as_of = forms.DateField(widget=AdminDateWidget, label="As of")
    days = forms.IntegerField(
        min_value=7, max_value=731, initial=90, label="Chart days", help_text="Days back."
    )
    by = forms.ChoiceField(
        choices=[("", "(no split)"), *DIMENSION_CHOICES], required=False, label="Split by"
    )

    def clean_as_of(self):
        try:
            return check_day(self.cleaned_data["as_of"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class TransferTrackingForm(_ReportForm):
    bank_account = forms.ModelChoiceField(queryset=BankAccount.objects.none())
    period = _month_field()

    def clean_period(self):
        return _check_month(self.cleaned_data["period"])


class DimensionalForm(TransferTrackingForm):
    dimension = forms.ChoiceField(choices=DIMENSION_CHOICES)


class VarianceForm(TransferTrackingForm):
    months = forms.IntegerField(min_value=1, max_value=36, initial=12, label="Months")


FORMS = {
    "cash_position": (CashPositionForm, False),
    "transfer_tracking": (TransferTrackingForm, False),
    "dimensional_analysis": (DimensionalForm, True),
    "variance": (VarianceForm, True),
}


def _defaults(company: Company, kind: str, accounts) -> dict:
    today = company.today()
    first = accounts.first()
    account = str(first.pk) if first and FORMS[kind][1] else ""
    return {
        "as_of": today.isoformat(),
        "days": "90",
        "period": f"{today:%Y-%m}",
        "dimension": "cost_center",
        "months": "12",
        "bank_account": account,
    }


# --- building and laying out ---------------------------------------------------------------


def _cell(text, *, amount=False, negative=False, url="") -> dict:
    return {"text": text, "amount": amount, "negative": negative, "url": url}


def _amount_cell(value) -> dict:
    return _cell(money(value), amount=True, negative=value is not None and value < 0)


def _col(title, amount=False) -> dict:
    return {"title": title, "amount": amount}


def _cash_position(company, data) -> tuple[dict, dict]:
    as_of = data["as_of"]
    start = as_of - timedelta(days=data["days"] - 1)
    report = selectors.cash_position(
        company=company,
        bank_account=data.get("bank_account"),
        as_of=as_of,
        by=data.get("by") or None,
        period=(start, as_of),
    )
    accounts = report["accounts"]
    tables = [
        {
            "id": "cash-position",
            "caption": f"Book balances at {as_of:%d %B %Y}",
            "columns": [_col("Account"), _col("Currency"), _col("Ledger"),
                        _col(f"In, last {data['days']} days", True),
                        _col(f"Out, last {data['days']} days", True), _col("Balance", True)],
            "rows": [
                [_cell(a["name"]), _cell(a["currency"]), _cell(a["ledger_account"]),
                 _amount_cell(a["period_inflow"]), _amount_cell(a["period_outflow"]),
                 _amount_cell(a["balance"])]
                for a in accounts
            ],
            "totals": [],
            "empty": "No bank accounts.",
        }
    ]  # fmt: skip
    for total in report["totals"]:
        tables[0]["rows"].append(
            [_cell(f"Total {total['currency']}"), _cell(""), _cell(""), _cell(""), _cell(""),
             _amount_cell(total["balance"])]
        )  # fmt: skip
    if report.get("breakdown"):
        names = {a["bank_account_id"]: a["name"] for a in accounts}
        tables.append(
            {
                "id": "cash-position-by",
                "caption": f"By {dict(DIMENSION_CHOICES)[report['by']].lower()}",
                "columns": [_col("Account"), _col("Code"), _col("Name"), _col("Opening", True),
                            _col("In", True), _col("Out", True), _col("Balance", True)],
                "rows": [
                    [_cell(names[r["bank_account_id"]]), _cell(r["code"]), _cell(r["name"]),
                     _amount_cell(r["opening"]), _amount_cell(r["inflow"]),
                     _amount_cell(r["outflow"]), _amount_cell(r["balance"])]
                    for r in report["breakdown"]
                ],
            }
        )  # fmt: skip
    chart = ""
    charted = [a for a in accounts if a["series"]]
    if len({a["currency"] for a in charted}) == 1 and charted:
        # One line: the sum of the accounts shown (they share a currency).
        days = [p["date"] for p in charted[0]["series"]]
        totals = [sum((a["series"][i]["balance"] for a in charted), Decimal("0.00"))
                  for i in range(len(days))]  # fmt: skip
        step = max(1, len(days) // 120)  # at most ~120 points, always the last day
        picked = list(range(0, len(days), step))
        if picked[-1] != len(days) - 1:
            picked.append(len(days) - 1)
        chart = line_chart(
            [Point(f"{days[i]:%d %b}", totals[i]) for i in picked],
            title="Book balance over time"
            + ("" if len(charted) == 1 else f" (sum of {len(charted)} accounts)"),
            currency=charted[0]["currency"],
        )
    summary = f"{company.name} · as of {as_of:%d %B %Y}"
    return report, {"tables": tables, "chart": chart, "summary": summary}


def _transfer_tracking(company, data) -> tuple[dict, dict]:
    report = selectors.transfer_tracking(
        company=company, bank_account=data.get("bank_account"), period=data["period"]
    )
    labels = {"initiated": "Initiated", "in_transit": "In transit", "settled": "Settled",
              "cancelled": "Cancelled"}  # fmt: skip
    summary_rows = [
        [_cell(labels[status]), _cell(str(values["count"]), amount=True),
         _amount_cell(values["amount"])]
        for status, values in report["summary"].items()
    ]  # fmt: skip
    ageing_rows = [
        [_cell(f"{row['bucket']} days"),
         _cell(str(row["initiated"]["count"]), amount=True),
         _amount_cell(row["initiated"]["amount"]),
         _cell(str(row["in_transit"]["count"]), amount=True),
         _amount_cell(row["in_transit"]["amount"])]
        for row in report["ageing"]
    ]  # fmt: skip
    transfer_rows = []
    for row in report["transfers"]:
        url = reverse("admin:banking_banktransfer_change", args=[row["id"]])
        transfer_rows.append(
            [_cell(row["date"].isoformat(), url=url), _cell(row["reference"] or f"#{row['id']}"),
             _cell(f"{row['from_account']} → {row['to_account']}"), _amount_cell(row["amount"]),
             _amount_cell(row["received"]), _cell(labels[row["status"]]),
             _cell("" if row["age_days"] is None else f"{row['age_days']} d"
                   + (" (overdue)" if row["overdue"] else "")),
             _cell(row["settled_on"].isoformat() if row["settled_on"] else "")]
        )  # fmt: skip
    tables = [
        {"id": "transfer-summary", "caption": "By status",
         "columns": [_col("Status"), _col("Count", True), _col("Amount", True)],
         "rows": summary_rows},
        {"id": "transfer-ageing", "caption": f"Open transfers by age at {report['as_of']:%d %B %Y}",
         "columns": [_col("Age"), _col("Initiated", True), _col("Amount", True),
                     _col("In transit", True), _col("Pending", True)],
         "rows": ageing_rows},
        {"id": "transfer-list", "caption": "Transfers",
         "columns": [_col("Date"), _col("Reference"), _col("From → to"), _col("Amount", True),
                     _col("Arrived", True), _col("Status"), _col("Age"), _col("Settled")],
         "rows": transfer_rows, "empty": "No transfers in this month."},
    ]  # fmt: skip
    start = report["period"]["start"]
    return report, {"tables": tables, "chart": "", "summary": f"{company.name} · {start:%B %Y}"}


def _dimensional(company, data) -> tuple[dict, dict]:
    report = selectors.dimensional_analysis(
        bank_account=data["bank_account"], period=data["period"], dimension=data["dimension"]
    )
    label = dict(DIMENSION_CHOICES)[report["dimension"]]
    totals = report["totals"]
    tables = [
        {
            "id": "dimensional-analysis",
            "caption": f"{data['bank_account'].name} by {label.lower()}",
            "columns": [_col("Code"), _col(label), _col("Transactions", True), _col("In", True),
                        _col("Out", True), _col("Net", True)],
            "rows": [
                [_cell(r["code"]), _cell(r["name"]), _cell(str(r["count"]), amount=True),
                 _amount_cell(r["inflow"]), _amount_cell(r["outflow"]), _amount_cell(r["net"])]
                for r in report["rows"]
            ],
            "totals": [_cell("Total"), _cell(""), _cell(str(totals["count"]), amount=True),
                       _amount_cell(totals["inflow"]), _amount_cell(totals["outflow"]),
                       _amount_cell(totals["net"])],
            "empty": "No posted transactions in this month.",
        }
    ]  # fmt: skip
    start = report["period"]["start"]
    return report, {
        "tables": tables,
        "chart": "",
        "summary": f"{company.name} · {start:%B %Y} · {report['currency']}",
    }


def _variance(company, data) -> tuple[dict, dict]:
    report = reconciliation.variance_report(
        bank_account=data["bank_account"], period=data["period"], months=data["months"]
    )
    report = report if isinstance(report, dict) else vars(report)
    periods = report["periods"]
    threshold = report.get("threshold")
    rows = []
    for p in periods:
        variance = p.get("variance")
        over = variance is not None and threshold is not None and abs(variance) > threshold
        rows.append(
            [_cell(f"{p['period']:%Y-%m}"), _amount_cell(p.get("statement_closing")),
             _amount_cell(p.get("book_balance")), _amount_cell(variance),
             _cell("exceeds threshold" if over else (p.get("status") or "").replace("_", " "))]
        )  # fmt: skip
    tables = [
        {
            "id": "variance-report",
            "caption": f"Variance by month (threshold {money(threshold)})",
            "columns": [_col("Month"), _col("Statement closing", True),
                        _col("Book balance", True), _col("Variance", True), _col("Status")],
            "rows": rows,
            "empty": "No months to show.",
        }
    ]  # fmt: skip
    points = [
        Point(f"{p['period']:%b %y}", p["variance"])
        for p in periods
        if p.get("variance") is not None
    ]
    chart = bar_chart(
        points,
        title="Reconciliation variance by month",
        threshold=threshold,
        currency=data["bank_account"].currency,
    )
    return report, {
        "tables": tables,
        "chart": chart,
        "summary": f"{company.name} · {data['bank_account'].name}",
    }


BUILDERS = {
    "cash_position": _cash_position,
    "transfer_tracking": _transfer_tracking,
    "dimensional_analysis": _dimensional,
    "variance": _variance,
}
CSV_VIEWS = {
    "cash_position": api_reports.CashPositionView,
    "transfer_tracking": api_reports.TransferTrackingView,
    "dimensional_analysis": api_reports.DimensionalAnalysisView,
    "variance": api_reports.VarianceReportView,
}


# --- the view --------------------------------------------------------------------------------


def _chosen_company(request, companies: list[Company]) -> Company:
    if not companies:
        raise PermissionDenied
    raw = request.GET.get("company", "")
    if not raw:
        return companies[0]
    for company in companies:
        if str(company.pk) == raw:
            return company
    raise Http404("No such company among yours.")


def report_view(model_admin, request, kind: str):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    meta = BY_KIND[kind]
    companies = list(companies_for(request.user, "banking", write=False).order_by("name"))
    company = _chosen_company(request, companies)
    accounts = BankAccount.objects.filter(company=company).order_by("name")
    raw_account = request.GET.get("bank_account", "")
    if raw_account and not accounts.filter(pk=raw_account if raw_account.isdigit() else 0).exists():
        raise Http404("No such bank account in this company.")
    form_class, required_account = FORMS[kind]
    data = {**_defaults(company, kind, accounts), **request.GET.dict()}
    form = form_class(data, accounts=accounts, required_account=required_account)
    report = layout = None
    error = ""
    if form.is_valid():
        try:
            report, layout = BUILDERS[kind](company, form.cleaned_data)
        except DomainError as refusal:
            error = refusal.message
        if report is not None and request.GET.get("export") == "csv":
            text, filename = CSV_VIEWS[kind].csv_for(report, company.slug)
            response = HttpResponse(text, content_type="text/csv; charset=utf-8")
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
        "chart": (layout or {}).get("chart", ""),
        "summary": (layout or {}).get("summary", ""),
        "chart_style": mark_safe(CHART_STYLE),  # noqa: S308 - a constant of this module
        "error": error,
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
    }
    return TemplateResponse(request, "admin/banking/reports/table.html", context)


__all__ = ["REPORTS", "report_links", "report_urls", "report_view"]
