"""Payroll: one whole pay run of `scale` employees, timed end to end.

The workload (bench/_payroll_data.py, loaded by COPY): a Bangladesh company paying December
2025 to `scale` employees, 70% salaried and 30% hourly with a time entry for every working day
of the month, three deductions each (provident fund pre-tax with an employer share, health
insurance, a loan against a balance), the progressive income tax by taxpayer category, the
company's overtime rule, and five issued months before it (year-to-date figures).

Timed: `PayrollProcessor(period).run_payroll()`, the call the beat task, the admin, the API
and `run_payroll_automation` make: claim (Redis lock and the period's conditional update),
load, gross-to-net for every employee, payslips and their lines written, the balanced journal
entry posted through the ledger service, loan balances, run and period completed, audit.

- Default: the processor decides as in production: one transaction up to
  PAYROLL_FAN_OUT_THRESHOLD employees (10,000), above it chunks of PAYROLL_CHUNK_SIZE
  processed one after the other in this process (`path` says which).
- `--chunked`: the Celery path. Every run is split into chunks (threshold 0) and fanned out
  to WORKERS real `celery worker` processes (solo pool, queue payroll) started
  against the same PostgreSQL database and Redis; the last chunk finalises the run. Timed
  from the call until the run is completed (worker start-up is not timed). When no worker
  can be started (SQLite in memory, no Redis), the same chunk tasks run in this process and
  `path` says so.

Figures: `run_seconds`; `queries`: SQL statements of the run (this process plus, on the
Celery path, every chunk task in the workers; COPY statements are sent beside Django's cursor
and not counted, two per chunk); `peak_rss_mb`: the highest peak resident memory of this
process (data loading included) and of the workers; `phase_*_s`: where this process's time
went (load, compute, write, finalise); `erpnext_speedup`: ERPNext's 92 ms per employee
(646 s for 7,000, reference/payroll.md) over ours.

Run: `DATABASE_URL=postgres://... REDIS_URL=redis://... python -m bench payroll --json`,
`... python -m bench payroll --scale 100000 --chunked --json`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import _payroll_data
from bench._bulk import Timer, commit_flush_ms, counting_queries, current_rss_mb, peak_rss_mb
from bench._django import bench_database, celery_worker_command

DESCRIPTION = (
    "Payroll: one pay run (gross to net, payslips and lines, journal entry) of `scale` "
    "employees, 70% salaried, 30% hourly with a month of daily time entries, 3 deductions "
    "each, progressive tax, 5 prior months; --chunked: fanned out to Celery worker processes"
)
DEFAULT_SCALE = 10_000
OPTIONS = ("chunked",)

WORKERS = 2
WORKER_QUEUES = "payroll"  # the chunk tasks' queue (CELERY_TASK_ROUTES); not the emails'
EMAIL_QUEUES = ("default",)
WORKER_START_TIMEOUT = 90
ERPNEXT_SECONDS_PER_EMPLOYEE = 646 / 7000
ROOT = Path(__file__).resolve().parents[1]

Figures = dict[str, float | int | str | None]


def run(*, scale: int, chunked: bool = False) -> Figures:
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    with bench_database():
        from django.core.cache import cache

        from payroll.processing import lock_name

        started = time.perf_counter()
        workload = _payroll_data.build(scale)
        setup_seconds = time.perf_counter() - started
        # A lock left behind by an interrupted earlier run on the same Redis database would
        # make this one "busy": the period ids of a fresh database start again at the same ids.
        cache.delete(lock_name(workload.period.pk))
        rss_before = current_rss_mb()
        commit_ms = commit_flush_ms()
        load_before = round(os.getloadavg()[0], 2)
        with _own_broker():
            figures = _run_chunked(workload) if chunked else _run_in_process(workload)
        figures.update(_check(workload))
        figures["load_avg_1m_before"] = load_before
        figures["commit_flush_median_ms"] = commit_ms
    return {
        "employees": workload.employees,
        **figures,
        "rss_before_run_mb": rss_before,
        "salaried": workload.salaried,
        "hourly": workload.hourly,
        "time_entries": workload.time_entries,
        "deductions": workload.deductions,
        "prior_payslips": workload.prior_payslips,
        "setup_seconds": round(setup_seconds, 1),
    }


# ---------------------------------------------------------------------------------------------
# In this process
# ---------------------------------------------------------------------------------------------
PHASES = {
    "_load_batch": "load",
    "compute_batch": "compute",
    "_write_payslips": "write",
    "finalise_run": "finalise",
}


@contextmanager
def _phase_timer():
    """Time the processor's phases by wrapping its module functions for the block."""
    from payroll import processing

    timer = Timer()
    originals = {name: getattr(processing, name) for name in PHASES}
    for name, function in originals.items():
        setattr(processing, name, timer.wrap(PHASES[name], function))
    try:
        yield timer
    finally:
        for name, function in originals.items():
            setattr(processing, name, function)


