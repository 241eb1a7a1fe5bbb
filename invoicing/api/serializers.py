"""Serializers for the invoicing API.

Output serializers describe the read model. Input serializers check only the shape of a request
(types, lengths, unknown keys); what the figures mean (a BIN's digits, a VAT rate of the
company, a quantity's decimals, an overpayment, a stale version) is decided by
invoicing.services and invoicing.domain, which answer with stable codes (`invalid_bin`,
`vat_rate_not_allowed`, `overpayment`, `stale_version`...).

Amounts, quantities and rates travel as decimal strings ("1250.50"); JSON numbers are read as
Decimal by the views' parser, never as float.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounting.api.serializers import LedgerDateField
from invoicing.models import (
    Invoice,
    InvoiceEvent,
    InvoiceLine,
    InvoicePayment,
    Item,
    Party,
    RecurringInvoice,
    VatRate,
)

MAX_ID = 2**63 - 1


class StrictSerializer(serializers.Serializer):
    """Unknown keys are refused (a typo never passes silently as "no change")."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable - {"id"})
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown or read-only field."] for name in unknown}
                )
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "example": "100.00",
        "description": "A decimal string (JSON numbers are read exactly, never as float).",
    }
)
class DecimalText(serializers.Field):
    """Passes a number through unchanged for the service to check (places, sign, size), so
    nothing is rounded on the way and the refusal names the line and field."""

    default_error_messages = {"invalid": 'A decimal string such as "100.00".'}

    def to_internal_value(self, data):
        if isinstance(data, bool) or data is None or isinstance(data, list | dict | float):
            self.fail("invalid")
        return str(data).strip()

    def to_representation(self, value):
        return str(value)


def _version_field(what: str = "The invoice's `version` as you last read it."):
    return serializers.IntegerField(
        required=False,
        min_value=0,
        help_text=f"{what} Required on every change (or send it as an If-Match header); "
        "missing answers 400 version_required. When it has moved on, the request answers 409 "
        "stale_version and changes nothing.",
    )


# --- parties -----------------------------------------------------------------------------------


class PartySerializer(StrictModelSerializer):
    bin = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=40,
        help_text="VAT registration number: 13 digits, typed as 001745707-0402 or bare digits; "
        "answered as bare digits (bin_display shows 9-4).",
    )
    etin = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=40,
        help_text="e-TIN: 12 digits, typed as 1234-5678-9012 or bare digits.",
    )
    bin_display = serializers.CharField(read_only=True, help_text="BIN shown 9-4.")
    etin_display = serializers.CharField(read_only=True)

    class Meta:
        model = Party
        fields = [
            "id",
            "name",
            "kind",
            "address",
            "shipping_address",
            "bin",
            "bin_display",
            "etin",
            "etin_display",
            "is_withholding_entity",
            "email",
            "phone",
            "payment_terms_days",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"name": {"required": True, "allow_blank": True}}


# --- VAT rates and items -----------------------------------------------------------------------


class VatRateSerializer(StrictModelSerializer):
    label = serializers.CharField(read_only=True, help_text="15%, Exempt, Tk 2.5/unit")
    rate = serializers.DecimalField(
        max_digits=7,
        decimal_places=4,
        required=False,
        help_text="Percent of (value + SD): 15 means 15 %; 0 for the other kinds.",
    )
    specific_amount = serializers.DecimalField(
        max_digits=18, decimal_places=4, required=False, help_text="Taka per unit (specific)."
    )

    class Meta:
        model = VatRate
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "rate",
            "specific_amount",
            "label",
            "sro_reference",
            "is_active",
        ]
        read_only_fields = ["id"]


