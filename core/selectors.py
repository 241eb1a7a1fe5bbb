"""Reads that span tables, shared by the admin, the dashboard and later modules."""

from django.db.models import QuerySet

from core.models import Company
from core.roles import roles_for


def companies_for(user, scope: str, *, write: bool) -> QuerySet[Company]:
    """Companies whose `scope` data this user may read (or write). Superusers: all of them."""
    if user.is_superuser:
        return Company.objects.all()
    return Company.objects.filter(
        memberships__user=user, memberships__role__in=roles_for(scope, write=write)
    ).distinct()
