"""Per-line VAT and SD, figures checked by hand (VAT and SD Rules 2016, Rule 40)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing import tax

D = Decimal


def test_three_lines_of_10_05_at_15_percent_give_4_53_vat_not_4_52():
    lines = [tax.line_tax(quantity=D(1), unit_price=D("10.05"), vat_rate=D(15)) for _ in range(3)]
    # each line: 10.05 x 15% = 1.5075 -> 1.51
    assert [x.vat_amount for x in lines] == [D("1.51")] * 3
    totals = tax.totals(lines)
    assert totals.value == D("30.15")
    assert totals.vat == D("4.53")  # rounding the invoice total would give 4.52
    assert totals.total == D("34.68")


def test_sd_first_then_vat_on_value_plus_sd():
    # value 1,000.00; SD 10% = 100.00; VAT 15% of 1,100.00 = 165.00; total 1,265.00
    t = tax.line_tax(quantity=D(4), unit_price=D(250), sd_rate=D(10), vat_rate=D(15))
    assert (t.value, t.sd_amount, t.vat_amount, t.total) == (
        D("1000.00"),
        D("100.00"),
        D("165.00"),
        D("1265.00"),
    )


def test_specific_vat_is_taka_per_unit_whatever_the_price():
    # 7 packs at 100.00 with SD 65%: value 700.00, SD 455.00, VAT 7 x 2.50 = 17.50
    t = tax.line_tax(
        quantity=D(7),
        unit_price=D(100),
        sd_rate=D(65),
        vat_kind=tax.SPECIFIC,
        vat_specific_amount=D("2.50"),
    )
    assert (t.value, t.sd_amount, t.vat_amount, t.total) == (
        D("700.00"),
        D("455.00"),
        D("17.50"),
        D("1172.50"),
    )


@pytest.mark.parametrize("kind", [tax.ZERO_RATED, tax.EXEMPT])
def test_zero_rated_and_exempt_carry_no_vat(kind):
    t = tax.line_tax(quantity=D(3), unit_price=D("99.99"), vat_kind=kind, vat_rate=D(0))
    assert (t.value, t.vat_amount, t.total) == (D("299.97"), D("0.00"), D("299.97"))


def test_each_step_rounds_half_up_not_half_even():
    # value 2 x 0.0625 = 0.125 -> 0.13 (half-even would say 0.12)
    t = tax.line_tax(quantity=D(2), unit_price=D("0.0625"), vat_rate=D(0))
    assert t.value == D("0.13")
    # VAT 5% of 10.10 = 0.505 -> 0.51
    t = tax.line_tax(quantity=D(1), unit_price=D("10.10"), vat_rate=D(5))
    assert t.vat_amount == D("0.51")
    # 7.5% of 100.00 = 7.50
    assert tax.line_tax(quantity=D(1), unit_price=D(100), vat_rate=D("7.5")).vat_amount == D("7.50")


def test_vds_for_a_withholding_buyer_is_the_vat_charged():
    assert tax.vds_amount(total_vat=D("165.00"), withholding_buyer=True) == D("165.00")
    assert tax.vds_amount(total_vat=D("165.00"), withholding_buyer=False) == D("0.00")


def test_vat_labels_for_column_9():
    assert tax.vat_label(tax.PERCENT, D("15.0000"), D(0)) == "15%"
    assert tax.vat_label(tax.PERCENT, D("7.5000"), D(0)) == "7.5%"
    assert tax.vat_label(tax.SPECIFIC, D(0), D("2.5000")) == "Tk 2.5/unit"
    assert tax.vat_label(tax.EXEMPT, D(0), D(0)) == "Exempt"


amounts = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)
rates = st.sampled_from([D(0), D(5), D("7.5"), D(10), D(15)])


@given(quantity=amounts, price=amounts, sd=rates, vat=rates)
def test_line_parts_are_cents_and_add_up(quantity, price, sd, vat):
    t = tax.line_tax(quantity=quantity, unit_price=price, sd_rate=sd, vat_rate=vat)
    for part in (t.value, t.sd_amount, t.vat_amount, t.total):
        assert part == part.quantize(D("0.01"))
    assert t.total == t.value + t.sd_amount + t.vat_amount
    # each rounded part is within half a paisa of the exact figure
    assert abs(t.value - quantity * price) <= D("0.005")
    assert abs(t.vat_amount - (t.value + t.sd_amount) * vat / 100) <= D("0.005")
