"""The load benchmark's figures from its records (no server, no timing asserted), its refusal
of SQLite, and the runner's --clients / --duration options and nested figures in RESULTS.md.

The benchmark itself starts gunicorn and a Celery worker on PostgreSQL and runs for minutes:
`python -m bench load --clients 2 --duration 5 --json` is the smoke run by hand.
"""

import random

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
    records.append(Record("payroll_run_status", "read", 2.0, 5.0, 200, True))
    return records


def test_summary_has_the_required_keys_and_every_endpoint():
    figures = load.summarize(_records(), clients=3, wall=2.0, kinds=KINDS)
    for key in REQUIRED_KEYS:
        assert key in figures, key
    assert figures["clients"] == 3
    assert figures["requests"] == 32 and figures["errors"] == 1
    assert figures["rps"] == 16.0
    assert (figures["read_requests"], figures["write_requests"]) == (21, 11)
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
