"""The QuickBooks Online connector against the fake QuickBooks server (real HTTP on loopback)."""

import time
from datetime import date, datetime, timedelta
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
from accounting.integrations.connectors.quickbooks import QuickBooksConnector, api_base_url
from accounting.integrations.models import (
    ExternalRef,
    IntegrationConnection,
    SyncError,
    WebhookEvent,
)
from accounting.integrations.sync import sync_run
from accounting.integrations.webhooks import webhook_event_process
from invoicing.models import Party
from tests.integrations.conftest import Sleeps, connection_make, http_for, ref_for
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.quickbooks import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM_ID,
    REFRESH_TOKEN,
    FakeQuickBooks,
)
from tests.integrations.fakes.tally import TimeoutTransport

pytestmark = pytest.mark.django_db


@pytest.fixture
def qbo(loopback_server):  # noqa: F811
    fake = FakeQuickBooks()
    fake.server_url = loopback_server(fake).url
    fake.vat15 = fake.add_tax_code("VAT 15%", "15")
    fake.vat0 = fake.add_tax_code("Zero-rated", "0")
    return fake


@pytest.fixture
def qbo_connection(tenants, qbo):
    return connection_make(
        tenants.a,
        system="quickbooks",
        name="QuickBooks",
        settings={
            "realm_id": REALM_ID,
            "environment": "sandbox",
            "base_url": qbo.server_url,
            "page_size": 200,
            "oauth": {
                "token_url": qbo.server_url + "/oauth2/v1/tokens/bearer",
                "authorize_url": qbo.server_url + "/connect/oauth2",
            },
            "rate_limit": {"rate_per_minute": 60000, "burst": 1000, "max_concurrent": 10},
            "tax_codes": {"15": qbo.vat15["Id"], "0": qbo.vat0["Id"]},
        },
        credentials={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "access_token": qbo.issue_access_token(),
            "refresh_token": REFRESH_TOKEN,
            "expires_at": time.time() + 3600,
        },
    )


def connector_for(connection, sleeps=None, **options):
    now = options.pop("now", None)
    return QuickBooksConnector(connection, http=http_for(connection, sleeps, **options), now=now)


def invoice_payload(number="INV-0001", *, customer_id, amount="1000.00", tax="150.00"):
    return InvoicePayload(
        local_id="41",
        number=number,
        kind="invoice",
        date=date(2026, 1, 10),
        due_date=date(2026, 2, 9),
        contact_external_id=customer_id,
        contact_name="",
        currency="USD",
        lines=[
            LinePayload(
                description="Consulting, January",
                account_code="4000",
                account_name="Sales",
                amount=Decimal(amount),
                quantity=Decimal("4"),
                unit_price=Decimal(amount) / 4,
                tax_amount=Decimal(tax),
            )
        ],
        total=Decimal(amount) + Decimal(tax),
        tax_total=Decimal(tax),
        reference="SO-77",
    )


def api_calls(qbo):
    return [r for r in qbo.requests if r.path.startswith("/v3/")]


# --- base URL and requests ---------------------------------------------------------------------


def test_base_url_per_environment_and_override():
    assert (
        api_base_url({"realm_id": "123", "environment": "production"})
        == "https://quickbooks.api.intuit.com/v3/company/123"
    )
    assert (
        api_base_url({"realm_id": "123", "environment": "sandbox"})
        == "https://sandbox-quickbooks.api.intuit.com/v3/company/123"
    )
    assert (
        api_base_url({"realm_id": "123", "base_url": "http://127.0.0.1:9/"})
        == "http://127.0.0.1:9/v3/company/123"
    )
    with pytest.raises(ValidationFailure):
        api_base_url({"environment": "production"})


