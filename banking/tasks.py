"""Celery tasks for banking.

- `reconcile_account(bank_account_id, period=None)`: auto-reconcile one bank account (the
  lines of the month `period`, 'YYYY-MM', or every open line). Queued by the statement import
  after its commit. Safe to run twice: the second run finds nothing open that the first did
  not already suggest or accept.
"""

import logging

from celery import shared_task

log = logging.getLogger(__name__)

RECONCILE_TASK = "banking.tasks.reconcile_account"


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile_account(bank_account_id: int, period: str | None = None) -> dict | None:
    from banking.models import BankAccount
    from banking.reconciliation import AUTO_JOB, reconciliation_auto

    account = BankAccount.objects.select_related("company").filter(pk=bank_account_id).first()
    if account is None or not account.is_active:
        log.info("auto-reconcile skipped", extra={"bank_account": bank_account_id})
        return None
    return reconciliation_auto(
        company=account.company,
        bank_account=account,
        period=period or None,
        system_job=AUTO_JOB,
    )
