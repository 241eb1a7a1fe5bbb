"""Writes for companies, memberships and the audit trail. Admin, API and commands call these."""

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils.text import slugify
from django_guid import get_guid

from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from core.models import AuditEvent, Company, Membership
from core.roles import Role
from core.signals import company_changing, company_created

User = get_user_model()

# Settings an owner may change. `is_active` is the platform's (superusers'): a company
# switched off answers 404 to all its members.
COMPANY_EDITABLE_FIELDS = (
    "name",
    "legal_name",
    "country",
    "base_currency",
    "time_zone",
    "fiscal_year_start_month",
    "bin",
    "etin",
    "address",
    "is_active",
)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def model_snapshot(obj: models.Model, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The concrete field values of `obj` as JSON-friendly data, for audit before/after."""
    names = fields or tuple(f.attname for f in obj._meta.concrete_fields)
    return {name: _json_value(getattr(obj, name)) for name in names}


def audit_record(
    *,
    action: str,
    actor=None,
    system_job: str = "",
    company: Company | None = None,
    obj: models.Model | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one audit event. Call it inside the transaction of the change it describes."""
    if actor is not None and getattr(actor, "is_authenticated", False):
        actor_label = actor.get_username()
    else:
        actor = None
        actor_label = f"system:{system_job}" if system_job else "system"
    return AuditEvent.objects.create(
        company=company,
        actor=actor,
        actor_label=actor_label,
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        before=before,
        after=after,
        request_id=get_guid() or "",
    )


def _full_clean(obj: models.Model, **kwargs) -> None:
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        raise ValidationFailed.from_django(exc) from None


def _normalise_company_fields(fields: dict) -> dict:
    """Codes are stored upper-case (ISO): accept "bd" and "bdt" as a user would type them."""
    return {
        name: value.strip().upper() if name in ("country", "base_currency") and value else value
        for name, value in fields.items()
    }


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "company"
    slug, n = base, 2
    while Company.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def company_create(*, actor, name: str, slug: str = "", owner=None, **fields) -> Company:
    """Create a company; `owner` (a user) becomes its first owner."""
    unknown = set(fields) - set(COMPANY_EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown company field(s): {', '.join(sorted(unknown))}.")
    company = Company(
        name=name, slug=slug or _unique_slug(name), **_normalise_company_fields(fields)
    )
    _full_clean(company)
    company.save()
    audit_record(
        action="company.created",
        actor=actor,
        company=company,
        obj=company,
        after=model_snapshot(company),
    )
    company_created.send(sender=Company, company=company, actor=actor)
    if owner is not None:
        membership_create(actor=actor, company=company, user=owner, role=Role.OWNER)
    return company


@transaction.atomic
def company_update(*, actor, company: Company, **changes) -> Company:
    unknown = set(changes) - set(COMPANY_EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"These company fields cannot be changed: {', '.join(sorted(unknown))}.",
            fields={name: ["Not editable."] for name in unknown},
        )
    if "is_active" in changes and not (actor is not None and actor.is_superuser):
        raise PermissionDeniedError(
            "Only a platform administrator can switch a company on or off.",
            code="platform_only",
        )
    changes = _normalise_company_fields(changes)
    company = Company.objects.select_for_update().get(pk=company.pk)
    before = model_snapshot(company, COMPANY_EDITABLE_FIELDS)
    for name, value in changes.items():
        setattr(company, name, value)
    _full_clean(company)
    after = model_snapshot(company, COMPANY_EDITABLE_FIELDS)
    if after != before:
        changed = tuple(k for k in after if after[k] != before[k])
        company_changing.send(sender=Company, company=company, changes=changed, actor=actor)
        company.save()
        audit_record(
            action="company.updated",
            actor=actor,
            company=company,
            obj=company,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return company


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed(
            f"'{role}' is not a role.",
            fields={"role": [f"Choose one of {', '.join(Role.values)}."]},
        )


def _lock_owners(company_id: int) -> None:
    # Lock the company's owner rows in a fixed order so two demotions cannot both pass the
    # "another owner remains" check.
    list(
        Membership.objects.filter(company_id=company_id, role=Role.OWNER)
        .order_by("pk")
        .select_for_update()
    )


def membership_is_last_owner(membership: Membership) -> bool:
    """True if this is the company's only owner (it may then be neither removed nor demoted)."""
    if membership.role != Role.OWNER:
        return False
    others = Membership.objects.filter(company_id=membership.company_id, role=Role.OWNER)
    return not others.exclude(pk=membership.pk).exists()


def _refuse_removing_last_owner(membership: Membership) -> None:
    if membership_is_last_owner(membership):
        raise ConflictError(
            "A company must keep at least one owner; make someone else owner first.",
            code="last_owner",
        )


@transaction.atomic
def membership_create(*, actor, company: Company, user, role: str) -> Membership:
    _check_role(role)
    try:
        with transaction.atomic():  # a savepoint: a racing duplicate is a conflict, not a 500
            membership = Membership.objects.create(company=company, user=user, role=role)
    except IntegrityError:
        raise ConflictError(
            f"{user.get_username()} is already a member of {company}.", code="already_member"
        ) from None
    audit_record(
        action="membership.created",
        actor=actor,
        company=company,
        obj=membership,
        after={"user": user.get_username(), "role": role},
    )
    return membership


@transaction.atomic
def membership_change_role(*, actor, membership: Membership, role: str) -> Membership:
    _check_role(role)
    _lock_owners(membership.company_id)
    membership = Membership.objects.select_related("user", "company").get(pk=membership.pk)
    if membership.role == role:
        return membership
    _refuse_removing_last_owner(membership)
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        action="membership.role_changed",
        actor=actor,
        company=membership.company,
        obj=membership,
        before={"role": before},
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_delete(*, actor, membership: Membership) -> None:
    _lock_owners(membership.company_id)
    membership = Membership.objects.select_related("user", "company").get(pk=membership.pk)
    _refuse_removing_last_owner(membership)
    audit_record(
        action="membership.deleted",
        actor=actor,
        company=membership.company,
        obj=membership,
        before={"user": membership.user.get_username(), "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def member_user_create(
    *,
    actor,
    company: Company,
    username: str,
    email: str,
    password: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
) -> Membership:
    """Create a user account for a new member of `company` (able to sign in to the admin and
    the API with the password given). Attaching an existing account, which may belong to other
    companies, is left to platform administrators."""
    _check_role(role)
    email = User.objects.normalize_email(email).strip()
    if User.objects.filter(username__iexact=username).exists():
        raise ConflictError(f"The username '{username}' is taken.", code="username_taken")
    if email and User.objects.filter(email__iexact=email).exists():
        raise ConflictError(f"An account with {email} already exists.", code="email_taken")
    user = User(
        username=username, email=email, first_name=first_name, last_name=last_name, is_staff=True
    )
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationFailed(exc.messages[0], fields={"password": exc.messages}) from None
    user.set_password(password)
    _full_clean(user)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ConflictError(f"The username '{username}' is taken.", code="username_taken") from None
    audit_record(
        action="user.created",
        actor=actor,
        company=company,
        obj=user,
        after={"username": username, "email": email},
    )
    return membership_create(actor=actor, company=company, user=user, role=role)
