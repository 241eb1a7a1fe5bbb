"""The integration hub in the admin (scope "integrations": owners, accountants and auditors see;
owners and accountants change).

- Connections: a form whose credentials are password fields that never show what is stored
  (blank keeps a value, "Remove" drops it; the page lists only which keys are set, masked);
  settings checked per system; on the change page the per-connection summary (last sync, runs by
  status over 30 days, open errors by category, last test, needs re-authorisation) and buttons
  Connect (OAuth systems: to the provider's consent page), Test connection, Sync now (per entity),
  Enable/Disable. The same commands are list actions.
- Sync runs: read-only with filters. Sync errors: Retry, Resolve and Ignore actions.
- Account mappings: set the local account (autocomplete). Webhook events: read-only.
Every change goes through accounting.integrations.services / services.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounting.integrations import services
from accounting.integrations.models import (
    AccountMapping,
    Entity,
    IntegrationConnection,
    SyncError,
    SyncRun,
    System,
    WebhookEvent,
)
from accounting.integrations.oauth import OAUTH_SYSTEMS
from accounting.integrations.sync import EXPORT_ENTITIES, IMPORT_ENTITIES
from accounting.integrations.validation import FIELDS, connection_settings_clean
from accounting.integrations.webhooks import WEBHOOK_SYSTEMS
from core.admin import SeveralCompaniesAdmin, adopt_saved
from core.errors import DomainError

SCOPE = "integrations"
MASK = "********"
# Credential fields offered by the form (all systems): name -> help.
CREDENTIAL_FIELDS = {
    "client_id": "OAuth client id (only to override the app configured in the settings).",
    "client_secret": "OAuth client secret (idem).",
    "api_key": "Busy bridge API key.",
    "webhook_key": "Webhook signing key / verifier token / shared secret.",
}


def _settings_help() -> str:
    lines = [
        f"{System(system).label}: "
        + ", ".join(f"{key} ({help_})" for key, (_label, help_) in fields.items())
        for system, fields in FIELDS.items()
    ]
    return "A JSON object. " + " | ".join(lines)


def _secret_field(help_text: str) -> forms.CharField:
    # render_value=False: what is stored is never written back into the page.
    return forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=help_text + " Leave blank to keep what is stored.",
    )


class ConnectionForm(forms.ModelForm):
    client_id = _secret_field(CREDENTIAL_FIELDS["client_id"])
    client_secret = _secret_field(CREDENTIAL_FIELDS["client_secret"])
    api_key = _secret_field(CREDENTIAL_FIELDS["api_key"])
    webhook_key = _secret_field(CREDENTIAL_FIELDS["webhook_key"])
    entities = forms.MultipleChoiceField(
        choices=Entity.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    remove_credentials = forms.MultipleChoiceField(
        choices=[], widget=forms.CheckboxSelectMultiple, required=False, label="Remove"
    )

    class Meta:
        model = IntegrationConnection
        fields = ["company", "system", "name", "enabled", "direction", "frequency", "entities"]
        fields += ["settings"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keys = self.instance.credential_keys if self.instance.pk else []
        self.fields["remove_credentials"].choices = [(key, key) for key in keys]
        if "settings" in self.fields:
            self.fields["settings"].help_text = _settings_help()

    def clean(self):
        cleaned = super().clean()
        system = cleaned.get("system") or self.instance.system
        if system and "settings" in cleaned:
            try:
                cleaned["settings"] = connection_settings_clean(system, cleaned["settings"])
            except DomainError as error:
                raise ValidationError(
                    {"settings": [str(m) for m in error.fields.get("settings", [error.message])]}
                ) from error
        return cleaned

    def credentials_patch(self) -> dict:
        patch = {
            name: self.cleaned_data[name]
            for name in CREDENTIAL_FIELDS
            if self.cleaned_data.get(name)
        }
        for key in self.cleaned_data.get("remove_credentials") or []:
            patch[key] = None
        return patch


class IntegrationsAdmin(SeveralCompaniesAdmin):
    scope = SCOPE

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _each(self, request, queryset, label, call) -> None:
        done, refused = 0, []
        for obj in queryset:
            try:
                call(obj)
                done += 1
            except DomainError as error:
                refused.append(f"{obj}: {error.message}")
        if done:
            self.message_user(request, f"{label}: {done}.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)


@admin.register(IntegrationConnection)
class IntegrationConnectionAdmin(IntegrationsAdmin):
    form = ConnectionForm
    change_form_template = "admin/integrations/integrationconnection/change_form.html"
    list_display = [
        "name",
        "system",
        "enabled",
        "last_sync_at",
        "last_sync_status",
        "last_test",
        "reauth",
        "credentials_set",
    ]
    list_filter = ["system", "enabled", "needs_reauth", "last_sync_status"]
    search_fields = ["name"]
    ordering = ["system", "name"]
    actions = ["test_selected", "sync_selected", "enable_selected", "disable_selected"]

    def get_fieldsets(self, request, obj=None):
        credentials = [*CREDENTIAL_FIELDS, "remove_credentials"] if obj else [*CREDENTIAL_FIELDS]
        fieldsets = [
            (None, {"fields": ["company", "system", "name", "enabled"]}),
            ("Sync", {"fields": ["direction", "frequency", "entities"]}),
            ("Connection settings", {"fields": ["settings"]}),
            ("Credentials (write-only)", {"fields": ["credentials_set", *credentials]}),
        ]
        if obj:
            fieldsets.insert(0, ("Summary", {"fields": ["summary"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        readonly = ["credentials_set", "summary"]
        return ["company", "system", *readonly] if obj else readonly

    @admin.display(description="Credentials set")
    def credentials_set(self, obj):
        keys = obj.credential_keys if obj and obj.pk else []
        if not keys:
            return "none"
        return ", ".join(f"{key} {MASK}" for key in keys)

    @admin.display(description="Last test")
    def last_test(self, obj):
        if obj.last_test_success is None:
            return "-"
        outcome = "ok" if obj.last_test_success else "failed"
        return f"{outcome} ({obj.last_test_latency_ms} ms)"

    @admin.display(description="Re-authorise", boolean=True)
    def reauth(self, obj):
        return obj.needs_reauth

    @admin.display(description="Summary (last 30 days)")
    def summary(self, obj):
        if not obj or not obj.pk:
            return "-"
        data = services.connection_summary_read(obj)
        warning = ""
        if data["needs_reauth"]:
            warning = format_html(
                '<p class="errornote">This connection needs re-authorisation: use Connect.</p>'
            )
        elif not data["enabled"] and obj.disabled_reason:
            warning = format_html(
                '<p class="errornote">Disabled after repeated failures: {}</p>',
                obj.disabled_reason,
            )
        if obj.last_test_at is None:
            test = "never"
        else:
            test = format_html(
                "{} on {} ({} ms{}) {}",
                "succeeded" if obj.last_test_success else "failed",
                obj.last_test_at.strftime("%Y-%m-%d %H:%M"),
                obj.last_test_latency_ms,
                f", {obj.last_test_version}" if obj.last_test_version else "",
                obj.last_test_message,
            )
        categories = (
            format_html_join(", ", "{} {}", sorted(data["open_errors_by_category"].items()))
            or "none"
        )
        rows = [
            (
                "Last sync",
                format_html(
                    "{} {}",
                    data["last_sync_at"].strftime("%Y-%m-%d %H:%M")
                    if data["last_sync_at"]
                    else "never",
                    data["last_sync_status"] or "",
                ),
            ),
            (
                "Runs",
                format_html(
                    "{} in all: {} succeeded, {} partial, {} failed",
                    data["runs"],
                    data["succeeded"],
                    data["partial"],
                    data["failed"],
                ),
            ),
            ("Open errors", format_html("{} ({})", data["open_errors"], categories)),
            ("Consecutive failures", data["consecutive_failures"]),
            ("Last connection test", test),
        ]
        if obj.system in WEBHOOK_SYSTEMS:
            rows.append(
                (
                    "Webhook URL",
                    format_html(
                        "<code>/api/v1/accounting/integrations/{}/webhooks/{}</code> (signing "
                        "secret: the <code>webhook_key</code> credential)",
                        obj.system,
                        obj.pk,
                    ),
                )
            )
        table = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", ((label, value) for label, value in rows)
        )
        return format_html("{}<table>{}</table>", warning, table)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        credentials = form.credentials_patch()
        if change:
            changes = {name: data[name] for name in form.changed_data if name in services.EDITABLE}
            saved = services.connection_update(
                actor=request.user, connection=obj, credentials=credentials, **changes
            )
        else:
            saved = services.connection_create(
                actor=request.user,
                company=data["company"],
                system=data["system"],
                name=data["name"],
                settings=data.get("settings") or {},
                credentials=credentials,
                direction=data["direction"],
                frequency=data["frequency"],
                entities=list(data.get("entities") or []),
                enabled=data.get("enabled", True),
            )
        adopt_saved(obj, saved)

    def delete_model(self, request, obj):
        services.connection_delete(actor=request.user, connection=obj)

    # --- buttons on the change page ---------------------------------------------------------

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/connect/",
                self.admin_site.admin_view(self.connect_view),
                name="integrations_integrationconnection_connect",
            ),
            path(
                "<int:pk>/command/",
                self.admin_site.admin_view(self.command_view),
                name="integrations_integrationconnection_command",
            ),
        ]
        return urls + super().get_urls()

    def _writable(self, request, pk):
        connection = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, connection):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return connection

    def _back(self, connection):
        return HttpResponseRedirect(
            reverse("admin:integrations_integrationconnection_change", args=[connection.pk])
        )

    def connect_view(self, request, pk):
        connection = self._writable(request, pk)
        try:
            url = services.oauth_connect_begin(
                actor=request.user,
                connection=connection,
                redirect_uri=services.oauth_redirect_uri(
                    connection.system, build_absolute_uri=request.build_absolute_uri
                ),
            )
        except DomainError as error:
            self.message_user(request, f"Connect: {error.message}", messages.ERROR)
            return self._back(connection)
        return HttpResponseRedirect(url)

    def command_view(self, request, pk):
        connection = self._writable(request, pk)
        if request.method != "POST":
            return self._back(connection)
        command = request.POST.get("command", "")
        try:
            if command == "test":
                outcome = services.connection_test(actor=request.user, connection=connection)
                level = messages.SUCCESS if outcome["success"] else messages.ERROR
                self.message_user(
                    request,
                    f"Connection test {'succeeded' if outcome['success'] else 'failed'} in "
                    f"{outcome['latency_ms']} ms"
                    + (f", version {outcome['version']}" if outcome["version"] else "")
                    + (f": {outcome['message']}" if outcome["message"] else "."),
                    level,
                )
            elif command.startswith("sync:"):
                entity = command.removeprefix("sync:")
                pairs = services.sync_start(
                    actor=request.user, connection=connection, entities=[entity] if entity else None
                )
                names = ", ".join(f"{e} ({d})" for e, d in pairs)
                self.message_user(request, f"Sync queued: {names}.", messages.SUCCESS)
            elif command == "enable":
                services.connection_enable(actor=request.user, connection=connection)
                self.message_user(request, "Connection enabled.", messages.SUCCESS)
            elif command == "disable":
                services.connection_disable(actor=request.user, connection=connection)
                self.message_user(request, "Connection disabled.", messages.SUCCESS)
            else:
                self.message_user(request, "Unknown command.", messages.ERROR)
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)
        return self._back(connection)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            can = self.has_change_permission(request, obj)
            syncable = [
                entity
                for entity in obj.entities
                if (entity in IMPORT_ENTITIES and obj.direction in ("import", "bidirectional"))
                or (entity in EXPORT_ENTITIES and obj.direction in ("export", "bidirectional"))
            ]
            context.update(
                can_operate=can,
                oauth=obj.system in OAUTH_SYSTEMS,
                command_url=reverse(
                    "admin:integrations_integrationconnection_command", args=[obj.pk]
                ),
                connect_url=reverse(
                    "admin:integrations_integrationconnection_connect", args=[obj.pk]
                ),
                sync_entities=syncable,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- list actions -----------------------------------------------------------------------

    @admin.action(description="Test connection", permissions=["change"])
    def test_selected(self, request, queryset):
        ok = failed = 0
        for connection in queryset:
            outcome = services.connection_test(actor=request.user, connection=connection)
            ok, failed = (ok + 1, failed) if outcome["success"] else (ok, failed + 1)
        self.message_user(
            request,
            f"Tested {ok + failed}: {ok} answered, {failed} failed.",
            messages.SUCCESS if not failed else messages.WARNING,
        )

    @admin.action(description="Sync now (every entity)", permissions=["change"])
    def sync_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            "Syncs queued for connections",
            lambda c: services.sync_start(actor=request.user, connection=c),
        )

    @admin.action(description="Enable", permissions=["change"])
    def enable_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            "Enabled",
            lambda c: services.connection_enable(actor=request.user, connection=c),
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            "Disabled",
            lambda c: services.connection_disable(actor=request.user, connection=c),
        )


@admin.register(SyncRun)
class SyncRunAdmin(IntegrationsAdmin):
    list_display = [
        "id",
        "connection",
        "sync_type",
        "entity",
        "status",
        "records_processed",
        "records_succeeded",
        "records_failed",
        "started_at",
        "duration_ms",
    ]
    list_filter = ["status", "sync_type", "entity", "archived", "connection__system"]
    list_select_related = ["connection"]
    search_fields = ["error_summary", "connection__name"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SyncError)
class SyncErrorAdmin(IntegrationsAdmin):
    list_display = [
        "created_at",
        "connection",
        "entity",
        "external_id",
        "category",
        "severity",
        "short_message",
        "resolution",
        "retry_count",
        "next_retry_at",
    ]
    list_filter = ["resolution", "category", "severity", "entity", "retryable"]
    list_select_related = ["connection"]
    search_fields = ["message", "external_id", "local_id"]
    raw_id_fields = ["sync_run"]
    ordering = ["-created_at", "-id"]
    actions = ["retry_selected", "resolve_selected", "ignore_selected"]

    @admin.display(description="Message")
    def short_message(self, obj):
        return obj.message if len(obj.message) <= 90 else obj.message[:87] + "…"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in SyncError._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry", permissions=["change"])
    def retry_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            "Errors queued for retry",
            lambda e: services.sync_error_retry(actor=request.user, error=e),
        )

    @admin.action(description="Resolve", permissions=["change"])
    def resolve_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            "Errors resolved",
            lambda e: services.sync_error_resolve(actor=request.user, error=e),
        )

    @admin.action(description="Ignore", permissions=["change"])
    def ignore_selected(self, request, queryset):
        self._each(
            request,
            queryset,
            "Errors ignored",
            lambda e: services.sync_error_ignore(actor=request.user, error=e),
        )


@admin.register(AccountMapping)
class AccountMappingAdmin(IntegrationsAdmin):
    list_display = ["external_code", "external_name", "external_type", "account", "connection"]
    list_filter = ["connection__system", ("account", admin.EmptyFieldListFilter)]
    list_select_related = ["connection", "account"]
    search_fields = ["external_code", "external_name"]
    autocomplete_fields = ["account"]
    fields = [
        "connection",
        "external_id",
        "external_code",
        "external_name",
        "external_type",
        "account",
        "imported_at",
    ]
    readonly_fields = [
        "connection",
        "external_id",
        "external_code",
        "external_name",
        "external_type",
        "imported_at",
    ]

    def has_add_permission(self, request):
        return False  # mappings come from an accounts import

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.account_mapping_set(
            actor=request.user, mapping=obj, account=form.cleaned_data.get("account")
        )
        adopt_saved(obj, saved)


@admin.register(WebhookEvent)
class WebhookEventAdmin(IntegrationsAdmin):
    list_display = [
        "received_at",
        "connection",
        "system",
        "entity",
        "external_id",
        "operation",
        "status",
        "attempts",
    ]
    list_filter = ["system", "status", "entity"]
    list_select_related = ["connection"]
    search_fields = ["external_id", "event_id"]
    ordering = ["-received_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
