"""The per-organisation rolling windows and concurrency slots, in Redis and in process.

Every figure here is on a fake clock (the limiter's `clock` and `sleep`), so no assertion
depends on how fast the machine is. The two-process Redis test checks the grant times the
Redis script itself recorded (Redis's clock), not when a process got round to printing."""

import threading

import pytest
from django.conf import settings

from accounting.integrations.ratelimit import (
    RateLimiter,
    SlotUnavailable,
    limiter_for,
    limiter_key,
    redis_client,
)


class FakeClock:
    """Seconds that only move when someone sleeps."""

    def __init__(self, start=1_000_000.0):
        self.now = start
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += max(seconds, 0.0)


def _max_in_window(stamps_us, window_us):
    """The most grants in any closed window of `window_us` microseconds."""
    best, start = 0, 0
    for end, stamp in enumerate(stamps_us):
        while stamp - stamps_us[start] > window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


def _drive(limiters, clock, *, seconds):
    """Limiters take turns asking as fast as they are let (as several workers would); returns
    the grant times in microseconds."""
    stamps = []
    stop = clock() + seconds
    turn = 0
    while clock() < stop:
        limiter = limiters[turn % len(limiters)]
        turn += 1
        if limiter.acquire(timeout=stop - clock()):
            stamps.append(limiter.last_grant_us)
    return sorted(stamps)


@pytest.mark.parametrize(
    ("system", "per_minute", "per_second"),
    [("xero", 60, 5), ("zoho_books", 100, 10), ("quickbooks", 500, 10)],
)
def test_no_60_second_window_exceeds_the_provider_limit(system, per_minute, per_second):
    clock = FakeClock()

    class Conn:
        pk = 7
        settings = {}

    Conn.system = system
    first = limiter_for(Conn(), use_redis=False, clock=clock, sleep=clock.sleep)
    second = limiter_for(Conn(), use_redis=False, clock=clock, sleep=clock.sleep)  # a 2nd worker
    assert (first.rate_per_minute, first.burst) == (per_minute, per_second)
    first.reset()
    stamps = _drive([first, second], clock, seconds=600)
    assert _max_in_window(stamps, 60_000_000) == per_minute  # reached, never passed
    assert _max_in_window(stamps, 1_000_000) <= per_second
    # ... and not starved: ten minutes give ten minutes' worth.
    assert len(stamps) >= per_minute * 10 - per_minute


def test_arrivals_delayed_by_up_to_the_guard_stay_within_the_providers_minute():
    """The provider counts arrivals: grants spread by up to the guard's jitter in transit
    must still put no more than the limit into any 60 seconds of arrivals."""
    clock = FakeClock()
    limiter = RateLimiter(
        "guarded", rate_per_minute=100, burst=10, use_redis=False, clock=clock, sleep=clock.sleep
    )
    limiter.reset()
    stamps = _drive([limiter], clock, seconds=300)
    guard_us = settings.INTEGRATIONS_RATE_LIMIT_GUARD_MS * 1000
    # Worst case: one request arrives instantly, a later one is delayed by the whole guard.
    assert _max_in_window(stamps, 60_000_000 + guard_us) <= 100


def test_quickbooks_10_per_second_is_kept_even_with_the_minute_free():
    clock = FakeClock()
    limiter = RateLimiter(
        "qbo-second", rate_per_minute=500, burst=10, use_redis=False, clock=clock, sleep=clock.sleep
    )
    limiter.reset()
    stamps = _drive([limiter], clock, seconds=3)
    assert _max_in_window(stamps, 1_000_000) == 10
    assert len(stamps) in (30, 31)  # 10 in each second (the window is closed at both ends)


def test_in_process_log_shared_by_threads_never_exceeds_the_limit():
    """Threads of one process share the key's log (under its lock)."""
    clock = FakeClock()
    limiters = [
        RateLimiter("t-local", rate_per_minute=30, burst=3, use_redis=False, clock=clock)
        for _ in range(4)
    ]
    limiters[0].reset()
    stamps, lock = [], threading.Lock()

    def work(limiter):
        for _ in range(200):
            if limiter.try_acquire() == 0:
                with lock:
                    stamps.append(limiter.last_grant_us)
            clock.sleep(0.01)

    workers = [threading.Thread(target=work, args=(lim,)) for lim in limiters]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stamps.sort()
    assert _max_in_window(stamps, 60_000_000) <= 30
    assert _max_in_window(stamps, 1_000_000) <= 3


@pytest.mark.redis
def test_redis_log_shared_by_two_limiters_never_exceeds_the_limit():
    assert redis_client() is not None
    clock = FakeClock()
    first = RateLimiter("t-redis", rate_per_minute=60, burst=5, clock=clock, sleep=clock.sleep)
    second = RateLimiter("t-redis", rate_per_minute=60, burst=5, clock=clock, sleep=clock.sleep)
    first.reset()
    stamps = _drive([first, second], clock, seconds=300)
    assert _max_in_window(stamps, 60_000_000) == 60
    assert _max_in_window(stamps, 1_000_000) <= 5
    assert len(stamps) >= 60 * 4


def _peak_concurrency(limiter, *, threads):
    """Holders wait until max_concurrent are inside at once (so they really overlap), then
    leave; returns the most ever inside together."""
    active, peak, lock = [0], [0], threading.Lock()
    full = threading.Event()

    def work():
        with limiter.slot(timeout=10):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                if active[0] >= limiter.max_concurrent:
                    full.set()
            full.wait(timeout=10)
            with lock:
                active[0] -= 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return peak[0]