def test_import_1000_customers_with_startposition_paging_and_minorversion(qbo, qbo_connection):
    qbo.add_customers(1000)
    connector = connector_for(qbo_connection)
    pages, cursor = [], None
    while True:
        page = connector.fetch_contacts(cursor=cursor)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break

    # QuickBooks gives no total: the page after the last full one comes back empty.
    assert [len(p) for p in pages] == [200, 200, 200, 200, 200, 0]
    assert len({c.external_id for page in pages for c in page}) == 1000
    statements = [c.query["query"] for c in qbo.calls("/query")]
    assert statements[0] == "SELECT * FROM Customer ORDERBY Id STARTPOSITION 1 MAXRESULTS 200"
    assert [s.split("STARTPOSITION ")[1].split()[0] for s in statements] == [
        "1",
        "201",
        "401",
        "601",
        "801",
        "1001",
    ]
    assert all(c.query.get("minorversion") == "75" for c in api_calls(qbo))
    assert all(c.headers["authorization"].startswith("Bearer ") for c in api_calls(qbo))
    first = pages[0][0]
    assert first.name == "Customer 00001"
    assert first.email == "customer1@example.com"
    assert first.phone == "+8801710000001"
    assert first.version == "0"  # the SyncToken


def test_accounts_import(qbo, qbo_connection):
    chart = qbo.seed_chart()
    page = connector_for(qbo_connection).fetch_accounts()
    by_code = {a.code: a for a in page.items}
    assert set(by_code) == set(chart)
    assert by_code["1100"].type == "Bank"
    assert by_code["1100"].external_id == chart["1100"]["Id"]


def test_test_connection(qbo, qbo_connection):
    result = connector_for(qbo_connection).test_connection()
    assert result["success"] is True
    assert result["version"] == "QuickBooks Online API v3 (minorversion 75)"
    assert "Kontor Fake Company" in result["message"]


# --- OAuth -------------------------------------------------------------------------------------


def test_401_refreshes_and_stores_the_rotated_refresh_token(qbo, qbo_connection):
    qbo.add_customers(2)
    qbo.expire_access_tokens()

    page = connector_for(qbo_connection).fetch_contacts()

    assert len(page.items) == 2
    assert qbo.tokens.refreshes == 1
    assert [c.status for c in qbo.calls("/query")] == [401, 200]
    stored = IntegrationConnection.objects.get(pk=qbo_connection.pk).credentials
    assert stored["refresh_token"] == qbo.tokens.refresh  # the newest one
    assert stored["refresh_token"] != REFRESH_TOKEN  # the old one is dead now
    assert stored["access_token"] in qbo.tokens.access


def test_second_refresh_uses_the_rotated_token(qbo, qbo_connection):
    qbo.expire_access_tokens()
    connector_for(qbo_connection).fetch_contacts()
    qbo.expire_access_tokens()
    connection = IntegrationConnection.objects.get(pk=qbo_connection.pk)
    connector_for(connection).fetch_contacts()
    assert qbo.tokens.refreshes == 2


def test_invalid_grant_needs_reauthorisation(qbo, qbo_connection):
    qbo.expire_access_tokens()
    qbo.revoke_refresh_token()
    with pytest.raises(AuthFailure):
        connector_for(qbo_connection).fetch_contacts()
    assert IntegrationConnection.objects.get(pk=qbo_connection.pk).needs_reauth is True


# --- retries -----------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured(qbo, qbo_connection):
    qbo.add_customers(2)
    qbo.fail(429, path="/query", retry_after="4")
    sleeps = Sleeps()
    assert len(connector_for(qbo_connection, sleeps).fetch_contacts().items) == 2
    assert sleeps == [4.0]


def test_429_without_retry_after_backs_off(qbo, qbo_connection):
    qbo.add_customers(2)
    qbo.fail(429, path="/query", times=2)
    sleeps = Sleeps()
    assert len(connector_for(qbo_connection, sleeps).fetch_contacts().items) == 2
    assert sleeps == [0.1, 0.2]


def test_429_that_persists_is_rate_limited(qbo, qbo_connection):
    qbo.fail(429, path="/query", times=99)
    with pytest.raises(RateLimited) as caught:
        connector_for(qbo_connection).fetch_contacts()
    assert caught.value.category == "rate_limit"
    assert caught.value.retryable is True


def test_500_on_a_query_is_retried(qbo, qbo_connection):
    qbo.add_customers(2)
    qbo.fail(500, path="/query", times=2)
    assert len(connector_for(qbo_connection).fetch_contacts().items) == 2
    assert [c.status for c in qbo.calls("/query")] == [500, 500, 200]