def _processor(workload):
    from payroll.models import PayrollPeriod, RunTrigger
    from payroll.processing import PayrollProcessor

    period = PayrollPeriod.objects.select_related("company").get(pk=workload.period.pk)
    return PayrollProcessor(period, trigger=RunTrigger.COMMAND)


def _expect_completed(outcome) -> None:
    if outcome.status != "completed":
        raise RuntimeError(f"the run ended {outcome.status}: {outcome.message}")


def _run_in_process(workload, *, path: str | None = None) -> Figures:
    from django.conf import settings

    processor = _processor(workload)
    with _phase_timer() as timer, counting_queries() as counter:
        started = time.perf_counter()
        outcome = processor.run_payroll()
        seconds = time.perf_counter() - started
    _expect_completed(outcome)
    if path is None:
        whole = workload.employees <= settings.PAYROLL_FAN_OUT_THRESHOLD
        path = "whole (one transaction)" if whole else "chunks in this process"
    return {
        "path": path,
        **_speed(workload, seconds),
        "queries": counter.count,
        "peak_rss_mb": peak_rss_mb(),
        **{f"phase_{name}_s": round(value, 2) for name, value in timer.seconds.items()},
    }


def _speed(workload, seconds: float) -> Figures:
    per_employee = seconds / workload.employees
    return {
        "run_seconds": round(seconds, 2),
        "employees_per_s": round(workload.employees / seconds),
        "per_employee_ms": round(per_employee * 1000, 3),
        "erpnext_speedup": round(ERPNEXT_SECONDS_PER_EMPLOYEE / per_employee, 1),
    }


# ---------------------------------------------------------------------------------------------
# Celery workers
# ---------------------------------------------------------------------------------------------
def _worker_environment(log_path: str) -> dict[str, str] | None:
    """The workers' environment: this database (the throwaway one) and a broker on the
    benchmark's own Redis database; None when they cannot share this process's data."""
    from django.db import connection

    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if connection.vendor != "postgresql" or not database_url or not redis_url:
        return None
    parts = urlsplit(database_url)
    test_database = connection.settings_dict["NAME"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.test"),
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{test_database}")),
        "REDIS_URL": redis_url,
        # The broker shares the benchmark's Redis database, which no one else uses, so
        # nobody else's worker can take these tasks and nobody's FLUSHDB can drop them.
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "BENCH_WORKER_LOG": log_path,
    }


def _read_log(path: str) -> list[dict]:
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@contextmanager
def _workers(env: dict[str, str], log_path: str):
    """Start WORKERS celery worker processes; yield them once all are ready (or None)."""
    processes = []
    outputs = []
    try:
        for n in range(1, WORKERS + 1):
            output = open(f"{log_path}.worker{n}.out", "w")  # noqa: SIM115 (closed below)
            outputs.append(output)
            processes.append(
                subprocess.Popen(  # noqa: S603 (a fixed command line)
                    celery_worker_command(
                        "bench._payroll_worker", WORKER_QUEUES, f"bench-payroll-{n}@%h"
                    ),
                    cwd=ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            ready = sum(1 for r in _read_log(log_path) if r.get("event") == "ready")
            if ready >= WORKERS:
                break
            if any(p.poll() is not None for p in processes):
                break
            time.sleep(0.2)
        else:
            ready = 0
        if ready < WORKERS or any(p.poll() is not None for p in processes):
            print("bench payroll: the Celery workers did not start", file=sys.stderr)
            for n in range(1, WORKERS + 1):
                tail = Path(f"{log_path}.worker{n}.out").read_text()[-2000:]
                print(tail, file=sys.stderr)
            yield None
        else:
            yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for output in outputs:
            output.close()


@contextmanager
def _own_broker():
    """Messages the run sends (its chunks on the Celery path; the payslip emails it queues
    after commit, on every path) go to the benchmark's own Redis database, or to memory
    without Redis, never to a broker others use. The queued emails are dropped afterwards:
    sending them is not part of the run, and this database is thrown away."""
    from config.celery_app import app

    redis_url = os.environ.get("REDIS_URL", "")
    previous = (app.conf.broker_url, app.conf.result_backend)
    app.conf.broker_url = redis_url or "memory://"
    if redis_url:
        app.conf.result_backend = redis_url
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.result_backend = previous
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url)
            client.delete(*EMAIL_QUEUES)
            client.close()


def _wait_completed(run_id: int, timeout: float) -> str:
    from payroll.models import PayrollRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = PayrollRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        if status != "running":
            return status
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} still running after {timeout:.0f} s")


