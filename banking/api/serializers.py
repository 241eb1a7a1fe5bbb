"""Serializers for the banking API.

Output serializers describe the rows. Input serializers check only the shape of a request
(types, lengths, unknown keys); what the figures mean (a posted transaction that may no longer
change, a CSV mapping, a transfer leg larger than what is left, a statement for another IBAN)
is decided by banking's services, which answer with stable codes (`already_posted`,
`invalid_mapping`, `invalid_statement`, `iban_mismatch`...).

Amounts travel as decimal strings ("1250.50"); JSON numbers are read as Decimal by the views'
parser, never as float. Statement line amounts are signed: + money in, - money out.
"""

from __future__ import annotations

from rest_framework import serializers

from accounting.api.serializers import LedgerDateField
from banking.models import (
    BankAccount,
    BankReconciliation,
    BankTransaction,
    BankTransfer,
    BankTransferAllocation,
    CashSubmission,
    FloatAllocation,
    PettyCashVoucher,
    ReconciliationMatch,
    StatementImport,
    StatementLine,
)
from invoicing.api.serializers import StrictModelSerializer, StrictSerializer


def _money(**kwargs):
    return serializers.DecimalField(max_digits=18, decimal_places=2, **kwargs)


def _version_field():
    return serializers.IntegerField(
        required=False,
        min_value=0,
        write_only=True,
        help_text="The transaction's `version` as you last read it (or send it as If-Match). "
        "When it has moved on, the change answers 409 version_conflict and writes nothing.",
    )


# --- bank accounts -----------------------------------------------------------------------------


class BankAccountSerializer(StrictModelSerializer):
    statement_mapping = serializers.JSONField(
        required=False,
        help_text="The saved CSV column mapping used for this account's CSV statements, "
        'e.g. {"date": "Date", "amount": "Amount", "date_format": "%d/%m/%Y", '
        '"delimiter": ",", "decimal_separator": "."}. Columns are header names or '
        "0-based numbers: `date` (required), `value_date`, `reference`, `counterparty`, "
        "`counterparty_account`, `description`, `bank_id`, `balance`. `amount_mode`: "
        "`signed` (default; one `amount` column, + in, - out), `debit_credit` (`debit` and "
        "`credit` columns) or `flag` (an unsigned `amount` and a `flag` column whose values "
        "are listed in `credit_values` / `debit_values`, default C/CR/CRDT/CREDIT and "
        "D/DR/DBIT/DEBIT). File layout: `delimiter`, `quotechar`, `encoding` (utf-8), "
        "`decimal_separator` (.), `thousands_separator`, `date_format` (strftime, %Y-%m-%d), "
        "`skip_rows`, `has_header` (true), `skip_footer`, `currency` (blank: the account's). "
        "An unknown key or an invalid mapping answers 400 invalid_mapping naming the key.",
    )

    class Meta:
        model = BankAccount
        fields = [
            "id",
            "name",
            "ledger_account",
            "currency",
            "bank_name",
            "branch",
            "account_number_masked",
            "iban",
            "bic",
            "opening_balance",
            "opening_date",
            "is_active",
            "statement_mapping",
            "auto_accept_confidence",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "currency": {"required": False, "help_text": "The company's when left out."}
        }


# --- transactions ------------------------------------------------------------------------------


class BankTransactionSerializer(StrictModelSerializer):
    version = serializers.IntegerField(read_only=True)
    journal_entry_reference = serializers.CharField(
        source="journal_entry.reference", read_only=True, allow_null=True
    )
    expected_version = _version_field()

    class Meta:
        model = BankTransaction
        fields = [
            "id",
            "bank_account",
            "kind",
            "direction",
            "amount",
            "date",
            "value_date",
            "reference",
            "counterparty",
            "memo",
            "branch",
            "cost_center",
            "project",
            "department",
            "counter_account",
            "posting_status",
            "journal_entry",
            "journal_entry_reference",
            "posted_at",
            "source",
            "invoice",
            "reconciled_amount",
            "version",
            "expected_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "posting_status",
            "journal_entry",
            "posted_at",
            "source",
            "invoice",
            "reconciled_amount",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"direction": {"required": False}}


class PostAccountingInputSerializer(StrictSerializer):
    expected_version = _version_field()


class PostAccountingSerializer(serializers.Serializer):
    transaction_id = serializers.IntegerField()
    posting_status = serializers.CharField()
    journal_entry_id = serializers.IntegerField()
    journal_entry_reference = serializers.CharField()
    replayed = serializers.BooleanField(
        help_text="True when the transaction was already posted: the same entry is answered."
    )
    version = serializers.IntegerField()


