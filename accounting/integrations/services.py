"""Writes of the integration hub. Admin, API, commands and tasks call these.

Credentials are write-only: they go in through `connection_create`/`connection_update`
(`credentials=` merges keys; a key set to None or "" is removed) and never come out of a
service, an audit row (which names only the keys that changed) or a log line.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounting.integrations import metrics, oauth
from accounting.integrations.connectors.base import AuthFailure, SyncFailure
from accounting.integrations.models import (
    AccountMapping,
    Direction,
    Entity,
    Frequency,
    IntegrationConnection,
    Resolution,
    SyncError,
    SyncRun,
    SyncStatus,
    SyncType,
    System,
)
from accounting.integrations.validation import connection_settings_clean
from core.errors import ConflictError, DomainError, PermissionDeniedError, ValidationFailed
from core.models import Membership
from core.roles import Role, roles_for
from core.services import audit_record

logger = logging.getLogger(__name__)

SYSTEM_JOB = "integrations"
# Fields shown in audit rows (never credentials_encrypted).
AUDITED = (
    "system",
    "name",
    "enabled",
    "settings",
    "direction",
    "frequency",
    "entities",
    "needs_reauth",
)
EDITABLE = ("name", "enabled", "settings", "direction", "frequency", "entities")
# Settings keys that hold secrets are refused: they belong in credentials.
SECRET_SETTING_HINTS = ("secret", "token", "password", "api_key", "apikey")


def _require_write(actor, company) -> None:
    if actor is None or getattr(actor, "is_superuser", False):
        return
    role = (
        Membership.objects.filter(user=actor, company=company)
        .values_list("role", flat=True)
        .first()
    )
    if role not in roles_for("integrations", write=True):
        raise PermissionDeniedError(
            "Only an owner or an accountant may change integrations.", code="role_required"
        )


def _snapshot(connection: IntegrationConnection) -> dict:
    data = {name: getattr(connection, name) for name in AUDITED}
    data["credential_keys"] = connection.credential_keys
    return data


def _validate(connection: IntegrationConnection) -> None:
    errors = {}
    if not (connection.name or "").strip():
        errors["name"] = ["Name the connection."]
    if connection.system not in System.values:
        errors["system"] = [f"One of {', '.join(System.values)}."]
    if connection.direction not in Direction.values:
        errors["direction"] = [f"One of {', '.join(Direction.values)}."]
    if connection.frequency not in Frequency.values:
        errors["frequency"] = [f"One of {', '.join(Frequency.values)}."]
    if not isinstance(connection.entities, list) or any(
        e not in Entity.values for e in connection.entities
    ):
        errors["entities"] = [f"A list of {', '.join(Entity.values)}."]
    if not isinstance(connection.settings, dict):
        errors["settings"] = ["An object."]
    else:
        bad = [
            key
            for key in connection.settings
            if any(hint in key.lower() for hint in SECRET_SETTING_HINTS)
        ]
        if bad:
            errors["settings"] = [f"Put {', '.join(sorted(bad))} in credentials, not settings."]
        elif connection.system in System.values:
            # The per-system rule (Tally host/port, Busy https bridge, Zoho region/organisation,
            # QuickBooks environment/realm, Xero tenant UUID) holds for every caller, not only
            # the API serializer and the admin form; it also normalises (defaults, trimmed).
            try:
                connection.settings = connection_settings_clean(
                    connection.system, connection.settings
                )
            except ValidationFailed as failure:
                errors.update(failure.fields or {"settings": [failure.message]})
    if errors:
        raise ValidationFailed(fields=errors)
    duplicate = (
        IntegrationConnection.objects.filter(
            company=connection.company, system=connection.system, name=connection.name
        )
        .exclude(pk=connection.pk)
        .exists()
    )
    if duplicate:
        raise ValidationFailed(
            "A connection of that system and name exists.",
            code="name_taken",
            fields={"name": ["Already used for this system."]},
        )


def _merge_credentials(connection: IntegrationConnection, credentials: dict | None) -> list[str]:
    """Apply a credentials patch; return the names of the keys that changed (never values)."""
    if not credentials:
        return []
    if not isinstance(credentials, dict):
        raise ValidationFailed(fields={"credentials": ["An object of names and values."]})
    current = connection.credentials
    changed = []
    for key, value in credentials.items():
        if value in (None, ""):
            if key in current:
                current.pop(key)
                changed.append(key)
        elif current.get(key) != value:
            current[key] = value
            changed.append(key)
    if changed:
        connection.set_credentials(current)
    return sorted(changed)


@transaction.atomic
def connection_create(
    *,
    actor,
    company,
    system: str,
    name: str,
    settings: dict | None = None,
    credentials: dict | None = None,
    direction: str = Direction.BIDIRECTIONAL,
    frequency: str = Frequency.MANUAL,
    entities: list[str] | None = None,
    enabled: bool = True,
) -> IntegrationConnection:
    _require_write(actor, company)
    connection = IntegrationConnection(
        company=company,
        system=system,
        name=(name or "").strip(),
        settings=settings or {},
        direction=direction,
        frequency=frequency,
        enabled=enabled,
    )
    if entities is not None:
        connection.entities = list(entities)
    _validate(connection)
    _merge_credentials(connection, credentials)
    connection.save()
    audit_record(
        action="integrations.connection.created",
        actor=actor,
        system_job="" if actor else SYSTEM_JOB,
        company=company,
        obj=connection,
        after=_snapshot(connection),
    )
    return connection


@transaction.atomic
def connection_update(
    *, actor, connection: IntegrationConnection, credentials: dict | None = None, **changes
) -> IntegrationConnection:
    _require_write(actor, connection.company)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(fields={name: ["Cannot be changed."] for name in sorted(unknown)})
    connection = IntegrationConnection.objects.select_for_update().get(pk=connection.pk)
    before = _snapshot(connection)
    for name, value in changes.items():
        setattr(connection, name, value.strip() if name == "name" else value)
    _validate(connection)
    changed_keys = _merge_credentials(connection, credentials)
    if "enabled" in changes and changes["enabled"]:
        connection.consecutive_failures = 0
        connection.disabled_reason = ""
    connection.save()
    after = _snapshot(connection)
    if changed_keys:
        after["credentials_changed"] = changed_keys
    audit_record(
        action="integrations.connection.updated",
        actor=actor,
        company=connection.company,
        obj=connection,
        before=before,
        after=after,
    )
    return connection


def connection_enable(*, actor, connection: IntegrationConnection) -> IntegrationConnection:
    return connection_update(actor=actor, connection=connection, enabled=True)


def connection_disable(
    *, actor, connection: IntegrationConnection, reason: str = ""
) -> IntegrationConnection:
    with transaction.atomic():
        connection = connection_update(actor=actor, connection=connection, enabled=False)
        if reason:
            IntegrationConnection.objects.filter(pk=connection.pk).update(
                disabled_reason=reason[:500]
            )
            connection.disabled_reason = reason[:500]
    return connection


@transaction.atomic
def connection_delete(*, actor, connection: IntegrationConnection) -> None:
    _require_write(actor, connection.company)
    audit_record(
        action="integrations.connection.deleted",
        actor=actor,
        company=connection.company,
        obj=connection,
        before=_snapshot(connection),
    )
    connection.delete()


def connection_test(*, actor, connection: IntegrationConnection) -> dict:
    """Ask the connector whether the system answers; record latency, version and outcome.

    Returns {"success", "latency_ms", "version", "message"}; never raises for a failed test."""
    from accounting.integrations.connectors import ConnectorUnavailable, connector_for
    from accounting.integrations.connectors.base import SyncFailure
    from accounting.integrations.sync import scrub, secret_values

    _require_write(actor, connection.company)
    started = time.monotonic()
    began = timezone.now()
    try:
        result = dict(connector_for(connection).test_connection())
    except SyncFailure as failure:
        result = {"success": False, "version": "", "message": failure.message}
    except ConnectorUnavailable as exc:
        result = {"success": False, "version": "", "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a test reports failure, it does not crash
        logger.exception("Connection test of %s crashed", connection.pk)
        result = {
            "success": False,
            "version": "",
            "message": f"Internal error: {type(exc).__name__}",
        }
    latency = int(result.get("latency_ms") or (time.monotonic() - started) * 1000)
    secrets = secret_values(connection)
    outcome = {
        "success": bool(result.get("success")),
        "latency_ms": latency,
        "version": str(result.get("version") or "")[:100],
        "message": scrub(str(result.get("message") or ""), secrets)[:500],
    }
    with transaction.atomic():
        IntegrationConnection.objects.filter(pk=connection.pk).update(
            last_test_at=timezone.now(),
            last_test_success=outcome["success"],
            last_test_latency_ms=latency,
            last_test_message=outcome["message"],
            last_test_version=outcome["version"],
        )
        SyncRun.objects.create(
            company=connection.company,
            connection=connection,
            sync_type=SyncType.TEST,
            status=SyncStatus.SUCCEEDED if outcome["success"] else SyncStatus.FAILED,
            started_at=began,
            completed_at=timezone.now(),
            duration_ms=latency,
            error_summary="" if outcome["success"] else outcome["message"],
            triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            action="integrations.connection.tested",
            actor=actor,
            system_job="" if actor else SYSTEM_JOB,
            company=connection.company,
            obj=connection,
            after={k: outcome[k] for k in ("success", "latency_ms", "version")},
        )
    connection.refresh_from_db()
    return outcome


def sync_start(
    *, actor, connection: IntegrationConnection, entities: list[str] | None = None
) -> list[tuple[str, str]]:
    """Queue syncs of the connection (after commit). Returns the (entity, direction) pairs."""
    from accounting.integrations.sync import EXPORT_ENTITIES, IMPORT_ENTITIES
    from accounting.integrations.tasks import integrations_sync

    _require_write(actor, connection.company)
    if not connection.enabled:
        raise ConflictError("The connection is disabled.", code="connection_disabled")
    if connection.needs_reauth:
        raise ConflictError("Connect the integration again first.", code="needs_reauth")
    wanted = list(entities or connection.entities)
    pairs = []
    for entity in wanted:
        if entity in IMPORT_ENTITIES and connection.direction in ("import", "bidirectional"):
            pairs.append((entity, "import"))
        elif entity in EXPORT_ENTITIES and connection.direction in ("export", "bidirectional"):
            pairs.append((entity, "export"))
    if not pairs:
        raise ValidationFailed(
            "Nothing to sync in this connection's direction.", code="nothing_to_sync"
        )
    user_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    for entity, direction in pairs:
        transaction.on_commit(
            lambda e=entity, d=direction: integrations_sync.delay(connection.pk, e, d, user_id)
        )
    return pairs


# ---------------------------------------------------------------------------------------------
# After each run: last sync, consecutive failures, disabling with an alert
# ---------------------------------------------------------------------------------------------


def _alert_recipients(company) -> list[str]:
    return list(
        Membership.objects.filter(company=company, role__in=[Role.OWNER, Role.ACCOUNTANT])
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


def connection_disabled_alert_send(*, connection_id: int) -> int:
    """Email the owners and accountants that the connection was switched off (called by the
    `integrations_connection_alert` task, which retries a failed send). Returns how many."""
    connection = IntegrationConnection.objects.select_related("company").get(pk=connection_id)
    recipients = _alert_recipients(connection.company)
    if not recipients:
        return 0
    return send_mail(
        subject=f"Kontor: the {connection} integration was switched off",
        message=(
            f'The {connection.get_system_display()} integration "{connection.name}" of '
            f"{connection.company} failed {connection.consecutive_failures} times in a row and "
            f"has been disabled.\n\nLast error: {connection.disabled_reason}\n\n"
            "Check the sync errors, fix the cause (reconnect if access was revoked), then "
            "enable the connection again."
        ),
        from_email=None,
        recipient_list=recipients,
    )


# What says the connection itself is failing (not one record): these stop a run.
CONNECTION_FAILURE_CATEGORIES = frozenset({"auth", "network", "rate_limit", "server"})


def connection_failure(*, run: SyncRun, failure=None, refused: bool = False) -> bool | None:
    """True when the run failed because of the connection (auth, network, rate limit, a fatal
    server failure, or a refused run), False when it reached the system (whatever its records
    did), None when it says nothing about the connection (webhook runs)."""
    if run.sync_type == SyncType.WEBHOOK:
        return None
    if refused:
        return True
    return failure is not None and failure.category in CONNECTION_FAILURE_CATEGORIES


def connection_sync_recorded(
    *, connection: IntegrationConnection, run: SyncRun, failure=None, refused: bool = False
):
    """Note a finished run on its connection; disable it after too many connection failures
    in a row. A record that fails validation or conflicts does not count (one bad invoice
    must not switch off the connection); a webhook run neither counts nor resets."""
    limit = settings.INTEGRATIONS_MAX_CONSECUTIVE_FAILURES
    failing = connection_failure(run=run, failure=failure, refused=refused)
    with transaction.atomic():
        row = IntegrationConnection.objects.select_for_update().get(pk=connection.pk)
        row.last_sync_at = run.completed_at
        row.last_sync_status = run.status
        if failing is True:
            row.consecutive_failures += 1
        elif failing is False:
            row.consecutive_failures = 0
        fields = ["last_sync_at", "last_sync_status", "consecutive_failures", "updated_at"]
        if row.enabled and limit and row.consecutive_failures >= limit:
            row.enabled = False
            row.disabled_reason = (run.error_summary or "Repeated failures")[:500]
            fields += ["enabled", "disabled_reason"]
            audit_record(
                action="integrations.connection.disabled",
                system_job=SYSTEM_JOB,
                company=row.company,
                obj=row,
                before={"enabled": True},
                after={"enabled": False, "consecutive_failures": row.consecutive_failures},
            )
            metrics.accounting_connections_disabled_total.labels(system=row.system).inc()
            logger.error(
                "Connection %s (%s) disabled after %d consecutive failed syncs",
                row.pk,
                row.system,
                row.consecutive_failures,
            )
            transaction.on_commit(lambda pk=row.pk: _alert_queue(pk))
        row.save(update_fields=fields)
    for name in ("last_sync_at", "last_sync_status", "consecutive_failures", "enabled"):
        setattr(connection, name, getattr(row, name))
    connection.disabled_reason = row.disabled_reason
    return row


def _alert_queue(connection_id: int) -> None:
    from accounting.integrations.tasks import integrations_connection_alert

    integrations_connection_alert.delay(connection_id)


# ---------------------------------------------------------------------------------------------
# Sync errors: retry, resolve, ignore
# ---------------------------------------------------------------------------------------------

OPEN = (Resolution.OPEN, Resolution.RETRYING)


def _error_for_update(error: SyncError) -> SyncError:
    return SyncError.objects.select_for_update().get(pk=error.pk)


@transaction.atomic
def sync_error_retry(*, actor, error: SyncError) -> SyncError:
    """Retry now: the error's entity is synced again (records already fine are skipped)."""
    from accounting.integrations.sync import EXPORT_ENTITIES
    from accounting.integrations.tasks import integrations_sync

    _require_write(actor, error.company)
    error = _error_for_update(error)
    if error.resolution not in OPEN:
        raise ConflictError(f"The error is already {error.resolution}.", code="error_closed")
    before = {"resolution": error.resolution, "retry_count": error.retry_count}
    if (error.detail or {}).get("outcome_unknown") and error.local_id:
        # The person checked the other system and did not find the record: its pending ref
        # goes, so the retry sends it as a new create.
        from accounting.integrations.models import ExternalRef

        ExternalRef.objects.filter(
            connection_id=error.connection_id,
            local_type=error.local_type,
            local_id=error.local_id,
            external_id__startswith="pending:",
        ).delete()
        before["pending_cleared"] = True
    error.resolution = Resolution.RETRYING
    error.next_retry_at = timezone.now()
    error.save(update_fields=["resolution", "next_retry_at", "updated_at"])
    audit_record(
        action="integrations.sync_error.retried",
        actor=actor,
        system_job="" if actor else SYSTEM_JOB,
        company=error.company,
        obj=error,
        before=before,
        after={"resolution": error.resolution},
    )
    if error.entity:
        direction = "export" if error.entity in EXPORT_ENTITIES else "import"
        user_id = actor.pk if getattr(actor, "is_authenticated", False) else None
        transaction.on_commit(
            lambda: integrations_sync.delay(
                error.connection_id, error.entity, direction, user_id, SyncType.RETRY
            )
        )
    return error


