"""The banking reports on the API (scope "banking": every role reads), from the banking guide:

    GET /api/v1/banking/reconciliation?bank_account_id=1&period=2026-08
    GET /api/v1/banking/cash-position?[bank_account_id=1&]as_of=2026-08-31[&by=cost_center]
    GET /api/v1/banking/transfer-tracking?[bank_account_id=1&]period=2026-08
    GET /api/v1/banking/dimensional-analysis?bank_account_id=1&period=2026-08&dimension=project
    GET /api/v1/banking/variance-report?bank_account_id=1&period=2026-08[&months=12]

(with or without a trailing slash). Add `format=csv` (or send Accept: text/csv) for the CSV.
Amounts are decimal strings with two places. A bad parameter answers 400 with its own code
(`invalid_period`, `invalid_date`, `invalid_dimension`, `bank_account_required`) and the
field; another company's bank account answers 404, as if it did not exist. The figures come
from banking.selectors and banking.reconciliation.
"""

from __future__ import annotations

import csv
import io

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from banking import reconciliation, selectors
from banking.api.serializers import BankReconciliationSerializer
from banking.models import BankAccount, BankReconciliation
from banking.periods import parse_day, parse_month
from core.api.base import TenantAPIView
from core.api.reports import ReportAPIView
from core.api.views import COMPANY_HEADER_PARAMETER
from core.errors import ValidationFailed

DIMENSIONS = ("branch", "cost_center", "project", "department")


def _money(**kwargs):
    return serializers.DecimalField(max_digits=20, decimal_places=2, **kwargs)


def _refuse(field: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, fields={field: [message]})


# --- queries ----------------------------------------------------------------------------------


class _Query(serializers.Serializer):
    """Every parameter is read as text and checked here, so each refusal carries its own code
    and names its field (`invalid_period` on `period`...)."""

    bank_account_required = False

    bank_account_id = serializers.CharField(required=False, allow_blank=True)
    period = serializers.CharField(required=False, allow_blank=True)

    def validate_bank_account_id(self, value):
        if value in (None, ""):
            return None
        if not value.isdigit() or int(value) > 2**63 - 1:
            raise _refuse("bank_account_id", "invalid_bank_account", "A bank account id.")
        account = BankAccount.objects.filter(company=self.context["company"], pk=int(value)).first()
        if account is None:
            raise NotFound("No such bank account.")
        return account

    def validate_period(self, value):
        if value in (None, ""):
            return None
        try:
            return parse_month(value)
        except ValueError as exc:
            raise _refuse("period", "invalid_period", f"Period: {exc}") from None

    def validate(self, data):
        if self.bank_account_required and data.get("bank_account_id") is None:
            raise _refuse("bank_account_id", "bank_account_required", "bank_account_id: required.")
        if data.get("period") is None:
            data["period"] = self.context["company"].today().replace(day=1)
        return data


class AccountPeriodQuery(_Query):
    bank_account_required = True


class ReconciliationCloseInput(AccountPeriodQuery):
    """The body of POST reconciliation/close: both fields required."""

    period = serializers.CharField()


class CashPositionQuery(_Query):
    as_of = serializers.CharField(required=False, allow_blank=True)
    by = serializers.CharField(required=False, allow_blank=True)

    def validate_as_of(self, value):
        if value in (None, ""):
            return None
        try:
            return parse_day(value)
        except ValueError as exc:
            raise _refuse("as_of", "invalid_date", f"as_of: {exc}") from None

    def validate_by(self, value):
        if value in (None, ""):
            return None
        if value not in DIMENSIONS:
            raise _refuse("by", "invalid_dimension", f"by: one of {', '.join(DIMENSIONS)}.")
        return value

    def validate(self, data):
        explicit_period = data.get("period") is not None
        data = super().validate(data)
        if data.get("as_of") is None:
            today = self.context["company"].today()
            if explicit_period:
                last = selectors.period_bounds(data["period"])[1]
                data["as_of"] = min(last, today) if last >= today.replace(day=1) else last
            else:
                data["as_of"] = today
        elif not explicit_period:
            data["period"] = data["as_of"].replace(day=1)
        return data


