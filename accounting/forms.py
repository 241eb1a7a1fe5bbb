"""Forms for the ledger's admin screens.

They check what a person typed (a date, a reason, one side per line, a range that makes sense)
so that a bad request is answered on the form and never reaches a service. Everything the
ledger itself decides (balance, open periods, postable accounts) stays in accounting.services;
its refusals are put on the same forms by the admin views.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import ValidationError

from accounting import selectors
from accounting.models import (
    Account,
    AccountingPeriod,
    AccountType,
    CostCenter,
    Department,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    Project,
)
from core.errors import DomainError
from core.models import Company

MAX_FORM_LINES = 500
AMOUNT = {"max_digits": 18, "decimal_places": 2, "min_value": Decimal("0"), "required": False}


class FiscalYearOpenForm(forms.ModelForm):
    """Opening a fiscal year asks only for a day inside it; the service cuts the twelve periods
    from the company's fiscal-year start month."""

    containing = forms.DateField(
        label="A date in the year",
        widget=AdminDateWidget,
        help_text="The fiscal year that contains this date is opened with its twelve periods.",
    )

    class Meta:
        model = FiscalYear
        fields = ["company"]

    def clean(self):
        cleaned = super().clean()
        company, day = cleaned.get("company"), cleaned.get("containing")
        if company is not None and day is not None:
            existing = FiscalYear.objects.filter(
                company=company, start_date__lte=day, end_date__gte=day
            ).first()
            if existing is not None:
                raise ValidationError(
                    f"{existing} ({existing.start_date} to {existing.end_date}) is already open "
                    f"for {company}."
                )
        return cleaned


# --- posting a manual entry ----------------------------------------------------------------


class LineChoices:
    """The accounts and dimensions one company's lines may use, loaded once per page (not once
    per line and per select)."""

    def __init__(self, company: Company):
        by_type: dict[str, list] = {value: [] for value in AccountType.values}
        for pk, code, name, type_ in (
            Account.objects.filter(company=company, is_postable=True, is_active=True)
            .order_by("code")
            .values_list("pk", "code", "name", "type")
        ):
            by_type[type_].append((pk, f"{code} {name}"))
        self.accounts = [("", "---------")] + [
            (AccountType(type_).label, options) for type_, options in by_type.items() if options
        ]
        self.dimensions = {
            name: [("", "---------")]
            + [
                (pk, f"{code} {label}")
                for pk, code, label in model.objects.filter(company=company, is_active=True)
                .order_by("code")
                .values_list("pk", "code", "name")
            ]
            for name, model in (
                ("cost_center", CostCenter),
                ("project", Project),
                ("department", Department),
            )
        }


def _id_choice(label: str, required: bool = False) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(label=label, coerce=int, empty_value=None, required=required)


class JournalEntryForm(forms.Form):
    date = forms.DateField(widget=AdminDateWidget)
    memo = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="What the entry is for; it appears on every ledger line.",
    )
    source_id = forms.CharField(
        label="Voucher / reference",
        max_length=64,
        required=False,
        help_text="Optional: the voucher or document number this entry records.",
    )
    # Sent back with the form: posting the same form twice returns the first entry.
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].initial = uuid.uuid4().hex


class JournalLineForm(forms.Form):
    account = _id_choice("Account")
    debit = forms.DecimalField(**AMOUNT)
    credit = forms.DecimalField(**AMOUNT)
    cost_center = _id_choice("Cost center")
    project = _id_choice("Project")
    department = _id_choice("Department")
    memo = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, choices: LineChoices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = choices.accounts
        for name, options in choices.dimensions.items():
            self.fields[name].choices = options
        for name in ("debit", "credit"):
            self.fields[name].widget.attrs.update({"class": "amount", "step": "0.01"})

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        debit, credit = cleaned.get("debit") or 0, cleaned.get("credit") or 0
        if debit and credit:
            raise ValidationError("Enter a debit or a credit, not both.")
        if not cleaned.get("account"):
            # Only a row someone typed in gets here: untouched rows are not validated.
            self.add_error("account", "Choose an account.")
        elif not (debit or credit):
            raise ValidationError("Enter a debit or a credit.")
        return cleaned

    def as_line(self) -> dict:
        """The line as accounting.services.journal_entry_post takes it."""
        data = self.cleaned_data
        line = {"account": data["account"], "memo": data.get("memo") or ""}
        if data.get("debit"):
            line["debit"] = data["debit"]
        else:
            line["credit"] = data["credit"]
        for name in ("cost_center", "project", "department"):
            if data.get(name) is not None:
                line[name] = data[name]
        return line


class BaseJournalLineFormSet(forms.BaseFormSet):
    def filled_forms(self) -> list[JournalLineForm]:
        return [form for form in self.forms if form.has_changed()]

    def lines(self) -> list[dict]:
        return [form.as_line() for form in self.filled_forms()]

    def totals(self) -> tuple[Decimal, Decimal]:
        """What the lines add up to as typed, shown under the table when the form comes back."""
        debit = credit = Decimal("0.00")
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            debit += data.get("debit") or 0
            credit += data.get("credit") or 0
        return debit, credit


