"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans of a Django request, an httpx
call, a psycopg query and a Celery task reach an OTLP/HTTP collector (a tiny http.server here);
without it nothing is installed, nor even imported. Each case runs in a child process: the
tracer provider and the instrumentations are process-wide and must not leak into other tests."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import connection

from core import backups

TRACED = """
import json, os, sys
import httpx
from config.wsgi import application  # telemetry.setup("web"), then the WSGI handler
from django.db import connection
from django.test import Client
from config import telemetry
from config.celery_app import app

assert Client().get("/admin/login/", HTTP_HOST="localhost").status_code == 200
assert httpx.get(sys.argv[1] + "/ping").text == "pong"
with connection.cursor() as cursor:
    cursor.execute("SELECT 1")

@app.task(name="kontor.telemetry_probe")
def probe():
    return 1

assert probe.apply().get() == 1
print(json.dumps({"process": telemetry._installed_for, "flushed": telemetry.force_flush()}))
"""

UNTRACED = """
import json, sys
from config.wsgi import application
from config.celery_app import app
from config import telemetry
print(json.dumps({"setup": telemetry.setup("worker"),
                  "imported": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}))
"""


class Collector(BaseHTTPRequestHandler):
    posts: list[tuple[str, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"pong")

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    Collector.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", Collector.posts
    server.shutdown()
    server.server_close()


def _child_env(tmp_path, **extra) -> dict:
    """The child runs on this test's database: PostgreSQL by URL, or the in-memory SQLite test
    database copied to a file."""
    db = backups.Database.configured()
    if db.vendor == "postgresql":
        env = db.pg_env()
        env["DATABASE_URL"] = db.database_url(db.name)
    else:
        env = dict(os.environ)
        path = tmp_path / "kontor.sqlite3"
        connection.ensure_connection()
        copy = sqlite3.connect(path)
        connection.connection.backup(copy)
        copy.close()
        env["DATABASE_URL"] = f"sqlite:///{path}"
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.update(DJANGO_SETTINGS_MODULE="config.settings.test", KONTOR_VAR_DIR=str(tmp_path))
    env.update(extra)
    return env


def _run(script: str, env: dict, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _spans(posts) -> dict[str, list[str]]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    spans: dict[str, list[str]] = {}
    for path, body in posts:
        assert path == "/v1/traces"
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert resource["service.name"] == "kontor"
            assert resource["kontor.process"] == "web"
            for scope_spans in resource_spans.scope_spans:
                names = spans.setdefault(scope_spans.scope.name, [])
                names += [span.name for span in scope_spans.spans]
    return spans


# SQLite: the in-memory database is copied for the child, which an open transaction would lock;
# PostgreSQL needs no flush afterwards (the child writes nothing).
@pytest.mark.django_db(transaction=connection.vendor == "sqlite")
def test_with_an_endpoint_django_httpx_psycopg_and_celery_spans_arrive_over_otlp(
    tmp_path, collector
):
    url, posts = collector
    env = _child_env(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert _run(TRACED, env, url) == {"process": "web", "flushed": True}

    spans = _spans(posts)
    assert "GET admin/login/" in spans["opentelemetry.instrumentation.django"]
    assert spans["opentelemetry.instrumentation.httpx"] == ["GET"]
    assert any("telemetry_probe" in name for name in spans["opentelemetry.instrumentation.celery"])
    if connection.vendor == "postgresql":
        assert "SELECT" in spans["opentelemetry.instrumentation.psycopg"]


def test_without_an_endpoint_no_provider_is_installed_and_nothing_imported(tmp_path, monkeypatch):
    # The child loads Django, the WSGI handler and Celery but queries nothing: no test database.
    env = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        KONTOR_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    )
    assert _run(UNTRACED, env) == {"setup": False, "imported": []}
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)

    from opentelemetry import trace

    from config import telemetry

    assert telemetry.setup("web") is False
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
