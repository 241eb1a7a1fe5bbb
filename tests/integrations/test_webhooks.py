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
def test_answer_is_quick_and_makes_no_outgoing_call(xero, queued, no_outgoing_calls):
    events = [xero_event(resource_id=f"r{i}") for i in range(50)]
    body = xero_body(*events)
    started = time.perf_counter()
    response = post(xero, body, {"x-xero-signature": sign(XERO_KEY, body)})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 50
    assert elapsed < 0.5, f"answered in {elapsed:.3f} s"


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
