"""The benchmark runner works end to end (its figures are never asserted: no timed tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_bench_prints_one_json_object():
    result = _bench("foundation", "--scale", "3", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["benchmark"] == "foundation" and figures["scale"] == 3
    for key in ("audit_writes_per_s", "audit_list_p95_ms", "ready_p95_ms", "peak_rss_mb"):
        assert figures[key] > 0


def test_bench_lists_and_refuses_unknown_names():
    assert "foundation" in _bench("list").stdout
    assert _bench("nosuch").returncode == 2
