from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import allocate, format_money, has_at_most_places, money


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [
        ("2.675", "2.68"),
        ("2.665", "2.67"),
        ("-2.675", "-2.68"),
        ("0.005", "0.01"),
        ("1.004999", "1.00"),
        ("10", "10.00"),
        (7, "7.00"),
    ],
)
def test_half_up_to_two_places(raw, rounded):
    assert money(raw) == Decimal(rounded)


def test_floats_are_refused():
    with pytest.raises(TypeError):
        money(0.1)


def test_decimal_places_check():
    assert has_at_most_places("10.05") and not has_at_most_places("10.005")


def test_allocate_spreads_the_remainder():
    # 100.00 in three equal parts: 33.33 each leaves a cent, which goes to the first largest.
    assert allocate("100.00", [1, 1, 1]) == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert allocate("10.00", [3, 1]) == [Decimal("7.50"), Decimal("2.50")]


@given(
    total=st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2),
    weights=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=12),
)
def test_allocation_always_sums_to_the_total(total, weights):
    parts = allocate(total, weights)
    assert sum(parts) == money(total)
    assert all(part == money(part) for part in parts)


def test_format():
    assert format_money("1234567.891", "BDT") == "1,234,567.89 BDT"
