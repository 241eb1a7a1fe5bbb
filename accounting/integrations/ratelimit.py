"""Per remote organisation rate limits shared by every worker: rolling windows and concurrency
slots.

Admission is a sliding-window log: the times of the requests let through in the last minute
are kept, and a request is let through only when fewer than `rate_per_minute` were let through
in the 60 seconds before it (inclusive) and fewer than `burst` in the second before it. So no
60-second window ever holds more than `rate_per_minute` requests and no 1-second window more
than `burst`, whatever the timing (a token bucket of capacity b refilled at r per second lets
b + 60 r through in a minute: Xero 65 against its 60). `burst` is therefore "at most this many
per second": QuickBooks' 10 per second, a pacing cap for the others.

With Redis (the default cache is django-redis) the log and the leases live in Redis and are
changed only by Lua scripts, so all processes share one log per key and the check-and-take is
atomic; the scripts read Redis's own clock (`TIME`) so workers' clocks never disagree (tests may
pass a clock of their own). Without Redis (embedded development, SQLite tests) an in-process
equivalent guarded by a lock does the same for the threads of one process.

Written here rather than taken from a library: the PyPI limiters we looked at either keep state
per process, or offer a window without blocking acquire and without concurrency leases; the log
and the lease set are a few lines of Lua each.

- `RateLimiter(key, rate_per_minute, burst, max_concurrent)`: `acquire(timeout)` blocks until a
  request may go (True) or the timeout passes (False); `slot(timeout)` is a context manager that
  holds one of `max_concurrent` leases (raises `SlotUnavailable` on timeout). A limit of 0 means
  unlimited. Leases expire after `lease_seconds` so a killed worker cannot hold a slot for ever.
- `limiter_for(connection)` builds the limiter from `INTEGRATIONS_RATE_LIMITS[system]`, which a
  connection's `settings["rate_limit"]` may override. The key is the remote organisation (Xero
  tenant id, QuickBooks realm id, Zoho organization id) when the connection names one, since
  the providers count per organisation: two connections to one realm share one limit.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings

MINUTE_US = 60_000_000
SECOND_US = 1_000_000

# KEYS[1] log sorted set (score = grant time in microseconds). ARGV: now_us ("" = Redis TIME),
# member suffix, ttl ms, then pairs of (limit, window_us). Returns {1, now_us} when the request
# may go, {0, wait_us} otherwise. Numbers travel as strings formatted with %.0f: Lua's default
# conversion keeps 14 digits and microsecond stamps have 16.
_WINDOWS = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local longest = 0
for i = 4, #ARGV, 2 do
  local w = tonumber(ARGV[i + 1])
  if w > longest then longest = w end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', now - longest))
local wait = 0
for i = 4, #ARGV, 2 do
  local limit = tonumber(ARGV[i])
  local w = tonumber(ARGV[i + 1])
  local from = string.format('%.0f', now - w)
  local count = redis.call('ZCOUNT', KEYS[1], from, '+inf')
  if count >= limit then
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT',
      count - limit, 1)
    local until_free = tonumber(oldest[2]) + w + 1 - now
    if until_free > wait then wait = until_free end
  end
end
if wait > 0 then
  return {0, string.format('%.0f', wait)}
end
local stamp = string.format('%.0f', now)
redis.call('ZADD', KEYS[1], stamp, stamp .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, stamp}
"""

# KEYS[1] lease sorted set (member = lease id, score = expiry); ARGV: max, lease id, lease ms.
_SLOT_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
"""


class SlotUnavailable(Exception):
    """No concurrency slot came free within the timeout."""


def redis_client():
    """The django-redis connection of the default cache, or None without Redis."""
    try:
        from django.core.cache import caches
        from django_redis import get_redis_connection
        from django_redis.cache import RedisCache
    except ImportError:  # pragma: no cover
        return None
    return get_redis_connection("default") if isinstance(caches["default"], RedisCache) else None


class _LocalState:
    """The in-process fallback: grant logs and lease counts per key, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.logs: dict[str, list[int]] = {}
        self.slots: dict[str, int] = {}


_local = _LocalState()


