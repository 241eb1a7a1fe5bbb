"""Money is Decimal, rounded half-up to two places, per line; never float, never round()."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_decimal(value) -> Decimal:
    """Exact Decimal from a str/int/Decimal. Floats are refused: they are not exact."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool | float):
        raise TypeError(f"money must not be a {type(value).__name__}: {value!r}")
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a number: {value!r}") from None


def money(value) -> Decimal:
    """Round to 2 places, half-up (0.005 -> 0.01, -0.005 -> -0.01)."""
    return to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def has_at_most_places(value, places: int = 2) -> bool:
    """True if `value` carries no more than `places` decimals (e.g. rejects 10.005 as money)."""
    d = to_decimal(value)
    return d == d.quantize(Decimal(1).scaleb(-places))


def allocate(total, weights) -> list[Decimal]:
    """Split `total` in proportion to `weights` so the parts sum to the total exactly.

    Each part is rounded half-up; the cents lost or gained by rounding go to the largest parts
    first, which is how an accountant would spread a remainder.
    """
    total = money(total)
    weights = [to_decimal(w) for w in weights]
    weight_sum = sum(weights, Decimal(0))
    if not weights or weight_sum == 0:
        raise ValueError("allocate needs at least one non-zero weight")
    parts = [money(total * w / weight_sum) for w in weights]
    remainder = total - sum(parts, ZERO)
    step = CENT if remainder > 0 else -CENT
    order = sorted(range(len(weights)), key=lambda i: abs(weights[i]), reverse=True)
    i = 0
    while remainder != 0:
        parts[order[i % len(order)]] += step
        remainder -= step
        i += 1
    return parts


def format_money(value, currency: str = "") -> str:
    amount = f"{money(value):,.2f}"
    return f"{amount} {currency}".strip()
