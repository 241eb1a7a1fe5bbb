"""Declaring periodic tasks for django-celery-beat without clobbering operators' edits.

`periodic_task_declare` is keyed on the task's name: on first deploy it creates the schedule;
on later deploys it only updates the task path and queue, so a schedule, an enabled flag or
arguments that an operator changed in the admin survive. Never delete-and-recreate.
"""

from datetime import timedelta

from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


def _interval(every: timedelta) -> IntervalSchedule:
    seconds = int(every.total_seconds())
    schedule, _ = IntervalSchedule.objects.get_or_create(
        every=seconds, period=IntervalSchedule.SECONDS
    )
    return schedule


def _crontab(expression: str, timezone: str) -> CrontabSchedule:
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=timezone,
    )
    return schedule


def periodic_task_declare(
    *,
    name: str,
    task: str,
    every: timedelta | None = None,
    cron: str | None = None,
    timezone: str = "UTC",
    queue: str | None = None,
    description: str = "",
) -> PeriodicTask:
    if (every is None) == (cron is None):
        raise ValueError("declare a periodic task with exactly one of every= or cron=")
    schedule = {"interval": _interval(every)} if every else {"crontab": _crontab(cron, timezone)}
    periodic_task, _ = PeriodicTask.objects.update_or_create(
        name=name,
        defaults={"task": task, "queue": queue, "description": description},
        create_defaults={
            "task": task,
            "queue": queue,
            "description": description,
            "enabled": True,
            **schedule,
        },
    )
    return periodic_task
