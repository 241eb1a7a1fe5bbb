"""Banking reads: book balances, cash position, transfer tracking, dimensional analysis, open
cash in transit.

All set-based: a fixed handful of aggregate queries whatever the number of transactions.
Balances come from `BankDailyBalance` (posted inflow and outflow per account and day, kept by
database triggers), so a cash position over years of history reads one row per day; movements
by dimension read the transactions through the covering index on (bank_account, date).

A bank account's book balance at the end of day D is the ledger's: its opening balance plus
the journal lines on its ledger account dated from its opening date (when set) through D, read
from the ledger's per-period balances (banking.reconciliation._book_balance). The daily series
comes from the bank transactions, which carry every such line once auto-reconcile or the daily
refresh has adopted the entries made outside banking (banking.services.bank_ledger_adopt).
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounting.models import CostCenter, Department, Project
from banking.models import (
    BankAccount,
    BankDailyBalance,
    BankTransaction,
    BankTransfer,
    BankTransferAllocation,
    CashSubmission,
    CashSubmissionStatus,
    Direction,
    PostingStatus,
    TransferLeg,
    TransferStatus,
)
from core.errors import ValidationFailed
from core.models import Company

ZERO = Decimal("0.00")
DIMENSIONS = ("branch", "cost_center", "project", "department")
_DIMENSION_MODELS = {"cost_center": CostCenter, "project": Project, "department": Department}
AGEING_BUCKETS = (("0-2", 0, 2), ("3-7", 3, 7), ("8-30", 8, 30), (">30", 31, None))


# --- arguments -------------------------------------------------------------------------------


def period_bounds(period) -> tuple[date, date]:
    """`"2026-08"`, a date (its month), or a `(start, end)` pair → the first and last day."""
    if isinstance(period, tuple | list) and len(period) == 2:
        start, end = (_as_date(value, "period") for value in period)
        if end < start:
            raise _invalid("period", "Period: the end is before the start.")
        return start, end
    if isinstance(period, datetime):
        period = period.date()
    if isinstance(period, date):
        year, month = period.year, period.month
    else:
        match = re.fullmatch(r"(\d{4})-(\d{2})", str(period or "").strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise _invalid("period", f"Period: {period!r} is not a month (YYYY-MM).")
        year, month = int(match.group(1)), int(match.group(2))
    last = calendar.monthrange(year, month)[1]
    return date(year, month, 1), date(year, month, last)


def _as_date(value, field: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _invalid(
            field, f"{field.replace('_', ' ').capitalize()}: {value!r} is not a date."
        ) from None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid", fields={field: [message]})


def _dimension(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in DIMENSIONS:
        raise _invalid("by", f"Dimension: one of {', '.join(DIMENSIONS)}, not {value!r}.")
    return value


def _accounts(company: Company, bank_account) -> list[BankAccount]:
    accounts = BankAccount.objects.filter(company=company).select_related("ledger_account")
    if bank_account is not None:
        accounts = accounts.filter(pk=getattr(bank_account, "pk", bank_account))
    else:
        accounts = accounts.filter(is_active=True)
    return list(accounts.order_by("name", "id"))


def _since_opening(prefix: str = "bank_account__") -> Q:
    return Q(**{f"{prefix}opening_date__isnull": True}) | Q(date__gte=F(f"{prefix}opening_date"))


# --- balances --------------------------------------------------------------------------------


def book_balances(*, accounts: list[BankAccount], as_of: date) -> dict[int, Decimal]:
    """Book balance of each account at the end of `as_of`: the ledger's (a few rows of the
    ledger's per-period balances per account)."""
    from banking.reconciliation import _book_balances

    return _book_balances(accounts, as_of)


