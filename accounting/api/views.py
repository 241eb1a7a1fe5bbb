"""The general ledger's API (scope "accounting": every role reads; owners and accountants write).

Each write is one accounting.services call and each report one accounting.selectors call; the
services check roles, balances, periods and accounts themselves and answer with stable codes.

Amounts: send them as decimal strings ("1250.50"). JSON numbers are accepted too and read
exactly (this API parses them as Decimal, never float), so 100.1 means 100.10 and 100.005 is
refused (too_many_decimals) instead of being rounded.
"""

import codecs
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.utils import json

from accounting import selectors, services
from accounting.api import serializers as s
from accounting.api.filters import (
    AccountFilter,
    AccountRoleFilter,
    FiscalYearFilter,
    JournalEntryFilter,
    PeriodFilter,
)
from accounting.exports import csv_filename, csv_text
from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRole,
    CostCenter,
    Department,
    FiscalYear,
    JournalEntry,
    JournalLine,
    Project,
)
from core.api.base import TenantReadOnlyViewSet, TenantViewSet
from core.api.reports import ReportAPIView
from core.api.views import COMPANY_HEADER_PARAMETER

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_HEADER_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Used as the idempotency key when the body has none.",
)
REPLAYED_HEADER = "Idempotent-Replayed"


class DecimalJSONParser(JSONParser):
    """JSON whose numbers with a fraction become Decimal instead of float, so an amount is
    never rounded by the parser."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.load(
                codecs.getreader(encoding)(stream),
                parse_float=Decimal,
                parse_constant=json.strict_constant,
            )
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


# --- chart of accounts -------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    destroy=extend_schema(
        description="Deletes an account nobody has used. A used account answers 409 "
        "account_in_use and stays: deactivate it instead."
    ),
)
class AccountViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """The chart of accounts. A used account keeps its type and cannot become a header; an
    account mapped to a role cannot be deactivated until the role points elsewhere."""

    scope = "accounting"
    queryset = Account.objects.select_related("parent").prefetch_related("roles")
    serializer_class = s.AccountSerializer
    filterset_class = AccountFilter
    search_fields = ["code", "name"]
    ordering_fields = ["code", "name", "type"]
    ordering = ["code"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        serializer.instance = services.account_create(
            actor=self.request.user, company=self.company, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.account_update(
            actor=self.request.user, account=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.account_delete(actor=self.request.user, account=instance)

    @extend_schema(request=None, responses=s.AccountSerializer)
    @action(detail=True, methods=["post"])
    def deactivate(self, request, pk=None):
        account = services.account_deactivate(actor=request.user, account=self.get_object())
        return Response(s.AccountSerializer(account).data)


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Map a role to an account, replacing the account it pointed to: "
        "201 when the role was unmapped, 200 when it is replaced.",
        responses={201: s.AccountRoleSerializer, 200: s.AccountRoleSerializer},
    )
)
class AccountRoleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantViewSet
):
    """Which account each posting role (bank, salaries_payable, vat_payable...) uses. Payroll,
    invoicing and banking post to roles, never to account codes."""

    scope = "accounting"
    queryset = AccountRole.objects.select_related("account")
    serializer_class = s.AccountRoleSerializer
    filterset_class = AccountRoleFilter
    ordering = ["role"]

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        role = payload.validated_data["role"]
        mapped = AccountRole.objects.filter(company=self.company, role=role).exists()
        mapping = services.account_role_set(
            actor=request.user,
            company=self.company,
            role=role,
            account=payload.validated_data["account"],
        )
        return Response(
            s.AccountRoleSerializer(mapping).data,
            status=status.HTTP_200_OK if mapped else status.HTTP_201_CREATED,
        )


# --- dimensions --------------------------------------------------------------------------------


class _DimensionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSet,
):
    scope = "accounting"
    filterset_fields = ["is_active"]
    search_fields = ["code", "name"]
    ordering_fields = ["code", "name"]
    ordering = ["code"]
    # Dimensions are never deleted (lines point at them): PATCH is_active=false retires one.
    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer):
        serializer.instance = services.dimension_create(
            actor=self.request.user,
            company=self.company,
            model=self.queryset.model,
            **serializer.validated_data,
        )

    def perform_update(self, serializer):
        serializer.instance = services.dimension_update(
            actor=self.request.user, dimension=serializer.instance, **serializer.validated_data
        )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class CostCenterViewSet(_DimensionViewSet):
    """Cost centres a journal line may carry. Retire one with PATCH is_active=false."""

    queryset = CostCenter.objects.all()
    serializer_class = s.CostCenterSerializer


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class ProjectViewSet(_DimensionViewSet):
    """Projects a journal line may carry. Retire one with PATCH is_active=false."""

    queryset = Project.objects.all()
    serializer_class = s.ProjectSerializer


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class DepartmentViewSet(_DimensionViewSet):
    """Departments a journal line may carry. Retire one with PATCH is_active=false."""

    queryset = Department.objects.all()
    serializer_class = s.DepartmentSerializer


# --- fiscal years and periods ------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        request=s.FiscalYearOpenSerializer,
        responses={201: s.FiscalYearSerializer, 200: s.FiscalYearSerializer},
        description="Open the fiscal year containing a date, with its twelve monthly periods: "
        "201 when opened, 200 when it was already open.",
    ),
    close=extend_schema(
        request=None,
        responses=s.FiscalYearSerializer,
        description="Year-end close: one entry on the year's last day moves every income and "
        "expense balance to the retained-earnings role account, then the year and all its "
        "periods close. Earlier years must be closed first (409 close_in_order).",
    ),
)
class FiscalYearViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantViewSet
):
    """Fiscal years, newest first."""

    scope = "accounting"
    queryset = FiscalYear.objects.select_related("closing_entry__fiscal_year", "closed_by")
    serializer_class = s.FiscalYearSerializer
    filterset_class = FiscalYearFilter
    ordering = ["-start_date"]

    def get_serializer_class(self):
        return s.FiscalYearOpenSerializer if self.action == "create" else s.FiscalYearSerializer

    def _answer(self, year: FiscalYear, code=status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=year.pk)
        return Response(s.FiscalYearSerializer(fresh).data, status=code)

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        day = payload.validated_data["containing"]
        existed = FiscalYear.objects.filter(
            company=self.company, start_date__lte=day, end_date__gte=day
        ).exists()
        year = services.fiscal_year_create(actor=request.user, company=self.company, containing=day)
        return self._answer(year, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        year = services.fiscal_year_close(actor=request.user, fiscal_year=self.get_object())
        return self._answer(year)


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    lock=extend_schema(
        request=None,
        responses=s.AccountingPeriodSerializer,
        description="Stop postings into an open period (reopen undoes it).",
    ),
    close=extend_schema(
        request=None,
        responses=s.AccountingPeriodSerializer,
        description="Close a period for good; periods close in date order.",
    ),
    reopen=extend_schema(
        request=None,
        responses=s.AccountingPeriodSerializer,
        description="Open a locked period again (owner or accountant) or a closed one (owner "
        "only: 403 role_required otherwise); closed periods reopen from the latest back.",
    ),
)
class AccountingPeriodViewSet(TenantReadOnlyViewSet):
    """Monthly accounting periods: open takes postings, locked and closed take none."""

    scope = "accounting"
    queryset = AccountingPeriod.objects.select_related("fiscal_year", "status_changed_by")
    serializer_class = s.AccountingPeriodSerializer
    filterset_class = PeriodFilter
    ordering = ["start_date"]

    def _move(self, service) -> Response:
        period = service(actor=self.request.user, period=self.get_object())
        return Response(s.AccountingPeriodSerializer(self.get_queryset().get(pk=period.pk)).data)

    @action(detail=True, methods=["post"])
    def lock(self, request, pk=None):
        return self._move(services.period_lock)

    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._move(services.period_close)

    @action(detail=True, methods=["post"])
    def reopen(self, request, pk=None):
        return self._move(services.period_reopen)


# --- journal entries ---------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        request=s.JournalEntryPostSerializer,
        parameters=[IDEMPOTENCY_HEADER_PARAMETER],
        responses={
            201: s.JournalEntrySerializer,
            200: OpenApiResponse(
                s.JournalEntrySerializer,
                description="A retry: the entry first posted with this idempotency key "
                "(header Idempotent-Replayed: true).",
            ),
        },
        description="Post one balanced entry. Each line names its account by `account` (id), "
        "`account_code` or `account_role` and has a `debit` or a `credit`. Refusals answer "
        "400 with a code: unbalanced (fields.difference = debits minus credits), "
        "too_few_lines, too_many_decimals, negative_amount, both_sides, zero_amount, "
        "unknown_account, account_inactive, account_not_postable, unknown_dimension, "
        "period_locked, period_closed, no_fiscal_year; a reused idempotency key with other "
        "content answers 409 idempotency_conflict.",
    ),
    reverse_entry=extend_schema(
        request=s.JournalEntryReverseSerializer,
        responses={201: s.JournalEntrySerializer},
        description="Post the mirror image of the entry and mark it reversed. Reversing again "
        "answers 409 already_reversed.",
    ),
    bulk=extend_schema(
        request=s.JournalEntryBulkSerializer,
        responses={
            201: s.JournalEntryBulkResultSerializer,
            200: s.JournalEntryBulkResultSerializer,
        },
        description=f"Post up to {s.MAX_BULK_ENTRIES:,} entries in one transaction, all or "
        'nothing; an error names the entry ("Entry 3: ..."). Entries whose idempotency key '
        "was posted before with the same content are returned, not posted again (200 when the "
        "whole batch was a replay).",
    ),
)
class JournalEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Posted journal entries, newest first. Entries are immutable: there is no update or
    delete; a correction is a reversal (POST .../{id}/reverse/) and a new entry."""

    scope = "accounting"
    queryset = JournalEntry.objects.select_related(
        "fiscal_year", "reversal_of__fiscal_year", "reversed_by__fiscal_year"
    ).prefetch_related(
        Prefetch(
            "lines", queryset=JournalLine.objects.select_related("account").order_by("line_no")
        )
    )
    serializer_class = s.JournalEntrySerializer
    filterset_class = JournalEntryFilter
    search_fields = ["memo", "source_id", "idempotency_key"]
    ordering_fields = ["date", "id", "number", "total", "posted_at"]
    ordering = ["-date", "-id"]
    parser_classes = [DecimalJSONParser]

    def get_serializer_class(self):
        return {
            "create": s.JournalEntryPostSerializer,
            "bulk": s.JournalEntryBulkSerializer,
            "reverse_entry": s.JournalEntryReverseSerializer,
        }.get(self.action, s.JournalEntrySerializer)

    def _entry(self, entry: JournalEntry, code: int, headers=None) -> Response:
        fresh = self.get_queryset().get(pk=entry.pk)
        return Response(s.JournalEntrySerializer(fresh).data, status=code, headers=headers)

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        spec = dict(payload.validated_data)
        key = spec.get("idempotency_key") or request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        spec["idempotency_key"] = key
        entry = services.journal_entry_post(actor=request.user, company=self.company, **spec)
        if entry.replayed:
            return self._entry(entry, status.HTTP_200_OK, {REPLAYED_HEADER: "true"})
        return self._entry(entry, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"], url_path="reverse")
    def reverse_entry(self, request, pk=None):
        entry = self.get_object()  # another company's entry answers 404 before any validation
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        reversal = services.journal_entry_reverse(
            actor=request.user, entry=entry, **payload.validated_data
        )
        return self._entry(reversal, status.HTTP_201_CREATED)

    @action(detail=False, methods=["post"])
    def bulk(self, request):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        specs = [dict(entry) for entry in payload.validated_data["entries"]]
        posted = services.journal_entries_post_bulk(
            actor=request.user, company=self.company, entries=specs
        )
        rows = JournalEntry.objects.select_related("fiscal_year").in_bulk([e.pk for e in posted])
        replayed = sum(1 for e in posted if e.replayed)
        result = {
            "posted": len(posted) - replayed,
            "replayed": replayed,
            "entries": [rows[e.pk] for e in posted],
        }
        return Response(
            s.JournalEntryBulkResultSerializer(result).data,
            status=status.HTTP_201_CREATED if result["posted"] else status.HTTP_200_OK,
        )


# --- reports -----------------------------------------------------------------------------------


def _report_schema(query, response, description: str):
    return extend_schema(
        parameters=[COMPANY_HEADER_PARAMETER, query],
        responses={
            (200, "application/json"): response,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="With ?format=csv: the report as CSV."
            ),
        },
        description=description,
    )


