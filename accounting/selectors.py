"""Ledger reads: trial balance, general ledger, profit and loss, balance sheet.

Reports read the per-period balances (AccountBalance) for every whole period in the range and
touch journal lines only for the part-months at its edges, so they stay fast with millions of
lines. Amounts are Decimal; a signed balance is debit minus credit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Sum

from accounting.models import (
    DEBIT_NORMAL_TYPES,
    PROFIT_AND_LOSS_TYPES,
    Account,
    AccountBalance,
    AccountingPeriod,
    AccountType,
    JournalEntry,
    JournalLine,
)
from accounting.services import EARLIEST_DATE, LATEST_DATE, YEAR_END_CLOSE
from core.errors import ValidationFailed
from core.models import Company

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def _cents(value) -> Decimal:
    """Sums come back exact from PostgreSQL; the embedded SQLite adds in floating point, so
    every sum is brought back to cents (exact for any realistic ledger size)."""
    return Decimal(value or 0).quantize(CENT)


@dataclass(frozen=True)
class Dimensions:
    """A report filter: only lines carrying these dimensions (None: any)."""

    cost_center: int | None = None
    project: int | None = None
    department: int | None = None

    def _filter(self, suffix: str) -> dict:
        return {f"{name}{suffix}": value for name, value in self.as_dict().items() if value}

    def balance_filter(self) -> dict:
        """For AccountBalance, whose dimension keys are plain integers."""
        return self._filter("_key")

    def line_filter(self) -> dict:
        return self._filter("_id")

    def as_dict(self) -> dict:
        return {
            "cost_center": self.cost_center,
            "project": self.project,
            "department": self.department,
        }


NO_DIMENSIONS = Dimensions()


def _dims(cost_center=None, project=None, department=None) -> Dimensions:
    def key(value):
        return getattr(value, "pk", value)

    return Dimensions(key(cost_center), key(project), key(department))


def resolve_range(
    *,
    company: Company,
    period_from: AccountingPeriod | int | None = None,
    period_to: AccountingPeriod | int | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> tuple[date | None, date]:
    """A report's dates from periods or dates (periods win). Without an end, today in the
    company's time zone; without a start, the beginning of the books."""
    periods = {}
    wanted = [getattr(p, "pk", p) for p in (period_from, period_to) if p is not None]
    if wanted:
        periods = {p.pk: p for p in AccountingPeriod.objects.filter(company=company, pk__in=wanted)}
        missing = [p for p in wanted if p not in periods]
        if missing:
            raise ValidationFailed(
                f"There is no period {missing[0]} in this company.", code="unknown_period"
            )
    if period_from is not None:
        date_from = periods[getattr(period_from, "pk", period_from)].start_date
    if period_to is not None:
        date_to = periods[getattr(period_to, "pk", period_to)].end_date
    date_to = date_to or company.today()
    for day in (date_from, date_to):
        if day is not None and not EARLIEST_DATE <= day <= LATEST_DATE:
            raise ValidationFailed(
                f"{day} is outside the years {EARLIEST_DATE.year}-{LATEST_DATE.year}.",
                code="invalid_date",
            )
    if date_from is not None and date_from > date_to:
        raise ValidationFailed(
            f"The range starts ({date_from}) after it ends ({date_to}).", code="invalid_range"
        )
    return date_from, date_to


