import pytest
from rest_framework.test import APIClient

from config.settings.base import REST_FRAMEWORK as PRODUCTION_API_SETTINGS


@pytest.fixture
def rates(settings):
    """rates(user=..., anon=...) sets the throttle rates for one test."""

    def set_rates(**rates):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    return set_rates


def _token_attempts(count: int, **headers) -> list[int]:
    client = APIClient()
    return [
        client.post(
            "/api/v1/auth/token/",
            {"username": "a-owner", "password": f"guess-{n}"},
            format="json",
            **{name: value.format(n=n) for name, value in headers.items()},
        ).status_code
        for n in range(count)
    ]


@pytest.mark.django_db
def test_101st_request_in_a_minute_is_throttled_at_the_default_rate(tenants, api, rates):
    assert PRODUCTION_API_SETTINGS["DEFAULT_THROTTLE_RATES"]["user"] == "100/min"
    rates(**PRODUCTION_API_SETTINGS["DEFAULT_THROTTLE_RATES"])
    client = api(tenants.users_a["owner"], tenants.a)
    statuses = [client.get("/api/v1/companies/").status_code for _ in range(100)]
    assert statuses == [200] * 100
    throttled = client.get("/api/v1/companies/")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert 0 < int(throttled.headers["Retry-After"]) <= 60

    # The limit is per user: another user still gets through.
    assert api(tenants.owner_b, tenants.b).get("/api/v1/companies/").status_code == 200


@pytest.mark.django_db
def test_rate_is_configurable(tenants, api, rates):
    rates(user="3/min", anon="3/min")
    client = api(tenants.users_a["owner"], tenants.a)
    assert [client.get("/api/v1/companies/").status_code for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.django_db
def test_anonymous_token_requests_are_throttled(tenants, rates):
    rates(user="100/min", anon="2/min")
    assert _token_attempts(3) == [401, 401, 429]


@pytest.mark.django_db
def test_forged_forwarded_for_headers_do_not_escape_the_anonymous_limit(tenants, rates):
    rates(user="100/min", anon="2/min")
    assert _token_attempts(4, HTTP_X_FORWARDED_FOR="203.0.113.{n}") == [401, 401, 429, 429]
