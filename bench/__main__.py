"""Command line: `python -m bench NAME [--scale N] [--json] [--chunked] [--write-results
[--note TEXT]]`, `list`, `all [--write-results]`.

`all --write-results` rewrites bench/RESULTS.md from every benchmark at its default scale.
`NAME --write-results` runs one benchmark and replaces (or adds) only its own section there,
keyed by its command line (`## payroll`, `## payroll --scale 100000 --chunked`), leaving the
others as they were measured. Options a benchmark declares in its OPTIONS (such as payroll's
`--chunked`) are passed to its `run()`.

Exit status: 0 when every benchmark ran, 1 when one raised, 2 for unknown names or bad arguments.
"""

import argparse
import importlib
import json
import os
import pkgutil
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import bench
from bench._django import DEFAULT_SETTINGS_MODULE, BenchDatabase, bench_database

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
COMMANDS = ("list", "all")
# Flags a benchmark may accept, by declaring them in its OPTIONS; passed to run() as keywords.
BENCHMARK_OPTIONS = {"chunked": "payroll: fan the run out to Celery worker processes"}
# Flags with a whole number, declared the same way; an option is then "name=value".
BENCHMARK_VALUE_OPTIONS = {
    "clients": "load: concurrent clients of the first run (the bend run has 50)",
    "duration": "load: seconds each run is measured",
}
# The variables that decide which servers a benchmark runs against, in reproduce commands.
ENVIRONMENT_VARIABLES = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")
METADATA_KEYS = ("benchmark", "scale", "database", "database_version", "date", "machine")

Figures = dict[str, float | int | str]


class BenchmarkLoadError(Exception):
    pass


@dataclass(frozen=True)
class Result:
    name: str
    description: str
    scale: int
    database: BenchDatabase
    date: str
    figures: Figures
    options: tuple[str, ...] = ()
    default_scale: int | None = None
    code: str = ""  # ", code at <commit>[ + uncommitted changes]" when the run started

    @property
    def label(self) -> str:
        """The section heading in RESULTS.md: the name and the options it was run with."""
        parts = [self.name]
        if self.default_scale is not None and self.scale != self.default_scale:
            parts.append(f"--scale {self.scale}")
        parts += [f"--{option.replace('_', '-')}" for option in self.options]
        return " ".join(parts)


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory: str
    os: str
    python: str

    def summary(self) -> str:
        return f"{self.cpu}, {self.cores} cores, {self.memory} RAM, {self.os}, Python {self.python}"


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------
def module_names() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if not info.ispkg and not info.name.startswith("_") and info.name not in COMMANDS
    )


def load_benchmark(name: str) -> ModuleType | None:
    """The benchmark module `name`, or None when the module is not a benchmark."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except Exception as exc:
        raise BenchmarkLoadError(f"cannot import bench.{name}: {one_line(exc)}") from exc
    return module if callable(getattr(module, "run", None)) else None


def discover_benchmarks() -> dict[str, ModuleType]:
    found = {name: load_benchmark(name) for name in module_names()}
    return {name: module for name, module in found.items() if module is not None}


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_benchmark(name: str, module: ModuleType, scale: int, options: Sequence[str] = ()) -> Result:
    date = now_iso()
    code = code_version()
    # stdout carries the report only; anything a benchmark or the project prints goes to stderr.
    with redirect_stdout(sys.stderr), bench_database() as database:
        figures = module.run(scale=scale, **option_arguments(options))
    clashes = sorted(set(figures) & set(METADATA_KEYS))
    if clashes:
        raise ValueError(f"figure names clash with report fields: {', '.join(clashes)}")
    return Result(
        name=name,
        description=module.DESCRIPTION,
        scale=scale,
        database=database,
        date=date,
        figures=figures,
        options=tuple(options),
        default_scale=getattr(module, "DEFAULT_SCALE", None),
        code=code,
    )


def option_arguments(options: Sequence[str]) -> dict[str, bool | int]:
    """run()'s keywords: True for a flag, the number of a "name=value" option."""
    arguments: dict[str, bool | int] = {}
    for option in options:
        name, _, value = option.partition("=")
        arguments[name] = int(value) if value else True
    return arguments


