"""Per-connection rate limits shared by every worker: a token bucket and concurrency slots.

With Redis (the default cache is django-redis) both live in Redis and are changed only by Lua
scripts, so all processes share one bucket per connection and the check-and-take is atomic;
the scripts read Redis's own clock (`TIME`), so workers' clocks never disagree. Without Redis
(embedded development, SQLite tests) an in-process equivalent guarded by a lock does the same
for the threads of one process.

Written here rather than taken from a library: the PyPI limiters we looked at either keep state
per process, or offer a fixed/sliding window without blocking acquire and without concurrency
leases; the bucket and the lease set are a few lines of Lua each.

- `RateLimiter(key, rate_per_minute, burst, max_concurrent)`: `acquire(timeout)` blocks until a
  token is free (True) or the timeout passes (False); `slot(timeout)` is a context manager that
  holds one of `max_concurrent` leases (raises `SlotUnavailable` on timeout). A rate or a
  maximum of 0 means unlimited. Leases expire after `lease_seconds` so a killed worker cannot
  hold a slot for ever.
- `limiter_for(connection)` builds the limiter from `INTEGRATIONS_RATE_LIMITS[system]`, which a
  connection's `settings["rate_limit"]` may override.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings

# KEYS[1] bucket hash; ARGV: tokens per second, burst, ttl ms. Returns the wait in seconds
# before a token is free (as a string: Lua numbers become integers on the way out), "0" when
# one was taken.
_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(wait)
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
    """The in-process fallback: buckets and lease counts per key, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.buckets: dict[str, tuple[float, float]] = {}
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
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.key = key
        self.rate_per_minute = float(rate_per_minute or 0)
        self.burst = max(1, int(burst or 1)) if self.rate_per_minute else 0
        self.max_concurrent = int(max_concurrent or 0)
        self.lease_seconds = lease_seconds
        self._redis = (
            redis if redis is not None else (redis_client() if use_redis is not False else None)
        )
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"<RateLimiter {self.key} {self.rate_per_minute:g}/min burst {self.burst} "
            f"max {self.max_concurrent} {'redis' if self._redis is not None else 'local'}>"
        )

    @property
    def bucket_key(self) -> str:
        return f"kontor:ratelimit:{self.key}:bucket"

    @property
    def slots_key(self) -> str:
        return f"kontor:ratelimit:{self.key}:slots"

    # -- token bucket ---------------------------------------------------------------------

    def try_acquire(self) -> float:
        """Take a token if one is free: 0.0; otherwise the seconds until one will be."""
        if not self.rate_per_minute:
            return 0.0
        rate = self.rate_per_minute / 60.0
        if self._redis is not None:
            ttl_ms = int(max(60_000, self.burst / rate * 2000))
            return float(self._redis.eval(_BUCKET, 1, self.bucket_key, rate, self.burst, ttl_ms))
        with _local.lock:
            now = self._clock()
            tokens, stamp = _local.buckets.get(self.bucket_key, (float(self.burst), now))
            tokens = min(self.burst, tokens + max(0.0, now - stamp) * rate)
            if tokens >= 1:
                _local.buckets[self.bucket_key] = (tokens - 1, now)
                return 0.0
            _local.buckets[self.bucket_key] = (tokens, now)
            return (1 - tokens) / rate

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a token is taken (True) or `timeout` seconds pass (False)."""
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
        """Forget the bucket and the leases (tests, or after changing a connection's limits)."""
        if self._redis is not None:
            self._redis.delete(self.bucket_key, self.slots_key)
        with _local.lock:
            _local.buckets.pop(self.bucket_key, None)
            _local.slots.pop(self.slots_key, None)


def limits_for(connection) -> dict:
    limits = dict(settings.INTEGRATIONS_RATE_LIMITS.get(connection.system, {}))
    limits.update((connection.settings or {}).get("rate_limit") or {})
    return limits


def limiter_for(connection, **kwargs) -> RateLimiter:
    """The limiter of one connection (one bucket per connection, shared by all workers)."""
    limits = limits_for(connection)
    return RateLimiter(
        f"connection:{connection.pk}",
        rate_per_minute=limits.get("rate_per_minute", 0),
        burst=limits.get("burst", 0),
        max_concurrent=limits.get("max_concurrent", 0),
        **kwargs,
    )
