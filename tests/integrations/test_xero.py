"""The Xero connector against the fake Xero on loopback (real HTTP, Xero's wire format)."""

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from accounting.integrations.connectors.base import (
    AuthFailure,
    ConflictFailure,
    InvoicePayload,
    JournalPayload,
    LinePayload,
    MalformedReply,
    NetworkFailure,
    NotFound,
    PaymentPayload,
    RateLimited,
    ServerFailure,
    ValidationFailure,
)
from accounting.integrations.connectors.xero import (
    MIN_LIMIT_PAUSE_SECONDS,
    XeroConnector,
    parse_xero_datetime,
)
from accounting.integrations.http import http_client_for
from accounting.integrations.models import ExternalRef
from accounting.integrations.ratelimit import limits_for
from tests.integrations.conftest import connection_make
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.tally import TimeoutTransport
from tests.integrations.fakes.xero import API, FakeXero


class Harness:
    def __init__(self, fake, server, connection):
        self.fake = fake
        self.server = server
        self.connection = connection
        self.sleeps: list[float] = []

    def connector(self, **http_kwargs) -> XeroConnector:
        http = http_client_for(
            self.connection,
            limiter=None,
            sleep=self.sleeps.append,
            rand=lambda: 0.5,
            **http_kwargs,
        )
        return XeroConnector(self.connection, http=http, sleep=self.sleeps.append)


@pytest.fixture
def xero(tenants, loopback_server, fast_retries):  # noqa: F811
    fake = FakeXero()
    server = loopback_server(fake)
    tokens = fake.issue_tokens()
    connection = connection_make(
        tenants.a,
        system="xero",
        name="Xero",
        settings={
            "tenant_id": fake.tenant_id,
            "base_url": server.url,
            "oauth": {"token_url": f"{server.url}/connect/token"},
            "tax_types": {"15": "OUTPUT", "0": "ZERORATEDOUTPUT"},
        },
        credentials={
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": time.time() + tokens["expires_in"],
        },
    )
    fake.add_account("200", "Sales")
    fake.add_account("090", "Business Bank Account", "BANK", Class="ASSET")
    fake.add_account("610", "Accounts Receivable", "CURRENT", Class="ASSET")
    return Harness(fake, server, connection)


def invoice_payload(contact_id, *, number="INV-0042", kind="invoice"):
    return InvoicePayload(
        local_id="17",
        number=number,
        kind=kind,
        date=date(2026, 11, 2),
        due_date=date(2026, 12, 2),
        contact_external_id=contact_id,
        contact_name="Dhaka Retail Ltd",
        currency="BDT",
        lines=[
            LinePayload(
                description="Widget",
                account_code="200",
                account_name="Sales",
                amount=Decimal("1000.00"),
                tax_amount=Decimal("150.00"),
                quantity=Decimal("4"),
                unit_price=Decimal("250.00"),
            )
        ],
        total=Decimal("1150.00"),
        tax_total=Decimal("150.00"),
        reference="PO-7",
    )


# --------------------------------------------------------------------------- connection
@pytest.mark.django_db
def test_connection_lists_tenants_and_finds_ours(xero):
    result = xero.connector().test_connection()
    assert result["success"] is True
    assert result["version"] == "2.0"
    assert isinstance(result["latency_ms"], int)
    assert "Kontor Demo (BD)" in result["message"]
    call = xero.fake.requests[-1]
    assert call["path"] == "/connections"
    assert call["headers"]["authorization"].startswith("Bearer xat-")


@pytest.mark.django_db
def test_connection_fails_when_our_tenant_is_not_connected(xero):
    xero.connection.settings["tenant_id"] = "another-organisation"
    result = xero.connector().test_connection()
    assert result["success"] is False
    assert "reconnect" in result["message"]


@pytest.mark.django_db
def test_every_api_call_carries_the_tenant_header(xero):
    connector = xero.connector()
    connector.fetch_accounts()
    connector.fetch_contacts()
    calls = xero.fake.api_requests()
    assert len(calls) == 2
    assert {c["headers"]["xero-tenant-id"] for c in calls} == {xero.fake.tenant_id}


@pytest.mark.django_db
def test_wrong_tenant_is_an_auth_failure(xero):
    xero.connection.settings["tenant_id"] = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(AuthFailure, match="organisation"):
        xero.connector().fetch_accounts()


