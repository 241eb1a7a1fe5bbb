"""Statement data for the reconciliation tests, written straight to the tables (the import
service has its own tests): one StatementImport with the balances the bank printed and its
lines."""

import hashlib
from decimal import Decimal

from banking.models import StatementImport, StatementLine

_seq = iter(range(1, 10**9))


def statement(
    bank, account, lines, *, opening=None, closing=None, opening_date=None, closing_date=None
):
    """`lines`: [(date, amount, {reference, bank_id, counterparty, description})]; returns the
    StatementLine rows in order."""
    n = next(_seq)
    imp = StatementImport.objects.create(
        company=bank.company,
        bank_account=account,
        format="csv",
        filename=f"statement-{n}.csv",
        sha256=hashlib.sha256(f"file {n}".encode()).hexdigest(),
        raw=b"",
        opening_balance=None if opening is None else Decimal(opening),
        opening_date=opening_date,
        closing_balance=None if closing is None else Decimal(closing),
        closing_date=closing_date,
        line_count=len(lines),
        new_line_count=len(lines),
    )
    rows = []
    for position, (day, amount, *extra) in enumerate(lines, start=1):
        fields = extra[0] if extra else {}
        rows.append(
            StatementLine.objects.create(
                company=bank.company,
                bank_account=account,
                statement_import=imp,
                line_no=position,
                date=day,
                amount=Decimal(amount),
                content_hash=hashlib.sha256(f"{n}:{position}".encode()).hexdigest(),
                **fields,
            )
        )
    return rows
