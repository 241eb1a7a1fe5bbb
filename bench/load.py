"""Load: the API under concurrent clients, gunicorn in front of PostgreSQL and Redis as in
production, against the targets of issue 8 (reads p95 <= 100 ms, writes p95 <= 250 ms, zero
errors), first at `--clients` (20) and then at BEND_CLIENTS (50) to show where it bends.

- Data (bench/_load_data.py): a sales company with `scale` invoices (event streams, lines,
  payments) and scale/2 posted journal entries; a banking company with scale bank
  transactions; eight payroll companies of eight employees with monthly periods to pay.
- Server: `gunicorn -c config/gunicorn.py config.wsgi` with production settings (DEBUG off,
  JSON logs, Redis cache, persistent database connections), WEB_CONCURRENCY workers of
  WEB_THREADS threads (defaults below, for 2 cores; the environment overrides them), the
  user throttle raised (API_THROTTLE_USER) so the bench measures the work, not the limiter.
  A Celery worker (solo pool, queue payroll) pays the runs the API starts. The broker and the
  cache are on REDIS_URL's database.
- Clients (bench/_load_client.py): one asyncio process, JWT access tokens of each company's
  owner, a closed loop each with an exponential think time of THINK_SECONDS mean. The mix:
  invoice lists and filters, invoice detail, journal entry lists, trial balance, P&L,
  balance sheet, banking cash position, payslips; invoice drafts, journal entries, payroll
  runs (POST run, then poll the run until it completes: the polls count as reads). Every
  response is checked: anything but 2xx (or no answer) is an error.
- Figures: per run, requests, errors (with the first few), rps, p50/p95/p99 of reads, of
  writes and of each endpoint; payroll runs completed and their start-to-paid time; the CPU
  share of the clients, of the web server and of the Celery worker (1.0 = one core) over the
  run. `bend` holds the same at BEND_CLIENTS with the endpoints whose p95 grew most.

Run: `DATABASE_URL=postgres://... REDIS_URL=redis://... python -m bench load --json`;
quick: `... python -m bench load --clients 5 --duration 10 --json`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench._django import celery_worker_command
from bench._stats import percentile

DESCRIPTION = (
    "Load: gunicorn (production settings) on PostgreSQL and Redis, asyncio JWT clients in a "
    "closed loop on a mix of invoice lists and filters, ledger and banking reports, invoice "
    "drafts, journal entries and payroll runs (Celery worker); `scale` invoices; p50/p95/p99 "
    "per endpoint at --clients (20) and at 50 clients (bend)"
)
DEFAULT_SCALE = 5_000
OPTIONS = ("clients", "duration")

CLIENTS = 20
BEND_CLIENTS = 50
DURATION = 60
# Mean pause between an answer and a client's next request (exponential): a person clicking
# through screens, or a screen's script, at a brisk pace. 20 clients then offer about 35
# requests/s; with no pause at all every run is a saturation test whose p95 is only queueing.
THINK_SECONDS = 0.5
READ_P95_TARGET_MS = 100
WRITE_P95_TARGET_MS = 250
# 2 cores: two sync workers a core, one computing while the other waits on PostgreSQL (about a
# third of a request's time). More processes only queue for the same cores (config/gunicorn.py's
# own default, 2 x cores + 1, gives 5); gthread workers keep idle connections open for
# gunicorn's keepalive (2 s) and then close them, and a client sending on one as it closes
# gets no answer (seen as "Server disconnected" errors with 2 workers x 4 threads; sync
# workers close after each answer). WEB_CONCURRENCY / WEB_THREADS in the environment
# override both, to compare on the machine at hand.
WEB_CONCURRENCY = 4
WEB_THREADS = 1
SERVER_START_TIMEOUT = 60
ROOT = Path(__file__).resolve().parents[1]

Figures = dict


def run(*, scale: int, clients: int = CLIENTS, duration: int = DURATION) -> Figures:
    from bench._django import bench_database

    _require_services()
    with _exit_on_sigterm(), bench_database():
        from django.db import connection

        if connection.vendor != "postgresql":
            raise RuntimeError("the load benchmark needs PostgreSQL: DATABASE_URL=postgres://...")
        from bench import _load_data

        started = time.perf_counter()
        dataset = _load_data.build(invoices=scale, entries=scale // 2, bank_rows=scale)
        seed_seconds = round(time.perf_counter() - started, 1)
        with _services(connection.settings_dict["NAME"]) as (base_url, pids):
            figures = _measure(dataset, base_url, pids, clients, duration)
        figures["seed_seconds"] = seed_seconds
        figures.update(dataset.counts)
    return figures


def unavailable_reason() -> str | None:
    """Why the environment cannot run this benchmark (`python -m bench all` then skips it and
    says why), or None."""
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return "the load benchmark needs PostgreSQL: set DATABASE_URL=postgres://... (not SQLite)"
    if not os.environ.get("REDIS_URL", ""):
        return "the load benchmark needs Redis: set REDIS_URL=redis://..."
    return None


def _require_services() -> None:
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)


# ---------------------------------------------------------------------------------------------
# The server and the worker
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(database_name: str, port: int) -> dict[str, str]:
    from cryptography.fernet import Fernet
    from django.conf import settings

    parts = urlsplit(os.environ["DATABASE_URL"])
    redis_url = os.environ["REDIS_URL"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{database_name}")),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        # The clients' tokens are signed here with this process's key.
        "SECRET_KEY": settings.SECRET_KEY,
        "CREDENTIAL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "API_THROTTLE_USER": "1000000/min",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", str(WEB_CONCURRENCY)),
        "WEB_THREADS": os.environ.get("WEB_THREADS", str(WEB_THREADS)),
        "DJANGO_READ_DOT_ENV_FILE": "false",
        "EMAIL_URL": "dummymail://",
    }


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-1500:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn not ready after {SERVER_START_TIMEOUT} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM when this process dies, even
    by SIGKILL, where no `finally` runs (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) as SystemExit, so the `finally`s stop the server and the
    worker and drop the scratch database, as they do on Ctrl-C."""

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave the handler alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _services(database_name: str) -> Iterator[tuple[str, dict[str, int]]]:
    """gunicorn and one Celery worker on the throwaway database; yields the base URL and
    their process ids. Both are stopped (and their logs' tails shown on failure) after,
    whatever ends the block: an error, Ctrl-C or SIGTERM; SIGKILL through _die_with_parent."""
    port = _free_port()
    env = server_environment(database_name, port)
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    web_log, worker_log = folder / "gunicorn.log", folder / "worker.log"
    processes: list[subprocess.Popen] = []
    try:
        with open(web_log, "w") as web_out, open(worker_log, "w") as worker_out:
            web = subprocess.Popen(  # noqa: S603 (a fixed command line)
                [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
                cwd=ROOT,
                env=env,
                stdout=web_out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads yet)
            )
            processes.append(web)
            worker = subprocess.Popen(  # noqa: S603 (a fixed command line)
                celery_worker_command("config.celery_app", "payroll", "bench-load@%h"),
                cwd=ROOT,
                env=env,
                stdout=worker_out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads yet)
            )
            processes.append(worker)
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(f"{base_url}/health/live", web, web_log)
            yield base_url, {"web": web.pid, "worker": worker.pid}
    except Exception:
        for log in (web_log, worker_log):
            if log.exists():
                print(f"--- {log.name} (tail)\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for process in processes:
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)
        _drop_queued(env["REDIS_URL"])


