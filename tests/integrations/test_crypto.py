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
