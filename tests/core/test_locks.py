import threading

import pytest
from django.core.cache import caches

from core.locks import LockNotAcquired, held_lock, lock_acquire, lock_holder, lock_release


def test_only_one_holder_and_only_the_holder_releases():
    token = lock_acquire("payroll_processing_1", ttl_seconds=30)
    assert token
    assert lock_acquire("payroll_processing_1", ttl_seconds=30) is None
    assert lock_release("payroll_processing_1", "not-the-token") is False
    assert lock_holder("payroll_processing_1") == token
    assert lock_release("payroll_processing_1", token) is True
    assert lock_acquire("payroll_processing_1", ttl_seconds=30)


def test_held_lock_context():
    with (
        held_lock("job", ttl_seconds=30),
        pytest.raises(LockNotAcquired),
        held_lock("job", ttl_seconds=30),
    ):
        pass
    assert lock_holder("job") is None


@pytest.mark.redis
def test_redis_lock_is_atomic_across_threads_and_expires(settings):
    import os
    import time

    from django_redis.cache import RedisCache

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "OPTIONS": {"IGNORE_EXCEPTIONS": False},
        }
    }
    assert isinstance(caches["default"], RedisCache)
    caches["default"].delete("race")
    barrier = threading.Barrier(8)
    winners = []

    def contend():
        barrier.wait()
        token = lock_acquire("race", ttl_seconds=30)
        if token:
            winners.append(token)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert lock_release("race", "wrong") is False
    assert lock_release("race", winners[0]) is True

    assert lock_acquire("short", ttl_seconds=1)
    time.sleep(1.2)
    assert lock_acquire("short", ttl_seconds=1), "an expired lock must be free again"
