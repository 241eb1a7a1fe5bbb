"""Forms for the banking admin.

They check what a person typed (a month, an amount with two decimals, a CSV column mapping) so
a slip is answered on the form. What banking decides itself (what may still change after
posting, whether a statement belongs to the account, what is left to match) stays in the
services; their refusals are put on the same forms by the admin views.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import ValidationError

from banking.models import BankAccount, BankTransaction, StatementFormat
from banking.periods import parse_month

MONEY = {"max_digits": 18, "decimal_places": 2}


def month_of(text: str | None, default: date) -> date:
    """The first day of the month `text` (YYYY-MM, years 1900 to 2200) names, or of
    `default`'s month when it names none."""
    try:
        return parse_month(text)
    except ValueError:
        return default.replace(day=1)


class ServiceModelForm(forms.ModelForm):
    """A model form whose save goes through a banking service. It checks what was typed and
    builds the instance for the admin's page, but leaves the model's rules (constraints that
    span fields, such as a kind's direction) to the service, whose refusal comes back on the
    form (accounting.admin.ServiceFormMixin): one place decides, and says it in its words."""

    def _post_clean(self):
        try:
            self.instance = forms.models.construct_instance(
                self, self.instance, self._meta.fields, self._meta.exclude
            )
        except ValidationError as error:
            self._update_errors(error)


# --- bank accounts and the CSV mapping ---------------------------------------------------------


AMOUNT_MODES = [
    ("signed", "One signed amount column (+ in, − out)"),
    ("debit_credit", "Separate debit and credit columns"),
    ("flag", "An amount column and a D/C flag column"),
]
COLUMN_HELP = "Header name, or the column's number counting from 0."


def _column(value: str):
    """A header name, or a 0-based column number typed as digits."""
    value = (value or "").strip()
    return int(value) if value.isdigit() else value


