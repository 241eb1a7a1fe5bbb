"""Production settings fail fast without secrets and pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_KEY = "a" * 43 + "="  # a well-formed Fernet key (32 bytes, url-safe base64)
STRONG_KEY = "k" * 10 + "ontor-production-secret-with-many-distinct-characters-0123456789"


def _run_production(args, **env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CREDENTIAL_ENCRYPTION_KEY")
    }
    env.setdefault("CREDENTIAL_ENCRYPTION_KEY", CREDENTIAL_KEY)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_READ_DOT_ENV_FILE="false",
        **env_overrides,
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _run_production(
        ["check"], DATABASE_URL="postgres://u@localhost/db", REDIS_URL="redis://localhost:6379/0"
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "Kontor refuses to start: SECRET_KEY is not set; it must be a long random string, "
        "e.g. from secrets.token_urlsafe(64)."
    ]


def test_production_refuses_to_start_without_a_database():
    result = _run_production(["check"], SECRET_KEY=STRONG_KEY, REDIS_URL="redis://localhost/0")
    assert result.returncode == 1
    assert "DATABASE_URL is not set" in result.stderr


def test_production_refuses_to_start_without_credential_key():
    result = _run_production(
        ["check"],
        SECRET_KEY=STRONG_KEY,
        DATABASE_URL="postgres://u@localhost/db",
        REDIS_URL="redis://localhost:6379/0",
        CREDENTIAL_ENCRYPTION_KEY="",
    )
    assert result.returncode == 1
    assert "CREDENTIAL_ENCRYPTION_KEY is not set" in result.stderr


def test_production_passes_check_deploy():
    result = _run_production(
        ["check", "--deploy", "--fail-level", "WARNING"],
        SECRET_KEY=STRONG_KEY,
        DATABASE_URL="postgres://kontor@127.0.0.1:5432/kontor",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="books.example.com",
        CORS_ALLOWED_ORIGINS="https://app.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_security_settings():
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
        "s.ALLOWED_HOSTS, s.CORS_ALLOWED_ORIGINS, s.DEBUG)"
    )
    result = _run_production(
        ["shell", "-c", code],
        SECRET_KEY=STRONG_KEY,
        DATABASE_URL="postgres://k@h/k",
        REDIS_URL="redis://h/0",
        ALLOWED_HOSTS="a.example.com,b.example.com",
        CORS_ALLOWED_ORIGINS="https://app.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "True True 31536000 ['a.example.com', 'b.example.com'] ['https://app.example.com'] False"
    )
