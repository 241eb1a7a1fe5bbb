from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError

from core import services
from core.models import AuditEvent, Company, Membership, User
from core.roles import Role, roles_for
from core.selectors import companies_for
from core.tenancy import scoped_to


class TenantAdmin(admin.ModelAdmin):
    """Base for every company-owned model in the admin. Staff see and change only the companies
    their memberships allow, per core.roles.ROLE_MATRIX; superusers see everything."""

    scope = ""
    company_field = "company"

    def _company_of(self, obj):
        path = self.company_field.split("__")
        for name in path[:-1]:
            obj = getattr(obj, name)
        return obj if path[-1] == "pk" else getattr(obj, path[-1])

    def _allowed(self, request, obj, *, write: bool) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        if obj is None:
            # Asked once per registered model for the sidebar and the app index: the user's
            # roles are read once per request, so pages don't grow with the number of modules.
            roles = request.__dict__.get("_tenant_admin_roles")
            if roles is None:
                roles = frozenset(
                    Membership.objects.filter(user=user).values_list("role", flat=True)
                )
                request.__dict__["_tenant_admin_roles"] = roles
            return bool(roles & roles_for(self.scope, write=write))
        companies = companies_for(user, self.scope, write=write)
        return companies.filter(pk=self._company_of(obj).pk).exists()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            **{f"{self.company_field}__in": companies_for(request.user, self.scope, write=False)}
        )

    def has_module_permission(self, request):
        return self._allowed(request, None, write=False)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request, obj, write=False)

    def has_add_permission(self, request):
        return self._allowed(request, None, write=True)

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, obj, write=True)

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, obj, write=True)

    def get_list_filter(self, request):
        # A plain company filter would list every company by name; offer only visible ones.
        return [
            ("company", admin.RelatedOnlyFieldListFilter) if item == "company" else item
            for item in super().get_list_filter(request)
        ]

    def _related_choices(self, db_field, request):
        """Choices come only from companies this user may write: no cross-company links."""
        companies = companies_for(request.user, self.scope, write=True)
        return scoped_to(db_field.related_model._default_manager.all(), companies)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", self._related_choices(db_field, request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", self._related_choices(db_field, request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)


def readable_companies(request, scope: str) -> list:
    """The companies this user may read in `scope`, by name, looked up once per request."""
    cache = request.__dict__.setdefault("_readable_companies", {})
    if scope not in cache:
        cache[scope] = list(companies_for(request.user, scope, write=False).order_by("name"))
    return cache[scope]


def adopt_saved(obj, saved) -> None:
    """Copy what a service saved onto the admin's instance, so logging and the redirect that
    follow name the saved row."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False


class IdListFilter(admin.SimpleListFilter):
    """A filter whose choices are row ids of `field`; anything else in the URL matches nothing."""

    field = ""

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(**{self.field: value}) if value.isdigit() else queryset.none()


class CompanyListFilter(IdListFilter):
    """The companies the user may read in the admin's scope, and no others."""

    field = "company_id"
    title = "company"
    parameter_name = "company"

    def lookups(self, request, model_admin):
        return [
            (company.pk, company.name) for company in readable_companies(request, model_admin.scope)
        ]


