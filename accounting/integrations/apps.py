from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _declare_schedules(sender, **kwargs):
    from accounting.integrations.tasks import declare_schedules

    declare_schedules()


class IntegrationsConfig(AppConfig):
    name = "accounting.integrations"
    label = "integrations"
    verbose_name = "Accounting integrations"

    def ready(self):
        import accounting.integrations.metrics  # noqa: F401  (exported at zero from start-up)

        post_migrate.connect(_declare_schedules, sender=self, dispatch_uid="integrations.schedules")