JournalLineFormSet = forms.formset_factory(
    JournalLineForm,
    formset=BaseJournalLineFormSet,
    extra=4,
    max_num=MAX_FORM_LINES,
    validate_max=True,
)


# --- reversing ---------------------------------------------------------------------------------


class ReverseEntryForm(forms.Form):
    """Asked before an entry is reversed: the reversal's date and why."""

    date = forms.DateField(
        label="Reversal date",
        widget=AdminDateWidget,
        help_text="The reversal is posted on this date; its period must be open.",
    )
    reason = forms.CharField(
        max_length=500,
        error_messages={"required": "Say why the entry is reversed."},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Kept on the reversal and in the audit trail.",
    )

    def __init__(self, *args, entries: list[JournalEntry], **kwargs):
        super().__init__(*args, **kwargs)
        self.entries = entries

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why the entry is reversed.")
        return reason

    def clean(self):
        cleaned = super().clean()
        problems = []
        for entry in self.entries:
            if entry.status == EntryStatus.REVERSED:
                problems.append(f"{entry.reference} is already reversed.")
            elif entry.reversal_of_id is not None:
                problems.append(f"{entry.reference} is itself a reversal; post a new entry.")
        if problems:
            raise ValidationError(problems)
        day = cleaned.get("date")
        if day is not None:
            too_early = [entry for entry in self.entries if day < entry.date]
            for entry in too_early:
                self.add_error(
                    "date",
                    f"{entry.reference} is dated {entry.date}; its reversal cannot be earlier.",
                )
        return cleaned


# --- report filters ----------------------------------------------------------------------------


class PeriodChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: AccountingPeriod) -> str:
        return obj.label


class DimensionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        suffix = "" if obj.is_active else " (inactive)"
        return f"{obj.code} {obj.name}{suffix}"


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Account) -> str:
        suffix = "" if obj.is_active else " (inactive)"
        return f"{obj.code} {obj.name}{suffix}"


class ReportForm(forms.Form):
    """Filters shared by the ledger reports. Bound to the query string; every choice is limited
    to the one company the report is for (chosen apart, so switching company never leaves another
    company's period or cost centre selected)."""

    period_from = PeriodChoiceField(
        queryset=AccountingPeriod.objects.none(), required=False, label="From period"
    )
    period_to = PeriodChoiceField(
        queryset=AccountingPeriod.objects.none(), required=False, label="To period"
    )
    date_from = forms.DateField(required=False, widget=AdminDateWidget, label="From date")
    date_to = forms.DateField(required=False, widget=AdminDateWidget, label="To date")
    cost_center = DimensionChoiceField(
        queryset=CostCenter.objects.none(), required=False, label="Cost center"
    )
    project = DimensionChoiceField(queryset=Project.objects.none(), required=False)
    department = DimensionChoiceField(queryset=Department.objects.none(), required=False)

    def __init__(self, data=None, *, company: Company, **kwargs):
        super().__init__(data, **kwargs)
        self.company = company
        periods = (
            AccountingPeriod.objects.filter(company=company)
            .select_related("fiscal_year")
            .order_by("start_date")
        )
        for name in ("period_from", "period_to", "period"):
            if name in self.fields:
                self.fields[name].queryset = periods
        for name, model in (
            ("cost_center", CostCenter),
            ("project", Project),
            ("department", Department),
        ):
            self.fields[name].queryset = model.objects.filter(company=company).order_by("code")

    def dimensions(self) -> dict:
        return {
            name: self.cleaned_data.get(name) for name in ("cost_center", "project", "department")
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned["date_from"], cleaned["date_to"] = selectors.resolve_range(
                company=self.company,
                period_from=cleaned.get("period_from"),
                period_to=cleaned.get("period_to"),
                date_from=cleaned.get("date_from"),
                date_to=cleaned.get("date_to"),
            )
        except DomainError as error:
            raise ValidationError(error.message) from None
        return cleaned


class GeneralLedgerForm(ReportForm):
    account = AccountChoiceField(queryset=Account.objects.none())

    field_order = ["account"]

    def __init__(self, data=None, *, company: Company, **kwargs):
        super().__init__(data, company=company, **kwargs)
        self.fields["account"].queryset = Account.objects.filter(
            company=company, is_postable=True
        ).order_by("code")


class BalanceSheetForm(ReportForm):
    """A balance sheet is at one date: the end of a period, or a day."""

    period = PeriodChoiceField(
        queryset=AccountingPeriod.objects.none(), required=False, label="At the end of period"
    )
    as_of = forms.DateField(required=False, widget=AdminDateWidget, label="As of date")

    field_order = ["period", "as_of"]

    def __init__(self, data=None, *, company: Company, **kwargs):
        super().__init__(data, company=company, **kwargs)
        for name in ("period_from", "period_to", "date_from", "date_to"):
            del self.fields[name]

    def clean(self):
        cleaned = forms.Form.clean(self)
        period = cleaned.get("period")
        cleaned["as_of"] = (
            period.end_date if period else cleaned.get("as_of") or self.company.today()
        )
        return cleaned


def default_range(company: Company) -> dict[str, date]:
    """The fiscal year to date: what a report shows before anyone filters it."""
    today = company.today()
    return {"date_from": company.fiscal_year_start(today), "date_to": today}