class SeveralCompaniesAdmin(TenantAdmin):
    """A user who reads several companies in the scope also gets a company column and filter."""

    def _several_companies(self, request) -> bool:
        return len(readable_companies(request, self.scope)) > 1

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if self._several_companies(request) and "company" not in columns:
            columns.insert(1, "company")
        return columns

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if self._several_companies(request):
            filters.insert(0, CompanyListFilter)
        return filters

    def get_list_select_related(self, request):
        related = super().get_list_select_related(request)
        if self._several_companies(request) and isinstance(related, list | tuple):
            return [*related, "company"]
        return related


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Accounts are a platform matter (superusers). Every change, the password included, is
    written to the audit trail: who may sign in, and with which rights, is security state."""

    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active"]

    def log_addition(self, request, obj, message):
        services.audit_record(
            action="user.created", actor=request.user, obj=obj, after={"change": message}
        )
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        services.audit_record(
            action="user.changed", actor=request.user, obj=obj, after={"change": message}
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for user in queryset:
            services.audit_record(
                action="user.deleted",
                actor=request.user,
                obj=user,
                before={"username": user.get_username()},
            )
        return super().log_deletions(request, queryset)


class MembershipInline(admin.TabularInline):
    """Who belongs to the company, shown on its page; roles are changed on each membership."""

    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_view_permission(self, request, obj=None):
        companies = companies_for(request.user, "members", write=False)
        return obj is None or companies.filter(pk=obj.pk).exists()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Company)
class CompanyAdmin(TenantAdmin):
    scope = "company"
    company_field = "pk"
    list_display = [
        "name",
        "slug",
        "country",
        "base_currency",
        "time_zone",
        "bin_display",
        "is_active",
    ]
    list_filter = ["country", "base_currency", "is_active"]
    search_fields = ["name", "legal_name", "slug", "bin", "etin"]
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "legal_name", "slug", "is_active"]}),
        (
            "Locale",
            {"fields": ["country", "base_currency", "time_zone", "fiscal_year_start_month"]},
        ),
        ("Tax registration", {"fields": ["bin", "etin", "address"]}),
    ]

    @admin.display(description="BIN")
    def bin_display(self, obj):
        return obj.bin_display

    def get_readonly_fields(self, request, obj=None):
        readonly = ["slug"] if obj else []
        return readonly if request.user.is_superuser else [*readonly, "is_active"]

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj else {"slug": ["name"]}

    def has_add_permission(self, request):
        return request.user.is_superuser  # creating a tenant is a platform operation

    def has_delete_permission(self, request, obj=None):
        return False  # companies are deactivated, never deleted: their books must stay

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name]
            for name in services.COMPANY_EDITABLE_FIELDS
            if name in form.cleaned_data
        }
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = services.company_update(actor=request.user, company=obj, **changed)
        else:
            saved = services.company_create(actor=request.user, slug=obj.slug, **fields)
        obj.pk = saved.pk
        obj.created_at, obj.updated_at = saved.created_at, saved.updated_at


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["company", "user", "role"]

    def clean(self):
        cleaned = super().clean()
        instance = self.instance
        demoting = instance.pk and cleaned.get("role") != Role.OWNER
        if demoting and services.membership_is_last_owner(instance):
            raise ValidationError(
                "A company must keep at least one owner; make someone else owner first."
            )
        return cleaned


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    scope = "members"
    form = MembershipAdminForm
    list_display = ["user", "company", "role", "created_at"]
    list_filter = ["role", "company"]
    list_select_related = ["user", "company"]
    search_fields = ["user__username", "user__email", "company__name"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return ["company", "user"] if obj else []

    def has_add_permission(self, request):
        # Attaching an existing account (which may belong to other companies) is a platform
        # operation. Owners add new members, with a new account, through the API.
        return request.user.is_active and request.user.is_superuser

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through the service
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            saved = services.membership_change_role(
                actor=request.user, membership=obj, role=form.cleaned_data["role"]
            )
        else:
            saved = services.membership_create(
                actor=request.user, company=obj.company, user=obj.user, role=obj.role
            )
        obj.pk, obj.created_at = saved.pk, saved.created_at

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for membership in objs:
            if services.membership_is_last_owner(membership):
                protected = [*protected, f"{membership}: the last owner of {membership.company}"]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        services.membership_delete(actor=request.user, membership=obj)


@admin.register(AuditEvent)
class AuditEventAdmin(TenantAdmin):
    scope = "audit"
    list_display = ["created_at", "company", "actor_label", "action", "object_repr"]
    list_filter = ["action", "object_type", "company"]
    list_select_related = ["company"]
    search_fields = ["action", "actor_label", "object_repr", "object_id", "request_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
