"""The VAT reports: not model resources, so plain paths under /api/v1/invoicing/reports/."""

from django.urls import path

from invoicing.api.reports import SalesRegisterView, VatSummaryView

urlpatterns = [
    path("sales-register/", SalesRegisterView.as_view(), name="invoicing-sales-register"),
    path("vat-summary/", VatSummaryView.as_view(), name="invoicing-vat-summary"),
]
