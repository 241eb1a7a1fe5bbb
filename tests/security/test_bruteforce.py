"""django-axes on the admin login and the API token endpoint."""

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

TOKEN_URL = "/api/v1/auth/token/"
LOGIN_URL = "/admin/login/"
PASSWORD = "pass-Word-123"  # noqa: S105 - the factories' test password


@pytest.fixture
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings


@pytest.fixture
def staff_user(tenants):
    user = tenants.users_a["owner"]
    user.is_staff = True
    user.save()
    return user


def _token(client, password, username="a-owner", **extra):
    return client.post(
        TOKEN_URL, {"username": username, "password": password}, format="json", **extra
    )


def _admin_login(client, password, username="a-owner"):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"})


@pytest.mark.django_db
def test_api_locks_out_the_username_and_address_after_the_failure_limit(tenants, limits):
    client = APIClient()
    statuses = [_token(client, f"guess-{n}").status_code for n in range(2)]
    assert statuses == [401, 401]
    locked = _token(client, "guess-3")
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "locked_out"
    assert "Try again in 15\xa0minutes" in body["message"]
    assert body["fields"] == {}
    assert int(locked.headers["Retry-After"]) == 15 * 60

    # The right password no longer helps during the cool-off ...
    assert _token(client, PASSWORD).status_code == 429
    # ... but the same username from another address, and another username from this one, do.
    assert _token(client, PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200
    assert _token(client, PASSWORD, username="b-owner").status_code == 200
    assert AccessAttempt.objects.get(username="a-owner").failures_since_start >= 3


@pytest.mark.django_db
def test_an_unknown_username_is_answered_and_locked_out_like_a_known_one(tenants, limits):
    """No username enumeration: the same 401 body for a wrong password and a user that does
    not exist, and the same lock-out after the limit."""

    def answers(username):
        client = APIClient()
        replies = [_token(client, f"guess-{n}", username=username) for n in range(3)]
        return [(r.status_code, r.json()["code"], r.json()["message"]) for r in replies]

    assert answers("a-owner") == answers("nobody-here")
    assert answers("nobody-else")[-1][:2] == (429, "locked_out")


@pytest.mark.django_db
def test_api_lockout_ends_after_the_cool_off(tenants, limits):
    client = APIClient()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for n in range(3):
            _token(client, f"guess-{n}")
        assert _token(client, PASSWORD).status_code == 429
        traveller.shift(timedelta(minutes=15, seconds=1))
        response = _token(client, PASSWORD)
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


@pytest.mark.django_db
def test_a_success_resets_the_count(tenants, limits):
    client = APIClient()
    for _ in range(3):
        assert _token(client, "wrong").status_code == 401
        assert _token(client, "wrong").status_code == 401
        assert _token(client, PASSWORD).status_code == 200


@pytest.mark.django_db
def test_forged_forwarded_for_does_not_reset_the_count(tenants, limits):
    client = APIClient()
    statuses = [
        _token(client, "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(4)
    ]
    assert statuses == [401, 401, 429, 429]


@pytest.mark.django_db
def test_admin_login_shows_a_readable_lockout_message(staff_user, limits):
    client = Client()
    for n in range(2):
        page = _admin_login(client, f"guess-{n}")
        assert page.status_code == 200
        assert b"Please enter the correct username and password" in page.content
    locked = _admin_login(client, "guess-3")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed sign-ins for this username from your address." in text
    assert "Try again in 15\xa0minutes" in text
    assert 'name="username"' in text  # still the login page, with its form
    assert locked["Retry-After"] == str(15 * 60)

    # The right password is refused too until the cool-off has passed.
    assert _admin_login(client, PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_admin_login_still_works_below_the_limit(staff_user, limits):
    client = Client()
    _admin_login(client, "wrong")
    response = _admin_login(client, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(staff_user.pk)


@pytest.mark.django_db
def test_admin_and_api_share_the_count(staff_user, limits):
    _admin_login(Client(), "wrong")
    _token(APIClient(), "wrong")
    assert _token(APIClient(), "wrong").json()["code"] == "locked_out"


def test_axes_is_on_in_the_test_settings(settings):
    assert settings.AXES_ENABLED
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


@pytest.mark.django_db
def test_a_token_sign_in_updates_last_login(tenants):
    user = tenants.users_a["owner"]
    assert user.last_login is None
    assert _token(APIClient(), PASSWORD).status_code == 200
    user.refresh_from_db()
    assert user.last_login is not None
