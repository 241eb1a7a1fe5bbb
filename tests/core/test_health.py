import json

import pytest
from django.test import Client

from config.celery_app import app as celery_app

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.django_db
def test_live_and_its_alias():
    for path in ("/health/live", "/health"):
        response = Client().get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_reports_each_check():
    for path in ("/health/ready", "/ready"):
        response = Client().get(path)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["status"] == "ok"
        assert {name: check["ok"] for name, check in body["checks"].items()} == {
            "database": True,
            "cache": True,
            "broker": True,
        }


@pytest.mark.django_db
def test_ready_answers_503_when_the_cache_is_unreachable(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    response = Client().get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["cache"]["ok"] is False
    assert "ConnectionError" in body["checks"]["cache"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_ready_answers_503_when_the_broker_is_unreachable(monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", UNREACHABLE_REDIS)
    response = Client().get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] is False
    assert checks["database"]["ok"] is True and checks["cache"]["ok"] is True


@pytest.mark.django_db
def test_request_id_is_returned_and_a_clients_uuid_is_kept():
    response = Client().get("/health/live")
    assert len(response.headers["X-Request-ID"]) == 32
    mine = "0f8fad5b-d9cb-469f-a165-70867728950e"
    echoed = Client().get("/health/live", HTTP_X_REQUEST_ID=mine).headers["X-Request-ID"]
    assert echoed.replace("-", "") == mine.replace("-", "")
    # Not a UUID (could carry anything into logs): replaced by a fresh id.
    assert (
        Client().get("/health/live", HTTP_X_REQUEST_ID="x\nforged").headers["X-Request-ID"]
        != "x\nforged"
    )


@pytest.mark.django_db
def test_json_logs_carry_the_request_id(capsys, settings, monkeypatch):
    """A log line written while a request is served names that request's id."""
    from logging.config import dictConfig

    config = json.loads(json.dumps(settings.LOGGING))
    config["handlers"]["console"]["formatter"] = "json"
    config["root"]["level"] = "INFO"
    dictConfig(config)
    # Make the readiness check fail so the view logs a warning while serving the request.
    monkeypatch.setattr(celery_app.conf, "broker_url", UNREACHABLE_REDIS)
    rid = "5b2c8e5a0d3f4c7e9a1b2c3d4e5f6a7b"
    try:
        Client().get("/health/ready", HTTP_X_REQUEST_ID=rid)
    finally:
        dictConfig(settings.LOGGING)
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    warning = next(line for line in lines if "readiness check broker failed" in line["message"])
    assert warning["request_id"] == rid
    assert warning["level"] == "WARNING"
    assert warning["logger"] == "core.health"
    assert "time" in warning


@pytest.mark.django_db
def test_metrics_for_prometheus(settings):
    Client().get("/health/live")
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content

    settings.METRICS_TOKEN = "s3cret-token"
    assert Client().get("/metrics").status_code == 401
    authorised = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert authorised.status_code == 200


@pytest.mark.django_db
def test_cors_preflight_allows_the_company_header(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = Client().options(
        "/api/v1/companies/",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, x-company",
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-company" in response.headers["Access-Control-Allow-Headers"]
    other = Client().options(
        "/api/v1/companies/",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert "Access-Control-Allow-Origin" not in other.headers


@pytest.mark.django_db
def test_probes_work_by_pod_ip_while_pages_still_check_the_host(settings):
    settings.ALLOWED_HOSTS = ["books.example.com"]
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert Client().get(path, HTTP_HOST="10.1.2.3:8000").status_code == 200, path
    assert Client().get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400
    assert Client().get("/admin/login/", HTTP_HOST="books.example.com").status_code == 200


@pytest.mark.django_db
def test_readiness_names_no_internal_hosts_unless_asked(settings, monkeypatch):
    settings.HEALTH_SHOW_ERRORS = False
    monkeypatch.setattr(celery_app.conf, "broker_url", UNREACHABLE_REDIS)
    response = Client().get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {
        "ok": False,
        "ms": response.json()["checks"]["broker"]["ms"],
    }
    assert b"127.0.0.1" not in response.content


@pytest.mark.django_db
def test_metrics_without_a_token_are_for_the_internal_network_only():
    assert Client(REMOTE_ADDR="10.0.0.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="8.8.4.4").get("/metrics").status_code == 403
    relayed = Client(REMOTE_ADDR="10.0.0.7").get("/metrics", HTTP_X_FORWARDED_FOR="8.8.4.4")
    assert relayed.status_code == 403


def test_celery_uses_its_own_redis_database(monkeypatch):
    import importlib

    import config.settings.base as base

    monkeypatch.setenv("REDIS_URL", "redis://:pw@cache.internal:6379/4")
    try:
        reloaded = importlib.reload(base)
        assert reloaded.CACHES["default"]["LOCATION"] == "redis://:pw@cache.internal:6379/4"
        assert reloaded.CELERY_BROKER_URL == "redis://:pw@cache.internal:6379/5"
        assert reloaded.CELERY_RESULT_BACKEND == "redis://:pw@cache.internal:6379/5"
    finally:
        monkeypatch.undo()
        importlib.reload(base)
