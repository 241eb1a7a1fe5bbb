"""Forms for the invoicing admin.

They check what a person typed (a BIN's digits, a date, an amount with two decimals, a reason)
so a slip is answered on the form. Everything invoicing decides itself (tax, numbers, what is
due, whether an invoice may still change) stays in invoicing.services; its refusals are put on
the same forms by the admin views.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import ValidationError

from accounting.models import Account
from core.errors import DomainError
from core.models import Company
from invoicing import services
from invoicing.models import Invoice, InvoiceLine, Item, Party, RecurringInvoice, VatRate

MAX_FORM_LINES = 200
MONEY = {"max_digits": 18, "decimal_places": 2}
FIGURE = {"max_digits": 18, "decimal_places": 4}


def _as_form_error(call, value):
    try:
        return call(value)
    except DomainError as error:
        raise ValidationError(error.message) from None


def vat_rate_choices(companies) -> list[tuple[str, str]]:
    """The VAT rate codes of these companies (standard codes are shared), best first."""
    seen, choices = set(), [("", "---------")]
    for code, name in (
        VatRate.objects.filter(company__in=companies, is_active=True)
        .order_by("-rate", "code")
        .values_list("code", "name")
    ):
        if code not in seen:
            seen.add(code)
            choices.append((code, f"{code} — {name}"))
    return choices


# --- parties -----------------------------------------------------------------------------------


class PartyForm(forms.ModelForm):
    """BIN and e-TIN may be typed with or without dashes; they are checked here with the same
    rule the service applies, and shown formatted (9-4, 4-4-4)."""

    bin = forms.CharField(
        label="BIN",
        required=False,
        max_length=20,
        help_text="13 digits, e.g. 001745707-0402 (9-digit number and 4-digit branch).",
    )
    etin = forms.CharField(
        label="e-TIN", required=False, max_length=20, help_text="12 digits, e.g. 1234-5678-9012."
    )

    class Meta:
        model = Party
        fields = [
            "company",
            "name",
            "kind",
            "bin",
            "etin",
            "is_withholding_entity",
            "address",
            "shipping_address",
            "email",
            "phone",
            "payment_terms_days",
            "is_active",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["bin"] = self.instance.bin_display
            self.initial["etin"] = self.instance.etin_display

    def clean_bin(self):
        return _as_form_error(services.bin_normalise, self.cleaned_data.get("bin"))

    def clean_etin(self):
        return _as_form_error(services.etin_normalise, self.cleaned_data.get("etin"))

    @property
    def changed_data(self):
        # "001745707-0402" shown and sent back unchanged is no change to "0017457070402".
        changed = list(super().changed_data)
        for name in ("bin", "etin"):
            same = self.instance.pk and hasattr(self, "cleaned_data")
            if (
                name in changed
                and same
                and self.cleaned_data.get(name) == getattr(self.instance, name)
            ):
                changed.remove(name)
        return changed


# --- invoices: drafts --------------------------------------------------------------------------

HEADER_FIELDS = [
    "customer",
    "issue_date",
    "due_date",
    "currency",
    "branch",
    "place_of_supply",
    "destination",
    "vehicle_type",
    "vehicle_number",
    "notes",
]


class InvoiceDraftForm(forms.ModelForm):
    """The header of a draft. `expected_version` carries the version the page was read at, so
    a save after someone else's change is refused (stale) instead of overwriting it."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Invoice
        fields = ["company", *HEADER_FIELDS]
        widgets = {"notes": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "customer" in self.fields:
            self.fields["customer"].required = True
        if "due_date" in self.fields:
            self.fields["due_date"].help_text = "Empty: issue date + the customer's terms."
        if "issue_date" in self.fields:
            self.fields["issue_date"].required = False
            self.fields["issue_date"].help_text = "Empty: today."
        if "currency" in self.fields:
            self.fields["currency"].required = False
        if self.instance.pk and not self.is_bound:
            self.initial["expected_version"] = self.instance.version

    def _post_clean(self):
        # The read model is never validated or written from a form: the service decides.
        pass

    def header(self, *, changed_only: bool) -> dict:
        data = self.cleaned_data
        names = [n for n in HEADER_FIELDS if n in self.fields and n != "customer"]
        if changed_only:
            names = [n for n in names if n in self.changed_data]
        header = {name: data.get(name) for name in names}
        for name in ("currency",):
            if name in header and not header[name]:
                header.pop(name)
        for name in ("issue_date", "due_date"):
            if name in header and header[name] is None and not changed_only:
                header.pop(name)
        if changed_only and "customer" in self.changed_data:
            header["customer"] = data.get("customer")
        return header


class DraftLineForm(forms.ModelForm):
    """One line of a draft. Leave description, unit, price, VAT or SD empty and the chosen
    item fills them."""

    vat_rate_code = forms.ChoiceField(label="VAT rate", required=False, choices=[])

    class Meta:
        model = InvoiceLine
        fields = [
            "item",
            "description",
            "brand",
            "unit",
            "quantity",
            "unit_price",
            "vat_rate_code",
            "sd_rate",
            "vat_specific_amount",
        ]
        labels = {"vat_specific_amount": "Specific VAT / unit", "sd_rate": "SD %"}
        widgets = {"description": forms.TextInput(attrs={"size": 28})}

    def __init__(self, *args, vat_choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("description", "unit", "unit_price", "quantity", "sd_rate"):
            self.fields[name].required = False
        self.fields["vat_specific_amount"].required = False
        self.fields["vat_rate_code"].choices = vat_choices or [("", "---------")]
        for name in ("unit", "brand"):
            self.fields[name].widget.attrs["size"] = 8
        for name in ("quantity", "unit_price", "sd_rate", "vat_specific_amount"):
            self.fields[name].widget.attrs["style"] = "width: 7em"

    def _post_clean(self):
        pass  # lines are checked and computed by the service, not saved from here

    def is_filled(self) -> bool:
        data = getattr(self, "cleaned_data", None) or {}
        return any(data.get(n) not in (None, "") for n in ("item", "description", "quantity"))

    def as_line(self) -> dict:
        """The line as invoicing.services takes it: only what was given, the item fills the
        rest."""
        data = self.cleaned_data
        line = {}
        if data.get("item"):
            line["item"] = data["item"].pk
        for name in ("description", "brand", "unit"):
            if data.get(name):
                line[name] = data[name]
        for name in ("quantity", "unit_price", "sd_rate"):
            if data.get(name) is not None:
                line[name] = str(data[name])
        if data.get("vat_rate_code"):
            line["vat_rate"] = data["vat_rate_code"]
        if data.get("vat_specific_amount"):
            line["specific_vat_amount"] = str(data["vat_specific_amount"])
        return line


class BaseDraftLineFormSet(forms.BaseInlineFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        # Lines are rewritten by the service (new row ids each edit), so a page read before
        # someone else's change names rows that are gone: that must reach the service as a
        # stale version, not fail here as "select a valid choice".
        form.fields[self.model._meta.pk.name] = forms.IntegerField(
            required=False, widget=forms.HiddenInput, initial=form.instance.pk
        )

    def _existing_object(self, pk):
        return super()._existing_object(pk) if pk is not None else None

    def kept_forms(self) -> list[DraftLineForm]:
        kept = []
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            if self.can_delete and self._should_delete_form(form):
                continue
            if form.instance.pk is None and not form.is_filled():
                continue  # a spare row left empty (its SD 0 prefilled does not count)
            kept.append(form)
        return kept

    def lines(self) -> list[dict]:
        return [form.as_line() for form in self.kept_forms()]

    def lines_changed(self) -> bool:
        return any(
            (form.instance.pk is not None and form.has_changed())
            or (form.instance.pk is None and form.is_filled())
            or (self.can_delete and self._should_delete_form(form))
            for form in self.forms
        )

    def save(self, commit=True):  # never: the service writes the lines
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        return []


# --- invoice commands --------------------------------------------------------------------------


class _VersionedForm(forms.Form):
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, invoice: Invoice, **kwargs):
        super().__init__(*args, **kwargs)
        self.invoice = invoice
        if not self.is_bound:
            self.initial.setdefault("expected_version", invoice.version)


class ApproveForm(_VersionedForm):
    pass


class PaymentForm(_VersionedForm):
    amount = forms.DecimalField(
        min_value=Decimal("0.00"),
        help_text="Received in the account below. More than is due is refused.",
        **MONEY,
    )
    date = forms.DateField(widget=AdminDateWidget)
    vds_withheld = forms.DecimalField(
        label="VAT withheld at source",
        min_value=Decimal("0.00"),
        required=False,
        help_text="For a withholding buyer: the VAT it deducted (Mushak-6.6 certificate).",
        **MONEY,
    )
    account = forms.ModelChoiceField(
        queryset=Account.objects.none(),
        required=False,
        help_text="Empty: the company's bank account (role 'bank').",
    )
    method = forms.CharField(max_length=30, required=False, help_text="Cheque, transfer, cash…")
    reference = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, invoice: Invoice, **kwargs):
        super().__init__(*args, invoice=invoice, **kwargs)
        self.fields["account"].queryset = (
            Account.objects.filter(
                company_id=invoice.company_id,
                is_postable=True,
                is_active=True,
                roles__role__in=services.PAYMENT_ACCOUNT_ROLES,
            )
            .distinct()
            .order_by("code")
        )
        self.fields["account"].label_from_instance = lambda a: f"{a.code} {a.name}"
        if not self.is_bound:
            self.initial.setdefault("date", invoice.company.today())
            self.initial.setdefault("amount", invoice.amount_due)

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("amount") or cleaned.get("vds_withheld")) and not self.errors:
            raise ValidationError("Enter the amount received (or the VAT withheld).")
        return cleaned


