"""Integration hub: importing contacts from the fake Zoho Books server through the real sync
engine, connector, HTTP client and rate limiter; one connection, then ten at once.

The fake (tests/integrations/fakes/zoho.py, real HTTP on 127.0.0.1, one server and one
organisation per connection) serves its contacts 200 a page in Zoho's wire format. Each
server is wrapped so that the moment every API request arrives is recorded: the rates below
are what the server saw, not what the client believes it sent. Connections use the project's
Zoho limits (INTEGRATIONS_RATE_LIMITS: 100 requests a minute, burst 10 = at most 10 a second),
in Redis when REDIS_URL is set (`limiter_backend` says which), so all threads share one
rolling-window log per remote organisation (here one organisation per connection) exactly as
Celery workers would.

1. One connection imports `scale` contacts (10,000: 50 pages) with
   `accounting.integrations.sync.sync_run(entity="contacts", direction="import")`: pages
   fetched through the limiter, each page's parties, audit events and ExternalRefs written in
   bulk in one transaction. `contacts_10k_s`, contacts a second, the requests the server saw,
   the time spent waiting in the limiter, queries (a fixed number a page), memory.
2. CONNECTIONS (10) connections import at once, one thread each (threads share the process's
   pooled HTTP client, as a worker's threads do), `scale / 5` contacts each (2,000: 10 pages;
   the 100,000 party writes of ten full imports would measure the database, not the
   limiter). `concurrent_seconds`, and each connection's peak rate.
3. Limiter pressure: the same ten connections re-read all their contacts at once, over and
   over (full re-syncs: the cursor cleared, every contact unchanged and skipped by its hash,
   so nothing is written and pages come as fast as the limiter allows) until each has made
   PRESSURE_REQUESTS requests, more than a minute of traffic against the limit.

Rates (per connection, from the server's log): `*_peak_rate_per_min` is the most requests in
any sliding 60-second window; `*_max_in_1s` / `*_max_in_10s` the most in any 1 / 10 seconds;
`pressure_mean_rate_per_min` the highest connection's mean rate over the whole phase (first to
last request). The limiter (accounting/integrations/ratelimit.py) is a rolling-window log: it
lets a request through only when fewer than `rate_per_minute` went in the 60 seconds before it
and fewer than `burst` in the second before it, so the bound of any 60-second window is the
rate itself (`window_bound_per_min`) and of any second the burst (`window_bound_per_s`); only
more than a minute of saturated traffic shows whether it holds. `within_limit` says whether
every 60-second window of the limiter's grant times (below) stayed at or below the rate.
`peak_rate_per_min` is the highest measured over every phase and connection;
`concurrent_connections` the number importing at once. The log bounds the grant times (Redis's
clock); a request reaches the server a variable few milliseconds after its grant (more on a
loaded machine), so the server can see rate + 1 in a 60-second window when the first request
of a minute was delayed and the one a minute later was not: `limiter_granted_peak_per_min` is
the same peak over the grant times the limiter logged (`last_grant_us`, Redis's clock), the
figure its bound applies to, to tell jitter apart from a limiter letting too many through;
`server_over_rate_by` is how far the server-side peak went over the rate (jitter: 0 or 1).

Run: `DATABASE_URL=postgres://... REDIS_URL=redis://... python -m bench integrations --json`.
On SQLite the connections of phase 2 take turns (SQLite has one writer), phase 3 re-reads
through the first connection only, and `concurrency` says so.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from bench._bulk import counting_queries, peak_rss_mb
from bench._django import bench_database

DESCRIPTION = (
    "Integrations: `scale` contacts imported from the fake Zoho Books (200 a page) through the "
    "sync engine within Zoho's rate limit (Redis token bucket); 10 connections importing at "
    "once, and re-reading at once for more than a minute, with each connection's peak rate in "
    "a sliding 60-second window as the fake server saw it"
)
DEFAULT_SCALE = 10_000
MIN_SCALE = 10

CONNECTIONS = 10
CONCURRENT_SHARE = 5  # each concurrent connection imports scale / CONCURRENT_SHARE contacts
# per connection: 100 in the first ~10 s (10 a second), then 30 more once the first leave the
# 60-second window: more than a minute of saturation
PRESSURE_REQUESTS = 130
API_PREFIX = "/books/v3"
ORGANIZATION_BASE = 20_000_000

Figures = dict[str, float | int | str | None]
# The grant time of each acquire() that returned True, by limiter key, as the limiter logged it.
GRANTS: dict[str, list[float]] = defaultdict(list)


def run(*, scale: int) -> Figures:
    if scale < MIN_SCALE:
        raise ValueError(f"scale must be at least {MIN_SCALE}, not {scale}")
    with bench_database() as database, ExitStack() as stack:
        from django.conf import settings

        from accounting.integrations.ratelimit import redis_client

        started = time.perf_counter()
        limits = settings.INTEGRATIONS_RATE_LIMITS["zoho_books"]
        concurrent = database.vendor != "sqlite"
        if not concurrent:
            print(
                "bench integrations: on SQLite the connections take turns (one writer); "
                "use PostgreSQL for the concurrent figures",
                file=sys.stderr,
            )
        company = _company()
        GRANTS.clear()
        waits = stack.enter_context(_limiter_waits())
        single = _organisation(stack, company, 0, scale)
        figures: Figures = _single(single, waits)
        per_connection = max(1, scale // CONCURRENT_SHARE)
        orgs = [_organisation(stack, company, n, per_connection) for n in range(1, CONNECTIONS + 1)]
        figures |= _concurrent(orgs, waits, concurrent)
        figures |= _pressure(orgs, waits, concurrent)
        peak = max(
            figures["contacts_peak_rate_per_min"],
            figures["concurrent_peak_rate_per_min"],
            figures["pressure_peak_rate_per_min"],
        )
        rate, burst = limits["rate_per_minute"], limits["burst"]
        per_second = max(
            figures["contacts_max_in_1s"],
            figures["concurrent_max_in_1s"],
            figures["pressure_max_in_1s"],
        )
        granted = max((window_max(sorted(stamps), 60.0) for stamps in GRANTS.values()), default=0)
        return {
            "contacts_10k_s": figures.pop("contacts_10k_s"),
            "concurrent_connections": CONNECTIONS,
            "peak_rate_per_min": peak,
            "rate_limit_per_min": rate,
            "burst": burst,
            "window_bound_per_min": rate,  # the log's bound: no 60 s holds more than the rate
            "window_bound_per_s": burst,
            "peak_rate_per_s": per_second,
            "limiter_granted_peak_per_min": granted,
            # judged on the grant times the bound applies to; the server's figure is above
            "within_limit": "yes" if granted <= rate else "no",
            "server_over_rate_by": max(0, peak - rate),
            "limiter_backend": "redis" if redis_client() is not None else "in-process",
            "concurrency": "threads" if concurrent else "sequential (SQLite)",
            **figures,
            "peak_rss_mb": peak_rss_mb(),
            "total_seconds": round(time.perf_counter() - started, 1),
        }


# ---------------------------------------------------------------------------------------------
# Setup: a company, fake organisations, connections
# ---------------------------------------------------------------------------------------------
class _Timed:
    """A WSGI wrapper that notes when each API request reached the fake."""

    def __init__(self, app):
        self.app = app
        self.stamps: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if (environ.get("PATH_INFO") or "").startswith(API_PREFIX):
            moment = time.monotonic()
            with self.lock:
                self.stamps.append(moment)
        return self.app(environ, start_response)

    def since(self, moment: float) -> list[float]:
        with self.lock:
            return sorted(s for s in self.stamps if s >= moment)


@dataclass
class _Org:
    fake: object
    timed: _Timed
    connection: object
    contacts: int
    runs: list = field(default_factory=list)


def _company():
    from core.models import User
    from core.services import company_create

    owner = User.objects.create_user(username="bench-integrations", password=None)
    return company_create(
        actor=None,
        name="Bench Integrations Ltd",
        slug="bench-integrations",
        owner=owner,
        fiscal_year_start_month=7,
        base_currency="BDT",
        time_zone="Asia/Dhaka",
        country="BD",
    )


def _organisation(stack: ExitStack, company, n: int, contacts: int) -> _Org:
    from django.core.cache import cache

    from accounting.integrations.models import IntegrationConnection
    from accounting.integrations.ratelimit import limiter_for
    from tests.integrations.fakes import serve
    from tests.integrations.fakes.zoho import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, FakeZohoBooks

    organization_id = str(ORGANIZATION_BASE + n)
    fake = FakeZohoBooks(organization_id=organization_id)
    for k in range(1, contacts + 1):
        fake.add_contact(
            f"Customer {k:05d} of organisation {n}",
            email=f"customer{k}@org{n}.example.com",
            phone=f"+880171{k:07d}",
        )
    timed = _Timed(fake)
    server = stack.enter_context(serve(timed))
    fake.server_url = server.url
    connection = IntegrationConnection(
        company=company,
        system="zoho_books",
        name=f"Zoho {n}",
        direction="import",
        settings={
            "region": "in",
            "organization_id": organization_id,
            "base_url": server.url,
            "oauth": {
                "token_url": server.url + "/oauth/v2/token",
                "authorize_url": server.url + "/oauth/v2/auth",
            },
        },
    )
    connection.set_credentials(
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "access_token": fake.issue_access_token(),
            "refresh_token": REFRESH_TOKEN,
            "expires_at": time.time() + 6 * 3600,
        }
    )
    connection.save()
    # A bucket or run lock left in Redis by an interrupted earlier run (the ids of a fresh
    # database start again at 1) would slow or refuse this one.
    limiter_for(connection).reset()
    cache.delete(f"integrations:sync:{connection.pk}:contacts")
    return _Org(fake=fake, timed=timed, connection=connection, contacts=contacts)


@contextmanager
def _limiter_waits():
    """Seconds spent in RateLimiter.acquire, by limiter key, while installed."""
    from accounting.integrations.ratelimit import RateLimiter

    waits: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    original = RateLimiter.acquire

    def acquire(self, timeout=None):
        began = time.perf_counter()
        granted = False
        try:
            granted = original(self, timeout)
            return granted
        finally:
            with lock:
                waits[self.key] += time.perf_counter() - began
                if granted:  # the limiter's own grant time (Redis's clock), in seconds
                    GRANTS[self.key].append(self.last_grant_us / 1_000_000)

    RateLimiter.acquire = acquire
    try:
        yield waits
    finally:
        RateLimiter.acquire = original


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
def window_max(stamps: list[float], width: float) -> int:
    """The most stamps (sorted) inside any window [t, t + width)."""
    best = start = 0
    for end, moment in enumerate(stamps):
        while moment - stamps[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def _rates(stamps: list[float]) -> dict[str, int]:
    return {
        "per_min": window_max(stamps, 60.0),
        "in_10s": window_max(stamps, 10.0),
        "in_1s": window_max(stamps, 1.0),
    }


def _key(org: _Org) -> str:
    """The limiter's key of the connection (its remote organisation): where its waits are noted."""
    from accounting.integrations.ratelimit import limiter_key

    return limiter_key(org.connection)


