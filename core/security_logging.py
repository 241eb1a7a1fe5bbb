"""A logging filter that takes secrets out of log records before any handler writes them.

Installed on every handler in LOGGING. It rewrites the record in place (the message with its
args merged in, every `extra` attribute, the formatted traceback), so each handler after it
sees the redacted record. What it removes:

- the values of settings that are secrets (SECRET_KEY, CREDENTIAL_ENCRYPTION_KEY's Fernet keys,
  the OAuth client secrets, METRICS_TOKEN, the passwords in DATABASE_URL, REDIS_URL, the broker
  URL and EMAIL settings, the S3 secret keys), wherever they appear;
- "Bearer/Basic/Token <credential>" (Authorization headers) and JSON Web Tokens;
- Fernet keys and Fernet tokens (encrypted credentials);
- the password of any URL (scheme://user:password@host);
- the value after a sensitive name (password, passwd, pwd, secret, token, api_key, apikey,
  authorization, credential(s), cookie, session, private_key, signature) in key=value,
  key: value and "key": "value" forms, and whole values of `extra` keys with such names.

No library does this for arbitrary records (python-json-logger and Django's
SafeExceptionReporterFilter cover only their own output), hence the regexes here.

It runs on every record (SQL debug logging included), so it must stay cheap and linear: each
pattern starts only where a word (or URL scheme) starts and never backtracks through a long run
of word characters (a 20 KB base64 blob took minutes with the first patterns), patterns run
only when a literal they need is present, and the secrets from settings are read once (again
after a setting changes). It never raises: a record it cannot redact is logged as a notice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from functools import cache
from urllib.parse import urlsplit

REDACTED = "[REDACTED]"

_SENSITIVE = (
    r"passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|authorization|credentials?|cookie|"
    r"session(?:id)?|private[_-]?key|signature|fernet"
)
# Authorization schemes: "Authorization: Bearer x" keeps its scheme, loses the credential.
_SCHEMES = r"(?:Bearer|Basic|Token|Digest|Zoho-oauthtoken)"
_SENSITIVE_NAME = re.compile(rf"(?i)({_SENSITIVE})")
# Every sensitive name contains one of these (casefolded): a few substring tests in C are much
# cheaper than the case-insensitive alternation at every position of a text that has none.
_SENSITIVE_FRAGMENTS = (
    "pass", "pwd", "secret", "token", "key", "authoriz", "credential", "cookie", "session",
    "signature", "fernet",
)  # fmt: skip
# A sensitive name, then : or =, then a quoted or bare value. The name is a whole run of word
# characters (starting where one starts, taken possessively) that contains a sensitive word.
_PAIR = re.compile(
    rf"""(?ix)
    (?P<key>(?<![\w.-])["']?(?=[\w.-]*?(?:{_SENSITIVE}))[\w.-]*+["']?\s*[:=]\s*)
    (?:(?P<quote>["'])(?P<quoted>.*?)(?P=quote)|(?!{_SCHEMES}\s)(?P<bare>[^\s"',&;}}\]]+))
    """
)
_AUTH_SCHEME = re.compile(rf"(?i)\b({_SCHEMES})\s+[\w.~+/=-]{{6,}}")
_JWT = re.compile(r"\beyJ[\w-]{5,}+\.[\w-]{5,}+\.[\w-]*+")
_FERNET_TOKEN = re.compile(r"\bgAAAAA[\w-]{20,}+={0,2}")
_FERNET_KEY = re.compile(r"(?<![\w-])[\w-]{43}=(?![\w=-])")
_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*+://[^\s:/@]*+:)([^\s@/]++)(@)")

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "correlation_id", "celery_parent_id", "celery_current_id"}
)


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _known_secrets() -> tuple[str, ...]:
    """Secret values from settings, longest first (so a key is not half-replaced)."""
    from django.conf import settings

    return _secrets_from_settings() if settings.configured else ()


@cache
def _secrets_from_settings() -> tuple[str, ...]:
    from django.conf import settings

    values: list[str] = [
        getattr(settings, "SECRET_KEY", ""),
        getattr(settings, "METRICS_TOKEN", ""),
        getattr(settings, "EMAIL_HOST_PASSWORD", ""),
        *str(getattr(settings, "CREDENTIAL_ENCRYPTION_KEY", "")).split(","),
    ]
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        values.append(_url_password(str(getattr(settings, name, "") or "")))
    for database in getattr(settings, "DATABASES", {}).values():
        values.append(str(database.get("PASSWORD") or ""))
    for provider in getattr(settings, "INTEGRATIONS_OAUTH", {}).values():
        values.append(str(provider.get("client_secret") or ""))
    for storage in getattr(settings, "STORAGES", {}).values():
        values.append(str((storage.get("OPTIONS") or {}).get("secret_key") or ""))
    # Short values ("", "x") would blank out ordinary words.
    values = [str(value or "").strip() for value in values]
    return tuple(sorted({value for value in values if len(value) >= 6}, key=len, reverse=True))


def _forget_secrets(**kwargs) -> None:
    _secrets_from_settings.cache_clear()


def _connect_setting_changed() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_forget_secrets, dispatch_uid="core.security_logging")


_connect_setting_changed()


def _pair(match: re.Match) -> str:
    if match.group("quote"):
        return f"{match.group('key')}{match.group('quote')}{REDACTED}{match.group('quote')}"
    if match.group("bare") == REDACTED:
        return match.group(0)
    return f"{match.group('key')}{REDACTED}"


def redact(text: str, known: Sequence[str] | None = None) -> str:
    """`text` with every secret this module recognises replaced by [REDACTED]."""
    for secret in _known_secrets() if known is None else known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}\3", text)
    text = _AUTH_SCHEME.sub(rf"\1 {REDACTED}", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    if "gAAAAA" in text:
        text = _FERNET_TOKEN.sub(REDACTED, text)
    if "=" in text:
        text = _FERNET_KEY.sub(REDACTED, text)
    folded = text.casefold()
    if any(fragment in folded for fragment in _SENSITIVE_FRAGMENTS):
        text = _PAIR.sub(_pair, text)
    return text


def _redact_value(value, known: Sequence[str], depth: int = 0):
    if depth > 5:
        return value
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"), known)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _SENSITIVE_NAME.search(key)
            else _redact_value(item, known, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set):
        return type(value)(_redact_value(item, known, depth + 1) for item in value)
    return value


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception as error:  # noqa: BLE001 - a filter that raises breaks the caller's log call
            # Nothing of the record is known to be clean: keep where it came from, not what it said.
            record.msg = f"[log record not redacted: {type(error).__name__}; message withheld]"
            record.args = None
            record.exc_info = record.exc_text = record.stack_info = None
            for name in list(vars(record)):
                if name not in _STANDARD_ATTRS and not name.startswith("_"):
                    delattr(record, name)
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        known = _known_secrets()
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact(message, known)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, known)
            # Formatters would otherwise format the live exception again, unredacted.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info, known)
        for name, value in list(vars(record).items()):
            if name in _STANDARD_ATTRS or name.startswith("_"):
                continue
            if _SENSITIVE_NAME.search(name) and value not in (None, ""):
                setattr(record, name, REDACTED)
            elif isinstance(value, str | bytes | Mapping | list | tuple | set):
                setattr(record, name, _redact_value(value, known))
            elif not isinstance(value, int | float | bool | type(None)):
                # Objects (a request) are written as their str(): redact that if it needs it.
                text = str(value)
                redacted = redact(text, known)
                if redacted != text:
                    setattr(record, name, redacted)
