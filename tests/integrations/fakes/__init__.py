"""Fake servers of the external accounting systems, served over real HTTP on loopback.

Each fake is a plain WSGI app (a callable `app(environ, start_response)`) that keeps its state in
memory and speaks the system's own wire format. `serve(app)` runs it on 127.0.0.1 at an ephemeral
port in a daemon thread; `loopback_server` is the same as a pytest factory fixture that stops
every server it started when the test ends:

    from tests.integrations.fakes import loopback_server  # noqa: F401  (fixture)

    def test_x(loopback_server):
        fake = FakeTally()
        server = loopback_server(fake)
        server.url        # "http://127.0.0.1:54321"
        server.port       # 54321

The server is threaded, so a fake that sleeps to provoke a client timeout does not hold up the
next request, and stopping never waits for a sleeping handler (its thread is a daemon).

`Request` and `reply()` are small conveniences for writing a fake; `RequestLog` records what
a fake received so a test can count calls.
"""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class LoopbackServer:
    """A WSGI app served on 127.0.0.1:<ephemeral port> in a daemon thread."""

    def __init__(self, app: WSGIApp):
        self.app = app
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._server = make_server(
            "127.0.0.1", 0, self.app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{type(self.app).__name__}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def serve(app: WSGIApp) -> Iterator[LoopbackServer]:
    server = LoopbackServer(app).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def loopback_server() -> Iterator[Callable[[WSGIApp], LoopbackServer]]:
    """Factory fixture: `loopback_server(app)` starts a server; all are stopped after the test."""
    started: list[LoopbackServer] = []

    def start(app: WSGIApp) -> LoopbackServer:
        server = LoopbackServer(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class Request:
    """The parts of a WSGI request a fake looks at."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @classmethod
    def from_environ(cls, environ: dict) -> Request:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        return cls(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO") or "/",
            query=parse_qs(environ.get("QUERY_STRING", "")),
            headers=headers,
            body=body,
        )

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


def reply(
    start_response: Callable,
    status: int,
    body: bytes | str = b"",
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    """Answer a WSGI request; `status` is the number, the reason phrase is filled in."""
    from http import HTTPStatus

    data = body.encode("utf-8") if isinstance(body, str) else body
    header_list = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    header_list += list((headers or {}).items())
    start_response(f"{status} {HTTPStatus(status).phrase}", header_list)
    return [data]


@dataclass
class RequestLog:
    """What a fake received, in order (thread-safe append)."""

    entries: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, request: Request) -> None:
        with self._lock:
            self.entries.append(request)

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
