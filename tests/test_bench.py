"""The benchmark runner works end to end (its figures are never asserted: no timed tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# Tiny scales: the ledger benchmark skips its django-hordak comparison below scale 5,000.
FIGURES = {
    "foundation": (3, ("audit_writes_per_s", "audit_list_p95_ms", "ready_p95_ms", "peak_rss_mb")),
    "ledger": (
        200,
        (
            "bulk_lines_per_s",
            "post_one_median_ms",
            "trial_balance_ms",
            "balance_sheet_ms",
            "peak_rss_mb",
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_bench_prints_one_json_object(name):
    scale, keys = FIGURES[name]
    result = _bench(name, "--scale", str(scale), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["benchmark"] == name and figures["scale"] == scale
    for key in keys:
        assert figures[key] > 0
    if name == "ledger":
        assert figures["hordak_api_ratio"] is None and figures["hordak_note"]


def test_bench_lists_and_refuses_unknown_names():
    listed = _bench("list").stdout
    assert "foundation" in listed and "ledger" in listed
    assert _bench("nosuch").returncode == 2
