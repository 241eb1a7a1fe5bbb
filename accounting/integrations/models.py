"""Integration hub data: connections to external accounting systems, sync runs, sync errors,
external references (local row <-> external id and version) and imported account mappings.

Credentials live only in `IntegrationConnection.credentials_encrypted` as a Fernet token of a
JSON dict (accounting/integrations/crypto.py); read them with `connection.credentials` and write
them with `connection.set_credentials(...)`. Nothing here prints them: `__str__` and `__repr__`
show the system and name only. Write through accounting.integrations.services.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from core.models import Company


class System(models.TextChoices):
    TALLY = "tally", "Tally"
    BUSY = "busy", "Busy"
    ZOHO_BOOKS = "zoho_books", "Zoho Books"
    QUICKBOOKS = "quickbooks", "QuickBooks Online"
    XERO = "xero", "Xero"


class Direction(models.TextChoices):
    IMPORT = "import", "Import"
    EXPORT = "export", "Export"
    BIDIRECTIONAL = "bidirectional", "Both ways"


class Frequency(models.TextChoices):
    MANUAL = "manual", "Manual"
    HOURLY = "hourly", "Hourly"
    EVERY_6_HOURS = "every_6_hours", "Every 6 hours"
    DAILY = "daily", "Daily"


class Entity(models.TextChoices):
    """What a connection syncs (the plural names used in `IntegrationConnection.entities`)."""

    ACCOUNTS = "accounts", "Chart of accounts"
    CONTACTS = "contacts", "Contacts"
    INVOICES = "invoices", "Invoices"
    CREDIT_NOTES = "credit_notes", "Credit notes"
    PAYMENTS = "payments", "Payments"
    JOURNALS = "journals", "Journal entries"


class RefEntity(models.TextChoices):
    """The kind of one referenced record (singular, as in ExternalRef.entity)."""

    ACCOUNT = "account", "Account"
    CONTACT = "contact", "Contact"
    INVOICE = "invoice", "Invoice"
    CREDIT_NOTE = "credit_note", "Credit note"
    PAYMENT = "payment", "Payment"
    JOURNAL = "journal", "Journal entry"


class SyncStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"


class SyncType(models.TextChoices):
    IMPORT = "import", "Import"
    EXPORT = "export", "Export"
    TEST = "test", "Connection test"
    WEBHOOK = "webhook", "Webhook"
    RETRY = "retry", "Retry"


class ErrorCategory(models.TextChoices):
    AUTH = "auth", "Authentication"
    VALIDATION = "validation", "Validation"
    RATE_LIMIT = "rate_limit", "Rate limit"
    NETWORK = "network", "Network"
    CONFLICT = "conflict", "Conflict"
    NOT_FOUND = "not_found", "Not found"
    SERVER = "server", "Server"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
    CRITICAL = "critical", "Critical"


class Resolution(models.TextChoices):
    OPEN = "open", "Open"
    RETRYING = "retrying", "Retrying"
    RESOLVED = "resolved", "Resolved"
    IGNORED = "ignored", "Ignored"


def _default_entities() -> list[str]:
    return [Entity.ACCOUNTS, Entity.CONTACTS]


class IntegrationConnection(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    system = models.CharField(max_length=20, choices=System.choices)
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    settings = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="Non-secret connection settings: host/port (Tally), bridge URL (Busy), region "
        "and organization_id (Zoho), realm_id and environment (QuickBooks), tenant_id (Xero), "
        "base_url override.",
    )
    credentials_encrypted = models.TextField(
        blank=True, help_text="Fernet token of the JSON credentials; never shown."
    )
    direction = models.CharField(
        max_length=15, choices=Direction.choices, default=Direction.BIDIRECTIONAL
    )
    frequency = models.CharField(max_length=15, choices=Frequency.choices, default=Frequency.MANUAL)
    entities = models.JSONField(default=_default_entities, blank=True)
    cursors = models.JSONField(
        default=dict, blank=True, help_text="Per-entity incremental cursor (AlterID, timestamp)."
    )
    needs_reauth = models.BooleanField(default=False)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_status = models.CharField(max_length=10, choices=SyncStatus.choices, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_success = models.BooleanField(null=True, blank=True)
    last_test_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True)
    # Added beyond the plan: what the last connection test reported as the remote version, and
    # why a connection was switched off automatically (empty when switched off by hand).
    last_test_version = models.CharField(max_length=100, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company_id", "system", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "system", "name"], name="integrations_connection_unique_name"
            ),
            models.CheckConstraint(
                condition=Q(system__in=System.values), name="integrations_connection_system_valid"
            ),
            models.CheckConstraint(
                condition=Q(direction__in=Direction.values),
                name="integrations_connection_direction_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_system_display()}: {self.name}"

    def __repr__(self) -> str:
        return f"<IntegrationConnection {self.pk} {self.system} {self.name!r}>"

    @property
    def credentials(self) -> dict:
        from accounting.integrations.crypto import decrypt_json

        return decrypt_json(self.credentials_encrypted) if self.credentials_encrypted else {}

    def set_credentials(self, values: dict) -> None:
        from accounting.integrations.crypto import encrypt_json

        self.credentials_encrypted = encrypt_json(values) if values else ""

    @property
    def credential_keys(self) -> list[str]:
        """Which credentials are set (names only), for display and audit."""
        return sorted(self.credentials)


class SyncRun(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    connection = models.ForeignKey(
        IntegrationConnection, on_delete=models.CASCADE, related_name="runs"
    )
    sync_type = models.CharField(max_length=10, choices=SyncType.choices)
    entity = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    records_processed = models.PositiveIntegerField(default=0)
    records_succeeded = models.PositiveIntegerField(default=0)
    records_failed = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_summary = models.TextField(blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when the system (beat, webhook, retry) started it.",
    )
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["connection", "-started_at"], name="integrations_run_conn"),
            models.Index(fields=["status", "started_at"], name="integrations_run_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=SyncStatus.values), name="integrations_run_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sync_type} {self.entity} #{self.pk} ({self.status})"


class SyncError(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    connection = models.ForeignKey(
        IntegrationConnection, on_delete=models.CASCADE, related_name="errors"
    )
    sync_run = models.ForeignKey(
        SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="errors"
    )
    entity = models.CharField(max_length=20, blank=True)
    external_id = models.CharField(max_length=255, blank=True)
    local_type = models.CharField(max_length=100, blank=True)
    local_id = models.CharField(max_length=64, blank=True)
    category = models.CharField(max_length=15, choices=ErrorCategory.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.ERROR)
    message = models.TextField()
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    retryable = models.BooleanField(default=False)
    retry_count = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=5)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(
        max_length=10, choices=Resolution.choices, default=Resolution.OPEN
    )
    suggested_fix = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_retry_at"],
                name="integrations_error_due",
                condition=Q(resolution__in=["open", "retrying"], retryable=True),
            ),
            models.Index(fields=["connection", "resolution"], name="integrations_error_conn"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=ErrorCategory.values),
                name="integrations_error_category_valid",
            ),
            models.CheckConstraint(
                condition=Q(resolution__in=Resolution.values),
                name="integrations_error_resolution_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.entity} {self.external_id or self.local_id}".strip()


class ExternalRef(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    connection = models.ForeignKey(
        IntegrationConnection, on_delete=models.CASCADE, related_name="refs"
    )
    entity = models.CharField(max_length=20, choices=RefEntity.choices)
    local_type = models.CharField(
        max_length=100, help_text='"invoicing.invoice", "invoicing.party"'
    )
    local_id = models.CharField(max_length=64)
    external_id = models.CharField(max_length=255)
    external_version = models.CharField(
        max_length=100, blank=True, help_text="SyncToken, Tally AlterID, UpdatedDateUTC…"
    )
    last_synced_hash = models.CharField(max_length=64, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "external_id"], name="integrations_ref_external"
            ),
            models.UniqueConstraint(
                fields=["connection", "local_type", "local_id"], name="integrations_ref_local"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.local_type}:{self.local_id} -> {self.entity}:{self.external_id}"


class AccountMapping(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    connection = models.ForeignKey(
        IntegrationConnection, on_delete=models.CASCADE, related_name="account_mappings"
    )
    external_id = models.CharField(max_length=255)
    external_code = models.CharField(max_length=100, blank=True)
    external_name = models.CharField(max_length=255)
    external_type = models.CharField(max_length=100, blank=True)
    account = models.ForeignKey(
        "accounting.Account", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_code", "external_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "external_id"], name="integrations_mapping_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.external_code} {self.external_name}".strip()


class WebhookEvent(models.Model):
    """One change announced by a webhook (accounting/integrations/webhooks.py), stored once per
    (connection, event_id) however often the sender redelivers it, and processed by the
    `webhook_process` task, which re-fetches the entity through the connector."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    connection = models.ForeignKey(
        IntegrationConnection, on_delete=models.CASCADE, related_name="webhook_events"
    )
    system = models.CharField(max_length=20, choices=System.choices)
    event_id = models.CharField(
        max_length=64, help_text="sha256 of what identifies the change (stable on redelivery)."
    )
    entity = models.CharField(max_length=30)
    external_id = models.CharField(max_length=255)
    operation = models.CharField(max_length=20, blank=True)
    occurred_at = models.CharField(max_length=50, blank=True, help_text="The sender's timestamp.")
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last took it (stale claims are retaken)."
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "received_at"], name="integrations_webhook_status"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "event_id"], name="integrations_webhook_event_once"
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["received", "processing", "processed", "failed", "ignored"]
                ),
                name="integrations_webhook_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.system} {self.entity} {self.external_id} {self.operation}".strip()
