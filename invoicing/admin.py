"""Invoicing in the admin: parties, VAT rates, items, invoices and notes, recurring invoices.

Every write goes through invoicing.services; these classes add only the interface.
- A draft invoice is edited on its page, header and lines together (the lines inline); saving
  calls `invoice_create_draft` or `invoice_edit_draft` once, with the version the page was read
  at, so a save after someone else's change is refused instead of overwriting it.
- An approved invoice (or note) is read-only: it changes only through the buttons on its page
  (approve, record payment, void, credit note, debit note), each a form that calls one service.
- The invoice's event history is shown read-only on its page; print buttons open its Mushak
  form (6.3, 6.7 or 6.8) as HTML or PDF; the VAT reports hang off the invoice list.
- A refusal (core.errors.DomainError) comes back on the same form with the service's message,
  or as an error message naming the invoice for a list action; nothing is half-written.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from accounting.admin import ServiceFormMixin, _plural
from core.admin import SeveralCompaniesAdmin, adopt_saved
from core.errors import DomainError
from core.selectors import companies_for
from invoicing import admin_reports, documents, services
from invoicing.admin_reports import money
from invoicing.forms import (
    ApproveForm,
    BaseDraftLineFormSet,
    DraftLineForm,
    InvoiceDraftForm,
    NoteForm,
    NoteLineFormSet,
    PartyForm,
    PaymentForm,
    RecurringInvoiceForm,
    VoidForm,
    vat_rate_choices,
)
from invoicing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoicePayment,
    InvoiceStatus,
    Item,
    Party,
    RecurringInvoice,
    VatRate,
)
from invoicing.selectors import invoice_events

SCOPE = "invoicing"


def _writable(request):
    return companies_for(request.user, SCOPE, write=True)


class InvoicingAdmin(SeveralCompaniesAdmin):
    """Readable by every role of a company, written by owners, accountants and clerks (scope
    "invoicing"). A user of several companies also gets a company column and filter."""

    scope = SCOPE

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # nothing here is bulk-deleted
        return actions

    def has_delete_permission(self, request, obj=None):
        return False  # invoices point at parties, items and rates: deactivate instead

    def has_manage_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj, write=True)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        writable = list(_writable(request)[:2])
        if len(writable) == 1:
            initial.setdefault("company", writable[0].pk)  # the only company: preselected
        return initial

    def refuse(self, request, label, error: DomainError) -> None:
        self.message_user(request, f"{label}: {error.message}", messages.ERROR)


def _fields_from(form, names) -> dict:
    return {name: form.cleaned_data[name] for name in names if name in form.cleaned_data}


# --- parties, VAT rates, items -----------------------------------------------------------------


@admin.register(Party)
class PartyAdmin(ServiceFormMixin, InvoicingAdmin):
    form = PartyForm
    list_display = [
        "name",
        "kind",
        "bin_formatted",
        "etin_formatted",
        "is_withholding_entity",
        "email",
        "payment_terms_days",
        "is_active",
    ]
    list_filter = ["kind", "is_withholding_entity", "is_active"]
    search_fields = ["name", "email", "bin"]
    search_help_text = "A name, an e-mail or a BIN (digits, with or without the dash)."
    ordering = ["name"]
    fieldsets = [
        (None, {"fields": ["company", "name", "kind", "is_active"]}),
        ("VAT registration", {"fields": ["bin", "etin", "is_withholding_entity"]}),
        ("Contact", {"fields": ["address", "shipping_address", "email", "phone"]}),
        ("Terms", {"fields": ["payment_terms_days"]}),
    ]

    @admin.display(description="BIN", ordering="bin")
    def bin_formatted(self, obj):
        return obj.bin_display

    @admin.display(description="e-TIN", ordering="etin")
    def etin_formatted(self, obj):
        return obj.etin_display

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []

    def get_search_results(self, request, queryset, search_term):
        digits = search_term.replace("-", "").replace(" ", "")
        if digits.isdigit() and len(digits) in (12, 13):
            return queryset.filter(Q(bin=digits) | Q(etin=digits)), False
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request, obj, form, change):
        if change:
            changes = _fields_from(
                form, [n for n in form.changed_data if n in services.PARTY_FIELDS]
            )
            saved = services.party_update(actor=request.user, party=obj, **changes)
        else:
            fields = _fields_from(form, services.PARTY_FIELDS)
            saved = services.party_create(
                actor=request.user, company=form.cleaned_data["company"], **fields
            )
        adopt_saved(obj, saved)


@admin.register(VatRate)
class VatRateAdmin(ServiceFormMixin, InvoicingAdmin):
    list_display = ["code", "name", "kind", "label", "sro_reference", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["code", "name"]
    ordering = ["company__name", "-rate", "code"]
    fields = [
        "company",
        "code",
        "name",
        "kind",
        "rate",
        "specific_amount",
        "sro_reference",
        "is_active",
    ]

    @admin.display(description="Rate")
    def label(self, obj):
        return obj.label

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            changes = _fields_from(
                form, [n for n in form.changed_data if n in services.VAT_RATE_FIELDS]
            )
            saved = services.vat_rate_update(actor=request.user, vat_rate=obj, **changes)
        else:
            saved = services.vat_rate_create(
                actor=request.user,
                company=form.cleaned_data["company"],
                **_fields_from(form, services.VAT_RATE_FIELDS),
            )
        adopt_saved(obj, saved)


@admin.register(Item)
class ItemAdmin(ServiceFormMixin, InvoicingAdmin):
    list_display = ["code", "name", "unit", "price", "vat_rate", "sd_rate", "hs_code", "is_active"]
    list_filter = ["is_active", "vat_rate__kind"]
    list_select_related = ["vat_rate"]
    search_fields = ["code", "name", "hs_code"]
    ordering = ["company__name", "code"]
    fieldsets = [
        (None, {"fields": ["company", "code", "name", "description", "brand", "hs_code"]}),
        (
            "Price and tax",
            {"fields": ["unit", "unit_price", "vat_rate", "specific_vat_amount", "sd_rate"]},
        ),
        (None, {"fields": ["is_active"]}),
    ]

    @admin.display(description="Unit price", ordering="unit_price")
    def price(self, obj):
        return f"{obj.unit_price:,.2f}"

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "vat_rate":
            kwargs["queryset"] = (
                self._related_choices(db_field, request)
                .filter(is_active=True)
                .order_by("company__name", "-rate", "code")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            changes = _fields_from(
                form, [n for n in form.changed_data if n in services.ITEM_FIELDS]
            )
            saved = services.item_update(actor=request.user, item=obj, **changes)
        else:
            saved = services.item_create(
                actor=request.user,
                company=form.cleaned_data["company"],
                **_fields_from(form, services.ITEM_FIELDS),
            )
        adopt_saved(obj, saved)


# --- invoices: inlines -------------------------------------------------------------------------


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return True  # shown only on an invoice's page, which checked the user may see it

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LineInline(_ReadOnlyInline):
    """The lines as snapshotted at approval: the 11 columns of the Mushak form."""

    model = InvoiceLine
    verbose_name_plural = "lines"
    fields = [
        "serial",
        "description",
        "unit",
        "quantity_shown",
        "unit_price_shown",
        "value_shown",
        "sd_shown",
        "vat_label",
        "vat_shown",
        "total_shown",
    ]
    readonly_fields = fields

    @admin.display(description="Quantity")
    def quantity_shown(self, obj):
        return documents.quantity(obj.quantity)

    @admin.display(description="Unit price")
    def unit_price_shown(self, obj):
        return documents.unit_price(obj.unit_price)

    @admin.display(description="Value")
    def value_shown(self, obj):
        return money(obj.value)

    @admin.display(description="SD")
    def sd_shown(self, obj):
        return f"{money(obj.sd_amount)} ({obj.sd_rate.normalize():f}%)" if obj.sd_rate else "—"

    @admin.display(description="VAT")
    def vat_shown(self, obj):
        return money(obj.vat_amount)

    @admin.display(description="Total")
    def total_shown(self, obj):
        return money(obj.total)


class PaymentInline(_ReadOnlyInline):
    model = InvoicePayment
    verbose_name_plural = "payments"
    fields = ["date", "amount_shown", "vds_shown", "method", "reference", "account_code", "entry"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("journal_entry__fiscal_year")

    @admin.display(description="Amount")
    def amount_shown(self, obj):
        return money(obj.amount)

    @admin.display(description="VAT withheld")
    def vds_shown(self, obj):
        return money(obj.vds_withheld, blank_zero=True)

    @admin.display(description="Journal entry")
    def entry(self, obj):
        return _entry_link(obj.journal_entry)


class DraftLineInline(admin.TabularInline):
    """A draft's lines, edited with the header and saved through the draft service."""

    model = InvoiceLine
    form = DraftLineForm
    formset = BaseDraftLineFormSet
    verbose_name_plural = "lines"
    extra = 3
    max_num = 200
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
        "line_total",
    ]
    readonly_fields = ["line_total"]

    @admin.display(description="Total")
    def line_total(self, obj):
        return money(obj.total) if obj and obj.pk else ""

    def has_view_permission(self, request, obj=None):
        return True

    def has_add_permission(self, request, obj=None):
        return True  # the invoice admin checked the user may write this draft

    def has_change_permission(self, request, obj=None):
        return True

    def has_delete_permission(self, request, obj=None):
        return True

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        companies = [obj.company] if obj is not None else list(_writable(request))
        formset.form = _with_choices(formset.form, vat_rate_choices(companies))
        return formset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "item":
            kwargs["queryset"] = (
                Item.objects.filter(company__in=_writable(request), is_active=True)
                .select_related("company")
                .order_by("company__name", "code")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _with_choices(form_class, choices):
    class WithChoices(form_class):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("vat_choices", choices)
            super().__init__(*args, **kwargs)

    WithChoices.__name__ = form_class.__name__
    return WithChoices


def _entry_link(entry) -> str:
    if entry is None:
        return "—"
    url = reverse("admin:accounting_journalentry_change", args=[entry.pk])
    return format_html('<a href="{}">{}</a>', url, entry.reference)


def _invoice_link(invoice) -> str:
    if invoice is None:
        return "—"
    url = reverse("admin:invoicing_invoice_change", args=[invoice.pk])
    return format_html('<a href="{}">{}</a>', url, str(invoice))


# --- invoices: history -------------------------------------------------------------------------


def _event_summary(event_type: str, payload: dict) -> str:
    p = payload or {}
    if event_type == "InvoiceDrafted":
        lines = p.get("lines") or []
        return f"drafted with {_plural(len(lines), 'line')}"
    if event_type == "DraftEdited":
        return "changed: " + ", ".join(sorted(k.replace("_id", "") for k in p)) if p else "edited"
    if event_type == "InvoiceApproved":
        total = (p.get("totals") or {}).get("total", "")
        return f"approved as {p.get('number', '')}, total {total}"
    if event_type == "PaymentRecorded":
        text = f"payment {p.get('amount')} on {p.get('date')}"
        if p.get("vds_withheld") not in (None, "0", "0.00"):
            text += f", VAT withheld {p['vds_withheld']}"
        if p.get("reference"):
            text += f" ({p['reference']})"
        return text
    if event_type == "InvoiceVoided":
        return f"voided: {p.get('reason', '')}"
    if event_type in ("CreditNoteApplied", "DebitNoteApplied"):
        kind = "credit" if event_type.startswith("Credit") else "debit"
        return f"{kind} note {p.get('note_number', '')} for {p.get('amount', '')}"
    if event_type == "NoteIssued":
        return f"issued as {p.get('number', '')} on {p.get('original_number', '')}: " + str(
            p.get("reason", "")
        )
    if event_type == "MarkedOverdue":
        return f"overdue since {p.get('date', '')}"
    if event_type == "ReminderSent":
        return f"reminder sent to {p.get('to', '')}"
    return ", ".join(sorted(p))


def event_history_table(invoice: Invoice) -> str:
    tz = invoice.company.tz
    rows = [
        (
            event.version,
            f"{timezone.localtime(event.recorded_at, tz):%Y-%m-%d %H:%M:%S}",
            event.type,
            (event.metadata or {}).get("actor", ""),
            Truncator(_event_summary(event.type, event.payload)).chars(140),
        )
        for event in invoice_events(invoice)
    ]
    if not rows:
        return "—"
    body = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
    )
    return format_html(
        '<table class="invoice-history"><thead><tr><th>#</th><th>When</th><th>Event</th>'
        "<th>By</th><th>What</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


# --- invoices ----------------------------------------------------------------------------------

DRAFT_FIELDSETS = [
    (None, {"fields": ["customer", "issue_date", "due_date", "currency", "branch"]}),
    (
        "Mushak header",
        {"fields": ["place_of_supply", "destination", "vehicle_type", "vehicle_number", "notes"]},
    ),
]
SHOWN_FIELDS = [
    "document",
    "status",
    "customer_link",
    "original_link",
    "issue",
    "due_date",
    "fiscal_year",
    "branch",
    "currency",
]
AMOUNT_FIELDS = ["totals", "adjusted", "paid", "due", "vds"]
MUSHAK_FIELDS = [
    "mushak_number",
    "place_of_supply",
    "destination",
    "vehicle_type",
    "vehicle_number",
    "reason",
    "notes",
]
APPROVAL_FIELDS = ["approval", "entry_link", "void_info", "recurring"]
DISPLAY_ONLY = [
    "document",
    "customer_link",
    "original_link",
    "issue",
    "totals",
    "adjusted",
    "paid",
    "due",
    "vds",
    "approval",
    "entry_link",
    "void_info",
    "notes_issued",
    "event_history",
]


@admin.register(Invoice)
class InvoiceAdmin(ServiceFormMixin, InvoicingAdmin):
    list_display = [
        "document",
        "kind_short",
        "status_label",
        "customer",
        "issue_date",
        "due_date",
        "total",
        "due",
    ]
    list_display_links = ["document"]
    list_filter = ["status", "kind", "fiscal_year"]
    list_select_related = ["customer"]
    date_hierarchy = "issue_date"
    search_fields = ["=number", "customer__name"]
    search_help_text = "An exact number (INV/2025-26/000123) or a customer's name."
    ordering = ["-issue_date", "-id"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    readonly_fields = DISPLAY_ONLY
    actions = ["approve_drafts"]

    # list columns and display fields

    @admin.display(description="Number", ordering="number")
    def document(self, obj):
        return str(obj)

    @admin.display(description="Kind", ordering="kind")
    def kind_short(self, obj):
        return {"invoice": "Invoice", "credit_note": "Credit note", "debit_note": "Debit note"}.get(
            obj.kind, obj.get_kind_display()
        )

    @admin.display(description="Status", ordering="status")
    def status_label(self, obj):
        return obj.get_status_display()

    @admin.display(description="Total", ordering="total_amount")
    def total(self, obj):
        return money(obj.total_amount)

    @admin.display(description="Due", ordering="amount_due")
    def due(self, obj):
        return money(obj.amount_due)

    @admin.display(description="Customer")
    def customer_link(self, obj):
        party = obj.customer
        if party is None:
            return "—"
        url = reverse("admin:invoicing_party_change", args=[party.pk])
        bin_text = f" · BIN {party.bin_display}" if party.bin else ""
        return format_html('<a href="{}">{}</a>{}', url, party.name, bin_text)

    @admin.display(description="Adjusts invoice")
    def original_link(self, obj):
        return _invoice_link(obj.original)

    @admin.display(description="Issued")
    def issue(self, obj):
        time = f" {obj.issue_time:%H:%M}" if obj.issue_time else ""
        return f"{obj.issue_date}{time}"

    @admin.display(description="Value + SD + VAT")
    def totals(self, obj):
        return (
            f"{money(obj.total_value)} + {money(obj.total_sd)} + {money(obj.total_vat)} = "
            f"{money(obj.total_amount)}"
        )

    @admin.display(description="Notes (credit / debit)")
    def adjusted(self, obj):
        return f"− {money(obj.credited_amount)} / + {money(obj.debited_amount)}"

    @admin.display(description="Paid")
    def paid(self, obj):
        return money(obj.amount_paid)

    @admin.display(description="VDS (VAT deducted at source)")
    def vds(self, obj):
        return money(obj.vds_amount)

    @admin.display(description="Approved")
    def approval(self, obj):
        if not obj.approved_at:
            return "—"
        moment = timezone.localtime(obj.approved_at, obj.company.tz)
        return f"by {obj.approved_by_label or 'system'} at {moment:%Y-%m-%d %H:%M}"

    @admin.display(description="Journal entry")
    def entry_link(self, obj):
        return _entry_link(obj.journal_entry)

    @admin.display(description="Void")
    def void_info(self, obj):
        if obj.status != InvoiceStatus.VOID:
            return "—"
        return format_html(
            "{} (reversed by {})", obj.void_reason or "voided", _entry_link(obj.void_journal_entry)
        )

    @admin.display(description="Credit and debit notes")
    def notes_issued(self, obj):
        notes = list(obj.adjustments.order_by("issue_date", "pk"))
        if not notes:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            "{} {} {}: {}",
            ((_invoice_link(n), n.issue_date, money(n.total_amount), n.reason) for n in notes),
        )

    @admin.display(description="Event history (read-only)")
    def event_history(self, obj):
        return event_history_table(obj)

    # pages

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer")

    def get_object(self, request, object_id, from_field=None):
        queryset = self.get_queryset(request).select_related(
            "company",
            "original",
            "journal_entry__fiscal_year",
            "void_journal_entry__fiscal_year",
            "recurring",
        )
        try:
            return queryset.get(pk=int(object_id))
        except (Invoice.DoesNotExist, ValueError, TypeError):
            return None

    @staticmethod
    def _is_draft(obj) -> bool:
        return obj is None or obj.status == InvoiceStatus.DRAFT

    def has_change_permission(self, request, obj=None):
        if obj is not None and not self._is_draft(obj):
            return False  # approved documents change only through their buttons
        return super().has_change_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if self._is_draft(obj):
            kwargs["form"] = InvoiceDraftForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            fields = ["company", *DRAFT_FIELDSETS[0][1]["fields"]]
            return [(None, {"fields": fields}), DRAFT_FIELDSETS[1]]
        if obj.status == InvoiceStatus.DRAFT and self.has_change_permission(request, obj):
            return [
                *DRAFT_FIELDSETS,
                ("Totals", {"fields": ["totals"]}),
                ("History", {"fields": ["event_history"], "classes": ["collapse"]}),
            ]
        return [
            (None, {"fields": SHOWN_FIELDS}),
            ("Amounts", {"fields": AMOUNT_FIELDS}),
            ("Mushak", {"fields": MUSHAK_FIELDS}),
            ("Approval", {"fields": APPROVAL_FIELDS}),
            ("Credit and debit notes", {"fields": ["notes_issued"]}),
            ("History", {"fields": ["event_history"]}),
        ]

    def get_inlines(self, request, obj):
        if self._is_draft(obj) and self.has_change_permission(request, obj):
            return [DraftLineInline]
        return [LineInline, PaymentInline]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "customer":
            kwargs["queryset"] = (
                Party.objects.filter(
                    company__in=_writable(request),
                    is_active=True,
                    kind__in=["customer", "both"],
                )
                .select_related("company")
                .order_by("name")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        pass  # header and lines are written together by save_related, in one service call

    def save_related(self, request, form, formsets, change):
        lines_formset = next((f for f in formsets if isinstance(f, BaseDraftLineFormSet)), None)
        for formset in formsets:
            formset.save(commit=False)
        if change:
            lines = None
            if lines_formset is not None and lines_formset.lines_changed():
                lines = lines_formset.lines()
            saved = services.invoice_edit_draft(
                actor=request.user,
                invoice=Invoice.objects.select_related("company").get(pk=form.instance.pk),
                expected_version=form.cleaned_data.get("expected_version"),
                lines=lines,
                **form.header(changed_only=True),
            )
        else:
            saved = services.invoice_create_draft(
                actor=request.user,
                company=form.cleaned_data["company"],
                customer=form.cleaned_data["customer"],
                lines=lines_formset.lines() if lines_formset is not None else [],
                **form.header(changed_only=False),
            )
        adopt_saved(form.instance, saved)

    def construct_change_message(self, request, form, formsets, add=False):
        return [{"added": {}}] if add else [{"changed": {"fields": form.changed_data}}]

    # buttons and their pages

    def get_urls(self):
        def view(method, suffix):
            return path(
                f"<path:object_id>/{suffix}/",
                self.admin_site.admin_view(method),
                name=f"invoicing_invoice_{suffix.replace('-', '_').replace('/', '_')}",
            )

        return [
            *admin_reports.report_urls(self),
            view(self.approve_view, "approve"),
            view(self.payment_view, "payment"),
            view(self.void_view, "void"),
            view(self.credit_note_view, "credit-note"),
            view(self.debit_note_view, "debit-note"),
            view(self.mushak_html_view, "mushak"),
            view(self.mushak_pdf_view, "mushak/pdf"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"reports": admin_reports.report_links(), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        invoice = self.get_object(request, unquote(object_id))
        if invoice is not None:
            extra["buttons"] = self._buttons(request, invoice)
        return super().change_view(request, object_id, form_url, extra)

    def _buttons(self, request, invoice: Invoice) -> list[dict]:
        def url(suffix):
            return reverse(f"admin:invoicing_invoice_{suffix}", args=[invoice.pk])

        buttons = []
        if self._allowed(request, invoice, write=True):
            status = invoice.status
            if status == InvoiceStatus.DRAFT:
                buttons.append({"title": "Approve…", "url": url("approve")})
            if invoice.kind == InvoiceKind.INVOICE and invoice.amount_due > 0:
                buttons.append({"title": "Record payment…", "url": url("payment")})
            if invoice.kind == InvoiceKind.INVOICE and status in (
                InvoiceStatus.APPROVED,
                InvoiceStatus.PARTIALLY_PAID,
                InvoiceStatus.PAID,
                InvoiceStatus.OVERDUE,
            ):
                buttons.append({"title": "Credit note…", "url": url("credit_note")})
                buttons.append({"title": "Debit note…", "url": url("debit_note")})
            if status != InvoiceStatus.VOID and (
                status == InvoiceStatus.DRAFT or not invoice.is_note
            ):
                buttons.append({"title": "Void…", "url": url("void")})
        if invoice.kind in documents.FORMS:
            form = documents.FORMS[invoice.kind]
            buttons.append({"title": f"Print Mushak-{form}", "url": url("mushak"), "new": True})
            buttons.append({"title": "PDF", "url": url("mushak_pdf"), "new": True})
        return buttons

    def _invoice_for(self, request, object_id, *, write: bool) -> Invoice:
        invoice = self.get_object(request, unquote(object_id))
        if invoice is None:
            raise Http404("No such invoice.")
        if not self._allowed(request, invoice, write=write):
            raise PermissionDenied
        return invoice

    def _back(self, invoice: Invoice) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:invoicing_invoice_change", args=[invoice.pk]))

    def _page(self, request, invoice, *, title, intro, form, submit, formset=None):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(invoice),
            "intro": intro,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "invoice": invoice,
            "form": form,
            "formset": formset,
            "submit": submit,
            "media": self.media + form.media + (formset.media if formset else form.media),
            "has_errors": bool(form.errors) or (formset is not None and formset.is_bound
                                               and not formset.is_valid()),
        }  # fmt: skip
        return TemplateResponse(request, "admin/invoicing/invoice/command.html", context)

    def _run(self, request, invoice, form, call, done):
        """Call the service; success -> message and back to the invoice; refusal -> on the
        form (the service's transaction wrote nothing)."""
        try:
            result = call()
        except DomainError as refusal:
            form.add_error(None, refusal.message)
            return None
        self.message_user(request, done(result), messages.SUCCESS)
        return self._back(result if result.pk == invoice.pk else invoice)

    def approve_view(self, request, object_id):
        invoice = self._invoice_for(request, object_id, write=True)
        form = ApproveForm(request.POST or None, invoice=invoice)
        if request.method == "POST" and form.is_valid():
            answer = self._run(
                request,
                invoice,
                form,
                lambda: services.invoice_approve(
                    actor=request.user,
                    invoice=invoice,
                    expected_version=form.cleaned_data["expected_version"],
                ),
                lambda done: (
                    f"Approved as {done.number}: total {money(done.total_amount)}, "
                    f"due {done.due_date}; the receivable is posted."
                ),
            )
            if answer:
                return answer
        return self._page(
            request,
            invoice,
            title="Approve invoice",
            intro="Approval gives the draft its number (gapless, per branch and fiscal year), "
            "freezes its rates and amounts, and posts the receivable to the ledger. It cannot "
            "be edited afterwards: corrections are credit or debit notes.",
            form=form,
            submit="Approve and post",
        )

    def payment_view(self, request, object_id):
        invoice = self._invoice_for(request, object_id, write=True)
        form = PaymentForm(request.POST or None, invoice=invoice)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            answer = self._run(
                request,
                invoice,
                form,
                lambda: services.invoice_payment_record(
                    actor=request.user,
                    invoice=invoice,
                    amount=data["amount"] or "0",
                    date=data["date"],
                    vds_withheld=data.get("vds_withheld") or "0",
                    account=data.get("account"),
                    method=data.get("method", ""),
                    reference=data.get("reference", ""),
                    expected_version=data["expected_version"],
                ),
                lambda done: (
                    f"Payment of {money(data['amount'] or 0)} recorded on {done}: "
                    f"{done.get_status_display().lower()}, {money(done.amount_due)} still due."
                ),
            )
            if answer:
                return answer
        return self._page(
            request,
            invoice,
            title="Record a payment",
            intro=f"{money(invoice.amount_due)} is due. Partial payments are fine; more than "
            "is due is refused.",
            form=form,
            submit="Record payment",
        )

    def void_view(self, request, object_id):
        invoice = self._invoice_for(request, object_id, write=True)
        form = VoidForm(request.POST or None, invoice=invoice)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            answer = self._run(
                request,
                invoice,
                form,
                lambda: services.invoice_void(
                    actor=request.user,
                    invoice=invoice,
                    reason=data["reason"],
                    expected_version=data["expected_version"],
                ),
                lambda done: (
                    f"{done} is void"
                    + ("; its receivable entry is reversed." if done.void_journal_entry_id else ".")
                ),
            )
            if answer:
                return answer
        return self._page(
            request,
            invoice,
            title="Void invoice",
            intro="A void invoice keeps its number, marked void, and its receivable entry is "
            "reversed. An invoice with payments or notes cannot be voided: issue a credit note.",
            form=form,
            submit="Void",
        )

    def _note_view(self, request, object_id, *, kind: str):
        invoice = self._invoice_for(request, object_id, write=True)
        choices = vat_rate_choices([invoice.company])
        line_kwargs = {
            "prefix": "lines",
            "form_kwargs": {"company": invoice.company, "vat_choices": choices},
        }
        form = NoteForm(request.POST or None, invoice=invoice)
        if request.method == "POST":
            formset = NoteLineFormSet(request.POST, **line_kwargs)
            if form.is_valid() and formset.is_valid():
                data = form.cleaned_data
                service = (
                    services.credit_note_issue if kind == "credit" else services.debit_note_issue
                )
                try:
                    note = service(
                        actor=request.user,
                        invoice=invoice,
                        reason=data["reason"],
                        lines=formset.lines(),
                        issue_date=data.get("issue_date"),
                        expected_version=data["expected_version"],
                    )
                except DomainError as refusal:
                    form.add_error(None, refusal.message)
                else:
                    self.message_user(
                        request,
                        f"{note.number} issued on {invoice}: {money(note.total_amount)} "
                        f"({kind} note, Mushak-{note.mushak_form}).",
                        messages.SUCCESS,
                    )
                    return self._back(note)
        else:
            formset = NoteLineFormSet(**line_kwargs)
        effect = "lowers" if kind == "credit" else "raises"
        return self._page(
            request,
            invoice,
            title=f"Issue a {kind} note",
            intro=f"A {kind} note {effect} what {invoice} asks for, with its own number and "
            "Mushak form, and posts the difference to the ledger. Lines naming an item take "
            "its description, unit, price and rates unless you fill them in.",
            form=form,
            formset=formset,
            submit=f"Issue {kind} note",
        )

    def credit_note_view(self, request, object_id):
        return self._note_view(request, object_id, kind="credit")

    def debit_note_view(self, request, object_id):
        return self._note_view(request, object_id, kind="debit")

    def mushak_html_view(self, request, object_id):
        invoice = self._invoice_for(request, object_id, write=False)
        return HttpResponse(documents.mushak_html(invoice), content_type="text/html")

    def mushak_pdf_view(self, request, object_id):
        invoice = self._invoice_for(request, object_id, write=False)
        response = HttpResponse(documents.mushak_pdf(invoice), content_type="application/pdf")
        filename = documents.mushak_filename(invoice, "pdf")
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        return response

    # list actions

    @admin.action(description="Approve selected drafts", permissions=["manage"])
    def approve_drafts(self, request, queryset):
        drafts = list(
            queryset.filter(status=InvoiceStatus.DRAFT)
            .select_related("company")
            .order_by("issue_date", "pk")
        )
        approved = []
        for draft in drafts:
            try:
                approved.append(services.invoice_approve(actor=request.user, invoice=draft))
            except DomainError as error:
                self.refuse(request, draft, error)
        if approved:
            numbers = ", ".join(invoice.number for invoice in approved[:10])
            more = f" and {len(approved) - 10} more" if len(approved) > 10 else ""
            self.message_user(
                request, f"{_plural(len(approved), 'invoice')} approved: {numbers}{more}."
            )
        skipped = queryset.exclude(status=InvoiceStatus.DRAFT).count()
        if skipped:
            self.message_user(
                request,
                f"{_plural(skipped, 'invoice was', 'invoices were')} not a draft; left as is.",
                messages.WARNING,
            )


# --- recurring invoices ------------------------------------------------------------------------


@admin.register(RecurringInvoice)
class RecurringInvoiceAdmin(ServiceFormMixin, InvoicingAdmin):
    form = RecurringInvoiceForm
    list_display = [
        "name",
        "customer",
        "frequency",
        "interval",
        "next_date",
        "auto_approve",
        "is_active",
        "last_run_on",
        "last_error",
    ]
    list_filter = ["is_active", "frequency", "auto_approve"]
    list_select_related = ["customer"]
    search_fields = ["name", "customer__name"]
    ordering = ["next_date"]
    actions = ["issue_due"]
    fieldsets = [
        (None, {"fields": ["company", "name", "customer", "lines", "lines_preview"]}),
        (
            "Schedule",
            {
                "fields": [
                    "frequency",
                    "interval",
                    "next_date",
                    "end_date",
                    "due_days",
                    "auto_approve",
                    "is_active",
                ]
            },
        ),
        ("Invoice header", {"fields": ["currency", "branch", "destination", "notes"]}),
        ("Runs", {"fields": ["last_run_on", "last_error", "issued"]}),
    ]

    @admin.display(description="Lines as they will be invoiced")
    def lines_preview(self, obj):
        lines = obj.lines if obj and isinstance(obj.lines, list) else []
        if not lines:
            return "—"
        items = {
            item.pk: item
            for item in Item.objects.filter(
                company_id=obj.company_id,
                pk__in=[line.get("item") for line in lines if isinstance(line, dict)],
            ).select_related("vat_rate")
        }
        rows = []
        for line in lines:
            item = items.get(line.get("item")) if isinstance(line, dict) else None
            rows.append(
                (
                    line.get("description") or (item.name if item else ""),
                    line.get("quantity", ""),
                    line.get("unit") or (item.unit if item else ""),
                    line.get("unit_price") or (f"{item.unit_price:,.2f}" if item else ""),
                    line.get("vat_rate") or (item.vat_rate.code if item else ""),
                )
            )
        return format_html_join(mark_safe("<br>"), "{} — {} {} at {} ({})", rows)

    @admin.display(description="Invoices issued")
    def issued(self, obj):
        if not obj.pk:
            return "—"
        count = obj.invoices.count()
        url = reverse("admin:invoicing_invoice_changelist")
        return format_html('<a href="{}?recurring__id__exact={}">{}</a>', url, obj.pk, count)

    def get_readonly_fields(self, request, obj=None):
        shown = ["lines_preview", "last_run_on", "last_error", "issued"]
        return ["company", *shown] if obj else shown

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "customer":
            kwargs["queryset"] = Party.objects.filter(
                company__in=_writable(request), kind__in=["customer", "both"], is_active=True
            ).order_by("name")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        names = [n for n in services.RECURRING_FIELDS if n in form.cleaned_data]
        if change:
            changes = _fields_from(form, [n for n in names if n in form.changed_data])
            saved = services.recurring_invoice_update(actor=request.user, recurring=obj, **changes)
        else:
            fields = _fields_from(form, names)
            saved = services.recurring_invoice_create(
                actor=request.user, company=form.cleaned_data["company"], **fields
            )
        adopt_saved(obj, saved)

    @admin.action(description="Issue the invoices now due", permissions=["manage"])
    def issue_due(self, request, queryset):
        total = 0
        for template in queryset.select_related("company").order_by("next_date"):
            try:
                made = services.recurring_invoice_generate(
                    actor=request.user,
                    recurring=template,
                    system_job=f"invoicing.recurring:{request.user.get_username()}",
                )
            except DomainError as error:
                self.refuse(request, template, error)
                continue
            total += len(made)
            if made:
                self.message_user(request, f"{template}: {_plural(len(made), 'invoice')} issued.")
        if not total:
            self.message_user(request, "Nothing was due.", messages.WARNING)
