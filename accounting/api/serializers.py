"""Serializers for the ledger API.

Output serializers describe the rows; input serializers check only the shape of a request (types,
lengths, unknown keys). What a posting means (balance, accounts, periods, amounts) is decided by
accounting.services, which answer with stable codes (`unbalanced`, `period_locked`...).
"""

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRole,
    AccountRoleName,
    CostCenter,
    Department,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Project,
)
from accounting.services import YEAR_END_CLOSE
from core.errors import ValidationFailed

MAX_BULK_ENTRIES = 5_000
# Ids beyond a 64-bit integer are no row's id; refusing them here keeps the database driver from
# failing on them.
MAX_ID = 2**63 - 1
# Amounts below 10^16 (the services' limit); a larger one is refused here, before any
# arithmetic on it.
AMOUNT_DIGITS = 16
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)


class IdField(serializers.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class LedgerDateField(serializers.DateField):
    """A business date between 1900-01-01 and 2999-12-31: fiscal-year arithmetic on the
    extremes of Python's calendar would overflow, and no ledger needs them."""

    default_error_messages = {
        "out_of_range": f"Dates run from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}."
    }

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not FIRST_DAY <= day <= LAST_DAY:
            self.fail("out_of_range")
        return day


# --- chart of accounts and dimensions ----------------------------------------------------------


class AccountSerializer(serializers.ModelSerializer):
    parent_code = serializers.CharField(source="parent.code", read_only=True, allow_null=True)
    roles = serializers.SerializerMethodField(
        help_text="Account roles mapped to this account (set them at account-roles)."
    )

    class Meta:
        model = Account
        fields = [
            "id",
            "code",
            "name",
            "type",
            "parent",
            "parent_code",
            "is_postable",
            "is_active",
            "description",
            "roles",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    @extend_schema_field(
        serializers.ListField(child=serializers.ChoiceField(choices=AccountRoleName.choices))
    )
    def get_roles(self, account: Account) -> list[str]:
        return [mapping.role for mapping in account.roles.all()]


class AccountRoleSerializer(serializers.ModelSerializer):
    role_label = serializers.CharField(source="get_role_display", read_only=True)
    account_code = serializers.CharField(source="account.code", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)

    class Meta:
        model = AccountRole
        fields = ["id", "role", "role_label", "account", "account_code", "account_name"]
        read_only_fields = ["id"]


class _DimensionSerializer(serializers.ModelSerializer):
    class Meta:
        fields = ["id", "code", "name", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]


class CostCenterSerializer(_DimensionSerializer):
    class Meta(_DimensionSerializer.Meta):
        model = CostCenter


class ProjectSerializer(_DimensionSerializer):
    class Meta(_DimensionSerializer.Meta):
        model = Project


class DepartmentSerializer(_DimensionSerializer):
    class Meta(_DimensionSerializer.Meta):
        model = Department


# --- fiscal years and periods ------------------------------------------------------------------


class FiscalYearSerializer(serializers.ModelSerializer):
    closing_entry_reference = serializers.CharField(
        source="closing_entry.reference", read_only=True, allow_null=True
    )
    closed_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = FiscalYear
        fields = [
            "id",
            "name",
            "start_date",
            "end_date",
            "status",
            "closing_entry",
            "closing_entry_reference",
            "closed_at",
            "closed_by",
        ]
        read_only_fields = fields


class FiscalYearOpenSerializer(serializers.Serializer):
    containing = LedgerDateField(
        help_text="Any date of the year to open; the company's fiscal year start month decides "
        "where the year begins and ends."
    )


class AccountingPeriodSerializer(serializers.ModelSerializer):
    fiscal_year_name = serializers.CharField(source="fiscal_year.name", read_only=True)
    status_changed_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = AccountingPeriod
        fields = [
            "id",
            "fiscal_year",
            "fiscal_year_name",
            "number",
            "label",
            "start_date",
            "end_date",
            "status",
            "status_changed_at",
            "status_changed_by",
        ]
        read_only_fields = fields


# --- journal entries: output -------------------------------------------------------------------


class JournalLineSerializer(serializers.ModelSerializer):
    account_code = serializers.CharField(source="account.code", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)

    class Meta:
        model = JournalLine
        fields = [
            "line_no",
            "account",
            "account_code",
            "account_name",
            "debit",
            "credit",
            "cost_center",
            "project",
            "department",
            "memo",
        ]
        read_only_fields = fields


class JournalEntrySerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True, help_text="JE/<fiscal year>/<number>.")
    fiscal_year_name = serializers.CharField(source="fiscal_year.name", read_only=True)
    reversal_of_reference = serializers.CharField(
        source="reversal_of.reference", read_only=True, allow_null=True
    )
    reversed_by = serializers.IntegerField(
        source="reversed_by.pk", read_only=True, default=None, allow_null=True
    )
    reversed_by_reference = serializers.CharField(
        source="reversed_by.reference", read_only=True, default=None, allow_null=True
    )
    lines = JournalLineSerializer(many=True, read_only=True)

    class Meta:
        model = JournalEntry
        fields = [
            "id",
            "reference",
            "fiscal_year",
            "fiscal_year_name",
            "number",
            "period",
            "date",
            "memo",
            "source_type",
            "source_id",
            "idempotency_key",
            "total",
            "status",
            "reversal_of",
            "reversal_of_reference",
            "reversal_reason",
            "reversed_by",
            "reversed_by_reference",
            "posted_by_label",
            "posted_at",
            "entry_hash",
            "lines",
        ]
        read_only_fields = fields


# --- journal entries: input --------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "pattern": r"^\d+(\.\d{1,2})?$",
        "example": "100.00",
        "description": "A positive amount with at most two decimals. JSON numbers are read "
        "exactly (100.10 stays 100.10), but a string is the portable choice.",
    }
)
class AmountField(serializers.Field):
    """Passes an amount through unchanged for the service to check (decimals, sign, size), so
    nothing is rounded on the way. The API's JSON parser reads numbers as Decimal, not float."""

    default_error_messages = {
        "invalid": 'An amount is a decimal string such as "100.00" (or a JSON number).'
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int | Decimal):
            self.fail("invalid")
        try:
            value = Decimal(str(data).strip())
        except InvalidOperation:
            return data  # the service answers invalid_amount, naming the line
        if value.is_finite() and value and value.adjusted() >= AMOUNT_DIGITS:
            raise ValidationFailed(
                f"The amount {data} is too large: amounts stay below 10^{AMOUNT_DIGITS}.",
                code="invalid_amount",
                fields={self.field_name: ["Too large."]},
            )
        return data

    def to_representation(self, value):
        return str(value)


