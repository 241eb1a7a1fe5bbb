"""A real Celery worker is SIGKILLed in the middle of a chunked payroll run (inside a chunk's
open transaction); a new worker takes the redelivered messages and the period is paid once."""

import pytest
from django.utils import timezone

from core.models import AuditEvent
from payroll.models import (
    ChunkStatus,
    PayrollPeriod,
    PayrollRun,
    PayrollRunChunk,
    Payslip,
    RunStatus,
)
from payroll.tasks import release_stale_payroll_locks, run_payroll_for_period
from tests.faults.conftest import app_env, publish, start_worker, wait_for
from tests.faults.payroll_setup import assert_paid_once, company_with_staff, july

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EMPLOYEES = 12
# Twelve employees in six chunks of two; chunk claims (and the period lock) last 4 s, a message
# a dead worker held comes back after 8 s: longer than a claim, as in production
# (CELERY_BROKER_VISIBILITY_TIMEOUT > PAYROLL_LOCK_TTL_SECONDS).
WORKER = {
    "PAYROLL_CHUNK_SIZE": 2,
    "PAYROLL_FAN_OUT_THRESHOLD": 3,
    "PAYROLL_LOCK_TTL_SECONDS": 4,
    "FAULTS_VISIBILITY_TIMEOUT": 8,
    "PAYROLL_RETRY_BACKOFF_SECONDS": 1,
}


@pytest.fixture
def worker_env(private_redis, tmp_path):
    folder = tmp_path / "hooks"
    folder.mkdir()
    return app_env(private_redis.url(0), FAULTS_DIR=folder, **WORKER)


def kill_worker_mid_chunk(processes, redis, env, folder, period):
    """Start a worker (two pool processes), run the period through Celery, SIGKILL the worker
    while each of its processes is inside the transaction of a chunk after the second.
    Returns the run and the indexes of the chunks the dead worker held."""
    (folder / "slow").touch()  # chunks after the second stall inside their transaction
    first = start_worker(processes, "worker-1", env)
    publish(redis, run_payroll_for_period, period.pk, force=True, trigger="manual")
    # Both pool processes stalled: nothing moves until the kill.
    wait_for(
        lambda: len(list(folder.glob("inside-*"))) == 2,
        timeout=90,
        what="both worker processes to stall mid-chunk",
    )

    run = PayrollRun.objects.get(period=period)
    assert run.status == RunStatus.RUNNING
    assert 2 <= run.chunks_done < run.chunks_total == EMPLOYEES // 2
    stalled = set(
        PayrollRunChunk.objects.filter(run=run, status=ChunkStatus.RUNNING).values_list(
            "index", flat=True
        )
    )
    assert len(stalled) == 2
    # Its payslips are written but not committed: nobody else can see them.
    assert Payslip.objects.filter(run=run).count() == 2 * run.chunks_done

    first.kill()  # SIGKILL to the worker and its pool processes: no ack, no rollback from Python
    (folder / "slow").unlink()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # nothing noticed the death yet
    return run, stalled


def assert_completed_once(period, run, stalled_indexes):
    completed = assert_paid_once(period, EMPLOYEES)
    assert completed.pk == run.pk  # the same attempt finished: no second run
    assert PayrollRun.objects.filter(period=period).count() == 1
    chunks = dict(PayrollRunChunk.objects.filter(run=run).values_list("index", "attempts"))
    assert set(PayrollRunChunk.objects.filter(run=run).values_list("status", flat=True)) == {
        ChunkStatus.DONE
    }
    # The chunks the dead worker held were processed again (a second claim), the others once.
    assert all(chunks[index] == 2 for index in stalled_indexes), chunks
    assert all(chunks[index] == 1 for index in set(chunks) - stalled_indexes), chunks


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_chunk_then_the_period_completes_once(
    statutory, processes, private_redis, worker_env, tmp_path
):
    period = july(company_with_staff(EMPLOYEES))
    run, stalled = kill_worker_mid_chunk(
        processes, private_redis, worker_env, tmp_path / "hooks", period
    )
    start_worker(processes, "worker-2", worker_env)
    wait_for(
        lambda: PayrollRun.objects.filter(pk=run.pk, status=RunStatus.COMPLETED).exists(),
        timeout=120,
        what="the redelivered chunks to complete the run",
    )
    assert_completed_once(period, run, stalled)


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_whose_messages_are_lost_is_resumed_by_the_cleanup(
    statutory, processes, private_redis, worker_env, tmp_path
):
    """The broker lost the dead worker's messages (and the queued chunks): nothing would
    ever be redelivered. Once the lease has expired, the hourly cleanup task queues the
    unfinished chunks again instead of failing chunks already paid for in the database."""
    import redis

    period = july(company_with_staff(EMPLOYEES))
    run, stalled = kill_worker_mid_chunk(
        processes, private_redis, worker_env, tmp_path / "hooks", period
    )
    redis.Redis.from_url(private_redis.url(1)).flushdb()
    start_worker(processes, "worker-2", worker_env)
    wait_for(
        lambda: PayrollPeriod.objects.filter(
            pk=period.pk, status="processing", lock_expires_at__lt=timezone.now()
        ).exists(),
        timeout=60,
        what="the period's lease to expire",
    )
    assert PayrollRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    publish(private_redis, release_stale_payroll_locks)
    wait_for(
        lambda: PayrollRun.objects.filter(pk=run.pk, status=RunStatus.COMPLETED).exists(),
        timeout=120,
        what="the resumed chunks to complete the run",
    )
    assert_completed_once(period, run, stalled)
    assert AuditEvent.objects.filter(action="payroll.run.resumed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_a_whole_run_then_its_redelivered_task_pays_once(
    statutory, processes, private_redis, tmp_path
):
    """A small period runs in one transaction. The worker dies inside it: the database rolls
    it back, the period stays claimed by the dead attempt. The redelivered task finds that
    attempt's lease expired, fails it (as the hourly cleanup would) and pays the period as
    attempt 2."""
    folder = tmp_path / "hooks"
    folder.mkdir()
    env = app_env(
        private_redis.url(0),
        FAULTS_DIR=folder,
        FAULTS_SLOW_AFTER=0,
        **{**WORKER, "PAYROLL_FAN_OUT_THRESHOLD": 100},
    )
    period = july(company_with_staff(3))
    (folder / "slow").touch()
    first = start_worker(processes, "worker-1", env)
    publish(private_redis, run_payroll_for_period, period.pk, force=True, trigger="manual")
    wait_for(lambda: list(folder.glob("inside-*")), timeout=90, what="the run to stall")
    first.kill()
    (folder / "slow").unlink()
    assert not Payslip.objects.filter(period=period).exists()  # rolled back with the worker
    assert PayrollPeriod.objects.get(pk=period.pk).status == "processing"

    start_worker(processes, "worker-2", env)
    wait_for(
        lambda: PayrollRun.objects.filter(period=period, status=RunStatus.COMPLETED).exists(),
        timeout=120,
        what="the redelivered task to pay the period",
    )
    assert_paid_once(period, 3)
    attempts = PayrollRun.objects.filter(period=period).order_by("attempt")
    assert list(attempts.values_list("attempt", "status", "error")) == [
        (1, RunStatus.FAILED, "Lease expired."),
        (2, RunStatus.COMPLETED, ""),
    ]
