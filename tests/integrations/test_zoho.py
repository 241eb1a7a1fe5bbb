"""The Zoho Books connector against the fake Zoho Books server (real HTTP on loopback)."""

import time
from datetime import date, timedelta
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
    ServerFailure,
    ValidationFailure,
)
from accounting.integrations.connectors.zoho import REGIONS, ZohoBooksConnector, region_hosts
from accounting.integrations.models import ExternalRef, IntegrationConnection, SyncError
from accounting.integrations.sync import sync_run
from invoicing.models import Party
from tests.integrations.conftest import Sleeps, connection_make, http_for, ref_for
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.tally import TimeoutTransport
from tests.integrations.fakes.zoho import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORGANIZATION_ID,
    REFRESH_TOKEN,
    FakeZohoBooks,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def zoho(loopback_server):  # noqa: F811
    fake = FakeZohoBooks()
    fake.server_url = loopback_server(fake).url
    return fake


@pytest.fixture
def zoho_connection(tenants, zoho):
    return connection_make(
        tenants.a,
        system="zoho_books",
        name="Zoho",
        settings={
            "region": "in",
            "organization_id": ORGANIZATION_ID,
            "base_url": zoho.server_url,
            "oauth": {
                "token_url": zoho.server_url + "/oauth/v2/token",
                "authorize_url": zoho.server_url + "/oauth/v2/auth",
            },
            "tax_account_code": "2100",
            # Fast enough for tests, still on the limiter's path.
            "rate_limit": {"rate_per_minute": 60000, "burst": 1000},
        },
        credentials={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "access_token": zoho.issue_access_token(),
            "refresh_token": REFRESH_TOKEN,
            "expires_at": time.time() + 3600,
        },
    )


def connector_for(connection, sleeps=None, **options):
    return ZohoBooksConnector(connection, http=http_for(connection, sleeps, **options))


def all_contacts(connector, since=None):
    pages, cursor = [], None
    while True:
        page = connector.fetch_contacts(cursor=cursor, since=since)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


def invoice_payload(
    number="INV-0001", *, contact_id, amount="1000.00", tax="150.00", kind="invoice"
):
    return InvoicePayload(
        local_id="41",
        number=number,
        kind=kind,
        date=date(2026, 1, 10),
        due_date=date(2026, 2, 9) if kind == "invoice" else None,
        contact_external_id=contact_id,
        contact_name="",
        currency="BDT",
        lines=[
            LinePayload(
                description="Consulting, January",
                account_code="4000",
                account_name="Sales",
                amount=Decimal(amount),
                tax_amount=Decimal(tax),
                quantity=Decimal("2"),
                unit_price=Decimal(amount) / 2,
            )
        ],
        total=Decimal(amount) + Decimal(tax),
        tax_total=Decimal(tax),
        reference="SO-77",
    )


# --- regions and requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "region, api, accounts",
    [
        ("com", "https://www.zohoapis.com/books/v3", "https://accounts.zoho.com"),
        ("eu", "https://www.zohoapis.eu/books/v3", "https://accounts.zoho.eu"),
        ("in", "https://www.zohoapis.in/books/v3", "https://accounts.zoho.in"),
        ("com.au", "https://www.zohoapis.com.au/books/v3", "https://accounts.zoho.com.au"),
        ("jp", "https://www.zohoapis.jp/books/v3", "https://accounts.zoho.jp"),
        ("ca", "https://www.zohoapis.ca/books/v3", "https://accounts.zohocloud.ca"),
    ],
)
def test_each_data_centre_has_its_api_and_accounts_host(region, api, accounts):
    assert region_hosts({"region": region}) == (api, accounts)


def test_all_six_regions_known_and_an_unknown_one_refused():
    assert set(REGIONS) == {"com", "eu", "in", "com.au", "jp", "ca"}
    with pytest.raises(ValidationFailure):
        region_hosts({"region": "mars"})