class ItemSerializer(StrictModelSerializer):
    vat_rate = serializers.CharField(
        source="vat_rate.code",
        required=False,
        max_length=30,
        help_text="Code of one of the company's VAT rates (VAT15, VAT5, ZERO, EXEMPT, SPECIFIC…); "
        "another code answers 400 vat_rate_not_allowed.",
    )
    unit_price = serializers.DecimalField(max_digits=18, decimal_places=4, required=False)
    specific_vat_amount = serializers.DecimalField(
        max_digits=18,
        decimal_places=4,
        required=False,
        allow_null=True,
        help_text="Taka per unit for a specific VAT rate; empty uses the rate's amount.",
    )
    sd_rate = serializers.DecimalField(
        max_digits=7,
        decimal_places=4,
        required=False,
        help_text="Supplementary duty, percent of value.",
    )

    class Meta:
        model = Item
        fields = [
            "id",
            "code",
            "name",
            "description",
            "brand",
            "unit",
            "unit_price",
            "vat_rate",
            "specific_vat_amount",
            "sd_rate",
            "hs_code",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "vat_rate" in values:  # source="vat_rate.code" nests it; the service takes a code
            values["vat_rate"] = values["vat_rate"]["code"]
        return values


# --- invoices: input ---------------------------------------------------------------------------


class LineInputSerializer(StrictSerializer):
    item = serializers.IntegerField(
        required=False,
        allow_null=True,
        max_value=MAX_ID,
        help_text="Catalogue item id: fills description, unit, price, VAT and SD left out.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=100)
    unit = serializers.CharField(required=False, allow_blank=True, max_length=30)
    quantity = DecimalText(required=False)
    unit_price = DecimalText(required=False)
    vat_rate = serializers.CharField(
        required=False, max_length=30, help_text="VAT rate code of the company."
    )
    sd_rate = DecimalText(required=False, help_text="Supplementary duty, percent of value.")
    specific_vat_amount = DecimalText(required=False, allow_null=True)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if values.get("item") is None:
            values.pop("item", None)
        if values.get("specific_vat_amount") is None:
            values.pop("specific_vat_amount", None)
        return values

    def to_representation(self, instance):
        # A stored template line shows what was given, nothing more.
        shown = super().to_representation(instance)
        return {name: value for name, value in shown.items() if value is not None}


HEADER_HELP = {
    "customer": "Party id (a customer of the company).",
    "issue_date": "Today (company time zone) when left out.",
    "due_date": "Issue date + the customer's payment terms when left out.",
    "branch": "Place-of-supply code; numbers run per branch.",
}


class InvoiceWriteSerializer(StrictSerializer):
    """Create a draft (POST) or change one (PATCH: only what is sent changes; `lines`, when
    sent, replaces all lines)."""

    customer = serializers.IntegerField(max_value=MAX_ID, help_text=HEADER_HELP["customer"])
    issue_date = LedgerDateField(required=False, help_text=HEADER_HELP["issue_date"])
    due_date = LedgerDateField(required=False, allow_null=True, help_text=HEADER_HELP["due_date"])
    currency = serializers.CharField(required=False, max_length=3, allow_blank=True)
    branch = serializers.CharField(
        required=False, allow_blank=True, max_length=30, help_text=HEADER_HELP["branch"]
    )
    place_of_supply = serializers.CharField(required=False, allow_blank=True, max_length=255)
    destination = serializers.CharField(required=False, allow_blank=True, max_length=255)
    vehicle_type = serializers.CharField(required=False, allow_blank=True, max_length=50)
    vehicle_number = serializers.CharField(required=False, allow_blank=True, max_length=50)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    lines = LineInputSerializer(many=True, required=False, allow_empty=True)
    version = _version_field()


class VersionSerializer(StrictSerializer):
    version = _version_field()


class PaymentInputSerializer(StrictSerializer):
    amount = DecimalText(help_text="Received in the bank or cash account.")
    date = LedgerDateField(required=False, help_text="Today when left out.")
    vds_withheld = DecimalText(
        required=False, help_text="VAT the withholding buyer deducted at source (Mushak-6.6)."
    )
    account = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=30,
        help_text="Code of the account receiving the money (e.g. 1131); the company's bank "
        "role when left out. An unknown code answers 400 invalid_account.",
    )
    method = serializers.CharField(required=False, allow_blank=True, max_length=30)
    reference = serializers.CharField(required=False, allow_blank=True, max_length=100)
    version = _version_field()


class VoidInputSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, allow_blank=True)
    version = _version_field()


class NoteInputSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, allow_blank=True)
    lines = LineInputSerializer(many=True, allow_empty=True)
    issue_date = LedgerDateField(required=False, help_text="Today when left out.")
    version = _version_field("The original invoice's `version` as you last read it.")