def _run_chunked(workload) -> Figures:
    from django.test import override_settings

    with ExitStack() as stack:
        # Every run fans out on this path, whatever its size.
        stack.enter_context(override_settings(PAYROLL_FAN_OUT_THRESHOLD=0))
        log_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-payroll-"))
        log_path = str(Path(log_dir) / "workers.jsonl")
        env = _worker_environment(log_path)
        workers = stack.enter_context(_workers(env, log_path)) if env else None
        if workers is None:
            return _run_in_process(
                workload, path="chunks in this process (no Celery worker could be started)"
            )
        return _fan_out(workload, log_path)


def _fan_out(workload, log_path: str) -> Figures:
    from django.conf import settings

    from payroll.models import PayrollRun

    processor = _processor(workload)
    with counting_queries() as counter:
        started = time.perf_counter()
        outcome = processor.run_payroll(fan_out=True)
    dispatched = time.perf_counter() - started
    if outcome.status != "dispatched":
        raise RuntimeError(f"the run was not dispatched: {outcome.status} {outcome.message}")
    timeout = max(300.0, workload.employees / 100)
    status = _wait_completed(outcome.run.pk, timeout)
    seconds = time.perf_counter() - started
    if status != "completed":
        run = PayrollRun.objects.get(pk=outcome.run.pk)
        raise RuntimeError(f"the run ended {status}: {run.error[:500]}")
    # Workers write their record after the task returns: wait for the last one.
    chunks = PayrollRun.objects.get(pk=outcome.run.pk).chunks_total
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = [r for r in _read_log(log_path) if r.get("event") == "task"]
        if sum(1 for r in tasks if r["task"].endswith("run_payroll_chunk")) >= chunks:
            break
        time.sleep(0.1)
    chunk_tasks = [r for r in tasks if r["task"].endswith("run_payroll_chunk")]
    worker_peak = max((r["maxrss_mb"] for r in tasks), default=0.0)
    chunk_seconds = sorted(r["seconds"] for r in chunk_tasks)
    bench_peak = peak_rss_mb()
    return {
        "path": f"celery: {WORKERS} worker processes (solo pool) on Redis",
        **_speed(workload, seconds),
        "queries": counter.count + sum(r["queries"] for r in tasks),
        "peak_rss_mb": max(bench_peak, worker_peak),
        "bench_peak_rss_mb": bench_peak,
        "worker_peak_rss_mb": worker_peak,
        "workers": WORKERS,
        "chunks": chunks,
        "chunk_size": int(settings.PAYROLL_CHUNK_SIZE),
        "dispatch_seconds": round(dispatched, 2),
        "chunk_median_s": round(chunk_seconds[len(chunk_seconds) // 2], 2)
        if chunk_seconds
        else None,
        "chunk_max_s": round(chunk_seconds[-1], 2) if chunk_seconds else None,
        "queries_per_chunk_max": max((r["queries"] for r in chunk_tasks), default=0),
        "worker_pids": len({r["pid"] for r in chunk_tasks}),
    }


# ---------------------------------------------------------------------------------------------
# What the run left behind
# ---------------------------------------------------------------------------------------------
def _check(workload) -> Figures:
    """The run paid everybody once and posted one balanced entry; its size in rows."""
    from django.db.models import Sum

    from accounting.models import JournalLine
    from payroll.models import PayrollRun, Payslip, PayslipLine

    run = PayrollRun.objects.get(period=workload.period, status="completed")
    payslips = Payslip.objects.filter(run=run, status="issued")
    count = payslips.count()
    if count != workload.employees:
        raise RuntimeError(f"{count} payslips issued for {workload.employees} employees")
    if run.journal_entry_id is None:
        raise RuntimeError("the run posted no journal entry")
    entry_lines = JournalLine.objects.filter(entry_id=run.journal_entry_id)
    sums = entry_lines.aggregate(debit=Sum("debit"), credit=Sum("credit"))
    if sums["debit"] != sums["credit"]:
        raise RuntimeError(f"the entry is unbalanced: {sums}")
    return {
        "payslips": count,
        "payslip_lines": PayslipLine.objects.filter(payslip__run=run).count(),
        "journal_lines": entry_lines.count(),
        "gross_total": str(run.gross_total),
        "net_total": str(run.net_total),
        "recorded_duration_s": float(run.duration_seconds or 0),
    }
