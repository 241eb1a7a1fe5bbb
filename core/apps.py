from datetime import timedelta

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.db.models.signals import post_migrate


class KontorAdminConfig(AdminConfig):
    default_site = "core.admin_site.KontorAdminSite"


def _declare_schedules(sender, **kwargs):
    from core.schedules import periodic_task_declare
    from core.tasks import HEARTBEAT_TASK

    periodic_task_declare(
        name="core: worker heartbeat",
        task=HEARTBEAT_TASK,
        every=timedelta(seconds=30),
        description="Shows on the dashboard that beat and a worker are alive.",
    )


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Company & access"

    def ready(self):
        # Periodic tasks are declared after every migrate (each deploy), keyed on their name.
        post_migrate.connect(_declare_schedules, sender=self, dispatch_uid="core.schedules")
