"""Serializers for the payroll API.

Output serializers describe the rows; input serializers check the shape of a request (types,
lengths). What a change means (an employee's pay, a period's automation rule, whether a period
may run) is decided by payroll.services, which answer with stable codes
(`automation_rule_unknown_key`, `already_completed`, ...) in the one error shape.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounting.api.serializers import IdField, LedgerDateField
from payroll.models import (
    DeductionType,
    Employee,
    EmployeeDeduction,
    EmployeeEarning,
    OvertimeRule,
    PayRate,
    PayrollPeriod,
    PayrollRun,
    PaySchedule,
    Payslip,
    PayslipLine,
    TaxBracket,
    TaxTable,
    TimeEntry,
)
from payroll.selectors import run_progress

MAX_BULK_TIME_ENTRIES = 20_000


class _CompanyRowMixin(serializers.Serializer):
    shared = serializers.SerializerMethodField(
        help_text="True for statutory rows every company shares (read-only here)."
    )

    def get_shared(self, obj) -> bool:
        return obj.company_id is None


# --- employees ---------------------------------------------------------------------------------


class EmployeeDeductionSerializer(serializers.ModelSerializer):
    deduction_type_code = serializers.CharField(source="deduction_type.code", read_only=True)
    deduction_type_name = serializers.CharField(source="deduction_type.name", read_only=True)

    class Meta:
        model = EmployeeDeduction
        fields = [
            "id",
            "employee",
            "deduction_type",
            "deduction_type_code",
            "deduction_type_name",
            "amount",
            "rate",
            "balance",
            "start_date",
            "end_date",
            "is_active",
        ]
        read_only_fields = ["id"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            # employee and type are fixed once the deduction exists
            fields["employee"].read_only = True
            fields["deduction_type"].read_only = True
        return fields


class EmployeeEarningSerializer(serializers.ModelSerializer):
    earning_type_code = serializers.CharField(source="earning_type.code", read_only=True)
    taxable = serializers.BooleanField(source="earning_type.is_taxable", read_only=True)

    class Meta:
        model = EmployeeEarning
        fields = [
            "id",
            "employee",
            "earning_type",
            "earning_type_code",
            "taxable",
            "period",
            "amount",
            "effective_from",
            "effective_to",
            "memo",
        ]
        read_only_fields = ["id"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["employee"].read_only = True
            fields["earning_type"].read_only = True
            fields["period"].read_only = True
        return fields


class EmployeeSerializer(serializers.ModelSerializer):
    department_code = serializers.CharField(
        source="department.code", read_only=True, allow_null=True
    )
    cost_center_code = serializers.CharField(
        source="cost_center.code", read_only=True, allow_null=True
    )
    deductions = EmployeeDeductionSerializer(many=True, read_only=True)

    class Meta:
        model = Employee
        fields = [
            "id",
            "code",
            "name",
            "email",
            "department",
            "department_code",
            "cost_center",
            "cost_center_code",
            "role",
            "pay_type",
            "annual_salary",
            "hourly_rate",
            "jurisdiction",
            "tax_category",
            "start_date",
            "end_date",
            "bank_name",
            "bank_branch",
            "bank_account_name",
            "bank_account_number",
            "bank_routing_number",
            "deductions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class PayRateSerializer(serializers.ModelSerializer):
    class Meta:
        model = PayRate
        fields = [
            "id",
            "role",
            "jurisdiction",
            "pay_type",
            "annual_salary",
            "hourly_rate",
            "effective_from",
            "effective_to",
        ]
        read_only_fields = ["id"]


# --- time --------------------------------------------------------------------------------------


class TimeEntrySerializer(serializers.ModelSerializer):
    employee_code = serializers.CharField(source="employee.code", read_only=True)
    hours = serializers.DecimalField(max_digits=7, decimal_places=2, min_value=0, max_value=24)

    class Meta:
        model = TimeEntry
        fields = ["id", "employee", "employee_code", "day", "hours", "note"]
        read_only_fields = ["id"]
        validators = []  # (employee, day) is matched by the service: an existing day is replaced

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list):
            fields["employee"].read_only = True
            fields["day"].read_only = True
        return fields


class TimeEntryInputSerializer(serializers.Serializer):
    employee = serializers.CharField(
        max_length=30,
        required=False,
        help_text="The employee's code (an all-digit code is a code, never an id).",
    )
    employee_id = serializers.IntegerField(
        required=False, help_text="The employee's id, instead of (or matching) the code."
    )
    day = LedgerDateField()
    hours = serializers.DecimalField(max_digits=7, decimal_places=2, min_value=0, max_value=24)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if not attrs.get("employee") and attrs.get("employee_id") is None:
            raise serializers.ValidationError(
                {"employee": ["Give the employee's code (employee) or id (employee_id)."]}
            )
        return attrs


class TimeEntryBulkSerializer(serializers.Serializer):
    entries = TimeEntryInputSerializer(many=True, allow_empty=False)

    def validate_entries(self, value):
        if len(value) > MAX_BULK_TIME_ENTRIES:
            raise serializers.ValidationError(
                f"At most {MAX_BULK_TIME_ENTRIES} entries per request."
            )
        return value


class TimeEntryBulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


# --- reference data ----------------------------------------------------------------------------


class TaxBracketSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaxBracket
        fields = ["lower", "upper", "rate"]


class TaxTableSerializer(_CompanyRowMixin, serializers.ModelSerializer):
    brackets = TaxBracketSerializer(
        many=True,
        required=False,
        help_text="Half-open bands: lower inclusive, upper exclusive (empty upper: no limit). "
        "Given on a change, they replace the table's brackets.",
    )

    class Meta:
        model = TaxTable
        fields = [
            "id",
            "shared",
            "jurisdiction",
            "category",
            "name",
            "effective_from",
            "effective_to",
            "annual_exemption",
            "source",
            "is_active",
            "brackets",
        ]
        read_only_fields = ["id"]


class OvertimeRuleSerializer(_CompanyRowMixin, serializers.ModelSerializer):
    class Meta:
        model = OvertimeRule
        fields = [
            "id",
            "shared",
            "jurisdiction",
            "name",
            "daily_threshold",
            "daily_double_threshold",
            "weekly_threshold",
            "seventh_day",
            "seventh_day_double_after",
            "weekly_excludes_daily_ot",
            "greater_of_daily_or_weekly",
            "daily_requires_rate_below_min_wage_multiple",
            "ot_multiplier",
            "dt_multiplier",
            "minimum_wage",
            "effective_from",
            "effective_to",
            "source",
            "is_active",
        ]
        read_only_fields = ["id"]


class DeductionTypeSerializer(_CompanyRowMixin, serializers.ModelSerializer):
    class Meta:
        model = DeductionType
        fields = [
            "id",
            "shared",
            "code",
            "name",
            "timing",
            "calculation",
            "default_amount",
            "default_rate",
            "annual_cap",
            "percent_of",
            "employer_rate",
            "has_balance",
            "is_active",
            "source",
        ]
        read_only_fields = ["id"]


# --- schedules, periods, runs ------------------------------------------------------------------


class AutomationRuleField(serializers.JSONField):
    """Exactly one of {"run_on_date": "YYYY-MM-DD"}, {"days_before_end": N},
    {"cron": "m h dom mon dow"}; checked by the service (payroll.automation)."""


AUTOMATION_RULE_SCHEMA = {
    "type": "object",
    "description": 'Exactly one of {"run_on_date": "YYYY-MM-DD"}, {"days_before_end": N} or '
    '{"cron": "m h dom mon dow"} (cron read in the company\'s time zone).',
    "properties": {
        "run_on_date": {"type": "string", "format": "date"},
        "days_before_end": {"type": "integer", "minimum": 0},
        "cron": {"type": "string", "example": "0 6 25 * *"},
    },
    "maxProperties": 1,
}


@extend_schema_field(AUTOMATION_RULE_SCHEMA)
class _RuleField(AutomationRuleField):
    pass


class PayScheduleSerializer(serializers.ModelSerializer):
    automation_rule = _RuleField(required=False)

    class Meta:
        model = PaySchedule
        fields = [
            "id",
            "name",
            "frequency",
            "anchor_date",
            "pay_day_offset",
            "automation_enabled",
            "automation_rule",
            "is_active",
        ]
        read_only_fields = ["id"]


class GeneratePeriodsSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=60, default=3)
    activate = serializers.BooleanField(default=True)


class RunProgressSerializer(serializers.Serializer):
    status = serializers.CharField()
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    chunks_total = serializers.IntegerField()


class PayrollRunSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    journal_entry_reference = serializers.CharField(
        source="journal_entry.reference", read_only=True, allow_null=True
    )

    class Meta:
        model = PayrollRun
        fields = [
            "id",
            "period",
            "attempt",
            "trigger",
            "forced",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "progress",
            "payslip_count",
            "warning_count",
            "gross_total",
            "taxes_total",
            "deductions_total",
            "employer_total",
            "net_total",
            "journal_entry",
            "journal_entry_reference",
            "error",
            "warnings",
        ]
        read_only_fields = fields

    @extend_schema_field(RunProgressSerializer)
    def get_progress(self, run) -> dict:
        return run_progress(run)


class PayrollPeriodSerializer(serializers.ModelSerializer):
    automation_rule = _RuleField(required=False)
    next_run = serializers.SerializerMethodField(
        help_text="When the automation rule makes the period due (date or date-time), if on."
    )
    schedule = serializers.PrimaryKeyRelatedField(
        queryset=PaySchedule.objects.all(), required=False, allow_null=True
    )
    start_date = LedgerDateField()
    end_date = LedgerDateField()
    pay_date = LedgerDateField(required=False)

    class Meta:
        model = PayrollPeriod
        fields = [
            "id",
            "name",
            "schedule",
            "start_date",
            "end_date",
            "period_type",
            "pay_date",
            "status",
            "automation_enabled",
            "automation_rule",
            "next_run",
            "processing_started_at",
            "completed_at",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "processing_started_at",
            "completed_at",
            "last_error",
            "created_at",
            "updated_at",
        ]

    def get_next_run(self, period) -> str | None:
        value = period.automation_next_run()
        return value.isoformat() if value is not None else None


class PeriodCreateSerializer(PayrollPeriodSerializer):
    activate = serializers.BooleanField(
        default=False, write_only=True, help_text="Create the period active (ready to run)."
    )

    class Meta(PayrollPeriodSerializer.Meta):
        fields = [*PayrollPeriodSerializer.Meta.fields, "activate"]


class RunRequestSerializer(serializers.Serializer):
    force = serializers.BooleanField(
        default=False,
        help_text="Run now even if the automation rule does not make the period due yet. "
        "A completed period is never paid again (reopen it first).",
    )


class ReopenSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class PreviewSerializer(serializers.Serializer):
    period_id = serializers.IntegerField()
    period = serializers.CharField()
    employees = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.CharField())
    warnings = serializers.IntegerField()
    gross = serializers.DecimalField(max_digits=18, decimal_places=2)
    taxes = serializers.DecimalField(max_digits=18, decimal_places=2)
    deductions = serializers.DecimalField(max_digits=18, decimal_places=2)
    employer = serializers.DecimalField(max_digits=18, decimal_places=2)
    net = serializers.DecimalField(max_digits=18, decimal_places=2)


# --- payslips ----------------------------------------------------------------------------------


class PayslipLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = PayslipLine
        fields = [
            "line_no",
            "kind",
            "code",
            "description",
            "quantity",
            "rate",
            "amount",
            "taxable",
            "account_role",
        ]
        read_only_fields = fields


class PayslipSerializer(serializers.ModelSerializer):
    employee_code = serializers.CharField(source="employee.code", read_only=True)
    employee_name = serializers.CharField(source="employee.name", read_only=True)
    lines = PayslipLineSerializer(many=True, read_only=True)
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Payslip
        fields = [
            "id",
            "employee",
            "employee_code",
            "employee_name",
            "period",
            "run",
            "period_start",
            "period_end",
            "pay_date",
            "currency",
            "status",
            "pay_type",
            "department",
            "cost_center",
            "regular_hours",
            "overtime_hours",
            "double_time_hours",
            "gross",
            "taxable",
            "income_tax",
            "other_taxes",
            "taxes",
            "pre_tax_deductions",
            "post_tax_deductions",
            "deductions",
            "employer_contributions",
            "net",
            "ytd_gross",
            "ytd_taxable",
            "ytd_taxes",
            "ytd_income_tax",
            "ytd_deductions",
            "ytd_net",
            "warnings",
            "carried",
            "lines",
            "pdf_url",
            "created_at",
            "emailed_at",
            "voided_at",
        ]
        read_only_fields = fields

    def get_pdf_url(self, payslip) -> str:
        return f"/api/v1/payroll/payslips/{payslip.pk}/pdf/"


__all__ = ["IdField"]
