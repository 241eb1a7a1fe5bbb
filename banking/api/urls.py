"""Banking's API resources, registered on the one router in config/api_router.py (so the
tenant-isolation and role tests walk them) under /api/v1/banking/. The reports are plain paths
in banking/api/report_urls.py."""

from banking.api.views import (
    BankAccountViewSet,
    BankTransactionViewSet,
    BankTransferViewSet,
    CashSubmissionViewSet,
    FloatAllocationViewSet,
    ReconciliationMatchViewSet,
    StatementImportViewSet,
    StatementLineViewSet,
)

ROUTES = [
    ("banking/accounts", BankAccountViewSet, "bank-account"),
    ("banking/transactions", BankTransactionViewSet, "bank-transaction"),
    ("banking/transfers", BankTransferViewSet, "bank-transfer"),
    ("banking/cash-submissions", CashSubmissionViewSet, "cash-submission"),
    ("banking/float-allocations", FloatAllocationViewSet, "float-allocation"),
    ("banking/imports", StatementImportViewSet, "statement-import"),
    ("banking/statement-lines", StatementLineViewSet, "statement-line"),
    ("banking/reconciliation-matches", ReconciliationMatchViewSet, "reconciliation-match"),
]

urlpatterns: list = []  # every banking resource is a router resource
