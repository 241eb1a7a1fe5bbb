"""The webhook processing task. Its name sits under accounting.integrations.tasks so the
"integrations" queue route (CELERY_TASK_ROUTES) applies; accounting/integrations/tasks.py imports
this module so every worker registers it (autodiscovery reads tasks.py only)."""

from __future__ import annotations

from celery import shared_task

WEBHOOK_PROCESS_TASK = "accounting.integrations.tasks.webhook_process"
REQUEUE_TASK = "accounting.integrations.tasks.webhook_events_requeue"
REQUEUE_SCHEDULE_NAME = "integrations: requeue stalled webhook events"
QUEUE = "integrations"
MAX_RETRIES = 5


def declare_webhook_schedules() -> None:
    """Beat entry for the sweep, declared with update_or_create keyed on its name (called from
    accounting.integrations.tasks.declare_schedules)."""
    from datetime import timedelta

    from core.schedules import periodic_task_declare

    periodic_task_declare(
        name=REQUEUE_SCHEDULE_NAME,
        task=REQUEUE_TASK,
        every=timedelta(minutes=10),
        queue=QUEUE,
        description="Queues again webhook events whose processing was lost (a broker outage "
        "at commit time, a worker that died mid-way).",
    )


@shared_task(name=WEBHOOK_PROCESS_TASK, bind=True, ignore_result=True, max_retries=MAX_RETRIES)
def webhook_process(self, event_id: int) -> str:
    """Re-fetch the entity one webhook event names and bring local rows up to date. Takes the
    event's id, claims the row (received/failed -> processing) so a redelivered task does
    nothing, and retries with backoff when the remote system failed in a retryable way."""
    from accounting.integrations.models import WebhookEvent
    from accounting.integrations.webhooks import webhook_event_process
    from core.rls import tenant_context

    company_id = (
        WebhookEvent.objects.filter(pk=event_id).values_list("company_id", flat=True).first()
    )
    if company_id is None:
        return "skipped"  # what the claim answers for an event that is gone
    with tenant_context(company_id):
        outcome = webhook_event_process(event_id=event_id)
    if outcome.retry_after is not None and self.request.retries < self.max_retries:
        raise self.retry(countdown=outcome.retry_after)
    return outcome.status


@shared_task(name=REQUEUE_TASK, ignore_result=True)
def webhook_events_requeue() -> int:
    from accounting.integrations.webhooks import webhook_events_requeue as requeue

    return requeue()
