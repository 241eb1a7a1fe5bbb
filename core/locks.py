"""A lock shared by every process: atomic acquire with a token and an expiry, released only by
its holder (compare-and-delete). The database still has the final word on anything that must
happen once; this lock only keeps duplicate workers from starting the same job.

With Redis: SET NX PX to acquire, a Lua compare-and-delete to release. With the local-memory
cache (embedded default, one process per cache) `cache.add` is atomic within the process.

Redis unreachable: taking or reading a lock raises LockUnavailable (nobody may start work it
cannot lock); releasing one logs and gives up, since the lock expires on its own.
"""

import logging
import secrets
from contextlib import contextmanager

from django.core.cache import cache, caches

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


class LockNotAcquired(Exception):
    pass


class LockUnavailable(Exception):
    """The lock store (Redis) cannot be reached."""


def _store_errors() -> tuple[type[Exception], ...]:
    try:
        from django_redis.exceptions import ConnectionInterrupted
        from redis.exceptions import ConnectionError, TimeoutError
    except ImportError:  # pragma: no cover
        return ()
    return (ConnectionError, TimeoutError, ConnectionInterrupted)


@contextmanager
def _reaching_store(name: str):
    try:
        yield
    except _store_errors() as exc:
        raise LockUnavailable(f"the lock store (Redis) is unreachable: {exc}") from exc


def _redis_client():
    try:
        from django_redis import get_redis_connection
        from django_redis.cache import RedisCache
    except ImportError:  # pragma: no cover
        return None
    return get_redis_connection("default") if isinstance(caches["default"], RedisCache) else None


def lock_acquire(name: str, *, ttl_seconds: int) -> str | None:
    """Take the lock; return its token, or None if someone else holds it."""
    token = secrets.token_hex(16)
    with _reaching_store(name):
        client = _redis_client()
        if client is not None:
            acquired = client.set(cache.make_key(name), token, nx=True, px=ttl_seconds * 1000)
        else:
            acquired = cache.add(name, token, timeout=ttl_seconds)
    return token if acquired else None


def lock_release(name: str, token: str) -> bool:
    """Release the lock if `token` still holds it; True if it was released. With the store
    unreachable the lock is left to expire (False)."""
    try:
        with _reaching_store(name):
            client = _redis_client()
            if client is not None:
                return bool(client.eval(_RELEASE, 1, cache.make_key(name), token))
            if cache.get(name) == token:
                cache.delete(name)
                return True
            return False
    except LockUnavailable as exc:
        log.warning("lock %s not released, it will expire: %s", name, exc)
        return False


def lock_holder(name: str) -> str | None:
    with _reaching_store(name):
        client = _redis_client()
        if client is not None:
            value = client.get(cache.make_key(name))
            return value.decode() if value is not None else None
        return cache.get(name)


@contextmanager
def held_lock(name: str, *, ttl_seconds: int):
    token = lock_acquire(name, ttl_seconds=ttl_seconds)
    if token is None:
        raise LockNotAcquired(name)
    try:
        yield token
    finally:
        lock_release(name, token)
