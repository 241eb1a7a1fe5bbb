"""Payroll in the admin: employees with their deductions and earnings inline, time entries with
a CSV import, pay schedules, periods with their automation rule, next run and the actions Run
now / Force run / Dry run / Reopen, runs with a progress bar, read-only payslips with their
PDF, and the reference data (tax tables with brackets inline, flat taxes, overtime rules,
deduction and earning types, pay rates).

Every write goes through payroll.services (the admin holds no business logic); a refusal
(core.errors.DomainError) shows its message: on a form the same form comes back with it
(ServiceFormMixin), an action reports it per item. Statutory rows every company shares (no
company) are shown to every payroll reader and changed by platform administrators only.

Importing payroll.documents here also registers the payslip email task in every process that
loads the admin (web and Celery workers alike: Django's admin autodiscovery imports this module).
"""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounting.admin import ServiceFormMixin, _each, _plural
from core.admin import TenantAdmin, adopt_saved, readable_companies
from core.errors import DomainError
from core.selectors import companies_for
from payroll import documents, services
from payroll.forms import (
    PayrollPeriodForm,
    PayScheduleForm,
    ReopenForm,
    TimeEntryImportForm,
    rule_text,
)
from payroll.models import (
    DeductionType,
    EarningType,
    Employee,
    EmployeeDeduction,
    EmployeeEarning,
    FlatTax,
    OvertimeRule,
    PayRate,
    PayrollPeriod,
    PayrollRun,
    PaySchedule,
    Payslip,
    PayslipLine,
    RunStatus,
    RunTrigger,
    TaxBracket,
    TaxTable,
    TimeEntry,
)
from payroll.processing import PayrollProcessor

assert documents.EMAIL_TASK  # the import registers the email task (see the module docstring)


def progress_bar(run: PayrollRun | None):
    """done/total as a bar with the figures beside it."""
    if run is None:
        return "-"
    colour = {
        RunStatus.COMPLETED: "#3a7",
        RunStatus.FAILED: "#c33",
        RunStatus.REOPENED: "#999",
    }.get(run.status, "#27c")
    return format_html(
        '<span class="payroll-progress" title="{}">'
        '<span style="display:inline-block;width:120px;height:10px;background:#e5e5e5;'
        'border-radius:3px;vertical-align:middle;overflow:hidden">'
        '<span style="display:block;height:10px;width:{}%;background:{}"></span></span> '
        "{} / {} ({}%)</span>",
        run.get_status_display(),
        run.progress_percent,
        colour,
        run.done,
        run.total,
        run.progress_percent,
    )


def _running_context(model_admin, request, extra_context) -> dict:
    """Refresh the list while one of its runs is in progress, so the bars move."""
    running = PayrollRun.objects.filter(
        status=RunStatus.RUNNING, company__in=model_admin._readable(request)
    )
    return {**(extra_context or {}), "auto_refresh": running.exists()}


# --- shared behaviour --------------------------------------------------------------------------


class PayrollAdmin(TenantAdmin):
    """Payroll's admins: read by owners, accountants, payroll managers and auditors; written by
    owners and payroll managers (core.roles, scope "payroll")."""

    scope = "payroll"

    def refuse(self, request, label, error: DomainError) -> None:
        self.message_user(request, f"{label}: {error.message}", messages.ERROR)

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if len(self._readable(request)) > 1 and "company" not in self.list_filter:
            filters.insert(0, ("company", admin.RelatedOnlyFieldListFilter))
        return filters

    def _readable(self, request) -> list:
        return readable_companies(request, self.scope)


