"""The 503 a request answers when a backing service is away, shown without stopping anything
(the restart tests in this folder show it against real servers): the API's exception handler
and handler500 (errors raised in middleware, admin pages) turn database, Redis and broker
outage errors into 503 service_unavailable with a Retry-After header."""

import sqlite3

import psycopg
import pytest
from django.db import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from django.test import Client
from django_redis.exceptions import ConnectionInterrupted
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis.exceptions import ResponseError

from core.api.views import MeView
from tests.factories import UserFactory


def _redis_refused():
    error = ConnectionInterrupted(connection=None)
    error.__cause__ = ResponseError("WRONGTYPE Operation against a key holding the wrong kind")
    return error


def _me_raising(client, monkeypatch, error):
    """GET /api/v1/me/ with its view raising `error`."""

    def fail(self, request):
        raise error

    monkeypatch.setattr(MeView, "get", fail)
    return client.get("/api/v1/me/")


@pytest.fixture
def client_of(db):
    user = UserFactory(username="outage-user")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("error", "named"),
    [
        (OperationalError("server closed the connection unexpectedly"), "The database"),
        (InterfaceError("connection already closed"), "The database"),
        (ConnectionInterrupted(connection=None), "Redis"),
        (BrokerUnreachable("Error 111 connecting to redis"), "Redis"),
    ],
)
def test_an_api_view_whose_backend_is_away_answers_503(
    client_of, monkeypatch, caplog, error, named
):
    with caplog.at_level("WARNING", logger="core.api.exceptions"):
        response = _me_raising(client_of, monkeypatch, error)
    # The operator's log names the cause the client is not told.
    assert any(
        "answered 503" in r.getMessage() and type(error).__name__ in r.getMessage()
        for r in caplog.records
    )
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["message"].startswith(named)
    assert body["fields"] == {}


def test_an_error_raised_in_middleware_answers_503_through_handler500(client_of, monkeypatch):
    """The session is read by middleware, before any view: handler500's path."""
    from django.contrib.sessions.backends.db import SessionStore

    def fail(self):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(SessionStore, "load", fail)
    api = client_of.get("/api/v1/me/")
    assert api.status_code == 503
    assert api["Retry-After"].isdigit()
    assert api.json()["code"] == "service_unavailable"
    page = client_of.get("/admin/")
    assert page.status_code == 503
    assert page["Retry-After"].isdigit()
    assert b"Service unavailable" in page.content


def _wrapped(cause):
    """A database error as Django raises it: its driver's error as the cause."""
    error = OperationalError(str(cause))
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(psycopg.errors.DeadlockDetected("deadlock detected")),
        _wrapped(psycopg.errors.AdminShutdown("terminating connection")),
        _wrapped(psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")),
        _wrapped(psycopg.OperationalError("connection failed: Connection refused")),
        _wrapped(sqlite3.OperationalError("database is locked")),
    ],
    ids=["deadlock", "shutdown", "lock-timeout", "no-connection", "sqlite-locked"],
)
def test_transient_database_errors_answer_503(client_of, monkeypatch, error):
    response = _me_raising(client_of, monkeypatch, error)
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum")),
        _wrapped(sqlite3.OperationalError("no such table: core_thing")),
        IntegrityError("duplicate key value violates unique constraint"),
        ProgrammingError("column x does not exist"),
        _redis_refused(),
    ],
    ids=["program-limit", "sqlite-no-table", "integrity", "programming", "redis-wrongtype"],
)
def test_errors_of_the_query_itself_answer_500_not_503(client_of, monkeypatch, error):
    """An OperationalError the database raised about the query (not its own state) is a bug
    that a retry does not fix: 500, logged, never a 503 that invites retries."""

    response = _me_raising(client_of, monkeypatch, error)
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert "Retry-After" not in response


def test_other_errors_still_answer_500(client_of, monkeypatch):
    response = _me_raising(client_of, monkeypatch, RuntimeError("a real bug"))
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
