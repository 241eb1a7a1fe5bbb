"""The database refuses what accounting.services would never do: each test goes around Python
(raw SQL, QuerySet.update/delete, bulk_create) in a committing transaction and expects
PostgreSQL to say no."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounting import services
from accounting.models import AccountingPeriod, CostCenter, JournalEntry, JournalLine
from tests.accounting.conftest import account, post

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _period(company, day="2025-08-01"):
    return AccountingPeriod.objects.get(company=company, start_date__lte=day, end_date__gte=day)


def _raw_entry(company, day="2025-08-15", total="100.00", key="raw-1", period=None, **extra):
    period = period or _period(company, day)
    extra.setdefault("number", 9000)
    return JournalEntry.objects.create(
        **extra,
        company=company,
        fiscal_year=period.fiscal_year,
        period=period,
        date=day,
        idempotency_key=key,
        content_digest="raw",
        total=Decimal(total),
        posted_by_label="raw",
        posted_at=timezone.now(),
        prev_hash="0" * 64,
        entry_hash="0" * 64,
    )


def _line(entry, code, debit="0", credit="0", n=1, company=None):
    company = company or entry.company
    return JournalLine(
        entry=entry,
        company=company,
        line_no=n,
        account=account(company, code),
        debit=Decimal(debit),
        credit=Decimal(credit),
    )


@pytest.fixture
def posted(books):
    entry = post(books.a, "2025-08-01", ("1131", "1000.00", ""), ("4100", "", "1000.00"))
    return books, entry


def test_a_line_with_both_sides_or_a_negative_amount_is_refused(posted):
    books, _ = posted
    for debit, credit in (("5.00", "5.00"), ("-5.00", "0"), ("0", "0")):
        refused = pytest.raises(IntegrityError, match="journal_line_one_side_positive")
        with refused, transaction.atomic():
            entry = _raw_entry(books.a, total="5.00")
            JournalLine.objects.bulk_create([_line(entry, "1131", debit, credit)])


def test_an_unbalanced_entry_is_refused_at_commit(posted):
    books, _ = posted
    refused = pytest.raises(IntegrityError, match="does not balance.*difference 10.00")
    with refused, transaction.atomic():
        entry = _raw_entry(books.a)
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="100.00"), _line(entry, "4100", credit="90.00", n=2)]
        )
    assert not JournalEntry.objects.filter(idempotency_key="raw-1").exists()


def test_an_entry_with_one_line_is_refused_at_commit(posted):
    books, _ = posted
    with pytest.raises(IntegrityError, match="at least two"), transaction.atomic():
        entry = _raw_entry(books.a)
        JournalLine.objects.bulk_create([_line(entry, "1131", debit="100.00")])


def test_lines_that_disagree_with_the_entry_total_are_refused(posted):
    books, _ = posted
    with pytest.raises(IntegrityError, match="lines total 50.00"), transaction.atomic():
        entry = _raw_entry(books.a, total="100.00")
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="50.00"), _line(entry, "4100", credit="50.00", n=2)]
        )


def test_a_balanced_raw_entry_is_accepted(posted):
    """The triggers refuse bad entries only: a correct one written by hand commits."""
    books, _ = posted
    with transaction.atomic():
        entry = _raw_entry(books.a)
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="100.00"), _line(entry, "4100", credit="100.00", n=2)]
        )
    assert entry.lines.count() == 2


def test_posted_lines_cannot_be_updated_or_deleted(posted):
    _, entry = posted
    with pytest.raises(IntegrityError, match="cannot be updated"):
        JournalLine.objects.filter(entry=entry).update(debit=Decimal("1.00"))
    with pytest.raises(IntegrityError, match="cannot be deleted"):
        JournalLine.objects.filter(entry=entry).delete()
    with pytest.raises(IntegrityError, match="cannot be updated"), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounting_journalline SET credit = credit + 1 WHERE entry_id = %s",
            [entry.pk],
        )
    assert sorted(entry.lines.values_list("debit", "credit")) == [
        (Decimal("0.00"), Decimal("1000.00")),
        (Decimal("1000.00"), Decimal("0.00")),
    ]


def test_no_line_can_be_added_to_a_committed_entry(posted):
    books, entry = posted
    with pytest.raises(IntegrityError, match="already posted"):
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="5.00", n=3), _line(entry, "4100", credit="5.00", n=4)]
        )


def test_an_entry_only_moves_from_posted_to_reversed(posted):
    _, entry = posted
    with pytest.raises(IntegrityError, match="only allowed change"):
        JournalEntry.objects.filter(pk=entry.pk).update(memo="rewritten")
    with pytest.raises(IntegrityError, match="only allowed change"):
        JournalEntry.objects.filter(pk=entry.pk).update(status="reversed", total=Decimal("1"))
    with pytest.raises(IntegrityError, match="cannot be deleted"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounting_journalentry WHERE id = %s", [entry.pk])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounting_journalentry SET status = 'reversed' WHERE id = %s", [entry.pk]
        )
    with pytest.raises(IntegrityError, match="reversed -> posted"):
        JournalEntry.objects.filter(pk=entry.pk).update(status="posted")


@pytest.mark.parametrize("status", ["locked", "closed"])
def test_nothing_posts_into_a_locked_or_closed_period(posted, status):
    books, _ = posted
    period = _period(books.a, "2025-07-01")
    AccountingPeriod.objects.filter(pk=period.pk).update(status=status)
    with pytest.raises(IntegrityError, match=f"period is {status}"), transaction.atomic():
        entry = _raw_entry(books.a, day="2025-07-10", period=period)
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="100.00"), _line(entry, "4100", credit="100.00", n=2)]
        )


def test_an_entry_dated_outside_its_period_is_refused(posted):
    books, _ = posted
    with pytest.raises(IntegrityError, match="not in its period"):
        _raw_entry(books.a, day="2025-09-03", period=_period(books.a, "2025-08-01"))


@pytest.mark.parametrize(
    ("code", "change", "message"),
    [("1100", None, "is not postable"), ("6200", "inactive", "is inactive")],
)
def test_nothing_posts_to_a_header_or_inactive_account(posted, code, change, message):
    books, _ = posted
    if change:
        account(books.a, code).__class__.objects.filter(company=books.a, code=code).update(
            is_active=False
        )
    with pytest.raises(IntegrityError, match=f"account {code} {message}"), transaction.atomic():
        entry = _raw_entry(books.a)
        JournalLine.objects.bulk_create(
            [_line(entry, code, debit="100.00"), _line(entry, "4100", credit="100.00", n=2)]
        )


def test_a_line_cannot_use_another_companys_account(posted):
    books, _ = posted
    with pytest.raises(IntegrityError, match="another company"), transaction.atomic():
        entry = _raw_entry(books.a)
        foreign = _line(entry, "1131", debit="100.00")
        foreign.account = account(books.b, "1131")
        JournalLine.objects.bulk_create([foreign, _line(entry, "4100", credit="100.00", n=2)])


def test_services_still_post_after_all_this(posted):
    books, _ = posted
    entry = services.journal_entry_post(
        system_job="test",
        company=books.a,
        date=date(2025, 8, 2),
        lines=[
            {"account_code": "6200", "debit": "300.00"},
            {"account_code": "1131", "credit": "300.00"},
        ],
    )
    assert entry.reference == "JE/2025-26/000002"


def test_a_period_locked_while_a_posting_waits_refuses_it(posted):
    """The lock is taken by another transaction first and committed while the posting waits:
    the posting must see it and be refused, never land in the locked month."""
    import threading

    books, _ = posted
    period = _period(books.a, "2025-08-01")
    locked, go = threading.Event(), threading.Event()

    def locker():
        try:
            with transaction.atomic():
                services.period_lock(actor=None, period=period)
                locked.set()
                go.wait(5)
        finally:
            connection.close()

    thread = threading.Thread(target=locker)
    thread.start()
    locked.wait(5)
    timer = threading.Timer(0.5, go.set)
    timer.start()
    refusals = (IntegrityError, services.ValidationFailed, services.ConflictError)
    with pytest.raises(refusals, match="locked"):
        post(books.a, "2025-08-03", ("1131", "1.00", ""), ("4100", "", "1.00"))
    thread.join()
    assert not JournalEntry.objects.filter(date="2025-08-03").exists()


def test_a_line_for_a_missing_entry_is_refused(posted):
    """Lines carry no foreign-key constraint to their entry (it costs bulk posting a third of
    its commit); the line trigger refuses an orphan instead."""
    books, entry = posted
    orphan = _line(entry, "1131", debit="5.00", n=9)
    orphan.entry_id = entry.pk + 10_000
    with pytest.raises(IntegrityError, match="lines cannot be added"):
        JournalLine.objects.bulk_create([orphan])


def test_a_line_for_a_missing_account_or_dimension_is_refused(posted):
    books, _ = posted
    for field in ("account_id", "cost_center_id"):
        refused = pytest.raises(IntegrityError, match="missing")
        with refused, transaction.atomic():
            entry = _raw_entry(books.a)
            bad = _line(entry, "1131", debit="100.00")
            setattr(bad, field, 987654)
            JournalLine.objects.bulk_create([bad, _line(entry, "4100", credit="100.00", n=2)])


def test_accounts_and_dimensions_in_use_cannot_be_deleted(posted):
    books, entry = posted
    center = services.dimension_create(
        actor=None, company=books.a, model=CostCenter, code="D", name="D"
    )
    post(
        books.a,
        "2025-08-02",
        ("6200", "1.00", "", {"cost_center": center.pk}),
        ("1131", "", "1.00"),
    )
    for sql, value in (
        ("DELETE FROM accounting_account WHERE id = %s", account(books.a, "1131").pk),
        ("DELETE FROM accounting_costcenter WHERE id = %s", center.pk),
    ):
        with (
            pytest.raises(IntegrityError, match="cannot be deleted"),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [value])
    unused = services.account_create(
        actor=None, company=books.a, code="6999", name="Unused", type="expense"
    )
    services.account_delete(actor=None, account=unused)


def test_no_setting_or_early_check_lets_an_unbalanced_entry_through(posted):
    """Each INSERT statement queues its own balance check: a session setting, an explicit
    lower id or an early SET CONSTRAINTS cannot skip one."""
    books, _ = posted
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        entry = _raw_entry(books.a, key="raw-forged")
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="100.00"), _line(entry, "4100", credit="1.00", n=2)]
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config(%s, %s, true)",
                [f"kontor.ledger_checked_{books.a.pk}", str(entry.pk + 10**6)],
            )
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        high = _raw_entry(books.a, key="raw-high", id=9_000_000, number=9001)
        JournalLine.objects.bulk_create(
            [_line(high, "1131", debit="100.00"), _line(high, "4100", credit="100.00", n=2)]
        )
        low = _raw_entry(books.a, key="raw-low", id=8_000_000, number=9002)
        JournalLine.objects.bulk_create(
            [_line(low, "1131", debit="100.00"), _line(low, "4100", credit="1.00", n=2)]
        )
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        entry = _raw_entry(books.a, key="raw-late")
        JournalLine.objects.bulk_create(
            [_line(entry, "1131", debit="100.00"), _line(entry, "4100", credit="100.00", n=2)]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        JournalLine.objects.bulk_create([_line(entry, "1131", debit="999.00", n=3)])
    assert not JournalEntry.objects.filter(idempotency_key__startswith="raw-").exists()
