"""Django for benchmarks: settings, and a throwaway database that is dropped afterwards.

The test settings are the default, so DATABASE_URL and REDIS_URL from the environment decide
between SQLite and PostgreSQL exactly as they do for the test suite. Benchmarks never touch the
developer's database: Django creates its test database (test_<name>, or SQLite in memory) next
to it and drops it when the benchmark ends.
"""

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

DEFAULT_SETTINGS_MODULE = "config.settings.test"


@dataclass(frozen=True)
class BenchDatabase:
    vendor: str
    version: str


_active: BenchDatabase | None = None


def celery_worker_command(app: str, queues: str, name: str) -> list[str]:
    """The command line of one quiet, single-process Celery worker a benchmark starts."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queues,
        "--pool",
        "solo",
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    import django

    django.setup()


def _server_version(connection) -> str:
    if connection.vendor == "sqlite":
        return sqlite3.sqlite_version
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return cursor.fetchone()[0]
    return "unknown"


@contextmanager
def bench_database() -> Iterator[BenchDatabase]:
    """Create a fresh, migrated test database for the block and drop it afterwards.

    Nested use shares the outer database: the CLI opens one around each benchmark to learn the
    server version, and the benchmark's own `with bench_database()` then reuses it.
    """
    global _active
    if _active is not None:
        yield _active
        return

    setup_django()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    try:
        original_name = connection.settings_dict["NAME"]
        if connection.vendor != "sqlite":
            # Not the test suite's test_<name>: a benchmark run beside `make test` (as
            # tests/test_bench.py does) must never drop the suite's database.
            connection.settings_dict["TEST"]["NAME"] = f"bench_{original_name}"
        connection.creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False, keepdb=False
        )
        try:
            _active = BenchDatabase(vendor=connection.vendor, version=_server_version(connection))
            yield _active
        finally:
            _active = None
            connection.creation.destroy_test_db(original_name, verbosity=0, keepdb=False)
    finally:
        teardown_test_environment()
