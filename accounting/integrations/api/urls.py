"""The integration hub's API resources, registered on the one router in config/api_router.py
(so the tenant-isolation and role tests walk them) under /api/v1/accounting/integrations/. The
OAuth callback and the guide's `POST /api/v1/accounting/test-connection` are plain paths in
config/urls.py (`urlpatterns` below); the webhooks are hub-xero-webhooks' (webhook_views.py)."""

from django.urls import path

from accounting.integrations.api.views import (
    AccountMappingViewSet,
    ConnectionViewSet,
    OAuthCallbackView,
    SyncErrorViewSet,
    SyncRunViewSet,
    TestConnectionView,
)

ROUTES = [
    ("accounting/integrations/connections", ConnectionViewSet, "integration-connection"),
    ("accounting/integrations/runs", SyncRunViewSet, "integration-run"),
    ("accounting/integrations/errors", SyncErrorViewSet, "integration-error"),
    ("accounting/integrations/account-mappings", AccountMappingViewSet, "integration-mapping"),
]

# Mounted at /api/v1/accounting/ by config/urls.py.
urlpatterns = [
    path("test-connection", TestConnectionView.as_view(), name="integrations-test-connection"),
    path(
        "integrations/<str:system>/callback",
        OAuthCallbackView.as_view(),
        name="integrations-oauth-callback",
    ),
]