def banking_balances(*, accounts: list[BankAccount], as_of: date) -> dict[int, Decimal]:
    """Opening balance plus the account's posted bank transactions through `as_of` (one
    query on the daily balances); equal to `book_balances` once the ledger is adopted."""
    ids = [a.pk for a in accounts]
    moved = dict(
        BankDailyBalance.objects.filter(bank_account_id__in=ids, date__lte=as_of)
        .filter(_since_opening())
        .values("bank_account_id")
        .annotate(net=Sum(F("inflow") - F("outflow")))
        .values_list("bank_account_id", "net")
    )
    return {a.pk: a.opening_balance + (moved.get(a.pk) or ZERO) for a in accounts}


def book_balance(*, bank_account: BankAccount, as_of: date) -> Decimal:
    """Opening balance + posted transactions from the opening date through `as_of`."""
    return book_balances(accounts=[bank_account], as_of=as_of)[bank_account.pk]


def daily_series(*, accounts: list[BankAccount], start: date, end: date) -> dict[int, list[dict]]:
    """Each account's closing book balance for every day start..end (two queries)."""
    opening = banking_balances(accounts=accounts, as_of=start - timedelta(days=1))
    ids = [a.pk for a in accounts]
    moves: dict[int, dict[date, tuple[Decimal, Decimal]]] = defaultdict(dict)
    rows = (
        BankDailyBalance.objects.filter(bank_account_id__in=ids, date__range=(start, end))
        .filter(_since_opening())
        .values_list("bank_account_id", "date", "inflow", "outflow")
    )
    for account_id, day, inflow, outflow in rows:
        moves[account_id][day] = (inflow, outflow)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    series = {}
    for account in accounts:
        balance = opening[account.pk]
        points = []
        for day in days:
            inflow, outflow = moves[account.pk].get(day, (ZERO, ZERO))
            balance += inflow - outflow
            points.append({"date": day, "inflow": inflow, "outflow": outflow, "balance": balance})
        series[account.pk] = points
    return series


# --- cash position ---------------------------------------------------------------------------


def _dimension_labels(dimension: str, keys) -> dict:
    if dimension == "branch":
        return {key: (key, key or "(no branch)") for key in keys}
    model = _DIMENSION_MODELS[dimension]
    ids = [key for key in keys if key is not None]
    found = {
        pk: (code, name)
        for pk, code, name in model.objects.filter(pk__in=ids).values_list("pk", "code", "name")
    }
    labels = {key: found.get(key, ("", str(key))) for key in ids}
    labels[None] = ("", f"(no {model._meta.verbose_name})")
    return labels


def _field(dimension: str) -> str:
    return dimension if dimension == "branch" else f"{dimension}_id"


def cash_position(
    *,
    company: Company,
    bank_account=None,
    as_of,
    by: str | None = None,
    period=None,
) -> dict:
    """Book balance per bank account at the end of `as_of`, with the period's daily series for
    the chart (period: a month "YYYY-MM" or (start, end); default the month of `as_of`, up to
    `as_of`). With `by` (branch, cost_center, project, department) each account's balance is
    split by that dimension: the opening balance unassigned, plus the net posted movements of
    each dimension value through `as_of`.

    Totals are given per currency (accounts in different currencies are not added up)."""
    as_of = _as_date(as_of, "as_of")
    dimension = _dimension(by)
    if period is None:
        start, end = as_of.replace(day=1), as_of
    else:
        start, end = period_bounds(period)
        end = min(end, as_of)
        if end < start:
            raise _invalid("period", "Period: starts after the as-of date.")
    accounts = _accounts(company, bank_account)
    balances = book_balances(accounts=accounts, as_of=as_of)
    series = daily_series(accounts=accounts, start=start, end=end) if accounts else {}
    rows = []
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for account in accounts:
        points = series.get(account.pk, [])
        rows.append(
            {
                "bank_account_id": account.pk,
                "name": account.name,
                "currency": account.currency,
                "ledger_account": account.ledger_account.code,
                "opening_balance": account.opening_balance,
                "opening_date": account.opening_date,
                "balance": balances[account.pk],
                "period_inflow": sum((p["inflow"] for p in points), ZERO),
                "period_outflow": sum((p["outflow"] for p in points), ZERO),
                "series": points,
            }
        )
        totals[account.currency] += balances[account.pk]
    result = {
        "as_of": as_of,
        "period": {"start": start, "end": end},
        "accounts": rows,
        "totals": [{"currency": c, "balance": totals[c]} for c in sorted(totals)],
        "by": dimension,
    }
    if dimension:
        result["breakdown"] = _position_by(accounts, as_of, dimension)
    return result