def test_500_on_a_create_is_not_repeated_blindly(qbo, qbo_connection):
    """A POST that failed with 500 may have created the invoice: the client raises (retryable)
    and the engine looks the invoice up by its number before pushing again."""
    customer = qbo.add_customer("Meghna Traders")
    qbo.fail(500, path="/invoice", method="POST")
    connector = connector_for(qbo_connection)
    with pytest.raises(ServerFailure) as caught:
        connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    assert caught.value.retryable is True
    assert len(qbo.calls("/invoice", "POST")) == 1
    assert connector.find_by_reference("invoices", "41", "INV-0001") is None


def test_timeout_is_a_network_failure(qbo, qbo_connection):
    """Reads time out every time (a transport that raises ReadTimeout: no wall-clock race):
    three attempts, then NetworkFailure."""
    qbo.add_customers(2)
    transport = TimeoutTransport(times=99)
    with pytest.raises(NetworkFailure) as caught:
        connector_for(qbo_connection, transport=transport).fetch_contacts()
    assert caught.value.retryable is True
    assert transport.hits == 3


def test_a_read_that_times_out_once_is_retried(qbo, qbo_connection):
    qbo.add_customers(2)
    transport = TimeoutTransport(times=1, forward=True)
    assert len(connector_for(qbo_connection, transport=transport).fetch_contacts().items) == 2
    assert (transport.hits, len(qbo.calls("/query"))) == (1, 2)


def test_malformed_reply_is_not_retried(qbo, qbo_connection):
    qbo.fail("malformed", path="/query", times=99)
    sleeps = Sleeps()
    with pytest.raises(MalformedReply) as caught:
        connector_for(qbo_connection, sleeps).fetch_contacts()
    assert caught.value.retryable is False
    assert len(qbo.calls("/query")) == 1
    assert sleeps == []


def test_paging_that_fails_at_startposition_401(qbo, qbo_connection):
    qbo.add_customers(1000)
    qbo.fail(500, path="/query", start=401, times=3)
    connector = connector_for(qbo_connection)
    cursor = connector.fetch_contacts().next_cursor
    cursor = connector.fetch_contacts(cursor=cursor).next_cursor
    assert cursor == "401"
    with pytest.raises(ServerFailure):
        connector.fetch_contacts(cursor=cursor)
    assert connector.fetch_contacts(cursor=cursor).items[0].name == "Customer 00401"


# --- errors ------------------------------------------------------------------------------------


def test_object_not_found_610(qbo, qbo_connection):
    with pytest.raises(NotFound) as caught:
        connector_for(qbo_connection).fetch_contact("4040")
    assert caught.value.detail["code"] == "610"
    assert caught.value.category == "not_found"


def test_fetch_contact(qbo, qbo_connection):
    customer = qbo.add_customer(
        "Meghna Traders",
        PrimaryEmailAddr={"Address": "ap@meghna.example"},
        BillAddr={"Line1": "12 Motijheel", "City": "Dhaka", "Country": "BD"},
    )
    contact = connector_for(qbo_connection).fetch_contact(customer["Id"])
    assert contact.name == "Meghna Traders"
    assert contact.address == "12 Motijheel, Dhaka, BD"


# --- export ------------------------------------------------------------------------------------


def test_export_invoice_twice_updates_with_the_synctoken(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)

    first = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    second = connector.push_invoice(
        invoice_payload(customer_id=customer["Id"], amount="1200.00", tax="180.00"),
        ref=ref_for(qbo_connection, first),
    )

    assert (first.version, second.version) == ("0", "1")
    assert second.external_id == first.external_id
    assert len(qbo.store["Invoice"]) == 1
    invoice = qbo.store["Invoice"][first.external_id]
    assert invoice["DocNumber"] == "INV-0001"
    assert invoice["TotalAmt"] == 1380.0  # 1,200.00 + VAT 15% 180.00 (computed by QuickBooks)
    update = qbo.calls("/invoice", "POST")[1].body
    assert (update["Id"], update["SyncToken"]) == (first.external_id, "0")
    line = update["Line"][0]
    assert line["DetailType"] == "SalesItemLineDetail"
    assert line["SalesItemLineDetail"] == {
        "ItemRef": {"value": "1"},
        "Qty": 4,
        "UnitPrice": 300,
        "TaxCodeRef": {"value": qbo.vat15["Id"]},
    }


