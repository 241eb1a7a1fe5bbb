"""The payroll API (scope "payroll": owners, accountants, payroll managers and auditors read;
owners and payroll managers write). Every write is one payroll.services call.

Statutory reference rows every company shares (tax tables, overtime rules, deduction types
without a company) are listed beside the company's own and are read-only here: a company adds
its own rows, which take precedence for the same jurisdiction.

Running a period: `POST /api/v1/payroll/periods/{id}/run` claims the period in the request and
answers 202 with the run (status running, progress 0 of N); a Celery worker pays it after the
request commits. `{"force": true}` runs a period whose automation rule is not due yet. A period
already processing or completed answers 409 (`period_busy`, `already_completed`).
"""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch, Q
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounting.api.views import DecimalJSONParser
from core.api.base import TenantReadOnlyViewSet, TenantViewSet
from core.api.renderers import PDFRenderer
from core.api.views import COMPANY_HEADER_PARAMETER
from core.errors import ValidationFailed
from payroll import services
from payroll.api import serializers as s
from payroll.models import (
    DeductionType,
    EarningType,
    Employee,
    EmployeeDeduction,
    EmployeeEarning,
    OvertimeRule,
    PayRate,
    PayrollPeriod,
    PayrollRun,
    PaySchedule,
    Payslip,
    RunTrigger,
    TaxTable,
    TimeEntry,
)
from payroll.processing import PayrollProcessor

PARSERS = [DecimalJSONParser, FormParser, MultiPartParser]
CHANGE_METHODS = ["get", "post", "patch", "delete", "head", "options"]


def _changes(serializer) -> dict:
    return dict(serializer.validated_data)


class PeriodFilter(django_filters.FilterSet):
    # A plain string in the schema: a "status" enum would collide with other modules' ones.
    status = django_filters.CharFilter(
        field_name="status",
        help_text="draft, active, processing, completed, failed or cancelled.",
    )

    class Meta:
        model = PayrollPeriod
        fields = ["status", "period_type", "automation_enabled", "schedule"]


class _PayrollViewSet(TenantViewSet):
    scope = "payroll"
    parser_classes = PARSERS


class _ReferenceRowWrites:
    """Writes through services.reference_row_save/delete (role, settled-period and shared-row
    checks, audit). List it before DRF's mixins so these methods win."""

    def perform_create(self, serializer):
        obj = self.queryset.model(**serializer.validated_data)
        serializer.instance = services.reference_row_save(
            actor=self.request.user, obj=obj, company=self.company
        )

    def perform_update(self, serializer):
        obj = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(obj, name, value)
        serializer.instance = services.reference_row_save(actor=self.request.user, obj=obj)

    def perform_destroy(self, instance):
        services.reference_row_delete(actor=self.request.user, obj=instance)


class _SharedReferenceViewSet(
    _ReferenceRowWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _PayrollViewSet,
):
    """The company's own rows and the shared statutory ones (read-only for companies)."""

    http_method_names = CHANGE_METHODS

    def get_queryset(self):
        queryset = self.queryset.all()
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        return queryset.filter(Q(company__isnull=True) | Q(company=self.company))