def test_import_1000_contacts_over_5_pages_with_organization_id_and_zoho_token(
    zoho, zoho_connection
):
    zoho.add_contacts(1000)
    pages = all_contacts(connector_for(zoho_connection))

    assert [len(p) for p in pages] == [200, 200, 200, 200, 200]
    ids = {c.external_id for page in pages for c in page}
    assert len(ids) == 1000
    first = pages[0][0]
    assert first.name == "Customer 00001"
    assert first.email == "customer1@example.com"
    assert first.kind == "customer"
    assert first.version.endswith("+0530")  # Zoho's last_modified_time is the version
    calls = zoho.calls("/books/v3/contacts")
    assert [c.query["page"] for c in calls] == ["1", "2", "3", "4", "5"]
    assert all(c.query["per_page"] == "200" for c in calls)
    assert all(c.query["organization_id"] == ORGANIZATION_ID for c in zoho.requests)
    assert all(c.headers["authorization"].startswith("Zoho-oauthtoken ") for c in calls)


def test_chart_of_accounts_import(zoho, zoho_connection):
    chart = zoho.seed_chart()
    page = connector_for(zoho_connection).fetch_accounts()
    assert page.next_cursor is None
    by_code = {a.code: a for a in page.items}
    assert set(by_code) == set(chart)
    assert by_code["4000"].name == "Sales"
    assert by_code["4000"].type == "income"
    assert by_code["4000"].external_id == chart["4000"]["account_id"]


def test_test_connection_reports_success_latency_and_version(zoho, zoho_connection):
    result = connector_for(zoho_connection).test_connection()
    assert result["success"] is True
    assert result["version"] == "Zoho Books API v3"
    assert isinstance(result["latency_ms"], int)
    assert "Kontor Fake Org" in result["message"]


def test_test_connection_with_a_wrong_organisation_fails_without_raising(zoho, zoho_connection):
    zoho_connection.settings["organization_id"] = "999"
    result = connector_for(zoho_connection).test_connection()
    assert result["success"] is False
    assert result["message"]


# --- OAuth -------------------------------------------------------------------------------------


def test_expired_token_401_refreshes_once_and_stores_the_new_access_token(zoho, zoho_connection):
    old_token = zoho_connection.credentials["access_token"]
    zoho.add_contacts(3)
    zoho.expire_access_tokens()

    page = connector_for(zoho_connection).fetch_contacts()

    assert len(page.items) == 3
    assert zoho.tokens.refreshes == 1
    assert [c.status for c in zoho.calls("/books/v3/contacts")] == [401, 200]
    stored = IntegrationConnection.objects.get(pk=zoho_connection.pk).credentials
    assert stored["access_token"] != old_token
    assert stored["access_token"] in zoho.tokens.access
    assert stored["refresh_token"] == REFRESH_TOKEN  # Zoho does not rotate refresh tokens


def test_revoked_refresh_token_marks_the_connection_for_reauthorisation(zoho, zoho_connection):
    zoho.expire_access_tokens()
    zoho.revoke_refresh_tokens()

    with pytest.raises(AuthFailure) as caught:
        connector_for(zoho_connection).fetch_contacts()

    assert caught.value.category == "auth"
    assert IntegrationConnection.objects.get(pk=zoho_connection.pk).needs_reauth is True


# --- retries -----------------------------------------------------------------------------------


def test_429_with_retry_after_waits_what_zoho_asked(zoho, zoho_connection):
    zoho.add_contacts(2)
    zoho.fail(429, path="/contacts", retry_after="7")
    sleeps = Sleeps()

    page = connector_for(zoho_connection, sleeps).fetch_contacts()

    assert len(page.items) == 2
    assert sleeps == [7.0]


def test_429_without_retry_after_backs_off_exponentially(zoho, zoho_connection):
    zoho.add_contacts(2)
    zoho.fail(429, path="/contacts", times=2)
    sleeps = Sleeps()

    page = connector_for(zoho_connection, sleeps).fetch_contacts()

    assert len(page.items) == 2
    assert sleeps == [0.1, 0.2]  # 100 ms, then 200 ms (jitter pinned at its upper bound)


def test_500_is_retried_until_it_succeeds(zoho, zoho_connection):
    zoho.add_contacts(2)
    zoho.fail(500, path="/contacts", times=2)
    sleeps = Sleeps()

    assert len(connector_for(zoho_connection, sleeps).fetch_contacts().items) == 2
    assert len(sleeps) == 2
    assert [c.status for c in zoho.calls("/books/v3/contacts")] == [500, 500, 200]


