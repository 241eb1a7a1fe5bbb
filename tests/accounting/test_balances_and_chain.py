"""Per-period balances always equal what the journal lines say; the hash chain names the
first altered entry."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounting import selectors, services
from accounting.models import AccountBalance, CostCenter, Department, JournalEntry, Project

pytestmark = pytest.mark.django_db

POSTABLE = ["1110", "1131", "1200", "2110", "2210", "3100", "4100", "4200", "6100", "6200"]
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)
line = st.tuples(st.sampled_from(POSTABLE), amounts, st.integers(0, 2), st.integers(0, 2))
entry = st.tuples(
    st.integers(0, 729),  # days after 2025-07-01: two fiscal years
    st.lists(line, min_size=1, max_size=4),
    st.sampled_from(POSTABLE),
)


@pytest.fixture
def dims(books):
    make = services.dimension_create
    return {
        "cost_center": [None, *(make(actor=None, company=books.a, model=CostCenter,
                                     code=f"C{i}", name=f"C{i}").pk for i in (1, 2))],
        "project": [None, make(actor=None, company=books.a, model=Project, code="P", name="P").pk],
        "department": [None, make(actor=None, company=books.a, model=Department,
                                  code="D", name="D").pk],
    }  # fmt: skip


def _spec(offset, lines, balancing, cc_pick, proj_pick, dims):
    day = date(2025, 7, 1) + timedelta(days=offset)
    specs = [
        {
            "account_code": code,
            "debit": amount,
            "cost_center": dims["cost_center"][cc],
            "project": dims["project"][pj % 2],
        }
        for code, amount, cc, pj in lines
    ]
    total = sum((amount for _, amount, _, _ in lines), Decimal("0"))
    specs.append(
        {"account_code": balancing, "credit": total, "department": dims["department"][proj_pick]}
    )
    return {"date": day, "lines": specs}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(entry, min_size=1, max_size=6), reverse=st.booleans(), bulk=st.booleans())
def test_balances_match_a_rebuild_from_lines(books, dims, batch, reverse, bulk):
    specs = [_spec(o, lines, bal, 0, i % 2, dims) for i, (o, lines, bal) in enumerate(batch)]
    if bulk:
        posted = services.journal_entries_post_bulk(company=books.a, entries=specs)
    else:
        posted = [services.journal_entry_post(company=books.a, **spec) for spec in specs]
    if reverse:
        first = posted[0]
        services.journal_entry_reverse(entry=first, date=first.date, reason="property test")
    assert selectors.stored_balances(books.a) == selectors.rebuild_expected_balances(books.a)
    # The trial balance always balances, whatever was posted.
    report = selectors.trial_balance(company=books.a, date_to=date(2027, 6, 30))
    assert report["balanced"]


def test_rebuild_balances_repairs_a_damaged_table(books, capsys):
    from tests.accounting.conftest import post

    post(books.a, "2025-08-01", ("1131", "1000.00", ""), ("4100", "", "1000.00"))
    post(books.a, "2025-08-20", ("6200", "300.00", ""), ("1131", "", "300.00"))
    expected = selectors.stored_balances(books.a)
    AccountBalance.objects.filter(account__code="1131").update(debit=Decimal("1.00"))
    with pytest.raises(CommandError, match="differ"):
        call_command("rebuild_balances", "--check", "--company", "alpha")
    call_command("rebuild_balances", "--company", "alpha")
    assert selectors.stored_balances(books.a) == expected
    call_command("rebuild_balances", "--check")
    assert "alpha: 3 balance rows, match" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no company"):
        call_command("rebuild_balances", "--company", "nope")


def _tamper(sql, params):
    """What a tamperer with direct database access would do. On PostgreSQL the ledger's
    triggers refuse the UPDATE, so the tamperer first switches triggers off (superuser)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.mark.django_db(transaction=True)  # tamper after commit, as a real one would
def test_verify_ledger_names_the_first_altered_entry(books, capsys):
    from tests.accounting.conftest import post

    for day in ("2025-08-01", "2025-08-02", "2025-08-03"):
        post(books.a, day, ("1131", "100.00", ""), ("4100", "", "100.00"))
    post(books.b, "2026-02-01", ("1131", "5.00", ""), ("4100", "", "5.00"))
    call_command("verify_ledger")
    assert "alpha: 3 entries, chain intact" in capsys.readouterr().out

    second = JournalEntry.objects.get(company=books.a, number=2)
    _tamper(
        "UPDATE accounting_journalline SET debit = 10.00 WHERE entry_id = %s AND debit > 0",
        [second.pk],
    )
    with pytest.raises(CommandError) as caught:
        call_command("verify_ledger")
    message = str(caught.value)
    assert message.startswith(f"alpha: entry JE/2025-26/000002 (id {second.pk}) was altered")
    assert "1 entries before it are intact" in message
    assert "beta: 1 entries, chain intact" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)  # tamper after commit, as a real one would
