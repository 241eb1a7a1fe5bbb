from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _declare_schedules(sender, **kwargs):
    from banking.tasks import declare_schedules

    declare_schedules()


class BankingConfig(AppConfig):
    name = "banking"

    def ready(self):
        import banking.alerts  # noqa: F401  (the alert counter is exported at zero from start-up)

        post_migrate.connect(_declare_schedules, sender=self, dispatch_uid="banking.schedules")
