"""The HTTP client every connector uses: pooled httpx, timeouts, retries, rate limits, auth.

`HttpClient(connection, *, base_url, limiter, auth)` and its one method

    request(method, path, *, params=None, json=None, content=None, data=None, headers=None,
            entity="", idempotent=None, expected=None) -> httpx.Response

- One pooled `httpx.Client` per process and system (pool limits and timeouts from
  ACCOUNTING_POOL_MAX_CONNECTIONS / ACCOUNTING_POOL_MAX_KEEPALIVE / ACCOUNTING_POOL_TIMEOUT /
  ACCOUNTING_CONNECT_TIMEOUT). `path` is joined to `base_url`, or used as is when absolute.
- Before each attempt: a token from the connection's RateLimiter, then a concurrency slot.
- Retries with exponential backoff and full jitter: attempt n waits uniform(0, min(
  RETRY_MAX_DELAY, RETRY_INITIAL_DELAY * 2**(n-1))) ms, up to RETRY_MAX_ATTEMPTS attempts. A
  `Retry-After` (seconds or HTTP date) replaces the backoff; one longer than RETRY_MAX_DELAY is
  not slept through but raised at once as `RateLimited(retry_after=...)`, so the sync error is
  retried later by the scheduler instead of holding a worker.
- What is retried: for reads (GET, HEAD, DELETE, OPTIONS, or any request with
  `idempotent=True`, e.g. Tally's export POSTs, which only read), 429, 5xx, timeouts and network
  errors. For writes (POST, PUT, PATCH: Xero creates with PUT, an update may be applied twice)
  only what certainly did not reach the remote system: 429, 503, connection failures and pool
  timeouts, unless the caller passes `idempotent=True` (a write carrying an idempotency key the
  remote honours). A read timeout or a 500 after a write may have applied it: that is raised
  (retryable) and the sync engine decides on the next attempt (see sync.py).
- 401: `auth.refresh()` once (if the auth has one) and the request is repeated; a second 401
  raises AuthFailure.
- After the last attempt: RateLimited (429), ServerFailure (5xx), NetworkFailure (timeouts,
  connection errors). Other statuses are returned for the connector to read its own error
  body; `failure_for_status(response)` maps them to SyncFailure when it has nothing better.
- Logs the method, host and path (never the query, headers or body) at DEBUG, retries at INFO.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from django.conf import settings

from accounting.integrations.connectors.base import (
    AuthFailure,
    ConflictFailure,
    NetworkFailure,
    NotFound,
    RateLimited,
    ServerFailure,
    SyncFailure,
    ValidationFailure,
)
from accounting.integrations.ratelimit import RateLimiter, SlotUnavailable, limiter_for

logger = logging.getLogger(__name__)

# PUT and PATCH are not here: Xero creates with PUT, and a repeated write is retried only when
# the caller says it is safe (idempotent=True).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
USER_AGENT = "Kontor-Integrations/1.0"
# How long a request may wait for a rate-limit token or a concurrency slot before giving up
# with RateLimited (the record is then retried later).
LIMITER_TIMEOUT_SECONDS = 120.0


class Auth(Protocol):
    """What HttpClient needs from an authenticator: set headers, and optionally refresh."""

    def __call__(self, headers: dict[str, str]) -> None: ...

    def refresh(self) -> None: ...


class HeaderAuth:
    """A fixed header (an API key, a bridge token); nothing to refresh."""

    def __init__(self, name: str, value: str):
        self._name = name
        self._value = value

    def __call__(self, headers: dict[str, str]) -> None:
        headers[self._name] = self._value

    def __repr__(self) -> str:
        return f"<HeaderAuth {self._name}>"


# One pool per process and system; rebuilt after a fork (Celery prefork children).
_pools: dict[tuple[int, str], httpx.Client] = {}
_pools_lock = threading.Lock()


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        settings.ACCOUNTING_POOL_TIMEOUT, connect=settings.ACCOUNTING_CONNECT_TIMEOUT
    )


def _limits() -> httpx.Limits:
    return httpx.Limits(
        max_connections=settings.ACCOUNTING_POOL_MAX_CONNECTIONS,
        max_keepalive_connections=settings.ACCOUNTING_POOL_MAX_KEEPALIVE,
    )


def pooled_client(system: str) -> httpx.Client:
    key = (os.getpid(), system)
    with _pools_lock:
        client = _pools.get(key)
        if client is None:
            client = httpx.Client(
                timeout=_timeout(),
                limits=_limits(),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
            _pools[key] = client
        return client


def pools_close() -> None:
    with _pools_lock:
        for client in _pools.values():
            client.close()
        _pools.clear()


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_ms(
    attempt: int, *, initial_ms: float, max_ms: float, rand: Callable[[], float]
) -> float:
    """Full jitter: uniform(0, min(max, initial * 2**(attempt-1)))."""
    return rand() * min(max_ms, initial_ms * (2 ** (attempt - 1)))


def _body_excerpt(response: httpx.Response, limit: int = 500) -> str:
    try:
        return response.text[:limit]
    except Exception:  # noqa: BLE001 - undecodable bytes: an excerpt is only diagnostic
        return ""


def failure_for_status(
    response: httpx.Response, message: str = "", *, external_id: str = ""
) -> SyncFailure:
    """A SyncFailure for an HTTP error status, when a connector has no better mapping."""
    status = response.status_code
    detail = {"status": status, "body": _body_excerpt(response)}
    text = message or f"{response.request.method} {response.request.url.path} answered {status}"
    if status in (401, 403):
        return AuthFailure(text, detail=detail, external_id=external_id)
    if status == 404:
        return NotFound(text, detail=detail, external_id=external_id)
    if status == 409:
        return ConflictFailure(text, detail=detail, external_id=external_id)
    if status == 429:
        return RateLimited(
            text,
            detail=detail,
            external_id=external_id,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return ServerFailure(text, detail=detail, external_id=external_id)
    return ValidationFailure(text, detail=detail, external_id=external_id)


class HttpClient:
    def __init__(
        self,
        connection,
        *,
        base_url: str = "",
        limiter: RateLimiter | None = None,
        auth: Auth | Callable[[dict[str, str]], None] | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        max_attempts: int | None = None,
        initial_delay_ms: float | None = None,
        max_delay_ms: float | None = None,
        timeout: httpx.Timeout | float | None = None,
        now: Callable[[], datetime] | None = None,
    ):
        self.connection = connection
        # The wall clock for Retry-After dates (tests pass a fixed one).
        self.now = now or (lambda: datetime.now(UTC))
        self.system = getattr(connection, "system", "") or "default"
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.auth = auth
        self.default_headers = dict(headers or {})
        self.sleep = sleep
        self.rand = rand
        self.max_attempts = max(1, max_attempts or settings.RETRY_MAX_ATTEMPTS)
        self.initial_delay_ms = (
            settings.RETRY_INITIAL_DELAY if initial_delay_ms is None else initial_delay_ms
        )
        self.max_delay_ms = settings.RETRY_MAX_DELAY if max_delay_ms is None else max_delay_ms
        self.timeout = timeout
        if transport is not None:
            # Tests (MockTransport) and special cases get a client of their own.
            self._client = httpx.Client(
                transport=transport, timeout=_timeout(), headers={"User-Agent": USER_AGENT}
            )
        else:
            self._client = None
        # Observations for callers (e.g. Xero's X-MinLimit-Remaining): the last response.
        self.last_response: httpx.Response | None = None
        self.attempts_made = 0

    def __repr__(self) -> str:
        return f"<HttpClient {self.system} {self.base_url or '-'}>"

    @property
    def client(self) -> httpx.Client:
        return self._client or pooled_client(self.system)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")) or not self.base_url:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before the next attempt (Retry-After wins over backoff)."""
        if response is not None:
            after = retry_after_seconds(response.headers.get("Retry-After"), now=self.now())
            if after is not None:
                return after
        return (
            backoff_ms(
                attempt, initial_ms=self.initial_delay_ms, max_ms=self.max_delay_ms, rand=self.rand
            )
            / 1000.0
        )

    def _take_limiter_token(self, entity: str) -> None:
        if self.limiter is None:
            return
        if not self.limiter.acquire(timeout=LIMITER_TIMEOUT_SECONDS):
            raise RateLimited(
                "The connection's rate limit left no request free in time.",
                retry_after=60,
                detail={"entity": entity, "limiter": self.limiter.key},
            )

    def _send(self, method: str, url: str, headers: dict[str, str], kwargs: dict[str, Any]):
        if self.limiter is not None and self.limiter.max_concurrent:
            try:
                with self.limiter.slot(timeout=LIMITER_TIMEOUT_SECONDS):
                    return self.client.request(method, url, headers=headers, **kwargs)
            except SlotUnavailable as exc:
                raise RateLimited(
                    "No concurrent request slot came free in time.", retry_after=30
                ) from exc
        return self.client.request(method, url, headers=headers, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: dict | None = None,
        headers: dict[str, str] | None = None,
        entity: str = "",
        idempotent: bool | None = None,
    ) -> httpx.Response:
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = self.url(path)
        where = httpx.URL(url)
        label = f"{method} {where.host}{where.path}"
        kwargs: dict[str, Any] = {"params": params, "json": json, "content": content, "data": data}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            self.attempts_made += 1
            request_headers = {**self.default_headers, **(headers or {})}
            if self.auth is not None:
                self.auth(request_headers)
            self._take_limiter_token(entity)
            started = time.monotonic()
            response = None
            try:
                response = self._send(method, url, request_headers, kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure: SyncFailure = NetworkFailure(
                    f"{label}: could not connect ({type(exc).__name__})",
                    detail={"error": type(exc).__name__, "attempts": attempt},
                )
                retry_this = True
            except httpx.TimeoutException as exc:
                failure = NetworkFailure(
                    f"{label}: timed out ({type(exc).__name__})",
                    detail={"error": type(exc).__name__, "attempts": attempt},
                )
                retry_this = safe
            except httpx.TransportError as exc:
                failure = NetworkFailure(
                    f"{label}: network error ({type(exc).__name__})",
                    detail={"error": type(exc).__name__, "attempts": attempt},
                )
                retry_this = safe
            else:
                self.last_response = response
                elapsed_ms = int((time.monotonic() - started) * 1000)
                logger.debug(
                    "%s -> %s in %d ms (attempt %d)",
                    label,
                    response.status_code,
                    elapsed_ms,
                    attempt,
                )
                status = response.status_code
                if status == 401 and not refreshed and hasattr(self.auth, "refresh"):
                    refreshed = True
                    attempt -= 1  # the refresh does not use up an attempt
                    logger.info("%s -> 401; refreshing the access token once", label)
                    self.auth.refresh()
                    continue
                if status == 401:
                    raise AuthFailure(
                        f"{label}: credentials rejected (401)"
                        + (" after a token refresh" if refreshed else ""),
                        detail={"status": 401, "body": _body_excerpt(response)},
                    )
                if status != 429 and status < 500:
                    return response
                failure = failure_for_status(response, f"{label} answered {status}")
                failure.detail["attempts"] = attempt
                retry_this = status in (429, 503) or safe
            if not retry_this or attempt >= self.max_attempts:
                logger.info("%s failed after %d attempt(s): %s", label, attempt, failure.message)
                raise failure
            delay = self._delay(attempt, response)
            if delay * 1000 > self.max_delay_ms:
                # Only a Retry-After can ask for more than the longest backoff: leave the wait
                # to the retry scheduler rather than holding a worker.
                failure.retry_after = delay
                raise failure
            logger.info(
                "%s: attempt %d of %d failed (%s); retrying in %.3f s",
                label,
                attempt,
                self.max_attempts,
                failure.message,
                delay,
            )
            self.sleep(delay)


def http_client_for(connection, **kwargs) -> HttpClient:
    """The client of one connection: its base URL override, rate limiter and (for OAuth
    systems) token refresher."""
    from accounting.integrations.oauth import OAUTH_SYSTEMS, OAuthAuth

    auth = kwargs.pop("auth", None)
    if auth is None and connection.system in OAUTH_SYSTEMS:
        auth = OAuthAuth(connection)
    return HttpClient(
        connection,
        base_url=kwargs.pop("base_url", (connection.settings or {}).get("base_url", "")),
        limiter=kwargs.pop("limiter", limiter_for(connection)),
        auth=auth,
        **kwargs,
    )