class JournalLineInputSerializer(serializers.Serializer):
    account = IdField(
        required=False, allow_null=True, help_text="Account id; or give account_code."
    )
    account_code = serializers.CharField(required=False, max_length=20)
    account_role = serializers.ChoiceField(
        choices=AccountRoleName.choices,
        required=False,
        help_text="Post to the account mapped to this role instead of naming one.",
    )
    debit = AmountField(required=False, allow_null=True)
    credit = AmountField(required=False, allow_null=True)
    cost_center = IdField(required=False, allow_null=True)
    project = IdField(required=False, allow_null=True)
    department = IdField(required=False, allow_null=True)
    memo = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class JournalEntryPostSerializer(serializers.Serializer):
    date = LedgerDateField()
    memo = serializers.CharField(required=False, allow_blank=True, max_length=500)
    source_type = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=50,
        help_text="What posted it; 'manual' when left out.",
    )
    source_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    idempotency_key = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=150,
        help_text="A retry with the same key and content returns the first entry; with other "
        "content it answers 409 idempotency_conflict. The Idempotency-Key header works too.",
    )
    lines = JournalLineInputSerializer(many=True, allow_empty=True)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate_source_type(self, value: str) -> str:
        if value == YEAR_END_CLOSE:
            raise serializers.ValidationError(
                f"'{YEAR_END_CLOSE}' is reserved for the year-end close "
                "(POST fiscal-years/{id}/close/)."
            )
        return value


class JournalEntryBulkSerializer(serializers.Serializer):
    entries = JournalEntryPostSerializer(many=True, allow_empty=False)

    def to_internal_value(self, data):
        entries = data.get("entries") if isinstance(data, Mapping) else None
        # Refuse an oversized batch before validating thousands of entries.
        if isinstance(entries, list) and len(entries) > MAX_BULK_ENTRIES:
            raise ValidationFailed(
                f"A batch takes at most {MAX_BULK_ENTRIES:,} entries; this one has "
                f"{len(entries):,}. Send it in several batches.",
                code="batch_too_large",
                fields={"entries": [f"At most {MAX_BULK_ENTRIES} entries."]},
            )
        return super().to_internal_value(data)


class JournalEntryBulkRowSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(read_only=True)

    class Meta:
        model = JournalEntry
        fields = ["id", "reference", "date", "total", "idempotency_key"]
        read_only_fields = fields


class JournalEntryBulkResultSerializer(serializers.Serializer):
    posted = serializers.IntegerField(help_text="Entries written by this request.")
    replayed = serializers.IntegerField(
        help_text="Entries whose idempotency key was posted before with the same content."
    )
    entries = JournalEntryBulkRowSerializer(many=True, help_text="In the order they were sent.")