def _drop_queued(redis_url: str) -> None:
    """The payslip emails the runs queued: sending them is not part of the benchmark. Best
    effort: Redis gone must not hide the error that ended the run."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete("default", "payroll")
    except redis.RedisError as exc:
        print(f"bench load: queued tasks left in Redis: {exc}", file=sys.stderr)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# CPU
# ---------------------------------------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_times(pid: int, children_done: bool) -> float:
    """CPU seconds of `pid` (and of its children it has waited for, when asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14 to 17.
    ticks = int(fields[11]) + int(fields[12])
    if children_done:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """A process tree's CPU seconds so far: the process, its children's (live, and the ones
    it reaped: gunicorn replaces a worker after max_requests)."""
    return _proc_times(pid, True) + sum(_proc_times(child, False) for child in _children(pid))


def _machine_busy() -> tuple[int, int]:
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
def _tokens(dataset) -> dict[str, str]:
    from rest_framework_simplejwt.tokens import AccessToken

    from core.models import User

    users = {dataset.sales_slug: dataset.sales_user_id, dataset.bank_slug: dataset.bank_user_id}
    users.update({c.slug: c.user_id for c in dataset.payroll})
    return {slug: str(AccessToken.for_user(User.objects.get(pk=pk))) for slug, pk in users.items()}


def _data(dataset) -> dict:
    return {
        "sales_slug": dataset.sales_slug,
        "bank_slug": dataset.bank_slug,
        "customers": dataset.customers,
        "items": dataset.items,
        "accounts": dataset.accounts,
        "invoice_ids": dataset.invoice_ids,
        "invoice_numbers": dataset.invoice_numbers,
    }


def _one_run(dataset, base_url, pids, pool, clients: int, duration: int, seed: int) -> dict:
    from bench import _load_client

    tokens = _tokens(dataset)
    warmup = min(10.0, max(2.0, duration / 6))
    before = {}

    def on_start():
        before.update(
            web=tree_cpu_seconds(pids["web"]),
            worker=tree_cpu_seconds(pids["worker"]),
            busy=_machine_busy(),
            load=round(os.getloadavg()[0], 2),
        )

    outcome, wall, client_cpu = _load_client.run(
        base_url,
        _data(dataset),
        tokens,
        pool,
        clients=clients,
        duration=duration,
        warmup=warmup,
        think_s=THINK_SECONDS,
        seed=seed,
        on_start=on_start,
    )
    busy_after = _machine_busy()
    web_cpu = tree_cpu_seconds(pids["web"]) - before["web"]
    worker_cpu = tree_cpu_seconds(pids["worker"]) - before["worker"]
    busy = (busy_after[0] - before["busy"][0]) / max(1, busy_after[1] - before["busy"][1])
    figures = summarize(
        outcome.records,
        clients=clients,
        wall=wall,
        kinds={name: kind for name, kind, _w, _a in _load_client.MIX},
        unfinished_runs=outcome.payroll_unfinished,
    )
    completed = outcome.payroll_completed_ms
    figures.update(
        {
            "error_samples": outcome.error_samples,
            "payroll_runs_completed": len(completed),
            "payroll_runs_failed": outcome.payroll_failed,
            "payroll_runs_unfinished": outcome.payroll_unfinished,
            "payroll_picks_skipped": outcome.payroll_skipped,
            "payroll_run_to_paid_p95_ms": _ms(percentile(completed, 95)) if completed else None,
            # CPU seconds over wall seconds: 1.0 is one core busy all along (2 cores: 2.0).
            "client_cpu_share": round(client_cpu / wall, 3),
            "web_cpu_share": round(web_cpu / wall, 3),
            "worker_cpu_share": round(worker_cpu / wall, 3),
            "machine_cpu_busy": round(busy, 3),
            "load_avg_1m_before": before["load"],
        }
    )
    figures["targets_met"] = targets_met(figures)
    return figures


def _ms(value: float) -> float:
    return round(value, 1)


def _latency(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    return {
        "p50_ms": _ms(percentile(samples, 50)),
        "p95_ms": _ms(percentile(samples, 95)),
        "p99_ms": _ms(percentile(samples, 99)),
    }


def summarize(
    records: Sequence,
    *,
    clients: int,
    wall: float,
    kinds: dict[str, str],
    unfinished_runs: int = 0,
) -> dict:
    """The figures of one run from its records (name, kind, ms, ok: see _load_client.Record):
    totals, read and write percentiles, and per endpoint (every endpoint of `kinds`, in its
    order, even one no client picked). `errors` counts the failed requests and the payroll
    runs accepted but never paid (`unfinished_runs`)."""
    reads = [r.ms for r in records if r.kind == "read"]
    writes = [r.ms for r in records if r.kind == "write"]
    errors = sum(1 for r in records if not r.ok) + unfinished_runs
    endpoints = {}
    for name, kind in kinds.items():
        mine = [r for r in records if r.name == name]
        endpoints[name] = {
            "kind": kind,
            "requests": len(mine),
            "errors": sum(1 for r in mine if not r.ok),
            **_latency([r.ms for r in mine]),
        }
    for name in sorted({r.name for r in records} - set(kinds)):
        mine = [r for r in records if r.name == name]
        endpoints[name] = {
            "kind": mine[0].kind,
            "requests": len(mine),
            "errors": sum(1 for r in mine if not r.ok),
            **_latency([r.ms for r in mine]),
        }
    read, write = _latency(reads), _latency(writes)
    return {
        "clients": clients,
        "duration_s": round(wall, 1),
        "requests": len(records),
        "errors": errors,
        "rps": round(len(records) / wall, 1) if wall else 0.0,
        "read_requests": len(reads),
        "read_p50_ms": read["p50_ms"],
        "read_p95_ms": read["p95_ms"],
        "read_p99_ms": read["p99_ms"],
        "write_requests": len(writes),
        "write_p50_ms": write["p50_ms"],
        "write_p95_ms": write["p95_ms"],
        "write_p99_ms": write["p99_ms"],
        "endpoints": endpoints,
    }


def targets_met(figures: dict) -> str:
    """'yes', or 'no: ' and which target was missed."""
    missed = []
    read, write = figures.get("read_p95_ms"), figures.get("write_p95_ms")
    if read is None or read > READ_P95_TARGET_MS:
        missed.append(f"reads p95 {read} ms > {READ_P95_TARGET_MS}")
    if write is None or write > WRITE_P95_TARGET_MS:
        missed.append(f"writes p95 {write} ms > {WRITE_P95_TARGET_MS}")
    if figures.get("errors"):
        missed.append(f"{figures['errors']} errors")
    return "yes" if not missed else "no: " + "; ".join(missed)


def bends(base: dict, bent: dict, top: int = 3) -> list[str]:
    """The endpoints whose p95 grew most from `base` to `bent`, as 'name p95 a -> b ms'."""
    grown = []
    for name, figures in bent["endpoints"].items():
        before = base["endpoints"].get(name, {}).get("p95_ms")
        after = figures.get("p95_ms")
        if before and after:
            grown.append((after / before, name, before, after))
    grown.sort(reverse=True)
    return [f"{name} p95 {a} -> {b} ms (x{r:.1f})" for r, name, a, b in grown[:top]]


def machine_facts() -> dict[str, str | int]:
    """CPU model and count as lscpu says them, and the memory."""
    from bench.__main__ import cpu_model, total_memory

    facts: dict[str, str | int] = {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count() or 0,
        "memory": total_memory(),
    }
    lscpu = shutil.which("lscpu")
    if lscpu:
        out = subprocess.run([lscpu], capture_output=True, text=True, check=False).stdout  # noqa: S603
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name" and value.strip():
                facts["cpu_model"] = value.strip()
            elif key.strip() == "CPU(s)" and value.strip().isdigit():
                facts["cpu_cores"] = int(value.strip())
    return facts


def _measure(dataset, base_url: str, pids: dict[str, int], clients: int, duration: int) -> dict:
    from bench._load_client import PayrollPool

    pool = PayrollPool([{"slug": c.slug, "periods": c.periods} for c in dataset.payroll])
    first = _one_run(dataset, base_url, pids, pool, clients, duration, seed=1)
    bent = _one_run(dataset, base_url, pids, pool, BEND_CLIENTS, duration, seed=2)
    bent["p95_grew_most"] = bends(first, bent)
    bent["rps_ratio"] = round(bent["rps"] / first["rps"], 2) if first["rps"] else None
    return {
        **first,
        "read_p95_target_ms": READ_P95_TARGET_MS,
        "write_p95_target_ms": WRITE_P95_TARGET_MS,
        "web": f"gunicorn {_web_shape()} (config/gunicorn.py)",
        "think_s": THINK_SECONDS,
        "bend": bent,
        **machine_facts(),
    }


def _web_shape() -> str:
    workers = int(os.environ.get("WEB_CONCURRENCY", WEB_CONCURRENCY))
    threads = int(os.environ.get("WEB_THREADS", WEB_THREADS))
    kind = "gthread" if threads > 1 else "sync"
    return f"{workers} {kind} workers x {threads} threads"
