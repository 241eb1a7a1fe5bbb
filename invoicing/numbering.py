"""Gapless invoice numbers: a counter row per company, series, branch and fiscal year.

`number_next` runs one statement,

    INSERT ... VALUES (..., 1) ON CONFLICT (company, series, branch, fiscal_year)
    DO UPDATE SET last = last + 1 RETURNING last

which creates the row or increments it and keeps it locked until the approving transaction
ends: a concurrent approval waits, and a rollback gives the number back, so numbers are
gapless. Numbers are drawn at approval, never for drafts; voided numbers stay.

The pattern is a setting (`INVOICING_NUMBER_FORMAT`, default `{series}/{fy}/{seq:06d}` ->
`INV/2025-26/000123`; `INVOICING_BRANCH_NUMBER_FORMAT` for branches other than the main one,
default `{series}/{branch}/{fy}/{seq:06d}`); series prefixes come from `INVOICING_SERIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.db import connection

from invoicing.models import InvoiceCounter

DEFAULT_SERIES = {"invoice": "INV", "credit_note": "CN", "debit_note": "DN", "bill": "BILL"}
DEFAULT_FORMAT = "{series}/{fy}/{seq:06d}"
DEFAULT_BRANCH_FORMAT = "{series}/{branch}/{fy}/{seq:06d}"


def series_for(kind: str) -> str:
    return {**DEFAULT_SERIES, **getattr(settings, "INVOICING_SERIES", {})}[kind]


def fiscal_year_label(start_month: int, day: date) -> str:
    """`2025-26` for a July-June year containing `day`; `2026` for a calendar year."""
    start_year = day.year if day.month >= start_month else day.year - 1
    if start_month == 1:
        return str(start_year)
    return f"{start_year}-{str(start_year + 1)[-2:]}"


def number_format(*, series: str, branch: str, fiscal_year: str, sequence: int) -> str:
    if branch:
        pattern = getattr(settings, "INVOICING_BRANCH_NUMBER_FORMAT", DEFAULT_BRANCH_FORMAT)
    else:
        pattern = getattr(settings, "INVOICING_NUMBER_FORMAT", DEFAULT_FORMAT)
    return pattern.format(series=series, branch=branch, fy=fiscal_year, seq=sequence)


@dataclass(frozen=True)
class Allocated:
    number: str
    series: str
    sequence: int
    fiscal_year: str


def number_next(*, company, kind: str, branch: str, day: date) -> Allocated:
    """Draw the next number; call inside the approving transaction."""
    series = series_for(kind)
    fiscal_year = fiscal_year_label(company.fiscal_year_start_month, day)
    table = InvoiceCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (company_id, series, branch, fiscal_year, last) "  # noqa: S608 - constant table name
            "VALUES (%s, %s, %s, %s, 1) "
            "ON CONFLICT (company_id, series, branch, fiscal_year) "
            f"DO UPDATE SET last = {table}.last + 1 RETURNING last",
            [company.pk, series, branch or "", fiscal_year],
        )
        sequence = cursor.fetchone()[0]
    return Allocated(
        number=number_format(
            series=series, branch=branch, fiscal_year=fiscal_year, sequence=sequence
        ),
        series=series,
        sequence=sequence,
        fiscal_year=fiscal_year,
    )