class DimensionQuery(AccountPeriodQuery):
    dimension = serializers.CharField(required=False, allow_blank=True)

    def validate_dimension(self, value):
        if value in (None, ""):
            return "cost_center"
        if value not in DIMENSIONS:
            raise _refuse(
                "dimension", "invalid_dimension", f"dimension: one of {', '.join(DIMENSIONS)}."
            )
        return value

    def validate(self, data):
        # DRF calls validate_dimension only when the parameter is sent: the default is here.
        data = super().validate(data)
        data["dimension"] = data.get("dimension") or "cost_center"
        return data


class VarianceQuery(AccountPeriodQuery):
    months = serializers.IntegerField(
        required=False, min_value=1, max_value=60, help_text="How many months up to `period`."
    )


# --- responses --------------------------------------------------------------------------------


class PeriodSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()


class SeriesPointSerializer(serializers.Serializer):
    date = serializers.DateField()
    inflow = _money()
    outflow = _money()
    balance = _money()


class PositionAccountSerializer(serializers.Serializer):
    bank_account_id = serializers.IntegerField()
    name = serializers.CharField()
    currency = serializers.CharField()
    ledger_account = serializers.CharField()
    opening_balance = _money()
    opening_date = serializers.DateField(allow_null=True)
    balance = _money()
    period_inflow = _money()
    period_outflow = _money()
    series = SeriesPointSerializer(many=True, help_text="Closing balance of each day.")


class CurrencyTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    balance = _money()


class BreakdownSerializer(serializers.Serializer):
    bank_account_id = serializers.IntegerField()
    key = serializers.CharField(allow_null=True, help_text="The dimension's id (or branch).")
    code = serializers.CharField()
    name = serializers.CharField()
    opening = _money()
    inflow = _money()
    outflow = _money()
    balance = _money()


class CashPositionSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    period = PeriodSerializer()
    accounts = PositionAccountSerializer(many=True)
    totals = CurrencyTotalSerializer(many=True, help_text="Per currency, never mixed.")
    by = serializers.CharField(allow_null=True)
    breakdown = BreakdownSerializer(many=True, required=False)


class CountAmountSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    amount = _money()


class TransferSummarySerializer(serializers.Serializer):
    initiated = CountAmountSerializer()
    in_transit = CountAmountSerializer()
    settled = CountAmountSerializer()
    cancelled = CountAmountSerializer()


class AgeingSerializer(serializers.Serializer):
    bucket = serializers.CharField(help_text="Days since initiation: 0-2, 3-7, 8-30, >30.")
    initiated = CountAmountSerializer()
    in_transit = CountAmountSerializer()


class TrackedTransferSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField()
    from_account_id = serializers.IntegerField()
    from_account = serializers.CharField()
    to_account_id = serializers.IntegerField()
    to_account = serializers.CharField()
    amount = _money()
    currency = serializers.CharField()
    received = _money()
    in_transit = _money()
    status = serializers.CharField(help_text="initiated, in_transit, settled or cancelled.")
    date = serializers.DateField()
    expected_settlement_date = serializers.DateField(allow_null=True)
    settled_on = serializers.DateField(allow_null=True)
    age_days = serializers.IntegerField(allow_null=True)
    bucket = serializers.CharField(allow_null=True)
    overdue = serializers.BooleanField()
    days_to_settle = serializers.IntegerField(allow_null=True)


class TransferTrackingSerializer(serializers.Serializer):
    period = PeriodSerializer()
    as_of = serializers.DateField()
    summary = TransferSummarySerializer()
    ageing = AgeingSerializer(many=True)
    transfers = TrackedTransferSerializer(many=True)


class DimensionRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    name = serializers.CharField()
    inflow = _money()
    outflow = _money()
    net = _money()
    count = serializers.IntegerField()


class DimensionTotalsSerializer(serializers.Serializer):
    inflow = _money()
    outflow = _money()
    net = _money()
    count = serializers.IntegerField()


class DimensionalAnalysisSerializer(serializers.Serializer):
    bank_account_id = serializers.IntegerField()
    currency = serializers.CharField()
    dimension = serializers.CharField()
    period = PeriodSerializer()
    rows = DimensionRowSerializer(many=True)
    totals = DimensionTotalsSerializer()


class OutstandingItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    kind = serializers.CharField()
    direction = serializers.CharField()
    amount = _money()
    reference = serializers.CharField()
    counterparty = serializers.CharField()
    outstanding = _money(help_text="The part not yet on a statement by the month's end.")


class UnmatchedLineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    amount = _money(help_text="Signed: + money in, - money out.")
    bank_id = serializers.CharField()
    reference = serializers.CharField()
    counterparty = serializers.CharField()
    description = serializers.CharField()
    unmatched = _money(help_text="The part the books did not hold by the month's end.")


class ReconciliationReportSerializer(serializers.Serializer):
    bank_account_id = serializers.IntegerField()
    bank_account = serializers.CharField()
    currency = serializers.CharField()
    period = serializers.DateField(help_text="The first day of the month.")
    period_end = serializers.DateField()
    statement_opening = _money(allow_null=True)
    statement_closing = _money(allow_null=True, help_text="Null until a statement covers it.")
    book_balance = _money()
    outstanding_deposits = _money(help_text="In the books, not yet on a statement.")
    outstanding_payments = _money(help_text="Paid in the books, not yet on a statement.")
    adjusted_statement_balance = _money(
        allow_null=True, help_text="Statement closing + outstanding deposits - payments."
    )
    variance = _money(allow_null=True, help_text="Adjusted statement balance - book balance.")
    unmatched_statement_lines = serializers.IntegerField()
    unmatched_received = _money()
    unmatched_paid = _money()
    outstanding_deposit_items = OutstandingItemSerializer(many=True)
    outstanding_payment_items = OutstandingItemSerializer(many=True)
    unmatched_lines = UnmatchedLineSerializer(many=True)
    reconciliation_id = serializers.IntegerField(allow_null=True)
    threshold = _money()
    alert_threshold = _money()
    within_threshold = serializers.BooleanField(allow_null=True)
    status = serializers.CharField(help_text="open, reconciled or exceeds_threshold.")
    reconciled_by = serializers.IntegerField(allow_null=True)
    reconciled_at = serializers.DateTimeField(allow_null=True)


class VariancePeriodSerializer(serializers.Serializer):
    period = serializers.DateField()
    statement_closing = _money(allow_null=True)
    book_balance = _money()
    outstanding_deposits = _money()
    outstanding_payments = _money()
    variance = _money(allow_null=True)
    status = serializers.CharField()


class VarianceReportSerializer(serializers.Serializer):
    bank_account_id = serializers.IntegerField()
    bank_account = serializers.CharField()
    currency = serializers.CharField()
    threshold = _money()
    alert_threshold = _money()
    periods = VariancePeriodSerializer(many=True, help_text="Oldest first.")


# --- views ------------------------------------------------------------------------------------


ACCOUNT = OpenApiParameter(
    "bank_account_id", OpenApiTypes.INT, description="The bank account (of your company)."
)
PERIOD = OpenApiParameter("period", str, description="YYYY-MM; the current month when left out.")


def _schema(parameters, response, description):
    return extend_schema(
        parameters=[COMPANY_HEADER_PARAMETER, *parameters],
        responses={
            (200, "application/json"): response,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="With ?format=csv: the report as CSV."
            ),
        },
        description=description,
    )


