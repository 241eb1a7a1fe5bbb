"""The Busy connector against the fake Kontor Busy bridge (plain HTTP on loopback, allowed only
because the tests turn BUSY_ALLOW_INSECURE on).

Figures: invoice INV-1 is 1,000.00 of sales plus 150.00 VAT: Acme Ltd debited 1,150.00
(AmountType 1), Sales credited 1,000.00 and Output VAT credited 150.00 (AmountType 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from defusedxml.ElementTree import fromstring

from accounting.integrations.connectors import connector_for
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
from accounting.integrations.connectors.busy import BusyConnector
from accounting.integrations.http import http_client_for
from accounting.integrations.models import ExternalRef, SyncError
from accounting.integrations.sync import sync_run
from invoicing.models import Party
from tests.integrations.conftest import connection_make
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.busy import FakeBusyBridge
from tests.integrations.fakes.tally import TimeoutTransport

D = Decimal
API_KEY = "busy-key-PLANTED-5b1e"


@dataclass
class BusySetup:
    fake: FakeBusyBridge
    server: object
    connection: object
    connector: BusyConnector
    sleeps: list

    def connector_with_transport(self, transport) -> BusyConnector:
        return connector_for(
            self.connection,
            http=http_client_for(self.connection, sleep=self.sleeps.append, transport=transport),
        )

    def last_post(self):
        return fromstring([r for r in self.fake.log.entries if r.method == "POST"][-1].body)


@pytest.fixture
def busy(tenants, loopback_server, fast_retries, settings):  # noqa: F811
    settings.BUSY_ALLOW_INSECURE = True
    fake = FakeBusyBridge(api_key=API_KEY)
    fake.add_party("Acme Ltd", "customer", email="ap@acme.test", tin="000123456-0101")
    fake.add_party("Paper Mills", "vendor")
    fake.add_account("Sales", "Sales Accounts", "Income", code="4000")
    fake.add_account("Output VAT", "Duties & Taxes", "Current Liabilities")
    fake.add_account("Dhaka Bank", "Bank Accounts", "Current Assets")
    fake.add_account("Rent", "Indirect Expenses", "Expenses")
    server = loopback_server(fake)
    connection = connection_make(
        tenants.a,
        system="busy",
        name="Busy",
        credentials={"api_key": API_KEY},
        settings={"bridge_url": server.url, "series": "Main"},
    )
    sleeps: list[float] = []
    connector = connector_for(
        connection, http=http_client_for(connection, sleep=sleeps.append, timeout=5)
    )
    return BusySetup(fake, server, connection, connector, sleeps)


def invoice(
    local_id="11", number="INV-1", account="Sales", kind="invoice", amount="1000.00", vat="150.00"
):
    return InvoicePayload(
        local_id=local_id,
        number=number,
        kind=kind,
        date=date(2026, 1, 5),
        due_date=None,
        contact_external_id="",
        contact_name="Acme Ltd",
        currency="BDT",
        lines=[LinePayload("Widget", "4000", account, D(amount), D(vat))],
        total=D(amount) + D(vat),
        tax_total=D(vat),
    )


def ref_for(setup, result, local_id="11"):
    return ExternalRef.objects.create(
        company=setup.connection.company,
        connection=setup.connection,
        entity="invoice",
        local_type="invoicing.invoice",
        local_id=local_id,
        external_id=result.external_id,
        external_version=result.version,
    )


@pytest.mark.django_db
def test_connection_test_pings_the_bridge(busy):
    result = busy.connector.test_connection()

    assert result["success"] is True
    assert result["version"] == "Busy 21 (Rel 6.2)"
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
    assert [e.path for e in busy.fake.log.entries] == ["/ping"]  # the latency of one ping
    assert busy.fake.log.entries[-1].path == "/ping"
    assert busy.fake.log.entries[-1].headers["x-api-key"] == API_KEY


@pytest.mark.django_db
def test_plain_http_is_refused_without_the_insecure_setting(busy, settings):
    settings.BUSY_ALLOW_INSECURE = False

    result = busy.connector.test_connection()
    with pytest.raises(ValidationFailure) as caught:
        busy.connector.push_invoice(invoice(), ref=None)

    assert result["success"] is False
    assert "HTTPS" in result["message"]
    assert "https://" in caught.value.suggested_fix
    assert len(busy.fake.log) == 0  # nothing was sent in clear text


@pytest.mark.django_db
def test_https_url_is_accepted_without_the_setting(settings):
    settings.BUSY_ALLOW_INSECURE = False
    connection = type("C", (), {"settings": {"bridge_url": "https://busy.office.lan:8443/"}})()
    assert BusyConnector.base_url(connection) == "https://busy.office.lan:8443"


@pytest.mark.django_db
def test_wrong_api_key_is_an_auth_failure_that_does_not_echo_the_key(busy):
    busy.connection.set_credentials({"api_key": "wrong-key-PLANTED"})

    with pytest.raises(AuthFailure) as caught:
        busy.connector.push_invoice(invoice(), ref=None)

    assert "PLANTED" not in caught.value.message
    assert "PLANTED" not in str(caught.value.detail)


@pytest.mark.django_db
def test_sales_invoice_is_busy_sale_voucher_xml(busy):
    result = busy.connector.push_invoice(invoice(), ref=None)

    sent = busy.last_post()
    assert sent.tag == "Sale"
    assert (sent.findtext("VchType"), sent.findtext("Date"), sent.findtext("VchSeriesName")) == (
        "9",
        "05-01-2026",
        "Main",
    )
    details = [
        (d.findtext("AccountName"), d.findtext("AmountType"), d.findtext("AmtMainCur"))
        for d in sent.iterfind("AccEntries/AccDetail")
    ]
    assert details == [
        ("Acme Ltd", "1", "1150.00"),
        ("Sales", "2", "1000.00"),
        ("Output VAT", "2", "150.00"),
    ]
    assert result.external_id == f"kontor-{busy.connection.company_id}-invoice-11"
    assert busy.fake.vouchers[result.external_id].version == int(result.version)


@pytest.mark.django_db
def test_journal_and_receipt(busy):
    sale = busy.connector.push_invoice(invoice(), ref=None)
    busy.connector.push_payment(
        PaymentPayload(
            "5",
            sale.external_id,
            "INV-1",
            date(2026, 1, 20),
            D("1150.00"),
            "1200",
            "Dhaka Bank",
            "R-1",
        ),
        ref=None,
    )
    receipt = busy.last_post()
    busy.connector.push_journal(
        JournalPayload(
            "3",
            "JE-3",
            date(2026, 1, 31),
            "January rent",
            [
                LinePayload("Rent", "6100", "Rent", D("25000"), debit=True),
                LinePayload("Bank", "1200", "Dhaka Bank", D("25000")),
            ],
        ),
        ref=None,
    )
    journal = busy.last_post()

    assert receipt.tag == "Receipt"
    assert [
        (d.findtext("AccountName"), d.findtext("AmountType"))
        for d in receipt.iterfind("AccEntries/AccDetail")
    ] == [
        ("Dhaka Bank", "1"),
        ("Acme Ltd", "2"),
    ]
    assert (journal.tag, journal.findtext("VchType")) == ("Journal", "16")
    assert len(busy.fake.vouchers) == 3


@pytest.mark.django_db
def test_payment_of_an_invoice_not_in_busy_waits_for_it(busy):
    with pytest.raises(NotFound) as caught:
        busy.connector.push_payment(
            PaymentPayload(
                "5", "kontor-1-invoice-404", "INV-404", date(2026, 1, 20), D("1"), "", "Dhaka Bank"
            ),
            ref=None,
        )
    assert caught.value.retryable is True


@pytest.mark.django_db
def test_re_export_modifies_never_duplicates(busy):
    first = busy.connector.push_invoice(invoice(), ref=None)
    second = busy.connector.push_invoice(
        invoice(amount="2000", vat="300"), ref=ref_for(busy, first)
    )

    assert len(busy.fake.vouchers) == 1
    assert second.external_id == first.external_id
    assert busy.fake.vouchers[first.external_id].entries[0] == ("Acme Ltd", 1, D("2300.00"))


@pytest.mark.django_db
def test_voucher_edited_in_busy_is_a_conflict(busy):
    first = busy.connector.push_invoice(invoice(), ref=None)
    busy.fake.edit_voucher(first.external_id, narration="edited in Busy")

    with pytest.raises(ConflictFailure):
        busy.connector.push_invoice(invoice(amount="2000", vat="300"), ref=ref_for(busy, first))

    assert busy.fake.vouchers[first.external_id].narration == "edited in Busy"


@pytest.mark.django_db
def test_unknown_account_is_a_validation_failure_for_that_voucher(busy):
    with pytest.raises(ValidationFailure) as caught:
        busy.connector.push_invoice(
            invoice(local_id="21", number="INV-21", account="Sales 5%"), ref=None
        )
    busy.connector.push_invoice(invoice(local_id="22", number="INV-22"), ref=None)

    assert "Account 'Sales 5%' not found" in caught.value.message
    assert "map the Kontor account" in caught.value.suggested_fix
    assert [v.number for v in busy.fake.vouchers.values()] == ["INV-22"]


@pytest.mark.django_db
def test_ping_5xx_then_success_is_retried(busy):
    busy.fake.add_fault("500", times=2)

    assert busy.connector.test_connection()["success"] is True
    assert len(busy.sleeps) == 2


@pytest.mark.django_db
def test_voucher_post_500_is_raised_and_the_retry_saves_once(busy):
    busy.fake.add_fault("500", when=lambda r: r.method == "POST")

    with pytest.raises(ServerFailure):
        busy.connector.push_invoice(invoice(), ref=None)
    busy.connector.push_invoice(invoice(), ref=None)

    assert len(busy.fake.vouchers) == 1


@pytest.mark.django_db
def test_lost_reply_is_found_by_reference_and_not_duplicated(busy):
    # The bridge saves the voucher and its reply is cut off (no sleep racing a timeout).
    busy.fake.add_fault("drop", when=lambda r: r.method == "POST")

    with pytest.raises(NetworkFailure):
        busy.connector.push_invoice(invoice(), ref=None)
    assert len([r for r in busy.fake.log.entries if r.method == "POST"]) == 1  # not repeated
    assert len(busy.fake.vouchers) == 1
    found = busy.connector.find_by_reference("invoice", "11")
    busy.connector.push_invoice(invoice(), ref=None)

    assert found is not None
    assert len(busy.fake.vouchers) == 1


@pytest.mark.django_db
def test_malformed_reply(busy):
    busy.fake.add_fault("malformed", when=lambda r: r.method == "POST")

    with pytest.raises(MalformedReply):
        busy.connector.push_invoice(invoice(), ref=None)


@pytest.mark.django_db
def test_accounts_and_parties_are_imported_page_by_page(busy):
    busy.connection.settings["page_size"] = 2

    def all_pages(fetch):
        items, cursor = [], None
        while True:
            page = fetch(cursor=cursor)
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                return items

    accounts = all_pages(busy.connector.fetch_accounts)
    parties = all_pages(busy.connector.fetch_contacts)

    assert [(a.code, a.name, a.type) for a in accounts if a.name == "Sales"] == [
        ("4000", "Sales", "Income")
    ]
    assert {a.name for a in accounts} == {"Sales", "Output VAT", "Dhaka Bank", "Rent"}
    assert {(p.name, p.kind) for p in parties} == {
        ("Acme Ltd", "customer"),
        ("Paper Mills", "vendor"),
    }
    assert busy.connector.fetch_contact(parties[0].external_id).name == parties[0].name


@pytest.mark.django_db
def test_bridge_without_masters_says_so(busy):
    busy.fake.capabilities = ["vouchers"]

    with pytest.raises(ValidationFailure) as caught:
        busy.connector.fetch_accounts()

    assert "masters" in caught.value.message


# --- through the sync engine -----------------------------------------------------------------


@pytest.fixture
def engine(sales, loopback_server, fast_retries, settings):  # noqa: F811
    settings.BUSY_ALLOW_INSECURE = True
    fake = FakeBusyBridge(api_key=API_KEY)
    fake.add_party("Dhaka Retail Ltd", "customer")
    fake.add_account("Sales revenue", "Sales Accounts", "Income", code="4100")
    fake.add_account("Output VAT", "Duties & Taxes", "Current Liabilities")
    server = loopback_server(fake)
    connection = connection_make(
        sales.company,
        system="busy",
        name="Busy",
        credentials={"api_key": API_KEY},
        settings={"bridge_url": server.url},
        entities=["accounts", "contacts", "invoices"],
    )
    assert (
        sync_run(connection=connection, entity="accounts", direction="import").status == "succeeded"
    )
    return SimpleNamespace(fake=fake, connection=connection, sales=sales)


@pytest.mark.django_db
def test_engine_export_partial_then_complete_without_duplicates(engine):
    sales = engine.sales
    sales.approved()
    bad = sales.approved(customer=sales.withholding)  # no such party account in Busy

    run = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 1, 1)
    error = SyncError.objects.get(connection=engine.connection)
    assert (error.category, error.local_id) == ("validation", str(bad.pk))
    assert "Account 'Padma Bank PLC' not found" in error.message
    (saved,) = engine.fake.vouchers.values()
    # 100.00 + 15% VAT: Dr the party 115.00, Cr Sales revenue 100.00 and Output VAT 15.00
    assert saved.entries == [
        ("Dhaka Retail Ltd", 1, D("115.00")),
        ("Sales revenue", 2, D("100.00")),
        ("Output VAT", 2, D("15.00")),
    ]

    engine.fake.add_party("Padma Bank PLC", "customer")
    again = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert (again.status, again.records_succeeded) == ("succeeded", 1)
    assert len(engine.fake.vouchers) == 2
    error.refresh_from_db()
    assert error.resolution == "resolved"


@pytest.mark.django_db
def test_engine_imports_parties_and_then_only_changed_ones(engine):
    engine.fake.add_party("Karnaphuli Traders", "vendor", email="a@karna.test")

    first = sync_run(connection=engine.connection, entity="contacts", direction="import")
    engine.connection.refresh_from_db()
    cursor = engine.connection.cursors["contacts"]
    engine.fake.parties["Karnaphuli Traders"].update(
        email="accounts@karna.test", version=engine.fake._bump()
    )
    second = sync_run(connection=engine.connection, entity="contacts", direction="import")

    assert (first.status, first.records_succeeded) == ("succeeded", 2)
    assert (second.status, second.records_processed) == ("succeeded", 1)
    party = Party.objects.get(company=engine.connection.company, name="Karnaphuli Traders")
    assert (party.kind, party.email) == ("vendor", "accounts@karna.test")
    last = [r for r in engine.fake.log.entries if r.path == "/masters"][-1]
    assert (last.param("type"), last.param("since")) == ("parties", cursor)


@pytest.mark.django_db
def test_a_voucher_post_that_times_out_is_not_repeated_but_a_read_is(busy):
    transport = TimeoutTransport(when=lambda r: r.method == "POST", forward=True, times=5)
    with pytest.raises(NetworkFailure):
        busy.connector_with_transport(transport).push_invoice(invoice(), ref=None)
    assert (transport.hits, len(busy.fake.vouchers)) == (1, 1)

    reads = TimeoutTransport(when=lambda r: r.method == "GET", times=1)
    assert busy.connector_with_transport(reads).test_connection()["success"] is True
    assert reads.hits == 1
