"""PostgreSQL restarted under API load. gunicorn serves Kontor on a private PostgreSQL cluster
while threads post journal entries; the cluster is stopped (fast shutdown: sessions cut, open
transactions rolled back) and started again.

While it is down every request answers 503 {"code": "service_unavailable"} with Retry-After
(API, the readiness probe, admin pages); nothing is half-written (every entry balanced, one
per idempotency key, as many as the successful answers once the refused ones are retried with
their keys); and the same gunicorn workers serve again afterwards, without a restart
(persistent connections with CONN_HEALTH_CHECKS reconnect).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter

import httpx
import pytest

from tests.faults.conftest import app_env, free_port, listening, wait_for
from tests.faults.seed_books import PASSWORD, SLUG, USERNAME

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ENTRIES = "/api/v1/accounting/journal-entries/"
DATABASE = "kontor_restart"
WRITERS = 3


def entry(key: str, amount: str = "125.50") -> dict:
    return {
        "date": "2025-08-05",
        "memo": f"Cash sale {key}",
        "lines": [
            {"account_code": "1110", "debit": amount},
            {"account_code": "4100", "credit": amount},
        ],
    }


class Load:
    """Writer threads posting entries, each with its own idempotency key, until stopped."""

    def __init__(self, base: str, headers: dict):
        self.base, self.headers = base, headers
        self.results: list[tuple[str, int | str, httpx.Response | None]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(WRITERS)]

    def _write(self, number: int) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            sent = 0
            while not self.stop.is_set():
                key = f"restart-{number}-{sent}"
                sent += 1
                try:
                    response = client.post(
                        ENTRIES, json=entry(key), headers={"Idempotency-Key": key}
                    )
                    outcome = (key, response.status_code, response)
                except httpx.HTTPError as exc:
                    outcome = (key, f"{type(exc).__name__}: {exc}", None)
                with self.lock:
                    self.results.append(outcome)

    def count(self, status) -> int:
        with self.lock:
            return sum(1 for _, code, _ in self.results if code == status)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def gunicorn_workers(pid: int) -> set[int]:
    """The master's child processes (its workers)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found |= {int(child) for child in handle.read().split()}
    return found


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert response.headers["Retry-After"].isdigit()


@pytest.mark.django_db(transaction=True)
def test_postgres_restart_under_api_load(private_postgres, processes):
    pg = private_postgres
    pg.copy_schema_from_test_database(DATABASE)
    env = app_env(
        os.environ.get("REDIS_URL", ""),
        DATABASE_URL=pg.url(DATABASE),
        CONN_MAX_AGE=60,  # persistent connections: they must notice the restart themselves
        HEALTH_SHOW_ERRORS="true",
    )
    seed = processes.start(
        "seed",
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from tests.faults.seed_books import seed; seed()",
        ],
        env,
    )
    assert seed.popen.wait(timeout=120) == 0, seed.output()

    port = free_port()
    server = processes.start(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "-c",
            "config/gunicorn.py",
        ],
        {**env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "WEB_THREADS": "2"},
    )
    wait_for(lambda: listening(port) or not server.alive, timeout=60, what="gunicorn")
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(
        f"{base}/api/v1/auth/token/", json={"username": USERNAME, "password": PASSWORD}, timeout=30
    )
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access']}", "X-Company": SLUG}
    workers = wait_for(
        lambda: len(gunicorn_workers(server.popen.pid)) == 2 and gunicorn_workers(server.popen.pid),
        timeout=30,
        what="two gunicorn workers",
    )

    with Load(base, headers) as load:
        wait_for(lambda: load.count(201) >= 15, timeout=60, what="entries posted before")
        pg.stop()
        wait_for(lambda: load.count(503) >= 3, timeout=30, what="503 answers while it is down")

        probe = httpx.get(f"{base}/health/ready", timeout=30)
        assert probe.status_code == 503
        assert probe.json()["checks"]["database"]["ok"] is False
        # An admin page whose session must be read from the database (handler500's path).
        admin = httpx.get(f"{base}/admin/", cookies={"sessionid": "x" * 32}, timeout=30)
        assert_unavailable(admin)
        assert "unavailable" in admin.text

        before_restart = load.count(201)
        pg.start()
        wait_for(
            lambda: load.count(201) >= before_restart + 15,
            timeout=60,
            what="entries posted after the restart",
        )

    assert server.alive
    assert gunicorn_workers(server.popen.pid) == workers, "a gunicorn worker was replaced"
    assert httpx.get(f"{base}/health/ready", timeout=30).status_code == 200

    statuses = Counter(code for _, code, _ in load.results)
    assert set(statuses) <= {201, 503}, statuses
    refused = [(key, response) for key, code, response in load.results if code == 503]
    for _, response in refused:
        assert_unavailable(response)
        body = response.json()
        assert body["code"] == "service_unavailable"
        assert body["message"]

    # A client retries what was refused, with the same keys: an entry whose commit landed just
    # before the connection broke is replayed (200), the others are posted now (201).
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for key, _ in refused:
            again = client.post(ENTRIES, json=entry(key), headers={"Idempotency-Key": key})
            assert again.status_code in (200, 201), again.text
    keys = {key for key, _, _ in load.results}

    rows = pg.psql(
        DATABASE,
        "SELECT e.idempotency_key, e.total, count(l.id), sum(l.debit), sum(l.credit) "
        "FROM accounting_journalentry e LEFT JOIN accounting_journalline l ON l.entry_id = e.id "
        "GROUP BY e.id ORDER BY e.id",
    ).splitlines()
    posted = [row.split("|") for row in rows]
    assert sorted(key for key, *_ in posted) == sorted(keys), "an entry is missing or doubled"
    for key, total, lines, debit, credit in posted:
        assert (total, lines, debit, credit) == ("125.50", "2", "125.50", "125.50"), key
    orphans = pg.psql(
        DATABASE,
        "SELECT count(*) FROM accounting_journalline l "
        "LEFT JOIN accounting_journalentry e ON e.id = l.entry_id WHERE e.id IS NULL",
    )
    assert orphans == "0"
    print(f"statuses during the restart: {dict(statuses)}; {len(refused)} retried")