def _position_by(accounts: list[BankAccount], as_of: date, dimension: str) -> list[dict]:
    field = _field(dimension)
    rows = (
        BankTransaction.objects.filter(
            bank_account_id__in=[a.pk for a in accounts],
            posting_status=PostingStatus.POSTED,
            date__lte=as_of,
        )
        .filter(_since_opening())
        .values("bank_account_id", field)
        .annotate(
            inflow=Coalesce(Sum("amount", filter=Q(direction=Direction.IN)), Value(ZERO)),
            outflow=Coalesce(Sum("amount", filter=Q(direction=Direction.OUT)), Value(ZERO)),
        )
        .order_by()
    )
    rows = list(rows)
    labels = _dimension_labels(dimension, {row[field] for row in rows} | {None})
    if dimension == "branch":
        labels[""] = ("", "(no branch)")
    out = []
    for account in accounts:
        mine = [row for row in rows if row["bank_account_id"] == account.pk]
        unassigned_key = "" if dimension == "branch" else None
        by_key = {row[field]: row for row in mine}
        keys = sorted(by_key, key=lambda k: labels[k][0] or "~")
        if unassigned_key not in by_key:
            keys.append(unassigned_key)
        for key in keys:
            row = by_key.get(key, {"inflow": ZERO, "outflow": ZERO})
            opening = account.opening_balance if key == unassigned_key else ZERO
            code, name = labels[key]
            out.append(
                {
                    "bank_account_id": account.pk,
                    "key": key,
                    "code": code,
                    "name": name,
                    "opening": opening,
                    "inflow": row["inflow"],
                    "outflow": row["outflow"],
                    "balance": opening + row["inflow"] - row["outflow"],
                }
            )
    return out


# --- dimensional analysis --------------------------------------------------------------------


def dimensional_analysis(*, bank_account: BankAccount, period, dimension: str) -> dict:
    """Posted inflow, outflow and net per value of `dimension` (branch, cost_center, project,
    department) on one bank account within the period, largest movement first."""
    dimension = _dimension(dimension)
    if dimension is None:
        raise _invalid("dimension", "Dimension: required.")
    start, end = period_bounds(period)
    field = _field(dimension)
    rows = list(
        BankTransaction.objects.filter(
            bank_account=bank_account,
            posting_status=PostingStatus.POSTED,
            date__range=(start, end),
        )
        .values(field)
        .annotate(
            inflow=Coalesce(Sum("amount", filter=Q(direction=Direction.IN)), Value(ZERO)),
            outflow=Coalesce(Sum("amount", filter=Q(direction=Direction.OUT)), Value(ZERO)),
            count=Count("id"),
        )
        .order_by()
    )
    labels = _dimension_labels(dimension, {row[field] for row in rows})
    out = []
    for row in rows:
        code, name = labels[row[field]]
        out.append(
            {
                "key": row[field],
                "code": code,
                "name": name,
                "inflow": row["inflow"],
                "outflow": row["outflow"],
                "net": row["inflow"] - row["outflow"],
                "count": row["count"],
            }
        )
    out.sort(key=lambda r: (-(r["inflow"] + r["outflow"]), r["code"], r["name"]))
    inflow = sum((r["inflow"] for r in out), ZERO)
    outflow = sum((r["outflow"] for r in out), ZERO)
    return {
        "bank_account_id": bank_account.pk,
        "currency": bank_account.currency,
        "dimension": dimension,
        "period": {"start": start, "end": end},
        "rows": out,
        "totals": {
            "inflow": inflow,
            "outflow": outflow,
            "net": inflow - outflow,
            "count": sum(r["count"] for r in out),
        },
    }


