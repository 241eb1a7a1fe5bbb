"""Secrets never reach the logs: the redaction filter in LOGGING, and the flows that handle
secrets (sign-in, JWT use, failed sign-ins, integration credentials, the integrations HTTP
client) logged at DEBUG through the JSON formatter."""

import io
import json
import logging
import re
import signal

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db_connection
from django.test import Client
from rest_framework.test import APIClient

from accounting.integrations.http import HeaderAuth, HttpClient
from core.security_logging import (
    _SENSITIVE,
    _SENSITIVE_FRAGMENTS,
    REDACTED,
    RedactSecretsFilter,
    redact,
)
from tests.integrations.conftest import connection_make
from tests.integrations.fakes import Request, reply, serve

PASSWORD = "pass-Word-123"  # noqa: S105 - the factories' test password
API_KEY = "ak_live_Zq81LmX0pP2vR7"
CLIENT_SECRET = "cs-9d2f6c1e0b7a4e3f"
REMOTE_TOKEN = "rt-b7d1c9a0e2f34c56"
DB_PASSWORD = "Db-pw-4e1f0a9c"  # noqa: S105


def _json_formatter():
    from django.conf import settings

    spec = dict(settings.LOGGING["formatters"]["json"])
    factory = spec.pop("()")
    spec["fmt"] = spec.pop("format")  # dictConfig's name for it
    module, name = factory.rsplit(".", 1)
    return getattr(__import__(module, fromlist=[name]), name)(**spec)


def _record(msg, *args, exc_info=None, **extra):
    record = logging.LogRecord("kontor.test", logging.INFO, __file__, 1, msg, args, exc_info)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def _through_filter(record) -> str:
    RedactSecretsFilter().filter(record)
    return _json_formatter().format(record)


# --- the filter ------------------------------------------------------------------------------


def test_message_and_args_are_redacted():
    out = _through_filter(
        _record(
            "login %s with password=%s and header %s",
            "alice",
            "hunter2-secret",
            "Authorization: Bearer abc.def-ghi_jkl",
        )
    )
    assert "hunter2-secret" not in out and "abc.def-ghi_jkl" not in out
    assert "alice" in out
    assert json.loads(out)["message"].count(REDACTED) == 2


def test_extra_fields_are_redacted_by_name_and_by_content():
    out = _through_filter(
        _record(
            "calling the remote",
            headers={"Authorization": "Zoho-oauthtoken 1000.abcdef123456", "Accept": "json"},
            client_secret=CLIENT_SECRET,
            payload={"grant_type": "refresh_token", "refresh_token": REMOTE_TOKEN},
            note=f"api_key={API_KEY}",
        )
    )
    for secret in ("1000.abcdef123456", CLIENT_SECRET, REMOTE_TOKEN, API_KEY):
        assert secret not in out
    logged = json.loads(out)
    assert logged["headers"]["Accept"] == "json"
    assert logged["payload"]["grant_type"] == "refresh_token"


