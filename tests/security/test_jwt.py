"""JWT: access expiry to the second, refresh rotation with the blacklist, and tokens that are
tampered with, of the wrong type or for a deactivated user. (tests/core/test_auth.py covers
obtaining, using and the basic expiry and rotation.)"""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
PASSWORD = "pass-Word-123"  # noqa: S105 - the factories' test password


def _obtain(client=None):
    response = (client or APIClient()).post(
        TOKEN_URL, {"username": "a-owner", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _me(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/me/")


def _refresh(refresh):
    return APIClient().post(REFRESH_URL, {"refresh": refresh}, format="json")


def test_rotation_and_blacklist_are_configured(settings):
    assert settings.SIMPLE_JWT["ROTATE_REFRESH_TOKENS"] is True
    assert settings.SIMPLE_JWT["BLACKLIST_AFTER_ROTATION"] is True
    assert "rest_framework_simplejwt.token_blacklist" in settings.INSTALLED_APPS


@pytest.mark.django_db
def test_access_token_works_until_its_lifetime_and_not_a_second_after(tenants, settings):
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        access = _obtain()["access"]
        traveller.shift(lifetime - timedelta(seconds=1))
        assert _me(access).status_code == 200
        traveller.shift(timedelta(seconds=2))
        expired = _me(access)
    assert expired.status_code == 401
    body = expired.json()
    assert body["code"] == "token_not_valid"
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_each_refresh_rotates_and_blacklists_the_one_it_replaced(tenants):
    first = _obtain()
    second = _refresh(first["refresh"]).json()
    third = _refresh(second["refresh"]).json()
    assert len({first["refresh"], second["refresh"], third["refresh"]}) == 3

    blacklisted = set(BlacklistedToken.objects.values_list("token__jti", flat=True))
    assert RefreshToken(third["refresh"])["jti"] not in blacklisted
    assert {RefreshToken(second["refresh"], verify=False)["jti"]} <= blacklisted

    for old in (first["refresh"], second["refresh"]):
        replay = _refresh(old)
        assert replay.status_code == 401
        assert replay.json()["code"] == "token_not_valid"
    assert _refresh(third["refresh"]).status_code == 200
    assert OutstandingToken.objects.filter(user__username="a-owner").count() == 4


@pytest.mark.django_db
def test_tampered_and_wrong_type_tokens_are_refused(tenants):
    tokens = _obtain()
    header, payload, signature = tokens["access"].split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert _me(f"{header}.{payload}.{flipped}").json()["code"] == "token_not_valid"
    # A refresh token is not an access token.
    assert _me(tokens["refresh"]).status_code == 401
    # An access token is not a refresh token.
    assert _refresh(tokens["access"]).status_code == 401


@pytest.mark.django_db
def test_tokens_of_a_deactivated_user_stop_working(tenants):
    tokens = _obtain()
    owner = tenants.users_a["owner"]
    owner.is_active = False
    owner.save()
    assert _me(tokens["access"]).status_code == 401
    assert _refresh(tokens["refresh"]).status_code == 401
