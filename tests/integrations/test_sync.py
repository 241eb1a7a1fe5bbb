"""The sync engine against an in-memory connector: imports, exports, partial runs, retries
that duplicate nothing, conflicts recorded and never overwritten, disabling after failures."""

from datetime import date
from decimal import Decimal

import pytest

from accounting import services as ledger
from accounting.integrations import services
from accounting.integrations.connectors.base import (
    AuthFailure,
    ExternalAccount,
    ExternalContact,
    NetworkFailure,
    ValidationFailure,
)
from accounting.integrations.models import AccountMapping, ExternalRef, SyncError
from accounting.integrations.sync import sync_run
from core.models import AuditEvent
from invoicing import services as invoicing
from invoicing.models import Party
from tests.integrations.conftest import connection_make

pytestmark = pytest.mark.django_db


def contacts(n, start=1):
    return [
        ExternalContact(
            external_id=f"C{i}",
            name=f"Customer {i}",
            email=f"c{i}@example.com",
            tax_id="0017457070402" if i == 1 else "",
            version="1",
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def conn(books, remote):
    return connection_make(books.a, entities=["accounts", "contacts", "invoices", "payments"])


def imported_parties(company):
    return Party.objects.filter(company=company, name__startswith="Customer ")


# --- imports ---------------------------------------------------------------------------------


def test_contacts_import_creates_parties_and_refs_once(conn, remote):
    remote.contacts = contacts(5)
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert (run.status, run.records_processed, run.records_succeeded) == ("succeeded", 5, 5)
    assert imported_parties(conn.company).count() == 5
    first = Party.objects.get(name="Customer 1")
    assert first.bin == "0017457070402" and first.email == "c1@example.com"
    assert ExternalRef.objects.filter(connection=conn, entity="contact").count() == 5
    again = sync_run(connection=conn, entity="contacts", direction="import")
    assert (again.status, again.records_processed) == ("succeeded", 0)  # unchanged: skipped
    assert imported_parties(conn.company).count() == 5


def test_paging_that_fails_halfway_ends_partial_and_the_retry_duplicates_nothing(conn, remote):
    remote.contacts = contacts(6)  # pages of 2: C1-C2, C3-C4, C5-C6
    remote.page_failures = {2: NetworkFailure("Read timed out on page 2")}
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert run.status == "partial"
    assert (run.records_succeeded, run.records_failed) == (2, 0)
    assert "network" in run.error_summary
    assert imported_parties(conn.company).count() == 2  # page 1 kept
    error = SyncError.objects.get(connection=conn)
    assert (error.category, error.retryable, error.resolution) == ("network", True, "open")
    assert error.next_retry_at is not None and error.sync_run == run
    assert "cursor" not in conn.cursors.get("contacts", "")  # not advanced by a partial run
    conn.refresh_from_db()
    assert conn.cursors.get("contacts") is None

    remote.page_failures = {}
    retry = sync_run(connection=conn, entity="contacts", direction="import", sync_type="retry")
    assert (retry.status, retry.records_succeeded) == ("succeeded", 4)  # only C3..C6 were new
    assert imported_parties(conn.company).count() == 6
    assert ExternalRef.objects.filter(connection=conn, entity="contact").count() == 6
    error.refresh_from_db()
    assert error.resolution == "resolved"


def test_a_bad_record_fails_alone_and_the_run_goes_on(conn, remote):
    remote.contacts = [*contacts(2), ExternalContact(external_id="C9", name="  ")]
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 2, 1)
    error = SyncError.objects.get(connection=conn)
    assert (error.external_id, error.category, error.retryable) == ("C9", "validation", False)
    assert error.suggested_fix


def test_a_contact_changed_on_both_sides_is_a_conflict_not_an_overwrite(conn, remote):
    remote.contacts = contacts(1)
    sync_run(connection=conn, entity="contacts", direction="import")
    party = Party.objects.get(name="Customer 1")
    invoicing.party_update(actor=None, party=party, email="local@example.com")
    # ... and the remote changed it too
    remote.contacts = [
        ExternalContact(
            external_id="C1", name="Customer 1", email="remote@example.com", version="2"
        )
    ]
    # make the local change clearly later than the last sync
    ExternalRef.objects.filter(connection=conn).update(
        last_synced_at=party.updated_at.replace(year=party.updated_at.year - 1)
    )
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert (run.status, run.records_failed) == ("failed", 1)
    party.refresh_from_db()
    assert party.email == "local@example.com"  # kept
    error = SyncError.objects.get(connection=conn)
    assert (error.category, error.retryable, error.external_id) == ("conflict", False, "C1")


def test_accounts_import_into_mappings_matching_local_codes(conn, remote):
    remote.accounts = [
        ExternalAccount(external_id="A1", code="1110", name="Cash", type="asset", version="5"),
        ExternalAccount(
            external_id="A2", code="9999", name="Suspense X", type="asset", version="7"
        ),
    ]
    run = sync_run(connection=conn, entity="accounts", direction="import")
    assert run.status == "succeeded"
    mapped = AccountMapping.objects.get(connection=conn, external_id="A1")
    assert mapped.account.code == "1110"
    assert AccountMapping.objects.get(external_id="A2").account is None
    conn.refresh_from_db()
    assert conn.cursors["accounts"] == "7"  # numeric versions: the highest (AlterID style)
    sync_run(connection=conn, entity="accounts", direction="import")
    assert AccountMapping.objects.filter(connection=conn).count() == 2


# --- exports ---------------------------------------------------------------------------------


def test_invoices_are_exported_once_with_their_figures(conn, remote, sales):
    invoice = sales.approved(sales.line(quantity="2", unit_price="100.00"))
    sales.draft()  # drafts are not exported
    run = sync_run(connection=conn, entity="invoices", direction="export")
    assert (run.status, run.records_succeeded) == ("succeeded", 1)
    [(external_id, record)] = remote.created.items()
    payload = record["payload"]
    assert payload.number == invoice.number
    assert payload.total == Decimal("230.00") and payload.tax_total == Decimal("30.00")
    assert [(ln.amount, ln.tax_amount) for ln in payload.lines] == [
        (Decimal("200.00"), Decimal("30.00"))
    ]
    ref = ExternalRef.objects.get(connection=conn, local_type="invoicing.invoice")
    assert (ref.external_id, ref.local_id) == (external_id, str(invoice.pk))
    again = sync_run(connection=conn, entity="invoices", direction="export")
    assert again.records_processed == 0 and len(remote.pushes) == 1


def test_a_lost_reply_is_looked_up_not_pushed_twice(conn, remote, sales):
    invoice = sales.approved()
    remote.lose_reply = {str(invoice.pk)}
    run = sync_run(connection=conn, entity="invoices", direction="export")
    assert run.status == "failed"  # the only record: reply lost
    assert len(remote.created) == 1  # ... but it was created remotely
    ref = ExternalRef.objects.get(connection=conn, local_id=str(invoice.pk))
    assert ref.external_id.startswith("pending:")
    retry = sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    assert retry.status == "succeeded"
    assert remote.lookups == [str(invoice.pk)]
    assert len(remote.created) == 1 and remote.pushes == [("invoice", str(invoice.pk), "create")]
    ref.refresh_from_db()
    assert ref.external_id == next(iter(remote.created))
    assert SyncError.objects.get(connection=conn).resolution == "resolved"


def test_a_failed_push_is_retried_without_duplicates(conn, remote, sales):
    first, second = sales.approved(), sales.approved()
    remote.push_failures = {str(first.pk): ValidationFailure("Customer missing", retryable=True)}
    run = sync_run(connection=conn, entity="invoices", direction="export")
    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 1, 1)
    sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    assert sorted(rec["local_id"] for rec in remote.created.values()) == sorted(
        [str(first.pk), str(second.pk)]
    )
    assert len(remote.created) == 2