@pytest.mark.parametrize(
    "text, secret",
    [
        ('{"password": "two words"}', "two words"),
        ("{'client_secret': 'x1y2z3w4'}", "x1y2z3w4"),
        ("token: 0123456789abcdef", "0123456789abcdef"),
        ("connecting to postgres://kontor:Db-pw-4e1f0a9c@db:5432/kontor", DB_PASSWORD),
        ("broker redis://:r3d1s-pw-77@cache:6379/1", "r3d1s-pw-77"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJlLXBhcnQ", "eyJ1c2VyX2lkIjoxfQ"),
        (f"key {Fernet.generate_key().decode()} in use", "FERNET"),
        (f"stored {Fernet(Fernet.generate_key()).encrypt(b'x').decode()}", "gAAAAA"),
        ("Authorization: Basic YWxpY2U6aHVudGVyMg==", "YWxpY2U6aHVudGVyMg=="),
        ("sessionid=9f8e7d6c5b4a; csrftoken=abcdef0123", "9f8e7d6c5b4a"),
    ],
)
def test_patterns(text, secret):
    out = redact(text, [])
    if secret == "FERNET":
        assert text.split()[1] not in out
    else:
        assert secret not in out
    assert REDACTED in out


def test_setting_values_are_redacted_wherever_they_appear(settings):
    settings.DATABASE_URL = f"postgres://kontor:{DB_PASSWORD}@db.internal/kontor"
    settings.INTEGRATIONS_OAUTH = {"xero": {"client_secret": CLIENT_SECRET}}
    settings.METRICS_TOKEN = "metrics-tok-5b0c9e"
    fernet_key = Fernet.generate_key().decode()
    settings.CREDENTIAL_ENCRYPTION_KEY = f"{fernet_key},{Fernet.generate_key().decode()}"
    out = _through_filter(
        _record(
            "loaded %s %s %s %s %s",
            DB_PASSWORD,
            CLIENT_SECRET,
            "metrics-tok-5b0c9e",
            fernet_key,
            settings.SECRET_KEY,
        )
    )
    for secret in (DB_PASSWORD, CLIENT_SECRET, "metrics-tok-5b0c9e", fernet_key):
        assert secret not in out
    assert settings.SECRET_KEY not in out


def test_tracebacks_are_redacted():
    try:
        raise RuntimeError(f"could not connect with password={DB_PASSWORD}")
    except RuntimeError:
        import sys

        record = _record("crashed", exc_info=sys.exc_info())
    out = _through_filter(record)
    assert DB_PASSWORD not in out
    assert "RuntimeError" in json.loads(out)["exc_info"]


def test_every_sensitive_name_has_a_fragment_the_cheap_pre_check_looks_for():
    for name in re.findall(r"[a-z_\-\[\]?():]+", _SENSITIVE):
        expanded = re.sub(r"\[_-\]\?|\(\?:or\)\?|\(\?:id\)\?|s\?$", "", name)
        assert any(fragment in expanded for fragment in _SENSITIVE_FRAGMENTS), name
    assert REDACTED in redact("X-API-KEY: k-0123456789", [])


@pytest.mark.parametrize(
    "blob",
    [
        "x" * 200_000,
        "token" + "a" * 200_000,
        "a." * 100_000,
        "tokentoken" * 20_000 + "=",
        "http://" + "a" * 200_000,
        "eyJ" + "a" * 200_000,
    ],
    ids=["run", "name-then-run", "dotted", "repeated-name", "url", "jwt-prefix"],
)
def test_a_huge_blob_is_redacted_in_linear_time(blob):
    """The first patterns backtracked through long runs of word characters (a 20 KB blob took
    minutes, blocking the logging thread). Bounded by an alarm far above the linear cost."""
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(20)
    try:
        out = redact(blob + " password=hunter2-x", [])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "hunter2-x" not in out
    assert out.endswith(REDACTED)


def _too_slow(signum, frame):
    raise TimeoutError("redact() backtracked")


class _Unprintable:
    def __str__(self):
        raise RuntimeError(f"boom with password={DB_PASSWORD}")


def test_the_filter_never_raises_and_withholds_what_it_could_not_redact():
    record = _record("payload %s", "token=abc123456", thing=_Unprintable(), note="x")
    assert RedactSecretsFilter().filter(record) is True
    out = _json_formatter().format(record)
    assert DB_PASSWORD not in out and "abc123456" not in out
    assert "log record not redacted: RuntimeError" in json.loads(out)["message"]
    assert not hasattr(record, "thing")


def test_secret_settings_are_read_again_after_a_setting_changes(settings):
    assert redact("value Metrics-9f8e7d6c") == "value Metrics-9f8e7d6c"
    settings.METRICS_TOKEN = "Metrics-9f8e7d6c"
    assert redact("value Metrics-9f8e7d6c") == f"value {REDACTED}"


def test_the_filter_is_installed_on_every_handler(settings):
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_secrets" in handler.get("filters", []), name
    root_filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert any(isinstance(f, RedactSecretsFilter) for f in root_filters)


# --- real flows at DEBUG ---------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog):
    """Everything logged during the test, at DEBUG (SQL with its parameters included), written
    with the JSON formatter through the filters of the configured console handler (a copy of
    the handler on its own stream, first on the root logger), plus caplog's text."""
    root = logging.getLogger()
    console = next(
        h for h in root.handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    )
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.filters = list(console.filters)
    capture.setFormatter(_json_formatter())
    root.handlers.insert(0, capture)
    loggers = ["", "django", "django.db.backends", "django.request", "axes", "httpx", "httpcore"]
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    db_connection.force_debug_cursor = True
    try:
        yield lambda: stream.getvalue() + "\n" + caplog.text
    finally:
        db_connection.force_debug_cursor = False
        root.removeHandler(capture)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _assert_clean(output: str, *secrets: str):
    assert output.strip(), "nothing was logged: the test would prove nothing"
    for secret in secrets:
        assert secret not in output


@pytest.mark.django_db
def test_sign_in_jwt_use_refresh_and_failed_sign_ins_log_no_secret(tenants, all_logs):
    owner = tenants.users_a["owner"]
    owner.is_staff = True
    owner.save()
    api = APIClient()
    assert (
        api.post(
            "/api/v1/auth/token/", {"username": "a-owner", "password": "Wr0ng-guess-1"}
        ).status_code
        == 401
    )
    tokens = api.post("/api/v1/auth/token/", {"username": "a-owner", "password": PASSWORD}).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api.get("/api/v1/me/").status_code == 200
    rotated = api.post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}).json()
    replay = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]})
    assert replay.status_code == 401

    admin = Client()
    admin.post("/admin/login/", {"username": "a-owner", "password": "Wr0ng-guess-2"})
    assert (
        admin.post("/admin/login/", {"username": "a-owner", "password": PASSWORD}).status_code
        == 302
    )

    output = all_logs()
    assert "Unauthorized: /api/v1/auth/token/" in output  # the failure itself is logged
    assert "INSERT INTO" in output  # and the SQL, with its parameters
    _assert_clean(
        output,
        PASSWORD,
        "Wr0ng-guess-1",
        "Wr0ng-guess-2",
        tokens["access"],
        tokens["refresh"],
        rotated["access"],
        rotated["refresh"],
        # the JWT payload and signature on their own
        tokens["refresh"].split(".")[1],
        tokens["access"].split(".")[2],
    )