def movements(
    *,
    company: Company,
    date_from: date | None,
    date_to: date,
    dims: Dimensions = NO_DIMENSIONS,
    account_ids: list[int] | None = None,
    account_types=None,
    exclude_closing: bool = False,
) -> dict[int, tuple[Decimal, Decimal]]:
    """account id -> (debits, credits) posted from `date_from` (None: the start) to `date_to`."""
    if date_from is not None and date_from > date_to:
        return {}
    whole, partial = [], []
    for pk, start, end in AccountingPeriod.objects.filter(
        company=company, start_date__lte=date_to
    ).values_list("pk", "start_date", "end_date"):
        if date_from is not None and end < date_from:
            continue
        inside = (date_from is None or start >= date_from) and end <= date_to
        (whole if inside else partial).append(pk)
    totals: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    # Account ids rather than a join on the type: the planner misjudges how many lines a type
    # filter keeps and falls back to scanning every line.
    type_ids = (
        list(
            Account.objects.filter(company=company, type__in=list(account_types)).values_list(
                "pk", flat=True
            )
        )
        if account_types is not None
        else None
    )
    sources = []
    if whole:
        balances = AccountBalance.objects.filter(
            company=company, period_id__in=whole, **dims.balance_filter()
        )
        sources.append(balances.filter(closing=False) if exclude_closing else balances)
    if partial:
        lines = JournalLine.objects.filter(
            company=company, entry__period_id__in=partial, entry__date__lte=date_to
        ).filter(**dims.line_filter())
        if date_from is not None:
            lines = lines.filter(entry__date__gte=date_from)
        if exclude_closing:
            lines = lines.exclude(entry__source_type=YEAR_END_CLOSE)
        sources.append(lines)
    for rows in sources:
        for wanted in (account_ids, type_ids):
            if wanted is not None:
                rows = rows.filter(account_id__in=wanted)
        for account_id, debit, credit in (
            rows.values("account_id")
            .annotate(d=Sum("debit"), c=Sum("credit"))
            .values_list("account_id", "d", "c")
            .order_by()
        ):
            totals[account_id][0] += debit
            totals[account_id][1] += credit
    return {pk: (_cents(d), _cents(c)) for pk, (d, c) in totals.items()}


def _accounts(company: Company) -> dict[int, Account]:
    return {
        a.pk: a
        for a in Account.objects.filter(company=company).only(
            "pk", "code", "name", "type", "parent_id", "is_postable", "is_active"
        )
    }


def _split(balance: Decimal) -> tuple[Decimal, Decimal]:
    """A signed balance as (debit column, credit column)."""
    return (balance, ZERO) if balance > 0 else (ZERO, -balance)


def trial_balance(
    *,
    company: Company,
    date_from: date | None = None,
    date_to: date,
    cost_center=None,
    project=None,
    department=None,
    include_zero: bool = False,
) -> dict:
    """Per account: opening balance, debits and credits in the range, closing balance.
    The closing debit and credit columns add up to the same total when the books balance."""
    dims = _dims(cost_center, project, department)
    opening = (
        movements(company=company, date_from=None, date_to=date_from - timedelta(days=1), dims=dims)
        if date_from is not None
        else {}
    )
    period = movements(company=company, date_from=date_from, date_to=date_to, dims=dims)
    accounts = _accounts(company)
    rows = []
    columns = (
        "opening_debit",
        "opening_credit",
        "debit",
        "credit",
        "closing_debit",
        "closing_credit",
    )
    totals = dict.fromkeys(columns, ZERO)
    for account in sorted(accounts.values(), key=lambda a: a.code):
        open_d, open_c = opening.get(account.pk, (ZERO, ZERO))
        debit, credit = period.get(account.pk, (ZERO, ZERO))
        if not (open_d or open_c or debit or credit) and not (include_zero and account.is_postable):
            continue
        opening_balance = open_d - open_c
        closing_balance = opening_balance + debit - credit
        row = {
            "account_id": account.pk,
            "code": account.code,
            "name": account.name,
            "type": account.type,
        }
        row["opening_debit"], row["opening_credit"] = _split(opening_balance)
        row["debit"], row["credit"] = debit, credit
        row["closing_debit"], row["closing_credit"] = _split(closing_balance)
        for column in columns:
            totals[column] += row[column]
        rows.append(row)
    return {
        "report": "trial_balance",
        "date_from": date_from,
        "date_to": date_to,
        "dimensions": dims.as_dict(),
        "rows": rows,
        "totals": totals,
        "balanced": totals["closing_debit"] == totals["closing_credit"],
    }