def test_in_process_slots_never_exceed_n():
    limiter = RateLimiter("s-local", max_concurrent=3, use_redis=False)
    limiter.reset()
    assert _peak_concurrency(limiter, threads=10) == 3


@pytest.mark.redis
def test_redis_slots_never_exceed_n_and_expired_leases_are_reclaimed():
    clock = FakeClock()
    limiter = RateLimiter("s-redis", max_concurrent=3, lease_seconds=3600)
    limiter.reset()
    assert _peak_concurrency(limiter, threads=10) == 3
    # Workers that died holding every slot: live leases block, the timeout gives up.
    for lease in ("dead-1", "dead-2", "dead-3"):
        assert limiter._slot_take(lease)
    waiting = RateLimiter(
        "s-redis", max_concurrent=3, lease_seconds=3600, clock=clock, sleep=clock.sleep
    )
    with pytest.raises(SlotUnavailable), waiting.slot(timeout=0.2):
        pass
    # Their leases past expiry (score = expiry in ms, set to one already gone) are reclaimed.
    redis = redis_client()
    redis.zadd(limiter.slots_key, {"dead-1": 1, "dead-2": 1, "dead-3": 1})
    with limiter.slot(timeout=0):
        pass


def test_unlimited_systems_never_wait():
    limiter = RateLimiter("tally", rate_per_minute=0, max_concurrent=0, sleep=pytest.fail)
    for _ in range(1000):
        assert limiter.acquire(timeout=0)
    with limiter.slot(timeout=0):
        pass


def test_acquire_gives_up_after_the_timeout():
    clock = FakeClock()
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.sleep(seconds)

    limiter = RateLimiter(
        "slow", rate_per_minute=1, burst=1, use_redis=False, clock=clock, sleep=sleep
    )
    limiter.reset()
    assert limiter.acquire(timeout=0.1)
    assert not limiter.acquire(timeout=5)
    assert sum(slept) == pytest.approx(5)  # waited out its timeout, not the minute
    clock.sleep(55.0001 + settings.INTEGRATIONS_RATE_LIMIT_GUARD_MS / 1000)
    assert limiter.acquire(timeout=0)  # a minute (and the guard) after the first


def test_per_system_defaults_and_per_connection_override(settings):
    class Conn:
        pk = 42
        system = "xero"
        settings = {}

    limiter = limiter_for(Conn())
    assert (limiter.rate_per_minute, limiter.burst, limiter.max_concurrent) == (60, 5, 5)
    Conn.system = "quickbooks"
    qbo = limiter_for(Conn())
    assert (qbo.rate_per_minute, qbo.burst, qbo.max_concurrent) == (500, 10, 10)
    Conn.system = "zoho_books"
    assert limiter_for(Conn()).rate_per_minute == 100
    Conn.settings = {"rate_limit": {"rate_per_minute": 5}}
    assert limiter_for(Conn()).rate_per_minute == 5
    assert limiter_for(Conn()).key == "connection:42"


def test_the_limit_is_per_remote_organisation():
    """Xero counts per tenant, QuickBooks per realm, Zoho per organisation: two connections to
    the same one share its limit."""

    def conn(pk, system, **settings):
        return type("Conn", (), {"pk": pk, "system": system, "settings": settings})()

    assert limiter_key(conn(1, "xero", tenant_id="T-1")) == "xero:T-1"
    assert limiter_key(conn(2, "xero", tenant_id="T-1")) == "xero:T-1"
    assert limiter_key(conn(3, "quickbooks", realm_id="9130")) == "quickbooks:9130"
    assert limiter_key(conn(4, "zoho_books", organization_id="60001")) == "zoho_books:60001"
    assert limiter_key(conn(5, "tally", host="10.0.0.2")) == "connection:5"
    clock = FakeClock()
    a = limiter_for(conn(1, "xero", tenant_id="T-9"), use_redis=False, clock=clock)
    b = limiter_for(conn(2, "xero", tenant_id="T-9"), use_redis=False, clock=clock)
    a.reset()
    granted = 0
    for _ in range(120):
        for limiter in (a, b):
            granted += limiter.try_acquire() == 0
        clock.sleep(0.25)  # 30 s in all
    assert granted == 60  # the tenant's 60 per minute, shared


_WORKER = """
import os, sys, time
import django, redis
sys.path.insert(0, ".")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
django.setup()
from accounting.integrations.ratelimit import RateLimiter
client = redis.Redis.from_url(sys.argv[1])
limiter = RateLimiter("t-procs", rate_per_minute=120, burst=20, redis=client)
print("ready", flush=True)
sys.stdin.readline()  # the parent says go once both are ready
granted = 0
while granted < 60:
    if limiter.try_acquire() == 0:
        granted += 1
        print(limiter.last_grant_us, flush=True)  # Redis's own clock, set by the script
    else:
        time.sleep(0.01)
"""


@pytest.mark.redis
def test_two_processes_sharing_a_log_never_exceed_the_limit():
    """Two processes take 60 grants each from one 20-per-second log; the grant times the Redis
    script recorded show no second with more than 20, whatever the machine's speed."""
    import os
    import subprocess
    import sys

    RateLimiter("t-procs", rate_per_minute=120, burst=20).reset()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, os.environ["REDIS_URL"]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    stamps = sorted(int(line) for out in outputs for line in out.split())
    assert len(stamps) == 120
    assert _max_in_window(stamps, 1_000_000) <= 20
    assert _max_in_window(stamps, 60_000_000) <= 120
