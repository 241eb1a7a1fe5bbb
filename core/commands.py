"""Helpers for management commands."""

from django.core.management.base import CommandError

from core.models import Company


def companies_from_option(slug: str | None):
    """The companies a command's `--company` option names: that one (CommandError when there
    is none by that slug), or every company, by slug."""
    companies = Company.objects.order_by("slug")
    if slug:
        companies = companies.filter(slug=slug)
        if not companies.exists():
            raise CommandError(f"no company with slug '{slug}'")
    return companies
