"""`manage.py check --deploy` is clean with the production settings and the required env."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def _check_deploy(**overrides) -> subprocess.CompletedProcess:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "KONTOR_VAR_DIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_READ_DOT_ENV_FILE="false",
        SECRET_KEY="Xq2-" + "k9vT_rW3mZp8LsYb4NcHj7EdGu6AfQ1x" * 2,
        DATABASE_URL="postgres://kontor:not-a-real-password@db.internal:5432/kontor",
        REDIS_URL="redis://redis.internal:6379/0",
        CREDENTIAL_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="kontor.example.com",
        CSRF_TRUSTED_ORIGINS="https://kontor.example.com",
        LOG_LEVEL="WARNING",
    )
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_would_catch_a_weakened_setting():
    """The check above really runs the deploy checks: turning HSTS off makes it fail."""
    result = _check_deploy(SECURE_HSTS_SECONDS="0")
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr
