"""Webhooks: signatures (QuickBooks intuit-signature, Xero x-xero-signature with the intent to
receive handshake, Zoho shared-secret header), dedupe by event id, queueing after commit, the
quick answer, and processing by a task that re-fetches the entity from the (fake) system."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from accounting.integrations import webhooks
from accounting.integrations.models import WebhookEvent
from accounting.integrations.webhooks import (
    WebhookMalformed,
    parse_quickbooks,
    parse_xero,
    parse_zoho,
    signature_matches,
)
from tests.integrations.conftest import connection_make
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)

XERO_KEY = "xero-webhook-key-Zm9vYmFy"
QBO_TOKEN = "qbo-verifier-token-1234"
ZOHO_SECRET = "zoho-shared-secret-5678"
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
REALM = "9130357992221046"


def sign(key: str, body: bytes) -> str:
    # Written out here rather than calling the code under test: base64(HMAC-SHA256(key, body)).
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def xero_body(*events, sequence=1) -> bytes:
    return json.dumps(
        {
            "events": list(events),
            "firstEventSequence": sequence,
            "lastEventSequence": sequence + max(len(events) - 1, 0),
            "entropy": "S0m3r4Nd0mt3xt",
        }
    ).encode()


def xero_event(resource_id="717f2bfc-c6d4-41fd-b238-3f2f0c0cf777", category="CONTACT", **kw):
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": kw.get("when", "2026-11-21T10:15:39.902"),
        "eventType": kw.get("type", "UPDATE"),
        "eventCategory": category,
        "tenantId": kw.get("tenant", TENANT),
        "tenantType": "ORGANISATION",
    }


def qbo_body(*entities, realm=REALM) -> bytes:
    return json.dumps(
        {
            "eventNotifications": [
                {"realmId": realm, "dataChangeEvent": {"entities": list(entities)}}
            ]
        }
    ).encode()


def qbo_entity(name="Customer", id_="58", operation="Update", last="2026-11-21T02:40:10.000Z"):
    return {"name": name, "id": id_, "operation": operation, "lastUpdated": last}


@pytest.fixture
def xero(tenants):
    return connection_make(
        tenants.a,
        system="xero",
        name="Xero",
        settings={"tenant_id": TENANT},
        credentials={"access_token": "a", "refresh_token": "r", "webhook_key": XERO_KEY},
    )


@pytest.fixture
def qbo(tenants):
    return connection_make(
        tenants.a,
        system="quickbooks",
        name="QBO",
        settings={"realm_id": REALM},
        credentials={"access_token": "a", "refresh_token": "r", "webhook_key": QBO_TOKEN},
    )


@pytest.fixture
def zoho(tenants):
    return connection_make(
        tenants.a,
        system="zoho_books",
        name="Zoho",
        settings={"organization_id": "60001", "region": "in"},
        credentials={"access_token": "a", "refresh_token": "r", "webhook_key": ZOHO_SECRET},
    )


@pytest.fixture
def queued(monkeypatch):
    """The ids webhook_process was queued with (instead of a broker)."""
    from accounting.integrations import webhook_tasks

    calls = []
    monkeypatch.setattr(webhook_tasks.webhook_process, "delay", lambda pk: calls.append(pk))
    return calls


@pytest.fixture
def no_outgoing_calls(monkeypatch):
    """The view must not talk to the external system: any connector use fails the test."""
    from accounting.integrations import connectors

    def refuse(*args, **kwargs):
        raise AssertionError("the webhook view built a connector")

    monkeypatch.setattr(connectors, "connector_for", refuse)
    monkeypatch.setattr(connectors, "connector_class", refuse)


def url(connection, system=None):
    return f"/api/v1/accounting/integrations/{system or connection.system}/webhooks/{connection.pk}"


def post(connection, body: bytes, headers: dict, system=None):
    # enforce_csrf_checks: the endpoint must work without a CSRF token (no session, no JWT).
    client = APIClient(enforce_csrf_checks=True)
    return client.generic(
        "POST", url(connection, system), body, content_type="application/json", headers=headers
    )


# --------------------------------------------------------------------------- signatures
def test_signature_is_base64_hmac_sha256_of_the_raw_body():
    body = b'{"events":[]}'
    good = sign("key", body)
    assert signature_matches(secret="key", body=body, signature=good)
    assert not signature_matches(secret="key", body=body + b" ", signature=good)
    assert not signature_matches(secret="other", body=body, signature=good)
    assert not signature_matches(secret="", body=body, signature=sign("", body))
    assert not signature_matches(secret="key", body=body, signature="")


def test_comparison_is_constant_time(monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert webhooks.shared_secret_matches(secret="abc", presented="abc")
    assert signature_matches(secret="k", body=b"x", signature=sign("k", b"x"))
    assert len(seen) == 2


def test_event_ids_are_stable_and_tell_changes_apart():
    one = parse_xero(xero_body(xero_event()), tenant_id=TENANT)[0]
    again = parse_xero(xero_body(xero_event(), sequence=7), tenant_id=TENANT)[0]
    later = parse_xero(xero_body(xero_event(when="2026-11-21T10:16:00.000")), tenant_id=TENANT)[0]
    assert one.event_id == again.event_id  # redelivery (other sequence numbers): same change
    assert one.event_id != later.event_id
    assert (one.entity, one.operation) == ("contact", "update")

    first = parse_quickbooks(qbo_body(qbo_entity()), realm_id=REALM)[0]
    created = parse_quickbooks(qbo_body(qbo_entity(operation="Create")), realm_id=REALM)[0]
    assert first.event_id != created.event_id
    assert first.event_id == parse_quickbooks(qbo_body(qbo_entity()), realm_id=REALM)[0].event_id
    assert (first.entity, first.external_id, first.operation) == ("contact", "58", "update")


def test_events_of_another_tenant_or_realm_are_dropped():
    assert parse_xero(xero_body(xero_event(tenant="someone-else")), tenant_id=TENANT) == []
    assert parse_quickbooks(qbo_body(qbo_entity(), realm="1"), realm_id=REALM) == []


def test_unreadable_bodies_are_malformed():
    with pytest.raises(WebhookMalformed):
        parse_xero(b"not json", tenant_id=TENANT)
    with pytest.raises(WebhookMalformed):
        parse_quickbooks(b'{"something": 1}', realm_id=REALM)
    with pytest.raises(WebhookMalformed):
        parse_zoho(b'{"estimate": {"estimate_id": "1"}}', organization_id="1")


# --------------------------------------------------------------------------- Xero
@pytest.mark.django_db
def test_xero_intent_to_receive_correctly_signed_answers_200_empty(xero, queued):
    body = xero_body()
    response = post(xero, body, {"x-xero-signature": sign(XERO_KEY, body)})
    assert response.status_code == 200
    assert response.content == b""
    assert WebhookEvent.objects.count() == 0
    assert queued == []


@pytest.mark.django_db
def test_xero_intent_to_receive_wrongly_signed_answers_401_empty(xero, queued):
    body = xero_body()
    response = post(xero, body, {"x-xero-signature": sign("not-the-key", body)})
    assert response.status_code == 401
    assert response.content == b""


@pytest.mark.django_db
def test_xero_valid_signature_stores_one_event_and_queues_it_after_commit(
    xero, queued, django_capture_on_commit_callbacks
):
    body = xero_body(xero_event())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(xero, body, {"x-xero-signature": sign(XERO_KEY, body)})
    assert response.status_code == 200
    assert response.content == b""
    event = WebhookEvent.objects.get()
    assert (event.company_id, event.connection_id, event.system) == (
        xero.company_id,
        xero.pk,
        "xero",
    )
    assert (event.entity, event.external_id, event.operation) == (
        "contact",
        "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
        "update",
    )
    assert event.status == WebhookEvent.Status.RECEIVED
    assert len(callbacks) == 1  # queued on commit, not before
    assert queued == [event.pk]


@pytest.mark.django_db
def test_xero_bad_signature_401_and_nothing_stored(xero, queued):
    body = xero_body(xero_event())
    for headers in ({"x-xero-signature": sign("wrong", body)}, {}, {"x-xero-signature": "x"}):
        response = post(xero, body, headers)
        assert response.status_code == 401
    tampered = xero_body(xero_event(resource_id="other"))
    assert post(xero, tampered, {"x-xero-signature": sign(XERO_KEY, body)}).status_code == 401
    assert WebhookEvent.objects.count() == 0
    assert queued == []


@pytest.mark.django_db
def test_the_same_event_twice_is_stored_once(xero, queued, django_capture_on_commit_callbacks):
    body = xero_body(xero_event())
    with django_capture_on_commit_callbacks(execute=True):
        first = post(xero, body, {"x-xero-signature": sign(XERO_KEY, body)})
    redelivery = xero_body(xero_event(), sequence=2)  # Xero retries with new sequence numbers
    with django_capture_on_commit_callbacks(execute=True):
        second = post(xero, redelivery, {"x-xero-signature": sign(XERO_KEY, redelivery)})
    assert (first.status_code, second.status_code) == (200, 200)
    assert WebhookEvent.objects.count() == 1
    assert len(queued) == 1

    # Two changes in one delivery, one of them repeated inside it: two rows.
    both = xero_body(xero_event(), xero_event(resource_id="b"), xero_event(resource_id="b"))
    with django_capture_on_commit_callbacks(execute=True):
        post(xero, both, {"x-xero-signature": sign(XERO_KEY, both)})
    assert WebhookEvent.objects.count() == 2
    assert len(queued) == 2


@pytest.mark.django_db(transaction=True)
def test_database_refuses_a_duplicate_event_row(xero):
    WebhookEvent.objects.create(
        company=xero.company,
        connection=xero,
        system="xero",
        event_id="e1",
        entity="contact",
        external_id="1",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookEvent.objects.bulk_create(
            [
                WebhookEvent(
                    company=xero.company,
                    connection=xero,
                    system="xero",
                    event_id="e1",
                    entity="contact",
                    external_id="1",
                )
            ]
        )


@pytest.mark.django_db
def test_answer_is_quick_and_makes_no_outgoing_call(
    xero,
    queued,
    no_outgoing_calls,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    """Quick by construction, not by a stopwatch: 50 events are stored in a fixed handful of
    queries (not one per event) and no connector is built, so no outgoing call is made."""
    warm_up = xero_body()  # the first request of a process imports the URL conf and views
    assert post(xero, warm_up, {"x-xero-signature": sign(XERO_KEY, warm_up)}).status_code == 200
    events = [xero_event(resource_id=f"r{i}") for i in range(50)]
    body = xero_body(*events)
    with django_assert_max_num_queries(8), django_capture_on_commit_callbacks(execute=True):
        response = post(xero, body, {"x-xero-signature": sign(XERO_KEY, body)})
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 50
    assert len(queued) == 50  # processing is queued, not done in the request


@pytest.mark.django_db
def test_unknown_connection_or_system_is_401(xero, qbo, queued):
    body = xero_body(xero_event())
    headers = {"x-xero-signature": sign(XERO_KEY, body)}
    assert post(xero, body, headers, system="quickbooks").status_code == 401
    xero_pk = xero.pk
    xero.pk = 999999
    assert post(xero, body, headers).status_code == 401
    xero.pk = xero_pk
    assert post(xero, body, headers, system="tally").status_code == 401
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_connection_without_a_webhook_key_refuses_everything(tenants, queued):
    bare = connection_make(
        tenants.a, system="xero", name="Bare", settings={"tenant_id": TENANT}, credentials={}
    )
    body = xero_body()
    assert post(bare, body, {"x-xero-signature": sign("", body)}).status_code == 401


@pytest.mark.django_db
def test_webhook_is_throttled_per_connection(xero, queued, settings):
    settings.INTEGRATIONS_WEBHOOK_THROTTLE = "3/min"
    body = xero_body()
    codes = [
        post(xero, body, {"x-xero-signature": sign(XERO_KEY, body)}).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]


@pytest.mark.django_db
def test_forged_posts_are_throttled_per_address_and_never_use_up_the_connection(
    xero, queued, settings
):
    """The signature is checked first: a flood of forged posts from one address is cut off
    (429 without checking) and does not touch the connection's allowance, so Xero's genuine
    deliveries from another address still get through."""
    settings.INTEGRATIONS_WEBHOOK_THROTTLE = "3/min"
    settings.INTEGRATIONS_WEBHOOK_REJECTED_THROTTLE = "2/min"
    body = xero_body(xero_event())
    client = APIClient(enforce_csrf_checks=True)

    def send(signature, address):
        return client.generic(
            "POST",
            url(xero),
            body,
            content_type="application/json",
            headers={"x-xero-signature": signature},
            REMOTE_ADDR=address,
        ).status_code

    forged = [send(sign("guess", body), "203.0.113.9") for _ in range(4)]
    assert forged == [401, 401, 429, 429]
    genuine = [send(sign(XERO_KEY, body), "198.51.100.7") for _ in range(4)]
    assert genuine == [200, 200, 200, 429]  # the connection's own allowance, untouched


# --------------------------------------------------------------------------- QuickBooks
@pytest.mark.django_db
def test_quickbooks_signed_notification_is_stored_and_queued(
    qbo, queued, django_capture_on_commit_callbacks
):
    body = qbo_body(qbo_entity(), qbo_entity(name="Invoice", id_="130", operation="Create"))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(qbo, body, {"intuit-signature": sign(QBO_TOKEN, body)})
    assert response.status_code == 200
    rows = sorted(WebhookEvent.objects.values_list("entity", "external_id", "operation"))
    assert rows == [("contact", "58", "update"), ("invoice", "130", "create")]
    assert len(queued) == 2
    # The same notification again (QuickBooks retries until it gets a 200): nothing new.
    with django_capture_on_commit_callbacks(execute=True):
        post(qbo, body, {"intuit-signature": sign(QBO_TOKEN, body)})
    assert WebhookEvent.objects.count() == 2
    assert len(queued) == 2


@pytest.mark.django_db
def test_quickbooks_bad_signature_401(qbo, queued):
    body = qbo_body(qbo_entity())
    assert post(qbo, body, {"intuit-signature": sign("nope", body)}).status_code == 401
    assert post(qbo, body, {"x-xero-signature": sign(QBO_TOKEN, body)}).status_code == 401
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_quickbooks_cloudevents_payload_is_read_and_deduplicated_by_event_id(
    qbo, queued, django_capture_on_commit_callbacks
):
    def cloud_event(event_id, entity_type="qbo.customer.updated.v1", entity_id="58"):
        return {
            "specversion": "1.0",
            "id": event_id,
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": entity_type,
            "datacontenttype": "application/json",
            "time": "2026-11-21T02:40:10.000Z",
            "intuitentityid": entity_id,
            "intuitaccountid": REALM,
            "data": {},
        }

    body = json.dumps(
        [cloud_event("e-1"), cloud_event("e-2", "qbo.invoice.created.v1", "130")]
    ).encode()
    with django_capture_on_commit_callbacks(execute=True):
        assert post(qbo, body, {"intuit-signature": sign(QBO_TOKEN, body)}).status_code == 200
        assert post(qbo, body, {"intuit-signature": sign(QBO_TOKEN, body)}).status_code == 200
    rows = sorted(WebhookEvent.objects.values_list("entity", "external_id", "operation"))
    assert rows == [("contact", "58", "update"), ("invoice", "130", "create")]
    assert len(queued) == 2


# --------------------------------------------------------------------------- Zoho Books
@pytest.mark.django_db
def test_zoho_shared_secret_header(zoho, queued, django_capture_on_commit_callbacks):
    body = json.dumps(
        {"contact": {"contact_id": "460000000026049", "last_modified_time": "2026-11-21T10:00"}}
    ).encode()
    assert post(zoho, body, {"X-Kontor-Webhook-Secret": "wrong"}).status_code == 401
    assert post(zoho, body, {}).status_code == 401
    assert WebhookEvent.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        response = post(zoho, body, {"X-Kontor-Webhook-Secret": ZOHO_SECRET})
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.entity, event.external_id) == ("contact", "460000000026049")
    assert queued == [event.pk]


@pytest.mark.django_db
def test_zoho_authentic_but_unknown_body_is_400(zoho, queued):
    body = b'{"estimate": {"estimate_id": "1"}}'
    assert post(zoho, body, {"X-Kontor-Webhook-Secret": ZOHO_SECRET}).status_code == 400
    assert WebhookEvent.objects.count() == 0


# --------------------------------------------------------------------------- processing
@pytest.fixture
def live_xero(books, loopback_server, fast_retries, monkeypatch):  # noqa: F811
    """A Xero connection of company A on the fake Xero, with webhook_process run through
    Celery's eager apply whenever it is queued."""
    from accounting.integrations import webhook_tasks
    from tests.integrations.fakes.xero import FakeXero

    fake = FakeXero(tenant_id=TENANT)
    server = loopback_server(fake)
    tokens = fake.issue_tokens()
    connection = connection_make(
        books.a,
        system="xero",
        name="Xero live",
        settings={
            "tenant_id": TENANT,
            "base_url": server.url,
            "oauth": {"token_url": f"{server.url}/connect/token"},
            "rate_limit": {"rate_per_minute": 0, "max_concurrent": 0},
            "tax_types": {"15": "OUTPUT"},  # VAT 15% as Xero's output tax (pushes need it)
        },
        credentials={
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": time.time() + 1800,
            "webhook_key": XERO_KEY,
        },
    )
    ran = []

    def run_eagerly(pk):
        ran.append(pk)
        return webhook_tasks.webhook_process.apply(args=(pk,))

    monkeypatch.setattr(webhook_tasks.webhook_process, "delay", run_eagerly)
    return fake, connection, ran


def deliver(connection, *events, capture):
    body = xero_body(*events)
    with capture(execute=True):
        response = post(connection, body, {"x-xero-signature": sign(XERO_KEY, body)})
    assert response.status_code == 200
    return response


@pytest.mark.django_db
def test_contact_webhook_refetches_the_contact_and_updates_the_party(
    live_xero, django_capture_on_commit_callbacks
):
    from accounting.integrations.models import ExternalRef, SyncRun
    from invoicing.models import Party

    fake, connection, ran = live_xero
    contact = fake.add_contact("Meghna Traders", EmailAddress="ap@meghna.example")
    connection.cursors = {"contacts": "2026-11-01T00:00:00+00:00"}
    connection.save(update_fields=["cursors"])

    deliver(
        connection, xero_event(contact["ContactID"]), capture=django_capture_on_commit_callbacks
    )

    event = WebhookEvent.objects.get()
    assert ran == [event.pk]
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.attempts == 1
    # Re-fetched by id from Xero, with the tenant header; the webhook body was not trusted.
    fetched = fake.api_requests(f"Contacts/{contact['ContactID']}")
    assert len(fetched) == 1
    assert fetched[0]["headers"]["xero-tenant-id"] == TENANT
    ref = ExternalRef.objects.get(connection=connection, external_id=contact["ContactID"])
    party = Party.objects.get(pk=ref.local_id)
    assert (party.company_id, party.name, party.email) == (
        connection.company_id,
        "Meghna Traders",
        "ap@meghna.example",
    )
    run = SyncRun.objects.get(connection=connection)
    assert (run.sync_type, run.entity, run.status, run.records_succeeded) == (
        "webhook",
        "contacts",
        "succeeded",
        1,
    )
    connection.refresh_from_db()
    assert connection.cursors["contacts"] == "2026-11-01T00:00:00+00:00"  # untouched

    # Renamed in Xero: the next event updates the same party, no second one.
    fake.update_contact(contact["ContactID"], Name="Meghna Traders Ltd")
    deliver(
        connection,
        xero_event(contact["ContactID"], when="2026-11-21T11:00:00.000"),
        capture=django_capture_on_commit_callbacks,
    )
    party.refresh_from_db()
    assert party.name == "Meghna Traders Ltd"
    assert Party.objects.filter(company=connection.company, name__startswith="Meghna").count() == 1