def _close(*, actor, error: SyncError, resolution: str, note: str, action: str) -> SyncError:
    _require_write(actor, error.company)
    error = _error_for_update(error)
    if error.resolution not in OPEN:
        raise ConflictError(f"The error is already {error.resolution}.", code="error_closed")
    before = {"resolution": error.resolution}
    error.resolution = resolution
    error.resolved_by = actor if getattr(actor, "is_authenticated", False) else None
    error.resolved_at = timezone.now()
    error.next_retry_at = None
    if note:
        error.detail = {**(error.detail or {}), "note": note[:500]}
    error.save()
    audit_record(
        action=action,
        actor=actor,
        system_job="" if actor else SYSTEM_JOB,
        company=error.company,
        obj=error,
        before=before,
        after={"resolution": resolution, "note": note[:500]},
    )
    return error


@transaction.atomic
def sync_error_resolve(*, actor, error: SyncError, note: str = "") -> SyncError:
    return _close(
        actor=actor,
        error=error,
        resolution=Resolution.RESOLVED,
        note=note,
        action="integrations.sync_error.resolved",
    )


@transaction.atomic
def sync_error_ignore(*, actor, error: SyncError, note: str = "") -> SyncError:
    return _close(
        actor=actor,
        error=error,
        resolution=Resolution.IGNORED,
        note=note,
        action="integrations.sync_error.ignored",
    )