def test_a_remote_conflict_on_update_is_recorded_and_nothing_is_overwritten(conn, remote, sales):
    invoice = sales.approved()
    sync_run(connection=conn, entity="invoices", direction="export")
    ref = ExternalRef.objects.get(connection=conn, local_id=str(invoice.pk))
    ExternalRef.objects.filter(pk=ref.pk).update(last_synced_hash="changed-locally")
    remote.changed_remotely = {ref.external_id}
    run = sync_run(connection=conn, entity="invoices", direction="export")
    assert (run.status, run.records_failed) == ("failed", 1)
    error = SyncError.objects.get(connection=conn)
    assert (error.category, error.retryable, error.local_id) == ("conflict", False, str(invoice.pk))
    assert "5010" in error.message
    ref.refresh_from_db()
    assert (ref.external_version, ref.last_synced_hash) == ("0", "changed-locally")
    assert [p[2] for p in remote.pushes] == ["create"]  # no update went through


def test_payments_follow_their_exported_invoice(conn, remote, sales):
    invoice = sales.approved()
    invoicing.invoice_payment_record(
        actor=sales.owner, invoice=invoice, amount="50.00", date=date(2025, 8, 20), reference="R1"
    )
    early = sync_run(connection=conn, entity="payments", direction="export")
    assert early.records_processed == 0  # its invoice is not exported yet
    sync_run(connection=conn, entity="invoices", direction="export")
    run = sync_run(connection=conn, entity="payments", direction="export")
    assert run.records_succeeded == 1
    payment = [r["payload"] for r in remote.created.values() if r["kind"] == "payment"][0]
    invoice_ext = ExternalRef.objects.get(local_type="invoicing.invoice").external_id
    assert (payment.invoice_external_id, payment.amount) == (invoice_ext, Decimal("50.00"))


