"""The integration hub API: connections with write-only credentials and per-system settings,
test-connection against the fake Tally (and a stopped one), syncs against the fake, the OAuth
connect URL and callback against the fake Zoho and Xero token endpoints, sync errors' actions,
account mappings, the guide's `POST /api/v1/accounting/test-connection`, roles and tenancy."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from accounting.integrations import oauth
from accounting.integrations.models import (
    AccountMapping,
    IntegrationConnection,
    SyncError,
    SyncRun,
)
from core.models import AuditEvent
from invoicing.models import Party
from tests.integrations.conftest import PLANTED_SECRET, connection_make
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.tally import FakeTally
from tests.integrations.fakes.xero import FakeXero
from tests.integrations.fakes.zoho import CLIENT_ID, CLIENT_SECRET, FakeZohoBooks

pytestmark = pytest.mark.django_db

BASE = "/api/v1/accounting/integrations"


@pytest.fixture
def owner(api, tenants):
    return api(tenants.users_a["owner"], tenants.a)


@pytest.fixture
def tally_server(loopback_server, fast_retries):  # noqa: F811
    fake = FakeTally(company="Alpha Traders", version="TallyPrime 6.0")
    fake.add_ledger("Acme Ltd", "Sundry Debtors", email="ap@acme.test")
    fake.add_ledger("Paper Mills", "Sundry Creditors")
    fake.add_ledger("Sales", "Sales Accounts")
    return fake, loopback_server(fake)


def _tally(owner, server, **extra):
    body = {
        "system": "tally",
        "name": "Head office Tally",
        "settings": {"host": "127.0.0.1", "port": server.port, "company": "Alpha Traders"},
        "entities": ["accounts", "contacts"],
        **extra,
    }
    response = owner.post(f"{BASE}/connections/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- connections: CRUD, write-only credentials, settings per system --------------------------


def test_credentials_are_accepted_and_never_returned(owner, tenants):
    response = owner.post(
        f"{BASE}/connections/",
        {
            "system": "zoho_books",
            "name": "Zoho India",
            "settings": {"region": "in", "organization_id": "60001"},
            "credentials": {"client_id": "cid-1", "client_secret": PLANTED_SECRET},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["credential_keys"] == ["client_id", "client_secret"]
    assert body["credentials_masked"] == {"client_id": "********", "client_secret": "********"}
    assert "credentials" not in body
    connection = IntegrationConnection.objects.get(pk=body["id"])
    assert connection.credentials["client_secret"] == PLANTED_SECRET

    # Update merges: a new key is added, a key set to null is removed, the rest is kept.
    patched = owner.patch(
        f"{BASE}/connections/{body['id']}/",
        {"credentials": {"webhook_key": PLANTED_SECRET + "-w", "client_id": None}},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["credential_keys"] == ["client_secret", "webhook_key"]
    texts = [
        response.content.decode(),
        patched.content.decode(),
        owner.get(f"{BASE}/connections/").content.decode(),
        owner.get(f"{BASE}/connections/{body['id']}/").content.decode(),
    ]
    for text in texts:
        assert PLANTED_SECRET not in text
        assert "gAAAA" not in text  # nor the Fernet token
    audit = AuditEvent.objects.filter(action="integrations.connection.updated").get()
    assert audit.after["credentials_changed"] == ["client_id", "webhook_key"]
    assert PLANTED_SECRET not in json.dumps(audit.after) + json.dumps(audit.before)


def test_settings_are_checked_per_system_with_defaults(owner):
    tally = owner.post(
        f"{BASE}/connections/", {"system": "tally", "name": "T", "settings": {}}, format="json"
    )
    assert tally.status_code == 201, tally.content
    assert tally.json()["settings"] == {"host": "127.0.0.1", "port": 9000}

    cases = [
        ("tally", {"port": 70000}, "port"),
        ("zoho_books", {"region": "mars", "organization_id": "1"}, "region"),
        ("zoho_books", {"region": "in"}, "organization_id"),
        ("quickbooks", {"environment": "staging"}, "environment"),
        ("xero", {"tenant_id": "not-a-uuid"}, "tenant_id"),
        ("busy", {"bridge_url": "ftp://bridge.example"}, "bridge_url"),
    ]
    for system, settings, key in cases:
        response = owner.post(
            f"{BASE}/connections/",
            {"system": system, "name": f"bad {key}", "settings": settings},
            format="json",
        )
        assert response.status_code == 400, (system, response.content)
        assert key in " ".join(response.json()["fields"]["settings"])

    quickbooks = owner.post(
        f"{BASE}/connections/",
        {"system": "quickbooks", "name": "QBO", "settings": {"realm_id": "9130"}},
        format="json",
    ).json()
    assert quickbooks["settings"] == {"realm_id": "9130", "environment": "production"}
    # A secret in settings is refused (services): it belongs in credentials.
    refused = owner.post(
        f"{BASE}/connections/",
        {"system": "xero", "name": "X", "settings": {"client_secret": "x"}},
        format="json",
    )
    assert refused.status_code == 400
    # The system never changes; delete goes through the service (audited).
    owner.patch(f"{BASE}/connections/{quickbooks['id']}/", {"system": "xero"}, format="json")
    assert IntegrationConnection.objects.get(pk=quickbooks["id"]).system == "quickbooks"
    assert owner.delete(f"{BASE}/connections/{quickbooks['id']}/").status_code == 204
    assert AuditEvent.objects.filter(action="integrations.connection.deleted").count() == 1


# --- test-connection -----------------------------------------------------------------------


def test_test_connection_against_the_fake_tally_then_a_stopped_one(owner, tally_server):
    fake, server = tally_server
    connection = _tally(owner, server)
    response = owner.post(f"{BASE}/connections/{connection['id']}/test-connection/")
    assert response.status_code == 200, response.content
    outcome = response.json()
    assert outcome["success"] is True
    assert "TallyPrime" in outcome["version"]
    assert isinstance(outcome["latency_ms"], int) and outcome["latency_ms"] >= 0
    stored = IntegrationConnection.objects.get(pk=connection["id"])
    assert stored.last_test_success is True and stored.last_test_latency_ms == outcome["latency_ms"]

    server.stop()
    failed = owner.post(f"{BASE}/connections/{connection['id']}/test-connection/").json()
    assert failed["success"] is False
    assert failed["message"]
    stored.refresh_from_db()
    assert stored.last_test_success is False
    assert list(
        SyncRun.objects.filter(connection_id=connection["id"], sync_type="test")
        .order_by("id")
        .values_list("status", flat=True)
    ) == ["succeeded", "failed"]


def test_guide_test_connection_endpoint(owner, api, tenants, tally_server):
    _fake, server = tally_server
    connection = _tally(owner, server)
    response = owner.post(
        "/api/v1/accounting/test-connection", {"configId": connection["id"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"success", "latency_ms", "version", "message"}
    assert response.json()["success"] is True

    missing = owner.post("/api/v1/accounting/test-connection", {}, format="json")
    assert missing.status_code == 400
    assert "configId" in missing.json()["fields"]
    assert (
        owner.post(
            "/api/v1/accounting/test-connection", {"configId": 999999}, format="json"
        ).status_code
        == 404
    )
    foreign = connection_make(tenants.b, system="tally", name="B's", credentials={})
    response = owner.post(
        "/api/v1/accounting/test-connection", {"configId": foreign.pk}, format="json"
    )
    assert response.status_code == 404
    auditor = api(tenants.users_a["auditor"], tenants.a)
    assert (
        auditor.post(
            "/api/v1/accounting/test-connection", {"configId": connection["id"]}, format="json"
        ).status_code
        == 403
    )


# --- sync --------------------------------------------------------------------------------------


def test_sync_now_runs_against_the_fake_and_records_the_run(owner, tally_server, tenants):
    _fake, server = tally_server
    connection = _tally(owner, server)
    response = owner.post(
        f"{BASE}/connections/{connection['id']}/sync/?wait=true",
        {"entity": "contacts"},
        format="json",
    )
    assert response.status_code == 200, response.content
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["sync_type"] == "import" and run["entity"] == "contacts"
    assert run["records_succeeded"] == 2  # Acme Ltd and Paper Mills (Sales is no party)
    assert set(
        Party.objects.filter(company=tenants.a, name__in=["Acme Ltd", "Paper Mills"]).values_list(
            "name", flat=True
        )
    ) == {"Acme Ltd", "Paper Mills"}
    listed = owner.get(f"{BASE}/runs/", {"connection": connection["id"], "status": "succeeded"})
    assert [row["id"] for row in listed.json()["results"]] == [run["id"]]
    assert owner.get(f"{BASE}/runs/", {"entity": "accounts"}).json()["results"] == []


def test_sync_queues_after_commit_and_answers_202(
    owner, tally_server, django_capture_on_commit_callbacks, monkeypatch
):
    from accounting.integrations import tasks

    queued = []
    monkeypatch.setattr(tasks.integrations_sync, "delay", lambda *args: queued.append(args))
    _fake, server = tally_server
    connection = _tally(owner, server)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(f"{BASE}/connections/{connection['id']}/sync/", {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["queued"] == [
        {"entity": "accounts", "direction": "import"},
        {"entity": "contacts", "direction": "import"},
    ]
    assert response.json()["runs_url"].endswith(f"/runs/?connection={connection['id']}")
    user_id = queued[0][3]
    assert queued == [
        (connection["id"], "accounts", "import", user_id),
        (connection["id"], "contacts", "import", user_id),
    ]
    # Wrong direction for the entity, and a disabled connection, are refused.
    with django_capture_on_commit_callbacks() as callbacks:
        wrong = owner.post(
            f"{BASE}/connections/{connection['id']}/sync/",
            {"entity": "contacts", "direction": "export"},
            format="json",
        )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "direction_invalid"
    assert callbacks == []  # refused before anything was queued
    with django_capture_on_commit_callbacks(execute=True):
        only_imports = owner.post(
            f"{BASE}/connections/{connection['id']}/sync/", {"direction": "import"}, format="json"
        )
    assert [row["entity"] for row in only_imports.json()["queued"]] == ["accounts", "contacts"]
    owner.post(f"{BASE}/connections/{connection['id']}/disable/")
    disabled = owner.post(f"{BASE}/connections/{connection['id']}/sync/", {}, format="json")
    assert disabled.status_code == 409
    assert disabled.json()["code"] == "connection_disabled"


# --- errors ------------------------------------------------------------------------------------


def test_error_actions_retry_resolve_ignore(
    owner, tenants, django_capture_on_commit_callbacks, monkeypatch
):
    from accounting.integrations import tasks

    queued = []
    monkeypatch.setattr(tasks.integrations_sync, "delay", lambda *args: queued.append(args))
    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    errors = [
        SyncError.objects.create(
            company=tenants.a,
            connection=connection,
            entity="contacts",
            external_id=f"L-{n}",
            category="server",
            message="Tally stopped answering.",
            retryable=True,
        )
        for n in range(3)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        retried = owner.post(f"{BASE}/errors/{errors[0].pk}/retry/")
    assert retried.status_code == 200, retried.content
    assert retried.json()["resolution"] == "retrying"
    assert queued == [(connection.pk, "contacts", "import", tenants.users_a["owner"].pk, "retry")]

    resolved = owner.post(f"{BASE}/errors/{errors[1].pk}/resolve/", {"note": "fixed in Tally"})
    assert resolved.json()["resolution"] == "resolved"
    assert resolved.json()["detail"]["note"] == "fixed in Tally"
    ignored = owner.post(f"{BASE}/errors/{errors[2].pk}/ignore/")
    assert ignored.json()["resolution"] == "ignored"
    again = owner.post(f"{BASE}/errors/{errors[2].pk}/resolve/")
    assert again.status_code == 409 and again.json()["code"] == "error_closed"

    open_rows = owner.get(f"{BASE}/errors/", {"resolution": "retrying"}).json()["results"]
    assert [row["id"] for row in open_rows] == [errors[0].pk]


# --- account mappings --------------------------------------------------------------------------


def test_account_mapping_sets_a_local_account_of_the_company_only(owner, tenants):
    from tests.factories import AccountFactory

    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    mapping = AccountMapping.objects.create(
        company=tenants.a,
        connection=connection,
        external_id="tally-4000",
        external_code="4000",
        external_name="Sales Accounts",
    )
    local = AccountFactory(company=tenants.a)
    foreign = AccountFactory(company=tenants.b)
    unmapped = owner.get(f"{BASE}/account-mappings/", {"account__isnull": True}).json()
    assert [row["id"] for row in unmapped["results"]] == [mapping.pk]

    response = owner.patch(
        f"{BASE}/account-mappings/{mapping.pk}/", {"account": local.pk}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["account"] == local.pk
    assert response.json()["account_code"] == local.code
    assert AuditEvent.objects.filter(action="integrations.account_mapping.set").count() == 1
    refused = owner.patch(
        f"{BASE}/account-mappings/{mapping.pk}/", {"account": foreign.pk}, format="json"
    )
    assert refused.status_code == 400
    mapping.refresh_from_db()
    assert mapping.account_id == local.pk


# --- OAuth: connect URL and callback -----------------------------------------------------------


@pytest.fixture
def zoho_fake(loopback_server):  # noqa: F811
    fake = FakeZohoBooks()
    fake.server_url = loopback_server(fake).url
    return fake


def _zoho_connection(tenants, fake):
    return connection_make(
        tenants.a,
        system="zoho_books",
        name="Zoho",
        credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        settings={
            "region": "in",
            "organization_id": "10234695",
            "base_url": fake.server_url,
            "oauth": {
                "authorize_url": f"{fake.server_url}/oauth/v2/auth",
                "token_url": f"{fake.server_url}/oauth/v2/token",
            },
        },
    )


def test_connect_url_and_callback_exchange_the_code_with_fake_zoho(owner, api, tenants, zoho_fake):
    connection = _zoho_connection(tenants, zoho_fake)
    response = owner.get(f"{BASE}/connections/{connection.pk}/connect/")
    assert response.status_code == 200, response.content
    url = urlsplit(response.json()["authorize_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{zoho_fake.server_url}/oauth/v2/auth"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"].endswith("/api/v1/accounting/integrations/zoho_books/callback")
    assert oauth.oauth_state_read(query["state"]) == {
        "connection_id": connection.pk,
        "user_id": tenants.users_a["owner"].pk,
    }
    # Only writers may ask for a consent URL.
    auditor = api(tenants.users_a["auditor"], tenants.a)
    assert auditor.get(f"{BASE}/connections/{connection.pk}/connect/").status_code == 403

    code = "1000.consented"
    zoho_fake.tokens.codes.add(code)
    anonymous = api()  # the provider redirects a browser: no API credentials
    callback = anonymous.get(f"{BASE}/zoho_books/callback", {"code": code, "state": query["state"]})
    assert callback.status_code == 200, callback.content
    assert callback.json()["connected"] is True
    connection.refresh_from_db()
    stored = connection.credentials
    assert stored["access_token"] in zoho_fake.tokens.access
    assert stored["refresh_token"] in zoho_fake.tokens.refresh
    assert stored["access_token"] not in callback.content.decode()
    assert stored["access_token"] not in connection.credentials_encrypted
    assert AuditEvent.objects.filter(action="integrations.connection.connected").count() == 1

    # A browser is sent to the connection's admin page.
    zoho_fake.tokens.codes.add("1000.again")
    browser = anonymous.get(
        f"{BASE}/zoho_books/callback",
        {"code": "1000.again", "state": query["state"]},
        HTTP_ACCEPT="text/html",
    )
    assert browser.status_code == 302
    assert (
        browser["Location"] == f"/admin/integrations/integrationconnection/{connection.pk}/change/"
    )


def test_callback_refuses_tampered_expired_and_mismatched_states(api, tenants, zoho_fake):
    connection = _zoho_connection(tenants, zoho_fake)
    state = oauth.oauth_state_make(connection=connection, user_id=tenants.users_a["owner"].pk)
    zoho_fake.tokens.codes.add("1000.c")
    client = api()
    tampered = client.get(f"{BASE}/zoho_books/callback", {"code": "1000.c", "state": state + "x"})
    assert tampered.status_code == 400
    assert tampered.json()["code"] == "oauth_state_invalid"
    wrong_system = client.get(f"{BASE}/xero/callback", {"code": "1000.c", "state": state})
    assert wrong_system.status_code == 400
    assert wrong_system.json()["code"] == "oauth_state_invalid"
    bad_code = client.get(f"{BASE}/zoho_books/callback", {"code": "1000.unknown", "state": state})
    assert bad_code.status_code == 400
    assert bad_code.json()["code"] == "oauth_exchange_failed"
    # A state made by a user who may not change integrations (a clerk) is refused.
    clerk_state = oauth.oauth_state_make(connection=connection, user_id=tenants.users_a["clerk"].pk)
    assert (
        client.get(
            f"{BASE}/zoho_books/callback", {"code": "1000.c", "state": clerk_state}
        ).status_code
        == 403
    )
    connection.refresh_from_db()
    assert "access_token" not in connection.credentials  # nothing was stored


def test_callback_expired_state(api, tenants, zoho_fake, monkeypatch):
    connection = _zoho_connection(tenants, zoho_fake)
    state = oauth.oauth_state_make(connection=connection, user_id=tenants.users_a["owner"].pk)
    monkeypatch.setattr(oauth.oauth_state_read, "__kwdefaults__", {"max_age": -1})
    response = api().get(f"{BASE}/zoho_books/callback", {"code": "x", "state": state})
    assert response.status_code == 400
    assert response.json()["code"] == "oauth_state_expired"


def test_callback_exchanges_the_code_with_fake_xero(api, tenants, loopback_server):  # noqa: F811
    fake = FakeXero()
    server = loopback_server(fake)
    connection = connection_make(
        tenants.a,
        system="xero",
        name="Xero",
        credentials={"client_id": fake.client_id, "client_secret": fake.client_secret},
        settings={
            "tenant_id": fake.tenant_id,
            "base_url": server.url,
            "oauth": {
                "authorize_url": f"{server.url}/identity/connect/authorize",
                "token_url": f"{server.url}/connect/token",
            },
        },
    )
    state = oauth.oauth_state_make(connection=connection, user_id=tenants.users_a["owner"].pk)
    code = fake.issue_auth_code()
    response = api().get(f"{BASE}/xero/callback", {"code": code, "state": state})
    assert response.status_code == 200, response.content
    connection.refresh_from_db()
    assert connection.credentials["refresh_token"] == fake.refresh_token
    assert connection.credentials["access_token"] in fake.access_tokens
    assert connection.needs_reauth is False
    # The code is single-use: the same reply again is refused by Xero.
    again = api().get(f"{BASE}/xero/callback", {"code": code, "state": state})
    assert again.status_code == 400 and again.json()["code"] == "oauth_exchange_failed"


def test_connect_is_refused_for_systems_without_oauth(owner, tenants):
    tally = connection_make(tenants.a, system="tally", name="T", credentials={})
    response = owner.get(f"{BASE}/connections/{tally.pk}/connect/")
    assert response.status_code == 400
    assert response.json()["code"] == "oauth_not_supported"


# --- roles and tenancy -------------------------------------------------------------------------


def test_auditor_reads_but_cannot_write_and_clerk_cannot_read(api, tenants):
    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    error = SyncError.objects.create(
        company=tenants.a, connection=connection, category="server", message="x", entity="contacts"
    )
    auditor = api(tenants.users_a["auditor"], tenants.a)
    assert auditor.get(f"{BASE}/connections/").status_code == 200
    assert auditor.get(f"{BASE}/connections/{connection.pk}/summary/").status_code == 200
    assert auditor.get(f"{BASE}/errors/").status_code == 200
    for path in (
        f"{BASE}/connections/{connection.pk}/test-connection/",
        f"{BASE}/connections/{connection.pk}/sync/",
        f"{BASE}/connections/{connection.pk}/disable/",
        f"{BASE}/errors/{error.pk}/resolve/",
    ):
        response = auditor.post(path, {}, format="json")
        assert response.status_code == 403, path
        assert response.json()["code"] == "role_forbidden"
    assert (
        auditor.patch(
            f"{BASE}/connections/{connection.pk}/", {"name": "x"}, format="json"
        ).status_code
        == 403
    )
    clerk = api(tenants.users_a["clerk"], tenants.a)
    for path in ("connections/", "runs/", "errors/", "account-mappings/"):
        assert clerk.get(f"{BASE}/{path}").status_code == 403
    error.refresh_from_db()
    assert error.resolution == "open"


def test_another_companys_rows_answer_404(api, tenants):
    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    error = SyncError.objects.create(
        company=tenants.a, connection=connection, category="server", message="x"
    )
    client_b = api(tenants.owner_b, tenants.b)
    for path in (
        f"connections/{connection.pk}/test-connection/",
        f"connections/{connection.pk}/sync/",
        f"errors/{error.pk}/ignore/",
    ):
        assert client_b.post(f"{BASE}/{path}", {}, format="json").status_code == 404, path
    assert client_b.get(f"{BASE}/connections/{connection.pk}/summary/").status_code == 404
    assert client_b.get(f"{BASE}/connections/{connection.pk}/connect/").status_code == 404
    error.refresh_from_db()
    assert error.resolution == "open"


def test_summary_counts_runs_and_open_errors(owner, tenants):
    from django.utils import timezone

    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    now = timezone.now()
    for status in ("succeeded", "succeeded", "partial", "failed"):
        SyncRun.objects.create(
            company=tenants.a,
            connection=connection,
            sync_type="import",
            entity="contacts",
            status=status,
            started_at=now,
        )
    SyncRun.objects.create(  # older than 30 days: not counted
        company=tenants.a,
        connection=connection,
        sync_type="import",
        status="failed",
        started_at=now - timezone.timedelta(days=40),
    )
    for category, resolution in (("server", "open"), ("server", "open"), ("auth", "ignored")):
        SyncError.objects.create(
            company=tenants.a,
            connection=connection,
            category=category,
            message="x",
            resolution=resolution,
        )
    summary = owner.get(f"{BASE}/connections/{connection.pk}/summary/").json()
    assert (summary["runs"], summary["succeeded"], summary["partial"], summary["failed"]) == (
        4,
        2,
        1,
        1,
    )
    assert summary["open_errors"] == 2
    assert summary["open_errors_by_category"] == {"server": 2}


def test_quickbooks_round_trip_stores_tokens_and_realm(owner, api, tenants, loopback_server):  # noqa: F811
    """Connect URL -> the fake's consent page redirects back with code, state and realmId ->
    our callback: tokens stored encrypted, realm_id set from the reply."""
    import httpx

    from tests.integrations.fakes.quickbooks import CLIENT_ID as QBO_ID
    from tests.integrations.fakes.quickbooks import CLIENT_SECRET as QBO_SECRET
    from tests.integrations.fakes.quickbooks import FakeQuickBooks

    fake = FakeQuickBooks(realm_id="9130357766")
    server = loopback_server(fake)
    fake.server_url = server.url
    created = owner.post(
        f"{BASE}/connections/",
        {
            "system": "quickbooks",
            "name": "QBO",
            "settings": {
                "environment": "sandbox",
                "base_url": server.url,
                "oauth": {
                    "authorize_url": f"{server.url}/connect/oauth2",
                    "token_url": f"{server.url}/oauth2/v1/tokens/bearer",
                },
            },
            "credentials": {"client_id": QBO_ID, "client_secret": QBO_SECRET},
        },
        format="json",
    ).json()
    assert created["settings"]["realm_id"] == ""
    authorize_url = owner.get(f"{BASE}/connections/{created['id']}/connect/").json()[
        "authorize_url"
    ]
    consent = httpx.get(authorize_url, follow_redirects=False)
    assert consent.status_code == 302
    back = urlsplit(consent.headers["location"])
    assert back.path == "/api/v1/accounting/integrations/quickbooks/callback"
    params = {k: v[0] for k, v in parse_qs(back.query).items()}
    response = api().get(back.path, params)
    assert response.status_code == 200, response.content
    connection = IntegrationConnection.objects.get(pk=created["id"])
    assert connection.settings["realm_id"] == "9130357766"
    assert connection.credentials["refresh_token"] == fake.tokens.refresh
    assert connection.credentials["access_token"] in fake.tokens.access
    detail = owner.get(f"{BASE}/connections/{created['id']}/").json()
    assert detail["credential_keys"] == [
        "access_token",
        "client_id",
        "client_secret",
        "expires_at",
        "refresh_expires_at",
        "refresh_token",
        "token_type",
    ]
    assert fake.tokens.refresh not in json.dumps(detail)
