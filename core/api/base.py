"""Base classes for every company-scoped API view. Subclasses set `scope` (a key of
core.roles.ROLE_MATRIX) and get: the company resolved, role checks, querysets filtered to the
company so another company's object answers 404, and serializers (from get_serializer) whose
related fields accept only the company's rows."""

from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from core import rls
from core.api.permissions import CompanyRolePermission
from core.roles import Role, roles_for
from core.tenancy import membership_for_request, scope_serializer_relations


class TenantScopedMixin:
    scope: str = ""
    # The path from the model to its company, e.g. "entry__company" for a journal line.
    company_field = "company"
    # Per-action overrides: {"approve": {"owner", "accountant"}}.
    action_roles: dict[str, frozenset[str]] = {}
    permission_classes = [IsAuthenticated, CompanyRolePermission]

    def allowed_roles(self, *, write: bool) -> frozenset[str]:
        action = getattr(self, "action", None)
        roles = frozenset(self.action_roles.get(action, roles_for(self.scope, write=write)))
        # Auditors never change anything, whatever an override says.
        return roles - {Role.AUDITOR} if write else roles

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Authenticated and allowed (the permission resolved the company): from here to the end
        # of dispatch the database itself shows and accepts only this company's rows.
        if not getattr(self, "swagger_fake_view", False):
            self._rls_previous = rls.scope_enter(membership_for_request(request).company_id)

    def dispatch(self, request, *args, **kwargs):
        try:
            response = super().dispatch(request, *args, **kwargs)
            if hasattr(self, "_rls_previous") and not getattr(response, "is_rendered", True):
                # Rendered here, inside the scope: Django would render it after dispatch, and
                # a renderer evaluates lazy data (DRF's JSON encoder runs a queryset) unscoped.
                response.render()
            return response
        finally:
            if hasattr(self, "_rls_previous"):  # even when the view raised
                rls.scope_exit(self._rls_previous)

    @property
    def company(self):
        return membership_for_request(self.request).company

    @property
    def membership(self):
        return membership_for_request(self.request)

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation has no company
            return queryset.none()
        company = membership_for_request(self.request).company
        return queryset.filter(**{self.company_field: company.pk})

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        if not getattr(self, "swagger_fake_view", False):
            scope_serializer_relations(serializer, self.company)
        return serializer


class TenantAPIView(TenantScopedMixin, APIView):
    """For reports and actions that are not a model resource."""


class TenantReadOnlyViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    pass


class TenantViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """Pick the mixins you need; writes go through services in perform_create/update/destroy."""


__all__ = ["TenantAPIView", "TenantReadOnlyViewSet", "TenantViewSet", "mixins"]
