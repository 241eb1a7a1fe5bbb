"""The integration hub API (scope "integrations": owners, accountants and auditors read; owners
and accountants write). Every write is one services call.

Under /api/v1/accounting/integrations/:
- `connections/` CRUD. `credentials` is write-only (merged: a key set to null or "" is removed);
  responses carry `credential_keys` and `credentials_masked` only. `settings` is checked per system
  (accounting/integrations/validation.py).
- `connections/{id}/test-connection` (POST) -> {"success", "latency_ms", "version", "message"},
  recorded on the connection and as a `test` run.
- `connections/{id}/sync` (POST {"entity"?, "direction"?}) queues one sync per entity on the
  integrations queue after commit and answers 202 {"queued": [{"entity", "direction"}],
  "runs_url"}; the run rows appear when a worker starts them. `?wait=true` runs one entity in the
  request instead and answers 200 with its run (for scripts and small syncs; an entity is
  required then).
- `connections/{id}/connect` (GET) -> {"authorize_url"} for Zoho Books, QuickBooks and Xero:
  send the user there; the provider comes back to `{system}/callback`.
- `connections/{id}/summary` (GET), `connections/{id}/enable` and `/disable` (POST).
- `runs/` read-only (filters connection, status, entity, sync_type).
- `errors/` read-only with POST `{id}/retry`, `{id}/resolve`, `{id}/ignore` ({"note"?}).
- `account-mappings/` list, read, PATCH {"account": <local account id or null>}.
Plain paths (config/urls.py): `{system}/callback?code=&state=` and
`POST /api/v1/accounting/test-connection` {"configId"} (the deployment guide's form).
"""

from __future__ import annotations

from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounting.integrations import services
from accounting.integrations.api import serializers as s
from accounting.integrations.models import (
    AccountMapping,
    IntegrationConnection,
    SyncError,
    SyncRun,
)
from accounting.integrations.sync import IMPORT_ENTITIES
from core.api.base import TenantAPIView, TenantReadOnlyViewSet, TenantViewSet
from core.api.views import COMPANY_HEADER_PARAMETER
from core.errors import ValidationFailed
from core.roles import roles_for

SCOPE = "integrations"
WRITERS = roles_for(SCOPE, write=True)
ERROR_BODY = OpenApiResponse(description='{"code", "message", "fields"}')


def _natural_direction(entity: str) -> str:
    return "import" if entity in IMPORT_ENTITIES else "export"


