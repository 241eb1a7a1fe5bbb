"""Development: `make run` on a laptop. Embedded defaults unless DATABASE_URL/REDIS_URL are set."""

import base64
import hashlib

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-local-only-kontor-key-never-use-in-production"
)
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405

# Serve static files straight from the apps while developing; no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

DEMO_SHOW_CREDENTIALS = True
HEALTH_SHOW_ERRORS = True
# Integrations: without a configured key, a development Fernet key derived from SECRET_KEY
# (production has no such fallback and refuses to start without CREDENTIAL_ENCRYPTION_KEY).
CREDENTIAL_ENCRYPTION_KEY = env.str("CREDENTIAL_ENCRYPTION_KEY", default="") or (
    base64.urlsafe_b64encode(
        hashlib.sha256(b"kontor-credentials:" + SECRET_KEY.encode()).digest()
    ).decode()
)