def general_ledger(
    *,
    company: Company,
    account: Account | int,
    date_from: date | None = None,
    date_to: date,
    cost_center=None,
    project=None,
    department=None,
    limit: int | None = None,
) -> dict:
    """One account's lines in date order with a running balance (debit minus credit). With
    `limit`, only the first `limit` rows are returned (`truncated` says so); the totals and the
    closing balance still cover every line."""
    dims = _dims(cost_center, project, department)
    account_id = getattr(account, "pk", account)
    account = Account.objects.filter(company=company, pk=account_id).first()
    if account is None:
        raise ValidationFailed(
            f"There is no account {account_id} in this company.", code="unknown_account"
        )
    opening_d, opening_c = (
        movements(
            company=company,
            date_from=None,
            date_to=date_from - timedelta(days=1),
            dims=dims,
            account_ids=[account.pk],
        ).get(account.pk, (ZERO, ZERO))
        if date_from is not None
        else (ZERO, ZERO)
    )
    lines = JournalLine.objects.filter(
        company=company, account=account, entry__date__lte=date_to, **dims.line_filter()
    )
    if date_from is not None:
        lines = lines.filter(entry__date__gte=date_from)
    balance = opening_d - opening_c
    total_d = total_c = ZERO
    rows, line_count = [], 0
    for values in lines.order_by("entry__date", "entry_id", "line_no").values_list(
        "entry_id",
        "entry__date",
        "entry__fiscal_year__name",
        "entry__number",
        "entry__memo",
        "entry__source_type",
        "entry__source_id",
        "memo",
        "debit",
        "credit",
        "cost_center_id",
        "project_id",
        "department_id",
    ):
        (entry_id, day, year, number, memo, source_type, source_id, line_memo, debit, credit) = (
            values[:10]
        )
        debit, credit = _cents(debit), _cents(credit)
        balance += debit - credit
        total_d += debit
        total_c += credit
        line_count += 1
        if limit is not None and len(rows) >= limit:
            continue
        rows.append(
            {
                "entry_id": entry_id,
                "date": day,
                "reference": f"JE/{year}/{number:06d}",
                "memo": line_memo or memo,
                "source": f"{source_type}:{source_id}" if source_id else source_type,
                "debit": debit,
                "credit": credit,
                "balance": balance,
                "cost_center": values[10],
                "project": values[11],
                "department": values[12],
            }
        )
    return {
        "report": "general_ledger",
        "account": {"id": account.pk, "code": account.code, "name": account.name},
        "date_from": date_from,
        "date_to": date_to,
        "dimensions": dims.as_dict(),
        "opening_balance": opening_d - opening_c,
        "rows": rows,
        "line_count": line_count,
        "truncated": line_count > len(rows),
        "total_debit": total_d,
        "total_credit": total_c,
        "closing_balance": balance,
    }


def _section(accounts, sums, account_type, *, credit_positive: bool) -> dict:
    rows, total = [], ZERO
    for account in sorted(accounts.values(), key=lambda a: a.code):
        if account.type != account_type or account.pk not in sums:
            continue
        debit, credit = sums[account.pk]
        amount = credit - debit if credit_positive else debit - credit
        if not amount:
            continue
        rows.append(
            {"account_id": account.pk, "code": account.code, "name": account.name, "amount": amount}
        )
        total += amount
    return {"type": account_type, "title": AccountType(account_type).label, "rows": rows}, total


def profit_and_loss(
    *,
    company: Company,
    date_from: date | None = None,
    date_to: date,
    cost_center=None,
    project=None,
    department=None,
) -> dict:
    """Income less expenses over the range (the fiscal year to date when no start is given).
    Year-end closing entries are left out: they move the result, they do not earn it."""
    dims = _dims(cost_center, project, department)
    date_from = date_from or company.fiscal_year_start(date_to)
    sums = movements(
        company=company,
        date_from=date_from,
        date_to=date_to,
        dims=dims,
        account_types=PROFIT_AND_LOSS_TYPES,
        exclude_closing=True,
    )
    accounts = _accounts(company)
    income, income_total = _section(accounts, sums, AccountType.INCOME, credit_positive=True)
    expense, expense_total = _section(accounts, sums, AccountType.EXPENSE, credit_positive=False)
    income["total"], expense["total"] = income_total, expense_total
    return {
        "report": "profit_and_loss",
        "date_from": date_from,
        "date_to": date_to,
        "dimensions": dims.as_dict(),
        "sections": [income, expense],
        "total_income": income_total,
        "total_expenses": expense_total,
        "net_profit": income_total - expense_total,
    }