def test_discounted_line_goes_without_qty_and_unit_price(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    line = LinePayload(
        "Widgets less 10%",
        "4000",
        "Sales",
        Decimal("90.00"),
        quantity=Decimal("2"),
        unit_price=Decimal("50.00"),
    )
    payload = invoice_payload(customer_id=customer["Id"], tax="0")
    payload = InvoicePayload(**{**payload.__dict__, "lines": [line], "total": Decimal("90.00")})
    result = connector_for(qbo_connection).push_invoice(payload, ref=None)
    [sent] = qbo.store["Invoice"][result.external_id]["Line"]
    assert sent["Amount"] == 90.0
    # No Qty/UnitPrice; zero VAT goes with the zero-rated code (tax_codes is configured).
    assert sent["SalesItemLineDetail"] == {
        "ItemRef": {"value": "1"},
        "TaxCodeRef": {"value": qbo.vat0["Id"]},
    }


def test_stale_synctoken_5010_is_a_conflict_and_nothing_is_overwritten(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    first = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    qbo.edit("Invoice", first.external_id, PrivateNote="changed in QuickBooks")

    with pytest.raises(ConflictFailure) as caught:
        connector.push_invoice(
            invoice_payload(customer_id=customer["Id"], amount="1.00", tax="0.15"),
            ref=ref_for(qbo_connection, first),
        )

    assert caught.value.detail["code"] == "5010"
    assert caught.value.retryable is False
    invoice = qbo.store["Invoice"][first.external_id]
    assert invoice["SyncToken"] == "1"
    assert invoice["PrivateNote"] == "changed in QuickBooks"
    assert invoice["TotalAmt"] == 1150.0
    assert len(qbo.calls("/invoice", "POST")) == 2  # one create, one refused update, no retry


def test_customer_found_or_created_by_display_name(qbo, qbo_connection):
    existing = qbo.add_customer("O'Brien & Sons")
    connector = connector_for(qbo_connection)
    payload = invoice_payload(customer_id="")
    named = InvoicePayload(**{**payload.__dict__, "contact_name": "O'Brien & Sons"})
    result = connector.push_invoice(named, ref=None)
    assert qbo.store["Invoice"][result.external_id]["CustomerRef"]["value"] == existing["Id"]

    fresh = InvoicePayload(**{**payload.__dict__, "number": "INV-2", "contact_name": "New Co"})
    result = connector.push_invoice(fresh, ref=None)
    customer_id = qbo.store["Invoice"][result.external_id]["CustomerRef"]["value"]
    assert qbo.store["Customer"][customer_id]["DisplayName"] == "New Co"


def test_payment_links_the_invoice_and_deposits_to_the_mapped_account(qbo, qbo_connection):
    chart = qbo.seed_chart()
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    invoice = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    result = connector.push_payment(
        PaymentPayload(
            local_id="9",
            invoice_external_id=invoice.external_id,
            invoice_number="INV-0001",
            date=date(2026, 1, 20),
            amount=Decimal("1150.00"),
            account_code="1100",
            account_name="Checking",
        ),
        ref=None,
    )
    payment = qbo.store["Payment"][result.external_id]
    assert payment["TotalAmt"] == 1150.0
    assert payment["CustomerRef"]["value"] == customer["Id"]
    assert payment["DepositToAccountRef"] == {"value": chart["1100"]["Id"]}
    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice.external_id, "TxnType": "Invoice"}]


def test_journal_entry_lines_post_debit_and_credit_to_account_refs(qbo, qbo_connection):
    chart = qbo.seed_chart()
    journal = JournalPayload(
        local_id="5",
        reference="JE-2026-0005",
        date=date(2026, 1, 31),
        memo="Office supplies",
        lines=[
            LinePayload("Paper", "5000", "Office Supplies", Decimal("250.50"), debit=True),
            LinePayload("Paper", "1100", "Checking", Decimal("250.50"), debit=False),
        ],
    )
    result = connector_for(qbo_connection).push_journal(journal, ref=None)
    saved = qbo.store["JournalEntry"][result.external_id]
    details = [line["JournalEntryLineDetail"] for line in saved["Line"]]
    assert [(d["PostingType"], d["AccountRef"]["value"]) for d in details] == [
        ("Debit", chart["5000"]["Id"]),
        ("Credit", chart["1100"]["Id"]),
    ]
    assert [line["Amount"] for line in saved["Line"]] == [250.5, 250.5]


