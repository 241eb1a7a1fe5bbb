"""Demo data for a newcomer's `make run`. Idempotent: running it again changes nothing that is
already there. Later modules extend it with their own demo data."""

import secrets
from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from core import services
from core.models import Company, Membership
from core.roles import Role

DEMO_COMPANIES = [
    {
        "slug": "dhaka-textiles",
        "name": "Dhaka Textiles",
        "legal_name": "Dhaka Textiles Limited",
        "country": "BD",
        "base_currency": "BDT",
        "time_zone": "Asia/Dhaka",
        "fiscal_year_start_month": 7,
        "bin": "0001234567891",
        "etin": "123456789012",
        "address": "House 12, Road 7, Gulshan-1, Dhaka 1212, Bangladesh",
    },
    {
        "slug": "northwind-trading",
        "name": "Northwind Trading",
        "legal_name": "Northwind Trading Inc.",
        "country": "US",
        "base_currency": "USD",
        "time_zone": "America/Los_Angeles",
        "fiscal_year_start_month": 1,
        "bin": "",
        "etin": "",
        "address": "500 Market Street, San Francisco, CA 94105, USA",
    },
]
ADMIN_USERNAME = "admin"
# Demo-only passwords, printed by local settings; elsewhere users get random ones.
ADMIN_PASSWORD = "kontor-admin"  # noqa: S105
DEMO_PASSWORD = "kontor-demo"  # noqa: S105


def _demo_modules():
    for app_config in apps.get_app_configs():
        name = f"{app_config.name}.demo"
        if app_config.name != "core" and find_spec(name) is not None:
            yield app_config.label, import_module(name)


def _module_seeders():
    """Each app may offer `<app>/demo.py` with `seed(company, actor, stdout) -> int` (records
    added; 0 when its demo data is already there). core cannot import the apps built on it, so
    it looks them up the way the dashboard gathers panels."""
    for label, module in _demo_modules():
        if hasattr(module, "seed"):
            yield label, module.seed


def _module_finishers():
    """`finish(company, actor, stdout)` of a demo module runs once every app's seed has run
    (the ledger closes the fiscal years that ended, after the other apps posted into them)."""
    for label, module in _demo_modules():
        if hasattr(module, "finish"):
            yield label, module.finish


class Command(BaseCommand):
    help = "Create demo companies and one user per role in each (idempotent)."

    def handle(self, *args, **options):
        show = settings.DEMO_SHOW_CREDENTIALS
        User = get_user_model()
        created_users = []
        with transaction.atomic():
            admin_user, admin_created = User.objects.get_or_create(
                username=ADMIN_USERNAME,
                defaults={"email": "admin@kontor.local", "is_staff": True, "is_superuser": True},
            )
            if admin_created:
                admin_user.set_password(ADMIN_PASSWORD if show else secrets.token_urlsafe(24))
                admin_user.save()
            for spec in DEMO_COMPANIES:
                company = Company.objects.filter(slug=spec["slug"]).first()
                if company is None:
                    fields = {k: v for k, v in spec.items() if k not in ("slug", "name")}
                    company = services.company_create(
                        actor=admin_user, name=spec["name"], slug=spec["slug"], **fields
                    )
                short = spec["slug"].split("-")[0]
                for role in Role.values:
                    username = f"{short}.{role}"
                    user, created = User.objects.get_or_create(
                        username=username,
                        defaults={
                            "email": f"{username}@kontor.local",
                            "is_staff": True,
                            "first_name": short.title(),
                            "last_name": Role(role).label,
                        },
                    )
                    if created:
                        user.set_password(DEMO_PASSWORD if show else secrets.token_urlsafe(24))
                        user.save()
                        created_users.append(username)
                    if not Membership.objects.filter(company=company, user=user).exists():
                        services.membership_create(
                            actor=admin_user, company=company, user=user, role=role
                        )
        module_lines = []
        for spec in DEMO_COMPANIES:
            company = Company.objects.get(slug=spec["slug"])
            for label, seed in _module_seeders():
                with transaction.atomic():
                    added = seed(company=company, actor=admin_user, stdout=self.stdout)
                if added:
                    module_lines.append(f"  {company.slug}: {added} {label} demo records")
            for _label, finish in _module_finishers():
                with transaction.atomic():
                    finish(company=company, actor=admin_user, stdout=self.stdout)
        # Say the demo password only while it is still the password (a developer may change it).
        admin_password = ADMIN_PASSWORD if admin_user.check_password(ADMIN_PASSWORD) else None
        self._report(show, created_users, admin_password, module_lines)

    def _report(
        self,
        show: bool,
        created_users: list[str],
        admin_password: str | None,
        module_lines: list[str],
    ) -> None:
        out = self.stdout
        out.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(DEMO_COMPANIES)} companies, {len(created_users)} new users."
            )
        )
        for line in module_lines:
            out.write(line)
        if not show:
            out.write(
                "Credentials are not shown outside local settings; set passwords with "
                "`manage.py changepassword USER`."
            )
            return
        out.write("")
        password = f"password {admin_password}" if admin_password else "(password changed by you)"
        out.write(f"  Admin:     http://127.0.0.1:8000/admin/   user {ADMIN_USERNAME}  {password}")
        out.write(
            f"  Demo users (password {DEMO_PASSWORD}): "
            + ", ".join(f"{spec['slug'].split('-')[0]}.<role>" for spec in DEMO_COMPANIES)
            + f"  with <role> one of {', '.join(Role.values)}"
        )
        out.write(
            '  API token: POST /api/v1/auth/token/ {"username", "password"}; '
            "send X-Company: dhaka-textiles or northwind-trading"
        )
