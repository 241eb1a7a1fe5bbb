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
    PushResult,
    ValidationFailure,
)
from accounting.integrations.models import AccountMapping, ExternalRef, SyncError
from accounting.integrations.sync import sync_run
from core.models import AuditEvent
from invoicing import services as invoicing
from invoicing.models import Party
from tests.integrations.conftest import connection_make
from tests.integrations.memory_connector import MemoryConnector

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
    conn.refresh_from_db()
    assert conn.cursors.get("contacts") is None  # not advanced by a partial run

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


def _import_queries(books, remote, *, name, start, page_size, pages, update=False):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    conn = connection_make(books.a, name=name, entities=["contacts"])
    remote.page_size = page_size
    remote.contacts = contacts(page_size * pages, start=start)
    if update:  # first import them, then count the run that updates every one of them
        sync_run(connection=conn, entity="contacts", direction="import")
        remote.contacts = [
            ExternalContact(external_id=c.external_id, name=c.name + " Ltd", version="2")
            for c in remote.contacts
        ]
    with CaptureQueriesContext(db) as captured:
        run = sync_run(connection=conn, entity="contacts", direction="import")
    assert (run.status, run.records_succeeded) == ("succeeded", page_size * pages)
    return len(captured.captured_queries)


@pytest.mark.parametrize("update", [False, True], ids=["create", "update"])
def test_contact_import_costs_queries_per_page_not_per_contact(books, remote, update):
    one_small = _import_queries(
        books, remote, name="A", start=100, page_size=3, pages=1, update=update
    )
    one_big = _import_queries(
        books, remote, name="B", start=200, page_size=25, pages=1, update=update
    )
    two_small = _import_queries(
        books, remote, name="C", start=300, page_size=3, pages=2, update=update
    )
    two_big = _import_queries(
        books, remote, name="D", start=400, page_size=25, pages=2, update=update
    )
    # a page of 25 costs what a page of 3 costs: nothing is per contact
    assert one_small == one_big and two_small == two_big
    # a second page adds a constant (refs, parties, bulk writes, one error-resolving UPDATE)
    per_page = two_small - one_small
    assert 0 < per_page <= 10
    audit = AuditEvent.objects.filter(action="party.updated" if update else "party.created")
    assert audit.count() == 3 + 25 + 6 + 50


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


@pytest.fixture
def alerts_run_here(monkeypatch):
    """The alert task runs in the test process (eagerly, with its retries) when queued."""
    from accounting.integrations import tasks

    queued = []

    def delay(connection_id):
        queued.append(connection_id)
        return tasks.integrations_connection_alert.apply(args=(connection_id,))

    monkeypatch.setattr(tasks.integrations_connection_alert, "delay", delay)
    return queued


