"""Encryption of connection credentials at rest (Fernet, via `cryptography`).

`CREDENTIAL_ENCRYPTION_KEY` holds one or more urlsafe-base64 Fernet keys separated by commas,
newest first. The newest encrypts; every key decrypts, so a key can be rotated in by putting it
first, running `manage.py rotate_credential_keys` (re-encrypts every connection with the newest
key), and then dropping the old one. Production refuses to start without the setting
(config/settings/production.py); local and test settings derive a development key from
SECRET_KEY when it is unset.
"""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class CredentialKeyError(ImproperlyConfigured):
    """The configured keys are malformed, or none of them opens a stored token."""


def development_key(secret_key: str) -> str:
    """A stable Fernet key derived from SECRET_KEY, for local and test settings only."""
    digest = hashlib.sha256(b"kontor-credentials:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def configured_keys(value: str | None = None) -> list[str]:
    raw = settings.CREDENTIAL_ENCRYPTION_KEY if value is None else value
    keys = [key.strip() for key in (raw or "").split(",") if key.strip()]
    if not keys:
        raise CredentialKeyError(
            "CREDENTIAL_ENCRYPTION_KEY is not set; it must be one or more Fernet keys "
            "(Fernet.generate_key()), comma-separated, newest first."
        )
    return keys


def fernet(value: str | None = None) -> MultiFernet:
    keys = configured_keys(value)
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        # The message never repeats the key itself.
        raise CredentialKeyError(
            "CREDENTIAL_ENCRYPTION_KEY holds a malformed key: each must be 32 url-safe "
            "base64-encoded bytes (Fernet.generate_key())."
        ) from exc


def encrypt_json(values: dict) -> str:
    data = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    return fernet().encrypt(data).decode()


def decrypt_json(token: str) -> dict:
    try:
        data = fernet().decrypt(token.encode())
    except InvalidToken as exc:
        raise CredentialKeyError(
            "Stored credentials cannot be decrypted with any key in CREDENTIAL_ENCRYPTION_KEY "
            "(was a key dropped before rotate_credential_keys ran?)."
        ) from exc
    return json.loads(data)


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the newest key (MultiFernet.rotate keeps the timestamp)."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialKeyError(
            "A stored token cannot be decrypted with any key in CREDENTIAL_ENCRYPTION_KEY."
        ) from exc