def test_500_that_persists_ends_as_a_retryable_server_failure(zoho, zoho_connection):
    zoho.fail(500, path="/contacts", times=99)
    with pytest.raises(ServerFailure) as caught:
        connector_for(zoho_connection).fetch_contacts()
    assert caught.value.retryable is True
    assert len(zoho.calls("/books/v3/contacts")) == 3  # max_attempts


def test_timeout_becomes_a_network_failure(zoho, zoho_connection):
    """Reads time out every time (a transport raising ReadTimeout: no wall-clock race)."""
    zoho.add_contacts(2)
    transport = TimeoutTransport(times=99)
    with pytest.raises(NetworkFailure) as caught:
        connector_for(zoho_connection, transport=transport).fetch_contacts()
    assert caught.value.category == "network"
    assert caught.value.retryable is True
    assert transport.hits == 3  # max_attempts


def test_a_read_timing_out_once_is_retried(zoho, zoho_connection):
    zoho.add_contacts(2)
    transport = TimeoutTransport(times=1, forward=True)
    assert len(connector_for(zoho_connection, transport=transport).fetch_contacts().items) == 2
    assert transport.hits == 1


def test_malformed_json_is_a_server_error_not_retried(zoho, zoho_connection):
    zoho.fail("malformed", path="/contacts", times=99)
    sleeps = Sleeps()
    with pytest.raises(MalformedReply) as caught:
        connector_for(zoho_connection, sleeps).fetch_contacts()
    assert caught.value.category == "server"
    assert caught.value.retryable is False
    assert len(zoho.calls("/books/v3/contacts")) == 1
    assert sleeps == []


def test_paging_that_fails_on_page_3_fails_there_and_resumes_from_it(zoho, zoho_connection):
    zoho.add_contacts(1000)
    zoho.fail(500, path="/contacts", page=3, times=3)
    connector = connector_for(zoho_connection)
    first = connector.fetch_contacts()
    second = connector.fetch_contacts(cursor=first.next_cursor)
    with pytest.raises(ServerFailure):
        connector.fetch_contacts(cursor=second.next_cursor)
    # The switch is used up: asking for page 3 again goes on from where it broke off.
    third = connector.fetch_contacts(cursor=second.next_cursor)
    assert [c.name for c in third.items][:1] == ["Customer 00401"]


# --- errors ------------------------------------------------------------------------------------


def test_code_1002_is_not_found(zoho, zoho_connection):
    with pytest.raises(NotFound) as caught:
        connector_for(zoho_connection).fetch_contact("460000000099999")
    assert caught.value.category == "not_found"
    assert caught.value.detail["code"] == 1002
    assert caught.value.external_id == "460000000099999"


def test_fetch_contact_by_id(zoho, zoho_connection):
    contact = zoho.add_contact(
        "Meghna Traders",
        email="ap@meghna.example",
        phone="+8801711000000",
        tax_reg_no="000123456-0101",
        billing_address={"address": "12 Motijheel", "city": "Dhaka", "country": "Bangladesh"},
    )
    fetched = connector_for(zoho_connection).fetch_contact(contact["contact_id"])
    assert fetched.name == "Meghna Traders"
    assert fetched.tax_id == "000123456-0101"
    assert fetched.address == "12 Motijheel, Dhaka, Bangladesh"
    assert fetched.version == contact["last_modified_time"]


# --- export ------------------------------------------------------------------------------------


def test_export_invoice_twice_updates_the_one_remote_invoice(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)

    first = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    second = connector.push_invoice(
        invoice_payload(contact_id=customer["contact_id"], amount="1200.00", tax="180.00"),
        ref=ref_for(zoho_connection, first),
    )

    assert second.external_id == first.external_id
    assert second.version != first.version
    assert len(zoho.documents["invoices"]) == 1
    invoice = zoho.documents["invoices"][first.external_id]
    assert invoice["invoice_number"] == "INV-0001"
    assert invoice["total"] == 1380.0  # 2 x 600.00 + VAT 180.00 as its own line
    assert [c.method for c in zoho.calls("/books/v3/invoices")] == ["POST", "GET", "PUT"]
    post = zoho.calls("/books/v3/invoices", "POST")[0]
    assert post.query["ignore_auto_number_generation"] == "true"
    assert post.body["line_items"][0]["rate"] == 500.0
    assert post.body["line_items"][1]["account_id"] == zoho.accounts_by_code("2100")["account_id"]


