"""The banking reports: not model resources, so plain paths under /api/v1/banking/ (included
from config/urls.py before the router). The guide writes them without a trailing slash; both
spellings answer, and so does `transactions/{id}/post-accounting` without its slash."""

from django.urls import re_path
from drf_spectacular.utils import extend_schema

from banking.api.reports import (
    CashPositionView,
    DimensionalAnalysisView,
    ReconciliationCloseView,
    ReconciliationListView,
    ReconciliationReportView,
    TransferTrackingView,
    VarianceReportView,
)
from banking.api.views import BankTransactionViewSet


@extend_schema(exclude=True)  # the router's post-accounting/ is the documented spelling
class _PostAccountingWithoutSlash(BankTransactionViewSet):
    pass


urlpatterns = [
    re_path(
        r"^reconciliation/close/?$",
        ReconciliationCloseView.as_view(),
        name="banking-reconciliation-close",
    ),
    re_path(
        r"^reconciliations/?$", ReconciliationListView.as_view(), name="banking-reconciliations"
    ),
    re_path(
        r"^reconciliation/?$", ReconciliationReportView.as_view(), name="banking-reconciliation"
    ),
    re_path(r"^cash-position/?$", CashPositionView.as_view(), name="banking-cash-position"),
    re_path(
        r"^transfer-tracking/?$", TransferTrackingView.as_view(), name="banking-transfer-tracking"
    ),
    re_path(
        r"^dimensional-analysis/?$",
        DimensionalAnalysisView.as_view(),
        name="banking-dimensional-analysis",
    ),
    re_path(r"^variance-report/?$", VarianceReportView.as_view(), name="banking-variance-report"),
    re_path(
        r"^transactions/(?P<pk>[0-9]+)/post-accounting$",
        _PostAccountingWithoutSlash.as_view({"post": "post_accounting"}),
        name="banking-post-accounting",
    ),
]
