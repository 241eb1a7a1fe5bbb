"""The load benchmark's clients: asyncio tasks sharing one httpx.AsyncClient, each a closed loop
(pick a request by weight, send it, wait for the answer, think, again) with a JWT per company.

One process and one event loop for every client: the clients share the 2 cores with gunicorn,
PostgreSQL and the Celery worker, and an idle coroutine costs nothing, where locust's gevent
greenlets, stats machinery and web UI would cost more of the same CPU. httpx is already a
runtime dependency (the integration hub's connectors).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx

API = "/api/v1"
PAYROLL_POLL_SECONDS = 0.25
PAYROLL_TIMEOUT_SECONDS = 60.0
ERROR_SAMPLES = 5


@dataclass
class Record:
    name: str
    kind: str  # "read", "write" or "poll" (payroll run status; in neither percentile)
    started: float  # seconds since the run began
    ms: float
    status: int
    ok: bool


@dataclass
class Outcome:
    records: list[Record] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    payroll_completed_ms: list[float] = field(default_factory=list)
    payroll_failed: int = 0
    # Runs the API accepted (2xx) that then failed or were not paid within
    # PAYROLL_TIMEOUT_SECONDS: errors too, though no request of theirs answered anything but 2xx.
    payroll_unfinished: int = 0
    payroll_skipped: int = 0  # a payroll pick with no company free (all in flight or paid)


class PayrollPool:
    """Payroll companies and their periods left. A company runs one period at a time, in order
    (the API refuses a period while an earlier one is open)."""

    def __init__(self, companies: list[dict]):
        self.left = {c["slug"]: list(c["periods"]) for c in companies}
        self.busy: set[str] = set()

    def take(self, rng: random.Random) -> tuple[str, int] | None:
        free = [slug for slug, left in self.left.items() if left and slug not in self.busy]
        if not free:
            return None
        slug = rng.choice(free)
        self.busy.add(slug)
        return slug, self.left[slug][0]

    def done(self, slug: str, paid: bool) -> None:
        """After a failed run the company is left alone: its later periods would only be
        refused (an earlier period is open), one more error each."""
        self.busy.discard(slug)
        if paid:
            self.left[slug].pop(0)
        else:
            self.left[slug] = []


class Session:
    """What every client knows: the data's ids, a token per company, the payroll pool."""

    def __init__(self, data: dict, tokens: dict[str, str], pool: PayrollPool, outcome: Outcome):
        self.data = data
        self.tokens = tokens
        self.pool = pool
        self.outcome = outcome
        self.began = time.perf_counter()

    def headers(self, slug: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tokens[slug]}",
            "X-Company": slug,
            # As from the TLS proxy in front (production redirects plain HTTP to HTTPS).
            "X-Forwarded-Proto": "https",
        }

    async def call(
        self,
        http: httpx.AsyncClient,
        name: str,
        kind: str,
        method: str,
        path: str,
        *,
        slug: str,
        params: dict | None = None,
        json: dict | None = None,
        record: bool = True,
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await http.request(
                method, API + path, params=params, json=json, headers=self.headers(slug)
            )
            status, text = response.status_code, ""
            if not 200 <= status < 300:
                text = response.text[:200]
        except httpx.HTTPError as exc:
            response, status, text = None, 0, f"{type(exc).__name__}: {exc}"[:200]
        ms = (time.perf_counter() - started) * 1000
        ok = 200 <= status < 300
        if record:
            self.outcome.records.append(Record(name, kind, started - self.began, ms, status, ok))
        if not ok and len(self.outcome.error_samples) < ERROR_SAMPLES:
            self.outcome.error_samples.append(f"{method} {path} {params or ''} -> {status}: {text}")
        return response if ok else None


# ---------------------------------------------------------------------------------------------
# The mix: (name, kind, weight, action)
# ---------------------------------------------------------------------------------------------
FY_START, FY_END = date(2025, 7, 1), date(2026, 6, 30)


def _month_end(rng: random.Random) -> str:
    month = rng.randint(1, 12)
    year = 2025 if month >= 7 else 2026
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).isoformat()


