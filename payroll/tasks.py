"""Payroll's Celery tasks (queue "payroll", see CELERY_TASK_ROUTES) and its beat entries.

Tasks take ids, re-read their rows and are safe to run twice: a redelivered task finds the
period completed (or the run taken) and does nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction

# The payslip email task lives beside the documents it renders; importing it here registers it
# with every worker (autodiscovery reads tasks.py only).
from core.rls import tenant_context
from payroll.documents import payslips_email  # noqa: F401
from payroll.models import PayrollPeriod, PayrollRun, PeriodStatus, RunStatus, RunTrigger

log = logging.getLogger(__name__)

AUTO_RUN_TASK = "payroll.tasks.auto_run_payroll"
RUN_TASK = "payroll.tasks.run_payroll_for_period"
PROCESS_RUN_TASK = "payroll.tasks.process_payroll_run"
CHUNK_TASK = "payroll.tasks.run_payroll_chunk"
CLEANUP_TASK = "payroll.tasks.release_stale_payroll_locks"
AUTO_RUN_SCHEDULE_NAME = "payroll: run due periods"
CLEANUP_SCHEDULE_NAME = "payroll: release stale period locks"
QUEUE = "payroll"
MAX_RETRIES = 3
# Outcomes retried with backoff: a failed attempt, and a start refused because Redis was away.
RETRIED = ("failed", "unavailable")


class PayrollRunFailed(Exception):
    """Raised to make Celery retry a failed run with backoff."""


def backoff_seconds(retries: int) -> int:
    """60 s, 120 s, 240 s: exponential backoff between the three retries."""
    return int(getattr(settings, "PAYROLL_RETRY_BACKOFF_SECONDS", 60)) * (2**retries)


def declare_schedules() -> None:
    """Beat entries, declared with update_or_create keyed on their names: a schedule an
    operator changed in the admin survives deploys."""
    from core.schedules import periodic_task_declare

    periodic_task_declare(
        name=AUTO_RUN_SCHEDULE_NAME,
        task=AUTO_RUN_TASK,
        cron=settings.PAYROLL_AUTO_RUN_CRON,
        timezone=settings.PAYROLL_AUTO_RUN_TIME_ZONE,
        queue=QUEUE,
        description="Runs every active payroll period with automation on whose rule makes it "
        "due today (in its company's time zone).",
    )
    periodic_task_declare(
        name=CLEANUP_SCHEDULE_NAME,
        task=CLEANUP_TASK,
        every=timedelta(hours=1),
        queue=QUEUE,
        description="Turns periods stuck in processing whose lease expired into failed, "
        "ready to run again.",
    )


@shared_task(name=AUTO_RUN_TASK, ignore_result=True)
def auto_run_payroll() -> int:
    """Daily: queue a run for the earliest due period of each company (companies run in
    parallel, each in its own task; a period queued twice is run once). A company's periods
    are paid in order, so a later due period waits for the next night's run (the claim refuses
    it while an earlier period is open anyway)."""
    from payroll.selectors import periods_due

    due = periods_due()
    first_per_company = {}
    for period in due:  # oldest first
        first_per_company.setdefault(period.company_id, period)
    for period in first_per_company.values():
        run_payroll_for_period.delay(period.pk)
    log.info(
        "payroll periods due",
        extra={"due": len(due), "queued": len(first_per_company)},
    )
    return len(first_per_company)


@shared_task(bind=True, name=RUN_TASK, max_retries=MAX_RETRIES)
def run_payroll_for_period(self, period_id: int, force: bool = False, trigger: str = "beat"):
    """Run one period (beat, a period's cron entry, commands with --async). Re-checks that the
    period is due unless forced; retries a failed run three times with exponential backoff."""
    from payroll.processing import PayrollProcessor

    period = PayrollPeriod.objects.select_related("company").filter(pk=period_id).first()
    if period is None:
        return {"status": "missing", "period_id": period_id}
    if trigger not in RunTrigger.values:
        trigger = RunTrigger.BEAT
    with tenant_context(period.company_id):
        outcome = PayrollProcessor(period, trigger=trigger).run_payroll(force=force, fan_out=True)
    if outcome.status in RETRIED and self.request.retries < MAX_RETRIES:
        raise self.retry(
            exc=PayrollRunFailed(outcome.message), countdown=backoff_seconds(self.request.retries)
        )
    return {
        "status": outcome.status,
        "period_id": period_id,
        "run_id": outcome.run.pk if outcome.run else None,
        "message": outcome.message,
    }


@shared_task(bind=True, name=PROCESS_RUN_TASK, max_retries=MAX_RETRIES)
def process_payroll_run(self, run_id: int):
    """Process a run the admin or the API claimed (payroll_period_run). If that attempt fails,
    the retries run the period again as a new attempt, with the same force flag."""
    from payroll.processing import PayrollProcessor

    run = PayrollRun.objects.select_related("period__company").filter(pk=run_id).first()
    if run is None:
        return {"status": "missing", "run_id": run_id}
    processor = PayrollProcessor(
        run.period,
        trigger=run.trigger,
        actor=run.triggered_by,
        mail_payslips=run.mail_payslips,
    )
    with tenant_context(run.company_id):
        if run.status == RunStatus.RUNNING:
            outcome = processor.process(run, fan_out=True)
            if outcome.status == "busy":
                # Picked by a worker before: if that worker died (its lease expired) this is
                # its redelivered task, and run_payroll releases the dead attempt and pays the
                # period as a new one; a live worker keeps it (busy again, nothing changed).
                outcome = processor.run_payroll(force=run.forced, fan_out=True)
        elif run.period.status == PeriodStatus.FAILED and self.request.retries:
            outcome = processor.run_payroll(force=run.forced, fan_out=True)
        else:
            return {"status": "skipped", "run_id": run_id}
    if outcome.status in RETRIED and self.request.retries < MAX_RETRIES:
        raise self.retry(
            exc=PayrollRunFailed(outcome.message), countdown=backoff_seconds(self.request.retries)
        )
    return {"status": outcome.status, "run_id": outcome.run.pk if outcome.run else run_id}


@shared_task(bind=True, name=CHUNK_TASK, max_retries=MAX_RETRIES)
def run_payroll_chunk(self, run_id: int, index: int):
    """One chunk of a fanned-out run. The last chunk to finish finalises the run."""
    from payroll.processing import chunk_process, run_fail

    company_id = PayrollRun.objects.filter(pk=run_id).values_list("company_id", flat=True).first()
    if company_id is None:
        return {"status": "missing", "run_id": run_id, "chunk": index}
    with tenant_context(company_id):
        result = chunk_process(run_id, index)
    if result == "failed":
        if self.request.retries < MAX_RETRIES:
            raise self.retry(
                exc=PayrollRunFailed(f"chunk {index} of run {run_id} failed"),
                countdown=backoff_seconds(self.request.retries),
            )
        with tenant_context(company_id):
            run = PayrollRun.objects.select_related("period__company").get(pk=run_id)
            run_fail(run, PayrollRunFailed(f"chunk {index} failed {MAX_RETRIES + 1} times"))
    return {"status": result, "run_id": run_id, "chunk": index}


@shared_task(name=CLEANUP_TASK, ignore_result=True)
def release_stale_payroll_locks() -> int:
    from payroll.processing import stale_runs_release

    released = stale_runs_release()
    if released:
        log.warning("stale payroll periods released", extra={"released": released})
    return released


# --- a period's own beat entry for a cron rule -------------------------------------------------


def period_task_name(period_id: int) -> str:
    return f"payroll: period {period_id} cron rule"


def period_schedule_sync(period_id: int):
    """Create, change, disable or delete the beat entry of a period's cron rule so it matches
    the period: enabled while the period is active with automation on, disabled once it is
    completed, cancelled or failed, removed when the rule is no longer a cron or the period is
    gone. Run after commit. Returns the PeriodicTask or None."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    name = period_task_name(period_id)
    period = PayrollPeriod.objects.select_related("company").filter(pk=period_id).first()
    rule = (period.automation_rule or {}) if period is not None else {}
    if period is None or "cron" not in rule:
        PeriodicTask.objects.filter(name=name).delete()
        return None
    minute, hour, day_of_month, month_of_year, day_of_week = rule["cron"].split()
    with transaction.atomic():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone=period.company.time_zone,
        )
        enabled = period.automation_enabled and period.status == PeriodStatus.ACTIVE
        task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
        task.task = RUN_TASK
        task.crontab = crontab
        task.interval = None
        task.kwargs = json.dumps({"period_id": period.pk})
        task.args = "[]"
        task.queue = QUEUE
        task.enabled = enabled
        task.description = (
            f"Runs payroll period {period} of {period.company} when its cron rule "
            f"'{rule['cron']}' ({period.company.time_zone}) fires; the task re-checks the period."
        )
        task.save()  # save(), not update(): beat notices the change
        if period.periodic_task_id != task.pk:
            PayrollPeriod.objects.filter(pk=period.pk).update(periodic_task=task)
    return task
