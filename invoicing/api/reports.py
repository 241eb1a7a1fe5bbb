"""The VAT reports on the API (scope "invoicing": every role reads):

    GET /api/v1/invoicing/reports/sales-register/?from=2025-11-01&to=2025-11-30[&branch=DHK]
    GET /api/v1/invoicing/reports/vat-summary/?month=2025-11[&branch=DHK]

Add `format=csv` (or send Accept: text/csv) for the CSV. Amounts are decimal strings with two
places. Bad input answers 400 with {code, message, fields}, in JSON even when CSV was asked for.
The figures come from invoicing.reports (see there for what counts and when).
"""

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from core.api.reports import ReportAPIView
from core.api.views import COMPANY_HEADER_PARAMETER
from invoicing import reports


def _money():
    return serializers.DecimalField(max_digits=18, decimal_places=2)


# --- queries ----------------------------------------------------------------------------------


class SalesRegisterQuery(serializers.Serializer):
    """`from` and `to` are Python keywords, hence the fields are built in get_fields."""

    def get_fields(self):
        return {
            "from": serializers.DateField(
                required=False, help_text="First day (YYYY-MM-DD); the 1st of this month."
            ),
            "to": serializers.DateField(required=False, help_text="Last day; today."),
            "branch": serializers.CharField(
                required=False, max_length=30, help_text="Only this place-of-supply code."
            ),
        }


class VatSummaryQuery(serializers.Serializer):
    month = serializers.RegexField(
        r"^\d{4}-\d{2}$",
        required=False,
        help_text="YYYY-MM; the previous month (the one whose return is due) when left out.",
        error_messages={"invalid": "Use YYYY-MM, for example 2025-11."},
    )
    branch = serializers.CharField(required=False, max_length=30)


# --- responses --------------------------------------------------------------------------------


class RegisterRowSerializer(serializers.Serializer):
    serial = serializers.IntegerField()
    date = serializers.DateField()
    time = serializers.TimeField(allow_null=True, format="%H:%M")
    entry = serializers.ChoiceField(
        choices=["issued", "void"], help_text="void: an earlier invoice voided in the range."
    )
    form = serializers.CharField(help_text="Mushak form: 6.3, 6.7 or 6.8.")
    kind = serializers.CharField()
    number = serializers.CharField()
    original_number = serializers.CharField(help_text="For notes: the invoice they adjust.")
    invoice_id = serializers.IntegerField()
    customer = serializers.CharField()
    customer_bin = serializers.CharField()
    customer_address = serializers.CharField()
    description = serializers.CharField()
    branch = serializers.CharField()
    value = _money()
    sd = _money()
    vat = _money()
    total = _money()
    vds = _money()


class RegisterTotalsSerializer(serializers.Serializer):
    value = _money()
    sd = _money()
    vat = _money()
    total = _money()
    vds = _money()


class RegisterByKindSerializer(serializers.Serializer):
    invoices = RegisterTotalsSerializer()
    credit_notes = RegisterTotalsSerializer()
    debit_notes = RegisterTotalsSerializer()
    voids = RegisterTotalsSerializer()


class SalesRegisterSerializer(serializers.Serializer):
    report = serializers.CharField()
    company = serializers.CharField()
    company_bin = serializers.CharField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    branch = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    count = serializers.IntegerField()
    rows = RegisterRowSerializer(many=True)
    by_kind = RegisterByKindSerializer()
    totals = RegisterTotalsSerializer()
    void_numbers = serializers.ListField(
        child=serializers.CharField(), help_text="Issued and voided in the range: left out."
    )


class TaxSumsSerializer(serializers.Serializer):
    value = _money()
    sd = _money()
    vat = _money()


class OutputRowSerializer(TaxSumsSerializer):
    category = serializers.CharField(
        help_text="zero_rated, exempt, standard, reduced_<rate>, specific"
    )
    label = serializers.CharField()
    lines = serializers.IntegerField()


class OutputSerializer(serializers.Serializer):
    rows = OutputRowSerializer(many=True)
    totals = TaxSumsSerializer()


class AdjustmentRowSerializer(TaxSumsSerializer):
    adjustment = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()


class AdjustmentsSerializer(serializers.Serializer):
    rows = AdjustmentRowSerializer(many=True)
    totals = TaxSumsSerializer()


class NetSerializer(serializers.Serializer):
    vat = _money()
    sd = _money()
    total = _money()


class VatSummarySerializer(serializers.Serializer):
    report = serializers.CharField()
    company = serializers.CharField()
    company_bin = serializers.CharField()
    month = serializers.CharField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    branch = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    return_due_date = serializers.DateField()
    output = OutputSerializer()
    increasing = AdjustmentsSerializer()
    decreasing = AdjustmentsSerializer()
    net = NetSerializer()
    void_numbers = serializers.ListField(child=serializers.CharField())


# --- views ------------------------------------------------------------------------------------


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


class _VatReportView(ReportAPIView):
    scope = "invoicing"

    def csv(self, report: dict) -> tuple[str, str]:
        return reports.report_csv(report), reports.report_filename(report, self.company.slug)


class SalesRegisterView(_VatReportView):
    """Sales register (Mushak-6.2 style): every tax invoice, credit and debit note of a range."""

    query_class = SalesRegisterQuery
    response_class = SalesRegisterSerializer

    def build(self, query):
        today = self.company.today()
        date_to = query.get("to") or today
        date_from = query.get("from") or date_to.replace(day=1)
        return reports.sales_register(
            company=self.company, date_from=date_from, date_to=date_to, branch=query.get("branch")
        )

    @_schema(
        [
            OpenApiParameter(
                "from", OpenApiTypes.DATE, description="First day; the 1st of the month of 'to'."
            ),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last day; today."),
            OpenApiParameter("branch", str, description="Only this place-of-supply code."),
        ],
        SalesRegisterSerializer,
        "Every approved tax invoice (6.3), credit note (6.7, negative) and debit note (6.8) "
        "issued in the range, in date order with serials, and totals by kind. Invoices issued "
        "and voided in the range are left out (listed in void_numbers); earlier invoices voided "
        "in the range appear negative on the day of the void.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class VatSummaryView(_VatReportView):
    """Monthly VAT summary for the Mushak-9.1 return."""

    query_class = VatSummaryQuery
    response_class = VatSummarySerializer

    def build(self, query):
        month = query.get("month")
        if not month:
            first = self.company.today().replace(day=1)
            month = f"{(first - timedelta(days=1)):%Y-%m}"
        return reports.vat_summary(company=self.company, month=month, branch=query.get("branch"))

    @_schema(
        [
            OpenApiParameter(
                "month", str, description="YYYY-MM; the previous month when left out."
            ),
            OpenApiParameter("branch", str, description="Only this place-of-supply code."),
        ],
        VatSummarySerializer,
        "Output VAT and SD of the month by rate, increasing adjustments (debit notes), "
        "decreasing adjustments (credit notes, voids of earlier months' invoices, VAT deducted "
        "at source by buyers) and the net VAT and SD payable, with the return's due date.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