def balance_sheet(
    *,
    company: Company,
    as_of: date,
    cost_center=None,
    project=None,
    department=None,
) -> dict:
    """Assets = liabilities + equity + earnings not yet closed to retained earnings.

    Earnings are split into the current fiscal year's and earlier years' that were never
    closed (zero once every earlier year is closed)."""
    dims = _dims(cost_center, project, department)
    cumulative = movements(company=company, date_from=None, date_to=as_of, dims=dims)
    year_start = company.fiscal_year_start(as_of)
    this_year = movements(
        company=company,
        date_from=year_start,
        date_to=as_of,
        dims=dims,
        account_types=PROFIT_AND_LOSS_TYPES,
    )
    accounts = _accounts(company)
    assets, assets_total = _section(accounts, cumulative, AccountType.ASSET, credit_positive=False)
    liabilities, liabilities_total = _section(
        accounts, cumulative, AccountType.LIABILITY, credit_positive=True
    )
    equity, equity_total = _section(accounts, cumulative, AccountType.EQUITY, credit_positive=True)

    def earnings(sums) -> Decimal:
        return sum(
            (
                credit - debit
                for pk, (debit, credit) in sums.items()
                if accounts[pk].type in PROFIT_AND_LOSS_TYPES
            ),
            ZERO,
        )

    all_earnings = earnings(cumulative)
    current = earnings(this_year)
    prior = all_earnings - current
    assets["total"], liabilities["total"] = assets_total, liabilities_total
    equity["total"] = equity_total
    return {
        "report": "balance_sheet",
        "as_of": as_of,
        "dimensions": dims.as_dict(),
        "sections": [assets, liabilities, equity],
        "total_assets": assets_total,
        "total_liabilities": liabilities_total,
        "total_equity": equity_total,
        "current_year_earnings": current,
        "prior_years_unclosed_earnings": prior,
        "total_liabilities_and_equity": liabilities_total + equity_total + all_earnings,
        "balanced": assets_total == liabilities_total + equity_total + all_earnings,
    }


def account_balance(*, company: Company, account: Account, as_of: date) -> Decimal:
    """Signed balance in the account's normal direction (positive when normal)."""
    debit, credit = movements(
        company=company, date_from=None, date_to=as_of, account_ids=[account.pk]
    ).get(account.pk, (ZERO, ZERO))
    return debit - credit if account.type in DEBIT_NORMAL_TYPES else credit - debit


def entries_for_source(*, company: Company, source_type: str, source_id: str):
    return JournalEntry.objects.filter(
        company=company, source_type=source_type, source_id=source_id
    ).order_by("id")


def rebuild_expected_balances(company: Company | None = None) -> dict[tuple, tuple]:
    """The per-period balances recomputed from journal lines (what AccountBalance must hold)."""
    lines = JournalLine.objects.all()
    if company is not None:
        lines = lines.filter(company=company)
    expected = {}
    for row in (
        lines.values(
            "company_id",
            "entry__period_id",
            "account_id",
            "cost_center_id",
            "project_id",
            "department_id",
            "entry__source_type",
        )
        .annotate(d=Sum("debit"), c=Sum("credit"))
        .order_by()
    ):
        key = (
            row["entry__period_id"],
            row["account_id"],
            row["cost_center_id"] or 0,
            row["project_id"] or 0,
            row["department_id"] or 0,
            row["entry__source_type"] == YEAR_END_CLOSE,
        )
        debit, credit = expected.get(key, (ZERO, ZERO))
        expected[key] = (debit + _cents(row["d"]), credit + _cents(row["c"]))
    return expected


