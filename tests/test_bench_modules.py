"""The payroll, invoicing, banking and integrations benchmarks run end to end at a tiny scale
and report their figures (never asserted: no timed tests), and the runner's per-benchmark
options and one-section RESULTS.md update work.

The benchmarks run in this process against the test database (no subprocess, no migrations of
a database of their own), so each takes a few seconds.
"""

import pytest
from django.db import connection

from bench import __main__ as cli
from bench import _django

PAYROLL_KEYS = ("employees", "run_seconds", "peak_rss_mb", "queries")
INVOICING_KEYS = ("approvals_per_s", "rebuild_100k_events_s", "list_p95_ms")
BANKING_KEYS = ("reconcile_10k_s", "reconcile_100k_s", "report_ms", "camt_import_10k_s")
INTEGRATIONS_KEYS = ("contacts_10k_s", "concurrent_seconds", "pressure_seconds")


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


@pytest.mark.django_db(transaction=True)
def test_banking_bench_runs_and_reports(in_test_database, monkeypatch):
    from bench import banking

    monkeypatch.setattr(banking, "REPORT_WARMUP", 1)
    monkeypatch.setattr(banking, "REPORT_RUNS", 3)
    figures = banking.run(scale=200)
    for key in BANKING_KEYS:
        assert figures[key] > 0, key
    assert figures["camt_lines"] == 20  # scale / 10
    assert figures["camt_reconcile_queued"] == 1  # noted, not sent
    for name, size in (("reconcile_10k", 20), ("reconcile_100k", 200)):
        assert figures[f"{name}_lines"] == figures[f"{name}_transactions"] == size
        assert 0 < figures[f"{name}_accepted"] <= figures[f"{name}_suggested"]
        assert figures[f"{name}_lines_matched"] <= figures[f"{name}_accepted"]
    assert "reference" in figures["reconcile_100k_by_method"]
    assert figures["report_transactions_in_table"] >= 2000  # 10 x scale
    # The May statement clears every booked line but holds three bank charges the books lack
    # (150 + 250 + 75): the variance is theirs, and they are the unmatched lines.
    assert figures["report_variance"] == "-475.00"
    assert figures["report_unmatched_lines"] == 3
    assert figures["cash_position_queries"] > 0 and figures["reconciliation_report_queries"] > 0


@pytest.mark.django_db(transaction=True)
def test_integrations_bench_runs_and_reports(in_test_database, monkeypatch):
    from bench import integrations

    monkeypatch.setattr(integrations, "PRESSURE_REQUESTS", 3)
    figures = integrations.run(scale=250)
    for key in INTEGRATIONS_KEYS:
        assert figures[key] > 0, key
    assert figures["contacts_imported"] == 250
    assert figures["contacts_requests"] == 2  # 200 a page
    assert figures["concurrent_connections"] == 10
    assert figures["concurrent_contacts_per_connection"] == 50  # scale / 5: one page each
    assert figures["concurrent_requests"] == 10
    assert figures["pressure_requests_per_connection"] == 3  # three full re-reads of one page
    assert figures["pressure_connections"] == (1 if connection.vendor == "sqlite" else 10)
    # As the fake servers counted them: each phase's requests of one connection within a minute.
    assert figures["peak_rate_per_min"] == 3
    assert figures["within_limit"] == "yes"
    # The rolling-window log's bounds: Zoho's rate itself a minute, its burst a second.
    assert (figures["window_bound_per_min"], figures["window_bound_per_s"]) == (100, 10)
    assert 1 <= figures["peak_rate_per_s"] <= 10
    # the grants seen client side: a connection's 1 + 3 requests of phases 2 and 3 (same minute)
    assert 3 <= figures["limiter_granted_peak_per_min"] <= 10
    # a fixed number of queries a page: 250 contacts in 2 pages cost far less than one a contact
    assert figures["contacts_queries_per_contact"] < 1


def test_window_max_counts_requests_in_a_sliding_window():
    from bench.integrations import window_max

    stamps = [0.0, 0.5, 1.0, 59.9, 60.0, 60.1, 130.0]
    assert window_max(stamps, 60.0) == 5  # 0.5 to 60.1: 59.6 s (0.0 to 60.0 is a full 60)
    assert window_max(stamps, 1.0) == 3  # 59.9, 60.0, 60.1
    assert window_max([], 60.0) == 0


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