def test_after_n_failures_in_a_row_the_connection_is_disabled_with_an_alert(
    conn, remote, settings, mailoutbox, django_capture_on_commit_callbacks, books, alerts_run_here
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
    assert alerts_run_here == [conn.pk]  # queued as a task after commit
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


def test_the_alert_email_is_retried_when_the_mail_server_fails(
    conn, books, monkeypatch, mailoutbox, alerts_run_here
):
    from django.core import mail

    from accounting.integrations import services as hub

    books.users_a["owner"].email = "owner@alpha.example"
    books.users_a["owner"].save()
    real_send, attempts = mail.send_mail, []

    def flaky(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError("smtp down")
        return real_send(*args, **kwargs)

    monkeypatch.setattr(hub, "send_mail", flaky)
    hub._alert_queue(conn.pk)
    assert len(attempts) == 2 and len(mailoutbox) == 1


# --- review 1: what the engine must not do ----------------------------------------------------


def test_an_account_validation_error_stays_open_and_resolving_is_one_update_per_page(conn, remote):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    remote.page_size = 2
    remote.accounts = [
        ExternalAccount(external_id="A1", code="1110", name="Cash", type="asset", version="1"),
        ExternalAccount(external_id="A2", code="9", name="", type="asset", version="2"),
        ExternalAccount(external_id="A3", code="4000", name="Sales", type="income", version="3"),
        ExternalAccount(external_id="", code="77", name="No id", type="asset", version="4"),
    ]
    with CaptureQueriesContext(db) as queries:
        run = sync_run(connection=conn, entity="accounts", direction="import")
    assert (run.status, run.records_succeeded, run.records_failed) == ("partial", 2, 2)
    errors = {e.external_id: e.resolution for e in SyncError.objects.filter(connection=conn)}
    assert errors == {"A2": "open", "(no id) 77": "open"}
    resolves = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and "integrations_syncerror" in q["sql"]
    ]
    assert len(resolves) == 3  # one per page (2) and the page-level one at the end
    # A2 fixed remotely: its error is resolved by the next run
    remote.accounts[1] = ExternalAccount(
        external_id="A2", code="9", name="Suspense", type="asset", version="5"
    )
    sync_run(connection=conn, entity="accounts", direction="import")
    assert SyncError.objects.get(connection=conn, external_id="A2").resolution == "resolved"


def test_one_bad_invoice_or_a_conflict_does_not_disable_the_connection(
    conn, remote, sales, settings
):
    settings.INTEGRATIONS_MAX_CONSECUTIVE_FAILURES = 2
    invoice = sales.approved()
    for _ in range(3):
        remote.push_failures = {str(invoice.pk): ValidationFailure("Account 4000 is not mapped")}
        run = sync_run(connection=conn, entity="invoices", direction="export")
        assert run.status == "failed"
    conn.refresh_from_db()
    assert (conn.enabled, conn.consecutive_failures) == (True, 0)
    # ... while the connection itself failing twice does switch it off
    remote.fail_everything = NetworkFailure("could not connect")
    for _ in range(2):
        sync_run(connection=conn, entity="contacts", direction="import")
    conn.refresh_from_db()
    assert (conn.enabled, conn.consecutive_failures) == (False, 2)


def test_webhook_runs_neither_count_nor_reset_connection_failures(conn, remote, settings):
    from accounting.integrations.webhooks import _engine_run

    settings.INTEGRATIONS_MAX_CONSECUTIVE_FAILURES = 5
    remote.fail_everything = NetworkFailure("could not connect")
    sync_run(connection=conn, entity="contacts", direction="import")
    remote.fail_everything = None
    connector = MemoryConnector(conn, http=None)
    _engine_run(conn, "contacts", connector, contact=contacts(1)[0])
    conn.refresh_from_db()
    assert conn.consecutive_failures == 1  # the webhook's success says nothing of the rest


def test_a_webhook_run_leaves_the_page_errors_of_the_scheduled_import_open(conn, remote):
    from accounting.integrations.webhooks import _engine_run

    remote.contacts = contacts(4)
    remote.page_failures = {2: NetworkFailure("Read timed out on page 2")}
    sync_run(connection=conn, entity="contacts", direction="import")
    page_error = SyncError.objects.get(connection=conn)
    assert page_error.external_id == "" and page_error.resolution == "open"
    _engine_run(conn, "contacts", MemoryConnector(conn, http=None), contact=contacts(1, 7)[0])
    page_error.refresh_from_db()
    assert page_error.resolution == "open"  # pages 2.. still have not been read
    assert Party.objects.filter(name="Customer 7").exists()


def test_the_due_error_of_an_invoice_voided_since_is_closed_by_the_next_export(conn, remote, sales):
    from django.utils import timezone

    from accounting.integrations.connectors.base import ServerFailure

    invoice = sales.approved()
    remote.push_failures = {str(invoice.pk): ServerFailure("500")}
    sync_run(connection=conn, entity="invoices", direction="export")
    error = SyncError.objects.get(connection=conn)
    assert error.retryable
    invoicing.invoice_void(actor=sales.owner, invoice=invoice, reason="wrong customer")
    SyncError.objects.filter(pk=error.pk).update(next_retry_at=timezone.now())
    sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    error.refresh_from_db()
    assert (error.resolution, error.next_retry_at) == ("resolved", None)
    assert error.detail["note"] == "no longer selected for export"
    assert not services.sync_errors_due().filter(pk=error.pk).exists()
    assert remote.pushes == []  # nothing was sent for the voided invoice


def test_retrying_a_contact_error_refetches_that_contact(conn, remote, books, monkeypatch):
    remote.contacts = contacts(1)
    sync_run(connection=conn, entity="contacts", direction="import")
    party = Party.objects.get(name="Customer 1")
    invoicing.party_update(actor=None, party=party, email="local@example.com")
    changed = ExternalContact(external_id="C1", name="Customer 1", email="r@x.com", version="2")
    remote.contacts = [changed]
    ExternalRef.objects.filter(connection=conn).update(
        last_synced_at=party.updated_at.replace(year=party.updated_at.year - 1)
    )
    sync_run(connection=conn, entity="contacts", direction="import")
    error = SyncError.objects.get(connection=conn)
    assert error.category == "conflict"
    services.sync_error_retry(actor=books.users_a["owner"], error=error)
    # The incremental listing no longer names C1 (it has not changed again remotely) ...
    remote.contacts = []
    fetched = []

    def fetch_contact(self, external_id):
        fetched.append(external_id)
        return changed

    monkeypatch.setattr(MemoryConnector, "fetch_contact", fetch_contact)
    run = sync_run(connection=conn, entity="contacts", direction="import", sync_type="retry")
    assert fetched == ["C1"]  # ... so the retry re-fetched it by id
    error.refresh_from_db()
    # still changed on both sides: back to open (with one more attempt), not left "retrying"
    assert (error.resolution, error.retry_count, run.records_failed) == ("open", 1, 1)
    # The person takes the remote side (the local edit is undone): the next retry succeeds.
    ExternalRef.objects.filter(connection=conn).update(last_synced_at=party.updated_at)
    services.sync_error_retry(actor=books.users_a["owner"], error=error)
    sync_run(connection=conn, entity="contacts", direction="import", sync_type="retry")
    error.refresh_from_db()
    party.refresh_from_db()
    assert (error.resolution, party.email) == ("resolved", "r@x.com")


def test_a_cursor_returned_twice_is_a_malformed_reply_not_the_end(conn, remote, monkeypatch):
    from accounting.integrations.connectors.base import Page

    remote.contacts = contacts(2)

    def fetch_contacts(self, *, cursor=None, since=None):
        return Page(items=contacts(2) if cursor is None else [], next_cursor="same")

    monkeypatch.setattr(MemoryConnector, "fetch_contacts", fetch_contacts)
    run = sync_run(connection=conn, entity="contacts", direction="import")
    assert run.status == "partial" and "cursor" in run.error_summary
    error = SyncError.objects.get(connection=conn)
    assert (error.category, error.retryable) == ("server", False)
    conn.refresh_from_db()
    assert conn.cursors.get("contacts") is None  # the listing was not complete


# --- lost replies --------------------------------------------------------------------------


class IdempotentMemory(MemoryConnector):
    """Creates carry an idempotency key the remote honours (as QuickBooks and Xero do): a
    repeated key is answered with the record the first create made."""

    idempotent_creates = frozenset({"invoices"})
    keys: list = []
    replies: dict = {}

    def push_invoice(self, invoice, *, ref, idempotency_key=""):
        self.keys.append(idempotency_key)
        if idempotency_key in self.replies:
            return self.replies[idempotency_key]
        try:
            result = self._push(invoice.kind, invoice, ref)
        except NetworkFailure:  # created, reply lost: the remote still knows the key
            self.replies[idempotency_key] = PushResult(list(self.remote.created)[-1], "0")
            raise
        self.replies[idempotency_key] = result
        return result


def _lose_the_reply_and_forget_the_number(remote, invoice, monkeypatch):
    """The create goes through remotely, the reply is lost, and the system cannot be searched
    for it (find_by_reference: None)."""
    remote.lose_reply = {str(invoice.pk)}
    monkeypatch.setattr(MemoryConnector, "find_by_reference", lambda self, *a, **k: None)


def test_an_unconfirmed_lost_create_is_not_pushed_blind(conn, remote, sales, monkeypatch, books):
    invoice = sales.approved()
    _lose_the_reply_and_forget_the_number(remote, invoice, monkeypatch)
    sync_run(connection=conn, entity="invoices", direction="export")
    assert len(remote.created) == 1
    run = sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    assert (run.status, run.records_failed) == ("failed", 1)
    assert len(remote.created) == 1 and len(remote.pushes) == 1  # nothing sent again
    error = SyncError.objects.get(connection=conn, local_id=str(invoice.pk))
    assert (
        error.message == f"outcome unknown: check Zoho Books for {invoice.number} before retrying"
    )
    assert (error.category, error.retryable, error.next_retry_at) == ("conflict", False, None)
    assert "Retry" in error.suggested_fix
    conn.refresh_from_db()
    assert conn.enabled and conn.consecutive_failures == 0
    # A person checked Zoho Books, did not find it, pressed Retry: it is sent again.
    remote.created.clear()
    services.sync_error_retry(actor=books.users_a["owner"], error=error)
    sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    assert len(remote.created) == 1
    error.refresh_from_db()
    assert error.resolution == "resolved"


def test_a_lost_create_is_repeated_with_the_same_key_when_creates_are_idempotent(
    conn, remote, sales, monkeypatch
):
    from accounting.integrations.connectors import register

    IdempotentMemory.keys, IdempotentMemory.replies = [], {}
    register("zoho_books", IdempotentMemory)
    invoice = sales.approved()
    _lose_the_reply_and_forget_the_number(remote, invoice, monkeypatch)
    sync_run(connection=conn, entity="invoices", direction="export")
    # The record changes locally before the retry (its body hash with it): the key does not.
    invoicing.party_update(actor=None, party=invoice.customer, name="Renamed customer")
    ExternalRef.objects.filter(connection=conn).update(last_synced_hash="")
    run = sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    assert run.status == "succeeded"
    first, second = IdempotentMemory.keys
    assert first == second and first.startswith("kontor-") and len(first) <= 50
    assert len(remote.created) == 1  # replayed, not created twice
    ref = ExternalRef.objects.get(connection=conn, local_id=str(invoice.pk))
    assert ref.external_id == next(iter(remote.created))


def test_a_refused_create_leaves_no_pending_ref_and_is_simply_sent_again(conn, remote, sales):
    invoice = sales.approved()
    remote.push_failures = {str(invoice.pk): ValidationFailure("Customer missing")}
    sync_run(connection=conn, entity="invoices", direction="export")
    assert not ExternalRef.objects.filter(connection=conn).exists()  # certainly not created
    run = sync_run(connection=conn, entity="invoices", direction="export", sync_type="retry")
    assert run.status == "succeeded" and remote.lookups == []
    assert len(remote.created) == 1
