"""Bangladesh VAT and SD per line, in pure Decimal arithmetic (no ORM).

Per line (VAT and SD Rules 2016, Rule 40; Mushak-6.3 columns 6 to 11):

    value = quantity x unit price                     -> rounded half-up to 2 places
    sd    = value x SD rate / 100                     -> rounded half-up
    vat   = (value + sd) x VAT rate / 100             -> rounded half-up
          = specific amount x quantity (specific VAT) -> rounded half-up
          = 0 for zero-rated and exempt supplies
    total = value + sd + vat

Invoice totals are the sums of the rounded lines (three lines of 10.05 at 15% give 4.53 VAT,
not 4.52). Rates are percentages (15 means 15 %).
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)

PERCENT = "percent"
ZERO_RATED = "zero"
EXEMPT = "exempt"
SPECIFIC = "specific"
VAT_KINDS = (PERCENT, ZERO_RATED, EXEMPT, SPECIFIC)

# code, name, kind, rate (percent), specific amount per unit, SRO / schedule reference
DEFAULT_VAT_RATES = [
    ("VAT15", "Standard 15%", PERCENT, "15", "0", ""),
    ("VAT10", "Reduced 10%", PERCENT, "10", "0", "Third Schedule"),
    ("VAT7.5", "Reduced 7.5%", PERCENT, "7.5", "0", "Third Schedule"),
    ("VAT5", "Reduced 5%", PERCENT, "5", "0", "Third Schedule"),
    ("ZERO", "Zero-rated (export)", ZERO_RATED, "0", "0", ""),
    ("EXEMPT", "Exempt", EXEMPT, "0", "0", "First Schedule"),
    ("SPECIFIC", "Specific VAT per unit", SPECIFIC, "0", "1", "Third Schedule"),
]


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def vat_label(kind: str, rate: Decimal, specific_amount: Decimal) -> str:
    """Column 9 of the Mushak-6.3."""
    if kind == PERCENT:
        return f"{Decimal(rate).normalize():f}%"
    if kind == SPECIFIC:
        return f"Tk {Decimal(specific_amount).normalize():f}/unit"
    return "Zero-rated" if kind == ZERO_RATED else "Exempt"


@dataclass(frozen=True)
class LineTax:
    value: Decimal
    sd_amount: Decimal
    vat_amount: Decimal
    total: Decimal


def line_tax(
    *,
    quantity: Decimal,
    unit_price: Decimal,
    sd_rate: Decimal = ZERO,
    vat_kind: str = PERCENT,
    vat_rate: Decimal = ZERO,
    vat_specific_amount: Decimal = ZERO,
) -> LineTax:
    """The money columns of one line, each rounded half-up to the paisa."""
    if vat_kind not in VAT_KINDS:
        raise ValueError(f"unknown VAT kind {vat_kind!r}")
    # Enough digits that no product of accepted inputs is rounded before the half-up to the
    # paisa (or refused by quantize); the callers refuse figures of 10^15 and more.
    with localcontext(prec=60):
        value = round_money(Decimal(quantity) * Decimal(unit_price))
        sd = round_money(value * Decimal(sd_rate) / HUNDRED)
        if vat_kind == PERCENT:
            vat = round_money((value + sd) * Decimal(vat_rate) / HUNDRED)
        elif vat_kind == SPECIFIC:
            vat = round_money(Decimal(vat_specific_amount) * Decimal(quantity))
        else:
            vat = ZERO
        total = value + sd + vat
    return LineTax(value=value, sd_amount=sd, vat_amount=vat, total=total)


@dataclass(frozen=True)
class Totals:
    value: Decimal
    sd: Decimal
    vat: Decimal
    total: Decimal


def totals(lines) -> Totals:
    """Sums of already-rounded line amounts (objects or dicts with value/sd_amount/vat_amount)."""

    def get(line, name):
        return Decimal(line[name] if isinstance(line, dict) else getattr(line, name))

    value = sum((get(x, "value") for x in lines), ZERO)
    sd = sum((get(x, "sd_amount") for x in lines), ZERO)
    vat = sum((get(x, "vat_amount") for x in lines), ZERO)
    return Totals(value=value, sd=sd, vat=vat, total=value + sd + vat)


def vds_amount(*, total_vat: Decimal, withholding_buyer: bool) -> Decimal:
    """VAT the buyer deducts at source. A withholding entity deducts the whole VAT charged on
    the supply (Rule 40 with the VDS schedule for listed services); others deduct nothing."""
    return round_money(Decimal(total_vat)) if withholding_buyer else ZERO