# --- employees ---------------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class EmployeeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    _PayrollViewSet,
):
    """Employees with their deductions. Employees are never deleted (payslips point at them):
    set `end_date` when someone leaves."""

    queryset = Employee.objects.select_related("department", "cost_center").prefetch_related(
        Prefetch("deductions", queryset=EmployeeDeduction.objects.select_related("deduction_type"))
    )
    serializer_class = s.EmployeeSerializer
    filterset_fields = ["pay_type", "department", "cost_center", "jurisdiction", "role"]
    search_fields = ["code", "name", "email"]
    ordering_fields = ["code", "name", "start_date"]
    ordering = ["code"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer):
        serializer.instance = services.employee_create(
            actor=self.request.user, company=self.company, **_changes(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance = services.employee_update(
            actor=self.request.user, employee=serializer.instance, **_changes(serializer)
        )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class EmployeeDeductionViewSet(
    _ReferenceRowWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _PayrollViewSet,
):
    """Deductions assigned to employees (provident fund, health insurance, loan repayment...)."""

    queryset = EmployeeDeduction.objects.select_related("deduction_type", "employee")
    serializer_class = s.EmployeeDeductionSerializer
    filterset_fields = ["employee", "deduction_type", "is_active"]
    ordering = ["employee", "deduction_type"]
    http_method_names = CHANGE_METHODS

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        fields = getattr(serializer, "fields", {})
        if "deduction_type" in fields and not getattr(self, "swagger_fake_view", False):
            field = fields["deduction_type"]
            if getattr(field, "queryset", None) is not None:
                field.queryset = DeductionType.objects.filter(
                    Q(company__isnull=True) | Q(company=self.company)
                )
        return serializer

    def perform_create(self, serializer):
        data = _changes(serializer)
        serializer.instance = services.employee_deduction_create(
            actor=self.request.user,
            employee=data.pop("employee"),
            deduction_type=data.pop("deduction_type"),
            **data,
        )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class EmployeeEarningViewSet(
    _ReferenceRowWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _PayrollViewSet,
):
    """Earnings besides base pay: a one-off for a period (bonus, commission; `period` set) or
    recurring between effective dates (an allowance). Periods already paid refuse new ones."""

    queryset = EmployeeEarning.objects.select_related("earning_type", "employee")
    serializer_class = s.EmployeeEarningSerializer
    filterset_fields = ["employee", "earning_type", "period"]
    ordering = ["employee", "id"]
    http_method_names = CHANGE_METHODS

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        field = getattr(serializer, "fields", {}).get("earning_type")
        if getattr(field, "queryset", None) is not None and not getattr(
            self, "swagger_fake_view", False
        ):
            field.queryset = EarningType.objects.filter(
                Q(company__isnull=True) | Q(company=self.company)
            )
        return serializer

    def perform_create(self, serializer):
        data = _changes(serializer)
        serializer.instance = services.employee_earning_create(
            actor=self.request.user,
            employee=data.pop("employee"),
            earning_type=data.pop("earning_type"),
            amount=data.pop("amount"),
            period=data.pop("period", None),
            **data,
        )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class PayRateViewSet(
    _ReferenceRowWrites,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _PayrollViewSet,
):
    """Role-based pay by location, used for employees without a rate of their own."""

    queryset = PayRate.objects.all()
    serializer_class = s.PayRateSerializer
    filterset_fields = ["role", "jurisdiction", "pay_type"]
    ordering = ["role", "jurisdiction", "-effective_from"]
    http_method_names = CHANGE_METHODS


# --- time entries ------------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Record one employee's hours for a day (an existing entry for that day is "
        "replaced). Days inside a completed or processing period answer 409 period_settled."
    ),
    bulk=extend_schema(
        request=s.TimeEntryBulkSerializer,
        responses={201: s.TimeEntryBulkResultSerializer},
        description="Many entries at once, all or nothing: one bad entry (unknown employee, "
        "bad date, hours outside 0-24, a day of a settled period) refuses the whole request "
        "and names the entry; nothing is written.",
    ),
)
class TimeEntryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    _PayrollViewSet,
):
    """Hours worked per employee per day (hourly pay and overtime come from these)."""

    queryset = TimeEntry.objects.select_related("employee")
    serializer_class = s.TimeEntrySerializer
    filterset_fields = {"employee": ["exact"], "day": ["exact", "gte", "lte"]}
    ordering_fields = ["day", "employee"]
    ordering = ["-day", "employee"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _upsert(self, entries: list[dict]) -> dict:
        return services.time_entries_upsert(
            actor=self.request.user, company=self.company, entries=entries
        )

    def perform_create(self, serializer):
        data = serializer.validated_data
        self._upsert(
            [
                {
                    "employee": data["employee"].pk,
                    "day": data["day"],
                    "hours": data["hours"],
                    "note": data.get("note", ""),
                }
            ]
        )
        serializer.instance = TimeEntry.objects.get(employee=data["employee"], day=data["day"])

    def perform_update(self, serializer):
        entry = serializer.instance
        data = serializer.validated_data
        self._upsert(
            [
                {
                    "employee": entry.employee_id,
                    "day": entry.day,
                    "hours": data.get("hours", entry.hours),
                    "note": data.get("note", entry.note),
                }
            ]
        )
        serializer.instance = TimeEntry.objects.get(pk=entry.pk)

    @action(detail=False, methods=["post"])
    def bulk(self, request):
        payload = s.TimeEntryBulkSerializer(data=request.data)
        if not payload.is_valid():
            raise _bulk_error(payload.errors)
        entries = []
        for item in payload.validated_data["entries"]:
            entries.append(
                {
                    "employee": (item.get("employee") or "").strip() or None,
                    "employee_id": item.get("employee_id"),
                    "day": item["day"],
                    "hours": item["hours"],
                    "note": item.get("note", ""),
                }
            )
        result = self._upsert(entries)
        return Response(result, status=status.HTTP_201_CREATED)


def _bulk_error(errors) -> ValidationFailed:
    """Name the first bad entry the way the service does ("Entry 3: hours: ...", counting
    from 1), with DRF's per-entry errors in fields."""
    entries = errors.get("entries") if isinstance(errors, dict) else None
    items = entries.items() if isinstance(entries, dict) else enumerate(entries or [])
    for index, problems in items:
        if isinstance(problems, dict) and problems and str(index).isdigit():
            name, messages = next(iter(problems.items()))
            return ValidationFailed(
                f"Entry {int(index) + 1}: {name}: {_first_message(messages)} Nothing was recorded.",
                code="invalid_entry",
                fields=errors,
            )
    return ValidationFailed(
        f"{_first_message(errors) or 'Invalid request.'} Nothing was recorded.",
        code="invalid_entries",
        fields=errors if isinstance(errors, dict) else {"entries": [str(errors)]},
    )


def _first_message(errors) -> str:
    """The first message in DRF's nested errors (dicts and lists of strings)."""
    if isinstance(errors, dict):
        for name, value in errors.items():
            message = _first_message(value)
            if message:
                return message if name in ("non_field_errors", "entries") else f"{name}: {message}"
        return ""
    if isinstance(errors, list | tuple):
        for value in errors:
            message = _first_message(value)
            if message:
                return message
        return ""
    return str(errors)


# --- reference data ----------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class TaxTableViewSet(_SharedReferenceViewSet):
    """Progressive income tax tables with their brackets, per jurisdiction and taxpayer
    category, with effective dates and sources. Shared statutory tables are read-only."""

    queryset = TaxTable.objects.prefetch_related("brackets")
    serializer_class = s.TaxTableSerializer
    filterset_fields = ["jurisdiction", "category", "is_active"]
    ordering = ["jurisdiction", "category", "-effective_from"]

    def _save(self, serializer, obj):
        data = dict(serializer.validated_data)
        brackets = data.pop("brackets", None)
        for name, value in data.items():
            setattr(obj, name, value)
        serializer.instance = services.tax_table_save(
            actor=self.request.user,
            table=obj,
            company=self.company if obj.pk is None else None,
            brackets=brackets,
        )

    def perform_create(self, serializer):
        self._save(serializer, TaxTable(company=self.company))

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance)


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class OvertimeRuleViewSet(_SharedReferenceViewSet):
    """Overtime by jurisdiction (daily, weekly, double time, seventh day)."""

    queryset = OvertimeRule.objects.all()
    serializer_class = s.OvertimeRuleSerializer
    filterset_fields = ["jurisdiction", "is_active"]
    ordering = ["jurisdiction", "-effective_from"]


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class DeductionTypeViewSet(_SharedReferenceViewSet):
    """Deduction types: pre- or post-tax, fixed or percent, annual caps, employer share."""

    queryset = DeductionType.objects.all()
    serializer_class = s.DeductionTypeSerializer
    filterset_fields = ["timing", "calculation", "is_active"]
    search_fields = ["code", "name"]
    ordering = ["code"]


