"""OAuth: connect URL, code exchange, refresh serialised per connection, rotated refresh
tokens stored, invalid_grant -> needs_reauth."""

import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connections

from accounting.integrations import oauth
from accounting.integrations.models import IntegrationConnection
from core.models import AuditEvent
from tests.integrations.conftest import connection_make
from tests.integrations.fakes import Request, reply, serve


class TokenServer:
    """An OAuth token endpoint that rotates refresh tokens (single use, like Xero's)."""

    def __init__(self, *, gate: threading.Event | None = None):
        # With a gate, a token request is held (after `entered` is set) until the gate opens.
        self.gate = gate
        self.entered = threading.Event()
        self.requests: list[dict] = []
        self.valid_refresh = {"refresh-1"}
        self.counter = 1
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        with self.lock:
            self.requests.append({"form": form, "auth": request.headers.get("authorization", "")})
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(timeout=30), "the test never opened the gate"
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                ok = form.get("code") == "good-code"
            else:
                ok = form.get("refresh_token") in self.valid_refresh
                self.valid_refresh.discard(form.get("refresh_token"))
            if not ok:
                return reply(
                    start_response,
                    400,
                    json.dumps({"error": "invalid_grant"}),
                    content_type="application/json",
                )
            self.counter += 1
            refresh = f"refresh-{self.counter}"
            self.valid_refresh.add(refresh)
        body = {
            "access_token": f"access-{self.counter}",
            "refresh_token": refresh,
            "expires_in": 1800,
            "token_type": "Bearer",
        }
        return reply(start_response, 200, json.dumps(body), content_type="application/json")


def xero_connection(company, url, *, access="access-1", expires_in=1800):
    return connection_make(
        company,
        system="xero",
        name="Xero",
        settings={
            "tenant_id": "t-1",
            "oauth": {"token_url": f"{url}/token", "authorize_url": "https://login.example/auth"},
        },
        credentials={
            "client_id": "app-1",
            "client_secret": "app-secret",
            "access_token": access,
            "refresh_token": "refresh-1",
            "expires_at": time.time() + expires_in,
        },
    )


@pytest.mark.django_db
def test_connect_url_carries_client_state_scope_and_zoho_offline_access(tenants):
    zoho = connection_make(
        tenants.a, settings={"region": "eu"}, credentials={"client_id": "zc", "client_secret": "z"}
    )
    url = oauth.oauth_connect_url(zoho, state="st-1", redirect_uri="https://k.example/cb")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "accounts.zoho.eu"
    assert query["client_id"] == "zc" and query["state"] == "st-1"
    assert query["access_type"] == "offline" and query["response_type"] == "code"
    assert "z" not in query.values()  # the secret never goes to the browser


@pytest.mark.django_db
def test_code_exchange_stores_the_tokens(tenants):
    with serve(TokenServer()) as server:
        conn = xero_connection(tenants.a, server.url, access="")
        conn.needs_reauth = True
        conn.save()
        result = oauth.oauth_exchange_code(conn, code="good-code", redirect_uri="https://cb")
        assert set(result) == {"expires_at"}
        assert server.app.requests[0]["auth"].startswith("Basic ")
    fresh = IntegrationConnection.objects.get(pk=conn.pk)
    assert fresh.credentials["access_token"] == "access-2"
    assert fresh.credentials["refresh_token"] == "refresh-2"
    assert fresh.needs_reauth is False


@pytest.mark.django_db
def test_refresh_stores_the_rotated_refresh_token(tenants):
    with serve(TokenServer()) as server:
        conn = xero_connection(tenants.a, server.url)
        assert oauth.oauth_refresh(conn, stale_access_token="access-1") == "access-2"
        assert oauth.oauth_refresh(conn, stale_access_token="access-2") == "access-3"
        assert [r["form"]["refresh_token"] for r in server.app.requests] == [
            "refresh-1",
            "refresh-2",
        ]
    assert IntegrationConnection.objects.get(pk=conn.pk).credentials["refresh_token"] == "refresh-3"