def test_unbalanced_journal_is_refused_as_validation(qbo, qbo_connection):
    qbo.seed_chart()
    journal = JournalPayload(
        local_id="6",
        reference="JE-6",
        date=date(2026, 1, 31),
        memo="",
        lines=[
            LinePayload("x", "5000", "Office Supplies", Decimal("10.00"), debit=True),
            LinePayload("x", "1100", "Checking", Decimal("9.99"), debit=False),
        ],
    )
    with pytest.raises(ValidationFailure) as caught:
        connector_for(qbo_connection).push_journal(journal, ref=None)
    assert caught.value.detail["code"] == "6000"


def test_find_by_reference_uses_the_docnumber(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    pushed = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    found = connector.find_by_reference("invoices", "41", "INV-0001")
    assert (found.external_id, found.version) == (pushed.external_id, "0")


def test_fetch_invoice_for_a_webhook_reports_its_synctoken(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    pushed = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    qbo.edit("Invoice", pushed.external_id, PrivateNote="edited")
    change = connector.fetch_invoice(pushed.external_id)
    assert (change.entity, change.external_id, change.version) == (
        "invoices",
        pushed.external_id,
        "1",
    )
    with pytest.raises(NotFound):
        connector.fetch_invoice("4040")


# --- change data capture -----------------------------------------------------------------------


def test_cdc_reports_creates_updates_and_deletes_since_the_cursor(qbo, qbo_connection):
    customers = qbo.add_customers(3)
    connector = connector_for(qbo_connection)
    connector.now = qbo.now
    changes, cursor = connector.fetch_changes(since="2026-01-05T00:00:00-08:00")
    assert {(c.entity, c.external_id, c.operation) for c in changes} == {
        ("contacts", c["Id"], "create") for c in customers
    }
    assert cursor == "2026-01-05T09:00:04.500000-08:00"  # the reply's server time

    qbo.edit("Customer", customers[0]["Id"], DisplayName="Renamed Ltd")
    qbo.remove("Customer", customers[1]["Id"])
    invoice = connector.push_invoice(invoice_payload(customer_id=customers[2]["Id"]), ref=None)
    changes, new_cursor = connector.fetch_changes(since=cursor)

    assert {(c.entity, c.external_id, c.operation, c.version) for c in changes} == {
        ("contacts", customers[0]["Id"], "update", "1"),
        ("contacts", customers[1]["Id"], "delete", ""),
        ("invoices", invoice.external_id, "create", "0"),
    }
    assert new_cursor > cursor
    cdc = qbo.calls("/cdc")[-1]
    assert cdc.query["entities"] == "Customer,Account,Invoice,CreditMemo,Payment,JournalEntry"
    assert cdc.query["changedSince"] == cursor
    assert cdc.query["minorversion"] == "75"


# --- end to end through the sync engine --------------------------------------------------------


def imported_parties(company):
    return Party.objects.filter(company=company, name__startswith="Customer ")


@pytest.fixture
def books_qbo(books, qbo, qbo_connection, fast_retries):
    """Company A with its ledger, the QuickBooks connection, and retries that do not wait."""
    qbo.seed_chart()
    return qbo_connection


def test_engine_imports_1000_customers_into_parties_once(qbo, books_qbo):
    qbo.add_customers(1000)

    run = sync_run(connection=books_qbo, entity="contacts", direction="import")

    assert (run.status, run.records_processed, run.records_succeeded) == ("succeeded", 1000, 1000)
    assert imported_parties(books_qbo.company).count() == 1000
    assert ExternalRef.objects.filter(connection=books_qbo, entity="contact").count() == 1000
    assert len(qbo.calls("/query")) == 6  # five full pages and the empty one after them
    books_qbo.refresh_from_db()
    last = qbo.store["Customer"][str(len(qbo.store["Item"]) + 6 + 1000)]
    latest = datetime.fromisoformat(last["MetaData"]["LastUpdatedTime"])
    assert books_qbo.cursors["contacts"] == (latest - timedelta(minutes=5)).isoformat()

    again = sync_run(connection=books_qbo, entity="contacts", direction="import")
    assert (again.status, again.records_processed) == ("succeeded", 0)
    assert "WHERE MetaData.LastUpdatedTime >= " in qbo.calls("/query")[-1].query["query"]
    assert imported_parties(books_qbo.company).count() == 1000


def test_engine_startposition_401_failing_ends_partial_and_the_rerun_completes(qbo, books_qbo):
    qbo.add_customers(1000)
    qbo.fail(500, path="/query", start=401, times=3)

    run = sync_run(connection=books_qbo, entity="contacts", direction="import")

    assert (run.status, run.records_succeeded) == ("partial", 400)
    assert SyncError.objects.get(connection=books_qbo).category == "server"
    rerun = sync_run(connection=books_qbo, entity="contacts", direction="import")
    assert (rerun.status, rerun.records_succeeded) == ("succeeded", 600)
    assert imported_parties(books_qbo.company).count() == 1000
    assert ExternalRef.objects.filter(connection=books_qbo, entity="contact").count() == 1000


def test_engine_exports_an_invoice_twice_as_one_quickbooks_invoice(qbo, books_qbo, sales):
    invoice = sales.approved(sales.line(quantity="2", unit_price="100.00"))

    sync_run(connection=books_qbo, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=books_qbo, local_type="invoicing.invoice")
    assert ref.external_version == "0"
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="changed-locally")
    second = sync_run(connection=books_qbo, entity="invoices", direction="export")

    assert (second.status, second.records_succeeded) == ("succeeded", 1)
    [(external_id, remote)] = qbo.store["Invoice"].items()
    assert (remote["DocNumber"], remote["SyncToken"]) == (invoice.number[:21], "1")
    assert remote["TotalAmt"] == 230.0  # 200.00 + VAT 30.00
    customer = qbo.store["Customer"][remote["CustomerRef"]["value"]]
    assert customer["DisplayName"] == "Dhaka Retail Ltd"
    update = qbo.calls("/invoice", "POST")[-1].body
    assert (update["Id"], update["SyncToken"]) == (external_id, "0")
    ref.refresh_from_db()
    assert ref.external_version == "1"


def test_engine_stale_synctoken_is_a_conflict_error_and_local_is_not_overwritten(
    qbo, books_qbo, sales
):
    sales.approved()
    sync_run(connection=books_qbo, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=books_qbo, local_type="invoicing.invoice")
    qbo.edit("Invoice", ref.external_id, PrivateNote="changed in QuickBooks")
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="changed-locally")

    run = sync_run(connection=books_qbo, entity="invoices", direction="export")

    assert (run.status, run.records_failed) == ("failed", 1)
    error = SyncError.objects.get(connection=books_qbo)
    assert (error.category, error.retryable) == ("conflict", False)
    assert "Stale Object Error" in error.message
    assert error.detail["code"] == "5010"
    ref.refresh_from_db()
    assert (ref.external_version, ref.last_synced_hash) == ("0", "changed-locally")
    remote = qbo.store["Invoice"][ref.external_id]
    assert (remote["SyncToken"], remote["PrivateNote"]) == ("1", "changed in QuickBooks")


