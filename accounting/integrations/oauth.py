"""OAuth2 for Zoho Books, QuickBooks Online and Xero: connect URL, code exchange, and token
refresh serialised per connection.

- Endpoints and the app's client id/secret come from `INTEGRATIONS_OAUTH[system]`; a
  connection may override them: `settings["oauth"]` {authorize_url, token_url, scope} (tests
  point these at a loopback fake) and credentials `client_id`/`client_secret`.
- `oauth_refresh` takes a lock per connection (core.locks: Redis SET NX, or the local cache),
  then re-reads the row: if another worker refreshed meanwhile, its token is used and no token
  request is made. The token request holds no database row lock; rotated refresh tokens
  (QuickBooks, Xero: single-use) are stored with the access token in one committed transaction
  right after, and a refresh inside a caller's transaction is refused before any request.
  `invalid_grant` (Zoho: `invalid_code`) marks the connection `needs_reauth` and raises AuthFailure.
- `OAuthAuth(connection)` plugs into HttpClient: sets `Authorization` (Zoho: `Zoho-oauthtoken`,
  others `Bearer`), refreshes ahead of expiry, and on a 401 refreshes once.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction

from accounting.integrations.connectors.base import AuthFailure, MalformedReply, SyncFailure
from core.locks import lock_acquire, lock_release

logger = logging.getLogger(__name__)

OAUTH_SYSTEMS = frozenset({"zoho_books", "quickbooks", "xero"})
AUTH_SCHEME = {"zoho_books": "Zoho-oauthtoken", "quickbooks": "Bearer", "xero": "Bearer"}
ZOHO_DOMAINS = {
    "com": "zoho.com",
    "eu": "zoho.eu",
    "in": "zoho.in",
    "com.au": "zoho.com.au",
    "jp": "zoho.jp",
    "ca": "zohocloud.ca",
}
# Refresh this many seconds before the access token expires.
EXPIRY_MARGIN_SECONDS = 60
REFRESH_LOCK_TTL_SECONDS = 60
REFRESH_LOCK_WAIT_SECONDS = 30
REAUTH_ERRORS = frozenset({"invalid_grant", "invalid_code"})
TOKEN_KEYS = ("access_token", "refresh_token", "expires_at", "refresh_expires_at", "token_type")


class NeedsReauth(AuthFailure):
    """The refresh token is gone or rejected: someone must connect the integration again."""

    default_suggested_fix = "Connect the integration again (Connect in the admin)."


def provider(connection) -> dict:
    """Endpoints, scope and client credentials for this connection."""
    if connection.system not in OAUTH_SYSTEMS:
        raise AuthFailure(f"{connection.system} does not use OAuth.")
    config = dict(settings.INTEGRATIONS_OAUTH.get(connection.system) or {})
    overrides = (connection.settings or {}).get("oauth") or {}
    for key in ("authorize_url", "token_url", "scope"):
        if overrides.get(key):
            config[key] = overrides[key]
    credentials = connection.credentials
    config["client_id"] = credentials.get("client_id") or config.get("client_id", "")
    config["client_secret"] = credentials.get("client_secret") or config.get("client_secret", "")
    domain = ZOHO_DOMAINS.get((connection.settings or {}).get("region") or "com", "zoho.com")
    for key in ("authorize_url", "token_url"):
        config[key] = config.get(key, "").replace("{domain}", domain)
    if not config["client_id"] or not config["token_url"]:
        raise AuthFailure(
            f"No OAuth client is configured for {connection.system}.",
            suggested_fix="Set the system's client id and secret in the settings.",
        )
    return config


STATE_SALT = "kontor.integrations.oauth-state"
STATE_MAX_AGE_SECONDS = 15 * 60


def oauth_state_make(*, connection, user_id: int | None) -> str:
    """A signed, expiring `state` for the connect URL naming the connection and the user."""
    from django.core import signing

    payload = {"c": connection.pk, "u": user_id, "n": secrets.token_hex(8)}
    return signing.dumps(payload, salt=STATE_SALT, compress=True)


def oauth_state_read(state: str, *, max_age: int = STATE_MAX_AGE_SECONDS) -> dict:
    """{"connection_id", "user_id"} from a state made by oauth_state_make; AuthFailure when it
    is forged, altered or older than `max_age` seconds."""
    from django.core import signing

    try:
        payload = signing.loads(state, salt=STATE_SALT, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise AuthFailure("The authorisation took too long; start again.") from exc
    except signing.BadSignature as exc:
        raise AuthFailure("The authorisation reply is not one Kontor asked for.") from exc
    return {"connection_id": payload["c"], "user_id": payload["u"]}


def oauth_connect_url(
    connection, *, state: str, redirect_uri: str, code_challenge: str = ""
) -> str:
    """Where to send the user to grant access (authorisation-code flow)."""
    config = provider(connection)
    params = {
        "response_type": "code",
        "client_id": config["client_id"],
        "redirect_uri": redirect_uri,
        "scope": config.get("scope", ""),
        "state": state,
    }
    if connection.system == "zoho_books":
        # A refresh token is only issued with offline access; consent makes Zoho issue a new one.
        params.update(access_type="offline", prompt="consent")
    if code_challenge:
        params.update(code_challenge=code_challenge, code_challenge_method="S256")
    return f"{config['authorize_url']}?{urlencode(params)}"


def _token_request(connection, config: dict, form: dict) -> dict:
    """POST to the token endpoint; returns the JSON reply or raises (never logging secrets)."""
    from accounting.integrations.http import HttpClient

    headers = {"Accept": "application/json"}
    if connection.system == "zoho_books":
        form = {**form, "client_id": config["client_id"], "client_secret": config["client_secret"]}
    else:  # QuickBooks and Xero take the client in HTTP Basic auth
        pair = f"{config['client_id']}:{config['client_secret']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    client = HttpClient(connection, limiter=None, auth=None)
    response = client.request(
        "POST", config["token_url"], data=form, headers=headers, idempotent=False
    )
    try:
        body = response.json()
    except ValueError as exc:
        if response.status_code >= 400:
            raise AuthFailure(
                f"The token endpoint answered {response.status_code}.",
                detail={"status": response.status_code},
            ) from exc
        raise MalformedReply("The token endpoint replied with something other than JSON.") from exc
    error = body.get("error") if isinstance(body, dict) else None
    if error:
        error = str(error)
        failure_cls = NeedsReauth if error in REAUTH_ERRORS else AuthFailure
        raise failure_cls(
            f"The token endpoint refused: {error}.",
            detail={"status": response.status_code, "error": error},
        )
    if response.status_code >= 400 or not isinstance(body, dict) or not body.get("access_token"):
        raise AuthFailure(
            f"The token endpoint answered {response.status_code} without a token.",
            detail={"status": response.status_code},
        )
    return body


def _tokens_from(body: dict, previous: dict) -> dict:
    now = time.time()
    tokens = {
        "access_token": body["access_token"],
        # Zoho keeps the refresh token; QuickBooks and Xero may send a new one: keep the newest.
        "refresh_token": body.get("refresh_token") or previous.get("refresh_token", ""),
        "expires_at": now + float(body.get("expires_in") or 3600),
        "token_type": body.get("token_type", "Bearer"),
    }
    if body.get("x_refresh_token_expires_in"):
        tokens["refresh_expires_at"] = now + float(body["x_refresh_token_expires_in"])
    return tokens


def oauth_exchange_code(
    connection, *, code: str, redirect_uri: str, code_verifier: str = ""
) -> dict:
    """Trade an authorisation code for tokens and store them. Returns what is safe to show:
    {"expires_at": ...}."""
    from accounting.integrations.models import IntegrationConnection

    config = provider(connection)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    body = _token_request(connection, config, form)
    with transaction.atomic():
        row = IntegrationConnection.objects.select_for_update().get(pk=connection.pk)
        credentials = row.credentials
        credentials.update(_tokens_from(body, {}))
        row.set_credentials(credentials)
        row.needs_reauth = False
        row.save(update_fields=["credentials_encrypted", "needs_reauth", "updated_at"])
    connection.credentials_encrypted = row.credentials_encrypted
    connection.needs_reauth = False
    return {"expires_at": credentials["expires_at"]}


def _expired(credentials: dict) -> bool:
    expires_at = credentials.get("expires_at")
    if not credentials.get("access_token"):
        return True
    return expires_at is not None and float(expires_at) - EXPIRY_MARGIN_SECONDS <= time.time()


def _lock_wait(name: str) -> str:
    deadline = time.monotonic() + REFRESH_LOCK_WAIT_SECONDS
    while True:
        token = lock_acquire(name, ttl_seconds=REFRESH_LOCK_TTL_SECONDS)
        if token is not None:
            return token
        if time.monotonic() >= deadline:
            raise AuthFailure(
                "Another worker has been refreshing this connection's token for too long.",
                retryable=True,
            )
        time.sleep(0.05)


def _mark_needs_reauth(connection, failure: SyncFailure) -> None:
    from accounting.integrations.models import IntegrationConnection
    from core.services import audit_record

    with transaction.atomic():
        IntegrationConnection.objects.filter(pk=connection.pk).update(needs_reauth=True)
        connection.needs_reauth = True
        audit_record(
            action="integrations.connection.needs_reauth",
            system_job="integrations.oauth_refresh",
            company=connection.company,
            obj=connection,
            before={"needs_reauth": False},
            after={"needs_reauth": True, "reason": failure.detail.get("error", "")},
        )
    logger.warning(
        "Connection %s (%s) needs re-authorisation: %s",
        connection.pk,
        connection.system,
        failure.message,
    )


def _outside_transactions() -> None:
    """Refuse to refresh inside a caller's transaction: a rotated refresh token (QuickBooks,
    Xero: the old one stops working once used) stored in it would be lost if the caller rolled
    back, leaving the connection unusable. Checked before any token request is made."""
    try:
        with transaction.atomic(durable=True):
            pass
    except RuntimeError as exc:
        raise RuntimeError(
            "oauth_refresh must not run inside a transaction (a rotated refresh token stored "
            "in it could be rolled back); call it outside transaction.atomic()."
        ) from exc


def oauth_refresh(connection, *, stale_access_token: str | None = None) -> str:
    """A fresh access token for the connection, refreshing at most once across all workers.

    `stale_access_token`: the token that was just rejected (a 401). When the stored token is
    no longer that one and has not expired, another worker already refreshed: use its token.

    The per-connection lock (Redis, or the local cache) serialises refreshes; the token request
    is made outside any database transaction and row lock (a slow token endpoint holds no row),
    and the new tokens are stored right after in their own committed transaction, merged into
    the credentials as they are then (the row re-read under select_for_update). Refuses to run
    inside a caller's transaction (see `_outside_transactions`).
    """
    from accounting.integrations.models import IntegrationConnection

    _outside_transactions()
    lock_name = f"integrations:oauth-refresh:{connection.pk}"
    lock_token = _lock_wait(lock_name)
    reauth: SyncFailure | None = None
    try:
        row = IntegrationConnection.objects.get(pk=connection.pk)
        credentials = row.credentials
        current = credentials.get("access_token", "")
        someone_refreshed = stale_access_token is not None and current != stale_access_token
        if (
            current
            and not _expired(credentials)
            and (stale_access_token is None or someone_refreshed)
        ):
            connection.credentials_encrypted = row.credentials_encrypted
            return current
        if not credentials.get("refresh_token"):
            reauth = NeedsReauth("There is no refresh token: connect the integration again.")
        else:
            config = provider(row)
            try:
                body = _token_request(
                    row,
                    config,
                    {"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]},
                )
            except NeedsReauth as exc:
                reauth = exc
            else:
                with transaction.atomic(durable=True):
                    row = IntegrationConnection.objects.select_for_update().get(pk=connection.pk)
                    latest = row.credentials
                    latest.update(_tokens_from(body, credentials))
                    row.set_credentials(latest)
                    row.needs_reauth = False
                    row.save(update_fields=["credentials_encrypted", "needs_reauth", "updated_at"])
                connection.credentials_encrypted = row.credentials_encrypted
                connection.needs_reauth = False
                logger.info("Connection %s: access token refreshed", connection.pk)
                return latest["access_token"]
    finally:
        lock_release(lock_name, lock_token)
    # Outside the refresh transaction, so the flag is kept although we raise.
    _mark_needs_reauth(connection, reauth)
    raise reauth


def access_token(connection) -> str:
    """The connection's access token, refreshed first when it is about to expire."""
    credentials = connection.credentials
    if connection.needs_reauth:
        raise NeedsReauth("The connection needs to be connected again.")
    if _expired(credentials):
        return oauth_refresh(connection)
    return credentials["access_token"]


class OAuthAuth:
    """HttpClient auth for OAuth systems."""

    def __init__(self, connection):
        self.connection = connection
        self.scheme = AUTH_SCHEME.get(connection.system, "Bearer")
        self._used: str | None = None

    def __repr__(self) -> str:
        return f"<OAuthAuth connection={self.connection.pk}>"

    def __call__(self, headers: dict[str, str]) -> None:
        self._used = access_token(self.connection)
        headers["Authorization"] = f"{self.scheme} {self._used}"

    def refresh(self) -> None:
        oauth_refresh(self.connection, stale_access_token=self._used or "")