def test_journals_export_with_mapped_account_codes(books, remote):
    conn = connection_make(books.a, entities=["journals"])
    entry = ledger.journal_entry_post(
        company=books.a,
        date=date(2025, 9, 1),
        memo="Owner's capital",
        lines=[
            {"account_code": "1110", "debit": "1000.00"},
            {"account_role": "opening_balance_equity", "credit": "1000.00"},
        ],
        system_job="test",
    )
    from accounting.models import Account

    AccountMapping.objects.create(
        company=books.a,
        connection=conn,
        external_id="X-CASH",
        external_code="CASH-01",
        external_name="Cash in hand",
        account=Account.objects.get(company=books.a, code="1110"),
    )
    run = sync_run(connection=conn, entity="journals", direction="export")
    assert run.status == "succeeded"
    [record] = [r for r in remote.created.values() if r["local_id"] == str(entry.pk)]
    lines = record["payload"].lines
    assert [(ln.account_code, ln.amount, ln.debit) for ln in lines][0] == (
        "CASH-01",
        Decimal("1000.00"),
        True,
    )
    assert lines[1].debit is False and lines[1].amount == Decimal("1000.00")


# --- the connection --------------------------------------------------------------------------


def test_after_n_failures_in_a_row_the_connection_is_disabled_with_an_alert(
    conn, remote, settings, mailoutbox, django_capture_on_commit_callbacks, books
):
    settings.INTEGRATIONS_MAX_CONSECUTIVE_FAILURES = 3
    books.users_a["owner"].email = "owner@alpha.example"
    books.users_a["owner"].save()
    books.users_a["accountant"].email = "acc@alpha.example"
    books.users_a["accountant"].save()
    remote.contacts = contacts(2)
    remote.fail_everything = AuthFailure("401 Unauthorized")
    for expected in (1, 2):
        sync_run(connection=conn, entity="contacts", direction="import")
        conn.refresh_from_db()
        assert (conn.consecutive_failures, conn.enabled) == (expected, True)
    with django_capture_on_commit_callbacks(execute=True):
        sync_run(connection=conn, entity="contacts", direction="import")
    conn.refresh_from_db()
    assert (conn.consecutive_failures, conn.enabled) == (3, False)
    assert "auth" in conn.disabled_reason
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == ["acc@alpha.example", "owner@alpha.example"]
    assert AuditEvent.objects.filter(action="integrations.connection.disabled").count() == 1
    refused = sync_run(connection=conn, entity="contacts", direction="import")
    assert refused.status == "failed" and "disabled" in refused.error_summary


def test_a_success_resets_the_failure_count(conn, remote):
    remote.fail_everything = NetworkFailure("down")
    sync_run(connection=conn, entity="contacts", direction="import")
    remote.fail_everything = None
    remote.contacts = contacts(1)
    sync_run(connection=conn, entity="contacts", direction="import")
    conn.refresh_from_db()
    assert (conn.consecutive_failures, conn.last_sync_status) == (0, "succeeded")


def test_entity_and_direction_are_checked(conn):
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        sync_run(connection=conn, entity="contacts", direction="export")
    conn.direction = "export"
    with pytest.raises(ValidationFailed):
        sync_run(connection=conn, entity="contacts", direction="import")


def test_connection_test_records_latency_and_version(conn, remote, books):
    outcome = services.connection_test(actor=books.users_a["owner"], connection=conn)
    assert outcome == {"success": True, "latency_ms": 12, "version": "memory-1", "message": "OK"}
    conn.refresh_from_db()
    assert (conn.last_test_success, conn.last_test_latency_ms, conn.last_test_version) == (
        True,
        12,
        "memory-1",
    )
    remote.fail_everything = NetworkFailure("could not connect")
    outcome = services.connection_test(actor=books.users_a["owner"], connection=conn)
    assert outcome["success"] is False and "could not connect" in outcome["message"]


def test_metrics_and_summary_follow_the_runs(conn, remote):
    from prometheus_client import REGISTRY

    from accounting.integrations.selectors import connection_summary

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0

    before_ok = sample(
        "accounting_sync_total", system="zoho_books", entity="contacts", status="succeeded"
    )
    before_net = sample("accounting_sync_errors_total", category="network")
    remote.contacts = contacts(2)
    sync_run(connection=conn, entity="contacts", direction="import")
    remote.page_failures = {1: NetworkFailure("down")}
    remote.contacts = contacts(2, start=10)
    sync_run(connection=conn, entity="contacts", direction="import")
    assert (
        sample("accounting_sync_total", system="zoho_books", entity="contacts", status="succeeded")
        == before_ok + 1
    )
    assert sample("accounting_sync_errors_total", category="network") == before_net + 1
    summary = connection_summary(conn)
    assert (summary["runs"], summary["succeeded"], summary["failed"]) == (2, 1, 1)
    assert (summary["open_errors"], summary["retryable"]) == (1, 1)
    assert summary["linked"] == {"contact": 2}