def test_webhook_for_a_customer_re_fetches_it_and_updates_its_party(qbo, books_qbo):
    """A QuickBooks change notification, once stored, is processed by re-fetching the customer
    through this connector from the fake and applying it through the engine."""
    [customer] = qbo.add_customers(1)
    sync_run(connection=books_qbo, entity="contacts", direction="import")
    qbo.edit("Customer", customer["Id"], PrimaryEmailAddr={"Address": "billing@renamed.example"})
    event = WebhookEvent.objects.create(
        company=books_qbo.company,
        connection=books_qbo,
        system="quickbooks",
        event_id="qbo-test-1",
        entity="contact",
        external_id=customer["Id"],
        operation="Update",
    )

    outcome = webhook_event_process(event_id=event.pk)

    assert outcome.status == "processed"
    party = Party.objects.get(company=books_qbo.company, name="Customer 00001")
    assert party.email == "billing@renamed.example"
    assert qbo.calls(f"/customer/{customer['Id']}", "GET")
    ref = ExternalRef.objects.get(connection=books_qbo, external_id=customer["Id"])
    assert ref.external_version == "1"


# --- review fixes: lost replies, CDC cut, tax codes, unknown SyncToken ----------------------


def _payment(invoice_id, local_id="9"):
    return PaymentPayload(
        local_id=local_id,
        invoice_external_id=invoice_id,
        invoice_number="INV-0001",
        date=date(2026, 1, 20),
        amount=Decimal("1150.00"),
        account_code="1100",
        account_name="Checking",
    )