def _invoice_filter(rng: random.Random, data: dict) -> dict:
    customer = rng.choice(data["customers"])
    day = rng.randint(1, 28)
    return rng.choice(
        [
            {"status": rng.choice(["approved", "paid", "partially_paid"])},
            {"status": ["approved", "partially_paid"]},
            {"customer": customer},
            {"customer": customer, "open": "true"},
            {"open": "true"},
            {"date_from": "2025-10-01", "date_to": f"2025-10-{day:02d}"},
            {"ordering": "-total_amount"},
            {"number": rng.choice(data["invoice_numbers"])},
        ]
    )


def _read(name: str, path, params=None, company: str = "sales"):
    """A GET of the mix. `path` and `params` may be functions of (rng, data); `company` is
    "sales", "bank" or "payroll" (one of the payroll companies)."""

    async def action(s: Session, http, rng):
        where = path(rng, s.data) if callable(path) else path
        query = params(rng, s.data) if params else None
        slug = rng.choice(list(s.pool.left)) if company == "payroll" else getattr(s, company)
        await s.call(http, name, "read", "GET", where, slug=slug, params=query)

    return action


def _month(rng: random.Random, data: dict) -> dict:
    month_end = _month_end(rng)
    return {"date_from": month_end[:8] + "01", "date_to": month_end}


def _year_to_month(rng: random.Random, data: dict) -> dict:
    return {"date_from": FY_START.isoformat(), "date_to": _month_end(rng)}


def _as_of(rng: random.Random, data: dict) -> dict:
    return {"as_of": _month_end(rng)}


invoices_list = _read("invoices_list", "/invoicing/invoices/")
invoices_filter = _read("invoices_filter", "/invoicing/invoices/", _invoice_filter)
invoice_detail = _read(
    "invoice_detail", lambda rng, data: f"/invoicing/invoices/{rng.choice(data['invoice_ids'])}/"
)
journal_entries_list = _read("journal_entries_list", "/accounting/journal-entries/", _month)
trial_balance = _read("trial_balance", "/accounting/reports/trial-balance/", _year_to_month)
profit_and_loss = _read("profit_and_loss", "/accounting/reports/profit-and-loss/", _year_to_month)
balance_sheet = _read("balance_sheet", "/accounting/reports/balance-sheet/", _as_of)
cash_position = _read("cash_position", "/banking/cash-position", _as_of, company="bank")
payslips_list = _read("payslips_list", "/payroll/payslips/", company="payroll")


async def invoice_draft(s: Session, http, rng):
    lines = [
        {"item": item, "quantity": str(rng.randint(1, 40))}
        for item in rng.sample(s.data["items"], 3)
    ]
    body = {"customer": rng.choice(s.data["customers"]), "lines": lines}
    await s.call(
        http, "invoice_draft", "write", "POST", "/invoicing/invoices/", slug=s.sales, json=body
    )


async def journal_entry(s: Session, http, rng):
    # The current fiscal year (2026-27), up to the day the data was made.
    day = date(2026, 7, 1) + timedelta(days=rng.randrange(140))
    size = rng.choice((2, 2, 3, 4))
    accounts = rng.sample(s.data["accounts"], size)
    cents = [rng.randint(1_000, 500_000) for _ in range(size - 1)]
    lines = [
        {"account": a, "debit": f"{c / 100:.2f}"} for a, c in zip(accounts, cents, strict=False)
    ]
    lines.append({"account": accounts[-1], "credit": f"{sum(cents) / 100:.2f}"})
    body = {"date": day.isoformat(), "memo": "Load test entry", "lines": lines}
    await s.call(
        http,
        "journal_entry",
        "write",
        "POST",
        "/accounting/journal-entries/",
        slug=s.sales,
        json=body,
    )


