"""Prometheus metrics for pay runs, served at /metrics with the rest (imported by PayrollConfig
so they are exported from start-up, at zero, before the first run)."""

from prometheus_client import Counter, Gauge, Histogram

payroll_calculations_total = Counter(
    "payroll_calculations_total",
    "Payroll period runs by outcome (completed, failed, skipped).",
    ["status"],
)
payroll_calculation_duration_seconds = Histogram(
    "payroll_calculation_duration_seconds",
    "Wall time of a payroll run or chunk, from claim to commit.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
payroll_batch_jobs_active = Gauge(
    "payroll_batch_jobs_active",
    "Payroll runs and chunks being processed right now.",
    multiprocess_mode="livesum",
)
