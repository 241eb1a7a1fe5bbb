"""The Celery app the payroll benchmark's worker processes run: the project's own app
(config.celery_app, the same tasks and routes) plus signal handlers that report each task's
SQL statement count, duration and the process's peak memory to a JSON-lines file
(BENCH_WORKER_LOG), so the benchmark can add the workers' work to its own figures.

Started by bench/payroll.py as `celery -A bench._payroll_worker worker ...`; not a benchmark.
"""

import json
import os
import resource
import time

from celery.signals import task_postrun, task_prerun, worker_ready

from config.celery_app import app

__all__ = ["app"]

_LOG = os.environ.get("BENCH_WORKER_LOG", "")
_state: dict = {}


def _write(record: dict) -> None:
    if not _LOG:
        return
    record = {"pid": os.getpid(), **record}
    with open(_LOG, "a") as log:
        log.write(json.dumps(record) + "\n")


def _count(execute, sql, params, many, context):
    _state["queries"] = _state.get("queries", 0) + 1
    return execute(sql, params, many, context)


@worker_ready.connect
def _ready(**_kwargs) -> None:
    _write({"event": "ready"})


@task_prerun.connect
def _before(task_id=None, task=None, **_kwargs) -> None:
    from django.db import connection

    _state["queries"] = 0
    _state["started"] = time.perf_counter()
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


@task_postrun.connect
def _after(task_id=None, task=None, args=None, retval=None, state=None, **_kwargs) -> None:
    from django.db import connection

    if _count in connection.execute_wrappers:
        connection.execute_wrappers.remove(_count)
    _write(
        {
            "event": "task",
            "task": getattr(task, "name", ""),
            "args": list(args or ()),
            "state": state,
            "result": retval if isinstance(retval, dict | str | int | None) else repr(retval),
            "queries": _state.get("queries", 0),
            "seconds": round(time.perf_counter() - _state.get("started", time.perf_counter()), 4),
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )
