"""Reads of the integration hub for the admin and the API (tenant-scoped querysets and the
per-connection summary)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from accounting.integrations.models import (
    ExternalRef,
    IntegrationConnection,
    Resolution,
    SyncError,
    SyncRun,
)

OPEN = (Resolution.OPEN, Resolution.RETRYING)


def connections_for(company):
    return IntegrationConnection.objects.filter(company=company).order_by("system", "name")


def runs_for(company, *, connection=None, include_archived: bool = False):
    runs = SyncRun.objects.filter(company=company).select_related("connection", "triggered_by")
    if connection is not None:
        runs = runs.filter(connection=connection)
    if not include_archived:
        runs = runs.filter(archived=False)
    return runs.order_by("-started_at", "-id")


def errors_for(company, *, connection=None, open_only: bool = False):
    errors = SyncError.objects.filter(company=company).select_related(
        "connection", "sync_run", "resolved_by"
    )
    if connection is not None:
        errors = errors.filter(connection=connection)
    if open_only:
        errors = errors.filter(resolution__in=OPEN)
    return errors.order_by("-created_at", "-id")


def connection_summary(connection: IntegrationConnection, *, days: int = 30) -> dict:
    """Counts for the admin's and the API's per-connection summary (a few aggregate queries)."""
    since = timezone.now() - timedelta(days=days)
    runs = SyncRun.objects.filter(connection=connection, started_at__gte=since).aggregate(
        runs=Count("id"),
        succeeded=Count("id", filter=Q(status="succeeded")),
        partial=Count("id", filter=Q(status="partial")),
        failed=Count("id", filter=Q(status="failed")),
    )
    errors = SyncError.objects.filter(connection=connection, resolution__in=OPEN).aggregate(
        open_errors=Count("id"),
        retryable=Count("id", filter=Q(retryable=True)),
        conflicts=Count("id", filter=Q(category="conflict")),
    )
    refs = dict(
        ExternalRef.objects.filter(connection=connection)
        .exclude(external_id__startswith="pending:")
        .values_list("entity")
        .annotate(n=Count("id"))
        .values_list("entity", "n")
    )
    return {
        "days": days,
        **runs,
        **errors,
        "linked": refs,
        "enabled": connection.enabled,
        "needs_reauth": connection.needs_reauth,
        "consecutive_failures": connection.consecutive_failures,
        "last_sync_at": connection.last_sync_at,
        "last_sync_status": connection.last_sync_status,
        "last_test_at": connection.last_test_at,
        "last_test_success": connection.last_test_success,
        "last_test_latency_ms": connection.last_test_latency_ms,
    }
