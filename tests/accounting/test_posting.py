"""Posting, idempotency, numbering, reversal and refusals through accounting.services."""

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from accounting import services
from accounting.models import (
    AccountBalance,
    AccountingPeriod,
    CostCenter,
    JournalEntry,
    JournalLine,
)
from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from tests.accounting.conftest import account, post

pytestmark = pytest.mark.django_db

SALE = (("1131", "1000.00", ""), ("4100", "", "1000.00"))


def _balance(company, code):
    rows = AccountBalance.objects.filter(company=company, account__code=code)
    return sum((r.debit - r.credit for r in rows), Decimal("0.00"))


def test_a_sale_posts_with_number_lines_and_balances(books):
    entry = post(books.a, "2025-08-01", *SALE, memo="Cash sale")
    assert entry.reference == "JE/2025-26/000001"
    assert entry.total == Decimal("1000.00")
    assert entry.period.start_date == date(2025, 8, 1)
    assert entry.status == "posted"
    assert list(
        entry.lines.order_by("line_no").values_list("account__code", "debit", "credit")
    ) == [
        ("1131", Decimal("1000.00"), Decimal("0.00")),
        ("4100", Decimal("0.00"), Decimal("1000.00")),
    ]
    assert _balance(books.a, "1131") == Decimal("1000.00")
    assert _balance(books.a, "4100") == Decimal("-1000.00")
    assert entry.prev_hash == "0" * 64 and len(entry.entry_hash) == 64
    from core.models import AuditEvent

    event = AuditEvent.objects.get(action="journal_entry.posted")
    assert (event.object_id, event.object_repr, event.actor_label) == (
        str(entry.pk),
        "JE/2025-26/000001",
        "system:test",
    )
    assert event.after == {
        "number": "JE/2025-26/000001",
        "date": "2025-08-01",
        "total": "1000.00",
        "source": "manual",
    }


def test_numbers_are_per_fiscal_year_and_per_company(books):
    first = post(books.a, "2025-08-01", *SALE)
    second = post(books.a, "2026-06-30", *SALE)
    next_year = post(books.a, "2026-07-01", *SALE)
    other_company = post(books.b, "2026-03-01", *SALE)
    assert [first.reference, second.reference, next_year.reference] == [
        "JE/2025-26/000001",
        "JE/2025-26/000002",
        "JE/2026-27/000001",
    ]
    assert other_company.reference == "JE/2026/000001"
    assert next_year.prev_hash == second.entry_hash  # one chain per company, across years


def test_a_refused_posting_leaves_no_gap(books):
    post(books.a, "2025-08-01", *SALE)
    with pytest.raises(ValidationFailed):
        post(books.a, "2025-08-02", ("1131", "10.00", ""), ("4100", "", "9.00"))
    assert post(books.a, "2025-08-03", *SALE).number == 2


def test_same_key_same_content_returns_the_first_entry(books):
    first = post(books.a, "2025-08-01", *SALE, idempotency_key="inv-1")
    again = post(books.a, "2025-08-01", *SALE, idempotency_key="inv-1")
    assert again.pk == first.pk
    assert JournalEntry.objects.filter(company=books.a).count() == 1
    assert _balance(books.a, "1131") == Decimal("1000.00")


def test_same_key_different_content_is_a_conflict_and_writes_nothing(books):
    post(books.a, "2025-08-01", *SALE, idempotency_key="inv-1")
    with pytest.raises(ConflictError) as caught:
        post(books.a, "2025-08-01", ("1131", "999.00", ""), ("4100", "", "999.00"),
             idempotency_key="inv-1")  # fmt: skip
    assert caught.value.code == "idempotency_conflict"
    assert caught.value.http_status == 409
    assert JournalEntry.objects.filter(company=books.a).count() == 1


def test_the_same_key_in_another_company_is_independent(books):
    a = post(books.a, "2025-08-01", *SALE, idempotency_key="inv-1")
    b = post(books.b, "2026-03-01", ("1131", "5.00", ""), ("4100", "", "5.00"),
             idempotency_key="inv-1")  # fmt: skip
    assert a.pk != b.pk