@pytest.mark.django_db
def test_processing_twice_does_the_work_once(live_xero, django_capture_on_commit_callbacks):
    from accounting.integrations.webhook_tasks import webhook_process

    fake, connection, ran = live_xero
    contact = fake.add_contact("Karnaphuli Ltd")
    deliver(
        connection, xero_event(contact["ContactID"]), capture=django_capture_on_commit_callbacks
    )
    event = WebhookEvent.objects.get()
    assert webhook_process.apply(args=(event.pk,)).get() == "skipped"  # a redelivered task
    assert len(fake.api_requests("Contacts/")) == 1


@pytest.mark.django_db
def test_invoice_changed_in_xero_after_export_becomes_a_conflict(
    live_xero, django_capture_on_commit_callbacks
):
    from accounting.integrations.connectors import connector_for
    from accounting.integrations.models import ExternalRef, SyncError
    from tests.integrations.test_xero import invoice_payload

    fake, connection, ran = live_xero
    fake.add_account("200", "Sales")
    contact = fake.add_contact("Dhaka Retail Ltd")
    pushed = connector_for(connection).push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    ExternalRef.objects.create(
        company=connection.company,
        connection=connection,
        entity="invoice",
        local_type="invoicing.invoice",
        local_id="42",
        external_id=pushed.external_id,
        external_version=pushed.version,
    )
    # Our own export echoed back by Xero: same version, nothing to do.
    deliver(
        connection,
        xero_event(pushed.external_id, category="INVOICE"),
        capture=django_capture_on_commit_callbacks,
    )
    assert SyncError.objects.count() == 0
    # Someone edits it in Xero: a conflict error, and Kontor's invoice is left alone.
    fake.touch("invoices", pushed.external_id, Reference="edited in Xero")
    deliver(
        connection,
        xero_event(pushed.external_id, category="INVOICE", when="2026-11-21T12:00:00.000"),
        capture=django_capture_on_commit_callbacks,
    )
    error = SyncError.objects.get()
    assert (error.category, error.external_id, error.local_id, error.retryable) == (
        "conflict",
        pushed.external_id,
        "42",
        False,
    )
    assert list(WebhookEvent.objects.values_list("status", flat=True)) == ["processed"] * 2


