"""The per-connection token bucket and concurrency slots, in Redis and in process."""

import threading
import time

import pytest

from accounting.integrations.ratelimit import (
    RateLimiter,
    SlotUnavailable,
    limiter_for,
    redis_client,
)


def _hammer(limiter, *, threads, seconds):
    """Threads take tokens as fast as the limiter allows; returns the monotonic stamps."""
    stamps, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def work():
        while time.monotonic() < stop:
            if limiter.acquire(timeout=max(0.0, stop - time.monotonic())):
                with lock:
                    stamps.append(time.monotonic())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(stamps)


def _max_in_window(stamps, window):
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _assert_never_exceeds(stamps, *, per_second, burst, seconds):
    # Over the whole run: the burst plus what refills.
    assert len(stamps) <= burst + per_second * seconds + 1
    # And in every one-second window: at most burst + one second's refill.
    assert _max_in_window(stamps, 1.0) <= burst + per_second + 1
    # It did let requests through at about the rate (not starved).
    assert len(stamps) >= per_second * seconds * 0.6


def test_in_process_bucket_shared_by_threads_never_exceeds_the_rate():
    a = RateLimiter("t-local", rate_per_minute=1200, burst=3, use_redis=False)
    b = RateLimiter("t-local", rate_per_minute=1200, burst=3, use_redis=False)  # same key
    a.reset()
    stamps = _hammer(a, threads=2, seconds=1.0) + []
    stamps = sorted(stamps + _hammer(b, threads=2, seconds=0.5))
    # 20 per second, burst 3, 1.5 s in all
    assert len(stamps) <= 3 + 20 * 1.5 + 2


@pytest.mark.redis
def test_redis_bucket_shared_by_two_limiters_and_threads_never_exceeds_the_rate():
    assert redis_client() is not None
    first = RateLimiter("t-redis", rate_per_minute=1200, burst=4)
    second = RateLimiter("t-redis", rate_per_minute=1200, burst=4)  # another "worker"
    first.reset()
    stamps, lock = [], threading.Lock()

    def run(limiter):
        got = _hammer(limiter, threads=2, seconds=1.5)
        with lock:
            stamps.extend(got)

    workers = [threading.Thread(target=run, args=(lim,)) for lim in (first, second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    _assert_never_exceeds(sorted(stamps), per_second=20, burst=4, seconds=1.5)


def _peak_concurrency(limiter, *, threads, hold):
    active, peak, lock = [0], [0], threading.Lock()

    def work():
        with limiter.slot(timeout=10):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(hold)
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
    assert _peak_concurrency(limiter, threads=10, hold=0.05) == 3


@pytest.mark.redis
def test_redis_slots_never_exceed_n_and_expired_leases_are_reclaimed():
    limiter = RateLimiter("s-redis", max_concurrent=3, lease_seconds=1)
    limiter.reset()
    assert _peak_concurrency(limiter, threads=10, hold=0.05) == 3
    # A worker that died holding slots: its leases expire after lease_seconds.
    for lease in ("dead-1", "dead-2", "dead-3"):
        assert limiter._slot_take(lease)
    with pytest.raises(SlotUnavailable), limiter.slot(timeout=0.2):
        pass
    time.sleep(1.1)
    with limiter.slot(timeout=0.5):
        pass


def test_unlimited_systems_never_wait():
    limiter = RateLimiter("tally", rate_per_minute=0, max_concurrent=0, sleep=pytest.fail)
    for _ in range(1000):
        assert limiter.acquire(timeout=0)
    with limiter.slot(timeout=0):
        pass


def test_acquire_gives_up_after_the_timeout():
    limiter = RateLimiter("slow", rate_per_minute=1, burst=1, use_redis=False)
    limiter.reset()
    assert limiter.acquire(timeout=0.1)
    started = time.monotonic()
    assert not limiter.acquire(timeout=0.1)
    assert time.monotonic() - started < 1


def test_per_system_defaults_and_per_connection_override(settings):
    class Conn:
        pk = 42
        system = "xero"
        settings = {}

    limiter = limiter_for(Conn())
    assert (limiter.rate_per_minute, limiter.max_concurrent) == (60, 5)
    Conn.system = "quickbooks"
    assert (limiter_for(Conn()).rate_per_minute, limiter_for(Conn()).max_concurrent) == (500, 10)
    Conn.system = "zoho_books"
    assert limiter_for(Conn()).rate_per_minute == 100
    Conn.settings = {"rate_limit": {"rate_per_minute": 5}}
    assert limiter_for(Conn()).rate_per_minute == 5
    assert limiter_for(Conn()).key == "connection:42"


_WORKER = """
import os, sys, time
import django, redis
sys.path.insert(0, ".")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
django.setup()
from accounting.integrations.ratelimit import RateLimiter
client = redis.Redis.from_url(sys.argv[1])
limiter = RateLimiter("t-procs", rate_per_minute=1200, burst=4, redis=client)
print("ready", flush=True)
sys.stdin.readline()  # the parent says go once both are ready
stop = time.time() + 1.5
while time.time() < stop:
    if limiter.acquire(timeout=max(0.0, stop - time.time())):
        print(time.time(), flush=True)
"""


@pytest.mark.redis
def test_two_processes_sharing_a_bucket_never_exceed_the_rate():
    import os
    import subprocess
    import sys

    RateLimiter("t-procs", rate_per_minute=1200, burst=4).reset()
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
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    per_process = [[float(line) for line in out.split()] for out in outputs]
    assert all(per_process), "each process got tokens"
    stamps = sorted(stamp for stamps in per_process for stamp in stamps)
    _assert_never_exceeds(stamps, per_second=20, burst=4, seconds=1.5)