# --- transfer tracking -----------------------------------------------------------------------


def _bucket(age: int) -> str:
    for name, low, high in AGEING_BUCKETS:
        if age >= low and (high is None or age <= high):
            return name
    return AGEING_BUCKETS[-1][0]


def _status_as_of(row: dict, legs: list[dict], as_of: date) -> tuple[str, Decimal, date | None]:
    """A transfer's status at the end of `as_of`, rebuilt from its legs' dates and the dates
    their statement lines cleared them: initiated until the out leg is dated; settled once the
    in legs dated by then add up to it and every leg was cleared by then (on the last
    clearing); in transit in between. Cancelled stays cancelled."""
    if row["status"] == TransferStatus.CANCELLED:
        return TransferStatus.CANCELLED, ZERO, None
    mine = [leg for leg in legs if leg["date"] <= as_of]
    if not any(leg["leg"] == TransferLeg.OUT for leg in mine):
        return TransferStatus.INITIATED, ZERO, None
    received = sum((leg["amount"] for leg in mine if leg["leg"] == TransferLeg.IN), ZERO)
    cleared = [leg["cleared_as_of"] for leg in mine]
    if received >= row["amount"] and all(cleared):
        return TransferStatus.SETTLED, received, max(cleared)
    return TransferStatus.IN_TRANSIT, received, None


