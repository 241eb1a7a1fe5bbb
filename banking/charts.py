"""Charts for the banking report pages, drawn on the server as inline SVG.

Written here rather than taken from a charting package: the two charts the pages need (a
balance over time, a variance per month against a threshold) are a few dozen lines of SVG, and
the packages that draw SVG (leather, pygal, matplotlib) either load scripts from a CDN for
their tooltips, write whole documents with fixed pixel sizes, or pull in far more than this.
The SVG scales with the page (viewBox), carries a <title> and a text description for screen
readers, and every point's figure is in a <title> too, shown on hover without any script.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 92, 16, 18, 38


@dataclass(frozen=True)
class Point:
    label: str  # what the x axis says under it (a date, a month)
    value: Decimal


def _figure(value: Decimal) -> str:
    return f"{value:,.2f}"


def _nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` gridlines."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 1.0
    while power * 10 <= raw:
        power *= 10
    while power > raw:
        power /= 10
    for factor in (1, 2, 2.5, 5, 10):
        if power * factor >= raw:
            return power * factor
    return power * 10


def _scale(values: list[Decimal], extra: list[Decimal]) -> tuple[float, float, list[float]]:
    numbers = [float(v) for v in [*values, *extra]] or [0.0]
    low, high = min(numbers + [0.0]), max(numbers + [0.0])
    if low == high:
        high = low + 1
    step = _nice_step(high - low)
    bottom = step * (low // step)
    top = step * -(-high // step)
    ticks, tick = [], bottom
    while tick <= top + step / 2:
        ticks.append(tick)
        tick += step
    return bottom, top, ticks


def _y(value: float, bottom: float, top: float) -> float:
    plot = HEIGHT - TOP - BOTTOM
    return TOP + plot * (1 - (value - bottom) / (top - bottom))


def _frame(title: str, description: str, bottom: float, top: float, ticks: list[float]) -> list:
    parts = [
        f'<svg class="banking-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" '
        f'aria-labelledby="chart-title chart-desc">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(description)}</desc>',
    ]
    for tick in ticks:
        y = _y(tick, bottom, top)
        parts.append(
            f'<line class="grid{" zero" if tick == 0 else ""}" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_figure(Decimal(str(tick))))}</text>"
        )
    return parts


def _x_labels(points: list[Point], xs: list[float], every: int) -> list[str]:
    return [
        f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
        f"{escape(point.label)}</text>"
        for index, (point, x) in enumerate(zip(points, xs, strict=True))
        if index % every == 0 or index == len(points) - 1
    ]


def line_chart(points: list[Point], *, title: str, currency: str = "") -> SafeString:
    """A balance over time: one line, a dot per point with its figure on hover."""
    if not points:
        return mark_safe("")  # noqa: S308 - a constant
    values = [point.value for point in points]
    bottom, top, ticks = _scale(values, [])
    span = WIDTH - LEFT - RIGHT
    xs = [LEFT + span * (i / max(len(points) - 1, 1)) for i in range(len(points))]
    ys = [_y(float(v), bottom, top) for v in values]
    description = (
        f"{title}: from {_figure(values[0])} on {points[0].label} to {_figure(values[-1])} on "
        f"{points[-1].label}; lowest {_figure(min(values))}, highest {_figure(max(values))} "
        f"{currency}".strip()
    )
    parts = _frame(title, description, bottom, top, ticks)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    parts.append(f'<polyline class="series" points="{path}"/>')
    for point, x, y in zip(points, xs, ys, strict=True):
        parts.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>{escape(point.label)}: {escape(_figure(point.value))} {escape(currency)}"
            f"</title></circle>"
        )
    parts.extend(_x_labels(points, xs, every=max(1, len(points) // 8)))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def bar_chart(
    points: list[Point], *, title: str, threshold: Decimal | None = None, currency: str = ""
) -> SafeString:
    """A figure per period (the reconciliation variance per month); bars beyond ±threshold
    are drawn as alerts, and the threshold as dashed lines."""
    if not points:
        return mark_safe("")  # noqa: S308 - a constant
    values = [point.value for point in points]
    limits = [threshold, -threshold] if threshold is not None else []
    bottom, top, ticks = _scale(values, limits)
    span = WIDTH - LEFT - RIGHT
    slot = span / len(points)
    bar = max(4.0, slot * 0.6)
    above = sum(1 for v in values if threshold is not None and abs(v) > threshold)
    description = f"{title}: {len(points)} periods" + (
        f", {above} beyond the threshold of {_figure(threshold)} {currency}"
        if threshold is not None
        else ""
    )
    parts = _frame(title, description, bottom, top, ticks)
    zero = _y(0.0, bottom, top)
    xs = []
    for index, point in enumerate(points):
        x = LEFT + slot * index + (slot - bar) / 2
        xs.append(x + bar / 2)
        y = _y(float(point.value), bottom, top)
        alert = threshold is not None and abs(point.value) > threshold
        parts.append(
            f'<rect class="bar{" alert" if alert else ""}" x="{x:.1f}" y="{min(y, zero):.1f}" '
            f'width="{bar:.1f}" height="{max(abs(zero - y), 1):.1f}">'
            f"<title>{escape(point.label)}: {escape(_figure(point.value))} {escape(currency)}"
            f"</title></rect>"
        )
    for limit in limits:
        y = _y(float(limit), bottom, top)
        parts.append(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
    parts.extend(_x_labels(points, xs, every=max(1, len(points) // 12)))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


CHART_STYLE = """
svg.banking-chart { width: 100%; max-width: 900px; height: auto; display: block;
  margin: 8px 0 16px; }
svg.banking-chart .grid { stroke: var(--hairline-color, #ddd); stroke-width: 1; }
svg.banking-chart .grid.zero { stroke: var(--body-quiet-color, #888); }
svg.banking-chart .tick { font-size: 11px; fill: var(--body-quiet-color, #666); }
svg.banking-chart .series { fill: none; stroke: #417690; stroke-width: 2; }
svg.banking-chart .dot { fill: #417690; }
svg.banking-chart .bar { fill: #79aec8; }
svg.banking-chart .bar.alert { fill: #ba2121; }
svg.banking-chart .threshold { stroke: #ba2121; stroke-dasharray: 4 3; }
"""