# --- transfers ---------------------------------------------------------------------------------


class TransferAllocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = BankTransferAllocation
        fields = ["id", "leg", "bank_account", "bank_transaction", "amount", "date", "cleared"]
        read_only_fields = fields


class BankTransferSerializer(StrictModelSerializer):
    legs = TransferAllocationSerializer(many=True, read_only=True)
    version = serializers.IntegerField(read_only=True)

    class Meta:
        model = BankTransfer
        fields = [
            "id",
            "from_account",
            "to_account",
            "amount",
            "currency",
            "date",
            "expected_settlement_date",
            "reference",
            "memo",
            "cost_center",
            "project",
            "department",
            "status",
            "settled_on",
            "legs",
            "version",
            "created_at",
        ]
        read_only_fields = ["id", "currency", "status", "settled_on", "legs", "created_at"]


class TransferSendSerializer(StrictSerializer):
    date = LedgerDateField(required=False, help_text="The day the money left; the transfer date.")


class TransferReceiveSerializer(StrictSerializer):
    amount = _money(
        required=False,
        help_text="What arrived (part of the transfer allowed); what is still in transit.",
    )
    date = LedgerDateField(required=False, help_text="The day it arrived; today.")


class TransferCancelSerializer(StrictSerializer):
    """Nothing to send: a transfer is cancelled as long as its money has not left."""


# --- cash submissions --------------------------------------------------------------------------


class CashSubmissionSerializer(StrictModelSerializer):
    class Meta:
        model = CashSubmission
        fields = [
            "id",
            "branch",
            "from_account",
            "bank_account",
            "expected_amount",
            "deposited_amount",
            "submitted_on",
            "deposited_on",
            "variance",
            "status",
            "reference",
            "memo",
            "cost_center",
            "project",
            "department",
            "submission_entry",
            "deposit_transaction",
        ]
        read_only_fields = [
            "id",
            "deposited_amount",
            "deposited_on",
            "variance",
            "status",
            "submission_entry",
            "deposit_transaction",
        ]


class CashDepositSerializer(StrictSerializer):
    deposited_amount = _money(help_text="What the bank credited; a difference goes to over/short.")
    deposited_on = LedgerDateField(required=False, help_text="The bank's date; today.")


# --- petty cash --------------------------------------------------------------------------------


class PettyCashVoucherSerializer(StrictModelSerializer):
    class Meta:
        model = PettyCashVoucher
        fields = [
            "id",
            "date",
            "amount",
            "expense_account",
            "description",
            "reference",
            "cost_center",
            "project",
            "department",
            "status",
            "replenishment",
        ]
        read_only_fields = ["id", "status", "replenishment"]


class FloatAllocationSerializer(StrictModelSerializer):
    class Meta:
        model = FloatAllocation
        fields = [
            "id",
            "name",
            "custodian",
            "petty_cash_account",
            "bank_account",
            "float_amount",
            "issued_on",
            "cost_center",
            "project",
            "department",
            "status",
            "issue_transaction",
        ]
        read_only_fields = ["id", "status", "issue_transaction"]
        extra_kwargs = {"petty_cash_account": {"required": False}}


class ReplenishSerializer(StrictSerializer):
    counted_cash = _money(help_text="The cash the custodian counted in the box.")
    date = LedgerDateField(required=False, help_text="The replenishment's date; today.")


class ReplenishmentResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    date = serializers.DateField()
    vouchers_total = _money()
    counted_cash = _money()
    over_short = _money()
    journal_entry = serializers.IntegerField(source="journal_entry_id", allow_null=True)


# --- statement imports and lines ---------------------------------------------------------------


FORMAT_CHOICES = ["ofx", "mt940", "camt053", "csv"]


class StatementImportSerializer(serializers.ModelSerializer):
    replayed = serializers.BooleanField(
        read_only=True,
        default=False,
        help_text="True when this very file had been imported before: nothing was added.",
    )
    ignored_line_count = serializers.IntegerField(
        read_only=True,
        default=0,
        help_text="Lines of this import set aside as ignored (zero amounts on import).",
    )

    class Meta:
        model = StatementImport
        fields = [
            "id",
            "bank_account",
            "format",
            "filename",
            "sha256",
            "statement_id",
            "currency",
            "opening_balance",
            "opening_date",
            "closing_balance",
            "closing_date",
            "line_count",
            "new_line_count",
            "imported_by",
            "created_at",
            "replayed",
            "ignored_line_count",
        ]
        read_only_fields = fields