@pytest.mark.django_db
def test_remote_failure_leaves_the_event_failed_for_a_retry(live_xero):
    from accounting.integrations.webhooks import webhook_event_process

    fake, connection, ran = live_xero
    contact = fake.add_contact("Surma Foods")
    event = WebhookEvent.objects.create(
        company=connection.company,
        connection=connection,
        system="xero",
        event_id="x1",
        entity="contact",
        external_id=contact["ContactID"],
        operation="update",
    )
    fake.fail(500, times=10)
    outcome = webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert (outcome.status, event.status, event.attempts) == ("failed", "failed", 1)
    assert outcome.retry_after and outcome.retry_after > 0
    fake.failures.clear()
    assert webhook_event_process(event_id=event.pk).status == "processed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 2)


@pytest.mark.django_db
def test_events_of_a_disabled_connection_are_ignored(live_xero):
    from accounting.integrations.webhooks import webhook_event_process

    fake, connection, ran = live_xero
    connection.enabled = False
    connection.save(update_fields=["enabled"])
    event = WebhookEvent.objects.create(
        company=connection.company,
        connection=connection,
        system="xero",
        event_id="x2",
        entity="contact",
        external_id="whatever",
    )
    assert webhook_event_process(event_id=event.pk).status == "ignored"
    assert fake.api_requests() == []


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_is_taken_again(live_xero):
    from datetime import timedelta

    from django.utils import timezone

    from accounting.integrations.webhooks import webhook_event_process

    fake, connection, ran = live_xero
    contact = fake.add_contact("Teesta Agro")
    event = WebhookEvent.objects.create(
        company=connection.company,
        connection=connection,
        system="xero",
        event_id="x3",
        entity="contact",
        external_id=contact["ContactID"],
        status="processing",
        attempts=1,
        claimed_at=timezone.now() - timedelta(minutes=5),
    )
    assert webhook_event_process(event_id=event.pk).status == "skipped"  # still being worked on
    WebhookEvent.objects.filter(pk=event.pk).update(
        claimed_at=timezone.now() - timedelta(minutes=31)
    )
    assert webhook_event_process(event_id=event.pk).status == "processed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 2)