class BankAccountForm(ServiceModelForm):
    """The account, with its CSV statement mapping as fields rather than raw JSON. The fields
    are put together into `statement_mapping` and checked with the CSV parser's own
    `CsvMapping.from_dict`, so what the form accepts is what the importer reads; its complaint
    about a key is shown on that key's field."""

    COLUMNS = {
        "csv_date": "date",
        "csv_amount": "amount",
        "csv_debit": "debit",
        "csv_credit": "credit",
        "csv_flag": "flag",
        "csv_value_date": "value_date",
        "csv_reference": "reference",
        "csv_counterparty": "counterparty",
        "csv_counterparty_account": "counterparty_account",
        "csv_description": "description",
        "csv_bank_id": "bank_id",
    }
    SETTINGS = {
        "csv_amount_mode": "amount_mode",
        "csv_debit_values": "debit_values",
        "csv_delimiter": "delimiter",
        "csv_encoding": "encoding",
        "csv_decimal_separator": "decimal_separator",
        "csv_thousands_separator": "thousands_separator",
        "csv_date_format": "date_format",
        "csv_skip_rows": "skip_rows",
    }
    MAPPING_FIELDS = [
        "csv_date",
        "csv_amount_mode",
        "csv_amount",
        "csv_debit",
        "csv_credit",
        "csv_flag",
        "csv_debit_values",
        "csv_value_date",
        "csv_reference",
        "csv_counterparty",
        "csv_counterparty_account",
        "csv_description",
        "csv_bank_id",
        "csv_delimiter",
        "csv_encoding",
        "csv_decimal_separator",
        "csv_thousands_separator",
        "csv_date_format",
        "csv_skip_rows",
    ]
    DEFAULTS = {
        "amount_mode": "signed",
        "delimiter": ",",
        "encoding": "utf-8",
        "decimal_separator": ".",
        "thousands_separator": "",
        "date_format": "%Y-%m-%d",
        "skip_rows": 0,
    }

    csv_date = forms.CharField(
        label="Date column",
        required=False,
        help_text=f"{COLUMN_HELP} Leave empty when the bank sends no CSV.",
    )
    csv_amount_mode = forms.ChoiceField(label="Amounts", choices=AMOUNT_MODES, initial="signed")
    csv_amount = forms.CharField(label="Amount column", required=False, help_text=COLUMN_HELP)
    csv_debit = forms.CharField(label="Debit column", required=False)
    csv_credit = forms.CharField(label="Credit column", required=False)
    csv_flag = forms.CharField(label="D/C flag column", required=False)
    csv_debit_values = forms.CharField(
        label="Debit flag values",
        required=False,
        help_text="What marks money out, comma separated; empty: D, DR, DBIT, DEBIT.",
    )
    csv_value_date = forms.CharField(label="Value date column", required=False)
    csv_reference = forms.CharField(label="Reference column", required=False)
    csv_counterparty = forms.CharField(label="Counterparty column", required=False)
    csv_counterparty_account = forms.CharField(label="Counterparty account column", required=False)
    csv_description = forms.CharField(label="Description column", required=False)
    csv_bank_id = forms.CharField(
        label="Bank id column", required=False, help_text="The bank's unique id per entry, if any."
    )
    csv_delimiter = forms.CharField(
        label="Delimiter", required=False, initial=",", strip=False, max_length=1
    )
    csv_encoding = forms.CharField(label="Encoding", required=False, initial="utf-8")
    csv_decimal_separator = forms.ChoiceField(
        label="Decimal separator", choices=[(".", "1234.56"), (",", "1234,56")], initial="."
    )
    csv_thousands_separator = forms.ChoiceField(
        label="Thousands separator",
        required=False,
        choices=[("", "none"), (",", "1,234"), (".", "1.234"), (" ", "1 234"), ("'", "1'234")],
    )
    csv_date_format = forms.CharField(
        label="Date format", required=False, initial="%Y-%m-%d", help_text="e.g. %d/%m/%Y"
    )
    csv_skip_rows = forms.IntegerField(
        label="Lines before the header", required=False, min_value=0, initial=0
    )

    class Meta:
        model = BankAccount
        fields = [
            "company",
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
            "auto_accept_confidence",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mapping = dict(self.instance.statement_mapping or {}) if self.instance.pk else {}
        for name, key in {**self.COLUMNS, **self.SETTINGS}.items():
            value = mapping.get(key)
            if value is None:
                continue
            if isinstance(value, list | tuple):
                value = ", ".join(value)
            self.initial[name] = value

    def mapping(self) -> dict:
        data = self.cleaned_data
        if not (data.get("csv_date") or "").strip():
            return {}
        mode = data.get("csv_amount_mode") or "signed"
        wanted = {
            "signed": {"amount"},
            "debit_credit": {"debit", "credit"},
            "flag": {"amount", "flag"},
        }[mode]
        mapping: dict = {"amount_mode": mode}
        for name, key in self.COLUMNS.items():
            if key in {"amount", "debit", "credit", "flag"} and key not in wanted:
                continue
            value = _column(data.get(name) or "")
            if value != "":
                mapping[key] = value
        flags = [v.strip() for v in (data.get("csv_debit_values") or "").split(",") if v.strip()]
        if mode == "flag" and flags:
            mapping["debit_values"] = flags
        for name, key in self.SETTINGS.items():
            if key in ("amount_mode", "debit_values"):
                continue
            value = data.get(name)
            if value in (None, "") and key != "thousands_separator":
                continue
            if value != self.DEFAULTS.get(key):
                mapping[key] = value
        return mapping

    def clean(self):
        cleaned = super().clean()
        mapping = self.mapping()
        if mapping:
            from banking.parsers.csv import CsvMapping, CsvMappingError

            try:
                CsvMapping.from_dict(mapping)
            except CsvMappingError as error:
                by_key = {key: name for name, key in {**self.COLUMNS, **self.SETTINGS}.items()}
                for key, problems in error.fields.items():
                    name = by_key.get(key)
                    if name in self.fields:
                        self.add_error(name, problems)
                    else:
                        self.add_error(None, f"CSV mapping {key}: {problems[0]}")
        cleaned["statement_mapping"] = mapping
        return cleaned

    @property
    def changed(self) -> set[str]:
        names = set(self.changed_data)
        if names & set(self.MAPPING_FIELDS):
            names.add("statement_mapping")
        return names

    def service_fields(self) -> dict:
        # BankAccountForm.Meta, not self.Meta: the admin's form class has its own Meta listing
        # every field of the page, the mapping's fields among them.
        names = [n for n in BankAccountForm.Meta.fields if n != "company"] + ["statement_mapping"]
        return {name: self.cleaned_data[name] for name in names if name in self.cleaned_data}


# --- transactions ------------------------------------------------------------------------------


class BankTransactionForm(ServiceModelForm):
    version_read = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = BankTransaction
        fields = [
            "bank_account",
            "kind",
            "direction",
            "amount",
            "date",
            "value_date",
            "counter_account",
            "branch",
            "cost_center",
            "project",
            "department",
            "reference",
            "counterparty",
            "memo",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "direction" in self.fields:
            self.fields["direction"].required = False
            self.fields["direction"].help_text = "Only for a transfer; the kind decides otherwise."
        if self.instance.pk:
            self.initial["version_read"] = self.instance.version

    def service_fields(self) -> dict:
        names = BankTransactionForm.Meta.fields
        fields = {n: self.cleaned_data[n] for n in names if n in self.cleaned_data}
        if not fields.get("direction"):
            fields.pop("direction", None)
        return fields


# --- statement upload --------------------------------------------------------------------------


class StatementUploadForm(forms.Form):
    bank_account = forms.ModelChoiceField(queryset=BankAccount.objects.none())
    file = forms.FileField(help_text="OFX, MT940, CAMT.053 (XML) or CSV.")
    format = forms.ChoiceField(
        required=False,
        choices=[("", "Recognise from the file"), *StatementFormat.choices],
        help_text="A CSV is read with the bank account's saved mapping.",
    )

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["bank_account"].queryset = accounts

    def clean_file(self):
        from banking.imports import check_statement_size
        from core.errors import DomainError

        upload = self.cleaned_data["file"]
        try:
            check_statement_size(upload.size)
        except DomainError as error:
            raise ValidationError(error.message) from None
        return upload


# --- one-form commands -------------------------------------------------------------------------


class _Command(forms.Form):
    def __init__(self, *args, obj=None, **kwargs):
        self.obj = obj
        super().__init__(*args, **kwargs)


class ReceiveForm(_Command):
    amount = forms.DecimalField(
        **MONEY, min_value=Decimal("0.01"), required=False, help_text="Empty: all still in transit."
    )
    date = forms.DateField(widget=AdminDateWidget, required=False, help_text="Empty: today.")

    def clean(self):
        cleaned = super().clean()
        return {k: v for k, v in cleaned.items() if v not in (None, "")}


class DepositForm(_Command):
    deposited_amount = forms.DecimalField(**MONEY, min_value=Decimal("0.01"))
    deposited_on = forms.DateField(widget=AdminDateWidget, required=False)

    def __init__(self, *args, obj=None, **kwargs):
        super().__init__(*args, obj=obj, **kwargs)
        if obj is not None:
            self.fields["deposited_amount"].initial = obj.expected_amount

    def clean(self):
        cleaned = super().clean()
        return {k: v for k, v in cleaned.items() if v not in (None, "")}


class ReplenishForm(_Command):
    counted_cash = forms.DecimalField(
        **MONEY, min_value=Decimal("0"), help_text="The cash counted in the box."
    )
    date = forms.DateField(widget=AdminDateWidget, required=False)

    def clean(self):
        cleaned = super().clean()
        return {k: v for k, v in cleaned.items() if v not in (None, "")}


class CommandForm:
    receive = ReceiveForm
    deposit = DepositForm
    replenish = ReplenishForm
