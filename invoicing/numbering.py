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

from core.errors import DomainError
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


class NumberOutOfOrder(DomainError):
    code = "issue_date_out_of_order"
    default_message = "Numbers follow issue dates."


def number_next(*, company, kind: str, branch: str, day: date) -> Allocated:
    """Draw the next number; call inside the approving transaction. Numbers follow dates:
    an issue date before the last one drawn in the same series is refused
    (`issue_date_out_of_order`), so number n+1 is never dated before number n."""
    series = series_for(kind)
    fiscal_year = fiscal_year_label(company.fiscal_year_start_month, day)
    table = InvoiceCounter._meta.db_table
    params = [company.pk, series, branch or "", fiscal_year]
    with connection.cursor() as cursor:
        # The WHERE leaves a later-dated counter untouched (and returns no row); the row stays
        # locked by the attempt either way.
        cursor.execute(
            f"INSERT INTO {table} (company_id, series, branch, fiscal_year, last, last_date) "  # noqa: S608 - constant table name
            "VALUES (%s, %s, %s, %s, 1, %s) "
            "ON CONFLICT (company_id, series, branch, fiscal_year) "
            f"DO UPDATE SET last = {table}.last + 1, last_date = EXCLUDED.last_date "
            f"WHERE {table}.last_date IS NULL OR {table}.last_date <= EXCLUDED.last_date "
            "RETURNING last",
            [*params, connection.ops.adapt_datefield_value(day)],
        )
        row = cursor.fetchone()
    if row is None:
        last = (
            InvoiceCounter.objects.filter(
                company_id=company.pk, series=series, branch=branch or "", fiscal_year=fiscal_year
            )
            .values_list("last", "last_date")
            .first()
        )
        number, last_date = last if last else (0, None)
        previous = number_format(
            series=series, branch=branch, fiscal_year=fiscal_year, sequence=number
        )
        raise NumberOutOfOrder(
            f"{previous} was issued on {last_date}; the next number in the series cannot be "
            f"dated {day} (earlier). Date it {last_date} or later.",
            fields={"issue_date": [f"On or after {last_date}."]},
        )
    sequence = row[0]
    return Allocated(
        number=number_format(
            series=series, branch=branch, fiscal_year=fiscal_year, sequence=sequence
        ),
        series=series,
        sequence=sequence,
        fiscal_year=fiscal_year,
    )
