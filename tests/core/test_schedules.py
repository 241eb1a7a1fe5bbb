from datetime import timedelta

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from core.schedules import periodic_task_declare
from core.tasks import HEARTBEAT_TASK, heartbeat


@pytest.mark.django_db
def test_migrate_declares_the_heartbeat_schedule():
    task = PeriodicTask.objects.get(name="core: worker heartbeat")
    assert task.task == HEARTBEAT_TASK and task.enabled
    assert (task.interval.every, task.interval.period) == (30, IntervalSchedule.SECONDS)


@pytest.mark.django_db
def test_redeclaring_keeps_what_an_operator_changed():
    task = periodic_task_declare(
        name="nightly", task="core.tasks.heartbeat", cron="0 2 * * *", timezone="Asia/Dhaka"
    )
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == (
        "2",
        "0",
        "Asia/Dhaka",
    )
    # An operator moves it to 03:30 and pauses it in the admin.
    from django_celery_beat.models import CrontabSchedule

    task.crontab = CrontabSchedule.objects.create(minute="30", hour="3", timezone="Asia/Dhaka")
    task.enabled = False
    task.save()
    # The next deploy declares it again, with a new task path.
    periodic_task_declare(
        name="nightly", task="core.tasks.renamed", cron="0 2 * * *", timezone="Asia/Dhaka"
    )
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.minute, task.enabled) == ("3", "30", False)
    assert task.task == "core.tasks.renamed"
    assert PeriodicTask.objects.filter(name="nightly").count() == 1


@pytest.mark.django_db
def test_migrate_again_does_not_reset_the_heartbeat():
    PeriodicTask.objects.filter(name="core: worker heartbeat").update(enabled=False)
    call_command("migrate", verbosity=0)
    assert PeriodicTask.objects.get(name="core: worker heartbeat").enabled is False


def test_declaring_needs_exactly_one_schedule():
    with pytest.raises(ValueError):
        periodic_task_declare(name="x", task="y")
    with pytest.raises(ValueError):
        periodic_task_declare(name="x", task="y", every=timedelta(seconds=1), cron="* * * * *")


@pytest.mark.django_db
def test_heartbeat_task_counts_beats():
    from core.models import ServiceHeartbeat

    heartbeat.apply()
    heartbeat.apply()
    assert ServiceHeartbeat.objects.get(name="celery").beats == 2


def test_celery_is_json_only_with_late_acks_and_a_long_visibility_timeout():
    from config.celery_app import app

    conf = app.conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.task_time_limit and conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