# --- invoices: output --------------------------------------------------------------------------


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "serial",
            "item",
            "description",
            "brand",
            "unit",
            "quantity",
            "unit_price",
            "value",
            "sd_rate",
            "sd_amount",
            "vat_rate_code",
            "vat_kind",
            "vat_rate",
            "vat_specific_amount",
            "vat_label",
            "sro_reference",
            "vat_amount",
            "total",
        ]
        read_only_fields = fields


class InvoicePaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoicePayment
        fields = [
            "event_version",
            "date",
            "amount",
            "vds_withheld",
            "method",
            "reference",
            "account_code",
            "journal_entry",
            "recorded_at",
        ]
        read_only_fields = fields


LIST_FIELDS = [
    "id",
    "kind",
    "number",
    "mushak_form",
    "status",
    "customer",
    "customer_name",
    "original",
    "original_number",
    "issue_date",
    "due_date",
    "fiscal_year",
    "branch",
    "currency",
    "total_value",
    "total_sd",
    "total_vat",
    "total_amount",
    "vds_amount",
    "credited_amount",
    "debited_amount",
    "amount_paid",
    "amount_due",
    "version",
    "updated_at",
]


class InvoiceListSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="customer.name", read_only=True, default="")
    original_number = serializers.CharField(source="original.number", read_only=True, default="")

    class Meta:
        model = Invoice
        fields = LIST_FIELDS
        read_only_fields = fields


class NoteRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invoice
        fields = ["id", "kind", "number", "issue_date", "total_amount", "reason"]
        read_only_fields = fields


class InvoiceSerializer(InvoiceListSerializer):
    customer_bin = serializers.CharField(source="customer.bin_display", read_only=True, default="")
    lines = InvoiceLineSerializer(many=True, read_only=True)
    payments = InvoicePaymentSerializer(many=True, read_only=True)
    notes_issued = NoteRefSerializer(
        source="adjustments", many=True, read_only=True, help_text="Credit and debit notes."
    )
    journal_entry_reference = serializers.CharField(
        source="journal_entry.reference", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Invoice
        fields = [
            *LIST_FIELDS,
            "customer_bin",
            "series",
            "sequence",
            "mushak_number",
            "issue_time",
            "place_of_supply",
            "destination",
            "vehicle_type",
            "vehicle_number",
            "reason",
            "notes",
            "approved_by_label",
            "approved_at",
            "voided_at",
            "void_reason",
            "journal_entry",
            "journal_entry_reference",
            "void_journal_entry",
            "recurring",
            "last_reminder_on",
            "created_at",
            "lines",
            "payments",
            "notes_issued",
        ]
        read_only_fields = fields


class InvoiceEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = InvoiceEvent
        fields = ["id", "version", "type", "payload", "actor", "metadata", "recorded_at"]
        read_only_fields = fields

    def get_actor(self, event: InvoiceEvent) -> str:
        return str((event.metadata or {}).get("actor", ""))


# --- recurring invoices ------------------------------------------------------------------------


class RecurringInvoiceSerializer(StrictModelSerializer):
    customer = serializers.IntegerField(
        source="customer_id", max_value=MAX_ID, help_text="Party id (a customer)."
    )
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    lines = LineInputSerializer(
        many=True, help_text="Line inputs as for a draft invoice (item, quantity, vat_rate…)."
    )
    next_date = LedgerDateField(required=False, help_text="Today when left out.")
    end_date = LedgerDateField(required=False, allow_null=True)

    class Meta:
        model = RecurringInvoice
        fields = [
            "id",
            "name",
            "customer",
            "customer_name",
            "lines",
            "currency",
            "branch",
            "destination",
            "notes",
            "frequency",
            "interval",
            "next_date",
            "end_date",
            "due_days",
            "auto_approve",
            "is_active",
            "last_run_on",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "customer_name",
            "last_run_on",
            "last_error",
            "created_at",
            "updated_at",
        ]

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "customer_id" in values:
            values["customer"] = values.pop("customer_id")
        return values


class RecurringGenerateSerializer(StrictSerializer):
    today = LedgerDateField(
        required=False,
        help_text="Issue every occurrence due by this day (company's today when left out).",
    )


class RecurringGenerateResultSerializer(serializers.Serializer):
    issued = serializers.IntegerField()
    invoices = InvoiceListSerializer(many=True)
    next_date = serializers.DateField()
