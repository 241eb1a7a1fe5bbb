"""The shared HTTP client: retries with backoff and jitter, Retry-After, 401 -> one refresh,
timeouts, and which failures a POST may retry."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from accounting.integrations.connectors.base import (
    AuthFailure,
    NetworkFailure,
    RateLimited,
    ServerFailure,
)
from accounting.integrations.http import (
    HttpClient,
    backoff_ms,
    failure_for_status,
    retry_after_seconds,
)


class Conn:
    pk = 1
    system = "zoho_books"
    settings = {}


def client_for(replies, *, auth=None, rand=lambda: 1.0, **kw):
    """A client whose transport answers from `replies` (responses or exceptions) in order."""
    calls, sleeps = [], []
    replies = list(replies)

    def handler(request):
        calls.append(request)
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    client = HttpClient(
        Conn(),
        base_url="https://books.example/api/v3",
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        rand=rand,
        auth=auth,
        max_attempts=kw.pop("max_attempts", 5),
        initial_delay_ms=kw.pop("initial_delay_ms", 1000),
        max_delay_ms=kw.pop("max_delay_ms", 30000),
        **kw,
    )
    return client, calls, sleeps


def test_5xx_is_retried_with_exponential_backoff_then_succeeds():
    client, calls, sleeps = client_for(
        [httpx.Response(500), httpx.Response(502), httpx.Response(503), httpx.Response(200)]
    )
    response = client.request("GET", "/contacts", params={"page": 2})
    assert response.status_code == 200
    assert len(calls) == 4
    assert str(calls[0].url) == "https://books.example/api/v3/contacts?page=2"
    # rand() == 1.0 gives the ceiling of each jitter window: 1 s, 2 s, 4 s.
    assert sleeps == [1.0, 2.0, 4.0]


def test_full_jitter_stays_within_its_window_and_is_capped():
    for attempt, ceiling in ((1, 1000), (2, 2000), (3, 4000), (6, 30000), (12, 30000)):
        assert backoff_ms(attempt, initial_ms=1000, max_ms=30000, rand=lambda: 0.0) == 0
        assert backoff_ms(attempt, initial_ms=1000, max_ms=30000, rand=lambda: 0.999) <= ceiling
        assert backoff_ms(attempt, initial_ms=1000, max_ms=30000, rand=lambda: 1.0) == ceiling
    import random

    rng = random.Random(7)
    client, _, sleeps = client_for([httpx.Response(500)] * 5, rand=rng.random)
    with pytest.raises(ServerFailure):
        client.request("GET", "/x")
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps, start=1):
        assert 0 <= slept <= min(30, 2 ** (attempt - 1))
    assert len(set(sleeps)) == 4  # jittered, not a fixed schedule


def test_after_the_last_attempt_the_right_failure_is_raised():
    client, calls, _ = client_for([httpx.Response(500, text="boom")] * 5)
    with pytest.raises(ServerFailure) as info:
        client.request("GET", "/invoices")
    assert len(calls) == 5
    assert info.value.retryable
    assert info.value.detail["status"] == 500
    client, _, _ = client_for([httpx.Response(429)] * 5)
    with pytest.raises(RateLimited):
        client.request("GET", "/invoices")


def test_retry_after_in_seconds_replaces_the_backoff():
    client, calls, sleeps = client_for(
        [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
    )
    assert client.request("GET", "/contacts").status_code == 200
    assert sleeps == [7.0]


def test_retry_after_as_an_http_date():
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=12), usegmt=True)
    assert retry_after_seconds(header, now=now) == 12.0
    assert (
        retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0
    )
    assert retry_after_seconds("garbage") is None
    later = format_datetime(now + timedelta(seconds=20), usegmt=True)
    client, _, sleeps = client_for(
        [httpx.Response(503, headers={"Retry-After": later}), httpx.Response(200)],
        now=lambda: now,  # the client's wall clock, fixed: no figure depends on the machine
    )
    client.request("GET", "/x")
    assert sleeps == [20.0]


def test_a_retry_after_longer_than_the_longest_backoff_is_left_to_the_scheduler():
    client, calls, sleeps = client_for([httpx.Response(429, headers={"Retry-After": "3600"})])
    with pytest.raises(RateLimited) as info:
        client.request("GET", "/contacts")
    assert len(calls) == 1 and sleeps == []
    assert info.value.retry_after == 3600


class RefreshingAuth:
    def __init__(self):
        self.token = "old"
        self.refreshes = 0

    def __call__(self, headers):
        headers["Authorization"] = f"Bearer {self.token}"

    def refresh(self):
        self.refreshes += 1
        self.token = "new"


def test_401_refreshes_once_and_repeats_the_request():
    auth = RefreshingAuth()
    client, calls, sleeps = client_for([httpx.Response(401), httpx.Response(200)], auth=auth)
    assert client.request("GET", "/contacts").status_code == 200
    assert auth.refreshes == 1
    assert [c.headers["Authorization"] for c in calls] == ["Bearer old", "Bearer new"]
    assert sleeps == []


def test_a_second_401_is_an_auth_failure():
    auth = RefreshingAuth()
    client, calls, _ = client_for([httpx.Response(401), httpx.Response(401)], auth=auth)
    with pytest.raises(AuthFailure, match="after a token refresh"):
        client.request("GET", "/contacts")
    assert auth.refreshes == 1 and len(calls) == 2


def test_timeouts_are_retried_then_become_a_network_failure():
    client, calls, sleeps = client_for([httpx.ReadTimeout("slow")] * 3, max_attempts=3)
    with pytest.raises(NetworkFailure, match="timed out") as info:
        client.request("GET", "/contacts")
    assert len(calls) == 3 and len(sleeps) == 2
    assert info.value.retryable


def test_a_post_is_not_repeated_after_a_read_timeout_or_500_but_is_after_connect_errors():
    client, calls, _ = client_for([httpx.ReadTimeout("slow")])
    with pytest.raises(NetworkFailure):
        client.request("POST", "/invoices", json={"n": 1})
    assert len(calls) == 1  # it may have been created: the sync engine looks it up first
    client, calls, _ = client_for([httpx.Response(500)])
    with pytest.raises(ServerFailure):
        client.request("POST", "/invoices", json={})
    assert len(calls) == 1
    client, calls, _ = client_for(
        [
            httpx.ConnectError("refused"),
            httpx.Response(429),
            httpx.Response(503),
            httpx.Response(201),
        ]
    )
    assert client.request("POST", "/invoices", json={}).status_code == 201
    assert len(calls) == 4
    client, calls, _ = client_for([httpx.Response(500), httpx.Response(200)])
    assert (
        client.request("POST", "/export", content="<ENVELOPE/>", idempotent=True).status_code == 200
    )


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_a_put_or_patch_is_not_repeated_after_a_read_timeout_or_500(method):
    """Xero creates with PUT: a write whose reply was lost may have been applied, so the client
    repeats it only when the caller says it is safe (idempotent=True)."""
    client, calls, _ = client_for([httpx.ReadTimeout("slow")])
    with pytest.raises(NetworkFailure) as info:
        client.request(method, "/Payments", json={"Payments": [{"Amount": 50}]})
    assert len(calls) == 1 and info.value.retryable  # retried later by the engine, not here
    client, calls, _ = client_for([httpx.Response(500)])
    with pytest.raises(ServerFailure):
        client.request(method, "/Payments", json={})
    assert len(calls) == 1
    client, calls, _ = client_for([httpx.Response(503), httpx.Response(200)])
    assert client.request(method, "/Payments", json={}).status_code == 200  # 503: not applied
    client, calls, _ = client_for([httpx.ReadTimeout("slow"), httpx.Response(200)])
    assert client.request(method, "/Payments", json={}, idempotent=True).status_code == 200
    assert len(calls) == 2


def test_other_client_errors_are_returned_for_the_connector_to_read():
    client, calls, _ = client_for([httpx.Response(400, json={"code": 1002, "message": "no"})])
    response = client.request("GET", "/invoices/9")
    assert response.status_code == 400 and len(calls) == 1
    assert failure_for_status(response).category == "validation"
    assert failure_for_status(httpx.Response(404, request=response.request)).category == "not_found"


def test_the_rate_limiter_is_asked_before_every_attempt():
    class CountingLimiter:
        key = "t"
        max_concurrent = 0
        taken = 0

        def acquire(self, timeout=None):
            self.taken += 1
            return True

    limiter = CountingLimiter()
    client, calls, _ = client_for([httpx.Response(500), httpx.Response(200)], limiter=limiter)
    client.request("GET", "/x")
    assert limiter.taken == 2 == len(calls)


def test_settings_drive_the_defaults(settings):
    settings.RETRY_MAX_ATTEMPTS = 2
    settings.RETRY_INITIAL_DELAY = 10
    client = HttpClient(Conn(), base_url="https://x")
    assert (client.max_attempts, client.initial_delay_ms, client.max_delay_ms) == (2, 10, 30000)
    pool = client.client
    assert pool is HttpClient(Conn()).client  # one pool per process and system
