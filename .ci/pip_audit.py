"""CI: pip-audit over the installed virtualenv, bounded in time.

Exit 1 when pip-audit reports a known vulnerability (each one printed). When the advisory
service cannot be asked (no network, a hang past PIP_AUDIT_TIMEOUT seconds, PyPI's per-version
JSON missing) the step warns and passes, so CI does not fail for the network; with
PIP_AUDIT_STRICT=true it fails then too. PIP_AUDIT names the command (tests use a fake).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def _warn_unaudited(reason: str, strict: bool) -> int:
    print(f"ci: warning: pip-audit could not audit ({reason})")
    if strict:
        print("ci: PIP_AUDIT_STRICT=true: failing")
        return 1
    return 0


def _run(args: list[str], limit: float) -> tuple[int | None, str]:
    """(exit code or None on timeout, stderr). The whole process group is killed on timeout,
    so a child still holding the pipe cannot keep CI waiting."""
    process = subprocess.Popen(  # noqa: S603 - our own command line
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, ""
    return process.returncode, stderr


def main() -> int:
    command = shlex.split(os.environ.get("PIP_AUDIT", ".venv/bin/pip-audit"))
    limit = float(os.environ.get("PIP_AUDIT_TIMEOUT", "300"))
    strict = os.environ.get("PIP_AUDIT_STRICT", "false") == "true"
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "audit.json"
        args = [
            *command,
            "--skip-editable",
            "--progress-spinner",
            "off",
            "--desc",
            "on",
            "--timeout",
            "15",
            "--format",
            "json",
            "--output",
            str(report_path),
            *(["--strict"] if strict else []),
        ]
        code, stderr = _run(args, limit)
        if code is None:
            return _warn_unaudited(f"no answer within {limit:g} s", strict)
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            report = None
    if report is None:
        print(stderr.strip()[-2000:])
        return _warn_unaudited(f"pip-audit exited {code} without a report", strict)
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none"
            description = " ".join(str(vuln.get("description") or "").split())[:300]
            print(
                f"{dependency['name']} {dependency.get('version', '')}: {vuln.get('id')} "
                f"(fixed in {fixes}) {description}"
            )
    if vulnerable:
        count = sum(len(d["vulns"]) for d in vulnerable)
        print(f"ci: pip-audit found {count} known vulnerabilities in {len(vulnerable)} packages")
        return 1
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = len(dependencies) - len(audited)
    print(f"ci: pip-audit: no known vulnerabilities in {len(audited)} packages")
    if skipped:
        print(f"ci: warning: pip-audit had no advisory data for {skipped} packages (not cleared)")
    if code != 0:
        print(stderr.strip()[-2000:])
        return _warn_unaudited(f"pip-audit exited {code}", strict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
