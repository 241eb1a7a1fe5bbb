"""The general ledger in the admin: the screens finance staff work in all day.

Every write goes through accounting.services; these classes add only the interface. Posted
entries are read-only and never deleted, periods and fiscal years change state only through
actions, and nothing financial is bulk-updated or bulk-deleted.

A refusal from a service (core.errors.DomainError) never reads as success:
- on an add/change form (ServiceFormMixin) the request's transaction rolls back and the same
  form comes back, filled in as it was sent, with the service's message on it;
- on the manual-entry and reversal pages the message goes on the form; the service's own
  transaction has written nothing;
- an action reports what it did and, one message each, what it refused and why.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from accounting import admin_reports, selectors, services
from accounting.admin_reports import chosen_company, money
from accounting.forms import (
    FiscalYearOpenForm,
    JournalEntryForm,
    JournalLineFormSet,
    LineChoices,
    ReverseEntryForm,
)
from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRole,
    CostCenter,
    Department,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    PeriodStatus,
    Project,
)
from core.admin import IdListFilter, SeveralCompaniesAdmin, adopt_saved, readable_companies
from core.errors import DomainError
from core.selectors import companies_for


def _readable(request) -> list:
    """The companies whose books this user may read, once per request."""
    return readable_companies(request, "accounting")


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


# --- list filters that show only the user's own companies' choices ---------------------------


class FiscalYearListFilter(IdListFilter):
    field = "fiscal_year_id"
    title = "fiscal year"
    parameter_name = "fiscal_year"

    def lookups(self, request, model_admin):
        companies = _readable(request)
        years = FiscalYear.objects.filter(company__in=companies).select_related("company")
        several = len(companies) > 1
        return [
            (year.pk, f"{year.name} ({year.company.name})" if several else year.name)
            for year in years.order_by("company__name", "-start_date")
        ]


class PeriodListFilter(IdListFilter):
    field = "period_id"
    """The months of the fiscal year chosen in the filter above (or of the year containing
    today, for one company): a list of every period ever would be too long to use."""

    title = "period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        companies = _readable(request)
        periods = AccountingPeriod.objects.filter(company__in=companies)
        year = request.GET.get("fiscal_year", "")
        if year.isdigit():
            periods = periods.filter(fiscal_year_id=year)
        elif len(companies) == 1:
            today = companies[0].today()
            periods = periods.filter(
                fiscal_year__start_date__lte=today, fiscal_year__end_date__gte=today
            )
        else:
            return []
        return [
            (period.pk, f"{period.start_date:%Y-%m} (P{period.number:02d}, {period.status})")
            for period in periods.order_by("start_date")
        ]


class SourceTypeListFilter(admin.SimpleListFilter):
    title = "source"
    parameter_name = "source_type"

    def lookups(self, request, model_admin):
        kinds = (
            JournalEntry.objects.filter(company__in=_readable(request))
            .order_by("source_type")
            .values_list("source_type", flat=True)
            .distinct()
        )
        return [(kind, kind.replace("_", " ")) for kind in kinds[:50]]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(source_type=value)


# --- shared behaviour --------------------------------------------------------------------------


class LedgerAdmin(SeveralCompaniesAdmin):
    """Accounting's admins: readable by every role of a company, written by owners and
    accountants (core.roles, scope "accounting"). A user of several companies also gets a
    company column and filter."""

    scope = "accounting"

    def has_manage_permission(self, request, obj=None) -> bool:
        """For state changes made by actions (lock a period, close a year)."""
        return self._allowed(request, obj, write=True)

    def refuse(self, request, label, error: DomainError) -> None:
        self.message_user(request, f"{label}: {error.message}", messages.ERROR)


class ServiceFormMixin:
    """For add/change forms whose save_model calls a service.

    The service may refuse after the form was valid (a used account's type, a parent of
    another type). The admin's form view runs in a transaction: the refusal rolls it back, then
    the same form is built again from the same POST with the refusal added to its errors, so
    the page shows what was typed, the message, and no "changed successfully"."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as refusal:
            if request.method != "POST" or hasattr(request, "_service_refusal"):
                raise  # core.middleware.DomainErrorMiddleware shows it
            request._service_refusal = refusal
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        refusal = getattr(request, "_service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                self.add_error(None, refusal.message)
                for name, problems in refusal.fields.items():
                    if name in self.fields and name not in self.errors:
                        self.add_error(name, problems)
                return cleaned

        RefusedForm.__name__ = form_class.__name__
        return RefusedForm


def _each(model_admin, request, items, call, *, label=str) -> list:
    """Run a service per item; a refusal is reported and the rest go on. Returns what the
    service returned for each item it accepted."""
    done = []
    for item in items:
        try:
            done.append((item, call(item)))
        except DomainError as error:
            model_admin.refuse(request, label(item), error)
    return done


# --- chart of accounts -------------------------------------------------------------------------


def _depth(pk: int, parents: dict[int, int | None]) -> int:
    depth, node, seen = 0, parents.get(pk), {pk}
    while node is not None and node not in seen:
        depth += 1
        seen.add(node)
        node = parents.get(node)
    return depth


class AccountChangeList(ChangeList):
    """Adds each listed account's depth in the tree, from one query for the whole page."""

    def get_results(self, request):
        super().get_results(request)
        accounts = list(self.result_list)
        companies = {account.company_id for account in accounts}
        parents = dict(
            Account.objects.filter(company_id__in=companies).values_list("pk", "parent_id")
        )
        for account in accounts:
            account.depth = _depth(account.pk, parents)


@admin.register(Account)
class AccountAdmin(ServiceFormMixin, LedgerAdmin):
    list_display = ["code", "tree_name", "type", "parent_code", "is_postable", "is_active"]
    list_display_links = ["code", "tree_name"]
    list_filter = ["type", "is_postable", "is_active"]
    list_select_related = ["parent"]
    search_fields = ["code", "name"]
    ordering = ["company__name", "code"]
    list_per_page = 500
    fields = [
        "company",
        "code",
        "name",
        "type",
        "parent",
        "is_postable",
        "is_active",
        "description",
    ]
    actions = ["deactivate_accounts"]

    @admin.display(description="Name", ordering="name")
    def tree_name(self, obj):
        depth = getattr(obj, "depth", 0)
        if obj.is_postable:
            return format_html('<span style="padding-left:{}em">{}</span>', depth * 1.5, obj.name)
        return format_html('<strong style="padding-left:{}em">{}</strong>', depth * 1.5, obj.name)

    @admin.display(description="Parent", ordering="parent__code")
    def parent_code(self, obj):
        return obj.parent.code if obj.parent_id else ""

    def get_changelist(self, request, **kwargs):
        return AccountChangeList

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one account at a time, through the service
        return actions

    def get_urls(self):
        reports = [
            path(
                report.path,
                self.admin_site.admin_view(
                    partial(admin_reports.report_view, self, kind=report.kind)
                ),
                name=report.url_name,
            )
            for report in admin_reports.REPORTS
        ]
        return reports + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        if object_id:
            extra["ledger_url"] = (
                f"{admin_reports.BY_KIND['general_ledger'].url}?account={unquote(object_id)}"
            )
        return super().changeform_view(request, object_id, form_url, extra)

    def save_model(self, request, obj, form, change):
        if change:
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in services.ACCOUNT_FIELDS
            }
            saved = services.account_update(actor=request.user, account=obj, **changes)
        else:
            fields = {
                name: form.cleaned_data[name]
                for name in services.ACCOUNT_FIELDS
                if name in form.cleaned_data
            }
            saved = services.account_create(
                actor=request.user, company=form.cleaned_data["company"], **fields
            )
        adopt_saved(obj, saved)

    def get_deleted_objects(self, objs, request):
        # The default collects every protected journal line to list it: millions on a used
        # account. The service decides instead, and says why when it refuses.
        objs = list(objs)
        return [str(obj) for obj in objs], {"accounts": len(objs)}, set(), []

    def delete_model(self, request, obj):
        services.account_delete(actor=request.user, account=obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as refusal:  # raised inside the view's transaction: rolled back
            self.message_user(request, refusal.message, messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:accounting_account_change", args=[object_id])
            )

    @admin.action(description="Deactivate selected accounts", permissions=["change"])
    def deactivate_accounts(self, request, queryset):
        accounts = list(queryset.order_by("code"))
        active = [account for account in accounts if account.is_active]
        done = _each(
            self,
            request,
            active,
            lambda account: services.account_deactivate(actor=request.user, account=account),
        )
        if done:
            self.message_user(request, f"{_plural(len(done), 'account')} deactivated.")
        if len(active) < len(accounts):
            skipped = len(accounts) - len(active)
            self.message_user(
                request,
                f"{_plural(skipped, 'account was', 'accounts were')} already inactive.",
                messages.WARNING,
            )


@admin.register(AccountRole)
class AccountRoleAdmin(ServiceFormMixin, LedgerAdmin):
    """Which account each role posts to. Payroll, invoicing and banking ask for a role, never
    for an account code, so changing the mapping here redirects their future postings."""

    list_display = ["role_label", "role", "account"]
    list_display_links = ["role_label"]
    list_select_related = ["account"]
    search_fields = ["role", "account__code", "account__name"]
    fields = ["company", "role", "account"]

    @admin.display(description="Role", ordering="role")
    def role_label(self, obj):
        return obj.get_role_display()

    def get_readonly_fields(self, request, obj=None):
        return ["company", "role"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "account":
            kwargs["queryset"] = (
                self._related_choices(db_field, request)
                .filter(is_postable=True, is_active=True)
                .order_by("code")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False  # other modules rely on every mapping; map the role elsewhere instead

    def save_model(self, request, obj, form, change):
        saved = services.account_role_set(
            actor=request.user,
            company=obj.company,
            role=obj.role,
            account=form.cleaned_data["account"],
        )
        adopt_saved(obj, saved)


# --- dimensions --------------------------------------------------------------------------------


class DimensionAdmin(ServiceFormMixin, LedgerAdmin):
    list_display = ["code", "name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]
    ordering = ["company__name", "code"]
    fields = ["company", "code", "name", "is_active"]
    actions = ["deactivate_dimensions"]

    def get_readonly_fields(self, request, obj=None):
        return ["company"] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False  # journal lines keep pointing at them: deactivate instead

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name]
            for name in services.DIMENSION_FIELDS
            if name in form.cleaned_data
        }
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = services.dimension_update(actor=request.user, dimension=obj, **changed)
        else:
            saved = services.dimension_create(
                actor=request.user,
                company=form.cleaned_data["company"],
                model=self.model,
                **fields,
            )
        adopt_saved(obj, saved)

    @admin.action(description="Deactivate selected", permissions=["change"])
    def deactivate_dimensions(self, request, queryset):
        active = [item for item in queryset.order_by("code") if item.is_active]
        done = _each(
            self,
            request,
            active,
            lambda item: services.dimension_update(
                actor=request.user, dimension=item, is_active=False
            ),
        )
        name = self.model._meta
        self.message_user(
            request,
            f"{_plural(len(done), str(name.verbose_name), str(name.verbose_name_plural))} "
            "deactivated.",
        )


@admin.register(CostCenter)
class CostCenterAdmin(DimensionAdmin):
    pass


@admin.register(Project)
class ProjectAdmin(DimensionAdmin):
    pass


@admin.register(Department)
class DepartmentAdmin(DimensionAdmin):
    pass


# --- fiscal years and periods ------------------------------------------------------------------


class PeriodInline(admin.TabularInline):
    model = AccountingPeriod
    fields = ["number", "start_date", "end_date", "status", "status_changed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_view_permission(self, request, obj=None):
        return True  # shown only on a fiscal year page, which checked the user may see it

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(FiscalYear)
class FiscalYearAdmin(ServiceFormMixin, LedgerAdmin):
    form = FiscalYearOpenForm
    list_display = [
        "__str__",
        "start_date",
        "end_date",
        "status",
        "periods_summary",
        "closing_entry_link",
        "closed_at",
    ]
    list_filter = ["status"]
    list_select_related = ["closing_entry__fiscal_year"]
    ordering = ["company__name", "-start_date"]
    actions = ["close_fiscal_years", "open_next_fiscal_years"]
    view_fields = [
        "name",
        "company",
        "start_date",
        "end_date",
        "status",
        "closing_entry_link",
        "closed_at",
        "closed_by",
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_count=Count("periods", filter=Q(periods__status=PeriodStatus.OPEN)),
                locked_count=Count("periods", filter=Q(periods__status=PeriodStatus.LOCKED)),
                closed_count=Count("periods", filter=Q(periods__status=PeriodStatus.CLOSED)),
            )
        )

    @admin.display(description="Periods")
    def periods_summary(self, obj):
        counts = [
            (obj.open_count, "open"),
            (obj.locked_count, "locked"),
            (obj.closed_count, "closed"),
        ]
        return ", ".join(f"{count} {label}" for count, label in counts if count) or "none"

    @admin.display(description="Closing entry")
    def closing_entry_link(self, obj):
        entry = obj.closing_entry
        if entry is None:
            return "—"
        url = reverse("admin:accounting_journalentry_change", args=[entry.pk])
        return format_html('<a href="{}">{}</a>', url, entry.reference)

    def get_fields(self, request, obj=None):
        return self.view_fields if obj else ["company", "containing"]

    def get_readonly_fields(self, request, obj=None):
        return self.view_fields if obj else []

    def get_inlines(self, request, obj):
        return [PeriodInline] if obj else []

    def has_change_permission(self, request, obj=None):
        return False  # a year changes only by being closed (an action)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.fiscal_year_create(
            actor=request.user,
            company=form.cleaned_data["company"],
            containing=form.cleaned_data["containing"],
        )
        adopt_saved(obj, saved)

    @admin.action(description="Close fiscal year (year-end)", permissions=["manage"])
    def close_fiscal_years(self, request, queryset):
        years = list(queryset.select_related("company").order_by("company__name", "start_date"))
        if request.POST.get("confirm") != "yes":
            previews = []
            for year in years:
                preview = {"year": year, "closed": year.status == FiscalYear.Status.CLOSED}
                if not preview["closed"]:
                    pnl = selectors.profit_and_loss(
                        company=year.company, date_from=year.start_date, date_to=year.end_date
                    )
                    preview["income"] = money(pnl["total_income"])
                    preview["expenses"] = money(pnl["total_expenses"])
                    preview["net_label"] = "profit" if pnl["net_profit"] >= 0 else "loss"
                    preview["net"] = money(abs(pnl["net_profit"]))
                previews.append(preview)
            context = {
                **self.admin_site.each_context(request),
                "title": "Close fiscal years",
                "opts": self.opts,
                "previews": previews,
                "selected": [year.pk for year in years],
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/accounting/fiscalyear/close_confirmation.html", context
            )
        done = _each(
            self,
            request,
            years,
            lambda year: services.fiscal_year_close(actor=request.user, fiscal_year=year),
        )
        for _year, closed in done:
            self.message_user(request, self._closed_message(closed), messages.SUCCESS)

    @staticmethod
    def _closed_message(year: FiscalYear) -> str:
        pnl = selectors.profit_and_loss(
            company=year.company, date_from=year.start_date, date_to=year.end_date
        )
        net = pnl["net_profit"]
        if year.closing_entry is None:
            return f"{year} closed. It had no income or expenses, so no closing entry was needed."
        entry = JournalEntry.objects.select_related("fiscal_year").get(pk=year.closing_entry_id)
        result = "net profit" if net >= 0 else "net loss"
        return (
            f"{year} closed: closing entry {entry.reference} moved the {result} of "
            f"{money(abs(net))} to retained earnings; its periods are closed."
        )

    @admin.action(description="Open the next fiscal year", permissions=["manage"])
    def open_next_fiscal_years(self, request, queryset):
        for year in queryset.select_related("company").order_by("start_date"):
            day = year.end_date + timedelta(days=1)
            following = FiscalYear.objects.filter(
                company=year.company, start_date__lte=day, end_date__gte=day
            ).first()
            if following is not None:
                self.message_user(request, f"{following} already follows {year}.", messages.WARNING)
                continue
            try:
                opened = services.fiscal_year_create(
                    actor=request.user, company=year.company, containing=day
                )
            except DomainError as error:
                self.refuse(request, year, error)
                continue
            self.message_user(
                request,
                f"Opened {opened} ({opened.start_date} to {opened.end_date}) with its monthly "
                "periods.",
            )


@admin.register(AccountingPeriod)
class AccountingPeriodAdmin(LedgerAdmin):
    list_display = [
        "month",
        "fiscal_year",
        "number",
        "start_date",
        "end_date",
        "status",
        "status_changed_at",
        "status_changed_by",
    ]
    list_filter = ["status", FiscalYearListFilter]
    list_select_related = ["fiscal_year", "status_changed_by"]
    ordering = ["company__name", "start_date"]
    actions = ["lock_periods", "close_periods", "reopen_periods"]
    fields = [
        "company",
        "fiscal_year",
        "number",
        "start_date",
        "end_date",
        "status",
        "status_changed_at",
        "status_changed_by",
    ]
    readonly_fields = fields

    @admin.display(description="Period", ordering="start_date")
    def month(self, obj):
        return f"{obj.start_date:%Y-%m}"

    def has_add_permission(self, request):
        return False  # periods come with their fiscal year

    def has_change_permission(self, request, obj=None):
        return False  # status moves only through the actions below

    def has_delete_permission(self, request, obj=None):
        return False

    def _move(self, request, queryset, *, to: str, verb: str, service, newest_first=False):
        order = "-start_date" if newest_first else "start_date"
        periods = list(queryset.select_related("fiscal_year").order_by(order))
        moving = [period for period in periods if period.status != to]
        done = _each(
            self,
            request,
            moving,
            lambda period: service(actor=request.user, period=period),
            label=lambda period: period.label,
        )
        if done:
            self.message_user(request, f"{_plural(len(done), 'period')} {verb}.")
        if len(moving) < len(periods):
            already = len(periods) - len(moving)
            self.message_user(
                request,
                f"{_plural(already, 'period was', 'periods were')} already {to}.",
                messages.WARNING,
            )

    @admin.action(description="Lock selected periods", permissions=["manage"])
    def lock_periods(self, request, queryset):
        self._move(
            request, queryset, to=PeriodStatus.LOCKED, verb="locked", service=services.period_lock
        )

    @admin.action(description="Close selected periods", permissions=["manage"])
    def close_periods(self, request, queryset):
        # Oldest first: periods close in order.
        self._move(
            request, queryset, to=PeriodStatus.CLOSED, verb="closed", service=services.period_close
        )

    @admin.action(description="Reopen selected periods", permissions=["manage"])
    def reopen_periods(self, request, queryset):
        # Newest first: closed periods reopen from the latest back.
        self._move(
            request,
            queryset,
            to=PeriodStatus.OPEN,
            verb="reopened",
            service=services.period_reopen,
            newest_first=True,
        )


# --- journal entries ---------------------------------------------------------------------------


class JournalLineInline(admin.TabularInline):
    model = JournalLine
    fields = [
        "line_no",
        "account_name",
        "debit_amount",
        "credit_amount",
        "cost_center",
        "project",
        "department",
        "memo",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("account", "cost_center", "project", "department")
        )

    @admin.display(description="Account")
    def account_name(self, obj):
        return f"{obj.account.code} {obj.account.name}"

    @admin.display(description="Debit")
    def debit_amount(self, obj):
        return money(obj.debit, blank_zero=True)

    @admin.display(description="Credit")
    def credit_amount(self, obj):
        return money(obj.credit, blank_zero=True)

    def has_view_permission(self, request, obj=None):
        return True  # shown only on an entry's page, which checked the user may see it

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _entry_link(entry: JournalEntry | None) -> str:
    if entry is None:
        return "—"
    url = reverse("admin:accounting_journalentry_change", args=[entry.pk])
    return format_html('<a href="{}">{}</a>', url, entry.reference)


@admin.register(JournalEntry)
class JournalEntryAdmin(LedgerAdmin):
    """Posted entries are read-only and never deleted; corrections are reversals. New manual
    entries are posted whole, lines and all, by one call to services.journal_entry_post."""

    list_display = [
        "reference",
        "date",
        "memo_short",
        "total_amount",
        "status",
        "source",
        "posted_by_label",
    ]
    list_display_links = ["reference"]
    list_filter = ["status", FiscalYearListFilter, PeriodListFilter, SourceTypeListFilter]
    list_select_related = ["fiscal_year"]
    date_hierarchy = "date"
    search_fields = ["memo", "source_id", "=number"]
    search_help_text = "A reference (JE/2025-26/000042), an entry number, a source id or memo text."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # counting every filter choice scans the whole table
    inlines = [JournalLineInline]
    actions = ["reverse_entries"]
    summary_fields = [
        "reference",
        "company",
        "date",
        "period_label",
        "memo",
        "total_amount",
        "status",
        "source",
        "posted",
    ]
    reversal_fields = ["reversal_of_link", "reversed_by_link", "reversal_reason"]
    evidence_fields = ["idempotency_key", "prev_hash", "entry_hash"]
    readonly_fields = summary_fields + reversal_fields + evidence_fields

    # list and detail columns

    @admin.display(description="Reference", ordering="number")
    def reference(self, obj):
        return obj.reference

    @admin.display(description="Memo")
    def memo_short(self, obj):
        return Truncator(obj.memo).chars(70)

    @admin.display(description="Total", ordering="total")
    def total_amount(self, obj):
        return money(obj.total)

    @admin.display(description="Source")
    def source(self, obj):
        label = obj.source_type.replace("_", " ")
        return f"{label} {obj.source_id}" if obj.source_id else label

    @admin.display(description="Period")
    def period_label(self, obj):
        return obj.period.label

    @admin.display(description="Posted")
    def posted(self, obj):
        moment = timezone.localtime(obj.posted_at, obj.company.tz)
        return f"by {obj.posted_by_label} at {moment:%Y-%m-%d %H:%M:%S %Z}"

    @admin.display(description="Reversal of")
    def reversal_of_link(self, obj):
        return _entry_link(obj.reversal_of)

    @admin.display(description="Reversed by")
    def reversed_by_link(self, obj):
        reversal = (
            JournalEntry.objects.filter(reversal_of=obj).select_related("fiscal_year").first()
        )
        return _entry_link(reversal)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": self.summary_fields})]
        if obj is not None and (obj.status == EntryStatus.REVERSED or obj.reversal_of_id):
            fieldsets.append(("Reversal", {"fields": self.reversal_fields}))
        fieldsets.append(
            (
                "Tamper evidence",
                {
                    "fields": self.evidence_fields,
                    "classes": ["collapse"],
                    "description": "Each entry's hash covers the previous entry's hash and "
                    "this entry's content; manage.py verify_ledger recomputes the chain.",
                },
            )
        )
        return fieldsets

    def get_object(self, request, object_id, from_field=None):
        queryset = self.get_queryset(request).select_related(
            "fiscal_year", "period__fiscal_year", "reversal_of__fiscal_year", "company"
        )
        try:
            return queryset.get(pk=int(object_id))
        except (JournalEntry.DoesNotExist, ValueError):
            return None

    def get_search_results(self, request, queryset, search_term):
        """A quoted reference finds its entry by the index; digits find an entry number;
        anything else looks in source ids and memos."""
        term = search_term.strip()
        if not term:
            return queryset, False
        parts = term.upper().split("/")
        if len(parts) == 3 and parts[0] == "JE" and parts[2].isdigit():
            return queryset.filter(fiscal_year__name=parts[1], number=int(parts[2])), False
        match = Q(source_id=term) | Q(memo__icontains=term)
        if term.isdigit() and len(term) < 10:
            match |= Q(number=int(term))
        return queryset.filter(match), False

    # permissions: read by every role, posted and reversed by owners and accountants

    def has_change_permission(self, request, obj=None):
        return False  # posted entries are never edited; corrections are reversals

    def has_delete_permission(self, request, obj=None):
        return False

    def has_reverse_permission(self, request, obj=None):
        return self._allowed(request, obj, write=True)

    def get_urls(self):
        reverse_entry = path(
            "<path:object_id>/reverse/",
            self.admin_site.admin_view(self.reverse_view),
            name="accounting_journalentry_reverse",
        )
        return [reverse_entry, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"reports": admin_reports.report_links(), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        entry = self.get_object(request, unquote(object_id))
        if (
            entry is not None
            and entry.status == EntryStatus.POSTED
            and entry.reversal_of_id is None
            and self.has_reverse_permission(request, entry)
        ):
            extra["reverse_url"] = reverse("admin:accounting_journalentry_reverse", args=[entry.pk])
        return super().change_view(request, object_id, form_url, extra)

    # posting a manual entry

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        companies = list(companies_for(request.user, "accounting", write=True).order_by("name"))
        company = chosen_company(request, companies)
        choices = LineChoices(company)
        line_kwargs = {"prefix": "lines", "form_kwargs": {"choices": choices}}
        if request.method == "POST":
            form = JournalEntryForm(request.POST)
            formset = JournalLineFormSet(request.POST, **line_kwargs)
            if form.is_valid() and formset.is_valid():
                data = form.cleaned_data
                try:
                    entry = services.journal_entry_post(
                        actor=request.user,
                        company=company,
                        date=data["date"],
                        memo=data["memo"],
                        source_type="manual",
                        source_id=data["source_id"],
                        lines=formset.lines(),
                        idempotency_key=f"admin:{data['key']}",
                    )
                except DomainError as refusal:  # the service's transaction wrote nothing
                    form.add_error(None, refusal.message)
                else:
                    return self._posted(request, entry, company)
        else:
            form = JournalEntryForm(initial={"date": company.today()})
            formset = JournalLineFormSet(**line_kwargs)
        bound = formset.is_bound
        debit, credit = formset.totals() if bound else (None, None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Post a manual journal entry",
            "subtitle": company.name,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "company": company,
            "companies": companies,
            "form": form,
            "formset": formset,
            "media": self.media + form.media + formset.media,
            "errors": bound and (bool(form.errors) or not formset.is_valid()),
            "total_debit": money(debit) if debit is not None else "",
            "total_credit": money(credit) if credit is not None else "",
        }
        return TemplateResponse(request, "admin/accounting/journalentry/post_entry.html", context)

    def _posted(self, request, entry: JournalEntry, company):
        self.log_addition(request, entry, [{"added": {}}])
        self.message_user(
            request,
            f"Posted {entry.reference} on {entry.date}: total {money(entry.total)}.",
            messages.SUCCESS,
        )
        if "_addanother" in request.POST:
            add_url = reverse("admin:accounting_journalentry_add")
            return HttpResponseRedirect(f"{add_url}?company={company.pk}")
        return HttpResponseRedirect(
            reverse("admin:accounting_journalentry_change", args=[entry.pk])
        )

    # reversing

    def reverse_view(self, request, object_id):
        entry = self.get_object(request, unquote(object_id))
        if entry is None:
            raise Http404("No such journal entry.")
        if not self.has_reverse_permission(request, entry):
            raise PermissionDenied
        if request.method == "POST":
            form = ReverseEntryForm(request.POST, entries=[entry])
            if form.is_valid():
                try:
                    reversal = services.journal_entry_reverse(
                        actor=request.user,
                        entry=entry,
                        date=form.cleaned_data["date"],
                        reason=form.cleaned_data["reason"],
                    )
                except DomainError as refusal:  # the service's transaction wrote nothing
                    form.add_error(None, refusal.message)
                else:
                    self.message_user(request, self._reversed_message(entry, reversal))
                    return HttpResponseRedirect(
                        reverse("admin:accounting_journalentry_change", args=[entry.pk])
                    )
        else:
            form = ReverseEntryForm(initial={"date": entry.company.today()}, entries=[entry])
        return self._reverse_page(request, form, [entry], single=True)

    @admin.action(description="Reverse selected entries…", permissions=["reverse"])
    def reverse_entries(self, request, queryset):
        entries = list(queryset.select_related("fiscal_year", "company").order_by("date", "pk"))
        if "apply" in request.POST:
            form = ReverseEntryForm(request.POST, entries=entries)
            if form.is_valid():
                data = form.cleaned_data
                done = _each(
                    self,
                    request,
                    entries,
                    lambda entry: services.journal_entry_reverse(
                        actor=request.user, entry=entry, date=data["date"], reason=data["reason"]
                    ),
                    label=lambda entry: entry.reference,
                )
                for entry, reversal in done:
                    self.message_user(request, self._reversed_message(entry, reversal))
                return None
        else:
            today = entries[0].company.today() if entries else None
            form = ReverseEntryForm(initial={"date": today}, entries=entries)
        return self._reverse_page(request, form, entries, single=False)

    @staticmethod
    def _reversed_message(entry: JournalEntry, reversal: JournalEntry) -> str:
        return f"{entry.reference} reversed by {reversal.reference} dated {reversal.date}."

    def _reverse_page(self, request, form, entries, *, single: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": "Reverse journal entry" if single else "Reverse journal entries",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "form": form,
            "entries": entries,
            "single": single,
            "media": self.media + form.media,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/accounting/journalentry/reverse.html", context)