@pytest.mark.parametrize(
    ("lines", "code", "message"),
    [
        (
            (("1131", "100.00", ""), ("4100", "", "90.00")),
            "unbalanced",
            "debits exceed credits by 10.00",
        ),
        ((("1131", "100.00", ""),), "too_few_lines", "at least two lines"),
        ((("9999", "100.00", ""), ("4100", "", "100.00")), "unknown_account", "code 9999"),
        ((("1100", "100.00", ""), ("4100", "", "100.00")), "account_not_postable", "header"),
        ((("1131", "100.005", ""), ("4100", "", "100.005")), "too_many_decimals", "2 decimal"),
        ((("1131", "-100.00", ""), ("4100", "-100.00", "")), "negative_amount", "negative"),
        ((("1131", "100.00", "100.00"), ("4100", "", "100.00")), "both_sides", "not both"),
        ((("1131", "0", ""), ("4100", "", "0")), "zero_amount", "zero"),
        ((("1131", "abc", ""), ("4100", "", "1")), "invalid_amount", "not a number"),
    ],
)
def test_bad_entries_are_refused_with_a_code_and_nothing_is_written(books, lines, code, message):
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2025-08-01", *lines)
    assert caught.value.code == code
    assert message in caught.value.message
    assert not JournalEntry.objects.exists()
    assert not AccountBalance.objects.exists()


def test_unbalanced_names_the_difference(books):
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2025-08-01", ("1131", "100.00", ""), ("4100", "", "112.50"))
    assert caught.value.fields == {"difference": ["-12.50"]}
    assert "credits exceed debits by 12.50" in caught.value.message


def test_floats_are_refused(books):
    with pytest.raises(ValidationFailed) as caught:
        services.journal_entry_post(
            company=books.a,
            date="2025-08-01",
            lines=[{"account_code": "1131", "debit": 0.1}, {"account_code": "4100", "credit": 0.1}],
        )
    assert caught.value.code == "invalid_amount"


def test_inactive_accounts_and_dimensions_and_foreign_ones_are_refused(books):
    services.account_deactivate(actor=None, account=account(books.a, "6200"))
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2025-08-01", ("6200", "1.00", ""), ("1131", "", "1.00"))
    assert caught.value.code == "account_inactive"
    foreign = account(books.b, "6300")
    with pytest.raises(ValidationFailed) as caught:
        services.journal_entry_post(
            company=books.a,
            date="2025-08-01",
            lines=[{"account": foreign.pk, "debit": "1"}, {"account_code": "1131", "credit": "1"}],
        )
    assert caught.value.code == "unknown_account"
    center = services.dimension_create(
        actor=None, company=books.b, model=CostCenter, code="X", name="Beta's"
    )
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2025-08-01", ("6300", "1.00", "", {"cost_center": center.pk}),
             ("1131", "", "1.00"))  # fmt: skip
    assert caught.value.code == "unknown_dimension"


@pytest.mark.parametrize("status", ["locked", "closed"])
def test_locked_and_closed_periods_refuse_postings(books, status):
    period = AccountingPeriod.objects.get(company=books.a, start_date=date(2025, 7, 1))
    getattr(services, {"locked": "period_lock", "closed": "period_close"}[status])(
        actor=None, period=period
    )
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2025-07-15", *SALE)
    assert caught.value.code == f"period_{status}"
    assert f"is {status}" in caught.value.message


def test_a_date_without_a_fiscal_year_is_refused(books):
    with pytest.raises(ValidationFailed) as caught:
        post(books.a, "2031-01-01", *SALE)
    assert caught.value.code == "no_fiscal_year"
    assert "2030-07-01" in caught.value.message