class _ReportView(ReportAPIView):
    scope = "accounting"
    query_class: type = s.ReportRangeQuery
    response_class: type = s.TrialBalanceSerializer

    def csv(self, report: dict) -> tuple[str, str]:
        return csv_text(report), csv_filename(report, self.company.slug)

    def span(self, query: dict) -> dict:
        date_from, date_to = selectors.resolve_range(
            company=self.company,
            period_from=query.get("period_from"),
            period_to=query.get("period_to"),
            date_from=query.get("date_from"),
            date_to=query.get("date_to"),
        )
        return {"date_from": date_from, "date_to": date_to, **self.dimensions(query)}

    @staticmethod
    def dimensions(query: dict) -> dict:
        return {name: query.get(name) for name in ("cost_center", "project", "department")}


class TrialBalanceView(_ReportView):
    """Per account: opening balance, debits and credits in the range, closing balance."""

    query_class = s.TrialBalanceQuery
    response_class = s.TrialBalanceSerializer

    def build(self, query):
        return selectors.trial_balance(
            company=self.company, include_zero=query["include_zero"], **self.span(query)
        )

    @_report_schema(
        s.TrialBalanceQuery,
        s.TrialBalanceSerializer,
        "Trial balance over a range of periods or dates, optionally for one cost centre, "
        "project or department. `balanced` says whether closing debits equal credits.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class GeneralLedgerView(_ReportView):
    """One account's lines in date order with a running balance."""

    query_class = s.GeneralLedgerQuery
    response_class = s.GeneralLedgerSerializer

    def build(self, query):
        return selectors.general_ledger(
            company=self.company, account=query["account"], **self.span(query)
        )

    @_report_schema(
        s.GeneralLedgerQuery,
        s.GeneralLedgerSerializer,
        "One account's lines in date order with the opening balance and a running balance "
        "(debit minus credit).",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ProfitAndLossView(_ReportView):
    """Income less expenses; the fiscal year to date when no start is given."""

    query_class = s.ProfitAndLossQuery
    response_class = s.ProfitAndLossSerializer

    def build(self, query):
        return selectors.profit_and_loss(company=self.company, **self.span(query))

    @_report_schema(
        s.ProfitAndLossQuery,
        s.ProfitAndLossSerializer,
        "Income less expenses over the range (from the start of the fiscal year when no "
        "start is given). Year-end closing entries are left out.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class BalanceSheetView(_ReportView):
    """Assets against liabilities, equity and earnings not yet closed."""

    query_class = s.BalanceSheetQuery
    response_class = s.BalanceSheetSerializer

    def build(self, query):
        as_of = query.get("as_of")
        if as_of is None:
            _start, as_of = selectors.resolve_range(
                company=self.company, period_to=query.get("period_to")
            )
        return selectors.balance_sheet(company=self.company, as_of=as_of, **self.dimensions(query))

    @_report_schema(
        s.BalanceSheetQuery,
        s.BalanceSheetSerializer,
        "Balance sheet as of a date (today by default): assets = liabilities + equity + "
        "earnings not yet closed to retained earnings (current year and earlier years).",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
