"""Ledger: posting throughput and latency, reports over a large ledger, and django-hordak beside it.

Phases, in order, against one throwaway database (PostgreSQL gives the real figures: its ledger
triggers are on, as the migrations leave them):

1. Bulk: `scale` journal lines (100,000 by default) through `journal_entries_post_bulk`, in
   calls of about BULK_CHUNK_LINES lines, as a payroll run or an import posts. Entries have 2-8
   lines (mean about 4), amounts with cents, cost centres, projects and departments on some
   lines, dates over two fiscal years. Only the service calls are timed (validation, numbering,
   hash chain, INSERTs, triggers, balance upsert, audit event, commit); building the input
   dicts is the caller's work and is not. `peak_rss_mb` is the process's peak resident memory
   at the end of this phase (Django, the company and the bulk posting).
2. One at a time: two-line entries through `journal_entry_post`, each its own transaction with
   its number, hash link, balances and audit event; the median and p95 latency, after VACUUM
   ANALYZE of the ledger tables (the steady state). `post_one_after_bulk_median_ms` is the
   median of SINGLE_AFTER_BULK posts right after the bulk phase, while autovacuum still works
   through its rows.
3. Side by side: the same two-leg transactions (scale / 5; 20,000 by default) through our bulk
   service and through django-hordak 2.x, both by its public API (`Account.transfer_to`) and by
   `bulk_create` of its Transaction and Leg models, in chunks of the same size. Hordak runs
   first, in a subprocess with its own settings and database (bench/_hordak.py), while our
   database is still idle. The ratios are our throughput in lines per second over hordak's in
   legs per second: `hordak_api_ratio` and `hordak_bulk_ratio` take `bulk_lines_per_s` (phase
   1, mixed entries); the `*_same_work` ratios take `bulk_two_leg_lines_per_s` (the same
   two-leg transactions: our harder case, as the per-entry work is spread over two lines only).
4. Reports: the ledger is filled up to 10 x scale lines (1,000,000 by default) through the
   same bulk service, PostgreSQL's statistics are refreshed (VACUUM ANALYZE, as autovacuum does
   after a load), and trial balance and balance sheet are timed: the median of REPORT_RUNS
   after REPORT_WARMUP untimed runs, to a month end and to a mid-month day.

django-hordak is installed only for benchmarks: `pip install -r requirements/bench.txt`.
Without it (or on SQLite, where hordak's migrations do not run, or below scale 5,000) the
hordak figures are null and `hordak_note` says why.

Run: `DATABASE_URL=postgres://... python -m bench ledger --json`.
"""

import random
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from bench import _hordak
from bench._django import bench_database
from bench._stats import percentile

DESCRIPTION = (
    "Ledger: bulk posting of 2-8 line entries with the triggers on; one entry at a time "
    "(steady state after VACUUM ANALYZE; post_one_after_bulk_median_ms right after the bulk "
    "phase); trial balance and balance sheet over 10 x scale lines (after VACUUM ANALYZE); "
    "django-hordak 2.x posting the same two-leg transactions. hordak_*_ratio: our "
    "bulk_lines_per_s over hordak's legs/s; *_same_work: our bulk_two_leg_lines_per_s instead. "
    "peak_rss_mb: process peak after the bulk phase; peak_rss_run_mb: after the whole run"
)
DEFAULT_SCALE = 100_000

BULK_CHUNK_LINES = 10_000  # lines per journal_entries_post_bulk call in the timed bulk phase
LOAD_CHUNK_LINES = 20_000  # lines per call when filling the ledger for the reports
REPORT_LINES_PER_SCALE = 10
TRANSFERS_PER_SCALE = 0.2  # two-leg transactions compared with hordak
TRANSFER_CHUNK = 5_000  # transactions per bulk call or database transaction, both ledgers
HORDAK_MIN_TRANSFERS = 1_000
SINGLE_POSTS_MAX = 500
SINGLE_POSTS_MIN = 5
SINGLE_WARMUP = 20
SINGLE_AFTER_BULK = 100
REPORT_RUNS = 9
REPORT_WARMUP = 2

# Line counts of an entry, drawn uniformly: mostly small entries, some payroll-like ones.
LINE_COUNTS = (2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8, 8)
FIRST_DAY = date(2024, 1, 1)
LAST_DAY = date(2025, 12, 31)
REPORT_MONTH_END = date(2025, 12, 31)
REPORT_MID_MONTH = date(2025, 12, 15)
SEED = 42