# --- schedules and periods ---------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    generate_periods=extend_schema(
        request=s.GeneratePeriodsSerializer,
        responses={201: s.PayrollPeriodSerializer(many=True)},
        description="Create the schedule's next periods (after its latest one), with its "
        "pay-date offset and automation rule.",
    )
)
class PayScheduleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, _PayrollViewSet
):
    """How often the company pays (weekly, bi-weekly, semi-monthly, monthly)."""

    queryset = PaySchedule.objects.all()
    serializer_class = s.PayScheduleSerializer
    filterset_fields = ["frequency", "is_active"]
    ordering = ["name"]

    def perform_create(self, serializer):
        serializer.instance = services.pay_schedule_create(
            actor=self.request.user, company=self.company, **_changes(serializer)
        )

    @action(detail=True, methods=["post"], url_path="generate-periods")
    def generate_periods(self, request, pk=None):
        payload = s.GeneratePeriodsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        periods = services.pay_schedule_generate_periods(
            actor=request.user, schedule=self.get_object(), **payload.validated_data
        )
        return Response(
            s.PayrollPeriodSerializer(periods, many=True).data, status=status.HTTP_201_CREATED
        )


def _period_action(description, *, request=None, responses=None):
    return extend_schema(
        request=request, responses=responses or s.PayrollPeriodSerializer, description=description
    )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(request=s.PeriodCreateSerializer),
    run=_period_action(
        "Start a pay run: 202 with the run (progress 0 of N); a worker pays it after commit. "
        "409 already_completed (reopen first), period_busy (being processed), not_due (the "
        "automation rule is not due: send force=true), invalid_status (draft or cancelled), "
        "earlier_period_open (an earlier period of the company is not completed or cancelled: "
        "periods are paid in order).",
        request=s.RunRequestSerializer,
        responses={202: s.PayrollRunSerializer},
    ),
    preview=_period_action(
        "Dry run: compute the period and return its totals; writes nothing.",
        request=None,
        responses=s.PreviewSerializer,
    ),
    reopen=_period_action(
        "Undo a completed run: void its payslips, reverse its journal entry, restore loan "
        "balances; the period goes back to draft (activate it, or run it, once corrected). "
        "409 later_period_completed while a later period is completed (reopen latest first).",
        request=s.ReopenSerializer,
    ),
    activate=_period_action("Make a draft period active (ready to run).", request=None),
    cancel=_period_action("Cancel a period that was not paid.", request=None),
)
class PayrollPeriodViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _PayrollViewSet,
):
    """Pay periods with their automation rule: exactly one of run_on_date, days_before_end or
    cron. A bad rule answers 400 with code automation_rule_unknown_key, _ambiguous, _bad_date,
    _negative_days or _invalid_cron, and fields.automation_rule saying why."""

    queryset = PayrollPeriod.objects.select_related("company", "schedule")
    serializer_class = s.PayrollPeriodSerializer
    filterset_class = PeriodFilter
    ordering_fields = ["start_date", "end_date", "pay_date"]
    ordering = ["-start_date"]
    http_method_names = CHANGE_METHODS

    def get_serializer_class(self):
        if self.action == "create":
            return s.PeriodCreateSerializer
        return super().get_serializer_class()

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        period = services.payroll_period_create(
            actor=request.user, company=self.company, **payload.validated_data
        )
        return Response(s.PayrollPeriodSerializer(period).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = services.payroll_period_update(
            actor=self.request.user, period=serializer.instance, **_changes(serializer)
        )

    def perform_destroy(self, instance):
        services.payroll_period_delete(actor=self.request.user, period=instance)

    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        payload = s.RunRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        run = services.payroll_period_run(
            actor=request.user,
            period=self.get_object(),
            force=payload.validated_data["force"],
            trigger=RunTrigger.API,
        )
        return Response(s.PayrollRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        services.require_payroll_role(request.user, self.company, "preview payroll")
        result = PayrollProcessor(self.get_object()).preview()
        return Response(s.PreviewSerializer(result).data)

    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        period = self.get_object()  # another company's period answers 404 before any validation
        payload = s.ReopenSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        period = services.payroll_period_reopen(
            actor=request.user, period=period, reason=payload.validated_data["reason"]
        )
        return Response(s.PayrollPeriodSerializer(period).data)

    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        period = services.payroll_period_activate(actor=request.user, period=self.get_object())
        return Response(s.PayrollPeriodSerializer(period).data)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        period = services.payroll_period_cancel(actor=request.user, period=self.get_object())
        return Response(s.PayrollPeriodSerializer(period).data)


# --- runs and payslips -------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class PayrollRunViewSet(TenantReadOnlyViewSet):
    """Processing attempts of periods, newest first, with progress (done of total employees,
    chunks) and totals. Poll a run's detail to follow it."""

    scope = "payroll"
    queryset = PayrollRun.objects.select_related("journal_entry__fiscal_year", "period")
    serializer_class = s.PayrollRunSerializer
    filterset_fields = ["period", "status", "trigger"]
    ordering = ["-started_at", "-id"]


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    pdf=extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The payslip as PDF."
            )
        },
        description="The payslip as PDF (A4), with year-to-date figures.",
    )
)
class PayslipViewSet(TenantReadOnlyViewSet):
    """Payslips with their lines and year-to-date figures. Issued payslips are final; a reopened
    period's payslips are void."""

    scope = "payroll"
    queryset = Payslip.objects.select_related("employee").prefetch_related("lines")
    serializer_class = s.PayslipSerializer
    filterset_fields = {
        "employee": ["exact"],
        "period": ["exact"],
        "run": ["exact"],
        "status": ["exact"],
        "period_start": ["gte", "lte"],
    }
    ordering = ["-period_start", "employee"]

    @action(
        detail=True,
        methods=["get"],
        renderer_classes=[*api_settings.DEFAULT_RENDERER_CLASSES, PDFRenderer],
    )
    def pdf(self, request, pk=None):
        from payroll.documents import payslip_filename, payslip_pdf

        payslip = self.get_object()
        response = HttpResponse(payslip_pdf(payslip), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{payslip_filename(payslip)}"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        # An error asked for as PDF (404, 403) still answers the one JSON error shape.
        if isinstance(response, Response) and isinstance(
            getattr(request, "accepted_renderer", None), PDFRenderer
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