class JournalEntryReverseSerializer(serializers.Serializer):
    date = LedgerDateField(help_text="Date of the reversal; not before the entry's date.")
    reason = serializers.CharField(max_length=500)


# --- reports: query parameters -----------------------------------------------------------------


class _DimensionQuery(serializers.Serializer):
    cost_center = IdField(required=False, help_text="Cost centre id.")
    project = IdField(required=False, help_text="Project id.")
    department = IdField(required=False, help_text="Department id.")

    DIMENSIONS = (("cost_center", CostCenter), ("project", Project), ("department", Department))

    def validate(self, attrs):
        company = self.context["company"]
        for name, model in self.DIMENSIONS:
            key = attrs.get(name)
            if key is not None and not model.objects.filter(company=company, pk=key).exists():
                label = name.replace("_", " ")
                raise ValidationFailed(
                    f"There is no {label} with id {key} in this company.",
                    code="unknown_dimension",
                    fields={name: ["Unknown in this company."]},
                )
        return attrs


class ReportRangeQuery(_DimensionQuery):
    period_from = IdField(required=False, help_text="Period id; wins over date_from.")
    period_to = IdField(required=False, help_text="Period id; wins over date_to.")
    date_from = LedgerDateField(required=False, help_text="From the start of the books.")
    date_to = LedgerDateField(required=False, help_text="Today when left out.")


class TrialBalanceQuery(ReportRangeQuery):
    include_zero = serializers.BooleanField(
        required=False, default=False, help_text="List postable accounts without movements too."
    )


class GeneralLedgerQuery(ReportRangeQuery):
    account = IdField(help_text="Account id.")


class ProfitAndLossQuery(ReportRangeQuery):
    pass


class BalanceSheetQuery(_DimensionQuery):
    as_of = LedgerDateField(required=False, help_text="Today when left out.")
    period_to = IdField(
        required=False, help_text="Period id: the balance sheet at its last day (as_of wins)."
    )


# --- reports: responses ------------------------------------------------------------------------


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, **kwargs)


class ReportDimensionsSerializer(serializers.Serializer):
    cost_center = serializers.IntegerField(allow_null=True)
    project = serializers.IntegerField(allow_null=True)
    department = serializers.IntegerField(allow_null=True)


class TrialBalanceColumnsSerializer(serializers.Serializer):
    opening_debit = _money()
    opening_credit = _money()
    debit = _money()
    credit = _money()
    closing_debit = _money()
    closing_credit = _money()


class TrialBalanceRowSerializer(TrialBalanceColumnsSerializer):
    account_id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()


class TrialBalanceSerializer(serializers.Serializer):
    report = serializers.CharField()
    date_from = serializers.DateField(allow_null=True)
    date_to = serializers.DateField()
    dimensions = ReportDimensionsSerializer()
    rows = TrialBalanceRowSerializer(many=True)
    totals = TrialBalanceColumnsSerializer()
    balanced = serializers.BooleanField()


class LedgerAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()


class GeneralLedgerRowSerializer(serializers.Serializer):
    entry_id = serializers.IntegerField()
    date = serializers.DateField()
    reference = serializers.CharField()
    memo = serializers.CharField()
    source = serializers.CharField()
    debit = _money()
    credit = _money()
    balance = _money(help_text="Running balance, debit minus credit.")
    cost_center = serializers.IntegerField(allow_null=True)
    project = serializers.IntegerField(allow_null=True)
    department = serializers.IntegerField(allow_null=True)


class GeneralLedgerSerializer(serializers.Serializer):
    report = serializers.CharField()
    account = LedgerAccountSerializer()
    date_from = serializers.DateField(allow_null=True)
    date_to = serializers.DateField()
    dimensions = ReportDimensionsSerializer()
    opening_balance = _money()
    rows = GeneralLedgerRowSerializer(many=True)
    total_debit = _money()
    total_credit = _money()
    closing_balance = _money()


class StatementRowSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    amount = _money()


class StatementSectionSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    rows = StatementRowSerializer(many=True)
    total = _money()


class ProfitAndLossSerializer(serializers.Serializer):
    report = serializers.CharField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    dimensions = ReportDimensionsSerializer()
    sections = StatementSectionSerializer(many=True)
    total_income = _money()
    total_expenses = _money()
    net_profit = _money()


class BalanceSheetSerializer(serializers.Serializer):
    report = serializers.CharField()
    as_of = serializers.DateField()
    dimensions = ReportDimensionsSerializer()
    sections = StatementSectionSerializer(many=True)
    total_assets = _money()
    total_liabilities = _money()
    total_equity = _money()
    current_year_earnings = _money()
    prior_years_unclosed_earnings = _money()
    total_liabilities_and_equity = _money()
    balanced = serializers.BooleanField()