@pytest.mark.django_db
def test_sweep_requeues_lost_events_only(xero, queued):
    from datetime import timedelta

    from django.utils import timezone

    from accounting.integrations.webhooks import webhook_events_requeue

    def make(event_id, **fields):
        event = WebhookEvent.objects.create(
            company=xero.company,
            connection=xero,
            system="xero",
            event_id=event_id,
            entity="contact",
            external_id=event_id,
        )
        WebhookEvent.objects.filter(pk=event.pk).update(**fields)
        return event.pk

    now = timezone.now()
    lost = make("lost", received_at=now - timedelta(minutes=11))
    make("fresh", received_at=now - timedelta(minutes=2))
    dead = make("dead", status="processing", claimed_at=now - timedelta(minutes=40))
    make("busy", status="processing", claimed_at=now - timedelta(minutes=3))
    make("done", status="processed", received_at=now - timedelta(hours=2))
    make("gave-up", status="failed", received_at=now - timedelta(hours=2))
    assert webhook_events_requeue(now=now) == 2
    assert sorted(queued) == sorted([lost, dead])


def test_webhook_tasks_are_routed_to_the_integrations_queue():
    from accounting.integrations import tasks
    from accounting.integrations.webhook_tasks import REQUEUE_TASK, WEBHOOK_PROCESS_TASK
    from config.celery_app import app

    # Workers autodiscover tasks.py only: it must import the webhook tasks to register them.
    assert tasks.webhook_process.name == WEBHOOK_PROCESS_TASK
    for name in (WEBHOOK_PROCESS_TASK, REQUEUE_TASK):
        assert name in app.tasks
        route = app.amqp.router.route({}, name, args=(1,), kwargs={})
        assert route["queue"].name == "integrations"
