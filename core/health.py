"""Liveness, readiness and metrics endpoints for load balancers, orchestrators and Prometheus.

/health/live answers as long as the process serves requests. /health/ready checks what a
request needs (database, cache, broker) and answers 503 naming the check that failed.

They are served by HealthCheckMiddleware, ahead of the Host check and the HTTPS redirect:
orchestrators probe a pod by its IP over plain HTTP, and neither check means anything there.
"""

import ipaddress
import logging
import secrets
import time
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=10)
    try:
        if cache.get(key) != "ok":
            raise RuntimeError("the cache did not return the value just written")
    finally:
        cache.delete(key)


def check_broker() -> None:
    from config.celery_app import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def run_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure means not ready; say which and why
            log.warning("readiness check %s failed: %s", name, exc)
            results[name] = {"ok": False}
            if settings.HEALTH_SHOW_ERRORS:  # errors name internal hosts: not for the public
                results[name]["error"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


@never_cache
@require_GET
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request):
    checks = run_checks()
    ok = all(result["ok"] for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503
    )


@never_cache
@require_GET
def metrics(request):
    """Prometheus metrics. With METRICS_TOKEN set, the scraper sends it as a bearer token.
    Without one, only direct requests from loopback or private addresses are served: a
    request relayed by a proxy (it carries X-Forwarded-For) may come from anywhere."""
    from django_prometheus.exports import ExportToDjangoView

    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(supplied.encode(), token.encode()):
            return HttpResponse(
                "metrics need a bearer token\n", status=401, content_type="text/plain"
            )
    elif not _direct_from_inside(request):
        return HttpResponse(
            "metrics are served to the internal network, or with METRICS_TOKEN\n",
            status=403,
            content_type="text/plain",
        )
    return ExportToDjangoView(request)


def _direct_from_inside(request) -> bool:
    if "X-Forwarded-For" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


ROUTES = {
    "/health/live": live,
    "/health": live,
    "/health/ready": ready,
    "/ready": ready,
    "/metrics": metrics,
}


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ROUTES.get(request.path_info)
        return view(request) if view is not None else self.get_response(request)
