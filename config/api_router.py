"""The API's one router. Every resource of every module registers here, which lets the
tenant-isolation test walk all of them (tests/core/test_tenant_isolation.py)."""

from rest_framework.routers import DefaultRouter

from core.api.views import AuditEventViewSet, CompanyViewSet, MembershipViewSet

router = DefaultRouter()
router.register("companies", CompanyViewSet, basename="company")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
