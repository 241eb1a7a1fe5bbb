"""Credential encryption: round trip, several keys, rotation, and clear errors on bad keys."""

import os

import pytest
from cryptography.fernet import Fernet

from accounting.integrations import crypto

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()


def test_round_trip(settings):
    settings.CREDENTIAL_ENCRYPTION_KEY = NEW
    token = crypto.encrypt_json({"client_secret": "xyz", "n": 1})
    assert "xyz" not in token
    assert crypto.decrypt_json(token) == {"client_secret": "xyz", "n": 1}


def test_old_key_still_decrypts_after_a_new_key_is_put_first(settings):
    settings.CREDENTIAL_ENCRYPTION_KEY = OLD
    token = crypto.encrypt_json({"a": "b"})
    settings.CREDENTIAL_ENCRYPTION_KEY = f"{NEW}, {OLD}"
    assert crypto.decrypt_json(token) == {"a": "b"}
    rotated = crypto.rotate_token(token)
    settings.CREDENTIAL_ENCRYPTION_KEY = NEW  # the old key dropped
    assert crypto.decrypt_json(rotated) == {"a": "b"}
    with pytest.raises(crypto.CredentialKeyError):
        crypto.decrypt_json(token)  # not rotated: unreadable without the old key


def test_missing_and_malformed_keys_raise_one_clear_error(settings):
    settings.CREDENTIAL_ENCRYPTION_KEY = ""
    with pytest.raises(crypto.CredentialKeyError, match="is not set"):
        crypto.encrypt_json({})
    settings.CREDENTIAL_ENCRYPTION_KEY = "not-a-key"
    with pytest.raises(crypto.CredentialKeyError, match="malformed") as info:
        crypto.encrypt_json({})
    assert "not-a-key" not in str(info.value)


def test_development_key_is_derived_from_secret_key(settings):
    if not os.environ.get("CREDENTIAL_ENCRYPTION_KEY"):
        assert crypto.development_key(settings.SECRET_KEY) == settings.CREDENTIAL_ENCRYPTION_KEY
    Fernet(crypto.development_key("anything").encode())  # a valid Fernet key


# --- manage.py rotate_credential_keys ---------------------------------------------------------


@pytest.mark.django_db
def test_rotate_command_reencrypts_so_the_old_key_can_be_dropped(settings, tenants):
    from io import StringIO

    from django.core.management import call_command

    from accounting.integrations.models import IntegrationConnection
    from tests.integrations.conftest import connection_make

    settings.CREDENTIAL_ENCRYPTION_KEY = OLD
    first = connection_make(tenants.a, credentials={"api_key": "k-1"})
    second = connection_make(tenants.b, credentials={"api_key": "k-2"})
    connection_make(tenants.a, system="tally", name="Tally", credentials={})
    settings.CREDENTIAL_ENCRYPTION_KEY = f"{NEW},{OLD}"
    out = StringIO()
    call_command("rotate_credential_keys", stdout=out)
    assert out.getvalue().strip() == "Re-encrypted the credentials of 2 connection(s)."
    settings.CREDENTIAL_ENCRYPTION_KEY = NEW  # old key dropped
    assert IntegrationConnection.objects.get(pk=first.pk).credentials == {"api_key": "k-1"}
    assert IntegrationConnection.objects.get(pk=second.pk).credentials == {"api_key": "k-2"}


@pytest.mark.django_db
def test_rotate_command_with_a_bad_key_exits_non_zero_with_one_line(settings, tenants):
    import subprocess
    import sys

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tests.integrations.conftest import connection_make

    settings.CREDENTIAL_ENCRYPTION_KEY = OLD
    connection_make(tenants.a, credentials={"api_key": "k-1"})
    settings.CREDENTIAL_ENCRYPTION_KEY = NEW  # does not open the stored token
    with pytest.raises(CommandError, match="cannot be decrypted") as info:
        call_command("rotate_credential_keys")
    assert info.value.returncode == 1
    # As a process: status 1 and a single line on stderr, naming no key.
    env = {**os.environ, "CREDENTIAL_ENCRYPTION_KEY": "not-a-key"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "rotate_credential_keys"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "malformed" in lines[0] and "not-a-key" not in lines[0]
