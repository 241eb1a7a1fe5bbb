"""Celery tasks for invoicing (beat schedules declared in invoicing/apps.py)."""

OVERDUE_TASK = "invoicing.tasks.invoices_mark_overdue"
RECURRING_TASK = "invoicing.tasks.recurring_invoices_run"
LEDGER_EXPORT_TASK = "invoicing.tasks.receivables_feed"