def figure_rows(figures: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(name, value) for the results table: nested figures as `outer.inner`."""
    rows: list[tuple[str, object]] = []
    for name, value in figures.items():
        if isinstance(value, dict):
            rows += figure_rows(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            rows.append((f"{prefix}{name}", "; ".join(str(v) for v in value) or "none"))
        else:
            rows.append((f"{prefix}{name}", value))
    return rows


def one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def report_failure(name: str, exc: BaseException) -> None:
    print(f"bench: {name} failed: {one_line(exc)}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Machine and environment
# ---------------------------------------------------------------------------------------------
def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read_text("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def total_memory() -> str:
    for line in _read_text("/proc/meminfo").splitlines():
        key, _, value = line.partition(":")
        if key == "MemTotal":
            kib = int(value.split()[0])
            return f"{kib / 1024 / 1024:.1f} GiB"
    return "unknown"


def machine() -> Machine:
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count() or 0,
        memory=total_memory(),
        os=platform.platform(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
    )


def mask_url(url: str) -> str:
    """`url` with any password replaced by ***, in the user info and the query string."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    query = parts.query
    if "password" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, "***" if "password" in key.lower() else value) for key, value in pairs],
            safe="*",
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # urlunsplit would drop the empty authority of sqlite:////path
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def reproduce_command(result: Result) -> str:
    assignments = []
    for variable in ENVIRONMENT_VARIABLES:
        value = os.environ.get(variable, "")
        if not value or (variable == "DJANGO_SETTINGS_MODULE" and value == DEFAULT_SETTINGS_MODULE):
            continue
        if variable.endswith("_URL"):
            value = mask_url(value)
        assignments.append(f"{variable}={shlex.quote(value)}")
    flags = "".join(f" --{option.replace('_', '-')}" for option in result.options)
    command = f"python -m bench {result.name} --scale {result.scale}{flags} --json"
    return " ".join([*assignments, command])


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def database_label(database: BenchDatabase) -> str:
    return f"{database.vendor} {database.version}"


def print_human(result: Result) -> None:
    print(result.description)
    print(
        f"({result.name}, scale {result.scale}, {database_label(result.database)}, {result.date})"
    )
    for name, value in result.figures.items():
        print(f"{name}: {value}")


def print_json(result: Result, host: Machine) -> None:
    report = {
        "benchmark": result.name,
        "scale": result.scale,
        "database": result.database.vendor,
        "database_version": result.database.version,
        "date": result.date,
        "machine": host.summary(),
        **result.figures,
    }
    print(json.dumps(report))


def results_markdown(
    results: Sequence[Result],
    host: Machine,
    date: str,
    skipped: Sequence[tuple[str, str, str]] = (),
) -> str:
    """The whole RESULTS.md; `skipped` are (name, description, reason) of benchmarks not run."""
    lines = [
        "# Kontor benchmark results",
        "",
        "Written by `python -m bench all --write-results` (`make bench`), or one section at a "
        "time by `python -m bench NAME [options] --write-results`; rerun them rather than "
        "editing by hand. Each benchmark runs against a throwaway database, created and dropped "
        "for the run.",
        "",
        "## Machine",
        "",
        f"- CPU: {host.cpu}",
        f"- Cores: {host.cores}",
        f"- Memory: {host.memory}",
        f"- OS: {host.os}",
        f"- Python: {host.python}",
        "",
        f"Date: {date}",
        "",
    ]
    if results:
        lines += [f"Database: {database_label(results[0].database)}", ""]
    for result in results:
        lines += result_section(result)
    for name, description, reason in skipped:
        lines += [f"## {name}", "", description, "", f"Not run: {reason}.", ""]
    return "\n".join(lines)


