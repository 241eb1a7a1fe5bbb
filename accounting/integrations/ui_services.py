"""Writes behind the hub's screens that accounting/integrations/services.py (hub-core) does not
have: mapping an external account to a local one, and the OAuth connect/callback pair. Same
conventions as services.py: keyword-only, role checked, one transaction, audit row; the API and
the admin call these and hold no logic.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import signing
from django.db import transaction

from accounting.integrations import oauth
from accounting.integrations.connectors.base import AuthFailure, SyncFailure
from accounting.integrations.models import AccountMapping, IntegrationConnection
from accounting.integrations.services import _require_write
from core.errors import ConflictError, DomainError, PermissionDeniedError, ValidationFailed
from core.services import audit_record

logger = logging.getLogger(__name__)


class OAuthStateInvalid(DomainError):
    code = "oauth_state_invalid"
    http_status = 400


@transaction.atomic
def account_mapping_set(*, actor, mapping: AccountMapping, account) -> AccountMapping:
    """Map (or with None unmap) an imported external account to a local account."""
    _require_write(actor, mapping.company)
    mapping = AccountMapping.objects.select_for_update().get(pk=mapping.pk)
    if account is not None and account.company_id != mapping.company_id:
        raise ValidationFailed(fields={"account": ["An account of this company."]})
    before = {"account": mapping.account_id}
    mapping.account = account
    mapping.save(update_fields=["account", "imported_at"])
    audit_record(
        action="integrations.account_mapping.set",
        actor=actor,
        company=mapping.company,
        obj=mapping,
        before=before,
        after={"account": mapping.account_id},
    )
    return mapping


def oauth_redirect_uri(system: str, *, build_absolute_uri=None) -> str:
    """INTEGRATIONS_OAUTH_REDIRECT_URI ({system} filled in) or the callback on this host."""
    configured = getattr(settings, "INTEGRATIONS_OAUTH_REDIRECT_URI", "")
    if configured:
        return configured.replace("{system}", system)
    path = f"/api/v1/accounting/integrations/{system}/callback"
    return build_absolute_uri(path) if build_absolute_uri else path


def oauth_connect_begin(*, actor, connection: IntegrationConnection, redirect_uri: str) -> str:
    """The provider's consent URL for this connection, with a signed expiring state."""
    _require_write(actor, connection.company)
    if connection.system not in oauth.OAUTH_SYSTEMS:
        raise ValidationFailed(
            f"{connection.get_system_display()} does not connect with OAuth.",
            code="oauth_not_supported",
        )
    user_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    state = oauth.oauth_state_make(connection=connection, user_id=user_id)
    try:
        return oauth.oauth_connect_url(connection, state=state, redirect_uri=redirect_uri)
    except SyncFailure as failure:
        raise ConflictError(failure.message, code="oauth_not_configured") from failure


def oauth_callback_complete(
    *, system: str, code: str, state: str, redirect_uri: str, realm_id: str = "", error: str = ""
) -> IntegrationConnection:
    """Check the signed state, trade the code for tokens (stored encrypted by oauth.py) and
    record who connected. The state names the connection and the user who asked; that user must
    still be allowed to change the company's integrations."""
    from django.contrib.auth import get_user_model

    try:
        claims = oauth.oauth_state_read(state or "")
    except AuthFailure as failure:
        expired = isinstance(failure.__cause__, signing.SignatureExpired)
        raise OAuthStateInvalid(
            failure.message, code="oauth_state_expired" if expired else "oauth_state_invalid"
        ) from failure
    connection = (
        IntegrationConnection.objects.select_related("company")
        .filter(pk=claims["connection_id"])
        .first()
    )
    if connection is None or connection.system != system:
        raise OAuthStateInvalid("The authorisation reply does not match a connection.")
    actor = (
        get_user_model().objects.filter(pk=claims["user_id"]).first() if claims["user_id"] else None
    )
    if actor is None:
        raise PermissionDeniedError("The user who asked to connect is gone.", code="role_required")
    _require_write(actor, connection.company)
    if error:
        raise ValidationFailed(f"The provider refused access: {error}.", code="oauth_denied")
    if not code:
        raise ValidationFailed("The reply carries no authorisation code.", code="oauth_no_code")
    try:
        oauth.oauth_exchange_code(connection, code=code, redirect_uri=redirect_uri)
    except SyncFailure as failure:
        raise ValidationFailed(failure.message, code="oauth_exchange_failed") from failure
    with transaction.atomic():
        row = IntegrationConnection.objects.select_for_update().get(pk=connection.pk)
        if realm_id and system == "quickbooks" and row.settings.get("realm_id") != realm_id:
            row.settings = {**row.settings, "realm_id": realm_id}
            row.save(update_fields=["settings", "updated_at"])
        audit_record(
            action="integrations.connection.connected",
            actor=actor,
            company=row.company,
            obj=row,
            after={"system": system, "credential_keys": row.credential_keys},
        )
    logger.info("Connection %s (%s) connected through OAuth", row.pk, system)
    return row


def connection_summary_read(connection: IntegrationConnection, *, days: int = 30) -> dict:
    """selectors.connection_summary plus the open errors by category (one more query)."""
    from django.db.models import Count

    from accounting.integrations.models import SyncError
    from accounting.integrations.selectors import OPEN, connection_summary

    summary = connection_summary(connection, days=days)
    summary["open_errors_by_category"] = dict(
        SyncError.objects.filter(connection=connection, resolution__in=OPEN)
        .values_list("category")
        .annotate(n=Count("id"))
        .values_list("category", "n")
    )
    return summary


def sync_now(
    *, actor, connection: IntegrationConnection, entity: str, direction: str | None = None
):
    """Run one sync in the caller's process (the API's ?wait=true, the demo). Same refusals as
    services.sync_start; the engine records the run and its errors."""
    from accounting.integrations.sync import IMPORT_ENTITIES, sync_run

    _require_write(actor, connection.company)
    if not connection.enabled:
        raise ConflictError("The connection is disabled.", code="connection_disabled")
    if connection.needs_reauth:
        raise ConflictError("Connect the integration again first.", code="needs_reauth")
    direction = direction or ("import" if entity in IMPORT_ENTITIES else "export")
    return sync_run(
        connection=connection,
        entity=entity,
        direction=direction,
        triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
