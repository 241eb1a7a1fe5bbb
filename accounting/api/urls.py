"""Ledger reports: not model resources, so plain paths under /api/v1/accounting/reports/."""

from django.urls import path

from accounting.api.views import (
    BalanceSheetView,
    GeneralLedgerView,
    ProfitAndLossView,
    TrialBalanceView,
)

urlpatterns = [
    path("trial-balance/", TrialBalanceView.as_view(), name="accounting-trial-balance"),
    path("general-ledger/", GeneralLedgerView.as_view(), name="accounting-general-ledger"),
    path("profit-and-loss/", ProfitAndLossView.as_view(), name="accounting-profit-and-loss"),
    path("balance-sheet/", BalanceSheetView.as_view(), name="accounting-balance-sheet"),
]