def transfer_tracking(*, company: Company, bank_account=None, period, as_of=None) -> dict:
    """Transfers initiated in the period, plus any from before it still open at `as_of`: per
    status the count and amount, and the open ones aged from their initiation date to `as_of`
    (default: the period's end or the company's today, whichever is earlier) in buckets 0-2,
    3-7, 8-30 and over 30 days. Statuses are as they stood at `as_of` (rebuilt from the legs'
    dates and their clearing dates), not as they are now: settled means every leg posted and
    cleared by a statement line. Cancelled transfers are counted but not aged."""
    from banking.models import MatchStatus, ReconciliationMatch

    start, end = period_bounds(period)
    as_of = _as_date(as_of, "as_of") if as_of is not None else min(end, company.today())
    transfers = BankTransfer.objects.filter(company=company, date__lte=as_of).filter(
        Q(date__range=(start, end))
        | Q(date__lt=start, status__in=[TransferStatus.INITIATED, TransferStatus.IN_TRANSIT])
        | Q(date__lt=start, status=TransferStatus.SETTLED, settled_on__gt=as_of)
    )
    if bank_account is not None:
        account_id = getattr(bank_account, "pk", bank_account)
        transfers = transfers.filter(Q(from_account_id=account_id) | Q(to_account_id=account_id))
    rows = list(
        transfers.values(
            "id",
            "reference",
            "from_account_id",
            "from_account__name",
            "to_account_id",
            "to_account__name",
            "amount",
            "currency",
            "date",
            "expected_settlement_date",
            "settled_on",
            "status",
        ).order_by("date", "id")
    )
    # the legs, each with the day its transaction was wholly cleared by lines dated by as_of
    cleared_by = (
        ReconciliationMatch.objects.filter(
            bank_transaction_id=OuterRef("bank_transaction_id"),
            status=MatchStatus.ACCEPTED,
            cleared_on__lte=as_of,
        )
        .order_by()
        .values("bank_transaction_id")
    )
    legs: dict[int, list[dict]] = defaultdict(list)
    for leg in (
        BankTransferAllocation.objects.filter(transfer_id__in=[row["id"] for row in rows])
        .annotate(
            cleared_amount=Coalesce(
                Subquery(cleared_by.annotate(t=Sum("amount")).values("t")[:1]), Value(ZERO)
            ),
            last_cleared=Subquery(cleared_by.annotate(d=Max("cleared_on")).values("d")[:1]),
        )
        .values("transfer_id", "leg", "amount", "date", "cleared_amount", "last_cleared")
    ):
        leg["cleared_as_of"] = (
            leg["last_cleared"] if leg["cleared_amount"] >= leg["amount"] else None
        )
        legs[leg["transfer_id"]].append(leg)
    kept = []
    for row in rows:
        status, received, settled_on = _status_as_of(row, legs[row["id"]], as_of)
        if row["date"] < start and status in (TransferStatus.SETTLED, TransferStatus.CANCELLED):
            continue  # closed before the period: not shown
        row.update(status=status, received=received, settled_on=settled_on)
        kept.append(row)
    rows = kept
    summary = {status: {"count": 0, "amount": ZERO} for status in TransferStatus.values}
    ageing = {
        name: {
            status: {"count": 0, "amount": ZERO}
            for status in (TransferStatus.INITIATED, TransferStatus.IN_TRANSIT)
        }
        for name, _, _ in AGEING_BUCKETS
    }
    items = []
    for row in rows:
        status = row["status"]
        summary[status]["count"] += 1
        summary[status]["amount"] += row["amount"]
        open_ = status in (TransferStatus.INITIATED, TransferStatus.IN_TRANSIT)
        age = (as_of - row["date"]).days if open_ else None
        bucket = _bucket(max(age, 0)) if open_ else None
        if open_:
            pending = row["amount"] - row["received"]
            ageing[bucket][status]["count"] += 1
            ageing[bucket][status]["amount"] += pending
        expected = row["expected_settlement_date"]
        items.append(
            {
                "id": row["id"],
                "reference": row["reference"],
                "from_account_id": row["from_account_id"],
                "from_account": row["from_account__name"],
                "to_account_id": row["to_account_id"],
                "to_account": row["to_account__name"],
                "amount": row["amount"],
                "currency": row["currency"],
                "received": row["received"],
                "in_transit": row["amount"] - row["received"]
                if status == TransferStatus.IN_TRANSIT
                else ZERO,
                "status": status,
                "date": row["date"],
                "expected_settlement_date": expected,
                "settled_on": row["settled_on"],
                "age_days": age,
                "bucket": bucket,
                "overdue": bool(open_ and expected is not None and expected < as_of),
                "days_to_settle": (row["settled_on"] - row["date"]).days
                if row["settled_on"]
                else None,
            }
        )
    return {
        "period": {"start": start, "end": end},
        "as_of": as_of,
        "summary": summary,
        "ageing": [{"bucket": name, **ageing[name]} for name, _, _ in AGEING_BUCKETS],
        "transfers": items,
    }


# --- cash in transit -------------------------------------------------------------------------


def cash_in_transit_open(*, company: Company, bank_account=None, as_of=None) -> dict:
    """Cash submitted by branches and not yet credited by the bank: the open balance of the
    cash in transit account, item by item. With `as_of`, as it stood at the end of that day
    (submitted by then, deposited after it or not yet), whatever has happened since."""
    submissions = CashSubmission.objects.filter(company=company)
    if bank_account is not None:
        submissions = submissions.filter(bank_account_id=getattr(bank_account, "pk", bank_account))
    if as_of is not None:
        day = _as_date(as_of, "as_of")
        submissions = submissions.filter(submitted_on__lte=day).filter(
            Q(deposited_on__isnull=True) | Q(deposited_on__gt=day)
        )
    else:
        submissions = submissions.filter(status=CashSubmissionStatus.SUBMITTED)
    items = list(
        submissions.order_by("submitted_on", "id").values(
            "id", "branch", "bank_account_id", "expected_amount", "submitted_on", "reference"
        )
    )
    return {"total": sum((i["expected_amount"] for i in items), ZERO), "items": items}