Figures = dict[str, float | int | str | None]


@dataclass(frozen=True)
class Ledger:
    company: object
    accounts: list[int]
    cost_centers: list[int]
    projects: list[int]
    departments: list[int]
    days: list[date]
    bank: int
    sales: int
    rent: int


# ---------------------------------------------------------------------------------------------
# Set-up and workload
# ---------------------------------------------------------------------------------------------
def _set_up() -> Ledger:
    from accounting import services
    from accounting.models import Account, CostCenter, Department, Project
    from core.models import User
    from core.services import company_create

    owner = User.objects.create_user(username="bench-ledger", password=None)
    company = company_create(
        actor=None,
        name="Bench Ledger Co",
        slug="bench-ledger",
        owner=owner,
        fiscal_year_start_month=1,
        base_currency="USD",
        time_zone="UTC",
        country="US",
    )
    for year in range(FIRST_DAY.year, LAST_DAY.year + 1):
        services.fiscal_year_create(actor=None, company=company, containing=date(year, 6, 1))

    def dimensions(model, prefix: str, count: int) -> list[int]:
        return [
            services.dimension_create(
                actor=None, company=company, model=model, code=f"{prefix}{n}", name=f"{prefix} {n}"
            ).pk
            for n in range(1, count + 1)
        ]

    postable = Account.objects.filter(company=company, is_postable=True, is_active=True)
    # Retained earnings is left to year-end closing; everything else postable takes entries.
    codes = dict(postable.exclude(code="3200").values_list("code", "pk"))
    days = [FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]
    return Ledger(
        company=company,
        accounts=sorted(codes.values()),
        cost_centers=dimensions(CostCenter, "CC", 6),
        projects=dimensions(Project, "PR", 4),
        departments=dimensions(Department, "DP", 3),
        days=days,
        bank=codes["1131"],
        sales=codes["4100"],
        rent=codes["6200"],
    )


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _mixed_entry(rng: random.Random, ledger: Ledger, size: int, key: str) -> dict:
    """A balanced entry of `size` lines: some debits, the rest credits sharing their total."""
    debit_count = rng.randint(1, size - 1)
    debits = [rng.randint(100, 500_000) for _ in range(debit_count)]
    total = sum(debits)
    credit_count = size - debit_count
    cuts = sorted(rng.sample(range(1, total), credit_count - 1))
    credits = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    accounts = rng.sample(ledger.accounts, min(size, len(ledger.accounts)))
    lines = []
    for n, cents in enumerate(debits + credits):
        line = {
            "account": accounts[n % len(accounts)],
            "debit" if n < debit_count else "credit": _money(cents),
        }
        if rng.random() < 0.4:
            line["cost_center"] = rng.choice(ledger.cost_centers)
        if rng.random() < 0.2:
            line["project"] = rng.choice(ledger.projects)
        if rng.random() < 0.2:
            line["department"] = rng.choice(ledger.departments)
        lines.append(line)
    return {
        "date": rng.choice(ledger.days),
        "lines": lines,
        "memo": f"Bench entry {key}",
        "source_type": "bench",
        "idempotency_key": key,
    }


def _mixed_chunks(
    rng: random.Random, ledger: Ledger, total_lines: int, chunk_lines: int, prefix: str
) -> Iterator[tuple[list[dict], int]]:
    """Chunks of entries of about `chunk_lines` lines, `total_lines` lines in all (the last
    entry of a chunk may carry it a few lines over)."""
    posted = serial = 0
    while posted < total_lines:
        target = min(chunk_lines, total_lines - posted)
        entries, lines = [], 0
        while lines < target:
            size = rng.choice(LINE_COUNTS)
            serial += 1
            entries.append(_mixed_entry(rng, ledger, size, f"{prefix}-{serial}"))
            lines += size
        posted += lines
        yield entries, lines


