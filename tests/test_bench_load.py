"""The load benchmark's figures from its records (no server, no timing asserted), its refusal
of SQLite, and the runner's --clients / --duration options and nested figures in RESULTS.md.

The benchmark itself starts gunicorn and a Celery worker on PostgreSQL and runs for minutes:
`python -m bench load --clients 2 --duration 5 --json` is the smoke run by hand.
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench import __main__ as cli
from bench import _django, _load_client, load
from bench._load_client import PayrollPool, Record

REQUIRED_KEYS = ("clients", "read_p95_ms", "write_p95_ms", "requests", "errors")
KINDS = {name: kind for name, kind, _weight, _action in _load_client.MIX}


def _records() -> list[Record]:
    records = [Record("invoices_list", "read", n * 0.1, 10.0 + n, 200, True) for n in range(20)]
    records += [Record("invoice_draft", "write", n * 0.1, 50.0 + n, 201, True) for n in range(10)]
    records.append(Record("journal_entry", "write", 1.0, 400.0, 500, False))
    records.append(Record("payroll_run_status", "poll", 2.0, 5.0, 200, True))
    return records


def test_summary_has_the_required_keys_and_every_endpoint():
    figures = load.summarize(_records(), clients=3, wall=2.0, kinds=KINDS)
    for key in REQUIRED_KEYS:
        assert key in figures, key
    assert figures["clients"] == 3
    assert figures["requests"] == 32 and figures["errors"] == 1
    assert figures["rps"] == 16.0
    assert (figures["read_requests"], figures["write_requests"]) == (20, 11)  # polls in neither
    assert figures["read_p50_ms"] <= figures["read_p95_ms"] <= figures["read_p99_ms"]
    assert figures["write_p99_ms"] == 400.0  # the failed write counts in the latencies too
    endpoints = figures["endpoints"]
    assert list(endpoints)[: len(KINDS)] == list(KINDS)  # the mix's order, picked or not
    assert endpoints["journal_entry"]["errors"] == 1
    assert endpoints["trial_balance"] == {
        "kind": "read",
        "requests": 0,
        "errors": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
    }
    assert endpoints["payroll_run_status"]["requests"] == 1


def test_targets_and_where_it_bends():
    figures = load.summarize(_records(), clients=3, wall=2.0, kinds=KINDS)
    verdict = load.targets_met(figures)
    assert verdict.startswith("no: ") and "writes p95" in verdict and "1 errors" in verdict
    clean = {"read_p95_ms": 80.0, "write_p95_ms": 200.0, "errors": 0}
    assert load.targets_met(clean) == "yes"

    factor = {"invoices_list": 3, "payroll_run_status": 2}
    slower = [Record(r.name, r.kind, r.started, r.ms * factor.get(r.name, 1), 200, True)
              for r in _records()]  # fmt: skip
    bent = load.summarize(slower, clients=50, wall=2.0, kinds=KINDS)
    grew = load.bends(figures, bent, top=1)
    assert len(grew) == 1 and grew[0].startswith("invoices_list p95")


def test_payroll_pool_pays_periods_in_order_one_at_a_time():
    pool = PayrollPool([{"slug": "a", "periods": [1, 2]}, {"slug": "b", "periods": [7]}])
    rng = random.Random(0)
    first = pool.take(rng)
    second = pool.take(rng)
    assert {first, second} == {("a", 1), ("b", 7)}
    assert pool.take(rng) is None  # both busy
    pool.done("a", paid=True)
    assert pool.take(rng) == ("a", 2)
    pool.done("b", paid=False)  # a failed run: the company is left alone
    pool.done("a", paid=True)
    assert pool.take(rng) is None


def test_sqlite_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/kontor.sqlite3")
    with pytest.raises(RuntimeError, match="needs PostgreSQL") as refused:
        load.run(scale=10, clients=1, duration=1)
    assert "\n" not in str(refused.value)


def test_clients_and_duration_reach_run_and_the_section_label():
    args = cli.build_parser().parse_args(["load", "--clients", "5", "--duration", "10"])
    assert (args.clients, args.duration) == (5, 10)
    assert cli.option_arguments(["clients=5", "duration=10", "chunked"]) == {
        "clients": 5,
        "duration": 10,
        "chunked": True,
    }
    result = cli.Result(
        name="load",
        description="load description",
        scale=5_000,
        database=_django.BenchDatabase(vendor="postgresql", version="15"),
        date="2026-11-21T19:00:00+00:00",
        figures={"clients": 5, "bend": {"clients": 50, "p95_grew_most": ["a", "b"]}},
        options=("clients=5",),
        default_scale=5_000,
    )
    assert result.label == "load --clients=5"
    text = "\n".join(cli.result_section(result))
    assert "| bend.clients | 50 |" in text and "| bend.p95_grew_most | a; b |" in text
    assert "python -m bench load --scale 5000 --clients=5 --json" in text


def test_value_options_are_checked_per_benchmark(capsys):
    with pytest.raises(SystemExit) as refused:
        cli.main(["payroll", "--clients", "5"])
    assert refused.value.code == 2
    assert "payroll takes no --clients" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["load", "--duration", "0"])  # at least 1


def test_payroll_runs_accepted_but_never_paid_are_errors():
    figures = load.summarize(_records(), clients=3, wall=2.0, kinds=KINDS, unfinished_runs=2)
    assert figures["errors"] == 3  # the failed journal entry and the two runs
    assert load.targets_met({"read_p95_ms": 1.0, "write_p95_ms": 1.0, "errors": 2}).startswith(
        "no: 2 errors"
    )


def _payroll_session(handler):
    """A Session on one payroll company whose API is `handler` (httpx.MockTransport)."""

    pool = PayrollPool([{"slug": "pay", "periods": [5, 6]}])
    session = _load_client.Session({}, {"pay": "token"}, pool, _load_client.Outcome())
    http = httpx.AsyncClient(base_url="http://bench.test", transport=httpx.MockTransport(handler))
    return session, http


def _run_payroll(session, http):

    async def go():
        async with http:
            await _load_client.payroll_run(session, http, random.Random(0))

    asyncio.run(go())


@pytest.mark.parametrize("answer", ["failed", "running"])
def test_a_payroll_run_that_fails_or_times_out_after_202_is_an_error(monkeypatch, answer):

    monkeypatch.setattr(_load_client, "PAYROLL_POLL_SECONDS", 0)
    monkeypatch.setattr(_load_client, "PAYROLL_TIMEOUT_SECONDS", 0.05)

    def api(request):
        if request.method == "POST":
            assert request.url.path == "/api/v1/payroll/periods/5/run/"
            return httpx.Response(202, json={"id": 9, "status": "running"})
        return httpx.Response(200, json={"id": 9, "status": answer})

    session, http = _payroll_session(api)
    _run_payroll(session, http)
    outcome = session.outcome
    assert all(r.ok for r in outcome.records)  # every answer was 2xx...
    assert (outcome.payroll_unfinished, outcome.payroll_failed) == (1, 1)  # ...yet it failed
    assert outcome.payroll_completed_ms == []
    expected = "failed" if answer == "failed" else "still running after"
    assert outcome.error_samples and expected in outcome.error_samples[0]
    assert session.pool.left["pay"] == []  # the company's later periods are left alone
    figures = load.summarize(outcome.records, clients=1, wall=1.0, kinds=KINDS, unfinished_runs=1)
    assert figures["errors"] == 1


def test_a_paid_run_counts_once_and_a_timeout_or_5xx_is_a_failed_request(monkeypatch):

    monkeypatch.setattr(_load_client, "PAYROLL_POLL_SECONDS", 0)
    polls = iter(["running", "completed"])

    def api(request):
        if request.method == "POST":
            return httpx.Response(202, json={"id": 9, "status": "running"})
        return httpx.Response(200, json={"id": 9, "status": next(polls)})

    session, http = _payroll_session(api)
    _run_payroll(session, http)
    assert len(session.outcome.payroll_completed_ms) == 1
    assert session.outcome.payroll_unfinished == 0 and session.pool.left["pay"] == [6]
    assert [r.kind for r in session.outcome.records] == ["write", "poll", "poll"]

    def broken(request):
        if request.method == "POST":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(503, json={"code": "service_unavailable"})

    session, http = _payroll_session(broken)
    _run_payroll(session, http)
    (record,) = session.outcome.records
    assert (record.status, record.ok) == (0, False)
    assert "ReadTimeout" in session.outcome.error_samples[0]

    async def read():
        async with http2:
            await _load_client.payslips_list(session, http2, random.Random(0))

    session, http2 = _payroll_session(broken)
    asyncio.run(read())
    (record,) = session.outcome.records
    assert (record.kind, record.status, record.ok) == ("read", 503, False)


def test_all_skips_load_on_sqlite_and_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/kontor.sqlite3")
    monkeypatch.setattr(cli, "discover_benchmarks", lambda: {"load": load})
    monkeypatch.setattr(cli, "RESULTS_PATH", tmp_path / "RESULTS.md")
    assert cli.main(["all", "--write-results"]) == 0
    assert "bench: skipping load: the load benchmark needs PostgreSQL" in capsys.readouterr().err
    written = (tmp_path / "RESULTS.md").read_text()
    assert "## load\n" in written and "Not run: the load benchmark needs PostgreSQL" in written
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1/x")
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert "needs Redis" in load.unavailable_reason()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load.unavailable_reason() is None


def test_sigterm_unwinds_the_benchmark_so_its_cleanup_runs():

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(SystemExit) as stopped, load._exit_on_sigterm():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            cleaned.append(True)
    assert stopped.value.code == 128 + signal.SIGTERM and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_server_and_worker_die_with_a_killed_benchmark(tmp_path):
    """_die_with_parent: a child started with it ends when its parent is SIGKILLed."""

    script = (
        "import subprocess, sys, time\n"
        "from bench import load\n"
        "child = subprocess.Popen(['sleep', '300'], preexec_fn=load._die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=load.ROOT, stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def alive() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return False
        return state != "Z"

    for _ in range(100):  # the kernel signals at once; this only waits for the exit
        if not alive():
            break
        time.sleep(0.1)
    try:
        assert not alive()
    finally:
        if alive():
            os.kill(child, signal.SIGKILL)


def test_cleanup_goes_on_when_redis_is_gone(capsys):
    load._drop_queued("redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert "queued tasks left in Redis" in capsys.readouterr().err
