"""Celery tasks for banking.

- `reconcile_account(bank_account_id, period=None)`: auto-reconcile one bank account (the
  lines of the month `period`, 'YYYY-MM', or every open line); reconciliation_auto ends by
  refreshing the months it looked at (figures stored, variance alert raised, email after
  commit). Queued by the statement import after its commit. Safe to run twice: the second run
  finds nothing open that the first did not already suggest or accept.
- `refresh_reconciliations()`: daily (beat entry `banking.refresh_reconciliations`, declared on
  migrate): for every active bank account, this month, last month and every stored month of
  the past year are refreshed, so a variance that appears without anybody opening the report
  (a payment booked in invoicing, a reversal) still raises its alert, and a signed-off month
  whose figures changed is reopened (with an audit event).
"""

import logging
from datetime import timedelta

from celery import shared_task

from core.rls import tenant_context

log = logging.getLogger(__name__)

RECONCILE_TASK = "banking.tasks.reconcile_account"
REFRESH_TASK = "banking.tasks.refresh_reconciliations"
REFRESH_SCHEDULE_NAME = "banking.refresh_reconciliations"
REFRESH_CRON = "30 1 * * *"  # daily, 01:30 UTC (morning in Asia/Dhaka, before office hours)


def declare_schedules() -> None:
    """Beat entries, declared with update_or_create keyed on their names: a schedule an
    operator changed in the admin survives deploys."""
    from core.schedules import periodic_task_declare

    periodic_task_declare(
        name=REFRESH_SCHEDULE_NAME,
        task=REFRESH_TASK,
        cron=REFRESH_CRON,
        description="Refreshes the bank reconciliations of months not signed off and raises "
        "the variance alert where the variance exceeds the alert threshold.",
    )


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile_account(bank_account_id: int, period: str | None = None) -> dict | None:
    from banking.models import BankAccount
    from banking.reconciliation import AUTO_JOB, reconciliation_auto

    account = BankAccount.objects.select_related("company").filter(pk=bank_account_id).first()
    if account is None or not account.is_active:
        log.info("auto-reconcile skipped", extra={"bank_account": bank_account_id})
        return None
    with tenant_context(account.company_id):
        return reconciliation_auto(
            company=account.company,
            bank_account=account,
            period=period or None,
            system_job=AUTO_JOB,
        )


@shared_task(name=REFRESH_TASK, ignore_result=True)
def refresh_reconciliations() -> int:
    """Refresh the open months of every active bank account; returns how many were refreshed.
    Each month in its own transaction (one failure does not stop the others)."""
    from banking.models import BankAccount, BankReconciliation
    from banking.reconciliation import REFRESH_JOB, reconciliation_refresh

    done = 0
    for account in BankAccount.objects.select_related("company").filter(is_active=True):
        with tenant_context(account.company_id):  # each account acts for its company alone
            this_month = account.company.today().replace(day=1)
            last_month = (this_month - timedelta(days=1)).replace(day=1)
            months = {this_month, last_month}
            months.update(
                BankReconciliation.objects.filter(
                    bank_account=account, period__gte=this_month - timedelta(days=366)
                ).values_list("period", flat=True)
            )
            for month in sorted(months):
                try:
                    reconciliation_refresh(
                        bank_account=account, period=month, system_job=REFRESH_JOB
                    )
                    done += 1
                except Exception:
                    log.exception(
                        "bank reconciliation refresh failed",
                        extra={"bank_account": account.pk, "period": str(month)},
                    )
    return done