def sync_errors_due(*, now=None):
    """Open, retryable errors whose next retry is due (the partial index's query)."""
    now = now or timezone.now()
    return SyncError.objects.filter(
        resolution__in=OPEN, retryable=True, next_retry_at__lte=now
    ).select_related("connection")


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------


def sync_logs_retain(*, now=None) -> dict:
    """Archive runs older than INTEGRATIONS_ARCHIVE_AFTER_DAYS; delete runs older than
    INTEGRATIONS_DELETE_AFTER_DAYS with their closed errors, and finished webhook events older
    than that. A run's age is its start, or its creation when it never started. Returns the
    counts."""
    from django.db.models import Q

    from accounting.integrations.models import WebhookEvent

    now = now or timezone.now()
    archive_before = now - timedelta(days=settings.INTEGRATIONS_ARCHIVE_AFTER_DAYS)
    delete_before = now - timedelta(days=settings.INTEGRATIONS_DELETE_AFTER_DAYS)

    def older(moment):
        return Q(started_at__lt=moment) | Q(started_at__isnull=True, created_at__lt=moment)

    with transaction.atomic():
        deleted_errors, _ = SyncError.objects.filter(
            created_at__lt=delete_before,
            resolution__in=[Resolution.RESOLVED, Resolution.IGNORED],
        ).delete()
        # Open errors outlive their run (sync_run is SET_NULL), so nothing unresolved is lost.
        deleted_runs, _ = SyncRun.objects.filter(older(delete_before)).delete()
        archived = SyncRun.objects.filter(older(archive_before), archived=False).update(
            archived=True
        )
        # Events still waiting (received, processing) are kept whatever their age.
        deleted_events, _ = WebhookEvent.objects.filter(
            received_at__lt=delete_before,
            status__in=[
                WebhookEvent.Status.PROCESSED,
                WebhookEvent.Status.IGNORED,
                WebhookEvent.Status.FAILED,
            ],
        ).delete()
    counts = {
        "archived": archived,
        "deleted_runs": deleted_runs,
        "deleted_errors": deleted_errors,
        "deleted_webhook_events": deleted_events,
    }
    if any(counts.values()):
        logger.info("Integration sync logs retained: %s", counts)
    return counts


