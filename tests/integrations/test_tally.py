"""The Tally connector against the fake Tally XML server (real HTTP on loopback).

Figures: invoice INV-1 is one widget line of 1,000.00 with 15% VAT (150.00): in Tally the party
Acme Ltd is debited 1,150.00 (AMOUNT -1150.00, ISDEEMEDPOSITIVE Yes), Sales credited 1,000.00 and
Output VAT credited 150.00; the three amounts sum to zero.
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
from accounting.integrations.connectors.tally import (
    TallyConnector,
    _suggested_fix,
    decode_reply,
    parse_import_result,
    parse_reply,
)
from accounting.integrations.http import http_client_for
from accounting.integrations.models import AccountMapping, ExternalRef, SyncError
from accounting.integrations.sync import sync_run
from invoicing.models import Party
from tests.integrations.conftest import connection_make
from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)
from tests.integrations.fakes.tally import FakeTally, TimeoutTransport

D = Decimal


@dataclass
class TallySetup:
    fake: FakeTally
    server: object
    connection: object
    connector: TallyConnector
    sleeps: list

    def connector_with_transport(self, transport) -> TallyConnector:
        http = http_client_for(self.connection, sleep=self.sleeps.append, transport=transport)
        return connector_for(self.connection, http=http)

    def last_import(self):
        bodies = [r.body for r in self.fake.log.entries if b"Import Data" in r.body]
        return fromstring(bodies[-1])


@pytest.fixture
def tally(tenants, loopback_server, fast_retries):  # noqa: F811
    fake = FakeTally(company="Alpha Traders")
    fake.add_ledger(
        "Acme Ltd", "Sundry Debtors", email="ap@acme.test", address=["12 Motijheel", "Dhaka"]
    )
    fake.add_group("Dhaka Vendors", "Sundry Creditors")
    fake.add_ledger("Paper Mills", "Dhaka Vendors", gstin="000123456-0101")
    fake.add_ledger("Sales", "Sales Accounts")
    fake.add_ledger("Output VAT", "Duties & Taxes")
    fake.add_ledger("Dhaka Bank", "Bank Accounts")
    fake.add_ledger("Rent", "Indirect Expenses")
    server = loopback_server(fake)
    connection = connection_make(
        tenants.a,
        system="tally",
        name="Tally",
        credentials={},
        settings={"host": "127.0.0.1", "port": server.port, "company": "Alpha Traders"},
    )
    sleeps: list[float] = []
    connector = connector_for(
        connection, http=http_client_for(connection, sleep=sleeps.append, timeout=5)
    )
    return TallySetup(fake, server, connection, connector, sleeps)


def invoice(
    local_id="11", number="INV-1", ledger="Sales", kind="invoice", amount="1000.00", vat="150.00"
):
    return InvoicePayload(
        local_id=local_id,
        number=number,
        kind=kind,
        date=date(2026, 1, 5),
        due_date=date(2026, 2, 4),
        contact_external_id="",
        contact_name="Acme Ltd",
        currency="BDT",
        lines=[LinePayload("Widget", "4000", ledger, D(amount), D(vat))],
        total=D(amount) + D(vat),
        tax_total=D(vat),
    )


def ref_for(setup, result, local_id="11", entity="invoice"):
    return ExternalRef.objects.create(
        company=setup.connection.company,
        connection=setup.connection,
        entity=entity,
        local_type="invoicing.invoice",
        local_id=local_id,
        external_id=result.external_id,
        external_version=result.version,
    )


# --- connection test and masters --------------------------------------------------------------


@pytest.mark.django_db
def test_connection_test_reports_version_and_latency(tally):
    result = tally.connector.test_connection()

    assert result["success"] is True
    assert result["version"] == "TallyPrime 6.0"
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
    assert "Alpha Traders" in result["message"]
    # the newer request form: VERSION 1 / TALLYREQUEST Export / TYPE Collection / ID
    sent = fromstring(tally.fake.log.entries[-1].body)
    assert sent.findtext("HEADER/VERSION") == "1"
    assert sent.findtext("HEADER/TALLYREQUEST") == "Export"
    assert sent.findtext("HEADER/TYPE") == "Collection"


@pytest.mark.django_db
def test_connection_test_names_a_company_that_is_not_open(tally):
    tally.connection.settings["company"] = "Gamma Ltd"

    result = tally.connector.test_connection()

    assert result["success"] is False
    assert "Gamma Ltd" in result["message"]


@pytest.mark.django_db
def test_connection_test_when_tally_is_not_running(tally, settings):
    tally.server.stop()

    result = tally.connector.test_connection()

    assert result["success"] is False
    assert "could not connect" in result["message"]


@pytest.mark.django_db
def test_default_address_is_port_9000():
    connection = type("C", (), {"settings": {"host": "tally.office.lan"}})()
    assert TallyConnector.base_url(connection) == "http://tally.office.lan:9000"


@pytest.mark.django_db
def test_chart_of_accounts_with_parent_groups_uses_the_classic_request(tally):
    page = tally.connector.fetch_accounts()

    by_name = {a.name: a for a in page.items}
    assert page.next_cursor is None
    assert by_name["Sales"].parent_id == "Sales Accounts"
    assert by_name["Sales"].type == "Sales Accounts"
    # a ledger under a sub-group of Sundry Creditors is classified by its primary group
    assert by_name["Paper Mills"].parent_id == "Dhaka Vendors"
    assert by_name["Paper Mills"].type == "Current Liabilities"
    assert by_name["Output VAT"].type == "Current Liabilities"
    assert by_name["Dhaka Bank"].external_id == tally.fake.ledgers["Dhaka Bank"]["guid"]
    sent = fromstring(tally.fake.log.entries[-1].body)
    assert sent.findtext("HEADER/TALLYREQUEST") == "Export Data"
    assert sent.findtext("BODY/EXPORTDATA/REQUESTDESC/REPORTNAME") == "List of Accounts"


@pytest.mark.django_db
def test_contacts_are_the_debtor_and_creditor_ledgers_page_by_page(tally):
    tally.connection.settings["page_size"] = 3
    for n in range(5):
        tally.fake.add_ledger(f"Customer {n}", "Sundry Debtors")

    contacts, cursor, pages = [], None, 0
    while True:
        page = tally.connector.fetch_contacts(cursor=cursor)
        contacts += page.items
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break

    names = [c.name for c in contacts]
    assert sorted(names) == sorted(
        ["Acme Ltd", "Paper Mills"] + [f"Customer {n}" for n in range(5)]
    )
    assert len(names) == len(set(names))
    assert pages == 5  # AlterIDs 1..14 in windows of 3
    acme = next(c for c in contacts if c.name == "Acme Ltd")
    assert (acme.kind, acme.email, acme.address) == (
        "customer",
        "ap@acme.test",
        "12 Motijheel, Dhaka",
    )
    mills = next(c for c in contacts if c.name == "Paper Mills")
    assert (mills.kind, mills.tax_id) == ("vendor", "000123456-0101")


@pytest.mark.django_db
def test_fetch_one_contact_by_guid(tally):
    guid = tally.fake.ledgers["Acme Ltd"]["guid"]

    assert tally.connector.fetch_contact(guid).name == "Acme Ltd"
    with pytest.raises(NotFound):
        tally.connector.fetch_contact("no-such-guid")


# --- exports ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sales_invoice_becomes_a_balanced_sales_voucher(tally):
    result = tally.connector.push_invoice(invoice(), ref=None)

    company_id = tally.connection.company_id
    assert result.external_id == f"kontor-{company_id}-invoice-11"
    (voucher,) = tally.fake.vouchers
    assert voucher.vch_type == "Sales"
    assert voucher.party == "Acme Ltd"
    assert voucher.date == "20260105"
    assert voucher.entries == [
        ("Acme Ltd", D("-1150.00")),
        ("Sales", D("1000.00")),
        ("Output VAT", D("150.00")),
    ]
    assert result.version == str(voucher.alter_id)
    sent = tally.last_import().find("BODY/IMPORTDATA/REQUESTDATA/TALLYMESSAGE/VOUCHER")
    assert sent.get("ACTION") == "Create"
    assert sent.get("REMOTEID") == result.external_id
    party_line = sent.findall("ALLLEDGERENTRIES.LIST")[0]
    assert party_line.findtext("ISDEEMEDPOSITIVE") == "Yes"
    assert party_line.findtext("AMOUNT") == "-1150.00"
    assert party_line.findtext("BILLALLOCATIONS.LIST/BILLTYPE") == "New Ref"
    assert sum(D(e.findtext("AMOUNT")) for e in sent.findall("ALLLEDGERENTRIES.LIST")) == 0


@pytest.mark.django_db
def test_invoice_of_an_imported_party_uses_its_current_tally_ledger_name(tally):
    guid = tally.fake.ledgers["Acme Ltd"]["guid"]
    tally.fake.ledgers["Acme Ltd (Dhaka)"] = {
        **tally.fake.ledgers.pop("Acme Ltd"),
        "name": "Acme Ltd (Dhaka)",
    }
    payload = invoice()
    payload = InvoicePayload(**{**payload.__dict__, "contact_external_id": guid})

    tally.connector.push_invoice(payload, ref=None)

    assert tally.fake.vouchers[0].party == "Acme Ltd (Dhaka)"
    assert tally.fake.vouchers[0].entries[0] == ("Acme Ltd (Dhaka)", D("-1150.00"))


@pytest.mark.django_db
def test_credit_note_reverses_the_sides(tally):
    tally.connector.push_invoice(
        invoice(local_id="12", number="CN-1", kind="credit_note", amount="200", vat="30"), ref=None
    )

    (voucher,) = tally.fake.vouchers
    assert voucher.vch_type == "Credit Note"
    assert voucher.entries == [
        ("Acme Ltd", D("230.00")),
        ("Sales", D("-200.00")),
        ("Output VAT", D("-30.00")),
    ]


@pytest.mark.django_db
def test_payment_is_a_receipt_against_the_invoice_party(tally):
    sale = tally.connector.push_invoice(invoice(), ref=None)
    payment = PaymentPayload(
        local_id="5",
        invoice_external_id=sale.external_id,
        invoice_number="INV-1",
        date=date(2026, 1, 20),
        amount=D("1150.00"),
        account_code="1200",
        account_name="Dhaka Bank",
        reference="RCPT-1",
    )

    tally.connector.push_payment(payment, ref=None)

    receipt = tally.fake.vouchers[-1]
    assert receipt.vch_type == "Receipt"
    assert receipt.entries == [("Dhaka Bank", D("-1150.00")), ("Acme Ltd", D("1150.00"))]
    bill = tally.last_import().find(".//ALLLEDGERENTRIES.LIST/BILLALLOCATIONS.LIST")
    assert (bill.findtext("NAME"), bill.findtext("BILLTYPE")) == ("INV-1", "Agst Ref")


@pytest.mark.django_db
def test_payment_before_its_invoice_is_a_retryable_not_found(tally):
    payment = PaymentPayload(
        "5", "kontor-1-invoice-999", "INV-9", date(2026, 1, 20), D("10"), "1200", "Dhaka Bank"
    )

    with pytest.raises(NotFound) as caught:
        tally.connector.push_payment(payment, ref=None)

    assert caught.value.retryable is True
    assert tally.fake.vouchers == []


@pytest.mark.django_db
def test_journal_entry_is_a_journal_voucher(tally):
    journal = JournalPayload(
        local_id="3",
        reference="JE-2026-0003",
        date=date(2026, 1, 31),
        memo="January rent",
        lines=[
            LinePayload("Rent", "6100", "Rent", D("25000.00"), debit=True),
            LinePayload("Bank", "1200", "Dhaka Bank", D("25000.00"), debit=False),
        ],
    )

    tally.connector.push_journal(journal, ref=None)

    (voucher,) = tally.fake.vouchers
    assert (voucher.vch_type, voucher.number, voucher.narration) == (
        "Journal",
        "JE-2026-0003",
        "January rent",
    )
    assert voucher.entries == [("Rent", D("-25000.00")), ("Dhaka Bank", D("25000.00"))]


@pytest.mark.django_db
def test_unbalanced_journal_is_refused_before_sending(tally):
    journal = JournalPayload(
        "4",
        "JE-4",
        date(2026, 1, 31),
        "",
        [
            LinePayload("Rent", "", "Rent", D("10"), debit=True),
            LinePayload("Bank", "", "Dhaka Bank", D("9")),
        ],
    )
    sent_before = len(tally.fake.log)

    with pytest.raises(ValidationFailure):
        tally.connector.push_journal(journal, ref=None)

    assert len(tally.fake.log) == sent_before


@pytest.mark.django_db
def test_re_export_alters_the_voucher_never_duplicates(tally):
    first = tally.connector.push_invoice(invoice(), ref=None)
    ref = ref_for(tally, first)

    second = tally.connector.push_invoice(invoice(amount="2000.00", vat="300.00"), ref=ref)

    assert len(tally.fake.vouchers) == 1
    assert second.external_id == first.external_id
    assert int(second.version) > int(first.version)
    assert tally.fake.vouchers[0].entries[0] == ("Acme Ltd", D("-2300.00"))
    sent = tally.last_import().find(".//VOUCHER")
    assert sent.get("ACTION") == "Alter"


@pytest.mark.django_db
def test_voucher_changed_in_tally_since_export_is_a_conflict(tally):
    first = tally.connector.push_invoice(invoice(), ref=None)
    ref = ref_for(tally, first)
    tally.fake.alter_voucher(first.external_id, narration="edited by the accountant")

    with pytest.raises(ConflictFailure) as caught:
        tally.connector.push_invoice(invoice(amount="2000.00", vat="300.00"), ref=ref)

    assert caught.value.category == "conflict"
    assert tally.fake.vouchers[0].narration == "edited by the accountant"
    assert tally.fake.vouchers[0].entries[0] == ("Acme Ltd", D("-1150.00"))


@pytest.mark.django_db
def test_voucher_deleted_in_tally_is_not_found(tally):
    first = tally.connector.push_invoice(invoice(), ref=None)
    ref = ref_for(tally, first)
    tally.fake.vouchers.clear()

    with pytest.raises(NotFound):
        tally.connector.push_invoice(invoice(), ref=ref)


@pytest.mark.django_db
@pytest.mark.parametrize("shape", ["envelope", "response"])
def test_lineerror_for_an_unknown_ledger_fails_that_voucher_only(tally, shape):
    tally.fake.import_shape = shape

    with pytest.raises(ValidationFailure) as caught:
        tally.connector.push_invoice(
            invoice(local_id="21", number="INV-21", ledger="Sales 5%"), ref=None
        )
    tally.connector.push_invoice(invoice(local_id="22", number="INV-22"), ref=None)

    failure = caught.value
    assert failure.category == "validation"
    assert "Ledger 'Sales 5%' does not exist" in failure.message
    assert "INV-21" in failure.message
    assert "map the Kontor account" in failure.suggested_fix
    assert failure.detail["remote_id"].endswith("-invoice-21")
    assert [v.number for v in tally.fake.vouchers] == ["INV-22"]


# --- the wire: retries, timeouts, malformed and encoded replies --------------------------------


@pytest.mark.django_db
def test_export_5xx_then_success_is_retried(tally):
    tally.fake.add_fault("500", when=lambda info: info["kind"] == "list_of_accounts", times=2)

    page = tally.connector.fetch_accounts()

    assert "Sales" in {a.name for a in page.items}
    assert len(tally.sleeps) == 2  # two backoffs, three attempts


@pytest.mark.django_db
def test_export_5xx_every_time_is_a_server_failure(tally):
    tally.fake.add_fault("500", when=lambda info: info["kind"] == "list_of_accounts", times=99)

    with pytest.raises(ServerFailure) as caught:
        tally.connector.fetch_accounts()

    assert caught.value.retryable is True
    assert caught.value.detail["attempts"] == 3


@pytest.mark.django_db
def test_import_500_is_not_blindly_repeated_and_the_retry_creates_once(tally):
    tally.fake.add_fault("500", when=lambda info: info["kind"] == "import")

    with pytest.raises(ServerFailure):
        tally.connector.push_invoice(invoice(), ref=None)
    tally.connector.push_invoice(invoice(), ref=None)

    assert len(tally.fake.vouchers) == 1


@pytest.mark.django_db
def test_export_timeout_is_retried(tally):
    # A transport raises ReadTimeout once after Tally answered (no sleep racing a timeout).
    transport = TimeoutTransport(times=1, forward=True)
    connector = tally.connector_with_transport(transport)

    assert connector.fetch_accounts().items
    assert (transport.hits, len(tally.sleeps), len(tally.fake.log)) == (1, 1, 2)


@pytest.mark.django_db
def test_timeouts_every_time_are_a_network_failure(tally):
    transport = TimeoutTransport(times=99)
    connector = tally.connector_with_transport(transport)

    with pytest.raises(NetworkFailure) as caught:
        connector.fetch_contacts()

    assert caught.value.retryable is True
    assert transport.hits == len(tally.sleeps) + 1  # every attempt timed out


@pytest.mark.django_db
def test_lost_import_reply_then_retry_alters_instead_of_duplicating(tally):
    # Tally saves the voucher, but its reply is cut off.
    tally.fake.add_fault("drop", when=lambda info: info["kind"] == "import")

    with pytest.raises(NetworkFailure):
        tally.connector.push_invoice(invoice(), ref=None)
    assert len(tally.fake.vouchers) == 1
    imports = [r for r in tally.fake.log.entries if b"Import" in r.body]
    assert len(imports) == 1  # an import is not repeated within the call
    found = tally.connector.find_by_reference("invoice", "11", "INV-1")
    result = tally.connector.push_invoice(invoice(), ref=None)

    assert found is not None and found.external_id == result.external_id
    assert len(tally.fake.vouchers) == 1
    assert tally.last_import().find(".//VOUCHER").get("ACTION") == "Alter"


@pytest.mark.django_db
def test_malformed_reply_is_a_malformed_reply_failure(tally):
    tally.fake.add_fault("malformed", when=lambda info: info["kind"] == "list_of_accounts")

    with pytest.raises(MalformedReply) as caught:
        tally.connector.fetch_accounts()

    assert caught.value.category == "server"
    assert caught.value.retryable is False


@pytest.mark.django_db
def test_utf16_replies_are_decoded(tally):
    tally.fake.encoding = "utf-16"
    tally.fake.add_ledger("Café Dhaka ঢাকা", "Sundry Debtors")

    contacts = tally.connector.fetch_contacts().items
    result = tally.connector.push_invoice(invoice(), ref=None)

    assert "Café Dhaka ঢাকা" in {c.name for c in contacts}
    assert result.version == str(tally.fake.vouchers[0].alter_id)


@pytest.mark.django_db
def test_control_characters_in_replies_are_stripped(tally):
    tally.fake.add_fault("garbage", when=lambda info: info["kind"] == "list_of_accounts")

    assert "Sales" in {a.name for a in tally.connector.fetch_accounts().items}


# --- incremental sync and paging ---------------------------------------------------------------


@pytest.mark.django_db
def test_alterid_incremental_sync_returns_only_what_changed(tally):
    sale = tally.connector.push_invoice(invoice(), ref=None)
    changes, cursor = tally.connector.fetch_changes(since=None)
    assert {c.external_id for c in changes} >= {
        sale.external_id,
        tally.fake.ledgers["Acme Ltd"]["guid"],
    }
    assert cursor == f"{tally.fake.master_alter_id}:{tally.fake.voucher_alter_id}"

    tally.fake.alter_ledger("Paper Mills", email="sales@mills.test")
    tally.fake.alter_voucher(sale.external_id, narration="fixed")
    tally.fake.add_ledger("Interest", "Indirect Incomes")
    changes, new_cursor = tally.connector.fetch_changes(since=cursor)

    assert [(c.entity, c.external_id) for c in changes] == [
        ("contact", tally.fake.ledgers["Paper Mills"]["guid"]),
        ("account", tally.fake.ledgers["Interest"]["guid"]),
        ("invoice", sale.external_id),
    ]
    assert new_cursor == f"{tally.fake.master_alter_id}:{tally.fake.voucher_alter_id}"
    assert tally.connector.fetch_changes(since=new_cursor) == ([], new_cursor)


@pytest.mark.django_db
def test_paged_export_failing_halfway_resumes_from_the_cursor_without_duplicates(tally):
    tally.connection.settings["page_size"] = 4
    for n in range(6):
        tally.fake.add_ledger(f"Customer {n}", "Sundry Debtors")
    # every attempt at the second window fails
    tally.fake.add_fault(
        "500", when=lambda info: info["type"] == "ledger" and info["after"] == 4, times=3
    )

    first = tally.connector.fetch_contacts()
    with pytest.raises(ServerFailure):
        tally.connector.fetch_contacts(cursor=first.next_cursor)
    # the next run resumes at the failed page
    names = [c.name for c in first.items]
    cursor = first.next_cursor
    while cursor:
        page = tally.connector.fetch_contacts(cursor=cursor)
        names += [c.name for c in page.items]
        cursor = page.next_cursor

    assert sorted(names) == sorted(
        ["Acme Ltd", "Paper Mills"] + [f"Customer {n}" for n in range(6)]
    )
    assert len(names) == len(set(names))


# --- parsing ----------------------------------------------------------------------------------


def test_decode_by_bom_declaration_and_charset():
    text = "<ENVELOPE><NAME>Café</NAME></ENVELOPE>"
    assert decode_reply(b"\xff\xfe" + text.encode("utf-16-le")) == text
    assert decode_reply(b"\xfe\xff" + text.encode("utf-16-be")) == text
    assert decode_reply(text.encode("utf-16-le"), "text/xml; charset=utf-16") == text
    assert decode_reply(text.encode("utf-16-be"), "text/xml") == text  # no BOM, no charset
    assert decode_reply(text.encode("cp1252"), "text/xml; charset=windows-1252") == text
    declared = '<?xml version="1.0" encoding="UTF-16"?>' + text
    assert parse_reply(declared.encode("utf-16-le")).findtext("NAME") == "Café"
    assert decode_reply(text.encode("utf-8")) == text


def test_import_result_in_both_shapes():
    envelope = parse_reply(
        b"<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>1</STATUS></HEADER><BODY><DESC/><DATA>"
        b"<IMPORTRESULT><CREATED>0</CREATED><ALTERED>0</ALTERED><ERRORS>1</ERRORS>"
        b"<LINEERROR>Ledger 'X' does not exist!</LINEERROR></IMPORTRESULT></DATA></BODY></ENVELOPE>"
    )
    bare = parse_reply(
        b"<RESPONSE><CREATED>1</CREATED><ALTERED>0</ALTERED><LASTVCHID>42</LASTVCHID>"
        b"<ERRORS>0</ERRORS><EXCEPTIONS>0</EXCEPTIONS></RESPONSE>"
    )

    assert parse_import_result(envelope).errors == 1
    assert parse_import_result(envelope).line_errors == ["Ledger 'X' does not exist!"]
    assert (parse_import_result(bare).created, parse_import_result(bare).last_voucher_id) == (
        1,
        "42",
    )


def test_entity_expansion_is_refused():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>'
    )
    with pytest.raises(MalformedReply):
        parse_reply(bomb)


# --- through the sync engine -----------------------------------------------------------------


@pytest.fixture
def engine(sales, loopback_server, fast_retries):  # noqa: F811
    """Company A's books and sales parties, and a Tally holding the matching masters: the
    customer Dhaka Retail Ltd (not Padma Bank PLC), "Sales revenue" and "Output VAT"."""
    fake = FakeTally(company="Alpha Traders")
    fake.add_ledger("Dhaka Retail Ltd", "Sundry Debtors")
    fake.add_ledger("Sales revenue", "Sales Accounts")
    fake.add_ledger("Output VAT", "Duties & Taxes")
    server = loopback_server(fake)
    connection = connection_make(
        sales.company,
        system="tally",
        name="Tally",
        credentials={},
        settings={"host": "127.0.0.1", "port": server.port, "company": "Alpha Traders"},
        entities=["accounts", "contacts", "invoices"],
    )
    run = sync_run(connection=connection, entity="accounts", direction="import")
    assert run.status == "succeeded"
    assert (
        AccountMapping.objects.get(
            connection=connection, external_name="Sales revenue"
        ).account.code
        == "4100"
    )
    return SimpleNamespace(fake=fake, server=server, connection=connection, sales=sales)


@pytest.mark.django_db
def test_engine_export_one_voucher_rejected_run_is_partial_with_one_validation_error(engine):
    sales = engine.sales
    good = [sales.approved(), sales.approved()]
    bad = sales.approved(customer=sales.withholding)  # Padma Bank PLC has no Tally ledger

    run = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 2, 1)
    error = SyncError.objects.get(connection=engine.connection)
    assert (error.category, error.local_id, error.resolution) == ("validation", str(bad.pk), "open")
    assert "Ledger 'Padma Bank PLC' does not exist" in error.message
    assert "map the Kontor account" in error.suggested_fix
    assert [v.number for v in engine.fake.vouchers] == [i.number for i in good]
    # 100.00 + 15% VAT each: Dr party 115.00, Cr Sales revenue 100.00, Cr Output VAT 15.00
    assert engine.fake.vouchers[0].entries == [
        ("Dhaka Retail Ltd", D("-115.00")),
        ("Sales revenue", D("100.00")),
        ("Output VAT", D("15.00")),
    ]

    # the ledger is created in Tally; the next run exports only the failed invoice
    engine.fake.add_ledger("Padma Bank PLC", "Sundry Debtors")
    again = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert (again.status, again.records_succeeded, again.records_failed) == ("succeeded", 1, 0)
    assert len(engine.fake.vouchers) == 3
    error.refresh_from_db()
    assert error.resolution == "resolved"
    refs = ExternalRef.objects.filter(connection=engine.connection, entity="invoice")
    assert sorted(r.external_id for r in refs) == sorted(v.remote_id for v in engine.fake.vouchers)


@pytest.mark.django_db
def test_engine_re_export_of_a_changed_invoice_alters_it(engine):
    invoice = engine.sales.approved()
    sync_run(connection=engine.connection, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=engine.connection, entity="invoice")
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="stale")  # as if edited

    run = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert (run.status, run.records_succeeded) == ("succeeded", 1)
    assert len(engine.fake.vouchers) == 1
    assert engine.fake.vouchers[0].number == invoice.number
    ref.refresh_from_db()
    assert ref.external_version == str(engine.fake.vouchers[0].alter_id)


@pytest.mark.django_db
def test_engine_lost_reply_then_retry_duplicates_nothing(engine):
    invoices = [engine.sales.approved(), engine.sales.approved()]
    engine.fake.add_fault("drop", when=lambda info: info["kind"] == "import")

    run = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert run.status == "failed"  # a network failure stops the run
    assert SyncError.objects.get(connection=engine.connection).category == "network"
    assert len(engine.fake.vouchers) == 1  # Tally did save the first voucher

    again = sync_run(connection=engine.connection, entity="invoices", direction="export")

    assert (again.status, again.records_succeeded) == ("succeeded", 2)
    assert sorted(v.number for v in engine.fake.vouchers) == sorted(i.number for i in invoices)


@pytest.mark.django_db
def test_engine_contacts_paging_failing_halfway_is_partial_and_the_rerun_duplicates_nothing(engine):
    engine.connection.settings["page_size"] = 3
    engine.connection.save()
    for n in range(4):
        engine.fake.add_ledger(f"Customer {n}", "Sundry Debtors")  # AlterIDs 6..9
    engine.fake.add_fault(
        "500", when=lambda info: info["type"] == "ledger" and info["after"] == 6, times=3
    )

    run = sync_run(connection=engine.connection, entity="contacts", direction="import")

    assert run.status == "partial"
    assert run.records_succeeded == 2  # window (3, 6]: Dhaka Retail Ltd's ledger and Customer 0
    error = SyncError.objects.get(connection=engine.connection)
    assert (error.category, error.retryable) == ("server", True)
    engine.connection.refresh_from_db()
    assert engine.connection.cursors.get("contacts") is None

    again = sync_run(connection=engine.connection, entity="contacts", direction="import")

    assert again.status == "succeeded"
    imported = Party.objects.filter(company=engine.connection.company, name__startswith="Customer ")
    assert sorted(imported.values_list("name", flat=True)) == [f"Customer {n}" for n in range(4)]
    assert ExternalRef.objects.filter(connection=engine.connection, entity="contact").count() == 5


@pytest.mark.django_db
def test_engine_alterid_incremental_import_takes_only_changed_contacts(engine):
    engine.fake.encoding = "utf-16"
    engine.fake.add_ledger("Karnaphuli Traders", "Sundry Debtors", email="a@karna.test")
    first = sync_run(connection=engine.connection, entity="contacts", direction="import")
    assert (first.status, first.records_succeeded) == ("succeeded", 2)
    engine.connection.refresh_from_db()
    cursor = engine.connection.cursors["contacts"]
    assert cursor == str(engine.fake.master_alter_id)

    engine.fake.alter_ledger("Karnaphuli Traders", email="accounts@karna.test")
    second = sync_run(connection=engine.connection, entity="contacts", direction="import")

    assert (second.status, second.records_processed) == ("succeeded", 1)
    assert Party.objects.get(
        company=engine.connection.company, name="Karnaphuli Traders"
    ).email == ("accounts@karna.test")
    windows = [
        fromstring(r.body.decode("utf-8"))
        for r in engine.fake.log.entries
        if b"KontorParties" in r.body
    ]
    assert f"$AlterID > {cursor}" in [s.text for s in windows[-1].iter("SYSTEM")]
    engine.connection.refresh_from_db()
    assert engine.connection.cursors["contacts"] == str(engine.fake.master_alter_id)


# --- review fixes -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_masters_and_vouchers_keep_separate_alterid_cursors(tally):
    """Vouchers run far ahead of masters in AlterIDs: a ledger altered after the latest voucher
    still carries a master AlterID below the voucher cursor, and must not be skipped."""
    for n in range(12):
        tally.connector.push_invoice(invoice(local_id=str(100 + n), number=f"INV-{n}"), ref=None)
    assert tally.fake.voucher_alter_id > tally.fake.master_alter_id + 2
    _, cursor = tally.connector.fetch_changes(since=None)

    tally.fake.alter_ledger("Paper Mills", email="ap@mills.test")
    changes, _ = tally.connector.fetch_changes(since=cursor)

    assert [(c.entity, c.external_id) for c in changes] == [
        ("contact", tally.fake.ledgers["Paper Mills"]["guid"])
    ]
    # An older single-number cursor stands for both series.
    changes, _ = tally.connector.fetch_changes(since=str(tally.fake.master_alter_id - 1))
    assert ("contact", tally.fake.ledgers["Paper Mills"]["guid"]) in [
        (c.entity, c.external_id) for c in changes
    ]


def test_replies_with_a_dtd_are_refused():
    doctype = b'<?xml version="1.0"?><!DOCTYPE ENVELOPE [<!ELEMENT ENVELOPE ANY>]><ENVELOPE/>'
    with pytest.raises(MalformedReply):
        parse_reply(doctype, "text/xml; charset=utf-8")


@pytest.mark.parametrize(
    ("message", "company_hint"),
    [
        ("Could not set 'SVCurrentCompany' to 'Beta Traders'", True),
        ("No company is open", True),
        ("Company 'Beta Traders' does not exist", True),
        ("Voucher totals do not match! Dr: 115.00 Cr: 100.00 (Company Car ledger)", False),
        ("Cost centre 'Company Events' is not allowed here", False),
    ],
)
def test_company_hint_only_for_company_problems(message, company_hint):
    fix = _suggested_fix(message)
    assert ("Open the company in Tally" in fix) is company_hint