class VoidForm(_VersionedForm):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Kept on the invoice, its events and the reversing entry.",
    )


class NoteForm(_VersionedForm):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Printed on the note (Mushak-6.7 / 6.8).",
    )
    issue_date = forms.DateField(widget=AdminDateWidget, required=False, help_text="Empty: today.")


class NoteLineForm(forms.Form):
    item = forms.ModelChoiceField(queryset=Item.objects.none(), required=False)
    description = forms.CharField(max_length=500, required=False)
    unit = forms.CharField(max_length=30, required=False)
    quantity = forms.DecimalField(required=False, **FIGURE)
    unit_price = forms.DecimalField(required=False, **FIGURE)
    vat_rate = forms.ChoiceField(required=False, choices=[], label="VAT rate")
    sd_rate = forms.DecimalField(required=False, max_digits=7, decimal_places=4, label="SD %")

    def __init__(self, *args, company: Company, vat_choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].queryset = Item.objects.filter(company=company, is_active=True)
        self.fields["vat_rate"].choices = vat_choices
        for name in ("quantity", "unit_price", "sd_rate"):
            self.fields[name].widget.attrs["style"] = "width: 7em"

    def as_line(self) -> dict:
        data = self.cleaned_data
        line = {}
        if data.get("item"):
            line["item"] = data["item"].pk
        for name in ("description", "unit", "vat_rate"):
            if data.get(name):
                line[name] = data[name]
        for name in ("quantity", "unit_price", "sd_rate"):
            if data.get(name) is not None:
                line[name] = str(data[name])
        return line


class BaseNoteLineFormSet(forms.BaseFormSet):
    def lines(self) -> list[dict]:
        return [form.as_line() for form in self.forms if form.has_changed()]


NoteLineFormSet = forms.formset_factory(
    NoteLineForm, formset=BaseNoteLineFormSet, extra=3, max_num=MAX_FORM_LINES, validate_max=True
)


# --- recurring invoices ------------------------------------------------------------------------


class RecurringInvoiceForm(forms.ModelForm):
    lines = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "style": "font-family: monospace"}),
        help_text='A list of lines as for a draft, e.g. [{"item": 3, "quantity": "4"}] or '
        '[{"description": "Support", "unit": "month", "quantity": "1", "unit_price": '
        '"25000", "vat_rate": "VAT15"}].',
    )

    class Meta:
        model = RecurringInvoice
        fields = [
            "company",
            "name",
            "customer",
            "lines",
            "frequency",
            "interval",
            "next_date",
            "end_date",
            "due_days",
            "auto_approve",
            "is_active",
            "currency",
            "branch",
            "destination",
            "notes",
        ]

    def _post_clean(self):
        pass  # the service checks the template (customer, lines, rates) and saves it