def test_xero_limits_are_60_a_minute_and_5_at_once():
    class Conn:
        system = "xero"
        settings: dict = {}

    limits = limits_for(Conn())
    assert limits["rate_per_minute"] == 60
    assert limits["max_concurrent"] == 5


# --------------------------------------------------------------------------- reading
@pytest.mark.django_db
def test_accounts_map_code_name_type_and_status(xero):
    xero.fake.add_account("999", "Old account", "EXPENSE", Status="ARCHIVED")
    page = xero.connector().fetch_accounts()
    assert page.next_cursor is None
    by_code = {a.code: a for a in page.items}
    assert set(by_code) == {"200", "090", "610", "999"}
    assert (by_code["090"].name, by_code["090"].type, by_code["090"].active) == (
        "Business Bank Account",
        "BANK",
        True,
    )
    assert by_code["999"].active is False
    assert by_code["200"].version.startswith("/Date(")


@pytest.mark.django_db
def test_contacts_page_by_100(xero):
    for i in range(250):
        xero.fake.add_contact(f"Customer {i:03d}")
    connector = xero.connector()
    sizes, cursor, names = [], None, []
    while True:
        page = connector.fetch_contacts(cursor=cursor)
        sizes.append(len(page.items))
        names += [c.name for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [100, 100, 50]
    assert len(set(names)) == 250
    assert [c["query"]["page"] for c in xero.fake.api_requests("Contacts")] == ["1", "2", "3"]


@pytest.mark.django_db
def test_contact_fields_are_mapped(xero):
    contact = xero.fake.add_contact(
        "Jute Supplies",
        EmailAddress="sales@jute.example",
        TaxNumber="001745707-0402",
        IsCustomer=True,
        IsSupplier=True,
        phone="1711000000",
        address="12 Motijheel C/A",
    )
    found = xero.connector().fetch_contact(contact["ContactID"])
    assert (found.name, found.email, found.tax_id, found.kind) == (
        "Jute Supplies",
        "sales@jute.example",
        "001745707-0402",
        "both",
    )
    assert found.phone == "1711000000"
    assert found.address == "12 Motijheel C/A"
    assert found.version == contact["UpdatedDateUTC"]
    assert found.updated_at == parse_xero_datetime(contact["UpdatedDateUTC"])
    assert found.updated_at.tzinfo is not None


@pytest.mark.django_db
def test_unknown_contact_is_not_found(xero):
    with pytest.raises(NotFound) as caught:
        xero.connector().fetch_contact("4f1d7a2c-0000-0000-0000-000000000000")
    assert caught.value.external_id == "4f1d7a2c-0000-0000-0000-000000000000"


@pytest.mark.django_db
def test_incremental_contacts_send_if_modified_since(xero):
    old = xero.fake.add_contact("Old")
    # Pretend "Old" last changed an hour ago.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    old["UpdatedDateUTC"] = f"/Date({int(hour_ago.timestamp() * 1000)}+0000)/"
    xero.fake.add_contact("New")
    since = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    page = xero.connector().fetch_contacts(since=since)
    assert [c.name for c in page.items] == ["New"]
    assert xero.fake.api_requests("Contacts")[-1]["headers"]["if-modified-since"] == since


@pytest.mark.django_db
def test_fetch_changes_returns_contacts_and_invoices_and_a_new_cursor(xero):
    a = xero.fake.add_contact("A")
    invoice = xero.connector().push_invoice(invoice_payload(a["ContactID"]), ref=None)
    changes, cursor = xero.connector().fetch_changes(since=None)
    assert {(c.entity, c.external_id) for c in changes} == {
        ("contacts", a["ContactID"]),
        ("invoices", invoice.external_id),
    }
    assert cursor and cursor[:4].isdigit()
    # Nothing changed since: at most the records of the cursor's own second come back.
    later = xero.fake.add_contact("B")
    later_ms = int(later["UpdatedDateUTC"][6:-7])
    later["UpdatedDateUTC"] = f"/Date({later_ms + 2000}+0000)/"
    changes, _ = xero.connector().fetch_changes(since=cursor)
    assert ("contacts", later["ContactID"]) in {(c.entity, c.external_id) for c in changes}


# --------------------------------------------------------------------------- auth
@pytest.mark.django_db
def test_401_token_expired_refreshes_once_and_stores_the_rotated_refresh_token(xero):
    old_refresh = xero.connection.credentials["refresh_token"]
    xero.fake.fail(401)  # Xero: 401 TokenExpired
    page = xero.connector().fetch_accounts()
    assert len(page.items) == 3
    assert xero.fake.token_requests == 1
    xero.connection.refresh_from_db()
    stored = xero.connection.credentials
    assert stored["refresh_token"] == xero.fake.refresh_token != old_refresh
    assert stored["access_token"] in xero.fake.access_tokens
    assert xero.connection.needs_reauth is False
    # The old refresh token was single-use: presenting it again is refused by Xero.
    assert old_refresh in xero.fake.used_refresh_tokens


@pytest.mark.django_db
def test_expired_access_token_is_refreshed_before_the_call(xero):
    credentials = xero.connection.credentials
    credentials["expires_at"] = time.time() - 10  # 30 minutes are up
    xero.connection.set_credentials(credentials)
    xero.connection.save()
    xero.connector().fetch_accounts()
    assert xero.fake.token_requests == 1
    assert [r["path"] for r in xero.fake.requests] == ["/connect/token", f"{API}/Accounts"]


@pytest.mark.django_db
def test_reused_refresh_token_is_invalid_grant_and_needs_reauthorisation(xero):
    # Another installation (or a lost reply) rotated the token: ours is now an old one.
    xero.fake.issue_tokens()
    xero.fake.expire_access_tokens()
    with pytest.raises(AuthFailure):
        xero.connector().fetch_accounts()
    xero.connection.refresh_from_db()
    assert xero.connection.needs_reauth is True


# --------------------------------------------------------------------------- failures
@pytest.mark.django_db
def test_429_with_retry_after_waits_that_long(xero):
    xero.fake.fail(429, retry_after=2)
    assert len(xero.connector(max_delay_ms=5000).fetch_accounts().items) == 3
    assert xero.sleeps == [2.0]
    # Longer than the longest backoff: handed to the retry scheduler instead of slept through.
    xero.fake.fail(429, retry_after=60)
    with pytest.raises(RateLimited) as caught:
        xero.connector(max_delay_ms=5000).fetch_accounts()
    assert caught.value.retry_after == 60


@pytest.mark.django_db
def test_429_without_retry_after_backs_off(xero):
    xero.fake.fail(429)
    assert len(xero.connector().fetch_accounts().items) == 3
    assert len(xero.sleeps) == 1
    assert 0 < xero.sleeps[0] <= 0.005  # full jitter within RETRY_INITIAL_DELAY (1 ms in tests)


@pytest.mark.django_db
def test_429_that_persists_is_rate_limited(xero):
    xero.fake.fail(429, times=10, retry_after=1)
    with pytest.raises(RateLimited) as caught:
        xero.connector().fetch_accounts()
    assert caught.value.retryable is True


@pytest.mark.django_db
def test_500_is_retried_then_raised(xero):
    xero.fake.fail(500)
    assert len(xero.connector().fetch_accounts().items) == 3
    xero.fake.fail(500, times=10)
    with pytest.raises(ServerFailure) as caught:
        xero.connector().fetch_accounts()
    assert caught.value.retryable is True


@pytest.mark.django_db
def test_timeouts_are_retried_then_network_failure(xero):
    """A transport raises ReadTimeout (no sleep racing a client timeout): a read that times
    out once is retried; one that times out every time ends as NetworkFailure."""
    once = TimeoutTransport(times=1, forward=True)
    assert len(xero.connector(transport=once).fetch_accounts().items) == 3
    assert once.hits == 1
    always = TimeoutTransport(times=99)
    with pytest.raises(NetworkFailure):
        xero.connector(transport=always).fetch_accounts()
    assert always.hits == 3  # RETRY_MAX_ATTEMPTS in the tests


@pytest.mark.django_db
def test_malformed_reply_is_not_retried(xero):
    xero.fake.fail("malformed")
    with pytest.raises(MalformedReply) as caught:
        xero.connector().fetch_contacts()
    assert caught.value.retryable is False
    assert len(xero.fake.api_requests("Contacts")) == 1


@pytest.mark.django_db
def test_paging_failing_halfway_raises_on_that_page(xero):
    for i in range(150):
        xero.fake.add_contact(f"C{i}")
    xero.fake.fail(500, page=2, times=99)
    connector = xero.connector()
    first = connector.fetch_contacts()
    assert len(first.items) == 100 and first.next_cursor == "2"
    with pytest.raises(ServerFailure):
        connector.fetch_contacts(cursor=first.next_cursor)


@pytest.mark.django_db
def test_rate_limit_headers_slow_us_down_near_zero(xero):
    connector = xero.connector()
    xero.fake.min_remaining = 10
    connector.fetch_accounts()
    assert (connector.min_remaining, connector.day_remaining) == (9, xero.fake.day_remaining)
    assert xero.sleeps == []
    xero.fake.min_remaining = 2
    connector.fetch_accounts()  # Xero answers "1 left this minute"
    connector.fetch_accounts()  # so this one waits first
    assert xero.sleeps == [MIN_LIMIT_PAUSE_SECONDS]


@pytest.mark.django_db
def test_day_limit_used_up_stops_without_calling(xero):
    connector = xero.connector()
    xero.fake.day_remaining = 1
    connector.fetch_accounts()
    calls = len(xero.fake.requests)
    with pytest.raises(RateLimited) as caught:
        connector.fetch_accounts()
    assert caught.value.retry_after == 3600
    assert len(xero.fake.requests) == calls


# --------------------------------------------------------------------------- exports
@pytest.mark.django_db
def test_invoice_is_created_as_accrec(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    result = xero.connector().push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    stored = xero.fake.invoices[result.external_id]
    assert result.version == stored["UpdatedDateUTC"]
    assert (stored["Type"], stored["InvoiceNumber"], stored["Status"]) == (
        "ACCREC",
        "INV-0042",
        "AUTHORISED",
    )
    assert (stored["Date"], stored["DueDate"], stored["CurrencyCode"]) == (
        "2026-11-02",
        "2026-12-02",
        "BDT",
    )
    line = stored["LineItems"][0]
    assert (line["Quantity"], line["UnitAmount"], line["LineAmount"], line["TaxAmount"]) == (
        4.0,
        250.0,
        1000.0,
        150.0,
    )
    assert stored["Total"] == 1150.0
    assert xero.fake.api_requests("Invoices")[-1]["method"] == "POST"


@pytest.mark.django_db
def test_credit_note_goes_to_credit_notes(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    payload = invoice_payload(contact["ContactID"], number="CN-0003", kind="credit_note")
    result = xero.connector().push_invoice(payload, ref=None)
    stored = xero.fake.credit_notes[result.external_id]
    assert (stored["Type"], stored["CreditNoteNumber"]) == ("ACCRECCREDIT", "CN-0003")
    assert xero.fake.invoices == {}


@pytest.mark.django_db
def test_exported_invoice_is_updated_by_id_when_unchanged_in_xero(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    connector = xero.connector()
    first = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    ref = ExternalRef(external_id=first.external_id, external_version=first.version)
    second = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=ref)
    assert second.external_id == first.external_id
    assert second.version != first.version
    assert len(xero.fake.invoices) == 1
    assert xero.fake.api_requests("Invoices")[-1]["path"] == f"{API}/Invoices/{first.external_id}"


@pytest.mark.django_db
def test_invoice_changed_in_xero_is_a_conflict_not_an_overwrite(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    connector = xero.connector()
    first = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    xero.fake.touch("invoices", first.external_id, Reference="edited in Xero")
    ref = ExternalRef(external_id=first.external_id, external_version=first.version)
    posts_before = [r for r in xero.fake.api_requests("Invoices") if r["method"] == "POST"]
    with pytest.raises(ConflictFailure) as caught:
        connector.push_invoice(invoice_payload(contact["ContactID"]), ref=ref)
    assert caught.value.external_id == first.external_id
    assert caught.value.retryable is False
    posts_after = [r for r in xero.fake.api_requests("Invoices") if r["method"] == "POST"]
    assert posts_after == posts_before
    assert xero.fake.invoices[first.external_id]["Reference"] == "edited in Xero"


@pytest.mark.django_db
def test_validation_exception_lists_xeros_messages(xero):
    payload = invoice_payload("no-such-contact")
    with pytest.raises(ValidationFailure) as caught:
        xero.connector().push_invoice(payload, ref=None)
    assert "A Contact must be specified" in caught.value.message
    assert caught.value.detail["status"] == 400
    assert caught.value.retryable is False
    assert xero.fake.invoices == {}


@pytest.mark.django_db
def test_invoice_lost_reply_is_found_by_number(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    connector = xero.connector()
    pushed = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    found = connector.find_by_reference("invoices", "17", "INV-0042")
    assert found.external_id == pushed.external_id
    assert connector.find_by_reference("invoices", "18", "INV-9999") is None


@pytest.mark.django_db
def test_payment_is_put_once_and_not_edited(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    connector = xero.connector()
    invoice = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    payment = PaymentPayload(
        local_id="5",
        invoice_external_id=invoice.external_id,
        invoice_number="INV-0042",
        date=date(2026, 11, 20),
        amount=Decimal("1150.00"),
        account_code="090",
        account_name="Business Bank Account",
        reference="BEFTN 7781",
    )
    first = connector.push_payment(payment, ref=None)
    stored = xero.fake.payments[first.external_id]
    assert stored["Amount"] == 1150.0
    assert stored["Account"] == {"Code": "090"}
    assert stored["Invoice"] == {"InvoiceID": invoice.external_id}
    assert xero.fake.api_requests("Payments")[-1]["method"] == "PUT"
    ref = ExternalRef(external_id=first.external_id, external_version=first.version)
    again = connector.push_payment(payment, ref=ref)
    assert again.external_id == first.external_id
    assert len(xero.fake.payments) == 1


@pytest.mark.django_db
def test_journal_lines_are_signed_debit_positive(xero):
    journal = JournalPayload(
        local_id="JE-9",
        reference="JE-2026-0009",
        date=date(2026, 11, 30),
        memo="Accrued sales",
        lines=[
            LinePayload("Receivable", "610", "Accounts Receivable", Decimal("500.00"), debit=True),
            LinePayload("Sales", "200", "Sales", Decimal("500.00"), debit=False),
        ],
    )
    result = xero.connector().push_journal(journal, ref=None)
    stored = xero.fake.journals[result.external_id]
    assert [line["LineAmount"] for line in stored["JournalLines"]] == [500.0, -500.0]
    assert stored["Narration"] == "JE-2026-0009 Accrued sales"
    assert stored["Status"] == "POSTED"


@pytest.mark.django_db
def test_unbalanced_journal_is_refused(xero):
    journal = JournalPayload(
        local_id="JE-10",
        reference="JE-10",
        date=date(2026, 11, 30),
        memo="",
        lines=[
            LinePayload("a", "610", "AR", Decimal("500.00"), debit=True),
            LinePayload("b", "200", "Sales", Decimal("400.00"), debit=False),
        ],
    )
    with pytest.raises(ValidationFailure, match="debits must equal"):
        xero.connector().push_journal(journal, ref=None)


# --------------------------------------------------------------------------- through the engine
@pytest.fixture
def books_xero(books, xero):
    """Company A with its ledger and the Xero connection (limiter off: these tests count
    requests, not time)."""
    xero.connection.settings["rate_limit"] = {"rate_per_minute": 0, "max_concurrent": 0}
    xero.connection.save(update_fields=["settings"])
    return xero


def xero_parties(company):
    from invoicing.models import Party

    return Party.objects.filter(company=company, name__startswith="Xero customer ")


@pytest.mark.django_db
def test_engine_imports_contacts_then_only_changes(books_xero):
    from accounting.integrations.sync import sync_run

    xero = books_xero
    for i in range(130):
        xero.fake.add_contact(f"Xero customer {i:03d}", EmailAddress=f"c{i}@example.com")
    run = sync_run(connection=xero.connection, entity="contacts", direction="import")
    assert (run.status, run.records_succeeded) == ("succeeded", 130)
    assert xero_parties(xero.connection.company).count() == 130
    xero.connection.refresh_from_db()
    cursor = xero.connection.cursors["contacts"]
    assert "if-modified-since" not in xero.fake.api_requests("Contacts")[0]["headers"]

    time.sleep(1.1)  # Xero's If-Modified-Since has a resolution of one second
    changed = next(iter(xero.fake.contacts))
    xero.fake.update_contact(changed, Name="Xero customer renamed")
    again = sync_run(connection=xero.connection, entity="contacts", direction="import")
    assert (again.status, again.records_succeeded) == ("succeeded", 1)
    last = xero.fake.api_requests("Contacts")[-1]
    assert last["headers"]["if-modified-since"] == (
        parse_xero_datetime(cursor).strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert xero_parties(xero.connection.company).count() == 130


@pytest.mark.django_db
def test_engine_paging_failing_halfway_is_partial_and_the_rerun_duplicates_nothing(books_xero):
    from accounting.integrations.models import ExternalRef, SyncError
    from accounting.integrations.sync import sync_run

    xero = books_xero
    for i in range(250):
        xero.fake.add_contact(f"Xero customer {i:03d}")
    xero.fake.fail(500, path="Contacts", page=3, times=99)  # every attempt at page 3

    run = sync_run(connection=xero.connection, entity="contacts", direction="import")
    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 200, 0)
    assert xero_parties(xero.connection.company).count() == 200
    error = SyncError.objects.get(connection=xero.connection)
    assert (error.category, error.retryable) == ("server", True)
    xero.connection.refresh_from_db()
    assert "contacts" not in xero.connection.cursors

    xero.fake.failures.clear()
    rerun = sync_run(connection=xero.connection, entity="contacts", direction="import")
    assert (rerun.status, rerun.records_succeeded) == ("succeeded", 50)
    assert xero_parties(xero.connection.company).count() == 250
    assert ExternalRef.objects.filter(connection=xero.connection, entity="contact").count() == 250


@pytest.mark.django_db
def test_engine_run_survives_an_expired_token(books_xero):
    from accounting.integrations.sync import sync_run

    xero = books_xero
    xero.fake.add_contact("Xero customer 1")
    xero.fake.fail(401)
    run = sync_run(connection=xero.connection, entity="contacts", direction="import")
    assert (run.status, run.records_succeeded) == ("succeeded", 1)
    assert xero.fake.token_requests == 1


def test_next_cursor_is_the_latest_xero_time_seen_and_never_goes_back():
    class Conn:
        settings: dict = {}
        cursors = {"contacts": "2026-11-21T10:00:00"}

    connector = XeroConnector(Conn(), http=None)
    versions = ["/Date(1795255200000+0000)/", "/Date(1795258800500+0000)/"]  # 10:00, 11:00:00.5
    assert connector.import_since("contacts", versions, "2026-11-21T12:34:56+00:00") == (
        "2026-11-21T11:00:00"
    )
    assert connector.import_since("contacts", [], "2026-11-21T12:34:56+00:00") == (
        "2026-11-21T10:00:00"
    )
    older = ["/Date(1795000000000+0000)/"]
    assert connector.import_since("contacts", older, "x") == "2026-11-21T10:00:00"


# --------------------------------------------------------------------------- review fixes
def _payment(invoice_id, local_id="9"):
    return PaymentPayload(
        local_id=local_id,
        invoice_external_id=invoice_id,
        invoice_number="INV-0042",
        date=date(2026, 11, 5),
        amount=Decimal("1150.00"),
        account_code="090",
        account_name="Bank",
    )


def _journal(local_id="5"):
    return JournalPayload(
        local_id=local_id,
        reference=f"JE-{local_id}",
        date=date(2026, 11, 3),
        memo="accrual",
        lines=[
            LinePayload("d", "610", "AR", Decimal("10.00"), debit=True),
            LinePayload("c", "200", "Sales", Decimal("10.00"), debit=False),
        ],
    )


def _writes(xero, method=None):
    return [
        r
        for r in xero.fake.requests
        if r["method"] in ((method,) if method else ("PUT", "POST")) and API in r["path"]
    ]


@pytest.mark.django_db
def test_payment_put_that_times_out_is_not_repeated_in_the_call(xero):
    """PUT /Payments creates: a read timeout after Xero saved it must not be retried by the
    client (it would create a second payment within one call)."""
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    invoice = xero.connector().push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    transport = TimeoutTransport(when=lambda r: r.method == "PUT", forward=True, times=5)
    with pytest.raises(NetworkFailure):
        xero.connector(transport=transport).push_payment(_payment(invoice.external_id), ref=None)
    assert (transport.hits, len(xero.fake.payments), len(_writes(xero, "PUT"))) == (1, 1, 1)


@pytest.mark.django_db
def test_payment_and_journal_with_lost_replies_are_not_created_twice(xero):
    """Saved, then the reply lost (the fake cuts it off): the engine's next attempt sends the
    same body with the same Idempotency-Key and Xero answers with the record it has."""
    connector = xero.connector()
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    invoice = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)

    xero.fake.fail("drop", path="ManualJournals")
    with pytest.raises(NetworkFailure):
        connector.push_journal(_journal(), ref=None)
    assert connector.find_by_reference("journal", "5", "JE-5") is None
    journal = xero.connector().push_journal(_journal(), ref=None)
    assert len(xero.fake.journals) == 1 and journal.external_id in xero.fake.journals

    xero.fake.fail("drop", path="Payments")
    with pytest.raises(NetworkFailure):
        connector.push_payment(_payment(invoice.external_id), ref=None)
    payment = xero.connector().push_payment(_payment(invoice.external_id), ref=None)
    assert len(xero.fake.payments) == 1 and payment.external_id in xero.fake.payments

    keys = [r["headers"].get("idempotency-key") for r in _writes(xero)]
    assert all(keys) and keys[1] == keys[2] and keys[3] == keys[4]
    assert len(set(keys)) == 3  # invoice, journal, payment
    # Another payment (another local id, same figures) is another payment.
    xero.connector().push_payment(_payment(invoice.external_id, local_id="10"), ref=None)
    assert len(xero.fake.payments) == 2


@pytest.mark.django_db
def test_lines_keep_their_precision_and_a_discounted_line_goes_as_its_amount(xero):
    connector = xero.connector()
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    payload = InvoicePayload(
        local_id="18",
        number="INV-9",
        kind="invoice",
        date=date(2026, 11, 2),
        due_date=None,
        contact_external_id=contact["ContactID"],
        contact_name="",
        currency="BDT",
        lines=[
            LinePayload(
                "Widget",
                "200",
                "Sales",
                Decimal("10.00"),
                quantity=Decimal("3"),
                unit_price=Decimal("3.3333"),
            ),
            LinePayload(
                "Less 10%",
                "200",
                "Sales",
                Decimal("90.00"),
                quantity=Decimal("1"),
                unit_price=Decimal("100.00"),
            ),
            LinePayload(
                "Kg",
                "200",
                "Sales",
                Decimal("12.50"),
                quantity=Decimal("0.125"),
                unit_price=Decimal("100.00"),
            ),
            LinePayload(
                "Odd",
                "200",
                "Sales",
                Decimal("0.33"),
                quantity=Decimal("0.33333"),
                unit_price=Decimal("1.00"),
            ),
        ],
        total=Decimal("112.83"),
        tax_total=Decimal("0"),
    )
    result = connector.push_invoice(payload, ref=None)

    request = _writes(xero, "POST")[-1]
    assert request["query"]["unitdp"] == "4"
    sent = request["body"].decode()
    assert (
        '"Quantity": 3.0000, "TaxAmount": 0.00, "TaxType": "ZERORATEDOUTPUT", "UnitAmount": 3.3333'
        in sent
    )
    lines = [
        (line["Quantity"], line["UnitAmount"], line["LineAmount"])
        for line in xero.fake.invoices[result.external_id]["LineItems"]
    ]
    assert lines == [
        (3.0, 3.3333, 10.0),  # 9.9999 is 10.00 to the cent
        (1.0, 90.0, 90.0),  # discounted: quantity 1 at its amount
        (0.125, 100.0, 12.5),
        (1.0, 0.33, 0.33),  # a quantity finer than 4 places goes as its amount
    ]
    assert xero.fake.invoices[result.external_id]["SubTotal"] == 112.83


@pytest.mark.django_db
def test_fake_refuses_a_line_whose_quantity_times_price_is_not_its_amount(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    connector = xero.connector()
    body = {
        "Invoices": [
            {
                "Type": "ACCREC",
                "Contact": {"ContactID": contact["ContactID"]},
                "LineItems": [
                    {"Quantity": 3, "UnitAmount": 3.3333, "LineAmount": 10.0, "AccountCode": "200"}
                ],
            }
        ]
    }
    with pytest.raises(ValidationFailure, match="does not match"):
        connector._call("POST", f"{API}/Invoices", json_body=body)  # no unitdp: 3 x 3.33
    line = body["Invoices"][0]["LineItems"][0]
    line.update(TaxAmount=1.5, TaxType="NONE")
    with pytest.raises(ValidationFailure, match="0% TaxType 'NONE'"):
        connector._call("POST", f"{API}/Invoices", json_body=body, params={"unitdp": 4})
    line.update(TaxType="GST")
    with pytest.raises(ValidationFailure, match="TaxType code 'GST' does not exist"):
        connector._call("POST", f"{API}/Invoices", json_body=body, params={"unitdp": 4})
    del line["TaxType"]  # the account's default: Sales is OUTPUT (15%)
    connector._call("POST", f"{API}/Invoices", json_body=body, params={"unitdp": 4})


@pytest.mark.django_db
def test_vat_without_a_tax_type_mapping_is_refused(xero):
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    xero.connection.settings = {**xero.connection.settings, "tax_types": {"0": "NONE"}}
    with pytest.raises(ValidationFailure) as caught:
        xero.connector().push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    assert "No Xero tax type is mapped for VAT 15.00%" in caught.value.message
    assert xero.fake.invoices == {}
    # Without tax_types: no TaxType, Xero applies the account's default rate.
    xero.connection.settings = {
        k: v for k, v in xero.connection.settings.items() if k != "tax_types"
    }
    result = xero.connector().push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    [line] = xero.fake.invoices[result.external_id]["LineItems"]
    assert "TaxType" not in line and line["TaxAmount"] == 150.0


@pytest.mark.django_db
def test_update_without_a_stored_version_is_a_conflict(xero):
    connector = xero.connector()
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    first = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)
    ref = ExternalRef(
        company=xero.connection.company,
        connection=xero.connection,
        entity="invoice",
        local_type="invoicing.invoice",
        local_id="17",
        external_id=first.external_id,
        external_version="",
    )
    before = dict(xero.fake.invoices[first.external_id])
    with pytest.raises(ConflictFailure):
        connector.push_invoice(invoice_payload(contact["ContactID"], number="INV-0043"), ref=ref)
    assert xero.fake.invoices[first.external_id] == before


@pytest.mark.django_db
def test_contact_pages_keep_their_order_while_contacts_change(xero):
    for n in range(150):
        xero.fake.add_contact(f"Contact {n:03d}")
    connector = xero.connector()
    first = connector.fetch_contacts()
    # A contact on the first page is renamed in Xero while the import pages.
    xero.fake.update_contact(first.items[0].external_id, Name="Zzz Renamed")
    second = connector.fetch_contacts(cursor=first.next_cursor)
    seen = {c.external_id for c in first.items} | {c.external_id for c in second.items}
    assert len(seen) == 150
    assert xero.fake.requests[-1]["query"]["order"] == "ContactID ASC"


@pytest.mark.django_db
def test_an_edit_back_to_an_earlier_body_is_applied_not_replayed(xero):
    connector = xero.connector()
    contact = xero.fake.add_contact("Dhaka Retail Ltd")
    first = connector.push_invoice(invoice_payload(contact["ContactID"]), ref=None)

    def ref(version):
        return ExternalRef(
            company=xero.connection.company,
            connection=xero.connection,
            entity="invoice",
            local_type="invoicing.invoice",
            local_id="17",
            external_id=first.external_id,
            external_version=version,
        )

    original = invoice_payload(contact["ContactID"])
    changed = InvoicePayload(**{**original.__dict__, "reference": "PO-8"})
    one = connector.push_invoice(original, ref=ref(first.version))
    two = connector.push_invoice(changed, ref=ref(one.version))
    connector.push_invoice(original, ref=ref(two.version))

    assert xero.fake.invoices[first.external_id]["Reference"] == "PO-7"
    keys = [r["headers"]["idempotency-key"] for r in _writes(xero, "POST")]
    assert len(set(keys)) == len(keys) == 4
