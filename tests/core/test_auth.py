from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"


@pytest.fixture
def owner(tenants):
    return tenants.users_a["owner"]


PASSWORD = "pass-Word-123"  # noqa: S105 - the factories' test password


def _obtain(client, username="a-owner", password=PASSWORD):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json")


@pytest.mark.django_db
def test_unauthenticated_requests_answer_401_with_a_bearer_challenge(tenants):
    response = APIClient().get("/api/v1/memberships/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_obtain_and_use_an_access_token(owner):
    client = APIClient()
    tokens = _obtain(client).json()
    assert set(tokens) == {"access", "refresh"}
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = client.get("/api/v1/me/").json()
    assert me["username"] == "a-owner"
    assert me["memberships"] == [
        {"company": "alpha", "company_name": "Alpha Traders", "role": "owner"}
    ]


@pytest.mark.django_db
def test_wrong_password_is_401(owner):
    response = _obtain(APIClient(), password="wrong")
    assert response.status_code == 401
    assert response.json()["code"] == "no_active_account"


@pytest.mark.django_db
def test_access_token_expires_after_its_lifetime(owner, settings):
    client = APIClient()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        access = _obtain(client).json()["access"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        assert client.get("/api/v1/me/").status_code == 200
        traveller.shift(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] + timedelta(seconds=1))
        expired = client.get("/api/v1/me/")
    assert expired.status_code == 401
    assert expired.json()["code"] == "token_not_valid"


@pytest.mark.django_db
def test_refresh_rotates_and_the_old_refresh_token_is_dead(owner):
    client = APIClient()
    first = _obtain(client).json()
    rotated = client.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh"] != first["refresh"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {second['access']}")
    assert client.get("/api/v1/me/").status_code == 200

    replay = APIClient().post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_not_valid"


@pytest.mark.django_db
def test_refresh_token_expires(owner, settings):
    client = APIClient()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        refresh = _obtain(client).json()["refresh"]
        traveller.shift(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] + timedelta(seconds=1))
        response = client.post(REFRESH_URL, {"refresh": refresh}, format="json")
    assert response.status_code == 401
