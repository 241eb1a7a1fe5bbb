"""Tests: SQLite and local memory by default; PostgreSQL and Redis when CI sets their URLs."""

import base64
import hashlib

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="test-only-secret-key-with-enough-length-to-pass-checks")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405
LOGGING["root"]["level"] = env.str("LOG_LEVEL", default="WARNING")  # noqa: F405

# Tests make many requests per user; the throttling test sets the production rate itself.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min"},
}
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
HEALTH_SHOW_ERRORS = True
# Integrations: without a configured key, a development Fernet key derived from SECRET_KEY
# (production has no such fallback and refuses to start without CREDENTIAL_ENCRYPTION_KEY).
CREDENTIAL_ENCRYPTION_KEY = env.str("CREDENTIAL_ENCRYPTION_KEY", default="") or (
    base64.urlsafe_b64encode(
        hashlib.sha256(b"kontor-credentials:" + SECRET_KEY.encode()).digest()
    ).decode()
)
