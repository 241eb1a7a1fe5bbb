"""The admin landing page. Each app may offer `<app>/dashboard.py` with `panels(request)`
returning a list of panels; this module gathers them in INSTALLED_APPS order.

A panel is {"title", "columns": [...], "rows": [[cell, ...], ...], "empty": str, "link": url,
"nowrap_columns": n, "wide": bool} (the first n columns never wrap; a wide panel takes a whole row).
A cell is text, or (text, url) for a link.
"""

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django_celery_beat.models import PeriodicTask

from core.models import AuditEvent, Membership, ServiceHeartbeat
from core.selectors import companies_for


def dashboard_panels(request) -> list[dict]:
    panels = []
    for app_config in apps.get_app_configs():
        module_name = f"{app_config.name}.dashboard"
        if find_spec(module_name) is None:
            continue
        module = import_module(module_name)
        if hasattr(module, "panels"):
            panels.extend(module.panels(request))
    for panel in panels:
        panel["rows"] = [[_cell(value) for value in row] for row in panel["rows"]]
    return panels


def _cell(value) -> dict:
    if isinstance(value, tuple):
        text, url = value
        return {"text": text, "url": url}
    return {"text": value, "url": None}


def _local_time(event: AuditEvent) -> str:
    """When it happened, on the clock of the company it happened in."""
    moment = timezone.localtime(event.created_at, event.company.tz if event.company else None)
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def panels(request) -> list[dict]:
    user = request.user
    companies = companies_for(user, "company", write=False)
    role_by_company = {
        membership.company_id: membership.get_role_display()
        for membership in Membership.objects.filter(user=user)
    }
    company_rows = [
        [
            (company.name, reverse("admin:core_company_change", args=[company.pk])),
            company.base_currency,
            company.time_zone,
            role_by_company.get(company.pk, "superuser"),
        ]
        for company in companies.order_by("name")[:20]
    ]

    audit_rows = [
        [
            _local_time(event),
            event.actor_label,
            event.action,
            event.object_repr,
        ]
        for event in AuditEvent.objects.filter(
            company__in=companies_for(user, "audit", write=False)
        )
        .select_related("company")
        .order_by("-created_at")[:8]
    ]

    heartbeat = ServiceHeartbeat.objects.filter(name="celery").first()
    now = timezone.now()
    if heartbeat is None:
        worker_state = "no heartbeat yet: is a worker and beat running?"
    else:
        age = (now - heartbeat.last_seen).total_seconds()
        state = "alive" if age < 120 else "STALE"
        worker_state = (
            f"{state}: last seen {timesince(heartbeat.last_seen, now)} ago ({heartbeat.detail})"
        )
    schedules = PeriodicTask.objects.filter(enabled=True).exclude(name__startswith="celery.")
    job_rows = [["Worker and beat", worker_state]] + [
        [
            task.name,
            f"last run {timesince(task.last_run_at, now)} ago"
            if task.last_run_at
            else "not run yet",
        ]
        for task in schedules.order_by("name")[:10]
    ]
    result = [
        {
            "title": "Your companies",
            "columns": ["Company", "Currency", "Time zone", "Your role"],
            "rows": company_rows,
            "empty": "You are not a member of any company yet.",
        },
        {
            "title": "Recent activity",
            "columns": ["When", "Who", "Action", "Object"],
            "rows": audit_rows,
            "empty": "Nothing recorded yet.",
            "link": reverse("admin:core_auditevent_changelist"),
            "nowrap_columns": 3,
            "wide": True,
        },
    ]
    if user.is_superuser:
        result.append(
            {
                "title": "Background jobs",
                "columns": ["Job", "State"],
                "rows": job_rows,
                "empty": "",
                "link": reverse("admin:django_celery_beat_periodictask_changelist"),
            }
        )
    return result
