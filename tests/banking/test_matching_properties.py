"""Properties of banking.matching that hold for any input hypothesis can think of."""

import random
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from banking.matching import (
    METHOD_MANY_TO_ONE,
    METHOD_REFERENCE,
    BookItemIn,
    MatchConfig,
    StatementLineIn,
    match,
)

START = date(2026, 1, 1)
PARTIES = ["", "Karim Traders", "Nadia Foods", "Rahman Textiles", "Acme"]
REFS = ["", "", "", "R1", "R2", "inv 7", "INV7", "chq 10"]

cents = st.integers(min_value=1, max_value=5_000).map(lambda c: Decimal(c).scaleb(-2))
signed = st.tuples(st.sampled_from([1, -1]), cents).map(lambda t: t[0] * t[1])
days = st.integers(min_value=0, max_value=20).map(lambda d: START + timedelta(days=d))


@st.composite
def open_amount(draw, amount):
    if draw(st.booleans()):
        return None
    return Decimal(draw(st.integers(0, int(abs(amount) * 100)))).scaleb(-2)


@st.composite
def statement_lines(draw):
    n = draw(st.integers(0, 25))
    out = []
    for k in range(n):
        amount = draw(signed)
        out.append(
            StatementLineIn(
                id=k,
                date=draw(days),
                amount=amount,
                bank_id=draw(st.sampled_from(REFS)),
                reference=draw(st.sampled_from(REFS)),
                counterparty=draw(st.sampled_from(PARTIES)),
                description=draw(st.sampled_from(["", "fee", "transfer"])),
                open_amount=draw(open_amount(amount)),
            )
        )
    return out


@st.composite
def book_items(draw):
    n = draw(st.integers(0, 25))
    out = []
    for k in range(n):
        amount = draw(signed)
        out.append(
            BookItemIn(
                id=1000 + k,
                date=draw(days),
                amount=amount,
                reference=draw(st.sampled_from(REFS)),
                counterparty=draw(st.sampled_from(PARTIES)),
                open_amount=draw(open_amount(amount)),
            )
        )
    return out


configs = st.builds(
    MatchConfig,
    date_window_days=st.integers(0, 5),
    max_group_candidates=st.integers(2, 20),
    tolerance=st.sampled_from([Decimal("0.00"), Decimal("0.05"), Decimal("1.00")]),
)


def _open(row):
    return abs(row.amount) if row.open_amount is None else row.open_amount


@settings(max_examples=200, deadline=None)
@given(statement_lines(), book_items(), configs)
def test_nothing_is_over_allocated_and_signs_agree(lines, items, config):
    result = match(lines, items, config)
    by_line, by_item = defaultdict(Decimal), defaultdict(Decimal)
    line_of = {r.id: r for r in lines}
    item_of = {r.id: r for r in items}
    for s in result.suggestions:
        assert s.amount > 0
        assert s.amount == s.amount.quantize(Decimal("0.01"))
        assert Decimal("0") <= s.confidence <= Decimal("1")
        assert (line_of[s.line_id].amount > 0) == (item_of[s.item_id].amount > 0)
        by_line[s.line_id] += s.amount
        by_item[s.item_id] += s.amount
    for line_id, total in by_line.items():
        assert total <= _open(line_of[line_id])
    for item_id, total in by_item.items():
        assert total <= _open(item_of[item_id])
    # what is left for review is exactly what still holds an open amount
    assert set(result.review_line_ids) == {r.id for r in lines if _open(r) - by_line[r.id] > 0}
    assert set(result.review_item_ids) == {r.id for r in items if _open(r) - by_item[r.id] > 0}


@settings(max_examples=200, deadline=None)
@given(statement_lines(), book_items())
def test_many_to_one_groups_sum_exactly_to_the_cent(lines, items):
    """With tolerance 0 a group closes its target to the cent: a line or item that received
    several many-to-one allocations has nothing left open; every group member is used whole."""
    result = match(lines, items)
    groups, totals = defaultdict(int), defaultdict(Decimal)
    for s in result.suggestions:
        totals[("line", s.line_id)] += s.amount
        totals[("item", s.item_id)] += s.amount
        if s.method == METHOD_MANY_TO_ONE:
            groups[("line", s.line_id)] += 1
            groups[("item", s.item_id)] += 1
    open_of = {("line", r.id): _open(r) for r in lines} | {("item", r.id): _open(r) for r in items}
    for key in groups:
        assert totals[key] == open_of[key], key  # a target closed, or a member used whole


@settings(max_examples=150, deadline=None)
@given(statement_lines(), book_items(), configs, st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(lines, items, config, rnd):
    first = match(lines, items, config)
    shuffled_lines, shuffled_items = list(lines), list(items)
    rnd.shuffle(shuffled_lines)
    rnd.shuffle(shuffled_items)
    second = match(shuffled_lines, shuffled_items, config)
    assert first == second


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(signed, days, st.integers(0, 30)), min_size=1, max_size=30),
    book_items(),
)
def test_every_exact_pair_is_found(pairs, noise):
    """A line and a book item sharing a unique key, sign and amount are always matched to each
    other at confidence 1.00, whatever else is around."""
    lines, items = [], []
    for k, (amount, day, shift) in enumerate(pairs):
        key = f"E2E-{k:04d}"
        lines.append(StatementLineIn(id=k, date=day, amount=amount, reference=key.lower()))
        items.append(
            BookItemIn(id=5000 + k, date=day + timedelta(days=shift), amount=amount, reference=key)
        )
    result = match(lines, items + noise)
    found = {(s.line_id, s.item_id): s for s in result.suggestions}
    for k in range(len(pairs)):
        s = found[(k, 5000 + k)]
        assert (s.method, s.amount, s.confidence) == (
            METHOD_REFERENCE,
            abs(pairs[k][0]),
            Decimal("1.00"),
        )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 10**6), st.integers(0, 300)), max_size=60, unique_by=lambda t: t[0]
    )
)
def test_distinct_amounts_within_the_window_all_pair_up(rows):
    """With no references and distinct amounts, every line finds its item within the window."""
    rnd = random.Random(len(rows))
    lines, items = [], []
    for k, (c, day) in enumerate(rows):
        amount = Decimal(c).scaleb(-2) * rnd.choice((1, -1))
        lines.append(StatementLineIn(id=k, date=START + timedelta(days=day), amount=amount))
        items.append(
            BookItemIn(id=k, date=START + timedelta(days=day + rnd.randint(-3, 3)), amount=amount)
        )
    result = match(lines, items)
    assert sorted((s.line_id, s.item_id) for s in result.suggestions) == [
        (k, k) for k in range(len(rows))
    ]
