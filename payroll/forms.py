"""Forms of the payroll admin: a period's (and a schedule's) automation rule checked with the
same messages as the API, the time-entry CSV import, and the reason asked when reopening."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal, InvalidOperation

from django import forms
from django.core.exceptions import ValidationError

from core.errors import ValidationFailed
from payroll.automation import automation_rule_validate
from payroll.models import Employee, PayrollPeriod, PaySchedule

MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_IMPORT_ROWS = 100_000
IMPORT_COLUMNS = ("employee", "day", "hours")
RULE_HELP = (
    'Exactly one of {"run_on_date": "2025-07-25"}, {"days_before_end": 3} or '
    '{"cron": "0 6 25 * *"} (cron in the company\'s time zone). Empty while automation is off.'
)


class AutomationRuleField(forms.JSONField):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", RULE_HELP)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2, "cols": 60}))
        super().__init__(**kwargs)


def _clean_rule(form) -> None:
    """Normalise the rule, or put the service's message on the field."""
    cleaned = form.cleaned_data
    if "automation_rule" not in cleaned:
        return  # not valid JSON: the field already says so
    try:
        cleaned["automation_rule"] = automation_rule_validate(
            cleaned.get("automation_rule") or {},
            enabled=bool(cleaned.get("automation_enabled")),
        )
    except ValidationFailed as refusal:
        form.add_error("automation_rule", refusal.message)


class PayrollPeriodForm(forms.ModelForm):
    automation_rule = AutomationRuleField()
    activate = forms.BooleanField(
        required=False, initial=True, help_text="Create the period active (ready to run)."
    )

    class Meta:
        model = PayrollPeriod
        fields = [
            "company",
            "schedule",
            "name",
            "period_type",
            "start_date",
            "end_date",
            "pay_date",
            "automation_enabled",
            "automation_rule",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields.pop("activate")

    def clean(self):
        cleaned = super().clean()
        _clean_rule(self)
        return cleaned


class PayScheduleForm(forms.ModelForm):
    automation_rule = AutomationRuleField()

    class Meta:
        model = PaySchedule
        fields = [
            "company",
            "name",
            "frequency",
            "anchor_date",
            "pay_day_offset",
            "automation_enabled",
            "automation_rule",
            "is_active",
        ]

    def clean(self):
        cleaned = super().clean()
        _clean_rule(self)
        if "run_on_date" in (cleaned.get("automation_rule") or {}):
            self.add_error(
                "automation_rule",
                "A schedule's periods each need their own date: use days_before_end or cron.",
            )
        return cleaned


class ReopenForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Recorded in the audit trail and on the reversing journal entry.",
    )


class TimeEntryImportForm(forms.Form):
    """A CSV with a header row: employee (code), day (YYYY-MM-DD), hours, and optionally note.
    Every row is checked before anything is written; the first bad row is named by its line
    number and nothing is imported."""

    company = forms.ModelChoiceField(queryset=None)
    file = forms.FileField(help_text="CSV, UTF-8: employee,day,hours[,note]")

    def __init__(self, *args, companies=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["company"].queryset = companies
        if companies is not None and companies.count() == 1:
            self.fields["company"].initial = companies.first()
        self.entries: list[dict] = []
        self.lines: list[int] = []

    def clean(self):
        cleaned = super().clean()
        upload, company = cleaned.get("file"), cleaned.get("company")
        if not upload or not company:
            return cleaned
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError("The file is larger than 10 MB; split it.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text; save it as CSV (UTF-8).") from None
        reader = csv.reader(io.StringIO(text))
        header = [name.strip().lower() for name in next(reader, [])]
        missing = [name for name in IMPORT_COLUMNS if name not in header]
        if missing:
            raise ValidationError(
                f"Line 1: the header must name the columns employee, day and hours "
                f"(missing: {', '.join(missing)})."
            )
        index = {name: header.index(name) for name in header}
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(rows) >= MAX_IMPORT_ROWS:
                raise ValidationError(f"More than {MAX_IMPORT_ROWS} rows; split the file.")

            def cell(name, row=row):
                position = index.get(name)
                return row[position].strip() if position is not None and position < len(row) else ""

            rows.append((line_no, cell("employee"), cell("day"), cell("hours"), cell("note")))
        if not rows:
            raise ValidationError("The file has no rows after the header.")
        codes = {code for _, code, *_ in rows}
        known = set(
            Employee.objects.filter(company=company, code__in=codes).values_list("code", flat=True)
        )
        seen = set()
        for line_no, code, day, hours, note in rows:
            where = f"Line {line_no}"
            if not code:
                raise ValidationError(f"{where}: the employee code is empty. Nothing was imported.")
            if code not in known:
                raise ValidationError(
                    f"{where}: no employee with code {code!r} in {company}. Nothing was imported."
                )
            try:
                parsed_day = date.fromisoformat(day)
            except ValueError:
                raise ValidationError(
                    f"{where}: day {day!r} is not a date written YYYY-MM-DD. Nothing was imported."
                ) from None
            try:
                parsed_hours = Decimal(hours)
            except InvalidOperation:
                raise ValidationError(
                    f"{where}: hours {hours!r} is not a number. Nothing was imported."
                ) from None
            if (
                not parsed_hours.is_finite()
                or not 0 <= parsed_hours <= 24
                or parsed_hours != parsed_hours.quantize(Decimal("0.01"))
            ):
                raise ValidationError(
                    f"{where}: hours must be between 0 and 24 with at most two decimals, not "
                    f"{hours}. Nothing was imported."
                )
            if (code, parsed_day) in seen:
                raise ValidationError(
                    f"{where}: {code} already has a row for {parsed_day} in this file. "
                    "Nothing was imported."
                )
            seen.add((code, parsed_day))
            self.entries.append(
                {"employee": code, "day": parsed_day, "hours": hours, "note": note[:200]}
            )
            self.lines.append(line_no)
        return cleaned

    def line_of(self, entry_number: int) -> int | None:
        """The CSV line of the service's "Entry N" (counted from 1)."""
        if 1 <= entry_number <= len(self.lines):
            return self.lines[entry_number - 1]
        return None


def rule_text(rule) -> str:
    return json.dumps(rule, sort_keys=True) if rule else ""
