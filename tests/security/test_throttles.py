"""Throttles beyond tests/core/test_throttling.py: bearer-token callers are counted per user
(not per token), the refresh endpoint is counted per address, every 429 has the error shape and
a Retry-After, and with Redis the counts live there (shared by all web processes). Per-scope
webhook throttles: tests/integrations/test_webhooks.py."""

import pytest
from rest_framework.test import APIClient

PASSWORD = "pass-Word-123"  # noqa: S105 - the factories' test password


@pytest.fixture
def rates(settings):
    def set_rates(**rates):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    return set_rates


def _bearer(username="a-owner"):
    client = APIClient()
    access = client.post(
        "/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json"
    ).json()["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def _assert_throttled(response, window=60):
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "throttled"
    assert body["message"]
    assert body["fields"] == {}
    assert 0 < int(response.headers["Retry-After"]) <= window


@pytest.mark.django_db
def test_bearer_callers_are_counted_per_user_across_tokens(tenants, rates):
    first, second = _bearer(), _bearer()  # two sign-ins, two tokens, one user
    other = _bearer("b-owner")
    rates(user="3/min", anon="100/min")
    assert [first.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
    _assert_throttled(second.get("/api/v1/me/"))
    assert other.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
def test_token_refresh_is_throttled_per_address(tenants, rates):
    rates(user="100/min", anon="2/min")
    client = APIClient()
    statuses = [
        client.post("/api/v1/auth/token/refresh/", {"refresh": "x"}, format="json").status_code
        for _ in range(2)
    ]
    assert statuses == [401, 401]
    _assert_throttled(client.post("/api/v1/auth/token/refresh/", {"refresh": "x"}, format="json"))
    # Another address still gets through.
    other = APIClient(REMOTE_ADDR="198.51.100.20")
    assert other.post("/api/v1/auth/token/refresh/", {"refresh": "x"}).status_code == 401


@pytest.mark.django_db
def test_hourly_rate_reports_a_retry_after_within_the_hour(tenants, rates, api):
    rates(user="1/hour", anon="100/min")
    client = api(tenants.users_a["owner"], tenants.a)
    assert client.get("/api/v1/companies/").status_code == 200
    _assert_throttled(client.get("/api/v1/companies/"), window=3600)


@pytest.mark.redis
@pytest.mark.django_db
def test_counts_live_in_redis_shared_by_every_process(tenants, rates, api):
    from django_redis import get_redis_connection

    rates(user="5/min", anon="100/min")
    owner = tenants.users_a["owner"]
    client = api(owner, tenants.a)
    client.get("/api/v1/companies/")
    client.get("/api/v1/companies/")
    keys = get_redis_connection("default").keys(f"*throttle_user_{owner.pk}")
    assert len(keys) == 1
    assert get_redis_connection("default").ttl(keys[0]) > 0
