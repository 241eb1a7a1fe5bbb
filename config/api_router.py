"""The API's one router. Every resource of every module registers here, which lets the
tenant-isolation test walk all of them (tests/core/test_tenant_isolation.py)."""

from rest_framework.routers import DefaultRouter

from accounting.api.views import (
    AccountingPeriodViewSet,
    AccountRoleViewSet,
    AccountViewSet,
    CostCenterViewSet,
    DepartmentViewSet,
    FiscalYearViewSet,
    JournalEntryViewSet,
    ProjectViewSet,
)
from core.api.views import AuditEventViewSet, CompanyViewSet, MembershipViewSet
from invoicing.api.views import (
    InvoiceViewSet,
    ItemViewSet,
    PartyViewSet,
    RecurringInvoiceViewSet,
    VatRateViewSet,
)

router = DefaultRouter()
router.register("companies", CompanyViewSet, basename="company")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("audit-events", AuditEventViewSet, basename="audit-event")

# The general ledger; its reports are plain paths in accounting/api/urls.py.
router.register("accounting/accounts", AccountViewSet, basename="account")
router.register("accounting/account-roles", AccountRoleViewSet, basename="account-role")
router.register("accounting/cost-centers", CostCenterViewSet, basename="cost-center")
router.register("accounting/projects", ProjectViewSet, basename="project")
router.register("accounting/departments", DepartmentViewSet, basename="department")
router.register("accounting/fiscal-years", FiscalYearViewSet, basename="fiscal-year")
router.register("accounting/periods", AccountingPeriodViewSet, basename="accounting-period")
router.register("accounting/journal-entries", JournalEntryViewSet, basename="journal-entry")

# Invoicing; its VAT reports are plain paths in invoicing/api/report_urls.py.
router.register("invoicing/parties", PartyViewSet, basename="party")
router.register("invoicing/vat-rates", VatRateViewSet, basename="vat-rate")
router.register("invoicing/items", ItemViewSet, basename="item")
router.register("invoicing/invoices", InvoiceViewSet, basename="invoice")
router.register(
    "invoicing/recurring-invoices", RecurringInvoiceViewSet, basename="recurring-invoice"
)

# Payroll (payroll/api/urls.py lists its resources).
from payroll.api.urls import ROUTES as PAYROLL_ROUTES  # noqa: E402

for _prefix, _viewset, _basename in PAYROLL_ROUTES:
    router.register(_prefix, _viewset, basename=_basename)

# Banking (banking/api/urls.py lists its resources; its reports are in banking/api/report_urls.py).
from banking.api.urls import ROUTES as BANKING_ROUTES  # noqa: E402

for _prefix, _viewset, _basename in BANKING_ROUTES:
    router.register(_prefix, _viewset, basename=_basename)

# The integration hub (accounting/integrations/api/urls.py lists its resources; the OAuth callback
# and POST accounting/test-connection are plain paths in config/urls.py).
from accounting.integrations.api.urls import ROUTES as INTEGRATION_ROUTES  # noqa: E402

for _prefix, _viewset, _basename in INTEGRATION_ROUTES:
    router.register(_prefix, _viewset, basename=_basename)
