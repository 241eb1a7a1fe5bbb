"""Beat started twice by mistake: two real `celery beat` processes read the same schedule
(django-celery-beat's DatabaseScheduler) and both send the daily auto-run, every second here,
to a real worker. Each auto-run queues the due period; the duplicates race to claim it and
the period is still paid once."""

import re

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from payroll.models import PayrollPeriod, PayrollRun
from payroll.tasks import AUTO_RUN_TASK, QUEUE
from tests.faults.conftest import PYTHON, app_env, start_worker, wait_for
from tests.faults.payroll_setup import assert_paid_once, company_with_staff, july

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SENT = "Sending due task faults: auto-run"
RUN_RESULT = re.compile(
    r"run_payroll_for_period\[[^\]]+\] succeeded in [\d.]+s: \{'status': '(\w+)'"
)


def start_beat(processes, name, env, folder):
    argv = [PYTHON, "-m", "celery", "-A", "tests.faults.worker_app", "beat", "-l", "info"]
    argv += ["--max-interval", "1", "-s", str(folder / f"{name}-schedule")]
    return processes.start(name, argv, env)


@pytest.mark.django_db(transaction=True)
def test_two_beats_still_one_run_per_period(statutory, processes, private_redis, tmp_path):
    company = company_with_staff(3)
    period = july(company)
    every_second, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.create(
        name="faults: auto-run", task=AUTO_RUN_TASK, interval=every_second, queue=QUEUE
    )
    folder = tmp_path / "hooks"
    folder.mkdir()
    # Each run waits 2 s before it claims the period: duplicates queued meanwhile all race.
    (folder / "slow-claim").touch()
    # INFO: beat logs each send, the worker each task's result.
    env = app_env(private_redis.url(0), FAULTS_DIR=folder, LOG_LEVEL="INFO")
    worker = start_worker(processes, "worker", env, loglevel="info")
    beats = [start_beat(processes, name, env, tmp_path) for name in ("beat-1", "beat-2")]
    wait_for(
        lambda: all(beat.output().count(SENT) >= 2 for beat in beats),
        timeout=60,
        what="both beats to send the auto-run",
    )
    assert all(beat.alive for beat in beats)

    # The period becomes due (its rule's day has passed) while both beats are sending.
    PayrollPeriod.objects.filter(pk=period.pk).update(
        automation_enabled=True, automation_rule={"run_on_date": "2025-07-31"}
    )
    sent_before = [beat.output().count(SENT) for beat in beats]
    wait_for(
        lambda: (
            len(RUN_RESULT.findall(worker.output())) >= 2
            and PayrollRun.objects.filter(period=period, status="completed").exists()
        ),
        timeout=90,
        what="the period to be run (and a duplicate to be refused)",
    )
    # Both beats went on sending after the period became due.
    wait_for(
        lambda: all(
            beat.output().count(SENT) >= before + 3
            for beat, before in zip(beats, sent_before, strict=True)
        ),
        timeout=30,
        what="more sends from both beats",
    )
    outcomes = RUN_RESULT.findall(worker.output())
    assert outcomes.count("completed") == 1, outcomes
    assert set(outcomes) <= {"completed", "busy", "already_completed"}, outcomes
    assert PayrollRun.objects.filter(period=period).count() == 1
    assert_paid_once(period, 3)
    print(f"run_payroll_for_period outcomes: {outcomes}")