def _import(org: _Org):
    from accounting.integrations.sync import sync_run

    run = sync_run(connection=org.connection, entity="contacts", direction="import")
    org.runs.append(run)
    return run


def _expect(run, org: _Org, *, imported: int | None) -> None:
    if run.status != "succeeded":
        raise RuntimeError(
            f"the import of {org.connection.name} ended {run.status}: {run.error_summary}"
        )
    if imported is not None and run.records_succeeded != imported:
        raise RuntimeError(
            f"{org.connection.name} imported {run.records_succeeded} contacts, not {imported}"
        )


def _single(org: _Org, waits) -> Figures:
    from invoicing.models import Party

    key = _key(org)
    load = round(os.getloadavg()[0], 2)
    began_at = time.monotonic()
    with counting_queries() as counter:
        began = time.perf_counter()
        run = _import(org)
        seconds = time.perf_counter() - began
    _expect(run, org, imported=org.contacts)
    parties = Party.objects.filter(company=org.connection.company).count()
    if parties != org.contacts:
        raise RuntimeError(f"{parties} parties for {org.contacts} contacts")
    stamps = org.timed.since(began_at)
    rates = _rates(stamps)
    return {
        "contacts_10k_s": round(seconds, 2),
        "contacts_imported": run.records_succeeded,
        "contacts_per_s": round(run.records_succeeded / seconds),
        "contacts_requests": len(stamps),
        "contacts_limiter_wait_s": round(waits.get(key, 0.0), 2),
        "contacts_peak_rate_per_min": rates["per_min"],
        "contacts_max_in_10s": rates["in_10s"],
        "contacts_max_in_1s": rates["in_1s"],
        "contacts_queries": counter.count,
        "contacts_queries_per_contact": round(counter.count / max(1, run.records_succeeded), 1),
        "contacts_peak_rss_mb": peak_rss_mb(),
        "contacts_load_avg_1m": load,
    }


