"""The webhook processing task. Its name sits under accounting.integrations.tasks so the
"integrations" queue route (CELERY_TASK_ROUTES) applies; accounting/integrations/tasks.py imports
this module so every worker registers it (autodiscovery reads tasks.py only)."""

from __future__ import annotations

from celery import shared_task

WEBHOOK_PROCESS_TASK = "accounting.integrations.tasks.webhook_process"
MAX_RETRIES = 5


@shared_task(name=WEBHOOK_PROCESS_TASK, bind=True, ignore_result=True, max_retries=MAX_RETRIES)
def webhook_process(self, event_id: int) -> str:
    """Re-fetch the entity one webhook event names and bring local rows up to date. Takes the
    event's id, claims the row (received/failed -> processing) so a redelivered task does
    nothing, and retries with backoff when the remote system failed in a retryable way."""
    from accounting.integrations.webhooks import webhook_event_process

    outcome = webhook_event_process(event_id=event_id)
    if outcome.retry_after is not None and self.request.retries < self.max_retries:
        raise self.retry(countdown=outcome.retry_after)
    return outcome.status
