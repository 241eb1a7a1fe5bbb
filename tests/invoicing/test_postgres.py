"""Database backstops and concurrency on PostgreSQL (skipped on SQLite, required under CI)."""

import threading
from datetime import date

import pytest
from django.db import IntegrityError, connection, connections, transaction

from accounting import services as ledger
from core.errors import ConflictError
from invoicing import services
from invoicing.models import Invoice, InvoiceCounter, InvoiceEvent
from tests.factories import CompanyFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.postgres


@pytest.mark.django_db(transaction=True)
def test_event_rows_cannot_be_updated_or_deleted_by_raw_sql(sales):
    draft = sales.draft()
    event_id = InvoiceEvent.objects.get(stream_id=draft.stream_id).pk
    for sql in (
        "UPDATE invoicing_invoiceevent SET payload = '{}'::jsonb WHERE id = %s",
        "UPDATE invoicing_invoiceevent SET version = 9 WHERE id = %s",
        "DELETE FROM invoicing_invoiceevent WHERE id = %s",
    ):
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event_id])
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceEvent.objects.filter(pk=event_id).update(type="Tampered")
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceEvent.objects.filter(pk=event_id).delete()
    assert InvoiceEvent.objects.get(pk=event_id).type == "InvoiceDrafted"


@pytest.mark.django_db(transaction=True)
def test_log_readers_wait_for_appends_in_flight(sales):
    """An append in flight holds back the readers' horizon: a consumer never moves its
    checkpoint past an event that could still commit behind it."""
    from invoicing.events import log_horizon

    draft = sales.draft()
    first = InvoiceEvent.objects.get(stream_id=draft.stream_id).pk
    assert log_horizon() == first
    appending = threading.Event()
    release = threading.Event()
    horizons = []

    def appender():
        with transaction.atomic():
            services.invoice_edit_draft(actor=sales.clerk, invoice=draft.pk, notes="in flight")
            appending.set()
            release.wait(10)
        connections.close_all()

    def reader():
        appending.wait(10)
        horizons.append(log_horizon())  # waits until the appender commits
        connections.close_all()

    threads = [threading.Thread(target=appender), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    appending.wait(10)
    import time

    time.sleep(0.3)
    assert horizons == []  # still waiting for the append in flight
    release.set()
    for t in threads:
        t.join()
    assert horizons == [first + 1]


def _company_with_drafts(n):
    company = CompanyFactory(name="Concurrent Co", slug="concurrent")
    owner = UserFactory(username="conc-owner")
    MembershipFactory(user=owner, company=company, role="owner")
    ledger.company_ledger_setup(company=company)
    ledger.fiscal_year_create(actor=None, company=company, containing=date(2025, 7, 1))
    services.vat_rates_seed(company=company)
    customer = services.party_create(actor=owner, company=company, name="Buyer")
    drafts = [
        services.invoice_create_draft(
            actor=owner,
            company=company,
            customer=customer,
            issue_date=date(2025, 9, 1),
            lines=[
                {
                    "description": "Unit",
                    "quantity": "1",
                    "unit_price": f"{100 + i}.00",
                    "vat_rate": "VAT15",
                }
            ],
        )
        for i in range(n)
    ]
    return company, owner, drafts


def _run_threads(count, target):
    errors = []

    def wrapped(index):
        try:
            target(index)
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_400_approvals_from_8_threads_get_exactly_1_to_400():
    company, owner, drafts = _company_with_drafts(400)
    ids = [d.pk for d in drafts]

    def approve(index):
        for pk in ids[index::8]:
            services.invoice_approve(actor=owner, invoice=pk)

    assert _run_threads(8, approve) == []
    rows = Invoice.objects.filter(company=company)
    assert sorted(rows.values_list("sequence", flat=True)) == list(range(1, 401))
    assert rows.filter(status="approved").count() == 400
    assert len(set(rows.values_list("number", flat=True))) == 400
    assert InvoiceCounter.objects.get(company=company, series="INV").last == 400
    assert set(rows.values_list("journal_entry__status", flat=True)) == {"posted"}


@pytest.mark.django_db(transaction=True)
def test_two_writers_on_one_invoice_one_wins_and_no_number_is_lost():
    company, owner, drafts = _company_with_drafts(1)
    pk = drafts[0].pk
    barrier = threading.Barrier(2)
    outcomes = []

    def approve(_index):
        invoice = Invoice.objects.get(pk=pk)
        barrier.wait()
        try:
            services.invoice_approve(actor=owner, invoice=invoice, expected_version=1)
            outcomes.append("ok")
        except ConflictError as exc:
            outcomes.append(exc.code)

    assert _run_threads(2, approve) == []
    assert sorted(outcomes) == ["ok", "stale_version"]
    invoice = Invoice.objects.get(pk=pk)
    assert (invoice.version, invoice.number) == (2, "INV/2025-26/000001")
    assert InvoiceCounter.objects.get(company=company, series="INV").last == 1


def test_approval_is_a_handful_of_round_trips(sales, django_assert_max_num_queries):
    """Row lock + stream + appenders' lock, rates + customer, number, the ledger's posting
    (savepoint, one batch of look-ups, counter, one insert statement, release), the events, the
    read model and the audit row, inside the test's own savepoint: thirteen statements, whatever
    the number of lines."""
    draft = sales.draft(*[sales.line(description=f"Line {i}") for i in range(5)])
    draft = type(draft).objects.select_related("company").get(pk=draft.pk)
    with django_assert_max_num_queries(13):
        services.invoice_approve(actor=None, invoice=draft)


@pytest.mark.django_db(transaction=True)
def test_rebuild_holds_off_a_draft_created_during_the_replay(sales, monkeypatch):
    """A draft created while the rebuild replays waits for the rebuild to commit, then lands:
    its read-model row is not deleted as stale, and rebuilt rows equal live ones."""
    from invoicing import projection

    sales.approved()
    real = projection._replay_all
    made, done = {}, threading.Event()

    def writer():
        try:
            made["inv"] = sales.draft()
        finally:
            done.set()
            connections.close_all()

    def replay_while_writing(company_id):
        out = real(company_id)
        thread = threading.Thread(target=writer)
        thread.start()
        made["waited"] = not done.wait(1.0)  # still blocked after a second
        made["thread"] = thread
        return out

    monkeypatch.setattr(projection, "_replay_all", replay_while_writing)
    projection.projections_rebuild(company=sales.company)
    made["thread"].join(10)
    assert made["waited"]
    draft = made["inv"]
    assert Invoice.objects.filter(pk=draft.pk, status="draft").exists()
    assert InvoiceEvent.objects.filter(stream_id=draft.stream_id).count() == 1
    assert projection.projections_match(company=sales.company)
