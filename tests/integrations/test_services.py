"""Connection services: write-only credentials, audit naming keys only, roles, error actions."""

import pytest

from accounting.integrations import services
from accounting.integrations.models import IntegrationConnection, SyncError
from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from core.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(tenants):
    return tenants.users_a["owner"]


def _create(owner, company, **kw):
    return services.connection_create(
        actor=owner,
        company=company,
        system="xero",
        name="Xero",
        settings={"tenant_id": "8b0f4c2e-5d0c-4d1f-9a57-1f0e3a0c9b11"},
        credentials={"client_id": "c", "client_secret": "very-secret-1"},
        entities=["contacts", "invoices"],
        **kw,
    )


def test_create_encrypts_credentials_and_audits_only_their_names(owner, tenants):
    conn = _create(owner, tenants.a)
    assert conn.credentials == {"client_id": "c", "client_secret": "very-secret-1"}
    event = AuditEvent.objects.get(action="integrations.connection.created")
    assert event.after["credential_keys"] == ["client_id", "client_secret"]
    assert "very-secret-1" not in str(event.after)


def test_update_merges_credentials_and_removes_emptied_keys(owner, tenants):
    conn = _create(owner, tenants.a)
    conn = services.connection_update(
        actor=owner,
        connection=conn,
        credentials={"client_secret": "very-secret-2", "client_id": "", "webhook_key": "wk-123456"},
    )
    assert conn.credentials == {"client_secret": "very-secret-2", "webhook_key": "wk-123456"}
    event = AuditEvent.objects.get(action="integrations.connection.updated")
    assert event.after["credentials_changed"] == ["client_id", "client_secret", "webhook_key"]
    assert "very-secret" not in str(event.before) + str(event.after)


def test_secrets_are_refused_in_settings_and_names_are_unique(owner, tenants):
    with pytest.raises(ValidationFailed) as info:
        services.connection_create(
            actor=owner,
            company=tenants.a,
            system="zoho_books",
            name="Z",
            settings={"api_token": "x"},
        )
    assert "settings" in info.value.fields
    _create(owner, tenants.a)
    with pytest.raises(ValidationFailed, match="exists"):
        _create(owner, tenants.a)


@pytest.mark.parametrize(
    "system,settings,problem",
    [
        ("tally", {"host": "127.0.0.1", "port": -1}, "port"),
        ("busy", {"bridge_url": "ftp://bridge.example"}, "bridge_url"),
        ("zoho_books", {"region": "com"}, "organization_id"),
        ("quickbooks", {"realm_id": "abc"}, "realm_id"),
        ("xero", {"tenant_id": "t-1"}, "tenant_id"),
    ],
)
def test_per_system_settings_are_checked_by_the_service(owner, tenants, system, settings, problem):
    # The rule lives in the service, so a caller other than the API serializer or the admin form
    # (a command, the demo, a task) cannot store settings the connector would choke on.
    with pytest.raises(ValidationFailed) as info:
        services.connection_create(
            actor=owner, company=tenants.a, system=system, name="S", settings=settings
        )
    assert any(problem in text for text in info.value.fields["settings"])
    conn = services.connection_create(
        actor=owner, company=tenants.a, system="tally", name="T", settings={"host": " 10.0.0.5 "}
    )
    assert conn.settings == {"host": "10.0.0.5", "port": 9000}
    with pytest.raises(ValidationFailed):
        services.connection_update(actor=owner, connection=conn, settings={"port": 70000})


def test_only_owners_and_accountants_write(tenants):
    for role in ("clerk", "auditor", "payroll"):
        if role in tenants.users_a:
            with pytest.raises(PermissionDeniedError):
                _create(tenants.users_a[role], tenants.a)
    assert _create(tenants.users_a["accountant"], tenants.a).pk


def test_enabling_again_clears_the_failure_count(owner, tenants):
    conn = _create(owner, tenants.a)
    IntegrationConnection.objects.filter(pk=conn.pk).update(
        enabled=False, consecutive_failures=5, disabled_reason="auth"
    )
    conn.refresh_from_db()
    conn = services.connection_enable(actor=owner, connection=conn)
    assert (conn.enabled, conn.consecutive_failures, conn.disabled_reason) == (True, 0, "")


def test_error_actions(owner, tenants, django_capture_on_commit_callbacks, monkeypatch):
    from accounting.integrations import tasks

    queued = []
    monkeypatch.setattr(tasks.integrations_sync, "delay", lambda *a: queued.append(a))
    conn = _create(owner, tenants.a)

    def error():
        return SyncError.objects.create(
            company=tenants.a, connection=conn, entity="invoices", category="server", message="x"
        )

    with django_capture_on_commit_callbacks(execute=True):
        retried = services.sync_error_retry(actor=owner, error=error())
    assert retried.resolution == "retrying"
    assert queued == [(conn.pk, "invoices", "export", owner.pk, "retry")]
    resolved = services.sync_error_resolve(actor=owner, error=error(), note="fixed in Xero")
    assert (resolved.resolution, resolved.resolved_by) == ("resolved", owner)
    ignored = services.sync_error_ignore(actor=owner, error=error())
    assert ignored.resolution == "ignored"
    with pytest.raises(ConflictError):
        services.sync_error_retry(actor=owner, error=ignored)
    assert AuditEvent.objects.filter(action__startswith="integrations.sync_error.").count() == 3
