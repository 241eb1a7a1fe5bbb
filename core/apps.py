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
        # Row-level security (core.rls): policies for every tenant table after each migrate, and
        # no connection left acting for a company after its request or task.
        from celery.signals import task_postrun
        from django.core.signals import request_finished

        from core import rls

        post_migrate.connect(rls.install_after_migrate, sender=self, dispatch_uid="core.rls")
        request_finished.connect(rls.reset_leftover, dispatch_uid="core.rls")
        task_postrun.connect(rls.reset_leftover, dispatch_uid="core.rls", weak=False)