def test_payment_saved_with_its_reply_lost_is_not_created_twice(qbo, qbo_connection):
    """QuickBooks saves the payment and the reply is cut off: the client does not repeat the
    POST; the engine's next attempt (find_by_reference cannot tell for payments) sends the same
    requestid and QuickBooks answers with the payment it already has."""
    qbo.seed_chart()
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    invoice = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    qbo.fail("drop", path="/payment", method="POST")

    with pytest.raises(NetworkFailure):
        connector.push_payment(_payment(invoice.external_id), ref=None)
    assert len(qbo.store["Payment"]) == 1  # saved, reply lost
    assert len(qbo.calls("/payment", "POST")) == 1  # not repeated inside the call
    assert connector.find_by_reference("payment", "9", "") is None
    again = connector_for(qbo_connection).push_payment(_payment(invoice.external_id), ref=None)

    assert len(qbo.store["Payment"]) == 1
    assert again.external_id == next(iter(qbo.store["Payment"]))
    first, second = (c.query["requestid"] for c in qbo.calls("/payment", "POST"))
    assert first == second and len(first) <= 50
    # Another payment (another local id) is another request.
    other = connector.push_payment(_payment(invoice.external_id, local_id="10"), ref=None)
    assert other.external_id != again.external_id and len(qbo.store["Payment"]) == 2