def test_discounted_line_goes_as_its_amount_so_zoho_totals_match(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    line = LinePayload(
        "Widgets less 10%",
        "4000",
        "Sales",
        Decimal("90.00"),
        quantity=Decimal("2"),
        unit_price=Decimal("50.00"),
    )
    payload = invoice_payload(contact_id=customer["contact_id"], tax="0")
    payload = InvoicePayload(**{**payload.__dict__, "lines": [line], "total": Decimal("90.00")})
    result = connector_for(zoho_connection).push_invoice(payload, ref=None)
    sent = zoho.documents["invoices"][result.external_id]
    assert [(li["rate"], li["quantity"]) for li in sent["line_items"]] == [(90.0, 1)]
    assert sent["total"] == 90.0


def test_invoice_changed_in_zoho_is_a_conflict_and_not_overwritten(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    first = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    zoho.touch("invoices", first.external_id, notes="edited in Zoho")

    with pytest.raises(ConflictFailure) as caught:
        connector.push_invoice(
            invoice_payload(contact_id=customer["contact_id"], amount="5.00", tax="0"),
            ref=ref_for(zoho_connection, first),
        )

    assert caught.value.category == "conflict"
    assert caught.value.retryable is False
    assert zoho.calls("/books/v3/invoices", "PUT") == []
    assert zoho.documents["invoices"][first.external_id]["notes"] == "edited in Zoho"
    assert zoho.documents["invoices"][first.external_id]["total"] == 1150.0


def test_update_of_an_invoice_deleted_in_zoho_is_not_found(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    first = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    del zoho.documents["invoices"][first.external_id]
    with pytest.raises(NotFound):
        connector.push_invoice(
            invoice_payload(contact_id=customer["contact_id"]), ref=ref_for(zoho_connection, first)
        )


def test_credit_note_export_and_contact_created_by_name(zoho, zoho_connection):
    zoho.seed_chart()
    payload = invoice_payload("CN-0001", contact_id="", kind="credit_note", tax="0")
    payload = InvoicePayload(**{**payload.__dict__, "contact_name": "New Customer Ltd"})
    result = connector_for(zoho_connection).push_invoice(payload, ref=None)
    note = zoho.documents["creditnotes"][result.external_id]
    assert note["creditnote_number"] == "CN-0001"
    assert zoho.contacts[note["customer_id"]]["contact_name"] == "New Customer Ltd"


def test_vat_without_a_tax_account_is_a_validation_failure(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    del zoho_connection.settings["tax_account_code"]
    with pytest.raises(ValidationFailure) as caught:
        connector_for(zoho_connection).push_invoice(
            invoice_payload(contact_id=customer["contact_id"]), ref=None
        )
    assert "tax_account_code" in caught.value.suggested_fix
    assert zoho.documents["invoices"] == {}


def test_payment_export_applies_to_the_invoice(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    invoice = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    result = connector.push_payment(
        PaymentPayload(
            local_id="9",
            invoice_external_id=invoice.external_id,
            invoice_number="INV-0001",
            date=date(2026, 1, 20),
            amount=Decimal("1150.00"),
            account_code="1100",
            account_name="Bank Account",
            reference="BANK-REF-1",
        ),
        ref=None,
    )
    payment = zoho.documents["customerpayments"][result.external_id]
    assert payment["customer_id"] == customer["contact_id"]
    assert payment["amount"] == 1150.0
    assert payment["account_id"] == zoho.accounts_by_code("1100")["account_id"]
    assert payment["invoices"] == [{"invoice_id": invoice.external_id, "amount_applied": 1150.0}]
    assert payment["reference_number"] == "KONTOR-PAY-9"
    assert payment["description"] == "BANK-REF-1 INV-0001"


def _payment(invoice_id, reference=""):
    return PaymentPayload(
        local_id="9",
        invoice_external_id=invoice_id,
        invoice_number="INV-0001",
        date=date(2026, 1, 20),
        amount=Decimal("1150.00"),
        account_code="1100",
        account_name="Bank Account",
        reference=reference,
    )


def test_payment_saved_with_its_reply_lost_is_found_not_created_twice(zoho, zoho_connection):
    """The payment has no reference of its own (the usual case): Zoho saves it and the reply
    is cut off; the client does not repeat the POST, and the engine's lookup finds it by
    KONTOR-PAY-<id>."""
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    invoice = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    zoho.fail("drop", path="/customerpayments", method="POST")
    with pytest.raises(NetworkFailure):
        connector.push_payment(_payment(invoice.external_id), ref=None)
    assert len(zoho.calls("/books/v3/customerpayments", "POST")) == 1
    [saved] = zoho.documents["customerpayments"].values()

    found = connector.find_by_reference("payment", "9", "")

    assert found is not None and found.external_id == saved["payment_id"]
    assert found.version == saved["last_modified_time"]
    assert connector.find_by_reference("payment", "10", "") is None


def test_a_create_that_times_out_is_not_repeated(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    transport = TimeoutTransport(when=lambda r: r.method == "POST", forward=True, times=5)
    with pytest.raises(NetworkFailure):
        connector_for(zoho_connection, transport=transport).push_invoice(
            invoice_payload(contact_id=customer["contact_id"]), ref=None
        )
    assert (transport.hits, len(zoho.documents["invoices"])) == (1, 1)


def test_code_1002_on_a_create_is_a_validation_failure(zoho, zoho_connection):
    zoho.seed_chart()
    with pytest.raises(ValidationFailure) as caught:
        connector_for(zoho_connection).push_invoice(
            invoice_payload(contact_id="460000000099999"), ref=None
        )
    assert caught.value.category == "validation"
    assert caught.value.detail["code"] == 1002
    assert "Contact does not exist" in caught.value.message


def test_update_without_a_stored_version_is_a_conflict(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    first = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    ref = ref_for(zoho_connection, first)
    ref.external_version = ""
    before = dict(zoho.documents["invoices"][first.external_id])
    with pytest.raises(ConflictFailure):
        connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=ref)
    assert zoho.documents["invoices"][first.external_id] == before
    assert zoho.calls("/books/v3/invoices/", "PUT") == []


def test_fake_refuses_a_search_zoho_does_not_document(zoho, zoho_connection):
    zoho.add_contacts(3)
    with pytest.raises(ValidationFailure, match="Invalid value passed for payment_reference"):
        connector_for(zoho_connection)._call(
            "GET", "/contacts", params={"payment_reference": "x"}, entity="contacts"
        )


def test_journal_export_sends_debits_and_credits_on_mapped_accounts(zoho, zoho_connection):
    zoho.seed_chart()
    journal = JournalPayload(
        local_id="5",
        reference="JE-2026-0005",
        date=date(2026, 1, 31),
        memo="Office supplies paid from petty cash",
        lines=[
            LinePayload("Paper", "5000", "Office Supplies", Decimal("250.50"), debit=True),
            LinePayload("Paper", "1000", "Petty Cash", Decimal("250.50"), debit=False),
        ],
    )
    result = connector_for(zoho_connection).push_journal(journal, ref=None)
    saved = zoho.documents["journals"][result.external_id]
    assert [(li["debit_or_credit"], li["amount"]) for li in saved["line_items"]] == [
        ("debit", 250.5),
        ("credit", 250.5),
    ]
    assert saved["line_items"][0]["account_id"] == zoho.accounts_by_code("5000")["account_id"]
    assert saved["reference_number"] == "JE-2026-0005"


def test_unknown_account_is_a_validation_failure_naming_it(zoho, zoho_connection):
    zoho.seed_chart()
    journal = JournalPayload(
        local_id="6",
        reference="JE-6",
        date=date(2026, 1, 31),
        memo="",
        lines=[
            LinePayload("x", "9999", "Nowhere", Decimal("1.00"), debit=True),
            LinePayload("x", "1000", "Petty Cash", Decimal("1.00"), debit=False),
        ],
    )
    with pytest.raises(ValidationFailure) as caught:
        connector_for(zoho_connection).push_journal(journal, ref=None)
    assert "9999" in caught.value.message


def test_find_by_reference_finds_an_invoice_pushed_before(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    pushed = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    found = connector.find_by_reference("invoices", "41", "INV-0001")
    assert found is not None
    assert found.external_id == pushed.external_id
    assert connector.find_by_reference("invoices", "42", "INV-0404") is None


def test_fetch_invoice_for_a_webhook_reports_its_last_modified_time(zoho, zoho_connection):
    zoho.seed_chart()
    customer = zoho.add_contact("Meghna Traders")
    connector = connector_for(zoho_connection)
    pushed = connector.push_invoice(invoice_payload(contact_id=customer["contact_id"]), ref=None)
    edited = zoho.touch("invoices", pushed.external_id, notes="edited")
    change = connector.fetch_invoice(pushed.external_id)
    assert (change.external_id, change.version) == (
        pushed.external_id,
        edited["last_modified_time"],
    )
    assert change.version != pushed.version
    with pytest.raises(NotFound):
        connector.fetch_invoice("460000000099999")


# --- incremental -------------------------------------------------------------------------------


def test_changes_since_the_cursor_by_last_modified_time(zoho, zoho_connection):
    contacts = zoho.add_contacts(5)
    connector = connector_for(zoho_connection)
    changes, cursor = connector.fetch_changes(since=None)
    assert {c.external_id for c in changes} == {c["contact_id"] for c in contacts}
    assert all(c.operation == "create" for c in changes)

    zoho.touch("contacts", contacts[1]["contact_id"], email="new@example.com")
    newcomer = zoho.add_contact("Late Customer")
    changes, new_cursor = connector.fetch_changes(since=cursor)

    by_id = {c.external_id: c for c in changes}
    assert by_id[contacts[1]["contact_id"]].operation == "update"
    assert by_id[newcomer["contact_id"]].operation == "create"
    # Zoho filters "modified at or after": the record stamped exactly at the cursor comes again
    # (harmless: the engine compares versions); the older ones do not.
    assert set(by_id) - {contacts[4]["contact_id"]} == {
        contacts[1]["contact_id"],
        newcomer["contact_id"],
    }
    assert cursor == "2026-01-05T09:00:05+05:30"
    assert new_cursor == "2026-01-05T09:00:07+05:30"
    contact_calls = zoho.calls("/books/v3/contacts")
    assert contact_calls[-1].query["last_modified_time"] == "2026-01-05T09:00:05+0530"


# --- end to end through the sync engine --------------------------------------------------------


def imported_parties(company):
    return Party.objects.filter(company=company, name__startswith="Customer ")


@pytest.fixture
def books_zoho(books, zoho, zoho_connection, fast_retries):
    """Company A with its ledger, the Zoho connection, a Zoho chart holding Kontor's sales
    account code, and HTTP retries that do not wait."""
    zoho.seed_chart()
    zoho.add_account("4100", "Sales revenue", "income")
    return zoho_connection


def test_engine_imports_1000_contacts_into_parties_once(zoho, books_zoho):
    zoho.add_contacts(1000)

    run = sync_run(connection=books_zoho, entity="contacts", direction="import")

    assert (run.status, run.records_processed, run.records_succeeded) == ("succeeded", 1000, 1000)
    assert imported_parties(books_zoho.company).count() == 1000
    assert ExternalRef.objects.filter(connection=books_zoho, entity="contact").count() == 1000
    party = Party.objects.get(company=books_zoho.company, name="Customer 00007")
    assert (party.email, party.phone) == ("customer7@example.com", "+8801710000007")
    assert len(zoho.calls("/books/v3/contacts")) == 5
    books_zoho.refresh_from_db()
    # The latest last_modified_time seen (9 chart accounts, then 1,000 contacts, a second
    # apart: 09:16:49) less the 5-minute overlap.
    assert books_zoho.cursors["contacts"] == "2026-01-05T09:11:49+05:30"

    again = sync_run(connection=books_zoho, entity="contacts", direction="import")
    assert (again.status, again.records_processed) == ("succeeded", 0)
    assert zoho.calls("/books/v3/contacts")[-1].query["last_modified_time"] == (
        "2026-01-05T09:11:49+0530"
    )
    assert imported_parties(books_zoho.company).count() == 1000


def test_engine_page_3_failing_ends_partial_and_the_rerun_duplicates_nothing(zoho, books_zoho):
    zoho.add_contacts(1000)
    zoho.fail(500, path="/contacts", page=3, times=3)  # every attempt at page 3

    run = sync_run(connection=books_zoho, entity="contacts", direction="import")

    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 400, 0)
    assert imported_parties(books_zoho.company).count() == 400
    error = SyncError.objects.get(connection=books_zoho)
    assert (error.category, error.retryable, error.resolution) == ("server", True, "open")
    books_zoho.refresh_from_db()
    assert "contacts" not in books_zoho.cursors  # no cursor from an incomplete import

    rerun = sync_run(connection=books_zoho, entity="contacts", direction="import")

    assert (rerun.status, rerun.records_succeeded) == ("succeeded", 600)
    assert imported_parties(books_zoho.company).count() == 1000
    assert ExternalRef.objects.filter(connection=books_zoho, entity="contact").count() == 1000
    error.refresh_from_db()
    assert error.resolution == "resolved"


def test_engine_long_retry_after_stops_the_run_with_a_rate_limit_error(zoho, books_zoho):
    zoho.add_contacts(3)
    zoho.fail(429, path="/contacts", retry_after="120")

    run = sync_run(connection=books_zoho, entity="contacts", direction="import")

    assert run.status == "failed"
    error = SyncError.objects.get(connection=books_zoho)
    assert (error.category, error.retryable) == ("rate_limit", True)
    assert error.next_retry_at >= run.started_at + timedelta(seconds=120)
    assert len(zoho.calls("/books/v3/contacts")) == 1  # not slept through in the worker


def test_engine_exports_an_invoice_twice_as_one_zoho_invoice(zoho, books_zoho, sales):
    sync_run(connection=books_zoho, entity="accounts", direction="import")
    invoice = sales.approved(sales.line(quantity="2", unit_price="100.00"))

    first = sync_run(connection=books_zoho, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=books_zoho, local_type="invoicing.invoice")
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="changed-locally")
    second = sync_run(connection=books_zoho, entity="invoices", direction="export")

    assert (first.status, first.records_succeeded) == ("succeeded", 1)
    assert (second.status, second.records_succeeded) == ("succeeded", 1)
    [(external_id, remote)] = zoho.documents["invoices"].items()
    assert remote["invoice_number"] == invoice.number
    assert remote["total"] == 230.0  # 2 x 100.00 + VAT 30.00
    assert zoho.contacts[remote["customer_id"]]["contact_name"] == "Dhaka Retail Ltd"
    sales_line, vat_line = remote["line_items"]
    assert sales_line["account_id"] == zoho.accounts_by_code("4100")["account_id"]
    assert vat_line["account_id"] == zoho.accounts_by_code("2100")["account_id"]
    assert [c.method for c in zoho.calls(f"/books/v3/invoices/{external_id}")] == ["GET", "PUT"]
    ref.refresh_from_db()
    assert (ref.external_id, ref.external_version) == (external_id, remote["last_modified_time"])


def test_engine_zoho_edit_since_our_export_is_a_conflict_not_an_overwrite(zoho, books_zoho, sales):
    sync_run(connection=books_zoho, entity="accounts", direction="import")
    sales.approved()
    sync_run(connection=books_zoho, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=books_zoho, local_type="invoicing.invoice")
    zoho.touch("invoices", ref.external_id, notes="edited in Zoho")
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="changed-locally")

    run = sync_run(connection=books_zoho, entity="invoices", direction="export")

    assert (run.status, run.records_failed) == ("failed", 1)
    error = SyncError.objects.get(connection=books_zoho)
    assert (error.category, error.retryable) == ("conflict", False)
    assert zoho.calls("/books/v3/invoices", "PUT") == []
    assert zoho.documents["invoices"][ref.external_id]["notes"] == "edited in Zoho"


def test_engine_invoice_deleted_in_zoho_is_a_not_found_error(zoho, books_zoho, sales):
    sync_run(connection=books_zoho, entity="accounts", direction="import")
    sales.approved()
    sync_run(connection=books_zoho, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=books_zoho, local_type="invoicing.invoice")
    del zoho.documents["invoices"][ref.external_id]
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="changed-locally")

    sync_run(connection=books_zoho, entity="invoices", direction="export")

    error = SyncError.objects.get(connection=books_zoho)
    assert error.category == "not_found"
    assert error.detail["code"] == 1002