def _csv_text(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _as_dict(report) -> dict:
    return report if isinstance(report, dict) else vars(report)


class _BankingReportView(ReportAPIView):
    scope = "banking"
    name = ""

    def csv(self, report: dict) -> tuple[str, str]:
        return self.csv_for(report, self.company.slug)

    @classmethod
    def csv_for(cls, report: dict, slug: str) -> tuple[str, str]:
        """(CSV text, file name) of a built report; the admin's export uses it too."""
        header, rows, suffix = cls.csv_rows(report)
        return _csv_text(header, rows), f"{slug}-{cls.name}-{suffix}.csv"

    @classmethod
    def csv_rows(cls, report: dict) -> tuple[list, list, str]:
        raise NotImplementedError


class ReconciliationReportView(_BankingReportView):
    """The month's reconciliation of one bank account."""

    name = "reconciliation"
    query_class = AccountPeriodQuery
    response_class = ReconciliationReportSerializer

    def build(self, query):
        return _as_dict(
            reconciliation.reconciliation_report(
                bank_account=query["bank_account_id"], period=query["period"]
            )
        )

    @classmethod
    def csv_rows(cls, report):
        plain = [
            name
            for name, field in ReconciliationReportSerializer().fields.items()
            if name in report and not isinstance(field, serializers.ListSerializer)
        ]
        rows = [[name, report[name]] for name in plain]
        rows += [
            ["outstanding", i["date"], i["reference"], i["outstanding"]]
            for i in report.get("outstanding_deposit_items", [])
            + report.get("outstanding_payment_items", [])
        ]
        rows += [["unmatched line", u["date"], u["reference"] or u["description"], u["unmatched"]]
                 for u in report.get("unmatched_lines", [])]  # fmt: skip
        return ["figure", "value"], rows, f"{report['period']:%Y-%m}"

    @_schema(
        [ACCOUNT, PERIOD],
        ReconciliationReportSerializer,
        "Statement opening and closing balance, book balance, outstanding deposits and "
        "payments (book transactions not yet matched to a statement line), and the variance "
        "checked against the threshold (BANKING_RECONCILIATION_THRESHOLD or the company's).",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class CashPositionView(_BankingReportView):
    """Book balance per bank account at a date, with its daily series, optionally split by
    a dimension."""

    name = "cash-position"
    query_class = CashPositionQuery
    response_class = CashPositionSerializer

    def build(self, query):
        return selectors.cash_position(
            company=self.company,
            bank_account=query.get("bank_account_id"),
            as_of=query["as_of"],
            by=query.get("by"),
            period=query["period"],
        )

    @classmethod
    def csv_rows(cls, report):
        if report.get("breakdown"):
            names = {row["bank_account_id"]: row["name"] for row in report["accounts"]}
            rows = [
                [names[r["bank_account_id"]], r["code"], r["name"], r["opening"], r["inflow"],
                 r["outflow"], r["balance"]]
                for r in report["breakdown"]
            ]  # fmt: skip
            header = ["account", "code", report["by"], "opening", "inflow", "outflow", "balance"]
        else:
            rows = [
                [a["name"], a["currency"], point["date"], point["inflow"], point["outflow"],
                 point["balance"]]
                for a in report["accounts"]
                for point in a["series"]
            ]  # fmt: skip
            header = ["account", "currency", "date", "inflow", "outflow", "balance"]
        return header, rows, report["as_of"].isoformat()

    @_schema(
        [
            ACCOUNT,
            OpenApiParameter("as_of", OpenApiTypes.DATE, description="The day; today."),
            PERIOD,
            OpenApiParameter(
                "by", str, enum=list(DIMENSIONS), description="Split each balance by a dimension."
            ),
        ],
        CashPositionSerializer,
        "Book balance (opening balance plus posted transactions) of each bank account, or of "
        "the one asked for, at the end of `as_of`, the daily closing balances of the period for "
        "a chart, and totals per currency. With `by`, each balance is split by branch, cost "
        "center, project or department.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class TransferTrackingView(_BankingReportView):
    """Transfers of the period by status, and the open ones aged."""

    name = "transfer-tracking"
    query_class = _Query
    response_class = TransferTrackingSerializer

    def build(self, query):
        return selectors.transfer_tracking(
            company=self.company,
            bank_account=query.get("bank_account_id"),
            period=query["period"],
        )

    @classmethod
    def csv_rows(cls, report):
        keys = ["id", "reference", "from_account", "to_account", "amount", "currency",
                "received", "in_transit", "status", "date", "expected_settlement_date",
                "settled_on", "age_days", "bucket", "overdue"]  # fmt: skip
        rows = [[row[key] for key in keys] for row in report["transfers"]]
        return keys, rows, f"{report['period']['start']:%Y-%m}"

    @_schema(
        [ACCOUNT, PERIOD],
        TransferTrackingSerializer,
        "Transfers between own accounts initiated in the period, plus those still open from "
        "before: count and amount per status (initiated, in transit, settled, cancelled), each "
        "transfer with what arrived and its age, and the open ones in ageing buckets (0-2, 3-7, "
        "8-30 and over 30 days).",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DimensionalAnalysisView(_BankingReportView):
    """Inflow, outflow and net of one bank account per value of a dimension."""

    name = "dimensional-analysis"
    query_class = DimensionQuery
    response_class = DimensionalAnalysisSerializer

    def build(self, query):
        return selectors.dimensional_analysis(
            bank_account=query["bank_account_id"],
            period=query["period"],
            dimension=query["dimension"],
        )

    @classmethod
    def csv_rows(cls, report):
        rows = [[r["code"], r["name"], r["inflow"], r["outflow"], r["net"], r["count"]]
                for r in report["rows"]]  # fmt: skip
        header = ["code", report["dimension"], "inflow", "outflow", "net", "count"]
        return header, rows, f"{report['period']['start']:%Y-%m}"

    @_schema(
        [
            ACCOUNT,
            PERIOD,
            OpenApiParameter(
                "dimension", str, enum=list(DIMENSIONS), description="cost_center when left out."
            ),
        ],
        DimensionalAnalysisSerializer,
        "Posted inflow, outflow and net of the bank account in the month per branch, cost "
        "center, project or department, largest movement first, with totals.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class VarianceReportView(_BankingReportView):
    """The reconciliation variance month by month, against the threshold."""

    name = "variance-report"
    query_class = VarianceQuery
    response_class = VarianceReportSerializer

    def build(self, query):
        kwargs = {"bank_account": query["bank_account_id"], "period": query["period"]}
        if query.get("months"):
            kwargs["months"] = query["months"]
        return _as_dict(reconciliation.variance_report(**kwargs))

    @classmethod
    def csv_rows(cls, report):
        rows = [[f"{p['period']:%Y-%m}", p["statement_closing"], p["book_balance"],
                 p["variance"], p.get("status", "")] for p in report["periods"]]  # fmt: skip
        header = ["period", "statement_closing", "book_balance", "variance", "status"]
        return (
            header,
            rows,
            f"{report['periods'][-1]['period']:%Y-%m}" if report["periods"] else "none",
        )

    @_schema(
        [
            ACCOUNT,
            PERIOD,
            OpenApiParameter("months", OpenApiTypes.INT, description="Months up to `period`."),
        ],
        VarianceReportSerializer,
        "Statement closing balance, book balance and variance for each month up to `period`, "
        "with the threshold, for the variance chart.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- signing a month off ----------------------------------------------------------------------


class ReconciliationCloseView(TenantAPIView):
    """POST /api/v1/banking/reconciliation/close {bank_account_id, period}: sign the month off
    (banking.reconciliation.reconciliation_close). Writers only."""

    scope = "banking"

    @extend_schema(
        parameters=[COMPANY_HEADER_PARAMETER],
        request=ReconciliationCloseInput,
        responses={200: BankReconciliationSerializer},
        description="Sign the month's reconciliation off (status reconciled, who and when). "
        "409 no_statement until a statement covers the month's end; 409 "
        "variance_exceeds_threshold when |variance| is above the threshold.",
    )
    def post(self, request, *args, **kwargs):
        payload = ReconciliationCloseInput(data=request.data, context={"company": self.company})
        payload.is_valid(raise_exception=True)
        row = reconciliation.reconciliation_close(
            actor=request.user,
            bank_account=payload.validated_data["bank_account_id"],
            period=payload.validated_data["period"],
        )
        return Response(BankReconciliationSerializer(row).data)


class ReconciliationListView(TenantAPIView):
    """GET /api/v1/banking/reconciliations?bank_account_id=&status=: the stored monthly
    reconciliations (as the reports and sign-offs left them), newest month first."""

    scope = "banking"

    @extend_schema(
        parameters=[
            COMPANY_HEADER_PARAMETER,
            OpenApiParameter(
                "bank_account_id", OpenApiTypes.INT, description="Only this bank account."
            ),
            OpenApiParameter("status", str, description="open, reconciled or exceeds_threshold."),
        ],
        responses={200: BankReconciliationSerializer(many=True)},
        description="The company's monthly bank reconciliations, newest month first (at most "
        "240 rows: twenty years of one account).",
    )
    def get(self, request, *args, **kwargs):
        query = _Query(
            data={"bank_account_id": request.query_params.get("bank_account_id", "")},
            context={"company": self.company},
        )
        query.is_valid(raise_exception=True)
        rows = BankReconciliation.objects.filter(company=self.company)
        if query.validated_data.get("bank_account_id") is not None:
            rows = rows.filter(bank_account=query.validated_data["bank_account_id"])
        wanted = request.query_params.get("status")
        if wanted:
            rows = rows.filter(status=wanted)
        rows = rows.order_by("-period", "bank_account_id")[:240]
        return Response(BankReconciliationSerializer(rows, many=True).data)
