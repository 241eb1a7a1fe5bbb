from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounting.integrations.api.webhook_views import WebhookView
from config.api_router import router
from core.api.views import MeView

api_v1 = [
    path("auth/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("me/", MeView.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("accounting/reports/", include("accounting.api.urls")),
    path("invoicing/reports/", include("invoicing.api.report_urls")),
    path("banking/", include("banking.api.report_urls")),
    # The integration hub's OAuth callback and the guide's test-connection (hub-ui).
    path("accounting/", include("accounting.integrations.api.urls")),
    path(
        "accounting/integrations/<str:system>/webhooks/<int:connection_id>",
        WebhookView.as_view(),
        name="integrations-webhook",
    ),
    path("", include(router.urls)),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # /health/live, /health/ready, /health, /ready and /metrics: core.health.HealthCheckMiddleware
]

handler404 = "core.api.exceptions.handler404"
handler500 = "core.api.exceptions.handler500"
