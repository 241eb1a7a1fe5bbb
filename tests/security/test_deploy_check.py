"""`manage.py check --deploy` with the production settings: clean with nothing silenced, and
really checking (a weakened setting fails it). tests/core/test_settings.py has the basic run."""

import pytest

from tests.core.test_settings import STRONG_KEY, _run_production

PRODUCTION_ENV = {
    "SECRET_KEY": STRONG_KEY,
    "DATABASE_URL": "postgres://kontor:not-a-real-password@db.internal:5432/kontor",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "kontor.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://kontor.example.com",
    "LOG_LEVEL": "WARNING",
}


def _check_deploy(**overrides):
    return _run_production(
        ["check", "--deploy", "--fail-level", "WARNING"], **{**PRODUCTION_ENV, **overrides}
    )


def test_check_deploy_is_clean_and_silences_nothing():
    result = _check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "setting, value, warning",
    [("SECURE_HSTS_SECONDS", "0", "security.W004"), ("SECURE_SSL_REDIRECT", "false", "W008")],
)
def test_check_deploy_would_catch_a_weakened_setting(setting, value, warning):
    result = _check_deploy(**{setting: value})
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr
