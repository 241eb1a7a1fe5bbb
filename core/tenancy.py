"""Which company a request acts for.

The X-Company header names it by slug; without the header, the user's only membership decides.
A company the user does not belong to answers 404, exactly as if it did not exist.
"""

import re

from django.db.models import QuerySet
from rest_framework import serializers

from core.errors import DomainError
from core.models import Company, Membership

COMPANY_HEADER = "X-Company"
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")


class CompanyRequired(DomainError):
    code = "company_required"
    http_status = 400


class CompanyNotFound(DomainError):
    code = "company_not_found"
    http_status = 404


class NoMembership(DomainError):
    code = "no_membership"
    http_status = 403
    default_message = "Your user is not a member of any company."


def membership_for_request(request) -> Membership:
    """Resolve (once per request) the caller's membership for the company the request acts for,
    and set `request.company` and `request.membership`."""
    cached = getattr(request, "membership", None)
    if cached is not None:
        return cached
    memberships = Membership.objects.select_related("company").filter(
        user=request.user, company__is_active=True
    )
    slug = request.headers.get(COMPANY_HEADER, "").strip()
    if slug:
        if not _SLUG.fullmatch(slug):
            raise CompanyNotFound(f"{COMPANY_HEADER} must be a company slug (letters, digits, -).")
        membership = memberships.filter(company__slug=slug).first()
        if membership is None:
            raise CompanyNotFound(f"No company '{slug}' among your memberships.")
    else:
        found = list(memberships.order_by("company__slug")[:2])
        if not found:
            raise NoMembership()
        if len(found) > 1:
            slugs = ", ".join(
                memberships.order_by("company__slug").values_list("company__slug", flat=True)
            )
            raise CompanyRequired(
                f"You belong to several companies; send the {COMPANY_HEADER} header "
                f"with one of: {slugs}."
            )
        membership = found[0]
    for target in (request, getattr(request, "_request", None)):
        if target is not None:
            target.membership = membership
            target.company = membership.company
    return membership


def scoped_to(queryset: QuerySet, companies: QuerySet[Company]) -> QuerySet:
    """`queryset` limited to rows of `companies` when its model belongs to a company (has a
    `company` field, or is Company); other models (users, currencies...) pass unchanged."""
    model = queryset.model
    if model is Company:
        return queryset.filter(pk__in=companies.values("pk"))
    if any(field.name == "company" for field in model._meta.fields):
        return queryset.filter(company__in=companies.values("pk"))
    return queryset


def scope_serializer_relations(serializer, company: Company) -> None:
    """Make every related field of `serializer` (nested ones too) accept only rows of
    `company`, so an id from another company is "does not exist", never a cross-tenant link."""
    if isinstance(serializer, serializers.ListSerializer):
        serializer = serializer.child
    if not hasattr(serializer, "fields"):
        return
    companies = Company.objects.filter(pk=company.pk)
    for field in serializer.fields.values():
        relation = getattr(field, "child_relation", field)
        if isinstance(relation, serializers.RelatedField) and relation.queryset is not None:
            relation.queryset = scoped_to(relation.queryset, companies)
        elif isinstance(field, serializers.BaseSerializer):
            scope_serializer_relations(field, company)