def stored_balances(company: Company | None = None) -> dict[tuple, tuple]:
    rows = AccountBalance.objects.all()
    if company is not None:
        rows = rows.filter(company=company)
    return {
        (
            b.period_id,
            b.account_id,
            b.cost_center_key,
            b.project_key,
            b.department_key,
            b.closing,
        ): (b.debit, b.credit)
        for b in rows
        if b.debit or b.credit
    }


@dataclass(frozen=True)
class ChainBreak:
    entry_id: int
    reference: str
    reason: str


def ledger_verify(*, company: Company, chunk: int = 2000) -> tuple[int, ChainBreak | None]:
    """Recompute the company's hash chain from the stored rows, oldest entry first. Returns how
    many entries were checked and the first one whose stored content no longer matches its
    hash (or whose link to the previous entry is broken), or None when the chain holds."""
    from accounting.chain import GENESIS_HASH, HASHED_LINE_FIELDS, entry_hash
    from accounting.models import FiscalYear, LedgerChain

    years = dict(FiscalYear.objects.filter(company=company).values_list("pk", "name"))
    # The head first: entries posted while the scan runs lie beyond it and are left for the
    # next run, instead of looking like entries that went missing.
    head = LedgerChain.objects.filter(company=company).values_list("last_entry_id", "last_hash")
    head_id, head_hash = head.first() or (None, GENESIS_HASH)
    prev_hash, checked, last_id = GENESIS_HASH, 0, 0
    fields = (
        "pk",
        "fiscal_year_id",
        "period_id",
        "number",
        "date",
        "memo",
        "source_type",
        "source_id",
        "idempotency_key",
        "total",
        "posted_at",
        "posted_by_label",
        "reversal_of_id",
        "prev_hash",
        "entry_hash",
    )
    while True:
        entries = list(
            JournalEntry.objects.filter(company=company, pk__gt=last_id, pk__lte=head_id or 0)
            .order_by("pk")
            .values_list(*fields)[:chunk]
        )
        if not entries:
            break
        lines = defaultdict(list)
        for row in (
            JournalLine.objects.filter(company=company, entry_id__in=[e[0] for e in entries])
            .order_by("entry_id", "line_no")
            .values_list("entry_id", *HASHED_LINE_FIELDS)
        ):
            lines[row[0]].append(row[1:])
        for row in entries:
            (pk, year_id, period_id, number, day, memo, s_type, s_id, key, total, posted_at,
             label, rev, stored_prev, stored_hash) = row  # fmt: skip
            reference = f"JE/{years.get(year_id, '?')}/{number:06d}"
            if stored_prev != prev_hash:
                return checked, ChainBreak(
                    pk,
                    reference,
                    "its link to the previous entry is broken (an entry before "
                    "it was removed or re-hashed)",
                )
            recomputed = entry_hash(
                prev_hash=prev_hash,
                company_id=company.pk,
                fiscal_year=years.get(year_id, ""),
                period_id=period_id,
                number=number,
                entry_date=day,
                memo=memo,
                source_type=s_type,
                source_id=s_id,
                idempotency_key=key,
                total=total,
                posted_at=posted_at,
                posted_by_label=label,
                reversal_of_id=rev,
                lines=lines.get(pk, []),
            )
            if recomputed != stored_hash:
                return checked, ChainBreak(
                    pk,
                    reference,
                    "its content (date, memo, amounts, accounts or lines) was "
                    "changed after posting",
                )
            prev_hash = stored_hash
            checked += 1
            last_id = pk
    beyond = JournalEntry.objects.filter(company=company, pk__gt=head_id or 0).order_by("pk")
    stray = beyond.values_list("pk", "fiscal_year__name", "number").first()
    if stray is not None:
        return checked, ChainBreak(
            stray[0],
            f"JE/{stray[1]}/{stray[2]:06d}",
            "it lies beyond the chain head: it was added outside the ledger's services",
        )
    if head_hash != prev_hash:
        return checked, ChainBreak(
            last_id or 0,
            "(chain head)",
            "the chain head does not point at the last entry: entries after it were removed",
        )
    return checked, None
