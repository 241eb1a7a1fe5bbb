"""Settings shared by every environment.

Everything comes from the environment through django-environ. With no environment at all the
project runs on embedded defaults: SQLite, a local-memory cache and a filesystem Celery broker,
so `make run` needs no server. Set DATABASE_URL and REDIS_URL to run on PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from corsheaders.defaults import default_headers as default_cors_headers

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("KONTOR_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
if (BASE_DIR / ".env").is_file() and env.bool("DJANGO_READ_DOT_ENV_FILE", default=True):
    env.read_env(str(BASE_DIR / ".env"))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True

# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "kontor.sqlite3"),
            # web, worker and beat share the file: WAL lets readers run beside one writer,
            # IMMEDIATE takes the write lock up front instead of failing on upgrade.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------------------------
# Cache (also locks and throttles): Redis when configured, else per-process memory
# ---------------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
                # Locks and throttles must fail loudly, never pretend the cache answered.
                "IGNORE_EXCEPTIONS": False,
            },
            "KEY_PREFIX": "kontor",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# ---------------------------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "core.apps.KontorAdminConfig",  # replaces django.contrib.admin with the Kontor site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, no CDN
    "corsheaders",
    "django_celery_beat",
    "django_guid",
    "axes",
    "core.apps.CoreConfig",
    "accounting.apps.AccountingConfig",
    "payroll.apps.PayrollConfig",
    "invoicing.apps.InvoicingConfig",
    "banking.apps.BankingConfig",
    "accounting.integrations.apps.IntegrationsConfig",
]
AUTH_USER_MODEL = "core.User"
# Axes first: it refuses locked-out sign-ins before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_guid.middleware.guid_middleware",
    "core.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.CompanyTimeZoneMiddleware",
    "core.middleware.DomainErrorMiddleware",
    # Turns an admin sign-in refused by axes into the lock-out page (core.security).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ---------------------------------------------------------------------------------------------
# Static files and documents
# ---------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"

# Documents (payslips, invoices, uploaded statements) always go through Django's storage API.
# The filesystem by default; S3-compatible object storage when a bucket is configured.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    DOCUMENT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "location": env.str("AWS_LOCATION", default="documents"),
            "default_acl": None,  # private objects; links are signed
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    DOCUMENT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    }
STORAGES = {
    "default": DOCUMENT_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# ---------------------------------------------------------------------------------------------
# Security defaults (production tightens them)
# ---------------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
# Browser integrators send the company and may send their own request id.
CORS_ALLOW_HEADERS = (*default_cors_headers, "x-company", "x-request-id")
CORS_EXPOSE_HEADERS = ["X-Request-ID"]
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# ---------------------------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Kontor <no-reply@kontor.local>")

# ---------------------------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # JWT first so an anonymous request answers 401 with a WWW-Authenticate challenge.
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.KontorPagination",
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.KontorAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.api.throttling.UserThrottle",
        "core.api.throttling.AnonThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_USER", default="100/min"),
        "anon": env.str("API_THROTTLE_ANON", default="30/min"),
    },
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    # How many proxies in front of Kontor append to X-Forwarded-For. 0 (no proxy) makes the
    # anonymous throttle count the socket address, so a client cannot dodge it with a forged
    # header; behind one load balancer set NUM_PROXIES=1.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # core.security's token serializer signals user_logged_in, which updates last_login.
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
    # simplejwt's serializer, answering 429 locked_out while axes locks the username+address.
    "TOKEN_OBTAIN_SERIALIZER": "core.security.LockoutAwareTokenObtainPairSerializer",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Kontor API",
    "DESCRIPTION": (
        "Finance back office: ledger, payroll, invoicing, banking and integrations. "
        "Every request acts for one company, chosen by the X-Company header (the company's slug) "
        "or the caller's only membership. Errors answer {code, message, fields}."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "core.roles.Role",
        "AccountRoleNameEnum": "accounting.models.AccountRoleName",
        "InvoiceStatusEnum": "invoicing.models.InvoiceStatus",
        "InvoiceKindEnum": "invoicing.models.InvoiceKind",
        "PartyKindEnum": "invoicing.models.PartyKind",
        "VatKindEnum": "invoicing.models.VatKind",
        "PayrollPeriodStatusEnum": "payroll.models.PeriodStatus",
        "PayrollRunStatusEnum": "payroll.models.RunStatus",
        "PayslipStatusEnum": "payroll.models.PayslipStatus",
        "PayPeriodTypeEnum": "payroll.models.PeriodType",
        "TaxpayerCategoryEnum": "payroll.models.TaxpayerCategory",
        "IntegrationSyncStatusEnum": "accounting.integrations.models.SyncStatus",
        "IntegrationEntityEnum": "accounting.integrations.models.Entity",
        "IntegrationSystemEnum": "accounting.integrations.models.System",
        "IntegrationErrorCategoryEnum": "accounting.integrations.models.ErrorCategory",
        "IntegrationResolutionEnum": "accounting.integrations.models.Resolution",
    },
}

# ---------------------------------------------------------------------------------------------
# Celery: JSON only, late acks, time limits. Redis when configured, else a filesystem broker.
# ---------------------------------------------------------------------------------------------
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
if REDIS_URL:
    # Queues and results live in the next Redis database after the cache's, so clearing the
    # cache (FLUSHDB) can never drop queued work.
    _redis = urlsplit(REDIS_URL)
    _cache_db = int(_redis.path.strip("/") or 0)
    _celery_redis = urlunsplit(_redis._replace(path=f"/{(_cache_db + 1) % 16}"))
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_celery_redis)
    CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_celery_redis)
else:
    for _folder in ("broker", "control", "results"):
        (VAR_DIR / "celery" / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
    CELERY_RESULT_BACKEND = env.str(
        "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}"
    )
_broker_folder = str(VAR_DIR / "celery" / "broker")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis: a message not acked within this many seconds is redelivered. It must outlast the
    # longest task (the hard time limit) or a slow task would run twice.
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 30 * 60,
    "socket_connect_timeout": 2,
    # Filesystem transport (embedded default): producer and consumer share one folder.
    "data_folder_in": _broker_folder,
    "data_folder_out": _broker_folder,
    "control_folder": str(VAR_DIR / "celery" / "control"),
    "store_processed": False,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 24 * 60 * 60
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_DEFAULT_QUEUE = "default"
# Later modules add their own queues here (payroll runs on "payroll").
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {
    "payroll.tasks.*": {"queue": "payroll"},
    "accounting.integrations.*": {"queue": "integrations"},
}
DJANGO_CELERY_BEAT_TZ_AWARE = True

# ---------------------------------------------------------------------------------------------
# Observability: request ids, JSON or text logs, Prometheus
# ---------------------------------------------------------------------------------------------
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,  # a client's id is kept if it is a UUID; otherwise a new one is made
    "RETURN_HEADER": True,
    "EXPOSE_HEADER": True,
    "INTEGRATIONS": [],  # the Celery integration is added below
    "UUID_LENGTH": 32,
}
# Tasks queued by a request log under that request's id (and their own id as well).
from django_guid.integrations import CeleryIntegration  # noqa: E402

DJANGO_GUID["INTEGRATIONS"] = [CeleryIntegration(use_django_logging=True, log_parent=True)]
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "django_guid.log_filters.CorrelationId"},
        # Passwords, tokens, Authorization headers, keys and URL passwords become [REDACTED].
        "redact_secrets": {"()": "core.security_logging.RedactSecretsFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "correlation_id": "request_id",
            },
        },
        "text": {
            "format": "%(asctime)s %(levelname)-7s [%(correlation_id)s] %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("json", "text") else "json",
            "filters": ["request_id", "redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django_guid": {"level": "WARNING"},
    },
}
PROMETHEUS_EXPORT_MIGRATIONS = False
# When set, /metrics answers only requests bearing "Authorization: Bearer <token>"; when not,
# only direct requests from loopback or private addresses.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Readiness failures name internal hosts and ports; show them only where that is harmless.
HEALTH_SHOW_ERRORS = env.bool("HEALTH_SHOW_ERRORS", default=False)

# ---------------------------------------------------------------------------------------------
# Kontor
# ---------------------------------------------------------------------------------------------
# seed_demo prints the demo users' passwords only where this is on (local settings).
DEMO_SHOW_CREDENTIALS = False

# ---------------------------------------------------------------------------------------------
# Invoicing
# ---------------------------------------------------------------------------------------------
# Number patterns ({series}, {branch}, {fy} like 2025-26, {seq}); numbers run per company,
# series, branch and fiscal year. Branch codes appear only in the branch pattern.
INVOICING_NUMBER_FORMAT = env.str("INVOICING_NUMBER_FORMAT", default="{series}/{fy}/{seq:06d}")
INVOICING_BRANCH_NUMBER_FORMAT = env.str(
    "INVOICING_BRANCH_NUMBER_FORMAT", default="{series}/{branch}/{fy}/{seq:06d}"
)
INVOICING_SERIES = {"invoice": "INV", "credit_note": "CN", "debit_note": "DN", "bill": "BILL"}
# Overdue invoices get a reminder when marked overdue and again every N days until paid.
INVOICING_REMINDER_EVERY_DAYS = env.int("INVOICING_REMINDER_EVERY_DAYS", default=7)
# Recurring templates approve their invoices when the template says so, or always when on.
INVOICING_RECURRING_AUTO_APPROVE = env.bool("INVOICING_RECURRING_AUTO_APPROVE", default=False)

# ---------------------------------------------------------------------------------------------
# Payroll
# ---------------------------------------------------------------------------------------------
# Periods with more employees than PAYROLL_FAN_OUT_THRESHOLD are split into chunks of
# PAYROLL_CHUNK_SIZE employees that several workers share; smaller ones run in one transaction.
PAYROLL_CHUNK_SIZE = env.int("PAYROLL_CHUNK_SIZE", default=2000)
PAYROLL_FAN_OUT_THRESHOLD = env.int("PAYROLL_FAN_OUT_THRESHOLD", default=10000)
# How long a claim on a period (the Redis lock and the database lease) lasts without progress.
PAYROLL_LOCK_TTL_SECONDS = env.int("PAYROLL_LOCK_TTL_SECONDS", default=CELERY_TASK_TIME_LIMIT + 300)
# When beat looks for due periods (editable afterwards in the admin's periodic tasks).
PAYROLL_AUTO_RUN_CRON = env.str("PAYROLL_AUTO_RUN_CRON", default="0 2 * * *")
PAYROLL_AUTO_RUN_TIME_ZONE = env.str("PAYROLL_AUTO_RUN_TIME_ZONE", default="UTC")
# The first weekday (0 = Monday) of the fixed 168-hour workweek overtime is counted in.
PAYROLL_WORKWEEK_START = env.int("PAYROLL_WORKWEEK_START", default=0)
# A failed run is retried three times after 1x, 2x and 4x this many seconds.
PAYROLL_RETRY_BACKOFF_SECONDS = env.int("PAYROLL_RETRY_BACKOFF_SECONDS", default=60)

# ---------------------------------------------------------------------------------------------
# Integrations
# ---------------------------------------------------------------------------------------------
# The shared HTTP client (one httpx pool per process and system): pool size, keep-alive, and
# timeouts in seconds (connect, and read/write/pool).
ACCOUNTING_POOL_MAX_CONNECTIONS = env.int("ACCOUNTING_POOL_MAX_CONNECTIONS", default=20)
ACCOUNTING_POOL_MAX_KEEPALIVE = env.int("ACCOUNTING_POOL_MAX_KEEPALIVE", default=10)
ACCOUNTING_POOL_TIMEOUT = env.float("ACCOUNTING_POOL_TIMEOUT", default=30.0)
ACCOUNTING_CONNECT_TIMEOUT = env.float("ACCOUNTING_CONNECT_TIMEOUT", default=10.0)
# Retries of 5xx, 429, timeouts and network errors: exponential backoff with full jitter, in
# milliseconds, honouring Retry-After.
RETRY_MAX_ATTEMPTS = env.int("RETRY_MAX_ATTEMPTS", default=5)
RETRY_INITIAL_DELAY = env.int("RETRY_INITIAL_DELAY", default=1000)
RETRY_MAX_DELAY = env.int("RETRY_MAX_DELAY", default=30000)
# Fernet keys for connection credentials, comma-separated, newest first. Required in
# production; local and test settings derive a development key from SECRET_KEY.
CREDENTIAL_ENCRYPTION_KEY = env.str("CREDENTIAL_ENCRYPTION_KEY", default="")
# OAuth2 apps per system (a connection's settings may override the endpoints for tests).
INTEGRATIONS_OAUTH = {
    "zoho_books": {
        "client_id": env.str("ZOHO_CLIENT_ID", default=""),
        "client_secret": env.str("ZOHO_CLIENT_SECRET", default=""),
        # {domain}: zoho.com, zoho.eu, zoho.in, zoho.com.au, zoho.jp, zohocloud.ca, from the
        # connection's settings["region"] (com, eu, in, com.au, jp, ca).
        "authorize_url": env.str(
            "ZOHO_AUTHORIZE_URL", default="https://accounts.{domain}/oauth/v2/auth"
        ),
        "token_url": env.str("ZOHO_TOKEN_URL", default="https://accounts.{domain}/oauth/v2/token"),
        "scope": env.str("ZOHO_SCOPE", default="ZohoBooks.fullaccess.all"),
    },
    "quickbooks": {
        "client_id": env.str("QUICKBOOKS_CLIENT_ID", default=""),
        "client_secret": env.str("QUICKBOOKS_CLIENT_SECRET", default=""),
        "authorize_url": env.str(
            "QUICKBOOKS_AUTHORIZE_URL", default="https://appcenter.intuit.com/connect/oauth2"
        ),
        "token_url": env.str(
            "QUICKBOOKS_TOKEN_URL",
            default="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        ),
        "scope": env.str("QUICKBOOKS_SCOPE", default="com.intuit.quickbooks.accounting"),
    },
    "xero": {
        "client_id": env.str("XERO_CLIENT_ID", default=""),
        "client_secret": env.str("XERO_CLIENT_SECRET", default=""),
        "authorize_url": env.str(
            "XERO_AUTHORIZE_URL", default="https://login.xero.com/identity/connect/authorize"
        ),
        "token_url": env.str("XERO_TOKEN_URL", default="https://identity.xero.com/connect/token"),
        "scope": env.str(
            "XERO_SCOPE",
            default="openid profile email accounting.transactions accounting.contacts "
            "accounting.settings offline_access",
        ),
    },
}
# Where the OAuth provider sends the user back ({system} is filled in); empty: built from the
# request by the connect endpoint.
INTEGRATIONS_OAUTH_REDIRECT_URI = env.str("INTEGRATIONS_OAUTH_REDIRECT_URI", default="")
# Per remote organisation (Xero tenant, QuickBooks realm, Zoho organization; else per
# connection): at most rate_per_minute requests in any 60 seconds, at most burst in any second
# (QuickBooks: 10 per second), and max_concurrent in flight (0 = unlimited).
INTEGRATIONS_RATE_LIMITS = {
    "zoho_books": {"rate_per_minute": 100, "burst": 10, "max_concurrent": 0},
    "quickbooks": {"rate_per_minute": 500, "burst": 10, "max_concurrent": 10},
    "xero": {"rate_per_minute": 60, "burst": 5, "max_concurrent": 5},
    "tally": {"rate_per_minute": 0, "burst": 0, "max_concurrent": 0},
    "busy": {"rate_per_minute": 0, "burst": 0, "max_concurrent": 0},
}
# The limiter's minute is this much longer than the provider's 60 s, so transit jitter between
# our grant and the provider's arrival count cannot tip the provider's minute over its limit.
INTEGRATIONS_RATE_LIMIT_GUARD_MS = env.int("INTEGRATIONS_RATE_LIMIT_GUARD_MS", default=250)
# Webhooks: authentic deliveries per connection, and rejected ones (wrong signature, unknown
# connection) per client address; an address over its rejected allowance gets 429 unchecked.
INTEGRATIONS_WEBHOOK_THROTTLE = env.str("INTEGRATIONS_WEBHOOK_THROTTLE", default="600/min")
INTEGRATIONS_WEBHOOK_REJECTED_THROTTLE = env.str(
    "INTEGRATIONS_WEBHOOK_REJECTED_THROTTLE", default="30/min"
)
# A connection failing this many syncs in a row is disabled and its owners are alerted.
INTEGRATIONS_MAX_CONSECUTIVE_FAILURES = env.int("INTEGRATIONS_MAX_CONSECUTIVE_FAILURES", default=5)
# Sync runs (and their resolved errors) older than these are archived, then deleted.
INTEGRATIONS_ARCHIVE_AFTER_DAYS = env.int("INTEGRATIONS_ARCHIVE_AFTER_DAYS", default=365)
INTEGRATIONS_DELETE_AFTER_DAYS = env.int("INTEGRATIONS_DELETE_AFTER_DAYS", default=730)
# The Busy bridge is reached over HTTPS only; True lets a plain http:// bridge URL through (the
# tests' loopback fake). Never on in production.
BUSY_ALLOW_INSECURE = env.bool("BUSY_ALLOW_INSECURE", default=False)

# --- Banking ---
# Company defaults (a company may override each in its BankingSettings row). Decimal strings:
# money is never a float.
# A reconciliation whose variance (statement − adjusted book balance) exceeds this stays open.
BANKING_RECONCILIATION_THRESHOLD = env.str("BANKING_RECONCILIATION_THRESHOLD", default="1000.00")
# A variance above this raises an alert (email after commit, log line, metric).
BANKING_VARIANCE_ALERT_THRESHOLD = env.str("BANKING_VARIANCE_ALERT_THRESHOLD", default="5000.00")
# Match suggestions at or above this confidence (0..1) are accepted automatically.
BANKING_AUTO_ACCEPT_CONFIDENCE = env.str("BANKING_AUTO_ACCEPT_CONFIDENCE", default="0.95")
# Statement uploads larger than this (bytes) are refused (400 file_too_large) before parsing.
BANKING_MAX_STATEMENT_BYTES = env.int("BANKING_MAX_STATEMENT_BYTES", default=20 * 1024 * 1024)

# --- Row-level security (PostgreSQL; core/rls.py) ---
# While acting for one company (an API request, a task for one company) the connection switches
# to this NOLOGIN role, whose policies show and accept only that company's rows. The database
# user must be able to create it (CREATEROLE) or a DBA creates it and grants it to that user.
RLS_ENABLED = env.bool("RLS_ENABLED", default=True)
RLS_ROLE = env.str("RLS_ROLE", default="kontor_tenant")

# --- Operations ---
# Key rotation: the previous SECRET_KEY(s), comma-separated, still accepted for sessions, password
# reset links and signed values until they age out (JWTs are signed with SECRET_KEY only).
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
# `manage.py backup_database`: where backups go, how many are kept (the newest N, plus any
# younger than BACKUP_KEEP_DAYS when that is set), where pg_dump/pg_restore live (empty: PATH).
BACKUP_DIR = env.str("BACKUP_DIR", default=str(VAR_DIR / "backups"))
BACKUP_KEEP = env.int("BACKUP_KEEP", default=14)
BACKUP_KEEP_DAYS = env.int("BACKUP_KEEP_DAYS", default=0)
BACKUP_PG_BIN_DIR = env.str("BACKUP_PG_BIN_DIR", default="")
# `backup_database --upload` copies backups to this S3-compatible bucket (the same retention
# applies there). Endpoint and credentials fall back to the document storage's AWS_* ones.
BACKUP_S3_BUCKET = env.str("BACKUP_S3_BUCKET", default="")
if BACKUP_S3_BUCKET:
    STORAGES["backups"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BACKUP_S3_BUCKET,
            "endpoint_url": env.str("BACKUP_S3_ENDPOINT_URL", default="")
            or env.str("AWS_S3_ENDPOINT_URL", default="")
            or None,
            "region_name": env.str("BACKUP_S3_REGION_NAME", default="")
            or env.str("AWS_S3_REGION_NAME", default="")
            or None,
            "access_key": env.str("BACKUP_S3_ACCESS_KEY_ID", default="")
            or env.str("AWS_ACCESS_KEY_ID", default="")
            or None,
            "secret_key": env.str("BACKUP_S3_SECRET_ACCESS_KEY", default="")
            or env.str("AWS_SECRET_ACCESS_KEY", default="")
            or None,
            "location": env.str("BACKUP_S3_PREFIX", default="backups"),
            "default_acl": None,
            "file_overwrite": True,  # names carry a timestamp; keep them exactly
        },
    }

# ---------------------------------------------------------------------------------------------
# Login brute-force protection (django-axes): the admin login and POST /api/v1/auth/token/
# ---------------------------------------------------------------------------------------------
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# After this many failed sign-ins for one username from one address, that pair is locked out
# for the cool-off; every further attempt during it (even a right password) starts it again.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failures are counted in the database, shared by every web process and kept across restarts.
# axes.handlers.cache.AxesCacheHandler is the faster choice with REDIS_URL set (never with
# the per-process local-memory cache).
AXES_HANDLER = env.str("AXES_HANDLER", default="axes.handlers.database.AxesDatabaseHandler")
# The client address as the API throttles see it (REMOTE_ADDR, X-Forwarded-For per NUM_PROXIES).
AXES_CLIENT_IP_CALLABLE = "core.security.client_ip"
AXES_LOCKOUT_CALLABLE = "core.security.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