class StatementUploadSerializer(StrictSerializer):
    bank_account = serializers.PrimaryKeyRelatedField(
        queryset=BankAccount.objects.all(), help_text="The account the statement belongs to."
    )
    file = serializers.FileField(help_text="The statement file (OFX, MT940, CAMT.053 or CSV).")
    format = serializers.ChoiceField(
        choices=FORMAT_CHOICES,
        required=False,
        help_text="Sniffed from the content when left out; a CSV uses the account's mapping.",
    )


class StatementLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatementLine
        fields = [
            "id",
            "bank_account",
            "statement_import",
            "line_no",
            "date",
            "value_date",
            "amount",
            "currency",
            "bank_id",
            "reference",
            "counterparty",
            "counterparty_account",
            "description",
            "reconciled_amount",
            "status",
        ]
        read_only_fields = fields


# --- reconciliation matches --------------------------------------------------------------------


class ReconciliationMatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReconciliationMatch
        fields = [
            "id",
            "reconciliation",
            "statement_line",
            "bank_transaction",
            "amount",
            "method",
            "confidence",
            "status",
            "created_by",
            "created_at",
            "accepted_at",
        ]
        read_only_fields = fields


class AllocationInputSerializer(StrictSerializer):
    bank_transaction = serializers.PrimaryKeyRelatedField(queryset=BankTransaction.objects.all())
    amount = _money(
        required=False, help_text="Part of the transaction to allocate; what is left when empty."
    )


class ManualMatchSerializer(StrictSerializer):
    statement_line = serializers.PrimaryKeyRelatedField(queryset=StatementLine.objects.all())
    allocations = AllocationInputSerializer(
        many=True, help_text="One or more book transactions, each with an optional amount."
    )


class AutoReconcileInputSerializer(StrictSerializer):
    bank_account = serializers.PrimaryKeyRelatedField(queryset=BankAccount.objects.all())
    period = serializers.RegexField(
        r"^\d{4}-(0[1-9]|1[0-2])$",
        required=False,
        help_text="YYYY-MM; every unmatched line of the account when left out.",
        error_messages={"invalid": "Use YYYY-MM, for example 2025-11."},
    )


class AutoReconcileResultSerializer(serializers.Serializer):
    lines = serializers.IntegerField(help_text="Open statement lines looked at.")
    transactions = serializers.IntegerField(help_text="Open book transactions looked at.")
    suggested = serializers.IntegerField()
    accepted = serializers.IntegerField(help_text="At or above the auto-accept confidence.")
    for_review = serializers.IntegerField()
    unmatched_lines = serializers.IntegerField()
    by_method = serializers.DictField(child=serializers.IntegerField())
    auto_accept_confidence = serializers.CharField()
    seconds = serializers.FloatField()


class ReconciliationCloseSerializer(StrictSerializer):
    bank_account_id = serializers.PrimaryKeyRelatedField(
        queryset=BankAccount.objects.all(), help_text="The bank account (of your company)."
    )
    period = serializers.CharField(help_text="YYYY-MM: the month to sign off.")


class BankReconciliationSerializer(serializers.ModelSerializer):
    class Meta:
        model = BankReconciliation
        fields = [
            "id",
            "bank_account",
            "period",
            "statement_opening",
            "statement_closing",
            "book_balance",
            "outstanding_deposits",
            "outstanding_payments",
            "variance",
            "threshold",
            "status",
            "reconciled_by",
            "reconciled_at",
            "updated_at",
        ]
        read_only_fields = fields


class InvoiceSettlementInputSerializer(StrictSerializer):
    invoice = serializers.IntegerField(min_value=1, help_text="An open invoice of the company.")
    amount = _money(
        required=False,
        allow_null=True,
        help_text="What this invoice receives; what it has due (at most what the line has "
        "left) when left out.",
    )


class SettleInvoicesSerializer(StrictSerializer):
    settlements = InvoiceSettlementInputSerializer(
        many=True,
        allow_empty=False,
        help_text="One or more invoices, each paid through invoicing from this receipt.",
    )


class CreateFromLineSerializer(StrictSerializer):
    kind = serializers.ChoiceField(
        choices=["fee", "interest", "deposit", "withdrawal"],
        help_text="fee (money out) or interest (money in); deposit or withdrawal with a "
        "`counter_account`.",
    )
    counter_account = serializers.IntegerField(
        required=False, allow_null=True, help_text="Ledger account id; by kind when left out."
    )
    cost_center = serializers.IntegerField(required=False, allow_null=True)
    project = serializers.IntegerField(required=False, allow_null=True)
    department = serializers.IntegerField(required=False, allow_null=True)
    memo = serializers.CharField(required=False, allow_blank=True, max_length=500)
