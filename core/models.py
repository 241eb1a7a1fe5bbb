import zoneinfo
from datetime import date

import pycountry
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from core.roles import Role


class User(AbstractUser):
    """Kontor's user. Kept as our own model from day one so fields can be added later."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        db_table = "core_user"
        constraints = [
            # One account per email address, whatever its case; accounts without one are allowed.
            models.UniqueConstraint(
                Lower("email"), condition=~Q(email=""), name="user_email_ci_unique"
            ),
        ]


def validate_country(value: str) -> None:
    if pycountry.countries.get(alpha_2=value) is None:
        raise ValidationError(f"'{value}' is not an ISO 3166 country code.", code="country")


def validate_currency(value: str) -> None:
    if pycountry.currencies.get(alpha_3=value) is None:
        raise ValidationError(f"'{value}' is not an ISO 4217 currency code.", code="currency")


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone.", code="time_zone")


bin_validator = RegexValidator(r"^\d{13}$", "A BIN has exactly 13 digits.", code="bin")
etin_validator = RegexValidator(r"^\d{12}$", "An e-TIN has exactly 12 digits.", code="etin")

MONTHS = [(m, date(2000, m, 1).strftime("%B")) for m in range(1, 13)]


class Company(models.Model):
    """A tenant. Every business row in Kontor belongs to exactly one company."""

    name = models.CharField(max_length=200)
    legal_name = models.CharField(max_length=255, blank=True)
    slug = models.SlugField(max_length=60, unique=True, help_text="Used in the X-Company header.")
    country = models.CharField(max_length=2, default="BD", validators=[validate_country])
    base_currency = models.CharField(max_length=3, default="BDT", validators=[validate_currency])
    time_zone = models.CharField(
        max_length=64, default="Asia/Dhaka", validators=[validate_time_zone]
    )
    fiscal_year_start_month = models.PositiveSmallIntegerField(
        default=7,
        choices=MONTHS,
        validators=[MinValueValidator(1), MaxValueValidator(12)],
        help_text="July for Bangladesh (fiscal year July to June).",
    )
    bin = models.CharField(
        "BIN",
        max_length=13,
        blank=True,
        validators=[bin_validator],
        help_text="VAT Business Identification Number, 13 digits.",
    )
    etin = models.CharField(
        "e-TIN",
        max_length=12,
        blank=True,
        validators=[etin_validator],
        help_text="Taxpayer Identification Number, 12 digits.",
    )
    address = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(fiscal_year_start_month__gte=1, fiscal_year_start_month__lte=12),
                name="company_fiscal_month_1_12",
            ),
            models.CheckConstraint(
                condition=Q(bin="") | Q(bin__regex=r"^[0-9]{13}$"), name="company_bin_13_digits"
            ),
            models.CheckConstraint(
                condition=Q(etin="") | Q(etin__regex=r"^[0-9]{12}$"), name="company_etin_12_digits"
            ),
            models.CheckConstraint(
                condition=Q(base_currency__regex=r"^[A-Z]{3}$"), name="company_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def bin_display(self) -> str:
        """BIN as printed on Mushak forms: 9 digits, a hyphen, 4 digits."""
        return f"{self.bin[:9]}-{self.bin[9:]}" if len(self.bin) == 13 else self.bin

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def today(self) -> date:
        """Today's business date in the company's time zone."""
        return timezone.localdate(timezone.now(), self.tz)

    def fiscal_year_start(self, on: date) -> date:
        """First day of the fiscal year that contains `on`."""
        year = on.year if on.month >= self.fiscal_year_start_month else on.year - 1
        return date(year, self.fiscal_year_start_month, 1)


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "company"], name="membership_user_company_unique"
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.company} ({self.get_role_display()})"


class AuditEvent(models.Model):
    """Who did what to which object, with before and after. Append-only: PostgreSQL refuses
    UPDATE and DELETE on this table (migration 0002), so history cannot be rewritten."""

    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(
        "who", max_length=150, help_text="The user's name at the time, or system:<job> for jobs."
    )
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "-created_at"], name="audit_company_time"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_repr}"
        )


class ServiceHeartbeat(models.Model):
    """Last sign of life of a background process (the worker, run by beat), for the dashboard."""

    name = models.CharField(max_length=100, unique=True)
    last_seen = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)
    beats = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return self.name
