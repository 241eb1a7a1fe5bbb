"""Prometheus metrics of the integration hub, served at /metrics with the rest (imported by
IntegrationsConfig so they are exported from start-up, at zero).

Counters and histograms are summed across processes by prometheus_client's multiprocess mode
when PROMETHEUS_MULTIPROC_DIR is set (as for payroll); the queue-size gauge is set by whichever
process last measured it, so it uses the "max" mode rather than summing stale values.
"""

from prometheus_client import Counter, Gauge, Histogram

accounting_sync_total = Counter(
    "accounting_sync_total",
    "Sync runs by system, entity and final status (succeeded, partial, failed).",
    ["system", "entity", "status"],
)
accounting_sync_errors_total = Counter(
    "accounting_sync_errors_total",
    "Records that failed to sync, by error category.",
    ["category"],
)
accounting_sync_duration_seconds = Histogram(
    "accounting_sync_duration_seconds",
    "Wall time of one sync run.",
    ["system"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
accounting_queue_size = Gauge(
    "accounting_queue_size",
    "Sync errors waiting for an automatic retry (open or retrying, retryable).",
    multiprocess_mode="max",
)
accounting_connections_disabled_total = Counter(
    "accounting_connections_disabled_total",
    "Connections disabled automatically after repeated failures.",
    ["system"],
)
