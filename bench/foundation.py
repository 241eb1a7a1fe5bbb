"""Foundation: the request path every API call shares, and the audit trail every write shares."""

import resource
import time
from collections.abc import Callable

from bench._django import bench_database
from bench._stats import percentile

DESCRIPTION = (
    "Foundation: API request latency through tenancy, roles and serializers; audit write throughput"
)
DEFAULT_SCALE = 200

AUDIT_EVENTS_PER_SCALE = 10


def _timed_gets(get: Callable[[], object], path: str, count: int) -> list[float]:
    """Send `count` GETs through `get` and return each one's latency in milliseconds."""
    # One untimed request first, so URL resolution, imports and connection setup
    # are not billed to the first sample.
    _expect_ok(get(), path)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = get()
        samples.append((time.perf_counter() - started) * 1000)
        _expect_ok(response, path)
    return samples


def _expect_ok(response, path: str) -> None:
    if response.status_code != 200:
        body = response.content[:300].decode(errors="replace")
        raise RuntimeError(f"GET {path} answered {response.status_code}: {body}")


def _ms(value: float) -> float:
    return round(value, 2)


def run(*, scale: int) -> dict[str, float | int | str]:
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    with bench_database():
        from django.test import Client
        from rest_framework.test import APIClient

        from core import services
        from core.models import User

        # The API client authenticates by force_authenticate, so no one needs a password.
        user_a = User.objects.create_user(username="bench-a", password=None)
        user_b = User.objects.create_user(username="bench-b", password=None)
        company_a = services.company_create(
            actor=None, name="Bench Co A", slug="bench-a", owner=user_a
        )
        services.company_create(actor=None, name="Bench Co B", slug="bench-b", owner=user_b)

        # Each event commits on its own, as it would when a request records one change.
        audit_writes = scale * AUDIT_EVENTS_PER_SCALE
        started = time.perf_counter()
        for _ in range(audit_writes):
            services.audit_record(action="bench.event", company=company_a, system_job="bench")
        audit_seconds = time.perf_counter() - started

        api = APIClient()
        api.force_authenticate(user_a)
        audit_path = "/api/v1/audit-events/"
        memberships_path = "/api/v1/memberships/"
        audit_ms = _timed_gets(
            lambda: api.get(audit_path, HTTP_X_COMPANY="bench-a"), audit_path, scale
        )
        memberships_ms = _timed_gets(
            lambda: api.get(memberships_path, HTTP_X_COMPANY="bench-a"), memberships_path, scale
        )

        plain = Client()
        ready_path = "/health/ready"
        ready_ms = _timed_gets(lambda: plain.get(ready_path), ready_path, scale)

    return {
        "audit_writes_per_s": round(audit_writes / audit_seconds),
        "audit_list_p50_ms": _ms(percentile(audit_ms, 50)),
        "audit_list_p95_ms": _ms(percentile(audit_ms, 95)),
        "memberships_p95_ms": _ms(percentile(memberships_ms, 95)),
        "ready_p95_ms": _ms(percentile(ready_ms, 95)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
