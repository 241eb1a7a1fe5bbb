from datetime import timedelta

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _on_company_created(sender, *, company, actor, **kwargs):
    from invoicing.services import vat_rates_seed

    vat_rates_seed(company=company)


def _declare_schedules(sender, **kwargs):
    from core.schedules import periodic_task_declare
    from invoicing.tasks import (
        LEDGER_EXPORT_TASK,
        OVERDUE_TASK,
        RECURRING_TASK,
    )

    periodic_task_declare(
        name="invoicing: mark overdue and send reminders",
        task=OVERDUE_TASK,
        every=timedelta(hours=24),
        description="Marks unpaid invoices past their due date overdue and emails reminders.",
    )
    periodic_task_declare(
        name="invoicing: recurring invoices",
        task=RECURRING_TASK,
        every=timedelta(hours=24),
        description="Drafts (or approves) the next invoice of each due recurring template.",
    )
    periodic_task_declare(
        name="invoicing: receivables feed",
        task=LEDGER_EXPORT_TASK,
        every=timedelta(minutes=5),
        description="Folds new invoice events into per-customer receivable balances.",
    )


class InvoicingConfig(AppConfig):
    name = "invoicing"
    verbose_name = "Invoicing"

    def ready(self):
        from core.signals import company_created

        company_created.connect(_on_company_created, dispatch_uid="invoicing.company_created")
        post_migrate.connect(_declare_schedules, sender=self, dispatch_uid="invoicing.schedules")
