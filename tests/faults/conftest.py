"""Fault tests: real Celery workers, a private redis-server and a private PostgreSQL cluster
that the tests may stop and kill. The shared servers (PostgreSQL 5432, Redis 6379) are never
touched beyond the test database.

Every process a test starts runs in its own session and is killed by its process group when
the test ends, before the test database is flushed.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = pathlib.Path(settings.BASE_DIR)
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, *, timeout: float, every: float = 0.2, what: str = "the condition"):
    """Poll until predicate() is truthy; return its value. Fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def test_database_url() -> str:
    """The URL of the database this test session runs on (test_<name>), for subprocesses."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@dataclass
class Process:
    """A subprocess in its own session (so a kill takes its children too), logging to a file."""

    name: str
    argv: list[str]
    env: dict
    log: pathlib.Path
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 (our own argv)
            self.argv,
            cwd=BASE_DIR,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (a worker and its pool children) and reap it."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.signal(signal.SIGKILL)  # leftover children of the group

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@dataclass
class Processes:
    """Starts processes for one test and stops them all at its end."""

    folder: pathlib.Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict) -> Process:
        process = Process(name, argv, env, self.folder / f"{name}.log").start()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """The test is over: no graceful shutdown needed (nor waited for)."""
        for process in reversed(self.started):
            if process.alive:
                process.kill()


@pytest.fixture
def processes(tmp_path, request):
    """Everything a test starts; on failure their logs are printed (pytest shows them)."""
    group = Processes(tmp_path)
    yield group
    group.stop_all()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for process in group.started:
            print(f"----- {process.name} ({process.log}) -----\n{process.output()}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class PrivateRedis:
    """A redis-server of the test's own on a free port, with an append-only file so that a
    stop and a start keep queued messages (as a production Redis with AOF does)."""

    def __init__(self, processes: Processes, folder: pathlib.Path):
        self.processes = processes
        self.folder = folder
        self.port = free_port()
        self.process: Process | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.folder),
        ]
        self.process = self.processes.start(f"redis-{self.port}", argv, dict(os.environ))
        wait_for(lambda: listening(self.port), timeout=20, what=f"redis on {self.port}")
        return self

    def stop(self) -> None:
        """Take the server away (SIGKILL: no goodbye to the clients)."""
        if self.process is not None:
            self.process.kill()
        wait_for(lambda: not listening(self.port), timeout=10, what="redis to go away")


@pytest.fixture
def private_redis(processes, tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    return PrivateRedis(processes, tmp_path / "redis").start()


def app_env(redis_url: str, **extra) -> dict:
    """The environment of a Kontor process on the test database and the given Redis."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CELERY_", "PAYROLL_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_url,
        CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def publish(redis: PrivateRedis, task, *args, **kwargs) -> None:
    """Queue a task on the private Redis the workers consume (the broker is its db 1)."""
    from config.celery_app import app

    with app.connection_for_write(redis.url(1)) as conn:
        task.apply_async(args, kwargs, connection=conn, ignore_result=True)


def start_worker(
    processes: Processes, name: str, env: dict, *, concurrency: int = 2, loglevel: str = "warning"
) -> Process:
    """A real `celery worker` process (prefork) on the payroll and default queues. Returns once
    it is connected and consuming."""
    folder = pathlib.Path(env["FAULTS_DIR"])
    argv = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tests.faults.worker_app",
        "worker",
        "-Q",
        "payroll,default",
        "-c",
        str(concurrency),
        "--pool",
        "prefork",
        "-n",
        f"{name}@%h",
        "-l",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    before = set(folder.glob("ready-*"))
    worker = processes.start(name, argv, env)
    wait_for(
        lambda: set(folder.glob("ready-*")) - before or not worker.alive,
        timeout=60,
        what=f"worker {name} to be ready",
    )
    assert worker.alive, worker.output()
    return worker


@pytest.fixture
def statutory(transactional_db):
    """The shipped payroll reference data (tax tables): a transactional test's flush removed
    what the migration loaded, so load it again (idempotent)."""
    from django.apps import apps

    from payroll.reference_data import reference_data_load

    reference_data_load(apps)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb into a temporary folder, run as the
    `postgres` OS user when the tests run as root), on a free port. Stopped and started at
    will; removed with the test's folder."""

    def __init__(self, folder: pathlib.Path):
        bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            pytest.fail("PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin)")
        self.bin = bins[-1].parent
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.log = folder / "postgres.log"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(  # noqa: S603 (our own argv)
            command, capture_output=True, text=True, timeout=timeout, check=True
        )

    def init(self) -> PrivatePostgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: open sessions are cut, open transactions roll back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def discard(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, database: str, sql: str | None = None, *, stdin=None) -> str:
        argv = [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database]
        argv += ["-tAc", sql] if sql is not None else []
        done = subprocess.run(  # noqa: S603
            argv, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode:
            pytest.fail(f"psql failed ({done.returncode}): {done.stderr[-3000:]}")
        return done.stdout.strip()

    def copy_schema_from_test_database(self, name: str) -> None:
        """The test database's schema (already migrated by pytest) into a new database here:
        seconds, where running every migration again would take minutes."""
        self.psql("postgres", f"CREATE DATABASE {name}")
        # Roles the schema grants to (row-level security's tenant role), as NOLOGIN roles.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolname FROM pg_roles WHERE NOT rolcanlogin AND rolname !~ '^pg_'"
            )
            for (role,) in cursor.fetchall():
                self.psql("postgres", f'CREATE ROLE "{role}" NOLOGIN')
        db = connection.settings_dict
        dump = subprocess.run(  # noqa: S603
            [
                str(self.bin / "pg_dump"),
                "--schema-only",
                "--no-owner",
                "-h",
                db["HOST"] or "127.0.0.1",
                "-p",
                str(db["PORT"] or 5432),
                "-U",
                db["USER"],
                db["NAME"],
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            env={**os.environ, "PGPASSWORD": db["PASSWORD"] or ""},
        ).stdout
        self.psql(name, stdin=dump)


@pytest.fixture
def private_postgres():
    # A folder the postgres user can enter (pytest's tmp folders are private to root).
    folder = pathlib.Path(tempfile.mkdtemp(prefix="kontor-faults-pg-"))
    os.chmod(folder, 0o755)  # noqa: S103
    cluster = PrivatePostgres(folder / "cluster").init()
    cluster.start()
    yield cluster
    cluster.discard()
    shutil.rmtree(folder, ignore_errors=True)
