import datetime

import django_filters
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core import services
from core.api.base import TenantReadOnlyViewSet, TenantViewSet
from core.api.serializers import (
    AuditEventSerializer,
    CompanySerializer,
    MembershipCreateSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    MeSerializer,
)
from core.models import AuditEvent, Company, Membership
from core.tenancy import COMPANY_HEADER

COMPANY_HEADER_PARAMETER = OpenApiParameter(
    COMPANY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Slug of the company to act for; optional when you belong to one company only.",
)


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class CompanyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, TenantViewSet
):
    """The company the request acts for. Owners may change its settings."""

    scope = "company"
    company_field = "pk"
    queryset = Company.objects.all()
    serializer_class = CompanySerializer
    lookup_field = "slug"

    def perform_update(self, serializer):
        serializer.instance = services.company_update(
            actor=self.request.user, company=serializer.instance, **serializer.validated_data
        )


class MembershipFilter(django_filters.FilterSet):
    username = django_filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["role", "username"]


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer}),
    partial_update=extend_schema(request=MembershipRoleSerializer, responses=MembershipSerializer),
    update=extend_schema(request=MembershipRoleSerializer, responses=MembershipSerializer),
)
class MembershipViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """Who belongs to the company and in which role. Owners add members (creating their
    account), change roles and remove members; the last owner can be neither removed nor
    demoted (409 last_owner)."""

    scope = "members"
    queryset = Membership.objects.select_related("user", "company")
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilter
    search_fields = ["user__username", "user__email", "user__first_name", "user__last_name"]
    ordering_fields = ["created_at", "role"]

    def get_serializer_class(self):
        return {
            "create": MembershipCreateSerializer,
            "update": MembershipRoleSerializer,
            "partial_update": MembershipRoleSerializer,
        }.get(self.action, MembershipSerializer)

    def create(self, request, *args, **kwargs):
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        membership = services.member_user_create(
            actor=request.user, company=self.company, **payload.validated_data
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        membership = self.get_object()
        payload = self.get_serializer(data=request.data, partial=kwargs.get("partial", False))
        payload.is_valid(raise_exception=True)
        if "role" in payload.validated_data:
            membership = services.membership_change_role(
                actor=request.user, membership=membership, role=payload.validated_data["role"]
            )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance):
        services.membership_delete(actor=self.request.user, membership=instance)


class _UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601 allows UTC offsets PostgreSQL refuses (past 15:59, found by the API fuzz):
    compare in UTC. A moment outside the years 1-9999 in UTC is not a valid date-time."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None or moment.tzinfo is None:
            return moment
        try:
            return moment.astimezone(datetime.UTC)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class _UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_label")
    created_after = _UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = _UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "object_type", "object_id", "request_id", "actor"]


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class AuditEventViewSet(TenantReadOnlyViewSet):
    """The company's audit trail, newest first. Read-only: the database refuses changes."""

    scope = "audit"
    queryset = AuditEvent.objects.select_related("company")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    search_fields = ["action", "object_repr", "actor_label", "object_id"]
    ordering_fields = ["created_at"]


class MeView(APIView):
    """The signed-in user and the companies they belong to."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        user = (
            type(request.user)
            .objects.prefetch_related("memberships__company")
            .get(pk=request.user.pk)
        )
        return Response(MeSerializer(user).data)
