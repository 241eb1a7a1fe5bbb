"""Every API failure answers {"code", "message", "fields"}; nothing bad in gets a 500."""

import pytest
from django.test import RequestFactory

from core.api.base import TenantViewSet
from core.api.exceptions import handler404, handler500
from core.roles import Role


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["al\x00pha", "alpha'; DROP TABLE core_company;--", "x" * 300])
def test_a_malformed_company_header_is_a_clean_404(tenants, api, header):
    client = api(tenants.users_a["owner"])
    response = client.get("/api/v1/companies/", HTTP_X_COMPANY=header)
    assert response.status_code == 404
    assert response.json()["code"] == "company_not_found"


@pytest.mark.django_db
def test_unknown_api_paths_answer_json(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Not found.", "fields": {}}
    assert b"<html" in client.get("/no-such-page/").content.lower()


def test_server_errors_on_api_paths_answer_json():
    response = handler500(RequestFactory().get("/api/v1/companies/"))
    assert response.status_code == 500
    assert b'"code": "server_error"' in response.content
    assert handler404(RequestFactory().get("/api/v1/x/")).status_code == 404


def test_an_override_cannot_let_the_auditor_write():
    class Generous(TenantViewSet):
        scope = "members"
        action_roles = {"approve": frozenset(Role.values)}
        action = "approve"

    view = Generous()
    assert Role.AUDITOR not in view.allowed_roles(write=True)
    assert Role.AUDITOR in view.allowed_roles(write=False)


@pytest.mark.django_db
def test_invalid_json_body_is_a_400_with_the_shape(tenants, api):
    response = api(tenants.users_a["owner"], tenants.a).generic(
        "PATCH", "/api/v1/companies/alpha/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
