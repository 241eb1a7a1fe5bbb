"""A planted secret never leaks: not in logs (at DEBUG), audit rows, sync errors and runs,
str/repr, the admin or API responses, even when the remote system echoes it back."""

import json
import logging

import pytest

from accounting.integrations import services
from accounting.integrations.connectors import register
from accounting.integrations.connectors.base import (
    CONTACTS,
    Connector,
    ExternalContact,
    Page,
)
from accounting.integrations.http import failure_for_status
from accounting.integrations.models import IntegrationConnection, SyncError, SyncRun
from accounting.integrations.sync import sync_run
from core.models import AuditEvent
from tests.integrations.conftest import PLANTED_SECRET
from tests.integrations.fakes import Request, reply, serve

pytestmark = pytest.mark.django_db

TOKEN = "access-" + PLANTED_SECRET
REFRESH = "refresh-" + PLANTED_SECRET


class EchoingServer:
    """A hostile remote: every error reply repeats the request's headers and form."""

    def __init__(self):
        self.mode = "500"

    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        echo = json.dumps({"headers": request.headers, "body": request.body.decode()})
        if request.path == "/token":
            return reply(
                start_response,
                400,
                json.dumps({"error": "invalid_grant", "error_description": echo}),
                content_type="application/json",
            )
        status = 401 if self.mode == "401" else 500
        return reply(start_response, status, echo, content_type="application/json")


class EchoConnector(Connector):
    system = "zoho_books"
    supports = frozenset({CONTACTS})

    def test_connection(self):
        response = self.http.request("GET", "/organizations")
        raise failure_for_status(response, f"Test failed: {response.text}")

    def fetch_contacts(self, *, cursor=None, since=None):
        response = self.http.request("GET", "/contacts")
        if response.status_code >= 400:  # pragma: no cover - the client raises first
            raise failure_for_status(response, response.text)
        return Page([ExternalContact(external_id="1", name="x")], None)


@pytest.fixture
def echo(tenants, settings, fast_retries):
    register("zoho_books", EchoConnector)
    with serve(EchoingServer()) as server:
        conn = services.connection_create(
            actor=tenants.users_a["owner"],
            company=tenants.a,
            system="zoho_books",
            name="Books",
            settings={
                "base_url": server.url,
                "organization_id": "1",
                "oauth": {"token_url": f"{server.url}/token"},
            },
            credentials={
                "client_id": "client-1",
                "client_secret": PLANTED_SECRET,
                "access_token": TOKEN,
                "refresh_token": REFRESH,
                "expires_at": 9_999_999_999,
            },
            entities=["contacts"],
        )
        yield conn, server
    register("zoho_books", None)


def _everything_stored() -> str:
    rows = [
        *AuditEvent.objects.values("object_repr", "before", "after"),
        *SyncError.objects.values("message", "detail", "suggested_fix", "external_id"),
        *SyncRun.objects.values("error_summary"),
        *IntegrationConnection.objects.values(
            "name", "settings", "last_test_message", "disabled_reason"
        ),
    ]
    return json.dumps(rows, default=str)


def test_secret_never_leaks_through_a_failing_sync(echo, caplog, tenants):
    conn, server = echo
    caplog.set_level(logging.DEBUG)
    # 1. The server fails with 500 and echoes the Authorization header back.
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert run.status == "failed"
    error = SyncError.objects.get(connection=conn)
    assert error.category == "server"
    assert "******" in json.dumps(error.detail)  # the echo was there, and was scrubbed
    # 2. The server rejects the token; the refresh is refused with the refresh token echoed.
    server.app.mode = "401"
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert run.status == "failed"
    conn.refresh_from_db()
    assert conn.needs_reauth is True
    # 3. A failed connection test, and an update of the credentials.
    services.connection_test(actor=tenants.users_a["owner"], connection=conn)
    services.connection_update(
        actor=tenants.users_a["owner"],
        connection=conn,
        credentials={"client_secret": PLANTED_SECRET + "-v2"},
        name="Books (new app)",
    )
    update = AuditEvent.objects.filter(action="integrations.connection.updated").get()
    assert update.after["credentials_changed"] == ["client_secret"]

    assert len(caplog.records) > 3  # DEBUG logging was on and said things
    for text in (caplog.text, _everything_stored(), str(conn), repr(conn)):
        assert PLANTED_SECRET not in text
    stored = IntegrationConnection.objects.values_list("credentials_encrypted", flat=True).get()
    assert PLANTED_SECRET not in stored


def test_the_admin_never_shows_credentials(echo, client, tenants):
    from django.contrib import admin

    conn, _ = echo
    assert IntegrationConnection in admin.site._registry  # the scan always runs
    tenants.users_a["owner"].is_staff = tenants.users_a["owner"].is_superuser = True
    tenants.users_a["owner"].save()
    client.force_login(tenants.users_a["owner"])
    sync_run(connection=conn, entity="contacts", direction="import")  # an echoed failure
    error = SyncError.objects.get(connection=conn)
    for url in (
        f"/admin/integrations/integrationconnection/{conn.pk}/change/",
        "/admin/integrations/integrationconnection/",
        "/admin/integrations/syncerror/",
        f"/admin/integrations/syncerror/{error.pk}/change/",
        "/admin/integrations/syncrun/",
    ):
        response = client.get(url)
        assert response.status_code == 200
        body = response.content.decode()
        assert PLANTED_SECRET not in body
        assert "gAAAA" not in body  # nor the Fernet token


def test_api_responses_never_show_credentials(echo, api, tenants):
    from config.api_router import router

    conn, _ = echo
    routes = [
        prefix
        for prefix, viewset, _ in router.registry
        if getattr(getattr(viewset, "queryset", None), "model", None) is not None
        and viewset.queryset.model._meta.app_label == "integrations"
    ]
    assert routes  # the scan always runs: connections, runs, errors, mappings at least
    sync_run(connection=conn, entity="contacts", direction="import")  # errors and runs to list
    client = api(tenants.users_a["owner"], tenants.a)
    bodies = []
    for prefix in routes:
        response = client.get(f"/api/v1/{prefix}/")
        assert response.status_code == 200, prefix
        bodies.append(response.content.decode())
        for item in response.json().get("results", response.json()):
            if isinstance(item, dict) and "id" in item:
                detail = client.get(f"/api/v1/{prefix}/{item['id']}/")
                bodies.append(detail.content.decode())
    # The actions answer too: a failed test (the server echoes the token), the summary.
    bodies.append(
        client.post(
            f"/api/v1/accounting/integrations/connections/{conn.pk}/test-connection/"
        ).content.decode()
    )
    bodies.append(
        client.get(
            f"/api/v1/accounting/integrations/connections/{conn.pk}/summary/"
        ).content.decode()
    )
    text = "\n".join(bodies)
    assert PLANTED_SECRET not in text
    assert "gAAAA" not in text
