"""Banking in the admin: accounts, transactions, statements, reconciliation, transfers, cash.

Every write goes through banking's services (banking.services, banking.imports,
banking.reconciliation); these classes add only the interface.
- A transaction is edited on its page while it is a draft; once posted its figures are
  read-only (its texts stay editable). **Post selected transactions** posts many at once.
- **Upload a statement** is the statement import's add page: file, bank account, format. A
  broken file comes back on the form with the parser's message naming the line; nothing is
  imported.
- The reconciliation screen (one bank account and month, from the account list or the
  reconciliation list) is the accountant's daily page: statement lines on one side, candidate
  book transactions on the other, suggestions with their confidence, and buttons for each
  service (match, unmatch, accept, reject, auto-reconcile, create a fee or interest
  transaction, settle an invoice).
- The reports (cash position, transfer tracking, dimensional analysis, variance) hang off the
  bank account list (banking.admin_reports).
- A refusal (core.errors.DomainError) comes back with the service's message; nothing is
  half-written.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounting.admin import ServiceFormMixin, _plural
from banking import admin_reports, imports, reconciliation, services
from banking.forms import (
    BankAccountForm,
    BankTransactionForm,
    CommandForm,
    ServiceModelForm,
    StatementUploadForm,
)
from banking.models import (
    BankAccount,
    BankingSettings,
    BankReconciliation,
    BankTransaction,
    BankTransfer,
    BankTransferAllocation,
    CashSubmission,
    CashSubmissionStatus,
    FloatAllocation,
    MatchStatus,
    PettyCashVoucher,
    PostingStatus,
    ReconciliationMatch,
    StatementImport,
    StatementLine,
    TransferStatus,
)
from core.admin import IdListFilter, SeveralCompaniesAdmin, adopt_saved
from core.errors import DomainError
from core.selectors import companies_for

SCOPE = "banking"
MONEY_PLACES = Decimal("0.01")


def money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


class BankingAdmin(SeveralCompaniesAdmin):
    """Readable by every role of a company, written by owners, accountants and clerks (scope
    "banking"). A user of several companies also gets a company column and filter."""

    scope = SCOPE

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # financial rows are never bulk-deleted
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    def has_manage_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj, write=True)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        writable = list(companies_for(request.user, SCOPE, write=True)[:2])
        if len(writable) == 1:
            initial.setdefault("company", writable[0].pk)
        return initial

    def refuse(self, request, label, error: DomainError) -> None:
        self.message_user(request, f"{label}: {error.message}", messages.ERROR)

    def _command_page(self, request, obj, *, title, intro, form, back):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj),
            "intro": intro,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "object": obj,
            "form": form,
            "back": back,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/banking/command.html", context)

    def _object_for(self, request, object_id, *, write: bool):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("Not found.")
        if not self._allowed(request, obj, write=write):
            raise PermissionDenied
        return obj

    def _run_command(self, request, obj, *, title, intro, form_class, call, done):
        """A one-form command page: GET shows the form; a valid POST calls the service, then
        goes back to the object with `done(result)` as the message; a refusal comes back on
        the form with the service's message."""
        back = reverse(f"admin:banking_{self.opts.model_name}_change", args=[obj.pk])
        form = form_class(request.POST or None, obj=obj)
        if request.method == "POST" and form.is_valid():
            try:
                result = call(form.cleaned_data)
            except DomainError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, done(result))
                return HttpResponseRedirect(back)
        return self._command_page(request, obj, title=title, intro=intro, form=form, back=back)


class BankAccountListFilter(IdListFilter):
    """Bank accounts of the companies this user may read, and no others."""

    field = "bank_account_id"
    title = "bank account"
    parameter_name = "bank_account"

    def lookups(self, request, model_admin):
        accounts = BankAccount.objects.filter(
            company__in=companies_for(request.user, SCOPE, write=False)
        ).order_by("name")
        return [(account.pk, account.name) for account in accounts]


# --- bank accounts -----------------------------------------------------------------------------


