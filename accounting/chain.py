"""The tamper-evidence hash of a posted entry: SHA-256 over the previous entry's hash and this
entry's content, lines included. Changing any posted figure, account, date or memo breaks the
chain from that entry on; `manage.py verify_ledger` recomputes it."""

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal

GENESIS_HASH = "0" * 64
# The line columns that enter the hash, in this order.
HASHED_LINE_FIELDS = (
    "line_no",
    "account_id",
    "debit",
    "credit",
    "cost_center_id",
    "project_id",
    "department_id",
    "memo",
)


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def entry_hash(
    *,
    prev_hash: str,
    company_id: int,
    fiscal_year: str,
    period_id: int,
    number: int,
    entry_date: date,
    memo: str,
    source_type: str,
    source_id: str,
    idempotency_key: str,
    total: Decimal,
    posted_at: datetime,
    posted_by_label: str,
    reversal_of_id: int | None,
    lines: list[tuple],
) -> str:
    """`lines`: (line_no, account_id, debit, credit, cost_center_id, project_id, department_id,
    memo) in line order."""
    parts = [
        prev_hash,
        str(company_id),
        fiscal_year,
        str(period_id),
        str(number),
        entry_date.isoformat(),
        memo,
        source_type,
        source_id,
        idempotency_key,
        _amount(total),
        posted_at.astimezone(UTC).isoformat(timespec="microseconds"),
        posted_by_label,
        str(reversal_of_id or ""),
    ]
    for line_no, account_id, debit, credit, cost_center, project, department, line_memo in lines:
        parts.append(
            "|".join(
                (
                    str(line_no),
                    str(account_id),
                    _amount(debit),
                    _amount(credit),
                    str(cost_center or ""),
                    str(project or ""),
                    str(department or ""),
                    line_memo,
                )
            )
        )
    # Unit separators keep field boundaries unambiguous ("ab"+"c" differs from "a"+"bc").
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