def code_version() -> str:
    """ ", code at <commit>" (and "+ uncommitted changes" when tracked files differ), or ""."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=RESULTS_PATH.parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=RESULTS_PATH.parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if not commit:
        return ""
    # RESULTS.md itself is rewritten by these runs: it is not code.
    dirty = [line for line in dirty.splitlines() if not line.endswith(RESULTS_PATH.name)]
    return f", code at {commit}" + (" + uncommitted changes" if dirty else "")


def result_section(result: Result, note: str = "") -> list[str]:
    lines = [
        f"## {result.label}",
        "",
        result.description,
        "",
        f"Measured: {result.date} on {database_label(result.database)}{result.code}",
        "",
    ]
    if note:
        lines += [f"Note: {note}", ""]
    return [
        *lines,
        "Reproduce:",
        "",
        "```sh",
        reproduce_command(result),
        "```",
        "",
        "| Figure | Value |",
        "| --- | ---: |",
        *(
            f"| {name} | {value} |".replace("\n", " ")
            for name, value in figure_rows(result.figures)
        ),
        "",
    ]


def results_section_replace(text: str, result: Result, note: str = "") -> str:
    """`text` (RESULTS.md) with the section of `result`'s label replaced, or added after the
    last section of the same benchmark (else at the end). Other sections stay as they are."""
    section = result_section(result, note)
    lines = text.rstrip("\n").split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")]
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    heading = f"## {result.label}"
    at = end = None
    for start, stop in bounds:
        if lines[start] == heading:
            at, end = start, stop
            break
    if at is None:
        same = [
            stop
            for start, stop in bounds
            if lines[start] == f"## {result.name}" or lines[start].startswith(f"## {result.name} ")
        ]
        at = end = same[-1] if same else len(lines)
    before = lines[:at]
    if before and before[-1] != "":
        before.append("")  # a blank line between sections
    return "\n".join([*before, *section, *lines[end:]]).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run Kontor benchmarks against a throwaway database.",
    )
    parser.add_argument(
        "target", metavar="NAME", help="a benchmark, 'list' to show them, or 'all' to run every one"
    )
    parser.add_argument(
        "--scale", type=positive_int, help="workload size (default: the benchmark's DEFAULT_SCALE)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of name: value lines"
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help="with 'all': rewrite bench/RESULTS.md; with NAME: replace only its section there",
    )
    parser.add_argument(
        "--note", default="", help="with NAME --write-results: a note printed in the section"
    )
    for option, text in BENCHMARK_OPTIONS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", action="store_true", help=text)
    for option, text in BENCHMARK_VALUE_OPTIONS.items():
        parser.add_argument(f"--{option.replace('_', '-')}", type=positive_int, help=text)
    return parser


def command_list() -> int:
    for name, module in discover_benchmarks().items():
        print(f"{name}: {module.DESCRIPTION} (default scale {module.DEFAULT_SCALE})")
    return 0


def command_run(
    name: str,
    module: ModuleType,
    scale: int | None,
    as_json: bool,
    options: Sequence[str] = (),
    write_results: bool = False,
    note: str = "",
) -> int:
    try:
        result = run_benchmark(name, module, scale or module.DEFAULT_SCALE, options)
    except Exception as exc:
        report_failure(name, exc)
        if write_results:
            print(f"bench: {RESULTS_PATH.name} left unchanged", file=sys.stderr)
        return 1
    if as_json:
        print_json(result, machine())
    else:
        print_human(result)
    if write_results:
        text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else ""
        if not text:
            text = results_markdown([], machine(), result.date)
        RESULTS_PATH.write_text(results_section_replace(text, result, note))
        print(f"bench: wrote the '{result.label}' section of {RESULTS_PATH}", file=sys.stderr)
    return 0


def command_all(write_results: bool) -> int:
    date = now_iso()
    results = []
    skipped: list[tuple[str, str, str]] = []
    failed = False
    for name, module in discover_benchmarks().items():
        # A benchmark that needs servers the environment lacks (load: PostgreSQL and Redis)
        # says so instead of failing the whole run on SQLite.
        reason = getattr(module, "unavailable_reason", lambda: None)()
        if reason:
            print(f"bench: skipping {name}: {reason}", file=sys.stderr)
            skipped.append((name, module.DESCRIPTION, reason))
            continue
        print(f"bench: running {name}", file=sys.stderr)
        try:
            result = run_benchmark(name, module, module.DEFAULT_SCALE)
        except Exception as exc:
            report_failure(name, exc)
            failed = True
            continue
        results.append(result)
        print_human(result)
        print()
    if failed:
        if write_results:
            print(
                f"bench: {RESULTS_PATH.name} left unchanged because a benchmark failed",
                file=sys.stderr,
            )
        return 1
    if write_results:
        RESULTS_PATH.write_text(results_markdown(results, machine(), date, skipped))
        print(f"bench: wrote {RESULTS_PATH}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    target: str = args.target
    if target == "list" and (args.scale or args.json or args.write_results):
        parser.error("'list' takes no options")
    if target == "all" and (args.scale or args.json):
        parser.error(
            "'all' runs every benchmark at its default scale; it takes only --write-results"
        )
    options = [option for option in BENCHMARK_OPTIONS if getattr(args, option)]
    options += [
        f"{option}={getattr(args, option)}"
        for option in BENCHMARK_VALUE_OPTIONS
        if getattr(args, option) is not None
    ]
    if target in COMMANDS and options:
        parser.error(f"'{target}' takes no benchmark options")
    if args.note and (target in COMMANDS or not args.write_results):
        parser.error("--note goes with NAME --write-results")

    try:
        if target == "list":
            return command_list()
        if target == "all":
            return command_all(args.write_results)
        module = load_benchmark(target) if target in module_names() else None
        if module is None:
            parser.error(f"unknown benchmark {target!r}; see 'python -m bench list'")
        accepted = getattr(module, "OPTIONS", ())
        refused = [option for option in options if option.partition("=")[0] not in accepted]
        if refused:
            parser.error(f"{target} takes no --{refused[0].partition('=')[0].replace('_', '-')}")
        return command_run(
            target,
            module,
            args.scale,
            args.json,
            options,
            write_results=args.write_results,
            note=args.note,
        )
    except BenchmarkLoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