class ReferenceAdmin(ServiceFormMixin, PayrollAdmin):
    """Reference rows: the company's own (changed by its payroll writers) and, for statutory
    models, shared rows (no company: changed by platform administrators only)."""

    shared_rows = False

    def get_queryset(self, request):
        queryset = self.model._default_manager.get_queryset()
        ordering = self.get_ordering(request)
        if ordering:
            queryset = queryset.order_by(*ordering)
        if request.user.is_superuser:
            return queryset
        companies = companies_for(request.user, self.scope, write=False)
        if self.shared_rows:
            return queryset.filter(Q(company__isnull=True) | Q(company__in=companies))
        return queryset.filter(company__in=companies)

    def _allowed(self, request, obj, *, write: bool) -> bool:
        if obj is not None and self.shared_rows and obj.company_id is None:
            if write:
                return request.user.is_active and request.user.is_superuser
            return super()._allowed(request, None, write=False)
        return super()._allowed(request, obj, write=write)

    @admin.display(description="Company", ordering="company__name")
    def owner(self, obj):
        return obj.company.name if obj.company_id else "Shared (statutory)"

    def save_model(self, request, obj, form, change):
        company = form.cleaned_data.get("company") if "company" in form.cleaned_data else None
        saved = services.reference_row_save(actor=request.user, obj=obj, company=company)
        adopt_saved(obj, saved)

    def delete_model(self, request, obj):
        services.reference_row_delete(actor=request.user, obj=obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one row at a time, through the service
        return actions


# --- employees -----------------------------------------------------------------------------


class _ServiceInline(admin.TabularInline):
    """An inline on an employee's page, saved by EmployeeAdmin.save_formset through services;
    permissions follow the employee's."""

    extra = 0

    def _parent_allows(self, request, obj, write):
        parent = self.admin_site._registry[Employee]
        return parent._allowed(request, obj, write=write)

    def has_view_permission(self, request, obj=None):
        return self._parent_allows(request, obj, False)

    def has_add_permission(self, request, obj=None):
        return self._parent_allows(request, obj, True)

    def has_change_permission(self, request, obj=None):
        return self._parent_allows(request, obj, True)

    def has_delete_permission(self, request, obj=None):
        return self._parent_allows(request, obj, True)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        companies = companies_for(request.user, "payroll", write=True)
        if db_field.name == "deduction_type":
            kwargs["queryset"] = DeductionType.objects.filter(
                Q(company__isnull=True) | Q(company__in=companies), is_active=True
            )
        elif db_field.name == "earning_type":
            kwargs["queryset"] = EarningType.objects.filter(
                Q(company__isnull=True) | Q(company__in=companies), is_active=True
            )
        elif db_field.name == "period":
            kwargs["queryset"] = PayrollPeriod.objects.filter(
                company__in=companies, status__in=services.EDITABLE_STATUSES
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class EmployeeDeductionInline(_ServiceInline):
    model = EmployeeDeduction
    fields = ["deduction_type", "amount", "rate", "balance", "start_date", "end_date", "is_active"]
    verbose_name_plural = "Deductions (provident fund, insurance, loans...)"


class EmployeeEarningInline(_ServiceInline):
    model = EmployeeEarning
    fields = ["earning_type", "amount", "period", "effective_from", "effective_to", "memo"]
    verbose_name_plural = "Earnings besides base pay (one-off for a period, or recurring)"


@admin.register(Employee)
class EmployeeAdmin(ServiceFormMixin, PayrollAdmin):
    list_display = [
        "code",
        "name",
        "pay_type",
        "pay",
        "department",
        "cost_center",
        "jurisdiction",
        "start_date",
        "end_date",
    ]
    list_display_links = ["code", "name"]
    list_filter = ["pay_type", "jurisdiction", "tax_category", "department"]
    list_select_related = ["department", "cost_center"]
    search_fields = ["code", "name", "email", "role"]
    ordering = ["company__name", "code"]
    inlines = [EmployeeDeductionInline, EmployeeEarningInline]
    readonly_fields = ["role_pay_rates"]
    fieldsets = [
        (None, {"fields": ["company", "code", "name", "email", "role"]}),
        ("Where", {"fields": ["department", "cost_center", "jurisdiction", "tax_category"]}),
        (
            "Pay",
            {"fields": ["pay_type", "annual_salary", "hourly_rate", "role_pay_rates"]},
        ),
        ("Employment", {"fields": ["start_date", "end_date"]}),
        (
            "Bank",
            {
                "classes": ["collapse"],
                "fields": [
                    "bank_name",
                    "bank_branch",
                    "bank_account_name",
                    "bank_account_number",
                    "bank_routing_number",
                ],
            },
        ),
    ]

    @admin.display(description="Pay")
    def pay(self, obj):
        if obj.pay_type == "hourly":
            return f"{obj.hourly_rate} / h" if obj.hourly_rate is not None else "role rate"
        return f"{obj.annual_salary:,.2f} / yr" if obj.annual_salary is not None else "role rate"

    @admin.display(description="Role pay rates for this location")
    def role_pay_rates(self, obj):
        if obj is None or not obj.pk or not obj.role:
            return "-"
        rates = PayRate.objects.filter(
            company_id=obj.company_id, role=obj.role, jurisdiction=obj.jurisdiction
        ).order_by("-effective_from")[:5]
        if not rates:
            return "None: the employee's own rate applies."
        return format_html(
            "<br>".join("{}" for _ in rates), *[f"{rate} ({rate.pay_type})" for rate in rates]
        )

    def get_readonly_fields(self, request, obj=None):
        return ["company", "role_pay_rates"] if obj else ["role_pay_rates"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # employees are never deleted: set an end date
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name]
            for name in services.EMPLOYEE_FIELDS
            if name in form.cleaned_data and (not change or name in form.changed_data)
        }
        if change:
            saved = services.employee_update(actor=request.user, employee=obj, **fields)
        else:
            saved = services.employee_create(
                actor=request.user, company=form.cleaned_data["company"], **fields
            )
        adopt_saved(obj, saved)

    def save_formset(self, request, form, formset, change):
        employee = form.instance
        for row in formset.deleted_objects if hasattr(formset, "deleted_objects") else []:
            services.reference_row_delete(actor=request.user, obj=row)
        for inline_form in formset.forms:
            if not inline_form.has_changed() or inline_form in formset.deleted_forms:
                continue
            if not inline_form.is_valid() or not inline_form.cleaned_data:
                continue
            data = {
                k: v
                for k, v in inline_form.cleaned_data.items()
                if k not in ("id", "DELETE", "employee")
            }
            instance = inline_form.instance
            if instance.pk:
                for name, value in data.items():
                    setattr(instance, name, value)
                services.reference_row_save(actor=request.user, obj=instance)
            elif formset.model is EmployeeDeduction:
                services.employee_deduction_create(
                    actor=request.user,
                    employee=employee,
                    deduction_type=data.pop("deduction_type"),
                    **data,
                )
            else:
                services.employee_earning_create(
                    actor=request.user,
                    employee=employee,
                    earning_type=data.pop("earning_type"),
                    amount=data.pop("amount"),
                    period=data.pop("period", None),
                    **data,
                )

    def save_related(self, request, form, formsets, change):
        form.save_m2m()
        for formset in formsets:
            formset.new_objects, formset.changed_objects = [], []
            formset.deleted_objects = [
                f.instance for f in formset.deleted_forms if f.instance.pk is not None
            ]
            self.save_formset(request, form, formset, change=change)


@admin.register(PayRate)
class PayRateAdmin(ReferenceAdmin):
    list_display = [
        "role",
        "jurisdiction",
        "pay_type",
        "annual_salary",
        "hourly_rate",
        "effective_from",
        "effective_to",
    ]
    list_filter = ["pay_type", "jurisdiction"]
    search_fields = ["role", "jurisdiction"]
    fields = [
        "company",
        "role",
        "jurisdiction",
        "pay_type",
        "annual_salary",
        "hourly_rate",
        "effective_from",
        "effective_to",
    ]


# --- time entries --------------------------------------------------------------------------


@admin.register(TimeEntry)
class TimeEntryAdmin(ServiceFormMixin, PayrollAdmin):
    list_display = ["employee", "day", "hours", "note"]
    list_filter = ["day"]
    list_select_related = ["employee"]
    search_fields = ["employee__code", "employee__name", "note"]
    date_hierarchy = "day"
    fields = ["company", "employee", "day", "hours", "note"]
    change_list_template = "admin/payroll/timeentry/change_list.html"

    def get_readonly_fields(self, request, obj=None):
        return ["company", "employee", "day"] if obj else []

    def save_model(self, request, obj, form, change):
        company = obj.company if change else form.cleaned_data["company"]
        services.time_entries_upsert(
            actor=request.user,
            company=company,
            entries=[
                {
                    "employee": obj.employee_id,
                    "day": obj.day,
                    "hours": str(form.cleaned_data["hours"]),
                    "note": form.cleaned_data.get("note", ""),
                }
            ],
        )
        adopt_saved(obj, TimeEntry.objects.get(employee_id=obj.employee_id, day=obj.day))

    def delete_model(self, request, obj):
        services.reference_row_delete(actor=request.user, obj=obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="payroll_timeentry_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request):
        """Upload a CSV (employee,day,hours[,note]); all rows are checked first, the first bad
        one is named by its line and nothing is imported."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        companies = companies_for(request.user, self.scope, write=True).order_by("name")
        if request.user.is_superuser:
            from core.models import Company

            companies = Company.objects.filter(is_active=True).order_by("name")
        form = TimeEntryImportForm(request.POST or None, request.FILES or None, companies=companies)
        if request.method == "POST" and form.is_valid():
            try:
                result = services.time_entries_upsert(
                    actor=request.user,
                    company=form.cleaned_data["company"],
                    entries=form.entries,
                )
            except DomainError as refusal:
                message = refusal.message
                match = re.match(r"Entry (\d+)", message)
                line = form.line_of(int(match.group(1))) if match else None
                if line is not None:
                    message = f"Line {line}{message[match.end() :]}"
                form.add_error(None, f"{message} Nothing was imported.")
            else:
                self.message_user(
                    request,
                    f"Imported {_plural(len(form.entries), 'row')}: "
                    f"{result['created']} new, {result['updated']} replaced.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:payroll_timeentry_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import time entries",
            "opts": self.model._meta,
            "form": form,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/payroll/timeentry/import.html", context)


# --- schedules and periods -----------------------------------------------------------------


@admin.register(PaySchedule)
class PayScheduleAdmin(ReferenceAdmin):
    form = PayScheduleForm
    list_display = [
        "name",
        "frequency",
        "anchor_date",
        "pay_day_offset",
        "automation_enabled",
        "rule",
        "is_active",
    ]
    list_filter = ["frequency", "is_active", "automation_enabled"]
    actions = ["generate_periods"]

    @admin.display(description="Automation rule")
    def rule(self, obj):
        return rule_text(obj.automation_rule)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = {
            k: v for k, v in form.cleaned_data.items() if k not in ("company",) and v is not None
        }
        saved = services.pay_schedule_create(
            actor=request.user, company=form.cleaned_data["company"], **data
        )
        adopt_saved(obj, saved)

    @admin.action(description="Generate the next 3 periods", permissions=["change"])
    def generate_periods(self, request, queryset):
        done = _each(
            self,
            request,
            list(queryset),
            lambda schedule: services.pay_schedule_generate_periods(
                actor=request.user, schedule=schedule, count=3
            ),
        )
        for schedule, periods in done:
            names = ", ".join(str(p) for p in periods)
            self.message_user(request, f"{schedule}: created {names}.", messages.SUCCESS)


@admin.register(PayrollPeriod)
class PayrollPeriodAdmin(ServiceFormMixin, PayrollAdmin):
    form = PayrollPeriodForm
    list_display = [
        "__str__",
        "period_type",
        "start_date",
        "end_date",
        "pay_date",
        "status",
        "automation",
        "next_run",
        "last_run",
    ]
    list_filter = ["status", "period_type", "automation_enabled"]
    list_select_related = ["company"]
    search_fields = ["name"]
    date_hierarchy = "start_date"
    ordering = ["company__name", "-start_date"]
    actions = ["run_now", "force_run", "dry_run", "reopen", "activate", "cancel"]
    readonly_fields = ["status", "next_run", "last_run", "last_error", "completed_at"]

    def get_queryset(self, request):
        newest_first = PayrollRun.objects.order_by("-attempt", "-pk")
        return super().get_queryset(request).prefetch_related(Prefetch("runs", newest_first))

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, _running_context(self, request, extra_context))

    @admin.display(description="Automation")
    def automation(self, obj):
        if not obj.automation_enabled:
            return "off"
        return rule_text(obj.automation_rule)

    @admin.display(description="Next run")
    def next_run(self, obj):
        value = obj.automation_next_run() if obj is not None and obj.pk else None
        if value is None:
            return "-"
        if hasattr(value, "hour"):
            local = value.astimezone(obj.company.tz)
            return f"{local:%Y-%m-%d %H:%M} ({obj.company.time_zone})"
        return value.isoformat()

    @admin.display(description="Last run")
    def last_run(self, obj):
        if obj is None or not obj.pk:
            return "-"
        runs = list(obj.runs.all())  # prefetched, newest attempt first (get_queryset)
        run = runs[0] if runs else None
        if run is None:
            return "-"
        link = reverse("admin:payroll_payrollrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a>', link, progress_bar(run))

    def get_fieldsets(self, request, obj=None):
        main = [
            "company",
            "schedule",
            "name",
            "period_type",
            "start_date",
            "end_date",
            "pay_date",
        ]
        if obj is None:
            main.append("activate")
        return [
            (None, {"fields": main}),
            ("Automation", {"fields": ["automation_enabled", "automation_rule", "next_run"]}),
            ("State", {"fields": ["status", "last_run", "completed_at", "last_error"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if obj is not None:
            readonly.append("company")
            if obj.status not in services.EDITABLE_STATUSES:
                readonly += [
                    "schedule",
                    "name",
                    "period_type",
                    "start_date",
                    "end_date",
                    "pay_date",
                    "automation_enabled",
                    "automation_rule",
                ]
        return readonly

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        data = dict(form.cleaned_data)
        if change:
            changes = {k: data[k] for k in form.changed_data if k in services.PERIOD_FIELDS}
            if not changes:
                return  # nothing to change (a completed period's page saved as it is)
            saved = services.payroll_period_update(actor=request.user, period=obj, **changes)
        else:
            saved = services.payroll_period_create(
                actor=request.user,
                company=data["company"],
                schedule=data.get("schedule"),
                name=data.get("name") or "",
                period_type=data["period_type"],
                start_date=data["start_date"],
                end_date=data["end_date"],
                pay_date=data.get("pay_date"),
                automation_enabled=data.get("automation_enabled", False),
                automation_rule=data.get("automation_rule") or {},
                activate=data.get("activate", False),
            )
        adopt_saved(obj, saved)

    def delete_model(self, request, obj):
        services.payroll_period_delete(actor=request.user, period=obj)

    def _start(self, request, queryset, *, force: bool):
        done = _each(
            self,
            request,
            list(queryset.order_by("start_date")),
            lambda period: services.payroll_period_run(
                actor=request.user, period=period, force=force, trigger=RunTrigger.MANUAL
            ),
        )
        for period, run in done:
            self.message_user(
                request,
                f"{period}: run {run.attempt} started for {_plural(run.total, 'employee')}"
                f"{' (forced)' if force else ''}; a worker pays it now. Follow its progress "
                "in the Last run column.",
                messages.SUCCESS,
            )

    @admin.action(description="Run now (when its rule makes it due)", permissions=["change"])
    def run_now(self, request, queryset):
        self._start(request, queryset, force=False)

    @admin.action(description="Force run (ignore the rule's date)", permissions=["change"])
    def force_run(self, request, queryset):
        self._start(request, queryset, force=True)

    @admin.action(description="Dry run (preview totals, write nothing)", permissions=["view"])
    def dry_run(self, request, queryset):
        for period in queryset.order_by("start_date"):
            try:
                preview = PayrollProcessor(period).preview()
            except DomainError as refusal:
                self.refuse(request, str(period), refusal)
                continue
            text = (
                f"{period} (dry run, nothing written): {_plural(preview['employees'], 'employee')}"
                f", gross {preview['gross']:,.2f}, taxes {preview['taxes']:,.2f}, deductions "
                f"{preview['deductions']:,.2f}, net {preview['net']:,.2f}, employer "
                f"{preview['employer']:,.2f}, {_plural(preview['warnings'], 'warning')}."
            )
            level = messages.INFO
            if preview["errors"]:
                text += " Cannot be paid: " + "; ".join(preview["errors"][:5])
                level = messages.WARNING
            self.message_user(request, text, level)

    @admin.action(description="Reopen (void payslips, reverse the entry)", permissions=["change"])
    def reopen(self, request, queryset):
        periods = list(queryset.order_by("start_date"))
        form = ReopenForm(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = _each(
                self,
                request,
                periods,
                lambda period: services.payroll_period_reopen(
                    actor=request.user, period=period, reason=form.cleaned_data["reason"]
                ),
            )
            for period, _ in done:
                self.message_user(
                    request,
                    f"{period} reopened: payslips voided, journal entry reversed; it can be run "
                    "again.",
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reopen payroll periods",
            "opts": self.model._meta,
            "periods": periods,
            "form": form,
            "action": "reopen",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/payroll/payrollperiod/reopen.html", context)

    @admin.action(description="Activate (ready to run)", permissions=["change"])
    def activate(self, request, queryset):
        done = _each(
            self,
            request,
            list(queryset),
            lambda period: services.payroll_period_activate(actor=request.user, period=period),
        )
        if done:
            self.message_user(request, f"{_plural(len(done), 'period')} activated.")

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request, queryset):
        done = _each(
            self,
            request,
            list(queryset),
            lambda period: services.payroll_period_cancel(actor=request.user, period=period),
        )
        if done:
            self.message_user(request, f"{_plural(len(done), 'period')} cancelled.")


# --- runs and payslips ---------------------------------------------------------------------


class _ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PayrollRun)
class PayrollRunAdmin(_ReadOnly, PayrollAdmin):
    list_display = [
        "__str__",
        "status",
        "trigger",
        "forced",
        "started_at",
        "progress",
        "payslip_count",
        "gross_total",
        "net_total",
        "journal_entry",
    ]
    list_filter = ["status", "trigger"]
    list_select_related = ["period", "journal_entry__fiscal_year"]
    date_hierarchy = "started_at"
    readonly_fields = [
        "period",
        "attempt",
        "trigger",
        "forced",
        "status",
        "triggered_by",
        "started_at",
        "finished_at",
        "duration_seconds",
        "progress",
        "payslip_count",
        "warning_count",
        "gross_total",
        "taxes_total",
        "deductions_total",
        "employer_total",
        "net_total",
        "journal_entry",
        "error",
        "warnings",
    ]
    fields = readonly_fields

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, _running_context(self, request, extra_context))

    @admin.display(description="Progress (done / total)")
    def progress(self, obj):
        return progress_bar(obj)


class PayslipLineInline(admin.TabularInline):
    model = PayslipLine
    fields = ["line_no", "kind", "description", "quantity", "rate", "amount", "account_role"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return True  # shown only on a payslip page, which checked the user may see it

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Payslip)
class PayslipAdmin(_ReadOnly, PayrollAdmin):
    list_display = [
        "employee",
        "period_start",
        "period_end",
        "status",
        "gross",
        "taxes",
        "deductions",
        "net",
        "emailed_at",
        "pdf_link",
    ]
    list_filter = ["status", "pay_type", "period"]
    list_select_related = ["employee"]
    search_fields = ["employee__code", "employee__name"]
    date_hierarchy = "period_start"
    inlines = [PayslipLineInline]
    actions = ["email_again"]
    readonly_fields = [
        "employee",
        "period",
        "run",
        "status",
        "pay_date",
        "currency",
        "pay_type",
        "department",
        "cost_center",
        "regular_hours",
        "overtime_hours",
        "double_time_hours",
        "gross",
        "taxable",
        "income_tax",
        "other_taxes",
        "taxes",
        "pre_tax_deductions",
        "post_tax_deductions",
        "deductions",
        "employer_contributions",
        "net",
        "ytd_gross",
        "ytd_taxable",
        "ytd_income_tax",
        "ytd_taxes",
        "ytd_deductions",
        "ytd_net",
        "warnings",
        "carried",
        "emailed_at",
        "voided_at",
        "pdf_link",
    ]
    fieldsets = [
        (None, {"fields": ["employee", "period", "run", "status", "pay_date", "pdf_link"]}),
        (
            "This period",
            {
                "fields": [
                    "currency",
                    "pay_type",
                    "department",
                    "cost_center",
                    ("regular_hours", "overtime_hours", "double_time_hours"),
                    ("gross", "taxable"),
                    ("income_tax", "other_taxes", "taxes"),
                    ("pre_tax_deductions", "post_tax_deductions", "deductions"),
                    ("employer_contributions", "net"),
                ]
            },
        ),
        (
            "Year to date",
            {
                "fields": [
                    ("ytd_gross", "ytd_taxable"),
                    ("ytd_income_tax", "ytd_taxes"),
                    ("ytd_deductions", "ytd_net"),
                ]
            },
        ),
        ("Notes", {"fields": ["warnings", "carried", "emailed_at", "voided_at"]}),
    ]

    @admin.display(description="PDF")
    def pdf_link(self, obj):
        if obj is None or not obj.pk:
            return "-"
        return format_html(
            '<a href="{}">PDF</a> · <a href="{}" target="_blank">HTML</a>',
            reverse("admin:payroll_payslip_pdf", args=[obj.pk]),
            reverse("admin:payroll_payslip_html", args=[obj.pk]),
        )

    def get_urls(self):
        return [
            path(
                "<int:object_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="payroll_payslip_pdf",
            ),
            path(
                "<int:object_id>/html/",
                self.admin_site.admin_view(self.html_view),
                name="payroll_payslip_html",
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request, object_id: int):
        payslip = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, payslip):
            raise PermissionDenied
        response = HttpResponse(documents.payslip_pdf(payslip), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="{documents.payslip_filename(payslip)}"'
        )
        return response

    def html_view(self, request, object_id: int):
        """The payslip as the browser shows it (the same page the PDF is printed from)."""
        payslip = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, payslip):
            raise PermissionDenied
        return HttpResponse(documents.payslip_html(payslip))

    @admin.action(description="Email again (with the PDF)", permissions=["email"])
    def email_again(self, request, queryset):
        sent = 0
        for payslip in queryset.select_related("employee"):
            if not payslip.employee.email:
                self.message_user(
                    request, f"{payslip.employee}: no email address.", messages.WARNING
                )
                continue
            try:
                if documents.payslip_email_now(actor=request.user, payslip=payslip):
                    sent += 1
                else:
                    self.message_user(
                        request, f"{payslip.employee}: not sent (see the log).", messages.ERROR
                    )
            except DomainError as refusal:
                self.refuse(request, str(payslip.employee), refusal)
        if sent:
            self.message_user(request, f"{_plural(sent, 'payslip')} emailed.", messages.SUCCESS)

    def has_email_permission(self, request, obj=None):
        return self._allowed(request, obj, write=True)


# --- statutory reference data --------------------------------------------------------------


class TaxBracketInline(admin.TabularInline):
    model = TaxBracket
    fields = ["lower", "upper", "rate"]
    extra = 1
    ordering = ["lower"]

    def _parent(self, request, obj, write):
        return self.admin_site._registry[TaxTable]._allowed(request, obj, write=write)

    def has_view_permission(self, request, obj=None):
        return self._parent(request, obj, False)

    def has_add_permission(self, request, obj=None):
        return self._parent(request, obj, True)

    def has_change_permission(self, request, obj=None):
        return self._parent(request, obj, True)

    def has_delete_permission(self, request, obj=None):
        return self._parent(request, obj, True)


@admin.register(TaxTable)
class TaxTableAdmin(ReferenceAdmin):
    shared_rows = True
    inlines = [TaxBracketInline]
    list_display = [
        "name",
        "owner",
        "jurisdiction",
        "category",
        "effective_from",
        "effective_to",
        "annual_exemption",
        "is_active",
    ]
    list_filter = ["jurisdiction", "category", "is_active"]
    search_fields = ["name", "jurisdiction", "source"]
    fields = [
        "company",
        "jurisdiction",
        "category",
        "name",
        "effective_from",
        "effective_to",
        "annual_exemption",
        "source",
        "is_active",
    ]

    def save_model(self, request, obj, form, change):
        company = form.cleaned_data.get("company")
        saved = services.tax_table_save(actor=request.user, table=obj, company=company)
        adopt_saved(obj, saved)

    def save_related(self, request, form, formsets, change):
        form.save_m2m()
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            if formset.model is not TaxBracket or not formset.has_changed():
                continue
            brackets = [
                {
                    "lower": f.cleaned_data["lower"],
                    "upper": f.cleaned_data.get("upper"),
                    "rate": f.cleaned_data["rate"],
                }
                for f in formset.forms
                if f.cleaned_data and not f.cleaned_data.get("DELETE")
            ]
            services.tax_table_save(
                actor=request.user, table=form.instance, company=None, brackets=brackets
            )


@admin.register(FlatTax)
class FlatTaxAdmin(ReferenceAdmin):
    shared_rows = True
    list_display = [
        "name",
        "owner",
        "jurisdiction",
        "code",
        "employee_rate",
        "employer_rate",
        "wage_base",
        "effective_from",
        "is_active",
    ]
    list_filter = ["jurisdiction", "is_active"]
    search_fields = ["name", "code", "source"]


@admin.register(OvertimeRule)
class OvertimeRuleAdmin(ReferenceAdmin):
    shared_rows = True
    list_display = [
        "name",
        "owner",
        "jurisdiction",
        "daily_threshold",
        "daily_double_threshold",
        "weekly_threshold",
        "seventh_day",
        "effective_from",
        "is_active",
    ]
    list_filter = ["jurisdiction", "is_active"]
    search_fields = ["name", "jurisdiction", "source"]


@admin.register(DeductionType)
class DeductionTypeAdmin(ReferenceAdmin):
    shared_rows = True
    list_display = [
        "code",
        "name",
        "owner",
        "timing",
        "calculation",
        "default_amount",
        "default_rate",
        "annual_cap",
        "employer_rate",
        "has_balance",
        "is_active",
    ]
    list_filter = ["timing", "calculation", "is_active"]
    search_fields = ["code", "name"]


@admin.register(EarningType)
class EarningTypeAdmin(ReferenceAdmin):
    shared_rows = True
    list_display = ["code", "name", "owner", "category", "is_taxable", "is_active"]
    list_filter = ["category", "is_taxable", "is_active"]
    search_fields = ["code", "name"]