def _post_chunks(ledger: Ledger, chunks: Iterator[tuple[list[dict], int]]) -> tuple[int, float]:
    """Post each chunk with journal_entries_post_bulk; (lines, seconds in the service calls)."""
    from accounting.services import journal_entries_post_bulk

    lines = 0
    seconds = 0.0
    for entries, count in chunks:
        started = time.perf_counter()
        journal_entries_post_bulk(
            actor=None, system_job="bench", company=ledger.company, entries=entries
        )
        seconds += time.perf_counter() - started
        lines += count
    return lines, seconds


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _ledger_triggers() -> int:
    """Enabled user triggers on the journal tables: 0 on SQLite, where there are none."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname IN ('accounting_journalentry', 'accounting_journalline') "
            "AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
        )
        return cursor.fetchone()[0]


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------
def _bulk_phase(rng: random.Random, ledger: Ledger, lines: int) -> Figures:
    posted, seconds = _post_chunks(
        ledger, _mixed_chunks(rng, ledger, lines, BULK_CHUNK_LINES, "bulk")
    )
    return {
        "bulk_lines": posted,
        "bulk_lines_per_s": round(posted / seconds),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _post_one(rng: random.Random, ledger: Ledger, key: str) -> float:
    """Post one two-line entry through journal_entry_post; its latency in milliseconds."""
    from accounting.services import journal_entry_post

    amount = _money(rng.randint(100, 500_000))
    started = time.perf_counter()
    journal_entry_post(
        actor=None,
        system_job="bench",
        company=ledger.company,
        date=rng.choice(ledger.days),
        lines=[
            {"account": ledger.rent, "debit": amount, "cost_center": ledger.cost_centers[0]},
            {"account": ledger.bank, "credit": amount},
        ],
        memo="Rent",
        source_type="manual",
        idempotency_key=key,
    )
    return (time.perf_counter() - started) * 1000


def _single_phase(rng: random.Random, ledger: Ledger, count: int) -> Figures:
    """Right after the bulk phase PostgreSQL's autovacuum works through the new rows and, on two
    cores, slows everything else; `post_one_after_bulk_median_ms` is measured then. The main
    figures are taken after VACUUM ANALYZE, in the steady state the ledger is usually in."""
    after_bulk = [_post_one(rng, ledger, f"burst-{n}") for n in range(SINGLE_AFTER_BULK)]
    _refresh_statistics()
    for n in range(SINGLE_WARMUP):
        _post_one(rng, ledger, f"warm-{n}")
    samples = [_post_one(rng, ledger, f"one-{n}") for n in range(count)]
    return {
        "post_one_count": count,
        "post_one_median_ms": round(statistics.median(samples), 3),
        "post_one_p95_ms": round(percentile(samples, 95), 3),
        "post_one_after_bulk_median_ms": round(statistics.median(after_bulk), 3),
    }


def _transfer_phase(rng: random.Random, ledger: Ledger, transfers: int) -> tuple[int, float]:
    """Our side of the comparison: the two-leg transactions hordak posts, through our bulk
    service in chunks of TRANSFER_CHUNK entries. Returns (lines, seconds)."""
    amounts = _hordak.transfer_amounts(transfers)

    def chunks() -> Iterator[tuple[list[dict], int]]:
        for first in range(0, transfers, TRANSFER_CHUNK):
            entries = []
            for n, amount in enumerate(amounts[first : first + TRANSFER_CHUNK], start=first):
                entries.append(
                    {
                        "date": rng.choice(ledger.days),
                        "lines": [
                            {"account": ledger.bank, "debit": amount},
                            {"account": ledger.sales, "credit": amount},
                        ],
                        "memo": "Bench transfer",
                        "source_type": "bench",
                        "idempotency_key": f"transfer-{n}",
                    }
                )
            yield entries, 2 * len(entries)

    return _post_chunks(ledger, chunks())


def _hordak_run(vendor: str, transfers: int) -> dict | str:
    """Hordak's own figures from its subprocess, or why there are none. It runs before our
    phases, while our database is idle, so our autovacuum does not slow it down."""
    reason = _hordak.unavailable_reason(vendor)
    if reason is None and transfers < HORDAK_MIN_TRANSFERS:
        reason = f"skipped below {HORDAK_MIN_TRANSFERS} transactions (scale 5000)"
    if reason is not None:
        return reason
    return _hordak.measure(transactions=transfers, chunk=TRANSFER_CHUNK)


def _hordak_figures(theirs: dict | str, bulk_per_s: float, two_leg_per_s: float) -> Figures:
    """Hordak's figures and our throughput over them: `hordak_*_ratio` from our bulk figure
    (mixed entries), `hordak_*_ratio_same_work` from the same two-leg transactions."""
    if isinstance(theirs, str):
        names = (
            "hordak_api_legs_per_s",
            "hordak_bulk_legs_per_s",
            "hordak_transfer_median_ms",
            "hordak_api_ratio",
            "hordak_bulk_ratio",
            "hordak_api_ratio_same_work",
            "hordak_bulk_ratio_same_work",
        )
        return {**dict.fromkeys(names), "hordak_note": theirs}
    api, bulk = theirs["api_legs_per_s"], theirs["bulk_legs_per_s"]
    return {
        "hordak_api_legs_per_s": api,
        "hordak_bulk_legs_per_s": bulk,
        "hordak_transfer_median_ms": theirs["api_transfer_median_ms"],
        "hordak_api_ratio": round(bulk_per_s / api, 1),
        "hordak_bulk_ratio": round(bulk_per_s / bulk, 2),
        "hordak_api_ratio_same_work": round(two_leg_per_s / api, 1),
        "hordak_bulk_ratio_same_work": round(two_leg_per_s / bulk, 2),
        "hordak_note": (
            f"django-hordak {theirs['hordak_version']}, {theirs['transactions']} two-leg "
            f"transactions ({TRANSFER_CHUNK} per bulk transaction), own database, subprocess"
        ),
    }


def _refresh_statistics() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in (
            "accounting_journalentry",
            "accounting_journalline",
            "accounting_accountbalance",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _median_ms(call: Callable[[], object]) -> float:
    for _ in range(REPORT_WARMUP):
        call()
    samples = []
    for _ in range(REPORT_RUNS):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def _report_phase(ledger: Ledger) -> Figures:
    from accounting import selectors

    company = ledger.company
    return {
        "trial_balance_ms": _median_ms(
            lambda: selectors.trial_balance(company=company, date_to=REPORT_MONTH_END)
        ),
        "balance_sheet_ms": _median_ms(
            lambda: selectors.balance_sheet(company=company, as_of=REPORT_MONTH_END)
        ),
        "trial_balance_mid_month_ms": _median_ms(
            lambda: selectors.trial_balance(company=company, date_to=REPORT_MID_MONTH)
        ),
        "balance_sheet_mid_month_ms": _median_ms(
            lambda: selectors.balance_sheet(company=company, as_of=REPORT_MID_MONTH)
        ),
        "trial_balance_cost_center_ms": _median_ms(
            lambda: selectors.trial_balance(
                company=company, date_to=REPORT_MONTH_END, cost_center=ledger.cost_centers[0]
            )
        ),
    }


def _balance_rows(ledger: Ledger) -> int:
    from accounting.models import AccountBalance

    return AccountBalance.objects.filter(company=ledger.company).count()


def _line_count(ledger: Ledger) -> int:
    from accounting.models import JournalLine

    return JournalLine.objects.filter(company=ledger.company).count()


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def run(*, scale: int) -> Figures:
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    bulk_lines = max(scale, 20)
    report_lines = REPORT_LINES_PER_SCALE * bulk_lines
    transfers = max(int(scale * TRANSFERS_PER_SCALE), 2)
    singles = min(SINGLE_POSTS_MAX, max(SINGLE_POSTS_MIN, scale // 200))
    rng = random.Random(SEED)
    with bench_database() as database:
        ledger = _set_up()
        theirs = _hordak_run(database.vendor, transfers)
        figures: Figures = {"ledger_triggers": _ledger_triggers()}
        figures |= _bulk_phase(rng, ledger, bulk_lines)
        figures |= _single_phase(rng, ledger, singles)

        transfer_lines, transfer_seconds = _transfer_phase(rng, ledger, transfers)
        two_leg_per_s = transfer_lines / transfer_seconds
        figures["bulk_two_leg_lines_per_s"] = round(two_leg_per_s)
        figures |= _hordak_figures(theirs, figures["bulk_lines_per_s"], two_leg_per_s)

        missing = report_lines - _line_count(ledger)
        if missing > 0:
            _post_chunks(ledger, _mixed_chunks(rng, ledger, missing, LOAD_CHUNK_LINES, "load"))
        figures["report_lines"] = _line_count(ledger)
        figures["report_balance_rows"] = _balance_rows(ledger)
        _refresh_statistics()
        figures |= _report_phase(ledger)
    figures["peak_rss_run_mb"] = _peak_rss_mb()
    return figures