def sync_runs_reap(*, now=None) -> int:
    """Mark failed the runs still `running` longer than a task may live (CELERY_TASK_TIME_LIMIT
    plus a margin): their worker was killed, and they would otherwise show as running for
    ever. Returns how many."""
    now = now or timezone.now()
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT) + timedelta(minutes=5)
    stuck = list(
        SyncRun.objects.filter(
            status__in=[SyncStatus.RUNNING, SyncStatus.PENDING], started_at__lt=now - limit
        ).values_list("id", flat=True)
    )
    if not stuck:
        return 0
    reaped = (
        SyncRun.objects.filter(id__in=stuck, status__in=[SyncStatus.RUNNING, SyncStatus.PENDING])
        .exclude(started_at__isnull=True)
        .update(
            status=SyncStatus.FAILED,
            completed_at=now,
            error_summary=(
                "Stopped: still running after the task time limit (the worker was stopped); "
                "the next sync picks up where it left off."
            ),
        )
    )
    logger.warning("Reaped %d integration sync runs stuck in running", reaped)
    return reaped


def queue_size_measure() -> int:
    size = SyncError.objects.filter(resolution__in=OPEN, retryable=True).count()
    metrics.accounting_queue_size.set(size)
    return size


# --- Screens: account mapping, OAuth connect/callback, summary, sync in process ---


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