def test_account_roles_resolve_for_other_modules(books):
    entry = services.journal_entry_post(
        system_job="payroll",
        company=books.a,
        date="2025-08-31",
        lines=[
            {"account_role": "salary_expense", "debit": "50000.00"},
            {"account_role": "payroll_tax_payable", "credit": "2500.00"},
            {"account_role": "salaries_payable", "credit": "47500.00"},
        ],
        source_type="payroll_run",
        source_id="7",
    )
    codes = list(entry.lines.order_by("line_no").values_list("account__code", flat=True))
    assert codes == ["6100", "2220", "2210"]
    assert entry.posted_by_label == "system:payroll"


def test_only_owners_and_accountants_post(books):
    with pytest.raises(PermissionDeniedError):
        post(books.a, "2025-08-01", *SALE, actor=books.users_a["clerk"])
    assert (
        post(books.a, "2025-08-01", *SALE, actor=books.users_a["accountant"]).posted_by
        == (books.users_a["accountant"])
    )


# --- bulk ------------------------------------------------------------------------------------


def _spec(day, amount, key, debit="6200", credit="1131"):
    return {
        "date": day,
        "idempotency_key": key,
        "lines": [
            {"account_code": debit, "debit": amount},
            {"account_code": credit, "credit": amount},
        ],
    }


def test_bulk_posts_all_with_consecutive_numbers_and_one_audit_event(books):
    from core.models import AuditEvent

    entries = services.journal_entries_post_bulk(
        system_job="import",
        company=books.a,
        entries=[
            _spec("2025-08-01", "100.00", "b1"),
            _spec("2025-09-01", "200.00", "b2"),
            _spec("2026-07-02", "300.00", "b3"),
        ],  # fmt: skip
    )
    assert [e.reference for e in entries] == [
        "JE/2025-26/000001",
        "JE/2025-26/000002",
        "JE/2026-27/000001",
    ]
    assert _balance(books.a, "6200") == Decimal("600.00")
    event = AuditEvent.objects.get(action="journal_entries.bulk_posted")
    assert event.after["entries"] == 3 and event.after["lines"] == 6


def test_bulk_is_all_or_nothing_and_names_the_bad_entry(books):
    with pytest.raises(ValidationFailed) as caught:
        services.journal_entries_post_bulk(
            company=books.a,
            entries=[_spec("2025-08-01", "100.00", "b1"), _spec("2025-08-01", "1.001", "b2")],
        )
    assert caught.value.message.startswith("Entry 2: line 1:")
    assert not JournalEntry.objects.exists()


def test_a_retried_bulk_posts_nothing_twice(books):
    batch = [_spec("2025-08-01", "100.00", "b1"), _spec("2025-08-02", "200.00", "b2")]
    first = services.journal_entries_post_bulk(company=books.a, entries=batch[:1])
    both = services.journal_entries_post_bulk(company=books.a, entries=batch)
    assert both[0].pk == first[0].pk
    assert JournalEntry.objects.count() == 2
    assert _balance(books.a, "6200") == Decimal("300.00")
    with pytest.raises(ValidationFailed) as caught:
        services.journal_entries_post_bulk(company=books.a, entries=[batch[0], batch[0]])
    assert caught.value.code == "duplicate_idempotency_key"


# --- reversal --------------------------------------------------------------------------------


def test_reversal_mirrors_the_entry_and_marks_it_reversed(books):
    entry = post(books.a, "2025-08-01", *SALE)
    reversal = services.journal_entry_reverse(
        actor=books.users_a["accountant"], entry=entry, date="2025-08-10", reason="Duplicate"
    )
    entry.refresh_from_db()
    assert entry.status == "reversed"
    assert reversal.reversal_of == entry and reversal.reversal_reason == "Duplicate"
    assert reversal.memo == "Reversal of JE/2025-26/000001: Duplicate"
    assert list(
        reversal.lines.order_by("line_no").values_list("account__code", "debit", "credit")
    ) == [
        ("1131", Decimal("0.00"), Decimal("1000.00")),
        ("4100", Decimal("1000.00"), Decimal("0.00")),
    ]
    assert _balance(books.a, "1131") == Decimal("0.00")
    with pytest.raises(ConflictError) as caught:
        services.journal_entry_reverse(entry=entry, date="2025-08-11", reason="again")
    assert caught.value.code == "already_reversed"
    with pytest.raises(ConflictError):
        services.journal_entry_reverse(entry=reversal, date="2025-08-11", reason="undo")


