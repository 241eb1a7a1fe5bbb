"""The integration hub admin as an accountant uses it: a connection is added with credentials in
password fields that never come back into the page, its summary shows runs and open errors, the
Test connection and Sync now buttons call the services against the fake Tally, Connect sends the
browser to the provider, errors are retried/resolved/ignored in bulk with counts, an external
account is mapped to a local one, and an auditor only looks."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from accounting.integrations.models import (
    AccountMapping,
    IntegrationConnection,
    SyncError,
    SyncRun,
    WebhookEvent,
)
from tests.integrations.conftest import PLANTED_SECRET, connection_make
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.tally import FakeTally

pytestmark = pytest.mark.django_db
ADMIN = "/admin/integrations"


def login(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def accountant(tenants):
    return login(tenants.users_a["accountant"])


@pytest.fixture
def tally(tenants, loopback_server, fast_retries):  # noqa: F811
    fake = FakeTally(company="Alpha Traders")
    fake.add_ledger("Acme Ltd", "Sundry Debtors")
    server = loopback_server(fake)
    connection = connection_make(
        tenants.a,
        system="tally",
        name="Tally",
        credentials={"webhook_key": PLANTED_SECRET},
        settings={"host": "127.0.0.1", "port": server.port, "company": "Alpha Traders"},
        entities=["contacts"],
    )
    return connection, server


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_add_connection_with_write_only_credentials(accountant, tenants):
    response = accountant.post(
        f"{ADMIN}/integrationconnection/add/",
        {
            "company": tenants.a.pk,
            "system": "zoho_books",
            "name": "Zoho India",
            "enabled": "on",
            "direction": "import",
            "frequency": "daily",
            "entities": ["contacts"],
            "settings": '{"region": "in", "organization_id": "60001"}',
            "client_id": "cid-1",
            "client_secret": PLANTED_SECRET,
            "api_key": "",
            "webhook_key": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    connection = IntegrationConnection.objects.get(name="Zoho India")
    assert connection.credentials == {"client_id": "cid-1", "client_secret": PLANTED_SECRET}
    assert connection.settings == {"region": "in", "organization_id": "60001"}
    page = accountant.get(f"{ADMIN}/integrationconnection/{connection.pk}/change/")
    body = page.content.decode()
    assert "client_secret ********" in body
    assert f"/api/v1/accounting/integrations/zoho_books/webhooks/{connection.pk}" in body
    assert PLANTED_SECRET not in body and "gAAAA" not in body

    # Saving with the password fields blank keeps the stored values; "Remove" drops one.
    response = accountant.post(
        f"{ADMIN}/integrationconnection/{connection.pk}/change/",
        {
            "name": "Zoho India",
            "enabled": "on",
            "direction": "import",
            "frequency": "daily",
            "entities": ["contacts"],
            "settings": '{"region": "in", "organization_id": "60001"}',
            "client_id": "",
            "client_secret": "",
            "api_key": "",
            "webhook_key": "",
            "remove_credentials": ["client_id"],
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    connection.refresh_from_db()
    assert connection.credentials == {"client_secret": PLANTED_SECRET}


def test_settings_are_checked_in_the_form(accountant, tenants):
    response = accountant.post(
        f"{ADMIN}/integrationconnection/add/",
        {
            "company": tenants.a.pk,
            "system": "zoho_books",
            "name": "Zoho",
            "direction": "import",
            "frequency": "manual",
            "settings": '{"region": "mars"}',
        },
    )
    assert response.status_code == 200
    assert "region: one of" in response.content.decode()
    assert not IntegrationConnection.objects.filter(name="Zoho").exists()


def test_summary_buttons_test_and_sync_against_the_fake(accountant, tally, tenants):
    connection, server = tally
    SyncError.objects.create(
        company=tenants.a, connection=connection, category="network", message="x"
    )
    page = accountant.get(f"{ADMIN}/integrationconnection/{connection.pk}/change/")
    body = page.content.decode()
    assert "Test connection" in body and "Sync contacts now" in body
    assert "1 (network 1)" in body  # open errors by category
    assert PLANTED_SECRET not in body

    command = f"{ADMIN}/integrationconnection/{connection.pk}/command/"
    response = accountant.post(command, {"command": "test"}, follow=True)
    assert any("Connection test succeeded" in m for m in _messages(response))
    connection.refresh_from_db()
    assert connection.last_test_success is True

    response = accountant.post(command, {"command": "sync:contacts"}, follow=True)
    assert any("Sync queued: contacts (import)" in m for m in _messages(response))

    response = accountant.post(command, {"command": "disable"}, follow=True)
    connection.refresh_from_db()
    assert connection.enabled is False
    server.stop()
    response = accountant.post(command, {"command": "test"}, follow=True)
    assert any("Connection test failed" in m for m in _messages(response))


def test_connect_redirects_to_the_providers_consent_page(accountant, tenants):
    connection = connection_make(
        tenants.a,
        system="xero",
        name="Xero",
        settings={"oauth": {"authorize_url": "https://login.example/authorize"}},
    )
    response = accountant.get(f"{ADMIN}/integrationconnection/{connection.pk}/connect/")
    assert response.status_code == 302
    assert response["Location"].startswith("https://login.example/authorize?")
    assert "state=" in response["Location"]
    tally = connection_make(tenants.a, system="tally", name="T", credentials={})
    response = accountant.get(f"{ADMIN}/integrationconnection/{tally.pk}/connect/", follow=True)
    assert any("does not connect with OAuth" in m for m in _messages(response))


def test_error_actions_report_counts(accountant, tenants, monkeypatch):
    from accounting.integrations import tasks

    monkeypatch.setattr(tasks.integrations_sync, "delay", lambda *args: None)
    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    errors = [
        SyncError.objects.create(
            company=tenants.a,
            connection=connection,
            entity="contacts",
            category="server",
            message=f"e{n}",
            retryable=True,
        )
        for n in range(4)
    ]
    changelist = f"{ADMIN}/syncerror/"
    response = accountant.post(
        changelist,
        {"action": "resolve_selected", "_selected_action": [errors[0].pk, errors[1].pk]},
        follow=True,
    )
    assert "Errors resolved: 2." in _messages(response)
    response = accountant.post(
        changelist,
        {"action": "ignore_selected", "_selected_action": [errors[1].pk, errors[2].pk]},
        follow=True,
    )
    messages = _messages(response)
    assert "Errors ignored: 1." in messages
    assert any("already resolved" in m for m in messages)
    response = accountant.post(
        changelist, {"action": "retry_selected", "_selected_action": [errors[3].pk]}, follow=True
    )
    assert "Errors queued for retry: 1." in _messages(response)
    assert [SyncError.objects.get(pk=e.pk).resolution for e in errors] == [
        "resolved",
        "resolved",
        "ignored",
        "retrying",
    ]


def test_account_mapping_and_read_only_lists(accountant, tenants):
    from tests.factories import AccountFactory

    connection = connection_make(tenants.a, system="tally", name="T", credentials={})
    mapping = AccountMapping.objects.create(
        company=tenants.a,
        connection=connection,
        external_id="tally-1",
        external_code="4000",
        external_name="Sales Accounts",
    )
    account = AccountFactory(company=tenants.a)
    response = accountant.post(
        f"{ADMIN}/accountmapping/{mapping.pk}/change/", {"account": account.pk}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    mapping.refresh_from_db()
    assert mapping.account_id == account.pk

    SyncRun.objects.create(
        company=tenants.a,
        connection=connection,
        sync_type="import",
        entity="contacts",
        status="partial",
        started_at=timezone.now(),
    )
    WebhookEvent.objects.create(
        company=tenants.a,
        connection=connection,
        system="tally",
        event_id="e1",
        entity="contact",
        external_id="1",
    )
    for url in (
        f"{ADMIN}/syncrun/",
        f"{ADMIN}/syncrun/?status__exact=partial",
        f"{ADMIN}/syncerror/",
        f"{ADMIN}/accountmapping/",
        f"{ADMIN}/webhookevent/",
        f"{ADMIN}/integrationconnection/",
    ):
        assert accountant.get(url).status_code == 200, url


def test_auditor_only_looks_and_clerk_sees_nothing(tenants, tally):
    connection, _server = tally
    auditor = login(tenants.users_a["auditor"])
    page = auditor.get(f"{ADMIN}/integrationconnection/{connection.pk}/change/")
    assert page.status_code == 200
    assert "Test connection" not in page.content.decode()
    response = auditor.post(
        f"{ADMIN}/integrationconnection/{connection.pk}/command/", {"command": "disable"}
    )
    assert response.status_code == 403
    connection.refresh_from_db()
    assert connection.enabled is True
    clerk = login(tenants.users_a["clerk"])
    assert clerk.get(f"{ADMIN}/integrationconnection/").status_code == 403