def _together(orgs: list[_Org], work, concurrent: bool) -> None:
    """`work(org)` for every org: one thread each (PostgreSQL), or in turn (SQLite)."""
    from django.db import connection as db

    if not concurrent:
        for org in orgs:
            work(org)
        return
    failures: list[BaseException] = []
    start = threading.Barrier(len(orgs))

    def target(org):
        try:
            start.wait()
            work(org)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the main thread
            failures.append(exc)
        finally:
            db.close()  # this thread's own database connection

    threads = [
        threading.Thread(target=target, args=(org,), name=f"bench-{org.connection.name}")
        for org in orgs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _per_connection(orgs: list[_Org], since: float) -> list[dict]:
    return [_rates(org.timed.since(since)) for org in orgs]


def _concurrent(orgs: list[_Org], waits, concurrent: bool) -> Figures:
    load = round(os.getloadavg()[0], 2)
    before = {org.connection.pk: waits.get(_key(org), 0.0) for org in orgs}
    began_at = time.monotonic()
    began = time.perf_counter()
    _together(orgs, lambda org: _expect(_import(org), org, imported=org.contacts), concurrent)
    seconds = time.perf_counter() - began
    rates = _per_connection(orgs, began_at)
    total = sum(org.contacts for org in orgs)
    waited = [waits.get(_key(org), 0.0) - before[org.connection.pk] for org in orgs]
    return {
        "concurrent_contacts_per_connection": orgs[0].contacts,
        "concurrent_seconds": round(seconds, 2),
        "concurrent_contacts_per_s": round(total / seconds),
        "concurrent_requests": sum(len(org.timed.since(began_at)) for org in orgs),
        "concurrent_peak_rate_per_min": max(r["per_min"] for r in rates),
        "concurrent_max_in_10s": max(r["in_10s"] for r in rates),
        "concurrent_max_in_1s": max(r["in_1s"] for r in rates),
        "concurrent_limiter_wait_max_s": round(max(waited), 2),
        "concurrent_load_avg_1m": load,
    }


def _pressure(orgs: list[_Org], waits, concurrent: bool) -> Figures:
    from accounting.integrations.models import IntegrationConnection

    pages = max(1, -(-orgs[0].contacts // 200))
    rounds = max(1, -(-PRESSURE_REQUESTS // pages))

    def resync(org: _Org) -> None:
        for _ in range(rounds):
            IntegrationConnection.objects.filter(pk=org.connection.pk).update(cursors={})
            org.connection.cursors = {}
            run = _import(org)
            _expect(run, org, imported=None)
            if run.records_succeeded:  # every contact is unchanged: nothing to write
                raise RuntimeError(f"a re-read of {org.connection.name} wrote contacts")

    if not concurrent:
        orgs = orgs[:1]  # taking turns, ten would only repeat one another ten times as long
    load = round(os.getloadavg()[0], 2)
    began_at = time.monotonic()
    began = time.perf_counter()
    _together(orgs, resync, concurrent)
    seconds = time.perf_counter() - began
    rates = _per_connection(orgs, began_at)
    means = []
    for org in orgs:
        stamps = org.timed.since(began_at)
        if len(stamps) > 1 and stamps[-1] > stamps[0]:
            means.append((len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60)
    return {
        "pressure_connections": len(orgs),
        "pressure_requests_per_connection": rounds * pages,
        "pressure_seconds": round(seconds, 2),
        "pressure_peak_rate_per_min": max(r["per_min"] for r in rates),
        "pressure_lowest_peak_rate_per_min": min(r["per_min"] for r in rates),
        "pressure_max_in_10s": max(r["in_10s"] for r in rates),
        "pressure_max_in_1s": max(r["in_1s"] for r in rates),
        "pressure_mean_rate_per_min": round(max(means), 1) if means else None,
        "pressure_load_avg_1m": load,
    }
