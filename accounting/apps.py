from datetime import timedelta

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _on_company_created(sender, *, company, actor, **kwargs):
    from accounting.services import company_ledger_setup

    company_ledger_setup(actor=actor, company=company)


def _on_company_changing(sender, *, company, changes, **kwargs):
    from accounting.services import company_settings_guard

    company_settings_guard(company=company, changes=changes)


def _declare_schedules(sender, **kwargs):
    from accounting.tasks import OPEN_FISCAL_YEARS_TASK
    from core.schedules import periodic_task_declare

    periodic_task_declare(
        name="accounting: open next fiscal years",
        task=OPEN_FISCAL_YEARS_TASK,
        every=timedelta(hours=24),
        description="Opens each company's next fiscal year 60 days before the current one ends.",
    )


class AccountingConfig(AppConfig):
    name = "accounting"
    verbose_name = "Accounting"

    def ready(self):
        from core.signals import company_changing, company_created

        company_created.connect(_on_company_created, dispatch_uid="accounting.company_created")
        company_changing.connect(_on_company_changing, dispatch_uid="accounting.company_changing")
        post_migrate.connect(_declare_schedules, sender=self, dispatch_uid="accounting.schedules")
