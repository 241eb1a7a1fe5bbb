"""Production: secrets and services come from the environment and have no defaults."""

import sys

from .base import *  # noqa: F403
from .base import STORAGES, env

_REQUIRED = {
    "SECRET_KEY": "a long random string, e.g. from secrets.token_urlsafe(64)",
    "DATABASE_URL": "a PostgreSQL URL, postgres://USER:PASSWORD@HOST:5432/NAME",
    "REDIS_URL": "a Redis URL, redis://HOST:6379/0",
    "CREDENTIAL_ENCRYPTION_KEY": "Fernet keys, comma-separated, newest first "
    "(Fernet.generate_key())",
}
_missing = [name for name in _REQUIRED if not env.str(name, default="")]
if _missing:
    name = _missing[0]
    # One clear line and a non-zero exit instead of a traceback.
    sys.stderr.write(f"Kontor refuses to start: {name} is not set; it must be {_REQUIRED[name]}.\n")
    raise SystemExit(1)

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])

# HTTPS everywhere; the proxy in front terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes and scrapers talk plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health(/|$)", r"^ready$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_REFERRER_POLICY = "same-origin"

STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