def test_every_write_carries_a_requestid_and_a_timeout_is_not_repeated(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    transport = TimeoutTransport(when=lambda r: r.method == "POST", forward=True)
    connector = connector_for(qbo_connection, transport=transport)
    with pytest.raises(NetworkFailure):
        connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    assert len(qbo.calls("/invoice", "POST")) == 1 and len(qbo.store["Invoice"]) == 1
    result = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    assert len(qbo.store["Invoice"]) == 1  # replayed, not a 6140 duplicate-number fault
    assert result.external_id == next(iter(qbo.store["Invoice"]))
    assert all(c.query.get("requestid") for c in qbo.calls(method="POST") if "/v3/" in c.path)


def test_cdc_reply_cut_at_1000_does_not_skip_the_rest(qbo, qbo_connection):
    qbo.add_customers(1200)
    customer = next(iter(qbo.store["Customer"].values()))
    connector = connector_for(qbo_connection, now=qbo.now)
    invoice = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    cursor = (qbo.now() - timedelta(days=1)).isoformat()
    seen: set[tuple[str, str]] = set()
    for _ in range(3):
        changes, cursor = connector.fetch_changes(since=cursor)
        seen |= {(c.entity, c.external_id) for c in changes}
    customers = {("contacts", i) for i in qbo.store["Customer"]}
    assert customers <= seen  # all 1,200, although the first reply held 1,000 of them
    assert ("invoices", invoice.external_id) in seen
    first = qbo.calls("/cdc")[1]
    last_of_first_reply = sorted(
        r["MetaData"]["LastUpdatedTime"] for r in qbo.store["Customer"].values()
    )[999]
    assert first.query["changedSince"] == _iso_of(last_of_first_reply)


def _iso_of(text):
    return datetime.fromisoformat(text).isoformat()


def test_cdc_cursor_older_than_30_days_is_clamped_and_asks_for_a_full_import(qbo, qbo_connection):
    connector = connector_for(qbo_connection, now=qbo.now)
    old = (qbo.now() - timedelta(days=45)).isoformat()
    connector.fetch_changes(since=old)
    sent = datetime.fromisoformat(qbo.calls("/cdc")[-1].query["changedSince"])
    assert qbo.now() - timedelta(days=30) < sent < qbo.now() - timedelta(days=29)
    assert "contacts" in connector.resync_required
    connector.fetch_changes(since=(qbo.now() - timedelta(days=2)).isoformat())
    assert connector.resync_required == set()


def test_vat_goes_as_a_tax_code_per_line_and_quickbooks_computes_it(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    result = connector_for(qbo_connection).push_invoice(
        invoice_payload(customer_id=customer["Id"]), ref=None
    )
    sent = qbo.calls("/invoice", "POST")[-1].body
    assert sent["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": qbo.vat15["Id"]}
    assert "TxnTaxDetail" not in sent
    remote = qbo.store["Invoice"][result.external_id]
    assert (remote["TxnTaxDetail"]["TotalTax"], remote["TotalAmt"]) == (150.0, 1150.0)


def test_vat_without_a_tax_code_mapping_is_refused_naming_the_rate(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    qbo_connection.settings = {**qbo_connection.settings, "tax_codes": {"0": qbo.vat0["Id"]}}
    with pytest.raises(ValidationFailure) as caught:
        connector_for(qbo_connection).push_invoice(
            invoice_payload(customer_id=customer["Id"]), ref=None
        )
    assert "VAT 15.00%" in caught.value.message
    assert caught.value.detail["missing_tax_code"] == "15.00"
    assert "tax_codes" in caught.value.suggested_fix
    assert qbo.calls("/invoice", "POST") == []
    qbo_connection.settings = {k: v for k, v in qbo_connection.settings.items() if k != "tax_codes"}
    with pytest.raises(ValidationFailure):
        connector_for(qbo_connection).push_invoice(
            invoice_payload(customer_id=customer["Id"]), ref=None
        )
    # No VAT and no mapping: a company not registered for VAT exports without tax codes.
    connector_for(qbo_connection).push_invoice(
        invoice_payload(customer_id=customer["Id"], tax="0"), ref=None
    )
    assert len(qbo.store["Invoice"]) == 1


def test_fake_refuses_a_bare_total_tax(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    with pytest.raises(ValidationFailure, match="tax code"):
        connector._call(
            "POST",
            "/invoice",
            body={
                "CustomerRef": {"value": customer["Id"]},
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": 100,
                        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                    }
                ],
                "TxnTaxDetail": {"TotalTax": 15},
            },
            entity="invoices",
        )


def test_update_without_a_stored_synctoken_is_a_conflict(qbo, qbo_connection):
    customer = qbo.add_customer("Meghna Traders")
    connector = connector_for(qbo_connection)
    first = connector.push_invoice(invoice_payload(customer_id=customer["Id"]), ref=None)
    qbo.edit("Invoice", first.external_id, PrivateNote="changed in QuickBooks")
    ref = ref_for(qbo_connection, first)
    ref.external_version = ""
    with pytest.raises(ConflictFailure):
        connector.push_invoice(
            invoice_payload(customer_id=customer["Id"], amount="1200.00", tax="180.00"), ref=ref
        )
    remote = qbo.store["Invoice"][first.external_id]
    assert (remote["SyncToken"], remote["PrivateNote"]) == ("1", "changed in QuickBooks")


def test_engine_payment_whose_reply_is_lost_is_exported_once(qbo, books_qbo, sales):
    """Through the engine: QuickBooks saves the payment and the reply is lost; the next run
    cannot find a payment by reference, repeats the push with the same requestid (payments
    are in idempotent_creates) and QuickBooks answers with the payment it has."""
    from accounting.integrations.models import AccountMapping
    from accounting.models import Account
    from invoicing.services import invoice_payment_record

    checking = next(a for a in qbo.store["Account"].values() if a["AcctNum"] == "1100")
    AccountMapping.objects.create(
        company=books_qbo.company,
        connection=books_qbo,
        external_id=checking["Id"],
        external_code="1100",
        external_name="Checking",
        account=Account.objects.get(company=books_qbo.company, code="1131"),
    )
    invoice = sales.approved(sales.line(quantity="2", unit_price="100.00"))
    sync_run(connection=books_qbo, entity="invoices", direction="export")
    invoice_payment_record(actor=sales.clerk, invoice=invoice, amount=Decimal("230.00"))
    qbo.fail("drop", path="/payment", method="POST")

    first = sync_run(connection=books_qbo, entity="payments", direction="export")
    assert first.status == "failed"
    assert len(qbo.store["Payment"]) == 1  # saved, reply lost
    second = sync_run(connection=books_qbo, entity="payments", direction="export")

    assert (second.status, second.records_succeeded) == ("succeeded", 1)
    assert len(qbo.store["Payment"]) == 1
    ref = ExternalRef.objects.get(connection=books_qbo, entity="payment")
    assert ref.external_id == next(iter(qbo.store["Payment"]))
    first_id, second_id = (c.query["requestid"] for c in qbo.calls("/payment", "POST"))
    assert first_id == second_id
