"""Serializers of the integration hub API. Credentials are write-only: accepted on create and
update, never returned; responses name the keys that are set (`credential_keys`) and show each as
a fixed mask (`credentials_masked`)."""

from __future__ import annotations

from rest_framework import serializers

from accounting.integrations.models import (
    AccountMapping,
    Direction,
    Entity,
    IntegrationConnection,
    SyncError,
    SyncRun,
    SyncStatus,
)
from accounting.integrations.validation import connection_settings_clean
from accounting.models import Account

MASK = "********"


class ConnectionSerializer(serializers.ModelSerializer):
    credentials = serializers.DictField(
        child=serializers.CharField(allow_blank=True, allow_null=True, trim_whitespace=False),
        write_only=True,
        required=False,
        help_text="Write-only. Keys merge into the stored credentials; a key set to null or '' "
        "is removed. Never returned.",
    )
    credential_keys = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Names of the credentials set."
    )
    credentials_masked = serializers.SerializerMethodField(
        help_text="Each credential set, as a fixed mask."
    )
    entities = serializers.ListField(
        child=serializers.ChoiceField(choices=Entity.choices), required=False
    )
    # Declared: DRF drops allow_blank from read-only model fields; "" is "never synced".
    last_sync_status = serializers.ChoiceField(
        choices=SyncStatus.choices, allow_blank=True, read_only=True
    )

    class Meta:
        model = IntegrationConnection
        fields = [
            "id",
            "system",
            "name",
            "enabled",
            "settings",
            "credentials",
            "credential_keys",
            "credentials_masked",
            "direction",
            "frequency",
            "entities",
            "cursors",
            "needs_reauth",
            "disabled_reason",
            "last_sync_at",
            "last_sync_status",
            "consecutive_failures",
            "last_test_at",
            "last_test_success",
            "last_test_latency_ms",
            "last_test_version",
            "last_test_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "cursors",
            "needs_reauth",
            "disabled_reason",
            "last_sync_at",
            "last_sync_status",
            "consecutive_failures",
            "last_test_at",
            "last_test_success",
            "last_test_latency_ms",
            "last_test_version",
            "last_test_message",
            "created_at",
            "updated_at",
        ]

    def get_credentials_masked(self, obj) -> dict[str, str]:
        return dict.fromkeys(obj.credential_keys, MASK)

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["system"].read_only = True  # a connection never changes system
        return fields

    def validate(self, attrs):
        system = attrs.get("system") or getattr(self.instance, "system", "")
        if "settings" in attrs or self.instance is None:
            attrs["settings"] = connection_settings_clean(system, attrs.get("settings"))
        return attrs


class ConnectionSummarySerializer(serializers.Serializer):
    days = serializers.IntegerField()
    runs = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    partial = serializers.IntegerField()
    failed = serializers.IntegerField()
    open_errors = serializers.IntegerField()
    retryable = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    open_errors_by_category = serializers.DictField(child=serializers.IntegerField())
    linked = serializers.DictField(child=serializers.IntegerField())
    enabled = serializers.BooleanField()
    needs_reauth = serializers.BooleanField()
    consecutive_failures = serializers.IntegerField()
    last_sync_at = serializers.DateTimeField(allow_null=True)
    last_sync_status = serializers.CharField()
    last_test_at = serializers.DateTimeField(allow_null=True)
    last_test_success = serializers.BooleanField(allow_null=True)
    last_test_latency_ms = serializers.IntegerField(allow_null=True)


class TestResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    latency_ms = serializers.IntegerField()
    version = serializers.CharField(allow_blank=True)
    message = serializers.CharField(allow_blank=True)


class TestConnectionRequestSerializer(serializers.Serializer):
    configId = serializers.IntegerField(help_text="The connection's id.")  # noqa: N815 - the guide


class SyncRequestSerializer(serializers.Serializer):
    entity = serializers.ChoiceField(
        choices=Entity.choices,
        required=False,
        help_text="One entity; empty: every entity of the connection.",
    )
    direction = serializers.ChoiceField(
        choices=[Direction.IMPORT, Direction.EXPORT],
        required=False,
        help_text="import (accounts, contacts) or export (invoices, credit notes, payments, "
        "journals); empty: the entity's own.",
    )


class QueuedSyncSerializer(serializers.Serializer):
    entity = serializers.CharField()
    direction = serializers.CharField()


class SyncQueuedSerializer(serializers.Serializer):
    queued = QueuedSyncSerializer(many=True)
    runs_url = serializers.CharField()


class SyncRunSerializer(serializers.ModelSerializer):
    connection_name = serializers.CharField(source="connection.name", read_only=True)
    system = serializers.CharField(source="connection.system", read_only=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "connection",
            "connection_name",
            "system",
            "sync_type",
            "entity",
            "status",
            "records_processed",
            "records_succeeded",
            "records_failed",
            "started_at",
            "completed_at",
            "duration_ms",
            "error_summary",
            "triggered_by",
            "archived",
        ]
        read_only_fields = fields


class SyncErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncError
        fields = [
            "id",
            "connection",
            "sync_run",
            "entity",
            "external_id",
            "local_type",
            "local_id",
            "category",
            "severity",
            "message",
            "detail",
            "retryable",
            "retry_count",
            "max_retries",
            "next_retry_at",
            "resolution",
            "suggested_fix",
            "resolved_by",
            "resolved_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ErrorActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class AccountMappingSerializer(serializers.ModelSerializer):
    account = serializers.PrimaryKeyRelatedField(
        queryset=Account.objects.all(), allow_null=True, required=False
    )
    account_code = serializers.CharField(source="account.code", read_only=True, allow_null=True)

    class Meta:
        model = AccountMapping
        fields = [
            "id",
            "connection",
            "external_id",
            "external_code",
            "external_name",
            "external_type",
            "account",
            "account_code",
            "imported_at",
        ]
        read_only_fields = [
            "connection",
            "external_id",
            "external_code",
            "external_name",
            "external_type",
            "imported_at",
        ]