@pytest.mark.django_db
def test_an_expired_token_is_refreshed_before_use(tenants):
    with serve(TokenServer()) as server:
        conn = xero_connection(tenants.a, server.url, expires_in=-10)
        headers = {}
        oauth.OAuthAuth(conn)(headers)
        assert headers["Authorization"] == "Bearer access-2"
        headers = {}
        oauth.OAuthAuth(conn)(headers)  # fresh now: no second request
        assert len(server.app.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_refreshing_at_once_make_one_token_request(tenants, monkeypatch):
    """The overlap is arranged, not hoped for: the first worker's token request is held at the
    fake server until the second worker has been seen waiting for the refresh lock."""
    gate = threading.Event()
    second_waiting = threading.Event()
    real_acquire = oauth.lock_acquire

    def acquire(name, **kwargs):
        token = real_acquire(name, **kwargs)
        if token is None:  # somebody holds it: that is the second worker, waiting
            second_waiting.set()
        return token

    monkeypatch.setattr(oauth, "lock_acquire", acquire)
    with serve(TokenServer(gate=gate)) as server:
        conn = xero_connection(tenants.a, server.url)
        results, errors = [], []

        def worker():
            try:
                # Each worker has its own copy of the row, holding the token it saw rejected.
                mine = IntegrationConnection.objects.get(pk=conn.pk)
                results.append(oauth.oauth_refresh(mine, stale_access_token="access-1"))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        first = threading.Thread(target=worker)
        first.start()
        assert server.app.entered.wait(timeout=30)  # the first is at the token endpoint
        second = threading.Thread(target=worker)
        second.start()
        assert second_waiting.wait(timeout=30)  # ... and the second is queued behind it
        gate.set()
        first.join()
        second.join()
        assert errors == []
        assert results == ["access-2", "access-2"]
        assert len(server.app.requests) == 1
    stored = IntegrationConnection.objects.get(pk=conn.pk).credentials
    assert (stored["access_token"], stored["refresh_token"]) == ("access-2", "refresh-2")


@pytest.mark.django_db(transaction=True)
def test_a_refresh_inside_a_callers_transaction_is_refused_before_any_token_request(tenants):
    """The rotated refresh token would be stored in the caller's transaction and lost with its
    rollback (the old one already spent): refused up front, nothing asked of the provider."""
    from django.db import transaction

    with serve(TokenServer()) as server:
        conn = xero_connection(tenants.a, server.url, expires_in=-10)
        with pytest.raises(RuntimeError, match="inside a transaction"), transaction.atomic():
            oauth.oauth_refresh(conn)
        assert server.app.requests == []
        # Outside a transaction it refreshes, and the rotated token is committed at once.
        assert oauth.oauth_refresh(conn) == "access-2"
    stored = IntegrationConnection.objects.get(pk=conn.pk).credentials
    assert stored["refresh_token"] == "refresh-2"


@pytest.mark.django_db
def test_invalid_grant_marks_the_connection_as_needing_reauthorisation(tenants):
    with serve(TokenServer()) as server:
        conn = xero_connection(tenants.a, server.url)
        server.app.valid_refresh.clear()  # revoked
        with pytest.raises(oauth.NeedsReauth) as info:
            oauth.oauth_refresh(conn, stale_access_token="access-1")
    assert info.value.category == "auth" and not info.value.retryable
    fresh = IntegrationConnection.objects.get(pk=conn.pk)
    assert fresh.needs_reauth is True
    assert fresh.credentials["refresh_token"] == "refresh-1"  # nothing half-written
    event = AuditEvent.objects.get(action="integrations.connection.needs_reauth")
    assert event.after == {"needs_reauth": True, "reason": "invalid_grant"}
    with pytest.raises(oauth.NeedsReauth):
        oauth.access_token(fresh)  # no request until someone reconnects


@pytest.mark.django_db
def test_state_is_signed_and_expires(tenants):
    conn = connection_make(tenants.a)
    state = oauth.oauth_state_make(connection=conn, user_id=7)
    assert oauth.oauth_state_read(state) == {"connection_id": conn.pk, "user_id": 7}
    with pytest.raises(oauth.AuthFailure, match="not one Kontor asked for"):
        oauth.oauth_state_read(state[:-2] + "xx")
    with pytest.raises(oauth.AuthFailure, match="too long"):
        oauth.oauth_state_read(state, max_age=-1)
