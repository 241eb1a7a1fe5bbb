"""Fast, set-based loading of benchmark data: COPY on PostgreSQL, batched INSERTs elsewhere.

Benchmark data is made here, not through the services being measured: rows go straight into
the tables (every NOT NULL column given, as Django sets no database defaults), so a workload of
hundreds of thousands of rows loads in seconds. The database's constraints and triggers still
check every row.
"""

from __future__ import annotations

import datetime
import decimal
import json
import resource
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager

INSERT_BATCH = 500


def _plain(value, connection):
    """A value as Django stores it on a backend without native types (SQLite): UUIDs as
    32 hex digits, datetimes in UTC without zone, dates and times as ISO text, decimals as
    text."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return connection.ops.adapt_timefield_value(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def table_insert(
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    json_columns: Sequence[str] = (),
) -> int:
    """Load `rows` (tuples in `columns` order) into `table`; returns the number of rows."""
    from django.db import connection

    json_at = [i for i, name in enumerate(columns) if name in json_columns]
    count = 0
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        with connection.cursor() as cursor:
            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    if json_at:
                        row = list(row)
                        for i in json_at:
                            row[i] = Jsonb(row[i])
                    copy.write_row(row)
                    count += 1
        return count
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (constant names)
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    from django.core.serializers.json import DjangoJSONEncoder

    batch: list = []
    with connection.cursor() as cursor:
        for row in rows:
            row = [_plain(value, connection) for value in row]
            for i in json_at:
                row[i] = json.dumps(row[i], cls=DjangoJSONEncoder)
            batch.append(tuple(row))
            if len(batch) >= INSERT_BATCH:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def analyze(*tables: str) -> None:
    """VACUUM ANALYZE after a load, as autovacuum would shortly after: the planner's
    statistics, and the visibility map that index-only scans need (outside a transaction;
    inside one, statistics only)."""
    from django.db import connection

    command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"{command} {table}")


class QueryCounter:
    """Counts the SQL statements sent on the default connection while installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


@contextmanager
def counting_queries():
    from django.db import connection

    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        yield counter


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return peak_rss_mb()


class Timer:
    """Accumulates the wall time spent in wrapped calls, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        timed.__wrapped__ = function
        return timed


def commit_flush_ms(samples: int = 200) -> float | None:
    """Median milliseconds of a one-row INSERT committed on its own: what the disk's flush
    costs every durable transaction on this machine right now (None off PostgreSQL)."""
    from django.db import connection

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    times = []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_commit_probe (x integer)")
        try:
            for _ in range(samples):
                began = time.perf_counter()
                cursor.execute("INSERT INTO bench_commit_probe VALUES (1)")  # autocommit
                times.append((time.perf_counter() - began) * 1000)
        finally:
            cursor.execute("DROP TABLE bench_commit_probe")
    times.sort()
    return round(times[len(times) // 2], 3)