class RateLimiter:
    def __init__(
        self,
        key: str,
        rate_per_minute: float = 0,
        burst: int = 0,
        max_concurrent: int = 0,
        *,
        lease_seconds: int = 300,
        redis=None,
        use_redis: bool | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.key = key
        self.rate_per_minute = int(rate_per_minute or 0)
        self.burst = int(burst or 0)
        self.max_concurrent = int(max_concurrent or 0)
        self.lease_seconds = lease_seconds
        self._redis = (
            redis if redis is not None else (redis_client() if use_redis is not False else None)
        )
        self._sleep = sleep or time.sleep
        # A clock of the caller's (tests) is also what the Redis script counts with.
        self._own_clock = clock is not None
        self._clock = clock or time.monotonic
        # The grant time (microseconds, on the limiter's clock) of the last request let through.
        self.last_grant_us: int | None = None

    def __repr__(self) -> str:
        return (
            f"<RateLimiter {self.key} {self.rate_per_minute}/min {self.burst}/s "
            f"max {self.max_concurrent} {'redis' if self._redis is not None else 'local'}>"
        )

    @property
    def log_key(self) -> str:
        return f"kontor:ratelimit:{self.key}:log"

    @property
    def slots_key(self) -> str:
        return f"kontor:ratelimit:{self.key}:slots"

    @property
    def windows(self) -> list[tuple[int, int]]:
        """(limit, window in microseconds) pairs in force."""
        # The provider counts arrivals, we count grants: a request granted at the very end of
        # our window can arrive inside the provider's next one. The minute window is widened by
        # the guard so a few hundred milliseconds of transit jitter cannot add up to a breach
        # (the second window is not: QuickBooks' 10 a second would lose a fifth of its rate).
        guard = int(getattr(settings, "INTEGRATIONS_RATE_LIMIT_GUARD_MS", 250)) * 1000
        pairs = []
        if self.rate_per_minute:
            pairs.append((self.rate_per_minute, MINUTE_US + guard))
        if self.burst:
            pairs.append((self.burst, SECOND_US))
        return pairs

    def _now_us(self) -> int:
        return int(round(self._clock() * 1_000_000))

    # -- rolling windows ------------------------------------------------------------------

    def try_acquire(self) -> float:
        """Let one request through if every window has room: 0.0; otherwise the seconds until
        one will."""
        windows = self.windows
        if not windows:
            return 0.0
        if self._redis is not None:
            args: list = [
                str(self._now_us()) if self._own_clock else "",
                secrets.token_hex(6),
                MINUTE_US // 1000 * 2,
            ]
            for limit, window in windows:
                args += [limit, window]
            granted, value = self._redis.eval(_WINDOWS, 1, self.log_key, *args)
            if int(granted):
                self.last_grant_us = int(value)
                return 0.0
            return int(value) / 1_000_000
        with _local.lock:
            now = self._now_us()
            longest = max(window for _limit, window in windows)
            log = [stamp for stamp in _local.logs.get(self.log_key, []) if stamp >= now - longest]
            wait = 0
            for limit, window in windows:
                inside = [stamp for stamp in log if stamp >= now - window]
                if len(inside) >= limit:
                    wait = max(wait, inside[len(inside) - limit] + window + 1 - now)
            if wait <= 0:
                log.append(now)
                self.last_grant_us = now
            _local.logs[self.log_key] = log
            return wait / 1_000_000

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a request may go (True) or `timeout` seconds pass (False)."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                wait = min(wait, remaining)
            self._sleep(wait)

    # -- concurrency slots ----------------------------------------------------------------

    def _slot_take(self, lease: str) -> bool:
        if self._redis is not None:
            return bool(
                self._redis.eval(
                    _SLOT_ACQUIRE,
                    1,
                    self.slots_key,
                    self.max_concurrent,
                    lease,
                    self.lease_seconds * 1000,
                )
            )
        with _local.lock:
            held = _local.slots.get(self.slots_key, 0)
            if held < self.max_concurrent:
                _local.slots[self.slots_key] = held + 1
                return True
            return False

    def _slot_release(self, lease: str) -> None:
        if self._redis is not None:
            self._redis.zrem(self.slots_key, lease)
            return
        with _local.lock:
            _local.slots[self.slots_key] = max(0, _local.slots.get(self.slots_key, 0) - 1)
            _local.changed.notify_all()

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[None]:
        """Hold one of `max_concurrent` slots for the duration of the block."""
        if not self.max_concurrent:
            yield
            return
        lease = secrets.token_hex(8)
        deadline = None if timeout is None else self._clock() + timeout
        while not self._slot_take(lease):
            if deadline is not None and self._clock() >= deadline:
                raise SlotUnavailable(self.key)
            self._sleep(0.01)
        try:
            yield
        finally:
            self._slot_release(lease)

    def reset(self) -> None:
        """Forget the log and the leases (tests, or after changing a connection's limits)."""
        if self._redis is not None:
            self._redis.delete(self.log_key, self.slots_key)
        with _local.lock:
            _local.logs.pop(self.log_key, None)
            _local.slots.pop(self.slots_key, None)


def limits_for(connection) -> dict:
    limits = dict(settings.INTEGRATIONS_RATE_LIMITS.get(connection.system, {}))
    limits.update((connection.settings or {}).get("rate_limit") or {})
    return limits


# The setting naming the remote organisation the provider counts requests against.
ORGANISATION_SETTING = {
    "xero": "tenant_id",
    "quickbooks": "realm_id",
    "zoho_books": "organization_id",
}


def limiter_key(connection) -> str:
    """`<system>:<organisation>` when the connection names its remote organisation (every
    connection to it shares one limit, as the provider counts), else `connection:<pk>`."""
    name = ORGANISATION_SETTING.get(connection.system)
    organisation = str((connection.settings or {}).get(name) or "").strip() if name else ""
    if organisation:
        return f"{connection.system}:{organisation}"
    return f"connection:{connection.pk}"


def limiter_for(connection, **kwargs) -> RateLimiter:
    """The limiter of one connection (one log per remote organisation, shared by all workers)."""
    limits = limits_for(connection)
    return RateLimiter(
        limiter_key(connection),
        rate_per_minute=limits.get("rate_per_minute", 0),
        burst=limits.get("burst", 0),
        max_concurrent=limits.get("max_concurrent", 0),
        **kwargs,
    )
