"""Bank reconciliation: matching statement lines with book transactions, and the monthly report.

Writes (keyword-only services, one transaction each, audited):

- `reconciliation_auto`: loads an account's open statement lines and open posted transactions
  in a few set-based queries, runs the pure matcher (banking.matching), writes the suggestions
  in one bulk insert (COPY on PostgreSQL) and the reconciled amounts in one UPDATE per table.
  Suggestions at or above the account's / company's auto-accept confidence are accepted; the
  rest wait for a person. Running it again adds nothing: amounts already suggested or accepted
  are not open any more, and pairs a person rejected are never suggested again.
- `reconciliation_match` (manual, partial and many-to-one), `reconciliation_unmatch`,
  `reconciliation_accept`, `reconciliation_reject`.
- `statement_line_create_transaction`: a fee, interest or other line without a book entry
  becomes a transaction, posted through banking.services and matched.
- `statement_line_settle_invoice` / `statement_line_settle_invoices`: a receipt settles open
  invoices through invoicing's `invoice_payment_record` (posting Dr the bank's ledger account /
  Cr receivable); the bank transaction is recorded on that very entry, never posted again.
- `reconciliation_close`: a person signs the month off when the variance is within threshold.

- `reconciliation_refresh`: stores a month's figures in its BankReconciliation row and raises
  the variance alert (email after commit); run at the end of `reconciliation_auto` for the
  months it looked at, by `reconciliation_close` and daily by a beat task.

Reads (no writes at all): `reconciliation_report` and `variance_report`.

Amounts: a statement line's `reconciled_amount` and a transaction's are the sums of their
ACCEPTED allocations; suggestions only hold amounts back from further matching. Every write
locks the bank account row first (then lines, then transactions), so auto-reconcile, manual
matching and imports of one account never interleave. PostgreSQL checks the allocation caps
again in a trigger (banking/sql/banking_invariants.sql).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import DecimalField, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from banking import matching
from banking.alerts import variance_alert_raise
from banking.errors import AllocationExceeded, InvalidTransition
from banking.models import (
    BankAccount,
    BankDailyBalance,
    BankReconciliation,
    BankTransaction,
    BankTransferAllocation,
    Direction,
    LineStatus,
    MatchMethod,
    MatchStatus,
    PostingStatus,
    ReconciliationMatch,
    ReconciliationStatus,
    StatementImport,
    StatementLine,
    TransactionKind,
    TransactionSource,
)
from banking.services import (
    _amount,
    _invalid,
    _pk,
    _require_base_currency,
    _require_write,
    bank_ledger_adopt,
    bank_transaction_create,
    bank_transaction_create_posted,
    bank_transaction_post,
    banking_settings_for,
    transfer_legs_clear,
)
from core.errors import ConflictError, ValidationFailed
from core.models import Company
from core.money import ZERO, money
from core.services import audit_record

log = logging.getLogger(__name__)

AUTO_JOB = "banking.auto_reconcile"
SYSTEM_JOB = "banking.reconciliation"
REFRESH_JOB = "banking.refresh_reconciliations"
AUTO_REFRESH_MONTHS = 2
CONFIDENCE_PLACES = Decimal("0.0001")
OPEN_LINE_STATUSES = (LineStatus.UNMATCHED, LineStatus.PARTIALLY_MATCHED)
# SQLite refuses statements with too many parameters; PostgreSQL takes big IN lists happily.
_SQLITE_CHUNK = 900
_PG_CHUNK = 20_000


# --- small helpers -----------------------------------------------------------------------------


def month_of(period) -> date:
    """The first day of the month of `period`: a date, a datetime, 'YYYY-MM' or 'YYYY-MM-DD'."""
    if isinstance(period, datetime):
        period = period.date()
    if isinstance(period, date):
        return period.replace(day=1)
    text = str(period or "").strip()
    try:
        if len(text) == 7:
            return date.fromisoformat(f"{text}-01")
        return date.fromisoformat(text).replace(day=1)
    except ValueError:
        raise _invalid("period", f"Period: {text[:20]!r} is not a month (YYYY-MM).") from None


def month_end(start: date) -> date:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _chunks(ids: list, size: int | None = None) -> Iterable[list]:
    size = size or (_PG_CHUNK if connection.vendor == "postgresql" else _SQLITE_CHUNK)
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _bank_account(company: Company | None, bank_account) -> BankAccount:
    if isinstance(bank_account, BankAccount) and (
        company is None or bank_account.company_id == company.pk
    ):
        return bank_account
    found = BankAccount.objects.select_related("company").filter(pk=_pk(bank_account)).first()
    if found is None or (company is not None and found.company_id != company.pk):
        raise _invalid("bank_account", "Bank account: no such bank account in this company.")
    return found


def _lock_account(account: BankAccount) -> BankAccount:
    """Every reconciliation write of an account starts here (lock order: account, lines,
    transactions, matches)."""
    return BankAccount.objects.select_for_update().select_related("company").get(pk=account.pk)


def _signed(txn_amount: Decimal, direction: str) -> Decimal:
    return txn_amount if direction == Direction.IN else -txn_amount


def _line_status(reconciled: Decimal, amount: Decimal) -> str:
    if reconciled <= 0:
        return LineStatus.UNMATCHED
    return LineStatus.MATCHED if reconciled >= abs(amount) else LineStatus.PARTIALLY_MATCHED


def _grouped_sum(qs, key: str) -> dict:
    return dict(qs.order_by().values(key).annotate(total=Sum("amount")).values_list(key, "total"))


def _refresh_reconciled(*, line_ids: Iterable[int] = (), txn_ids: Iterable[int] = ()) -> None:
    """Set reconciled_amount (and a line's status) from the accepted allocations, for the few
    rows a manual action touched; then transfer legs follow their transactions."""
    line_ids, txn_ids = sorted(set(line_ids)), sorted(set(txn_ids))
    accepted = ReconciliationMatch.objects.filter(status=MatchStatus.ACCEPTED)
    if line_ids:
        sums = _grouped_sum(accepted.filter(statement_line_id__in=line_ids), "statement_line_id")
        for line in StatementLine.objects.filter(pk__in=line_ids).order_by("pk"):
            total = sums.get(line.pk) or ZERO
            status = line.status
            if status != LineStatus.IGNORED:
                status = _line_status(total, line.amount)
            if (total, status) != (line.reconciled_amount, line.status):
                StatementLine.objects.filter(pk=line.pk).update(
                    reconciled_amount=total, status=status
                )
    if txn_ids:
        sums = _grouped_sum(accepted.filter(bank_transaction_id__in=txn_ids), "bank_transaction_id")
        for pk, current in BankTransaction.objects.filter(pk__in=txn_ids).values_list(
            "pk", "reconciled_amount"
        ):
            total = sums.get(pk) or ZERO
            if total != current:
                BankTransaction.objects.filter(pk=pk).update(reconciled_amount=total)
        transfer_legs_clear(transactions=txn_ids)


def _match_snapshot(match: ReconciliationMatch) -> dict:
    return {
        "statement_line": match.statement_line_id,
        "bank_transaction": match.bank_transaction_id,
        "amount": str(match.amount),
        "method": match.method,
        "confidence": str(match.confidence),
        "status": match.status,
    }


def _withdraw_suggestions(*, line_ids=(), txn_ids=()) -> int:
    """A person decided these lines / transactions: pending suggestions on them go (deleted,
    not rejected, so they may be suggested again if the decision is undone)."""
    query = Q()
    if line_ids:
        query |= Q(statement_line_id__in=list(line_ids))
    if txn_ids:
        query |= Q(bank_transaction_id__in=list(txn_ids))
    if not query:
        return 0
    deleted, _ = ReconciliationMatch.objects.filter(query, status=MatchStatus.SUGGESTED).delete()
    return deleted


# --- auto-reconcile ----------------------------------------------------------------------------


def reconciliation_auto(
    *,
    company: Company,
    bank_account,
    period=None,
    lines=None,
    actor=None,
    system_job: str = AUTO_JOB,
) -> dict:
    """Match the account's open statement lines (of the month of `period`, or the given
    `lines`, or all) with its open posted transactions. Returns a summary: lines and
    transactions looked at, suggestions written, how many accepted, by method, lines left for
    review, seconds taken."""
    started = time.perf_counter()
    account = _bank_account(company, bank_account)
    _require_write(actor, account.company)
    with transaction.atomic():
        account = _lock_account(account)
        company = account.company
        # journal entries on the bank's ledger account made outside banking become book items
        adopted = bank_ledger_adopt(bank_account=account, system_job=system_job)
        thresholds = banking_settings_for(company)
        auto_accept = thresholds.auto_accept_for(account)
        config = matching.MatchConfig(date_window_days=thresholds.match_window_days)
        line_rows, txn_rows, skip_pairs, reconciled = _load_open(account, period, lines, config)
        # rejected pairs (and pairs already matched) go into the matcher, which looks past
        # them: they never use up a line or a transaction another partner could take
        result = matching.match(line_rows, txn_rows, config, forbidden=skip_pairs)
        suggestions = result.suggestions
        accepted = _write_suggestions(
            account, suggestions, auto_accept=auto_accept, actor=actor, reconciled=reconciled
        )
        by_method: dict[str, int] = defaultdict(int)
        for s in suggestions:
            by_method[s.method] += 1
        summary = {
            "lines": len(line_rows),
            "transactions": len(txn_rows),
            "suggested": len(suggestions),
            "accepted": accepted,
            "for_review": len(suggestions) - accepted,
            "unmatched_lines": len(result.review_line_ids),
            "by_method": dict(sorted(by_method.items())),
            "auto_accept_confidence": str(auto_accept),
            "adopted_from_ledger": adopted["adopted"],
        }
        # the months looked at get their figures stored and the variance alert checked: the
        # month asked for, else the latest AUTO_REFRESH_MONTHS months of the lines looked at
        # (a year-long first run does not recompute every old month inside its transaction;
        # the daily refresh task covers the past year's stored months)
        if period:
            months = [month_of(period)]
        else:
            months = sorted({row.date.replace(day=1) for row in line_rows})[-AUTO_REFRESH_MONTHS:]
        for start in months:
            _refresh_locked(account, start, thresholds, system_job=system_job)
        summary["months_refreshed"] = len(months)
        audit_record(
            action="banking.reconciliation.auto",
            actor=actor,
            system_job=system_job,
            company=company,
            obj=account,
            after={**summary, "period": str(month_of(period)) if period else None},
        )
    summary["seconds"] = round(time.perf_counter() - started, 3)
    log.info(
        "bank auto-reconcile",
        extra={
            "bank_account": account.pk,
            **{k: v for k, v in summary.items() if k != "by_method"},
        },
    )
    return summary


def _load_open(account: BankAccount, period, lines, config: matching.MatchConfig):
    """The open lines and open posted transactions as matcher inputs (open = not yet accepted
    nor held by a pending suggestion), and the pairs never to suggest: rejected ones, and pairs
    that already have a live match (a partial line may meet its partner again)."""
    line_qs = StatementLine.objects.filter(bank_account=account, status__in=OPEN_LINE_STATUSES)
    txn_qs = BankTransaction.objects.filter(
        bank_account=account,
        posting_status=PostingStatus.POSTED,
        reconciled_amount__lt=F("amount"),
        is_reversed=False,  # a reversed entry and its reversal cancel out: nothing to clear
    )
    if period:
        start = month_of(period)
        end = month_end(start)
        reach = timedelta(days=max(config.date_window_days, config.similarity_max_days))
        line_qs = line_qs.filter(date__range=(start, end))
        txn_qs = txn_qs.filter(date__range=(start - reach, end + reach))
    if lines is not None:
        line_qs = line_qs.filter(pk__in=[_pk(line) for line in lines])
    suggested = ReconciliationMatch.objects.filter(
        statement_line__bank_account=account, status=MatchStatus.SUGGESTED
    )
    pending_line = _grouped_sum(suggested, "statement_line_id")
    pending_txn = _grouped_sum(suggested, "bank_transaction_id")

    # what is reconciled already, as loaded under the account lock (nothing else moves it)
    reconciled = {"lines": {}, "txns": {}}
    line_rows, touched_lines = [], []
    for pk, day, amount, bank_id, reference, party, text, done in line_qs.order_by().values_list(
        "pk", "date", "amount", "bank_id", "reference", "counterparty", "description",
        "reconciled_amount",
    ):  # fmt: skip
        held = pending_line.get(pk) or ZERO
        open_amount = abs(amount) - done - held
        if open_amount <= 0:
            continue
        if done or held:
            touched_lines.append(pk)
        reconciled["lines"][pk] = (amount, done, day)
        line_rows.append(
            matching.StatementLineIn(
                id=pk, date=day, amount=amount, bank_id=bank_id, reference=reference,
                counterparty=party, description=text[:500], open_amount=open_amount,
            )
        )  # fmt: skip
    txn_rows = []
    for pk, day, amount, direction, reference, party, done in txn_qs.order_by().values_list(
        "pk", "date", "amount", "direction", "reference", "counterparty", "reconciled_amount"
    ):
        open_amount = amount - done - (pending_txn.get(pk) or ZERO)
        if open_amount <= 0:
            continue
        reconciled["txns"][pk] = (done, day)
        txn_rows.append(
            matching.BookItemIn(
                id=pk, date=day, amount=_signed(amount, direction), reference=reference,
                counterparty=party, open_amount=open_amount,
            )
        )  # fmt: skip
    skip = set(
        ReconciliationMatch.objects.filter(
            statement_line__bank_account=account, status=MatchStatus.REJECTED
        ).values_list("statement_line_id", "bank_transaction_id")
    )
    for chunk in _chunks(touched_lines):
        skip.update(
            ReconciliationMatch.objects.filter(statement_line_id__in=chunk)
            .exclude(status=MatchStatus.REJECTED)
            .values_list("statement_line_id", "bank_transaction_id")
        )
    return line_rows, txn_rows, skip, reconciled


MATCH_COLUMNS = (
    "company_id",
    "reconciliation_id",
    "statement_line_id",
    "bank_transaction_id",
    "amount",
    "method",
    "confidence",
    "status",
    "created_by_id",
    "created_at",
    "accepted_at",
    "bank_account_id",
    "booked_on",
    "cleared_on",
)


def _write_suggestions(account, suggestions, *, auto_accept, actor, reconciled) -> int:
    """Insert the matches and move the reconciled amounts of what was accepted; returns how
    many were accepted."""
    if not suggestions:
        return 0
    now = timezone.now()
    actor_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    rows = []
    line_gain: dict[int, Decimal] = defaultdict(Decimal)
    txn_gain: dict[int, Decimal] = defaultdict(Decimal)
    for s in suggestions:
        confidence = s.confidence.quantize(CONFIDENCE_PLACES)
        accept = confidence >= auto_accept
        if accept:
            line_gain[s.line_id] += s.amount
            txn_gain[s.item_id] += s.amount
        rows.append(
            (
                account.company_id, None, s.line_id, s.item_id, s.amount, s.method, confidence,
                MatchStatus.ACCEPTED if accept else MatchStatus.SUGGESTED, actor_id, now,
                now if accept else None, account.pk, reconciled["txns"][s.item_id][1],
                reconciled["lines"][s.line_id][2],
            )
        )  # fmt: skip
    _insert_matches(rows)
    if not line_gain:
        return 0
    if connection.vendor != "postgresql":
        # PostgreSQL's match trigger derives the reconciled amounts and statuses from the
        # accepted matches in the same statement (banking/sql/banking_match_sync.sql), writing
        # only the rows that change; elsewhere Python keeps them.
        line_updates = []
        for pk, gain in line_gain.items():
            amount, done, _day = reconciled["lines"][pk]
            line_updates.append((pk, done + gain, _line_status(done + gain, amount)))
        txn_updates = [(pk, reconciled["txns"][pk][0] + gain) for pk, gain in txn_gain.items()]
        _update_reconciled(line_updates, txn_updates)
    legs = set(
        BankTransferAllocation.objects.filter(bank_account=account).values_list(
            "bank_transaction_id", flat=True
        )
    )
    cleared_legs = sorted(legs.intersection(txn_gain))
    if cleared_legs:
        transfer_legs_clear(transactions=cleared_legs)
    return sum(1 for row in rows if row[7] == MatchStatus.ACCEPTED)


def _insert_matches(rows: list[tuple]) -> None:
    from core.rls import copy_from

    if connection.vendor == "postgresql":
        # RLS refuses COPY FROM inside a tenant scope: copy_from goes through a temp table.
        table = "banking_reconciliationmatch"
        with connection.cursor() as cursor, copy_from(cursor, table, MATCH_COLUMNS) as copy:
            for row in rows:
                copy.write_row(row)
        return
    ReconciliationMatch.objects.bulk_create(
        [ReconciliationMatch(**dict(zip(MATCH_COLUMNS, row, strict=True))) for row in rows],
        batch_size=500,
    )


def _update_reconciled(line_updates: list[tuple], txn_updates: list[tuple]) -> None:
    """Batched bulk_update (SQLite; PostgreSQL's trigger does this itself). The PostgreSQL
    branch is kept for a database without the trigger."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for chunk in _chunks(line_updates, 50_000):
                ids, totals, statuses = zip(*chunk, strict=True)
                cursor.execute(
                    "UPDATE banking_statementline AS l "
                    "SET reconciled_amount = v.total, status = v.status "
                    "FROM unnest(%s::bigint[], %s::numeric[], %s::varchar[]) "
                    "AS v(id, total, status) WHERE l.id = v.id",
                    [list(ids), list(totals), list(statuses)],
                )
            for chunk in _chunks(txn_updates, 50_000):
                ids, totals = zip(*chunk, strict=True)
                cursor.execute(
                    "UPDATE banking_banktransaction AS t SET reconciled_amount = v.total "
                    "FROM unnest(%s::bigint[], %s::numeric[]) AS v(id, total) "
                    "WHERE t.id = v.id",
                    [list(ids), list(totals)],
                )
        return
    StatementLine.objects.bulk_update(
        [
            StatementLine(pk=pk, reconciled_amount=total, status=st)
            for pk, total, st in line_updates
        ],
        ["reconciled_amount", "status"],
        batch_size=300,
    )
    BankTransaction.objects.bulk_update(
        [BankTransaction(pk=pk, reconciled_amount=total) for pk, total in txn_updates],
        ["reconciled_amount"],
        batch_size=300,
    )


# --- manual matching ---------------------------------------------------------------------------


def _locked_line(statement_line) -> tuple[StatementLine, BankAccount]:
    line = (
        StatementLine.objects.filter(pk=_pk(statement_line)).select_related("bank_account").first()
    )
    if line is None:
        raise _invalid("statement_line", "Statement line: no such line.")
    account = _lock_account(line.bank_account)
    line = StatementLine.objects.select_for_update().get(pk=line.pk)
    return line, account


def _line_open(line: StatementLine) -> Decimal:
    return abs(line.amount) - line.reconciled_amount


def _check_line_usable(line: StatementLine) -> None:
    if line.status == LineStatus.IGNORED:
        raise InvalidTransition(
            f"Statement line {line.pk} is ignored; un-ignore it before matching it.",
            code="line_ignored",
        )


def _check_txn_usable(txn: BankTransaction, line: StatementLine) -> None:
    if txn.bank_account_id != line.bank_account_id:
        raise _invalid(
            "bank_transaction",
            f"Bank transaction {txn.pk} is not of the line's bank account.",
            code="other_account",
        )
    if txn.posting_status != PostingStatus.POSTED:
        raise _invalid(
            "bank_transaction",
            f"Bank transaction {txn.pk} is a draft; post it before matching it.",
            code="not_posted",
        )
    if (line.amount > 0) != (txn.direction == Direction.IN):
        raise _invalid(
            "bank_transaction",
            f"Bank transaction {txn.pk} goes the other way: money "
            f"{'in' if txn.direction == Direction.IN else 'out'}, the line is money "
            f"{'in' if line.amount > 0 else 'out'}.",
            code="sign_mismatch",
        )


def reconciliation_match(
    *, actor, statement_line, allocations, system_job: str = ""
) -> list[ReconciliationMatch]:
    """Match a statement line to one or more posted transactions of its account by hand:
    `allocations` is [(transaction or id, amount or None)], None taking what the line and the
    transaction still have open. Partial allocations leave the line partially matched. The
    allocations must not exceed the line's open amount nor any transaction's; pending
    suggestions on the line and on these transactions are withdrawn."""
    allocations = list(allocations or [])
    if not allocations:
        raise _invalid("allocations", "Allocations: at least one book transaction.")
    with transaction.atomic():
        line, account = _locked_line(statement_line)
        company = account.company
        _require_write(actor, company)
        _check_line_usable(line)
        ids = [_pk(txn) for txn, _ in allocations]
        if len(set(ids)) != len(ids):
            raise _invalid("allocations", "Allocations: each transaction once.")
        txns = {
            t.pk: t
            for t in BankTransaction.objects.select_for_update()
            .filter(pk__in=ids, company=company)
            .order_by("pk")
        }
        _withdraw_suggestions(line_ids=[line.pk], txn_ids=ids)
        remaining = _line_open(line)
        planned = []
        for (_txn, amount), pk in zip(allocations, ids, strict=True):
            txn = txns.get(pk)
            if txn is None:
                raise _invalid("bank_transaction", f"Bank transaction {pk}: no such transaction.")
            _check_txn_usable(txn, line)
            txn_open = txn.amount - txn.reconciled_amount
            if amount in (None, ""):
                amount = min(remaining, txn_open)
                if amount <= 0:
                    raise AllocationExceeded(
                        f"Nothing left to allocate between line {line.pk} and transaction {txn.pk}."
                    )
            else:
                amount = _amount(amount, "amount")
            if amount > txn_open:
                raise AllocationExceeded(
                    f"Transaction {txn.pk} has {txn_open} left to match, not {amount}.",
                    fields={"amount": [f"At most {txn_open}."]},
                )
            if amount > remaining:
                raise AllocationExceeded(
                    f"Statement line {line.pk} has {remaining} left to match; the allocations "
                    "ask for more.",
                    fields={"allocations": [f"At most {remaining} in all."]},
                )
            remaining -= amount
            planned.append((txn, amount))
        now = timezone.now()
        matches = ReconciliationMatch.objects.bulk_create(
            [
                ReconciliationMatch(
                    company=company,
                    statement_line=line,
                    bank_transaction=txn,
                    bank_account_id=line.bank_account_id,
                    cleared_on=line.date,
                    booked_on=txn.date,
                    amount=amount,
                    method=MatchMethod.MANUAL,
                    confidence=Decimal("1"),
                    status=MatchStatus.ACCEPTED,
                    created_by=actor if getattr(actor, "is_authenticated", False) else None,
                    accepted_at=now,
                )
                for txn, amount in planned
            ]
        )
        _refresh_reconciled(line_ids=[line.pk], txn_ids=ids)
        audit_record(
            action="banking.reconciliation.match",
            actor=actor,
            system_job=system_job or SYSTEM_JOB,
            company=company,
            obj=line,
            after={"allocations": [[txn.pk, str(amount)] for txn, amount in planned]},
        )
        return matches


def _locked_match(match) -> tuple[ReconciliationMatch, BankAccount]:
    found = (
        ReconciliationMatch.objects.filter(pk=_pk(match))
        .select_related("statement_line__bank_account")
        .first()
    )
    if found is None:
        raise _invalid("match", "Match: no such match.")
    account = _lock_account(found.statement_line.bank_account)
    StatementLine.objects.select_for_update().filter(pk=found.statement_line_id).first()
    BankTransaction.objects.select_for_update().filter(pk=found.bank_transaction_id).first()
    return ReconciliationMatch.objects.select_for_update().get(pk=found.pk), account


def reconciliation_accept(*, actor, match, system_job: str = "") -> ReconciliationMatch:
    """Accept a suggestion: its amount now counts as reconciled. Accepting twice is a no-op;
    a rejected suggestion cannot be accepted (match the pair by hand instead)."""
    with transaction.atomic():
        match, account = _locked_match(match)
        _require_write(actor, account.company)
        if match.status == MatchStatus.ACCEPTED:
            return match
        if match.status != MatchStatus.SUGGESTED:
            raise InvalidTransition(
                "A rejected suggestion cannot be accepted; match the pair by hand instead."
            )
        line = StatementLine.objects.get(pk=match.statement_line_id)
        txn = BankTransaction.objects.get(pk=match.bank_transaction_id)
        _check_line_usable(line)
        _check_txn_usable(txn, line)
        if match.amount > _line_open(line) or match.amount > txn.amount - txn.reconciled_amount:
            raise AllocationExceeded(
                f"Accepting {match.amount} would match more than line {line.pk} or transaction "
                f"{txn.pk} has left ({_line_open(line)} and {txn.amount - txn.reconciled_amount})."
            )
        before = _match_snapshot(match)
        match.status = MatchStatus.ACCEPTED
        match.accepted_at = timezone.now()
        match.save(update_fields=["status", "accepted_at"])
        _refresh_reconciled(line_ids=[line.pk], txn_ids=[txn.pk])
        audit_record(
            action="banking.reconciliation.accept",
            actor=actor,
            system_job=system_job or SYSTEM_JOB,
            company=account.company,
            obj=match,
            before=before,
            after=_match_snapshot(match),
        )
        return match


def reconciliation_reject(*, actor, match, system_job: str = "") -> ReconciliationMatch:
    """Reject a suggestion: it is not suggested again. Rejecting twice is a no-op; an
    accepted match is undone with `reconciliation_unmatch`."""
    with transaction.atomic():
        match, account = _locked_match(match)
        _require_write(actor, account.company)
        if match.status == MatchStatus.REJECTED:
            return match
        if match.status != MatchStatus.SUGGESTED:
            raise InvalidTransition("An accepted match is undone by unmatching it.")
        before = _match_snapshot(match)
        match.status = MatchStatus.REJECTED
        match.save(update_fields=["status"])
        audit_record(
            action="banking.reconciliation.reject",
            actor=actor,
            system_job=system_job or SYSTEM_JOB,
            company=account.company,
            obj=match,
            before=before,
            after=_match_snapshot(match),
        )
        return match


def reconciliation_unmatch(*, actor, match, system_job: str = "") -> ReconciliationMatch:
    """Undo a match (accepted or suggested): its amount is open again on the line and the
    transaction, whose reconciled amounts and statuses are restored. The row stays, marked
    rejected, so the history shows it and auto-reconcile does not offer the pair again (a
    person may still match it by hand)."""
    with transaction.atomic():
        match, account = _locked_match(match)
        _require_write(actor, account.company)
        if match.status == MatchStatus.REJECTED:
            return match
        before = _match_snapshot(match)
        match.status = MatchStatus.REJECTED
        match.save(update_fields=["status"])
        _refresh_reconciled(line_ids=[match.statement_line_id], txn_ids=[match.bank_transaction_id])
        audit_record(
            action="banking.reconciliation.unmatch",
            actor=actor,
            system_job=system_job or SYSTEM_JOB,
            company=account.company,
            obj=match,
            before=before,
            after=_match_snapshot(match),
        )
        return match


# --- book entries from statement lines -----------------------------------------------------------

_LINE_KIND_DIRECTION = {
    TransactionKind.FEE: Direction.OUT,
    TransactionKind.WITHDRAWAL: Direction.OUT,
    TransactionKind.INTEREST: Direction.IN,
    TransactionKind.DEPOSIT: Direction.IN,
}


def _open_for_decision(line: StatementLine) -> Decimal:
    """What a person may still book from the line: pending suggestions on it are withdrawn
    first (they decided differently)."""
    _check_line_usable(line)
    _withdraw_suggestions(line_ids=[line.pk])
    remaining = _line_open(line)
    if remaining <= 0:
        raise ConflictError(
            f"Statement line {line.pk} is already fully matched.", code="line_matched"
        )
    return remaining


def statement_line_create_transaction(
    *,
    actor,
    statement_line,
    kind: str,
    counter_account=None,
    cost_center=None,
    project=None,
    department=None,
    memo: str = "",
    branch: str = "",
    system_job: str = "",
) -> BankTransaction:
    """Book what the bank did and the books lack (a fee, interest, a direct debit): a
    transaction of the line's open amount, date and sign is created (source `statement`),
    posted through `bank_transaction_post` (fee → bank_fees, interest → interest_income unless
    `counter_account` says otherwise; deposits and withdrawals need one) and matched."""
    job = system_job or SYSTEM_JOB
    with transaction.atomic():
        line, account = _locked_line(statement_line)
        _require_write(actor, account.company)
        direction = Direction.IN if line.amount > 0 else Direction.OUT
        expected = _LINE_KIND_DIRECTION.get(kind)
        if kind not in TransactionKind.values:
            raise _invalid("kind", f"Kind: one of {', '.join(TransactionKind.values)}.")
        if expected is not None and expected != direction:
            raise _invalid(
                "kind",
                f"Kind: a {TransactionKind(kind).label.lower()} is money "
                f"{'in' if expected == Direction.IN else 'out'}, the line is money "
                f"{'in' if direction == Direction.IN else 'out'}.",
                code="sign_mismatch",
            )
        amount = _open_for_decision(line)
        txn = bank_transaction_create(
            actor=actor,
            system_job=job,
            bank_account=account,
            kind=kind,
            direction=direction,
            amount=amount,
            date=line.date,
            value_date=line.value_date,
            reference=(line.reference or line.bank_id)[:140],
            counterparty=line.counterparty[:200],
            memo=(memo or line.description)[:500],
            branch=branch,
            counter_account=counter_account,
            cost_center=cost_center,
            project=project,
            department=department,
            source=TransactionSource.STATEMENT,
            source_id=str(line.pk),
        )
        bank_transaction_post(actor=actor, transaction=txn, system_job=job)
        txn.refresh_from_db()
        _match_decided(actor, line, txn, amount, MatchMethod.CREATED_FROM_LINE, job)
        return txn


def _match_decided(actor, line, txn, amount, method, job) -> ReconciliationMatch:
    match = ReconciliationMatch.objects.create(
        company=line.company,
        statement_line=line,
        bank_transaction=txn,
        bank_account_id=line.bank_account_id,
        cleared_on=line.date,
        booked_on=txn.date,
        amount=amount,
        method=method,
        confidence=Decimal("1"),
        status=MatchStatus.ACCEPTED,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        accepted_at=timezone.now(),
    )
    _refresh_reconciled(line_ids=[line.pk], txn_ids=[txn.pk])
    audit_record(
        action=f"banking.reconciliation.{method}",
        actor=actor,
        system_job=job,
        company=line.company,
        obj=match,
        after=_match_snapshot(match),
    )
    return match


def statement_line_settle_invoices(
    *, actor, statement_line, settlements, system_job: str = ""
) -> list[BankTransaction]:
    """A receipt on the statement settles one or more open invoices: `settlements` is
    [(invoice, amount or None)], None paying what is due (at most what the line has left).
    Each invoice is paid through invoicing's `invoice_payment_record` on the bank account's
    ledger account (one journal entry: Dr bank / Cr receivable); a posted BankTransaction
    (deposit, source invoice_payment) is recorded on that entry, never posted a second time,
    and matched to the line. Partial payments are allowed; paying more than an invoice has due
    or than the line has left is refused."""
    from invoicing.models import Invoice, InvoicePayment
    from invoicing.services import invoice_payment_record

    job = system_job or SYSTEM_JOB
    settlements = list(settlements or [])
    if not settlements:
        raise _invalid("invoice", "Invoice: at least one invoice to settle.")
    with transaction.atomic():
        line, account = _locked_line(statement_line)
        company = account.company
        _require_write(actor, company)
        if line.amount <= 0:
            raise _invalid(
                "statement_line",
                "Statement line: only money received settles an invoice.",
                code="sign_mismatch",
            )
        remaining = _open_for_decision(line)
        _require_base_currency(account)
        seen = set()
        created = []
        for invoice_ref, amount in settlements:
            invoice = Invoice.objects.filter(company=company, pk=_pk(invoice_ref)).first()
            if invoice is None:
                raise _invalid("invoice", "Invoice: no such invoice in this company.")
            if invoice.pk in seen:
                raise _invalid("invoice", f"Invoice {invoice.number}: once per settlement.")
            currency = invoice.currency or company.base_currency
            if currency != account.currency:
                raise ValidationFailed(
                    f"Invoice {invoice.number or invoice.pk} is in {currency}; the bank account "
                    f"'{account.name}' is in {account.currency}.",
                    code="currency_mismatch",
                    fields={"invoice": [f"Not in {account.currency}."]},
                )
            seen.add(invoice.pk)
            due = invoice.amount_due
            amount = min(remaining, due) if amount in (None, "") else _amount(amount, "amount")
            if amount <= 0:
                raise ValidationFailed(
                    f"Invoice {invoice.number or invoice.pk} has nothing due.", code="nothing_due"
                )
            if amount > due:
                raise ValidationFailed(
                    f"Invoice {invoice.number} has {due} due; {amount} would overpay it.",
                    code="overpayment",
                    fields={"amount": [f"At most {due}."]},
                )
            if amount > remaining:
                raise AllocationExceeded(
                    f"Statement line {line.pk} has {remaining} left; {amount} is more.",
                    fields={"amount": [f"At most {remaining}."]},
                )
            invoice = invoice_payment_record(
                actor=actor,
                invoice=invoice,
                amount=amount,
                date=line.date,
                account=account.ledger_account,
                account_vouched=True,
                method="bank",
                reference=(line.reference or line.bank_id)[:100],
                system_job=job,
            )
            payment = (
                InvoicePayment.objects.filter(invoice=invoice).order_by("-event_version").first()
            )
            txn = bank_transaction_create_posted(
                actor=actor,
                system_job=job,
                bank_account=account,
                kind=TransactionKind.DEPOSIT,
                amount=amount,
                date=line.date,
                value_date=line.value_date,
                journal_entry=payment.journal_entry,
                source=TransactionSource.INVOICE_PAYMENT,
                source_id=str(invoice.pk),
                invoice=invoice.pk,
                reference=(invoice.number or line.reference)[:140],
                counterparty=(line.counterparty or str(invoice.customer))[:200],
                memo=f"Payment of {invoice.number or invoice.pk} from statement line {line.pk}",
            )
            _match_decided(actor, line, txn, amount, MatchMethod.INVOICE, job)
            remaining -= amount
            created.append(txn)
        return created


def statement_line_settle_invoice(
    *, actor, statement_line, invoice, amount=None, system_job: str = ""
) -> BankTransaction:
    """One invoice from one receipt (see `statement_line_settle_invoices`)."""
    return statement_line_settle_invoices(
        actor=actor,
        statement_line=statement_line,
        settlements=[(invoice, amount)],
        system_job=system_job,
    )[0]


# --- the monthly reconciliation report ---------------------------------------------------------


def _book_balance(account: BankAccount, as_of: date) -> Decimal:
    """The ledger's balance of the bank's ledger account at the end of `as_of`: the bank
    account's opening balance (the balance brought forward at its opening date, which banking
    does not post) plus every journal line on its ledger account from the opening date: what
    banking posted, and what invoicing, payroll, manual entries and reversals posted there.
    Read from the ledger's per-period balances (accounting.selectors.movements): a few rows,
    whatever the number of entries."""
    return _book_balances([account], as_of)[account.pk]


def _book_balances(accounts: Iterable[BankAccount], as_of: date) -> dict[int, Decimal]:
    """`_book_balance` of each account, bank account id -> balance: one read of the ledger's
    balances for all the accounts that opened on the same day (usually all of them), not one
    per account (the cash position lists every account)."""
    from accounting.selectors import movements

    balances: dict[int, Decimal] = {}
    same_start: dict[tuple[int, date | None], list[BankAccount]] = defaultdict(list)
    for account in accounts:
        start = account.opening_date
        if start and as_of < start:
            balances[account.pk] = ZERO
        else:
            same_start[(account.company_id, start)].append(account)
    for (_company, start), group in same_start.items():
        moved = movements(
            company=group[0].company,
            date_from=start,
            date_to=as_of,
            account_ids=sorted({a.ledger_account_id for a in group}),
        )
        for account in group:
            debit, credit = moved.get(account.ledger_account_id, (ZERO, ZERO))
            balances[account.pk] = money(account.opening_balance + debit - credit)
    return balances


def _banking_balance(account: BankAccount, as_of: date) -> Decimal:
    """Opening balance plus posted inflow minus outflow of the bank account's transactions up
    to `as_of`, from the daily balances the database keeps. Equal to `_book_balance` once every
    ledger entry on the account is carried by a transaction (see bank_ledger_adopt)."""
    days = BankDailyBalance.objects.filter(bank_account=account, date__lte=as_of)
    if account.opening_date:
        if as_of < account.opening_date:
            return ZERO
        days = days.filter(date__gte=account.opening_date)
    totals = days.aggregate(inflow=Sum("inflow"), outflow=Sum("outflow"))
    return money(account.opening_balance + (totals["inflow"] or 0) - (totals["outflow"] or 0))


def _statement_balance(account: BankAccount, as_of: date) -> Decimal | None:
    """The bank's balance at the end of `as_of`: the latest imported closing balance on or
    before it plus the lines after it; without one, the account's opening balance (the books
    and the bank agree on it at the opening date) plus the lines. None when the account has no
    statement line at all yet."""
    anchor = (
        StatementImport.objects.filter(
            bank_account=account, closing_balance__isnull=False, closing_date__lte=as_of
        )
        .order_by("-closing_date", "-id")
        .values_list("closing_balance", "closing_date")
        .first()
    )
    lines = StatementLine.objects.filter(bank_account=account, date__lte=as_of)
    if anchor is not None:
        balance, since = anchor
        lines = lines.filter(date__gt=since)
    else:
        if not StatementLine.objects.filter(bank_account=account).exists():
            return None
        balance = account.opening_balance
        if account.opening_date:
            lines = lines.filter(date__gte=account.opening_date)
    return money(balance + (lines.aggregate(total=Sum("amount"))["total"] or 0))


def _statement_opening(account: BankAccount, start: date) -> Decimal | None:
    """The month's opening balance as the bank printed it (an import opening on the first
    day of the month or the first statement of the month), else the balance the day before."""
    printed = (
        StatementImport.objects.filter(
            bank_account=account,
            opening_balance__isnull=False,
            opening_date__range=(start, month_end(start)),
        )
        .order_by("opening_date", "id")
        .values_list("opening_balance", "opening_date")
        .first()
    )
    if printed is not None and printed[1] == start:
        return printed[0]
    before = _statement_balance(account, start - timedelta(days=1))
    if before is None and printed is not None:
        return printed[0]
    return before


def _accepted_sum(**filters) -> Coalesce:
    """Per row of the outer query: the sum of its accepted allocations matching `filters`
    (a correlated subquery on the match table's foreign-key index)."""
    key = next(name for name, value in filters.items() if isinstance(value, OuterRef))
    total = (
        ReconciliationMatch.objects.filter(status=MatchStatus.ACCEPTED, **filters)
        .order_by()
        .values(key)
        .annotate(total=Sum("amount"))
        .values("total")[:1]
    )
    return Coalesce(Subquery(total), Value(ZERO), output_field=DecimalField())


def _crossing(account: BankAccount, end: date, *, booked_first: bool) -> list[int]:
    """Accepted matches of the account that cross the end of `end`: booked on or before it and
    cleared after it (`booked_first`), or cleared on or before it and booked after it. Returns
    the transaction ids (booked_first) or the line ids. PostgreSQL answers from the GiST index
    on the span between the two dates (banking_match_crossing), so an old month costs what
    crossed its end, not the history after it."""
    matches = ReconciliationMatch.objects.filter(
        bank_account=account, status=MatchStatus.ACCEPTED
    ).order_by()
    if booked_first:
        matches = matches.filter(booked_on__lte=end, cleared_on__gt=end)
        key = "bank_transaction_id"
    else:
        matches = matches.filter(cleared_on__lte=end, booked_on__gt=end)
        key = "statement_line_id"
    if connection.vendor == "postgresql":
        matches = matches.extra(
            where=[
                "booked_on <> cleared_on AND daterange(least(booked_on, cleared_on), "
                "greatest(booked_on, cleared_on), '[)') @> %s::date"
            ],
            params=[end],
        )
    return sorted(set(matches.values_list(key, flat=True)))


def _outstanding(account: BankAccount, end: date) -> list[dict]:
    """Posted transactions dated on or before `end` not cleared by a statement line dated on
    or before `end`, with the part still outstanding then. A reversed entry and its reversal
    (`is_reversed`) are never outstanding: they cancel out.

    Two queries: transactions not fully reconciled today (the partial index on unreconciled
    rows), and those cleared by lines dated after `end` (the crossing index on the matches);
    each with what lines up to `end` cleared of it (the matches' cleared_on copy)."""
    posted = BankTransaction.objects.filter(
        bank_account=account,
        posting_status=PostingStatus.POSTED,
        date__lte=end,
        is_reversed=False,
    )
    if account.opening_date:
        posted = posted.filter(date__gte=account.opening_date)
    fields = ("pk", "date", "kind", "direction", "amount", "reference", "counterparty")
    cleared = _accepted_sum(bank_transaction_id=OuterRef("pk"), cleared_on__lte=end)
    rows = list(
        posted.filter(reconciled_amount__lt=F("amount"))
        .order_by()
        .annotate(cleared=cleared)
        .values(*fields, "cleared")
    )
    later = _crossing(account, end, booked_first=True)
    for chunk in _chunks(later):
        rows.extend(
            posted.filter(reconciled_amount=F("amount"), pk__in=chunk)
            .order_by()
            .annotate(cleared=cleared)
            .values(*fields, "cleared")
        )
    out = []
    for row in rows:
        left = row["amount"] - row.pop("cleared")
        if left > 0:
            row["id"] = row.pop("pk")
            row["outstanding"] = left
            out.append(row)
    out.sort(key=lambda r: (r["date"], r["id"]))
    return out


def _unmatched_lines(account: BankAccount, end: date) -> list[dict]:
    """Statement lines dated on or before `end` that the books did not hold by then: not (or
    not wholly) matched, or matched to transactions dated after `end`. Ignored lines are left
    out. Two queries, as for the outstanding items."""
    lines = StatementLine.objects.filter(bank_account=account, date__lte=end)
    fields = ("pk", "date", "amount", "bank_id", "reference", "counterparty", "description")
    booked = _accepted_sum(statement_line_id=OuterRef("pk"), booked_on__lte=end)
    rows = list(
        lines.filter(status__in=OPEN_LINE_STATUSES)
        .order_by()
        .annotate(booked=booked)
        .values(*fields, "booked")
    )
    later = _crossing(account, end, booked_first=False)
    for chunk in _chunks(later):
        rows.extend(
            lines.filter(status=LineStatus.MATCHED, pk__in=chunk)
            .order_by()
            .annotate(booked=booked)
            .values(*fields, "booked")
        )
    out = []
    for row in rows:
        left = abs(row["amount"]) - row.pop("booked")
        if left > 0:
            row["id"] = row.pop("pk")
            row["unmatched"] = left
            out.append(row)
    out.sort(key=lambda r: (r["date"], r["id"]))
    return out


def _figures(account: BankAccount, start: date, *, items: bool = True) -> dict:
    """The month's reconciliation, computed (no writes).

    The book balance is the ledger's (see `_book_balance`). The usual bank reconciliation
    form: the statement's closing balance, plus deposits in the books the bank has not
    credited yet (outstanding deposits), minus payments in the books the bank has not debited
    yet (outstanding payments), is the adjusted statement balance, which should equal the book
    balance (ledger entries not yet carried by a bank transaction, `ledger_not_adopted`, count
    as outstanding by their net sign until auto-reconcile adopts them):

        variance = (statement closing + outstanding deposits − outstanding payments)
                   − book balance

    Whatever the bank did that the books lack (a fee, interest, a direct debit not yet booked)
    shows as variance, and is listed among the unmatched statement lines: a 1,500 fee not yet
    booked gives a variance of −1,500.00. The threshold is checked on |variance|.
    """
    end = month_end(start)
    closing = _statement_balance(account, end)
    book = _book_balance(account, end)
    # ledger entries on the bank's account not carried by a transaction yet (adopted by the
    # next auto-reconcile or refresh): in the books, not on any statement line, so outstanding
    not_adopted = money(book - _banking_balance(account, end))
    outstanding = _outstanding(account, end)
    deposits = money(sum((o["outstanding"] for o in outstanding if o["direction"] == "in"), ZERO))
    payments = money(sum((o["outstanding"] for o in outstanding if o["direction"] == "out"), ZERO))
    if not_adopted > 0:
        deposits += not_adopted
    elif not_adopted < 0:
        payments -= not_adopted
    unmatched = _unmatched_lines(account, end)
    adjusted = None if closing is None else money(closing + deposits - payments)
    figures = {
        "bank_account_id": account.pk,
        "bank_account": account.name,
        "currency": account.currency,
        "period": start,
        "period_end": end,
        "statement_opening": _statement_opening(account, start),
        "statement_closing": closing,
        "book_balance": book,
        "outstanding_deposits": deposits,
        "outstanding_payments": payments,
        "ledger_not_adopted": not_adopted,
        "adjusted_statement_balance": adjusted,
        "variance": None if adjusted is None else money(adjusted - book),
        "unmatched_statement_lines": len(unmatched),
        "unmatched_received": money(
            sum((u["unmatched"] for u in unmatched if u["amount"] > 0), ZERO)
        ),
        "unmatched_paid": money(sum((u["unmatched"] for u in unmatched if u["amount"] < 0), ZERO)),
    }
    if items:
        figures["outstanding_deposit_items"] = [o for o in outstanding if o["direction"] == "in"]
        figures["outstanding_payment_items"] = [o for o in outstanding if o["direction"] == "out"]
        figures["unmatched_lines"] = unmatched
    return figures


def _no_jit() -> None:
    """A report runs a handful of small indexed queries; PostgreSQL's JIT compiler, woken by
    the cost estimates of their correlated subqueries, spends far longer compiling them than
    running them (half a second against milliseconds). Off for this transaction only."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def _status(variance: Decimal | None, threshold: Decimal, closed: bool) -> str:
    if variance is not None and abs(variance) > threshold:
        return ReconciliationStatus.EXCEEDS_THRESHOLD
    if closed and variance is not None:
        return ReconciliationStatus.RECONCILED
    return ReconciliationStatus.OPEN


def _signed_off_still_true(row: BankReconciliation | None, figures: dict) -> bool:
    """A month signed off counts as reconciled while its figures are those signed off."""
    return (
        row is not None
        and row.reconciled_at is not None
        and figures["variance"] is not None
        and row.variance == figures["variance"]
        and row.book_balance == figures["book_balance"]
        and row.statement_closing == figures["statement_closing"]
    )


def _report_dict(figures: dict, row, thresholds, status: str) -> dict:
    variance = figures["variance"]
    return {
        **figures,
        "reconciliation_id": row.pk if row is not None else None,
        "threshold": thresholds.reconciliation_threshold,
        "alert_threshold": thresholds.variance_alert_threshold,
        "within_threshold": None
        if variance is None
        else abs(variance) <= thresholds.reconciliation_threshold,
        "status": status,
        "reconciled_by": row.reconciled_by_id if row is not None else None,
        "reconciled_at": row.reconciled_at if row is not None else None,
    }


def reconciliation_report(*, bank_account, period, company: Company | None = None) -> dict:
    """The month's bank reconciliation of one account (see `_figures` for the form), computed
    live. Read-only: nothing is written and no alert raised (an auditor's GET leaves no
    trace); `reconciliation_refresh` stores the figures and raises the alert. The status is
    `exceeds_threshold` when |variance| is above the threshold (BANKING_RECONCILIATION_THRESHOLD
    or the company's), `reconciled` when the month was signed off and its figures have not
    moved since, `open` otherwise. `reconciliation_id` is None until the month was stored."""
    account = _bank_account(company, bank_account)
    start = month_of(period)
    thresholds = banking_settings_for(account.company)
    with transaction.atomic():
        _no_jit()
        figures = _figures(account, start)
    row = BankReconciliation.objects.filter(bank_account=account, period=start).order_by().first()
    status = _status(
        figures["variance"],
        thresholds.reconciliation_threshold,
        _signed_off_still_true(row, figures),
    )
    return _report_dict(figures, row, thresholds, status)


def _refresh_locked(
    account: BankAccount, start: date, thresholds, *, system_job: str, figures=None
) -> tuple[BankReconciliation, dict, str]:
    """Inside the caller's transaction: compute the month's figures, store them in its
    BankReconciliation row (created under a row lock), reopen a signed-off month whose
    figures moved (audit event `banking.reconciliation.reopen`), and raise the variance alert
    above the alert threshold (email, log and metric after commit)."""
    bank_ledger_adopt(bank_account=account, system_job=system_job)
    row, _created = BankReconciliation.objects.select_for_update().get_or_create(
        bank_account=account,
        period=start,
        defaults={
            "company_id": account.company_id,
            "threshold": thresholds.reconciliation_threshold,
        },
    )
    if figures is None:
        _no_jit()
        figures = _figures(account, start)
    variance = figures["variance"]
    reopened = row.reconciled_at is not None and not _signed_off_still_true(row, figures)
    if reopened:
        audit_record(
            action="banking.reconciliation.reopen",
            system_job=system_job,
            company=account.company,
            obj=row,
            before={
                "status": row.status,
                "variance": str(row.variance),
                "book_balance": str(row.book_balance),
                "statement_closing": str(row.statement_closing),
                "reconciled_by": row.reconciled_by_id,
            },
            after={
                "variance": str(variance),
                "book_balance": str(figures["book_balance"]),
                "statement_closing": str(figures["statement_closing"]),
            },
        )
        row.reconciled_at = None
        row.reconciled_by = None
    status = _status(variance, thresholds.reconciliation_threshold, row.reconciled_at is not None)
    values = {
        "statement_opening": figures["statement_opening"],
        "statement_closing": figures["statement_closing"],
        "book_balance": figures["book_balance"],
        "outstanding_deposits": figures["outstanding_deposits"],
        "outstanding_payments": figures["outstanding_payments"],
        "variance": variance if variance is not None else ZERO,
        "threshold": thresholds.reconciliation_threshold,
        "status": status,
    }
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    if reopened:
        changed += ["reconciled_at", "reconciled_by"]
    if changed:
        for name in changed:
            if name in values:
                setattr(row, name, values[name])
        row.save(update_fields=[*changed, "updated_at"])
    if variance is not None and abs(variance) > thresholds.variance_alert_threshold:
        variance_alert_raise(
            reconciliation=row,
            variance=variance,
            alert_threshold=thresholds.variance_alert_threshold,
            extra_recipients=thresholds.alert_recipients,
        )
    return row, figures, status


def reconciliation_refresh(
    *, bank_account, period, system_job: str = SYSTEM_JOB, company: Company | None = None
) -> dict:
    """Store the month's figures in its BankReconciliation row and raise the variance alert
    when |variance| exceeds the alert threshold (BANKING_VARIANCE_ALERT_THRESHOLD or the
    company's), once per account, month and figure; the email follows the commit. A
    signed-off month whose figures moved is reopened (audit event). Run by auto-reconcile,
    by closing a month and daily by the `banking.refresh_reconciliations` task. Returns the
    report (as `reconciliation_report`)."""
    account = _bank_account(company, bank_account)
    start = month_of(period)
    thresholds = banking_settings_for(account.company)
    with transaction.atomic():
        row, figures, status = _refresh_locked(account, start, thresholds, system_job=system_job)
    return _report_dict(figures, row, thresholds, status)


def reconciliation_close(
    *, actor, bank_account, period, system_job: str = ""
) -> BankReconciliation:
    """Sign the month off: allowed when the statement is known and |variance| is within the
    threshold; records who and when. Figures, check and sign-off in one transaction under the
    lock of the month's row. A later change of the month's figures reopens it (see
    `reconciliation_refresh`; the live report no longer calls it reconciled)."""
    account = _bank_account(None, bank_account)
    _require_write(actor, account.company)
    start = month_of(period)
    thresholds = banking_settings_for(account.company)
    job = system_job or SYSTEM_JOB
    with transaction.atomic():
        row, figures, _status_now = _refresh_locked(account, start, thresholds, system_job=job)
        variance = figures["variance"]
        if variance is None:
            raise ConflictError(
                "No statement for this month yet: import it before closing.", code="no_statement"
            )
        if abs(variance) > thresholds.reconciliation_threshold:
            raise ConflictError(
                f"The variance {variance} exceeds the threshold "
                f"{thresholds.reconciliation_threshold}; it cannot be closed.",
                code="variance_exceeds_threshold",
            )
        before = {"status": row.status, "reconciled_at": row.reconciled_at}
        row.status = ReconciliationStatus.RECONCILED
        row.reconciled_by = actor if getattr(actor, "is_authenticated", False) else None
        row.reconciled_at = timezone.now()
        row.save(update_fields=["status", "reconciled_by", "reconciled_at", "updated_at"])
        audit_record(
            action="banking.reconciliation.close",
            actor=actor,
            system_job=job,
            company=account.company,
            obj=row,
            before=before,
            after={"status": row.status, "variance": str(row.variance)},
        )
        return row


def variance_report(*, bank_account, period=None, months: int = 12, company=None) -> dict:
    """The variance month by month, the `months` months up to `period` (default: this month),
    oldest first, for a chart. Computed live (nothing stored, no alert)."""
    account = _bank_account(company, bank_account)
    last = month_of(period) if period else account.company.today().replace(day=1)
    if not 1 <= int(months) <= 120:
        raise _invalid("months", "Months: between 1 and 120.")
    thresholds = banking_settings_for(account.company)
    starts = []
    cursor = last
    for _ in range(int(months)):
        starts.append(cursor)
        cursor = (cursor - timedelta(days=1)).replace(day=1)
    closed = set(
        BankReconciliation.objects.filter(
            bank_account=account, period__in=starts, reconciled_at__isnull=False
        ).values_list("period", flat=True)
    )
    periods = []
    with transaction.atomic():
        _no_jit()
        figures = [(start, _figures(account, start, items=False)) for start in reversed(starts)]
    for start, f in figures:
        periods.append(
            {
                "period": start,
                "statement_closing": f["statement_closing"],
                "book_balance": f["book_balance"],
                "outstanding_deposits": f["outstanding_deposits"],
                "outstanding_payments": f["outstanding_payments"],
                "variance": f["variance"],
                "status": _status(
                    f["variance"], thresholds.reconciliation_threshold, start in closed
                ),
            }
        )
    return {
        "bank_account_id": account.pk,
        "bank_account": account.name,
        "currency": account.currency,
        "threshold": thresholds.reconciliation_threshold,
        "alert_threshold": thresholds.variance_alert_threshold,
        "periods": periods,
    }