def _connection_url(request, connection) -> str:
    return request.build_absolute_uri(
        f"/api/v1/accounting/integrations/runs/?connection={connection.pk}"
    )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class ConnectionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """Connections to Tally, Busy, Zoho Books, QuickBooks Online and Xero."""

    scope = SCOPE
    queryset = IntegrationConnection.objects.all()
    serializer_class = s.ConnectionSerializer
    filterset_fields = ["system", "enabled", "needs_reauth"]
    search_fields = ["name"]
    ordering_fields = ["system", "name", "last_sync_at"]
    ordering = ["system", "name"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Asking for a consent URL is a GET, but only someone who may connect should get one.
    action_roles = {"connect": WRITERS}

    def perform_create(self, serializer):
        serializer.instance = services.connection_create(
            actor=self.request.user, company=self.company, **serializer.validated_data
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        credentials = data.pop("credentials", None)
        serializer.instance = services.connection_update(
            actor=self.request.user, connection=serializer.instance, credentials=credentials, **data
        )

    def perform_destroy(self, instance):
        services.connection_delete(actor=self.request.user, connection=instance)

    @extend_schema(request=None, responses={200: s.TestResultSerializer, 404: ERROR_BODY})
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        """Ask the external system whether it answers; the outcome is recorded."""
        outcome = services.connection_test(actor=request.user, connection=self.get_object())
        return Response(s.TestResultSerializer(outcome).data)

    @extend_schema(
        request=s.SyncRequestSerializer,
        parameters=[
            OpenApiParameter(
                "wait", OpenApiTypes.BOOL, description="Run in the request (one entity)."
            )
        ],
        responses={
            202: s.SyncQueuedSerializer,
            200: s.SyncRunSerializer,
            400: ERROR_BODY,
            409: ERROR_BODY,
        },
    )
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Queue a sync (202), or with ?wait=true run one entity now (200 with the run)."""
        connection = self.get_object()
        body = s.SyncRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entity = body.validated_data.get("entity")
        direction = body.validated_data.get("direction")
        if request.query_params.get("wait") in ("1", "true", "yes"):
            if not entity:
                raise ValidationFailed(
                    "Name one entity to run it in the request.",
                    fields={"entity": ["Required with wait=true."]},
                )
            run = services.sync_now(
                actor=request.user, connection=connection, entity=entity, direction=direction
            )
            return Response(s.SyncRunSerializer(run).data)
        entities = [entity] if entity else list(connection.entities)
        if direction:
            # Checked before anything is queued: a queued task cannot be taken back.
            entities = [e for e in entities if _natural_direction(e) == direction]
            if not entities:
                raise ValidationFailed(
                    f"{entity or 'None of the entities'} cannot be synced as {direction}.",
                    code="direction_invalid",
                    fields={"direction": [f"Not a direction of {entity or 'these entities'}."]},
                )
        pairs = services.sync_start(actor=request.user, connection=connection, entities=entities)
        return Response(
            {
                "queued": [{"entity": e, "direction": d} for e, d in pairs],
                "runs_url": _connection_url(request, connection),
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        responses={
            200: inline_serializer("ConnectUrl", {"authorize_url": serializers.URLField()}),
            400: ERROR_BODY,
            409: ERROR_BODY,
        }
    )
    @action(detail=True, methods=["get"])
    def connect(self, request, pk=None):
        """The provider's consent URL (Zoho Books, QuickBooks, Xero), valid 15 minutes."""
        connection = self.get_object()
        url = services.oauth_connect_begin(
            actor=request.user,
            connection=connection,
            redirect_uri=services.oauth_redirect_uri(
                connection.system, build_absolute_uri=request.build_absolute_uri
            ),
        )
        return Response({"authorize_url": url})

    @extend_schema(responses={200: s.ConnectionSummarySerializer})
    @action(detail=True, methods=["get"])
    def summary(self, request, pk=None):
        """Runs by status over the last 30 days, open errors, last sync and test."""
        summary = services.connection_summary_read(self.get_object())
        return Response(s.ConnectionSummarySerializer(summary).data)

    @extend_schema(request=None, responses={200: s.ConnectionSerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        connection = services.connection_enable(actor=request.user, connection=self.get_object())
        return Response(s.ConnectionSerializer(connection).data)

    @extend_schema(request=None, responses={200: s.ConnectionSerializer})
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        connection = services.connection_disable(actor=request.user, connection=self.get_object())
        return Response(s.ConnectionSerializer(connection).data)


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class SyncRunViewSet(TenantReadOnlyViewSet):
    """Sync runs, newest first (archived ones with ?archived=true)."""

    scope = SCOPE
    queryset = SyncRun.objects.select_related("connection")
    serializer_class = s.SyncRunSerializer
    filterset_fields = ["connection", "status", "entity", "sync_type", "archived"]
    ordering_fields = ["started_at", "duration_ms"]
    ordering = ["-started_at", "-id"]


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class SyncErrorViewSet(TenantReadOnlyViewSet):
    """Sync errors with their retry state; retry, resolve or ignore them."""

    scope = SCOPE
    queryset = SyncError.objects.select_related("connection")
    serializer_class = s.SyncErrorSerializer
    filterset_fields = ["connection", "resolution", "category", "severity", "entity", "retryable"]
    search_fields = ["message", "external_id"]
    ordering_fields = ["created_at", "next_retry_at"]
    ordering = ["-created_at", "-id"]

    @extend_schema(request=None, responses={200: s.SyncErrorSerializer, 409: ERROR_BODY})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Sync the error's entity again now (queued after commit)."""
        error = services.sync_error_retry(actor=request.user, error=self.get_object())
        return Response(s.SyncErrorSerializer(error).data)

    @extend_schema(
        request=s.ErrorActionSerializer, responses={200: s.SyncErrorSerializer, 409: ERROR_BODY}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        body = s.ErrorActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        error = services.sync_error_resolve(
            actor=request.user, error=self.get_object(), note=body.validated_data.get("note", "")
        )
        return Response(s.SyncErrorSerializer(error).data)

    @extend_schema(
        request=s.ErrorActionSerializer, responses={200: s.SyncErrorSerializer, 409: ERROR_BODY}
    )
    @action(detail=True, methods=["post"])
    def ignore(self, request, pk=None):
        body = s.ErrorActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        error = services.sync_error_ignore(
            actor=request.user, error=self.get_object(), note=body.validated_data.get("note", "")
        )
        return Response(s.SyncErrorSerializer(error).data)


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class AccountMappingViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, TenantViewSet
):
    """External accounts imported from a connection; PATCH sets the local account."""

    scope = SCOPE
    queryset = AccountMapping.objects.select_related("account")
    serializer_class = s.AccountMappingSerializer
    filterset_fields = {"connection": ["exact"], "account": ["exact", "isnull"]}
    search_fields = ["external_code", "external_name"]
    ordering = ["external_code", "external_name"]
    http_method_names = ["get", "patch", "head", "options"]

    def perform_update(self, serializer):
        mapping = serializer.instance
        account = serializer.validated_data.get("account", mapping.account)
        serializer.instance = services.account_mapping_set(
            actor=self.request.user, mapping=mapping, account=account
        )


class TestConnectionView(TenantAPIView):
    """`POST /api/v1/accounting/test-connection` {"configId": <connection id>}, as in the
    deployment guide: the same answer as `connections/{id}/test-connection`."""

    scope = SCOPE

    @extend_schema(
        parameters=[COMPANY_HEADER_PARAMETER],
        request=s.TestConnectionRequestSerializer,
        responses={200: s.TestResultSerializer, 400: ERROR_BODY, 404: ERROR_BODY},
    )
    def post(self, request):
        body = s.TestConnectionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        connection = get_object_or_404(
            IntegrationConnection, pk=body.validated_data["configId"], company=self.company
        )
        outcome = services.connection_test(actor=request.user, connection=connection)
        return Response(s.TestResultSerializer(outcome).data)


class OAuthCallbackView(APIView):
    """Where Zoho, QuickBooks and Xero send the user back after consent. The signed, expiring
    `state` (made by `connect`) names the connection and the user, so no login is needed here.
    Browsers (Accept: text/html) are redirected to the connection's admin page; API clients get
    JSON. A forged or altered state answers 400 `oauth_state_invalid`, an old one
    `oauth_state_expired`."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("code", str, description="The authorisation code."),
            OpenApiParameter("state", str, description="The state given to the provider."),
            OpenApiParameter("realmId", str, description="QuickBooks: the company connected."),
            OpenApiParameter("error", str, description="Set when the user refused."),
        ],
        responses={
            200: inline_serializer(
                "OAuthConnected",
                {
                    "connection": serializers.IntegerField(),
                    "system": serializers.CharField(),
                    "connected": serializers.BooleanField(),
                    "credential_keys": serializers.ListField(child=serializers.CharField()),
                },
            ),
            302: OpenApiResponse(description="Redirect to the connection's admin page."),
            400: ERROR_BODY,
        },
    )
    def get(self, request, system: str):
        connection = services.oauth_callback_complete(
            system=system,
            code=request.query_params.get("code", ""),
            state=request.query_params.get("state", ""),
            realm_id=request.query_params.get("realmId", ""),
            error=request.query_params.get("error", ""),
            redirect_uri=services.oauth_redirect_uri(
                system, build_absolute_uri=request.build_absolute_uri
            ),
        )
        if "text/html" in request.headers.get("Accept", ""):
            return HttpResponseRedirect(
                reverse("admin:integrations_integrationconnection_change", args=[connection.pk])
            )
        return Response(
            {
                "connection": connection.pk,
                "system": connection.system,
                "connected": True,
                "credential_keys": connection.credential_keys,
            }
        )