@admin.register(BankAccount)
class BankAccountAdmin(ServiceFormMixin, BankingAdmin):
    form = BankAccountForm
    list_display = [
        "name",
        "bank_name",
        "currency",
        "masked",
        "ledger_account",
        "is_active",
        "reconcile_link",
    ]
    list_filter = ["is_active", "currency"]
    list_select_related = ["ledger_account"]
    search_fields = ["name", "bank_name", "iban", "account_number_masked"]
    ordering = ["name"]
    change_list_template = "admin/banking/bankaccount/change_list.html"

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["company", "name", "ledger_account", "currency", "is_active"]}),
            (
                "Bank",
                {
                    "fields": [
                        "bank_name",
                        "branch",
                        "account_number_masked",
                        "iban",
                        "bic",
                        "opening_balance",
                        "opening_date",
                        "auto_accept_confidence",
                    ]
                },
            ),
            (
                "CSV statement mapping",
                {
                    "fields": BankAccountForm.MAPPING_FIELDS,
                    "description": "How this account's CSV statements are read. Leave the "
                    "date column empty if the bank sends no CSV.",
                },
            ),
        ]

    @admin.display(description="Number / IBAN")
    def masked(self, obj):
        return obj.iban or obj.account_number_masked

    @admin.display(description="Reconcile")
    def reconcile_link(self, obj):
        return format_html(
            '<a href="{}">Reconcile…</a>', reverse("admin:banking_reconcile", args=[obj.pk])
        )

    def get_readonly_fields(self, request, obj=None):
        return ["company", "ledger_account", "currency"] if obj else []

    def save_model(self, request, obj, form, change):
        fields = form.service_fields()
        if change:
            changes = {name: value for name, value in fields.items() if name in form.changed}
            saved = services.bank_account_update(actor=request.user, bank_account=obj, **changes)
        else:
            saved = services.bank_account_create(
                actor=request.user, company=form.cleaned_data["company"], **fields
            )
        adopt_saved(obj, saved)

    def get_urls(self):
        return [
            *admin_reports.report_urls(self),
            path(
                "<path:object_id>/reconcile/",
                self.admin_site.admin_view(self.reconcile_view),
                name="banking_reconcile",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"reports": admin_reports.report_links(), **(extra_context or {})}
        return super().changelist_view(request, extra)

    # --- the reconciliation screen ------------------------------------------------------------

    def reconcile_view(self, request, object_id):
        from banking import admin_reconcile

        account = self._object_for(request, object_id, write=False)
        return admin_reconcile.screen(self, request, account)


# --- settings ----------------------------------------------------------------------------------


class BankingSettingsForm(ServiceModelForm):
    class Meta:
        model = BankingSettings
        fields = [
            "company",
            "reconciliation_threshold",
            "variance_alert_threshold",
            "auto_accept_confidence",
            "match_window_days",
            "alert_recipients",
        ]


@admin.register(BankingSettings)
class BankingSettingsAdmin(ServiceFormMixin, BankingAdmin):
    """A company's own thresholds; an empty field takes the project default (BANKING_*)."""

    form = BankingSettingsForm
    list_display = [
        "company",
        "reconciliation_threshold",
        "variance_alert_threshold",
        "auto_accept_confidence",
        "match_window_days",
    ]
    list_select_related = ["company"]

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []

    def save_model(self, request, obj, form, change):
        company = obj.company if change else form.cleaned_data["company"]
        names = [n for n in BankingSettingsForm.Meta.fields if n != "company"]
        changes = {
            n: form.cleaned_data.get(n) for n in names if not change or n in form.changed_data
        }
        saved = services.banking_settings_update(actor=request.user, company=company, **changes)
        adopt_saved(obj, saved)


# --- transactions ------------------------------------------------------------------------------


@admin.register(BankTransaction)
class BankTransactionAdmin(ServiceFormMixin, BankingAdmin):
    form = BankTransactionForm
    list_display = [
        "date",
        "bank_account",
        "kind",
        "signed",
        "reference",
        "counterparty",
        "cost_center",
        "project",
        "department",
        "posting_status",
        "entry_link",
        "reconciled",
    ]
    list_filter = [
        BankAccountListFilter,
        "posting_status",
        "kind",
        "direction",
        "source",
        ("date", admin.DateFieldListFilter),
    ]
    list_select_related = [
        "bank_account",
        "cost_center",
        "project",
        "department",
        "journal_entry__fiscal_year",  # the entry's reference names its fiscal year
    ]
    search_fields = ["reference", "counterparty", "memo"]
    search_help_text = "A reference, a counterparty or words of the memo."
    date_hierarchy = "date"
    show_full_result_count = False
    ordering = ["-date", "-id"]
    actions = ["post_selected"]
    FIGURES = [
        "bank_account",
        "kind",
        "direction",
        "amount",
        "date",
        "value_date",
        "counter_account",
        "cost_center",
        "project",
        "department",
        "branch",
    ]

    def get_fieldsets(self, request, obj=None):
        texts = ["reference", "counterparty", "memo"]
        posting = ["posting_status", "journal_entry", "posted_at", "source", "invoice"]
        return [
            (
                None,
                {"fields": [*(["company"] if obj else []), *self.FIGURES[:6], "counter_account"]},
            ),
            ("Dimensions", {"fields": ["branch", "cost_center", "project", "department"]}),
            # A draft's page carries the version it was read at (hidden): saving after someone
            # else changed it is refused instead of overwriting their change.
            (
                "Texts",
                {"fields": [*texts, *(["version_read"] if obj and not obj.is_posted else [])]},
            ),
            ("Posting", {"fields": [*posting, "reconciled_amount", "version"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        always = [
            "posting_status",
            "journal_entry",
            "posted_at",
            "source",
            "invoice",
            "reconciled_amount",
            "version",
        ]
        if obj is None:
            return always
        if obj.is_posted:  # a posted transaction never changes: post a correcting one
            return ["company", *self.FIGURES, "reference", "counterparty", "memo", *always]
        return ["company", "bank_account", *always]

    @admin.display(description="Amount", ordering="amount")
    def signed(self, obj):
        return money(obj.signed_amount)

    @admin.display(description="Journal entry")
    def entry_link(self, obj):
        if obj.journal_entry_id is None:
            return ""
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:accounting_journalentry_change", args=[obj.journal_entry_id]),
            obj.journal_entry.reference,
        )

    @admin.display(description="Reconciled")
    def reconciled(self, obj):
        if obj.reconciled_amount >= obj.amount:
            return "yes"
        return money(obj.reconciled_amount) if obj.reconciled_amount else "no"

    def save_model(self, request, obj, form, change):
        fields = form.service_fields()
        if change:
            changes = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = services.bank_transaction_update(
                actor=request.user,
                transaction=obj,
                expected_version=form.cleaned_data.get("version_read"),
                **changes,
            )
        else:
            saved = services.bank_transaction_create(actor=request.user, **fields)
        adopt_saved(obj, saved)

    @admin.action(description="Post selected transactions", permissions=["manage"])
    def post_selected(self, request, queryset):
        skipped = queryset.filter(posting_status=PostingStatus.POSTED).count()
        drafts = list(
            queryset.filter(posting_status=PostingStatus.DRAFT)
            .select_related("bank_account", "company")
            .order_by("date", "pk")
        )
        posted = 0
        for draft in drafts:
            try:
                services.bank_transaction_post(actor=request.user, transaction=draft)
            except DomainError as error:
                self.refuse(request, draft, error)
            else:
                posted += 1
        if posted:
            self.message_user(request, f"{_plural(posted, 'transaction')} posted.")
        if skipped:
            self.message_user(
                request,
                f"{_plural(skipped, 'transaction was', 'transactions were')} already posted; "
                "left as is.",
                messages.WARNING,
            )


# --- statements --------------------------------------------------------------------------------


@admin.register(StatementImport)
class StatementImportAdmin(BankingAdmin):
    list_display = [
        "created_at",
        "bank_account",
        "format",
        "filename",
        "statement_id",
        "closing_date",
        "closing",
        "line_count",
        "new_line_count",
        "imported_by",
    ]
    list_filter = [BankAccountListFilter, "format"]
    list_select_related = ["bank_account", "imported_by"]
    search_fields = ["filename", "statement_id", "sha256"]
    ordering = ["-created_at"]
    exclude = ["raw"]

    @admin.display(description="Closing balance")
    def closing(self, obj):
        return money(obj.closing_balance)

    def get_readonly_fields(self, request, obj=None):
        fields = [f.name for f in StatementImport._meta.fields if f.name != "raw"]
        return [*fields, "its_lines"]

    @admin.display(description="Lines")
    def its_lines(self, obj):
        lines = reverse("admin:banking_statementline_changelist")
        month = (obj.closing_date or obj.opening_date or obj.created_at.date()).strftime("%Y-%m")
        screen = reverse("admin:banking_reconcile", args=[obj.bank_account_id])
        return format_html(
            '<a href="{}?statement_import__id__exact={}">The {} lines of this file</a> · '
            '<a href="{}?period={}">Reconcile {}</a>',
            lines,
            obj.pk,
            obj.line_count,
            screen,
            month,
            month,
        )

    def has_change_permission(self, request, obj=None):
        return False  # an import is what the bank sent: read-only

    actions = ["delete_unmatched_imports"]

    @admin.action(
        description="Delete selected imports (only those none of whose lines is matched)",
        permissions=["manage"],
    )
    def delete_unmatched_imports(self, request, queryset):
        """Undo wrong imports through banking.imports.statement_import_delete (audited); an
        import with a matched line is refused and named."""
        done = lines = 0
        for record in queryset.order_by("pk"):
            label = str(record)
            try:
                result = imports.statement_import_delete(
                    actor=request.user, statement_import=record
                )
            except DomainError as error:
                self.refuse(request, label, error)
            else:
                done += 1
                lines += result["lines"]
        self.message_user(
            request, f"{_plural(done, 'import')} deleted with {_plural(lines, 'line')}."
        )

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        accounts = BankAccount.objects.filter(
            company__in=companies_for(request.user, SCOPE, write=True), is_active=True
        ).order_by("name")
        form = StatementUploadForm(request.POST or None, request.FILES or None, accounts=accounts)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = imports.statement_import_create(
                    actor=request.user,
                    bank_account=form.cleaned_data["bank_account"],
                    content=upload.read(),
                    filename=upload.name or "",
                    format=form.cleaned_data["format"] or None,
                )
            except DomainError as error:
                form.add_error("file", error.message)
            else:
                if getattr(result, "replayed", False):
                    self.message_user(
                        request,
                        f"This file was imported before ({result}); nothing was added.",
                        messages.WARNING,
                    )
                else:
                    ignored = getattr(result, "ignored_count", 0)
                    self.message_user(
                        request,
                        f"{result}: {_plural(result.line_count, 'line')} read, "
                        f"{result.new_line_count} new"
                        + (f", {ignored} of zero amount set aside as ignored" if ignored else "")
                        + ".",
                    )
                return HttpResponseRedirect(
                    reverse("admin:banking_statementimport_change", args=[result.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload a bank statement",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/banking/statementimport/upload.html", context)


@admin.register(StatementLine)
class StatementLineAdmin(BankingAdmin):
    list_display = [
        "date",
        "bank_account",
        "amount_shown",
        "reference",
        "counterparty",
        "description_short",
        "status",
        "reconciled_amount",
    ]
    list_filter = [BankAccountListFilter, "status", ("date", admin.DateFieldListFilter)]
    list_select_related = ["bank_account"]
    search_fields = ["reference", "counterparty", "description", "bank_id"]
    date_hierarchy = "date"
    show_full_result_count = False
    ordering = ["-date", "-id"]

    @admin.display(description="Amount", ordering="amount")
    def amount_shown(self, obj):
        return money(obj.amount)

    @admin.display(description="Description")
    def description_short(self, obj):
        return obj.description[:60]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in StatementLine._meta.fields]

    def has_add_permission(self, request):
        return False  # lines come from statement imports

    def has_change_permission(self, request, obj=None):
        return False


# --- reconciliations ---------------------------------------------------------------------------


@admin.register(BankReconciliation)
class BankReconciliationAdmin(BankingAdmin):
    list_display = [
        "period_shown",
        "bank_account",
        "statement_closing",
        "book_balance",
        "outstanding_deposits",
        "outstanding_payments",
        "variance",
        "threshold",
        "status",
        "reconciled_by",
        "screen_link",
    ]
    list_filter = [BankAccountListFilter, "status"]
    list_select_related = ["bank_account", "reconciled_by"]
    ordering = ["-period", "bank_account__name"]

    @admin.display(description="Month", ordering="period")
    def period_shown(self, obj):
        return f"{obj.period:%Y-%m}"

    @admin.display(description="Screen")
    def screen_link(self, obj):
        url = reverse("admin:banking_reconcile", args=[obj.bank_account_id])
        return format_html('<a href="{}?period={}">Open…</a>', url, f"{obj.period:%Y-%m}")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BankReconciliation._meta.fields]

    def has_add_permission(self, request):
        return False  # made by the reconciliation screen and auto-reconcile

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReconciliationMatch)
class ReconciliationMatchAdmin(BankingAdmin):
    list_display = [
        "created_at",
        "statement_line",
        "bank_transaction",
        "amount",
        "method",
        "confidence",
        "status",
        "created_by",
    ]
    list_filter = ["status", "method"]
    list_select_related = ["statement_line", "bank_transaction", "created_by"]
    raw_id_fields = ["statement_line", "bank_transaction"]
    show_full_result_count = False
    ordering = ["-created_at"]
    actions = ["accept_selected", "reject_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ReconciliationMatch._meta.fields]

    def has_add_permission(self, request):
        return False  # matched on the reconciliation screen

    def has_change_permission(self, request, obj=None):
        return False

    def _each(self, request, queryset, call, verb):
        done = refused = 0
        chosen = queryset.count()
        for match in queryset.filter(status=MatchStatus.SUGGESTED).order_by("pk"):
            try:
                call(actor=request.user, match=match)
            except DomainError as error:
                self.refuse(request, match, error)
                refused += 1
            else:
                done += 1
        skipped = chosen - done - refused
        text = f"{_plural(done, 'suggestion')} {verb}"
        if skipped:
            text += f", {skipped} skipped (not suggestions)"
        self.message_user(request, f"{text}.")

    @admin.action(description="Accept selected suggestions", permissions=["manage"])
    def accept_selected(self, request, queryset):
        self._each(request, queryset, reconciliation.reconciliation_accept, "accepted")

    @admin.action(description="Reject selected suggestions", permissions=["manage"])
    def reject_selected(self, request, queryset):
        self._each(request, queryset, reconciliation.reconciliation_reject, "rejected")


# --- transfers ---------------------------------------------------------------------------------


class TransferLegInline(admin.TabularInline):
    model = BankTransferAllocation
    fields = ["leg", "bank_account", "amount", "date", "bank_transaction", "cleared"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TransferForm(ServiceModelForm):
    class Meta:
        model = BankTransfer
        fields = [
            "from_account",
            "to_account",
            "amount",
            "date",
            "expected_settlement_date",
            "reference",
            "memo",
            "cost_center",
            "project",
            "department",
        ]


@admin.register(BankTransfer)
class BankTransferAdmin(ServiceFormMixin, BankingAdmin):
    form = TransferForm
    list_display = [
        "date",
        "from_account",
        "to_account",
        "amount",
        "currency",
        "reference",
        "expected_settlement_date",
        "status",
        "settled_on",
    ]
    list_filter = ["status"]
    list_select_related = ["from_account", "to_account"]
    search_fields = ["reference", "memo"]
    date_hierarchy = "date"
    ordering = ["-date", "-id"]
    inlines = [TransferLegInline]
    actions = ["send_selected", "cancel_selected"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["company", *TransferForm.Meta.fields, "currency", "status", "settled_on"]

    def save_model(self, request, obj, form, change):
        if change:
            return  # a transfer changes only through its buttons
        data = dict(form.cleaned_data)
        saved = services.bank_transfer_create(actor=request.user, **data)
        adopt_saved(obj, saved)

    def save_related(self, request, form, formsets, change):
        pass  # the legs are written by the services

    def get_urls(self):
        return [
            path(
                "<path:object_id>/receive/",
                self.admin_site.admin_view(self.receive_view),
                name="banking_banktransfer_receive",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        transfer = self.get_object(request, unquote(object_id))
        if (
            transfer is not None
            and transfer.status == TransferStatus.IN_TRANSIT
            and self._allowed(request, transfer, write=True)
        ):
            url = reverse("admin:banking_banktransfer_receive", args=[transfer.pk])
            extra["buttons"] = [{"title": "Record arrival…", "url": url}]
        return super().change_view(request, object_id, form_url, extra)

    def receive_view(self, request, object_id):
        transfer = self._object_for(request, object_id, write=True)
        return self._run_command(
            request,
            transfer,
            title="Record the arrival of a transfer",
            intro="Debit the receiving bank and credit the internal-transfer account for what "
            "arrived. Part of the amount is fine; the rest stays in transit.",
            form_class=CommandForm.receive,
            call=lambda data: services.bank_transfer_receive(
                actor=request.user, transfer=transfer, **data
            ),
            done=lambda _: f"{transfer}: arrival recorded.",
        )

    def _each(self, request, queryset, call, verb):
        done = 0
        for transfer in queryset.order_by("date", "pk"):
            try:
                call(actor=request.user, transfer=transfer)
            except DomainError as error:
                self.refuse(request, transfer, error)
            else:
                done += 1
        if done:
            self.message_user(request, f"{_plural(done, 'transfer')} {verb}.")

    @admin.action(
        description="Send selected transfers (post the outgoing leg)", permissions=["manage"]
    )
    def send_selected(self, request, queryset):
        self._each(
            request, queryset.filter(status=TransferStatus.INITIATED), services.bank_transfer_send,
            "sent",
        )  # fmt: skip

    @admin.action(description="Cancel selected transfers", permissions=["manage"])
    def cancel_selected(self, request, queryset):
        self._each(request, queryset, services.bank_transfer_cancel, "cancelled")


# --- cash submissions --------------------------------------------------------------------------


class CashSubmissionForm(ServiceModelForm):
    class Meta:
        model = CashSubmission
        fields = [
            "branch",
            "from_account",
            "bank_account",
            "expected_amount",
            "submitted_on",
            "reference",
            "memo",
            "cost_center",
            "project",
            "department",
        ]


@admin.register(CashSubmission)
class CashSubmissionAdmin(ServiceFormMixin, BankingAdmin):
    form = CashSubmissionForm
    list_display = [
        "submitted_on",
        "branch",
        "bank_account",
        "expected_amount",
        "deposited_amount",
        "variance",
        "deposited_on",
        "status",
        "reference",
    ]
    list_filter = ["status", "branch"]
    list_select_related = ["bank_account"]
    search_fields = ["branch", "reference"]
    date_hierarchy = "submitted_on"
    ordering = ["-submitted_on", "-id"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "company",
            *CashSubmissionForm.Meta.fields,
            "deposited_amount",
            "deposited_on",
            "variance",
            "status",
            "submission_entry",
            "deposit_transaction",
        ]

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = dict(form.cleaned_data)
        saved = services.cash_submission_create(actor=request.user, **data)
        adopt_saved(obj, saved)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/deposit/",
                self.admin_site.admin_view(self.deposit_view),
                name="banking_cashsubmission_deposit",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        submission = self.get_object(request, unquote(object_id))
        if (
            submission is not None
            and submission.status == CashSubmissionStatus.SUBMITTED
            and self._allowed(request, submission, write=True)
        ):
            url = reverse("admin:banking_cashsubmission_deposit", args=[submission.pk])
            extra["buttons"] = [{"title": "Record deposit…", "url": url}]
        return super().change_view(request, object_id, form_url, extra)

    def deposit_view(self, request, object_id):
        submission = self._object_for(request, object_id, write=True)
        return self._run_command(
            request,
            submission,
            title="Record the bank's deposit",
            intro=f"Expected {money(submission.expected_amount)}. Debit the bank and credit "
            "cash in transit; a difference goes to cash over/short.",
            form_class=CommandForm.deposit,
            call=lambda data: services.cash_submission_deposit(
                actor=request.user, submission=submission, **data
            ),
            done=lambda _: f"{submission}: deposit recorded.",
        )


# --- petty cash --------------------------------------------------------------------------------


class VoucherInline(admin.TabularInline):
    """Vouchers of the float. New rows are saved through petty_cash_voucher_create; saved ones
    are read-only (a replenished voucher is part of a posted entry)."""

    model = PettyCashVoucher
    fields = [
        "date",
        "amount",
        "expense_account",
        "description",
        "reference",
        "cost_center",
        "project",
        "department",
        "status",
    ]
    readonly_fields = ["status"]
    extra = 1
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False if obj is None else self.has_add_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["status"]

    def has_add_permission(self, request, obj=None):
        return (
            obj is not None
            and companies_for(request.user, SCOPE, write=True).filter(pk=obj.company_id).exists()
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("expense_account")


class FloatForm(ServiceModelForm):
    class Meta:
        model = FloatAllocation
        fields = [
            "name",
            "custodian",
            "bank_account",
            "petty_cash_account",
            "float_amount",
            "issued_on",
            "cost_center",
            "project",
            "department",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "petty_cash_account" in self.fields:
            self.fields["petty_cash_account"].required = False
            self.fields["petty_cash_account"].help_text = "Empty: the company's petty cash account."


@admin.register(FloatAllocation)
class FloatAllocationAdmin(ServiceFormMixin, BankingAdmin):
    form = FloatForm
    list_display = ["name", "custodian", "bank_account", "float_amount", "issued_on", "status"]
    list_filter = ["status"]
    list_select_related = ["bank_account"]
    search_fields = ["name", "custodian"]
    ordering = ["name"]
    inlines = [VoucherInline]

    def get_inlines(self, request, obj):
        return [VoucherInline] if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["company", *FloatForm.Meta.fields, "status", "issue_transaction"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = dict(form.cleaned_data)
        if not data.get("petty_cash_account"):
            data.pop("petty_cash_account", None)
        saved = services.float_allocation_create(actor=request.user, **data)
        adopt_saved(obj, saved)

    def save_formset(self, request, form, formset, change):
        for voucher_form in formset.forms:
            if voucher_form.instance.pk or not voucher_form.has_changed():
                continue
            data = {
                name: voucher_form.cleaned_data.get(name)
                for name in VoucherInline.fields
                if name != "status"
            }
            services.petty_cash_voucher_create(
                actor=request.user, float_allocation=form.instance, **data
            )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/replenish/",
                self.admin_site.admin_view(self.replenish_view),
                name="banking_floatallocation_replenish",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        allocation = self.get_object(request, unquote(object_id))
        if allocation is not None and self._allowed(request, allocation, write=True):
            url = reverse("admin:banking_floatallocation_replenish", args=[allocation.pk])
            extra["buttons"] = [{"title": "Replenish…", "url": url}]
        return super().change_view(request, object_id, form_url, extra)

    def replenish_view(self, request, object_id):
        allocation = self._object_for(request, object_id, write=True)
        open_total = sum(
            (v.amount for v in allocation.vouchers.filter(status="open")), Decimal("0.00")
        )
        return self._run_command(
            request,
            allocation,
            title="Replenish the float",
            intro=f"Float {money(allocation.float_amount)}; open vouchers "
            f"{money(open_total)}. Count the cash in the box: the vouchers' expenses are "
            "posted against the bank, and counted cash + vouchers − float goes to cash "
            "over/short.",
            form_class=CommandForm.replenish,
            call=lambda data: services.float_replenish(
                actor=request.user, float_allocation=allocation, **data
            ),
            done=lambda r: (
                f"{allocation}: replenished {money(r.vouchers_total)} "
                f"(over/short {money(r.over_short)})."
            ),
        )


__all__ = ["BankingAdmin", "money"]
