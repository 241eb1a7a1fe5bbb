from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _declare_schedules(sender, **kwargs):
    from payroll.tasks import declare_schedules

    declare_schedules()


class PayrollConfig(AppConfig):
    name = "payroll"
    verbose_name = "Payroll"

    def ready(self):
        import payroll.metrics  # noqa: F401  (exported at zero from start-up)

        post_migrate.connect(_declare_schedules, sender=self, dispatch_uid="payroll.schedules")