def test_verify_ledger_catches_a_changed_date_and_a_removed_entry(books):
    from tests.accounting.conftest import post

    entries = [
        post(books.a, day, ("1131", "100.00", ""), ("4100", "", "100.00"))
        for day in ("2025-08-01", "2025-08-02", "2025-08-03")
    ]
    _tamper("UPDATE accounting_journalentry SET date = %s WHERE id = %s",
            ["2025-08-09", entries[0].pk])  # fmt: skip
    checked, problem = selectors.ledger_verify(company=books.a)
    assert (checked, problem.entry_id) == (0, entries[0].pk)
    _tamper("UPDATE accounting_journalentry SET date = %s WHERE id = %s",
            ["2025-08-01", entries[0].pk])  # fmt: skip
    _tamper("DELETE FROM accounting_journalline WHERE entry_id = %s", [entries[1].pk])
    _tamper("DELETE FROM accounting_journalentry WHERE id = %s", [entries[1].pk])
    checked, problem = selectors.ledger_verify(company=books.a)
    assert (checked, problem.entry_id) == (1, entries[2].pk)
    assert "link to the previous entry" in problem.reason


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_catches_moved_lines_moved_periods_strays_and_a_wiped_ledger(books):
    from tests.accounting.conftest import post

    first = post(books.a, "2025-08-01", ("1131", "100.00", ""), ("4100", "", "100.00"))
    post(books.a, "2025-08-02", ("1131", "100.00", ""), ("4100", "", "100.00"))
    other_period = JournalEntry.objects.get(pk=first.pk).period.fiscal_year.periods.get(number=3)
    _tamper("UPDATE accounting_journalentry SET period_id = %s WHERE id = %s",
            [other_period.pk, first.pk])  # fmt: skip
    assert selectors.ledger_verify(company=books.a)[1].entry_id == first.pk
    _tamper("UPDATE accounting_journalentry SET period_id = %s WHERE id = %s",
            [first.period_id, first.pk])  # fmt: skip
    assert selectors.ledger_verify(company=books.a)[1] is None
    _tamper("UPDATE accounting_journalline SET company_id = %s WHERE entry_id = %s AND line_no = 2",
            [books.b.pk, first.pk])  # fmt: skip
    assert selectors.ledger_verify(company=books.a)[1].entry_id == first.pk
    _tamper("UPDATE accounting_journalline SET company_id = %s WHERE entry_id = %s",
            [books.a.pk, first.pk])  # fmt: skip
    _tamper("UPDATE accounting_ledgerchain SET last_entry_id = %s, last_hash = %s "
            "WHERE company_id = %s", [first.pk, first.entry_hash, books.a.pk])  # fmt: skip
    problem = selectors.ledger_verify(company=books.a)[1]
    assert "beyond the chain head" in problem.reason
    _tamper("UPDATE accounting_ledgerchain SET last_entry_id = NULL WHERE company_id = %s",
            [books.a.pk])  # fmt: skip
    _tamper("DELETE FROM accounting_journalline WHERE company_id = %s", [books.a.pk])
    _tamper("DELETE FROM accounting_journalentry WHERE company_id = %s", [books.a.pk])
    checked, problem = selectors.ledger_verify(company=books.a)
    assert checked == 0 and "removed" in problem.reason


def test_internal_keys_and_closing_entries_are_out_of_reach(books):
    from accounting.models import FiscalYear
    from core.errors import ConflictError, ValidationFailed
    from tests.accounting.conftest import post

    year = FiscalYear.objects.get(company=books.a, name="2025-26")
    for key in (f"year-end-close:{year.pk}", "reversal:1", "auto:x"):
        with pytest.raises(ValidationFailed) as caught:
            post(books.a, "2025-08-01", ("1131", "1.00", ""), ("4100", "", "1.00"),
                 idempotency_key=key)  # fmt: skip
        assert caught.value.code == "reserved_idempotency_key"
    post(books.a, "2025-08-01", ("1131", "1.00", ""), ("4100", "", "1.00"))
    closed = services.fiscal_year_close(actor=None, fiscal_year=year)
    with pytest.raises(ConflictError) as caught:
        services.journal_entry_reverse(
            entry=closed.closing_entry, date="2026-07-01", reason="undo the close"
        )
    assert caught.value.code == "closing_entry"