@pytest.mark.django_db
def test_integration_credentials_log_no_secret(tenants, all_logs, settings, api):
    response = api(tenants.users_a["owner"], tenants.a).post(
        "/api/v1/accounting/integrations/connections/",
        {
            "system": "zoho_books",
            "name": "Zoho India",
            "settings": {"region": "in", "organization_id": "60001"},
            "credentials": {"client_id": "cid-1", "client_secret": CLIENT_SECRET},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    _assert_clean(
        all_logs(),
        CLIENT_SECRET,
        *settings.CREDENTIAL_ENCRYPTION_KEY.split(","),
        settings.SECRET_KEY,
    )


class _EchoServer:
    """A remote that answers 500 with everything it was sent (headers and body)."""

    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        echo = json.dumps({"headers": request.headers, "body": request.body.decode()})
        return reply(start_response, 500, echo, content_type="application/json")


@pytest.mark.django_db
def test_integrations_http_client_logs_no_auth_header_or_token_body(tenants, all_logs):
    from accounting.integrations.connectors.base import SyncFailure

    connection = connection_make(tenants.a)
    with serve(_EchoServer()) as server:
        client = HttpClient(
            connection,
            base_url=server.url,
            auth=HeaderAuth("Authorization", f"Zoho-oauthtoken {API_KEY}"),
            sleep=lambda seconds: None,
            max_attempts=2,
        )
        with pytest.raises(SyncFailure) as failure:
            client.request(
                "POST",
                f"/contacts?refresh_token={REMOTE_TOKEN}",
                json={"refresh_token": REMOTE_TOKEN, "client_secret": CLIENT_SECRET},
                idempotent=True,
            )
        logging.getLogger("accounting.integrations").error("sync failed: %s", failure.value)
    output = all_logs()
    assert "/contacts" in output
    _assert_clean(output, API_KEY, REMOTE_TOKEN, CLIENT_SECRET)
