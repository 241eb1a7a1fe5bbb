"""CSRF: the admin refuses a state-changing POST without a token and accepts one with it; the
API enforces CSRF for session (cookie) callers, not for bearer tokens."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory

PASSWORD = "pass-Word-123"  # noqa: S105 - the factories' test password


@pytest.fixture
def admin_client(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _token_from(page) -> str:
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert match, "no CSRF token in the form"
    return match.group(1).decode()


@pytest.mark.django_db
def test_admin_change_form_post_needs_the_csrf_token(admin_client):
    group = Group.objects.create(name="Clerks")
    url = f"/admin/auth/group/{group.pk}/change/"

    refused = admin_client.post(url, {"name": "Renamed"})
    assert refused.status_code == 403
    assert b"CSRF" in refused.content
    group.refresh_from_db()
    assert group.name == "Clerks"

    token = _token_from(admin_client.get(url))
    accepted = admin_client.post(url, {"name": "Renamed", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    group.refresh_from_db()
    assert group.name == "Renamed"


@pytest.mark.django_db
def test_admin_action_post_needs_the_csrf_token(admin_client):
    group = Group.objects.create(name="Temporary")
    url = "/admin/auth/group/"
    action = {"action": "delete_selected", "_selected_action": [group.pk], "post": "yes"}

    assert admin_client.post(url, action).status_code == 403
    assert Group.objects.filter(pk=group.pk).exists()

    token = _token_from(admin_client.get(url))
    done = admin_client.post(url, {**action, "csrfmiddlewaretoken": token})
    assert done.status_code == 302
    assert not Group.objects.filter(pk=group.pk).exists()


@pytest.mark.django_db
def test_forged_token_is_refused(admin_client):
    group = Group.objects.create(name="Clerks")
    url = f"/admin/auth/group/{group.pk}/change/"
    admin_client.get(url)  # the cookie is set; the form value below does not match it
    forged = admin_client.post(url, {"name": "x", "csrfmiddlewaretoken": "A" * 64})
    assert forged.status_code == 403


@pytest.mark.django_db
def test_api_with_a_session_cookie_needs_csrf_but_a_bearer_token_does_not(tenants):
    owner = tenants.users_a["owner"]
    body = {
        "username": "new-clerk",
        "email": "n@example.test",
        "role": "clerk",
        "password": "Another-pass-987",
    }

    session = APIClient(enforce_csrf_checks=True)
    session.force_login(owner)
    refused = session.post("/api/v1/memberships/", body, format="json", HTTP_X_COMPANY="alpha")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert "CSRF" in refused.json()["message"]

    bearer = APIClient(enforce_csrf_checks=True)
    access = bearer.post(
        "/api/v1/auth/token/", {"username": "a-owner", "password": PASSWORD}, format="json"
    ).json()["access"]
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {access}", HTTP_X_COMPANY="alpha")
    created = bearer.post("/api/v1/memberships/", body, format="json")
    assert created.status_code == 201, created.content
