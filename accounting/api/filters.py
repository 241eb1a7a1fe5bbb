"""Query filters for the ledger's list endpoints. Ids are plain numbers (never choice fields)
so a filter never tells one company whether another company's row exists."""

import django_filters
from django import forms
from django.db.models import Exists, OuterRef
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRole,
    AccountType,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    PeriodStatus,
)


class _IdFormField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_value", 2**63 - 1)  # beyond it no row matches; drivers choke
        super().__init__(*args, **kwargs)


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.Filter):
    field_class = _IdFormField


class AccountFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=AccountType.choices)
    parent = IdFilter(field_name="parent_id")

    class Meta:
        model = Account
        fields = ["type", "is_active", "is_postable", "parent"]


class AccountRoleFilter(django_filters.FilterSet):
    account = IdFilter(field_name="account_id")

    class Meta:
        model = AccountRole
        fields = ["role", "account"]


class FiscalYearFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=FiscalYear.Status.choices)

    class Meta:
        model = FiscalYear
        fields = ["status"]


class PeriodFilter(django_filters.FilterSet):
    fiscal_year = IdFilter(field_name="fiscal_year_id")
    status = django_filters.ChoiceFilter(choices=PeriodStatus.choices)

    class Meta:
        model = AccountingPeriod
        fields = ["fiscal_year", "status"]


class JournalEntryFilter(django_filters.FilterSet):
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    period = IdFilter(field_name="period_id")
    fiscal_year = IdFilter(field_name="fiscal_year_id")
    status = django_filters.ChoiceFilter(choices=EntryStatus.choices)
    source_type = django_filters.CharFilter()
    source_id = django_filters.CharFilter()
    account = IdFilter(
        method="filter_account", label="Entries with at least one line on this account (id)."
    )

    class Meta:
        model = JournalEntry
        fields = [
            "date_from",
            "date_to",
            "period",
            "fiscal_year",
            "status",
            "source_type",
            "source_id",
            "account",
        ]

    def filter_account(self, queryset, name, value):
        # EXISTS rather than a join: an entry with two lines on the account is listed once.
        return queryset.filter(
            Exists(JournalLine.objects.filter(entry_id=OuterRef("pk"), account_id=value))
        )
