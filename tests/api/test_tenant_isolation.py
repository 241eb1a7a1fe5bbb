"""Walks every resource registered on the API router: a member of company B never sees company
A's rows and gets 404 (never 403, never data) on A's objects, for reads and writes alike.
Endpoints added later are covered as soon as they are registered."""

import pytest
from rest_framework import mixins

from config.api_router import router
from tests.factories import tenant_object

REGISTRY = [(prefix, viewset) for prefix, viewset, _basename in router.registry]


def _identifier(viewset, obj):
    return str(getattr(obj, viewset.lookup_field if viewset.lookup_field != "pk" else "pk"))


def _listed_identifiers(viewset, data) -> set[str]:
    rows = data["results"] if isinstance(data, dict) and "results" in data else data
    field = viewset.lookup_field if viewset.lookup_field != "pk" else "id"
    return {str(row[field]) for row in rows}


def test_router_has_resources():
    assert {prefix for prefix, _ in REGISTRY} >= {"companies", "memberships", "audit-events"}


@pytest.mark.django_db
@pytest.mark.parametrize(("prefix", "viewset"), REGISTRY, ids=[p for p, _ in REGISTRY])
def test_company_b_cannot_reach_company_a_rows(prefix, viewset, tenants, api):
    model = viewset.queryset.model
    row_a = tenant_object(model, tenants.a)
    row_b = tenant_object(model, tenants.b)
    client_b = api(tenants.owner_b, tenants.b)
    id_a, id_b = _identifier(viewset, row_a), _identifier(viewset, row_b)

    listed = client_b.get(f"/api/v1/{prefix}/", {"page_size": 500})
    assert listed.status_code == 200, listed.content
    identifiers = _listed_identifiers(viewset, listed.json())
    assert id_b in identifiers, "B's own row should be listed: the scoping is too strict"
    assert id_a not in identifiers

    detail = client_b.get(f"/api/v1/{prefix}/{id_a}/")
    assert detail.status_code == 404
    assert detail.json()["code"] == "not_found"
    assert client_b.get(f"/api/v1/{prefix}/{id_b}/").status_code == 200

    if issubclass(viewset, mixins.UpdateModelMixin):
        assert client_b.patch(f"/api/v1/{prefix}/{id_a}/", {}, format="json").status_code == 404
    if issubclass(viewset, mixins.DestroyModelMixin):
        assert client_b.delete(f"/api/v1/{prefix}/{id_a}/").status_code == 404
        assert model.objects.filter(pk=row_a.pk).exists()


@pytest.mark.django_db
def test_x_company_naming_a_foreign_company_answers_404(tenants, api):
    response = api(tenants.owner_b, tenants.a).get("/api/v1/memberships/")
    assert response.status_code == 404
    assert response.json() == {
        "code": "company_not_found",
        "message": "No company 'alpha' among your memberships.",
        "fields": {},
    }


@pytest.mark.django_db
def test_only_membership_is_used_without_header(tenants, api):
    response = api(tenants.owner_b).get("/api/v1/companies/")
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == ["beta"]


@pytest.mark.django_db
def test_several_memberships_need_the_header(tenants, api):
    from core.models import Membership

    Membership.objects.create(user=tenants.owner_b, company=tenants.a, role="auditor")
    response = api(tenants.owner_b).get("/api/v1/companies/")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "company_required"
    assert "alpha, beta" in body["message"]
    assert (
        api(tenants.owner_b, tenants.a).get("/api/v1/companies/").json()["results"][0]["slug"]
        == "alpha"
    )


@pytest.mark.django_db
def test_user_without_membership_is_refused(tenants, api):
    response = api(tenants.outsider).get("/api/v1/companies/")
    assert response.status_code == 403
    assert response.json()["code"] == "no_membership"