async def payroll_run(s: Session, http, rng):
    """Start the next period of a free payroll company (202), then poll the run until a
    worker has paid it, as the screen does. The polls are kind "poll": counted in requests and
    errors and shown per endpoint, but kept out of read_p95_ms, so that many cheap status
    reads cannot flatter the read figure."""
    taken = s.pool.take(rng)
    if taken is None:
        s.outcome.payroll_skipped += 1
        return
    slug, period = taken
    began = time.perf_counter()
    paid = False
    try:
        response = await s.call(
            http,
            "payroll_run",
            "write",
            "POST",
            f"/payroll/periods/{period}/run/",
            slug=slug,
            json={"force": True},
        )
        if response is None:
            s.outcome.payroll_failed += 1
            return
        run = response.json()["id"]
        deadline = began + PAYROLL_TIMEOUT_SECONDS
        status = response.json().get("status", "running")
        while time.perf_counter() < deadline:
            await asyncio.sleep(PAYROLL_POLL_SECONDS)
            polled = await s.call(
                http, "payroll_run_status", "poll", "GET", f"/payroll/runs/{run}/", slug=slug
            )
            if polled is None:  # that poll is the error counted
                s.outcome.payroll_failed += 1
                return
            status = polled.json()["status"]
            if status == "completed":
                paid = True
                s.outcome.payroll_completed_ms.append((time.perf_counter() - began) * 1000)
                return
            if status != "running":
                break
        else:
            status = f"still {status} after {PAYROLL_TIMEOUT_SECONDS:.0f} s"
        s.outcome.payroll_failed += 1
        s.outcome.payroll_unfinished += 1
        if len(s.outcome.error_samples) < ERROR_SAMPLES:
            s.outcome.error_samples.append(f"payroll run {run} of {slug}: {status}")
    finally:
        s.pool.done(slug, paid)


Action = Callable[[Session, httpx.AsyncClient, random.Random], Awaitable[None]]
MIX: tuple[tuple[str, str, int, Action], ...] = (
    ("invoices_list", "read", 12, invoices_list),
    ("invoices_filter", "read", 14, invoices_filter),
    ("invoice_detail", "read", 8, invoice_detail),
    ("journal_entries_list", "read", 8, journal_entries_list),
    ("trial_balance", "read", 6, trial_balance),
    ("profit_and_loss", "read", 5, profit_and_loss),
    ("balance_sheet", "read", 4, balance_sheet),
    ("cash_position", "read", 5, cash_position),
    ("payslips_list", "read", 4, payslips_list),
    ("invoice_draft", "write", 14, invoice_draft),
    ("journal_entry", "write", 14, journal_entry),
    ("payroll_run", "write", 2, payroll_run),
)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
async def _client(
    s: Session, http: httpx.AsyncClient, seed: int, stop_at: float, think_s: float
) -> None:
    rng = random.Random(seed)
    actions = [action for _n, _k, _w, action in MIX]
    weights = [weight for _n, _k, weight, _a in MIX]
    while time.perf_counter() < stop_at:
        await rng.choices(actions, weights)[0](s, http, rng)
        if think_s:
            await asyncio.sleep(rng.expovariate(1 / think_s))


def _attach(s: Session, data: dict) -> None:
    s.sales = data["sales_slug"]
    s.bank = data["bank_slug"]


async def _smoke(s: Session, http: httpx.AsyncClient) -> None:
    """Every request of the mix once (payroll aside: it uses up a period), before timing."""
    rng = random.Random(0)
    for name, _kind, _weight, action in MIX:
        if name != "payroll_run":
            await action(s, http, rng)


def run(
    base_url: str,
    data: dict,
    tokens: dict[str, str],
    pool: PayrollPool,
    *,
    clients: int,
    duration: float,
    warmup: float,
    think_s: float,
    seed: int,
    on_start: Callable[[], None] = lambda: None,
) -> tuple[Outcome, float, float]:
    """Warm up (not recorded), then `clients` clients for `duration` seconds. Returns the
    outcome, the measured wall seconds and this process's CPU seconds over them. `on_start`
    is called as the measured part begins."""

    async def main():
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        timeout = httpx.Timeout(120.0)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
            warm = Session(data, tokens, pool, Outcome())
            _attach(warm, data)
            await _smoke(warm, http)
            if warm.outcome.error_samples:
                raise RuntimeError("smoke request failed: " + warm.outcome.error_samples[0])
            stop = time.perf_counter() + warmup
            await asyncio.gather(
                *(_client(warm, http, seed + 1000 + n, stop, think_s) for n in range(clients))
            )
            on_start()
            outcome = Outcome()
            s = Session(data, tokens, pool, outcome)
            _attach(s, data)
            cpu = time.process_time()
            stop = s.began + duration
            await asyncio.gather(
                *(_client(s, http, seed + n, stop, think_s) for n in range(clients))
            )
            return outcome, time.perf_counter() - s.began, time.process_time() - cpu

    return asyncio.run(main())
