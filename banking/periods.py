"""Months and days typed by people (API parameters, admin forms, the reconciliation screen's
`?period=`), read in one place.

A month is YYYY-MM, a day YYYY-MM-DD, and both must fall in the years 1900 to 2200: a
statement or a report outside them is a slip, and the arithmetic around a period (the next
month, a matching window, a chart's days back) would otherwise overflow `date` (year 1 or
9999) and answer 500. Each refusal is a ValueError with a message for the person.
"""

from __future__ import annotations

import re
from datetime import date

YEAR_MIN = 1900
YEAR_MAX = 2200
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _in_range(day: date, text: str) -> date:
    if not YEAR_MIN <= day.year <= YEAR_MAX:
        raise ValueError(f"{text[:20]!r} is outside the years {YEAR_MIN} to {YEAR_MAX}.")
    return day


def parse_month(text: str | None) -> date:
    """The first day of the month `text` (YYYY-MM) names; ValueError otherwise."""
    text = (text or "").strip()
    match = MONTH.match(text)
    if not match:
        raise ValueError(f"{text[:20]!r} is not a month (YYYY-MM).")
    year = int(match.group(1))
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"{text[:20]!r} is outside the years {YEAR_MIN} to {YEAR_MAX}.")
    return date(year, int(match.group(2)), 1)


def parse_day(text: str | None) -> date:
    """The day `text` (YYYY-MM-DD) names; ValueError otherwise."""
    text = (text or "").strip()
    try:
        day = date.fromisoformat(text)
    except (ValueError, OverflowError):
        raise ValueError(f"{text[:20]!r} is not a date (YYYY-MM-DD).") from None
    return _in_range(day, text)


def check_day(day: date) -> date:
    """A day already parsed (a form's DateField), held to the same years."""
    return _in_range(day, day.isoformat())
