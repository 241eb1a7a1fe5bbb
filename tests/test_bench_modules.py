"""The payroll and invoicing benchmarks run end to end at a tiny scale and report their figures
(never asserted: no timed tests), and the runner's per-benchmark options and one-section
RESULTS.md update work.

The benchmarks run in this process against the test database (no subprocess, no migrations of
a database of their own), so each takes a few seconds.
"""

import pytest
from django.db import connection

from bench import __main__ as cli
from bench import _django

PAYROLL_KEYS = ("employees", "run_seconds", "peak_rss_mb", "queries")
INVOICING_KEYS = ("approvals_per_s", "rebuild_100k_events_s", "list_p95_ms")


@pytest.fixture
def in_test_database(monkeypatch):
    """bench_database() reuses the test database instead of making its own."""
    monkeypatch.setattr(
        _django, "_active", _django.BenchDatabase(vendor=connection.vendor, version="test")
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_payroll_bench_runs_and_reports(in_test_database, monkeypatch, chunked):
    from bench import payroll

    # Starting Celery worker processes takes longer than this whole test; without them the
    # chunked path runs the same chunk tasks in this process.
    monkeypatch.setattr(payroll, "_worker_environment", lambda log_path: None)
    figures = payroll.run(scale=12, chunked=chunked)
    for key in PAYROLL_KEYS:
        assert figures[key] > 0, key
    assert figures["employees"] == figures["payslips"] == 12
    assert figures["salaried"] + figures["hourly"] == 12 and figures["hourly"] > 0
    assert figures["journal_lines"] >= 3
    assert figures["prior_payslips"] > 0  # year to date from five issued months
    if chunked:
        assert "chunks in this process" in figures["path"]


@pytest.mark.django_db(transaction=True)
def test_invoicing_bench_runs_and_reports(in_test_database, monkeypatch):
    from bench import invoicing

    monkeypatch.setattr(invoicing, "LIST_REQUESTS", 22)  # every kind of request twice
    figures = invoicing.run(scale=30)
    for key in INVOICING_KEYS:
        assert figures[key] > 0, key
    assert figures["approvals"] == 10
    assert figures["rebuild_events"] == 30
    assert figures["list_company_invoices"] == 30
    assert figures["list_requests"] == 22


def test_options_are_checked_per_benchmark(capsys):
    assert cli.build_parser().parse_args(["payroll", "--chunked"]).chunked
    with pytest.raises(SystemExit) as refused:
        cli.main(["invoicing", "--chunked"])
    assert refused.value.code == 2
    assert "invoicing takes no --chunked" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["all", "--chunked"])
    with pytest.raises(SystemExit):
        cli.main(["payroll", "--note", "busy machine"])  # a note goes with --write-results


def _result(name, scale, options=(), figures=None):
    return cli.Result(
        name=name,
        description=f"{name} description",
        scale=scale,
        database=_django.BenchDatabase(vendor="postgresql", version="15"),
        date="2026-11-21T14:50:00+00:00",
        figures=figures or {"run_seconds": 1.5},
        options=tuple(options),
        default_scale=10_000,
    )


def test_one_section_is_replaced_and_the_others_kept():
    host = cli.Machine(cpu="cpu", cores=2, memory="1 GiB", os="linux", python="3.11")
    ledger = cli.Result(
        name="ledger",
        description="ledger description",
        scale=100_000,
        database=_django.BenchDatabase(vendor="postgresql", version="15"),
        date="2026-11-21T12:00:00+00:00",
        figures={"bulk_lines_per_s": 22744},
        default_scale=100_000,
    )
    text = cli.results_markdown([ledger], host, "2026-11-21T12:00:00+00:00")

    text = cli.results_section_replace(text, _result("payroll", 10_000))
    text = cli.results_section_replace(
        text, _result("payroll", 100_000, ["chunked"]), note="others' tests were running"
    )
    text = cli.results_section_replace(
        text, _result("payroll", 10_000, figures={"run_seconds": 7.25})
    )

    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Machine",
        "## ledger",
        "## payroll",
        "## payroll --scale 100000 --chunked",
    ]
    assert "| bulk_lines_per_s | 22744 |" in text  # untouched
    assert "|\n\n## payroll\n" in text and "\n\n## payroll --scale 100000 --chunked\n" in text
    assert "| run_seconds | 7.25 |" in text and "| run_seconds | 1.5 |" in text
    assert "Note: others' tests were running" in text
    assert "python -m bench payroll --scale 100000 --chunked --json" in text