def test_reversal_needs_a_reason_and_a_date_not_before_the_entry(books):
    entry = post(books.a, "2025-08-10", *SALE)
    with pytest.raises(ValidationFailed):
        services.journal_entry_reverse(entry=entry, date="2025-08-11", reason=" ")
    with pytest.raises(ValidationFailed) as caught:
        services.journal_entry_reverse(entry=entry, date="2025-08-09", reason="x")
    assert caught.value.code == "invalid_date"
    assert JournalEntry.objects.get(pk=entry.pk).status == "posted"


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_postings_get_gapless_numbers_and_one_chain(books):
    errors = []

    def worker(n):
        try:
            for i in range(10):
                post(books.a, "2025-08-01", ("6200", "1.00", ""), ("1131", "", "1.00"),
                     idempotency_key=f"t{n}-{i}")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = list(JournalEntry.objects.filter(company=books.a).order_by("pk"))
    assert [e.number for e in entries] == list(range(1, 61))
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:], strict=False))
    assert JournalLine.objects.filter(company=books.a).count() == 120


@pytest.mark.parametrize(
    ("debit", "code"),
    [
        (True, "invalid_amount"),
        ("1e30", "invalid_amount"),
        ("1_000", "invalid_amount"),
        (" 5", "invalid_amount"),
        ("10000000000000.00", "invalid_amount"),
        ("NaN", "invalid_amount"),
    ],
)
def test_odd_amounts_are_refused_not_crashed_on(books, debit, code):
    with pytest.raises(ValidationFailed) as caught:
        services.journal_entry_post(
            company=books.a,
            date="2025-08-01",
            lines=[
                {"account_code": "1131", "debit": debit},
                {"account_code": "4100", "credit": "1"},
            ],
        )
    assert caught.value.code == code


def test_callers_cannot_forge_reversals_closing_entries_or_overlong_text(books):
    entry = post(books.a, "2025-08-01", *SALE)
    spec = _spec("2025-08-02", "1.00", "x")
    for extra, code in (
        ({"reversal_of_id": entry.pk}, "invalid"),
        ({"source_type": "year_end_close"}, "reserved_source_type"),
        ({"memo": "m" * 501}, "text_too_long"),
        ({"date": "0001-01-01"}, "invalid_date"),
    ):
        with pytest.raises(ValidationFailed) as caught:
            services.journal_entries_post_bulk(company=books.a, entries=[{**spec, **extra}])
        assert caught.value.code == code
    with pytest.raises(ValidationFailed):
        services.journal_entry_post(company=books.a, date="2025-08-02", lines=[
            {"account": True, "debit": "1"}, {"account_code": "4100", "credit": "1"}])  # fmt: skip
    assert JournalEntry.objects.count() == 1


def test_a_replay_says_so(books):
    first = post(books.a, "2025-08-01", *SALE, idempotency_key="k")
    again = post(books.a, "2025-08-01", *SALE, idempotency_key="k")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.reference == first.reference


def test_malformed_lines_are_refused_not_crashed_on(books):
    for lines in ([["x"], {"account_code": "4100", "credit": "1"}], "not a list"):
        with pytest.raises(ValidationFailed):
            services.journal_entry_post(company=books.a, date="2025-08-01", lines=lines)


def test_a_one_entry_bulk_is_audited_as_a_bulk(books):
    from core.models import AuditEvent

    services.journal_entries_post_bulk(company=books.a, entries=[_spec("2025-08-01", "5.00", "b")])
    assert AuditEvent.objects.filter(action="journal_entries.bulk_posted").count() == 1
    assert not AuditEvent.objects.filter(action="journal_entry.posted").exists()
