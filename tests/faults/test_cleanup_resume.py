"""The hourly cleanup and a fanned-out run whose worker died, in this process (the real
worker version is in test_worker_killed.py): the run is resumed, not failed, unless a chunk
has used up its attempts."""

import datetime as dt

import pytest
from django.utils import timezone

from core.locks import lock_release
from core.models import AuditEvent
from payroll import processing, tasks
from payroll.models import ChunkStatus, PayrollPeriod, PayrollRun, PayrollRunChunk, RunStatus
from payroll.processing import PayrollProcessor, lock_name, stale_runs_release
from tests.faults.payroll_setup import assert_paid_once, company_with_staff, july


@pytest.fixture
def queued(monkeypatch, settings):
    """Chunk tasks are recorded, not sent: no worker takes them until the test says so."""
    settings.PAYROLL_FAN_OUT_THRESHOLD = 3
    settings.PAYROLL_CHUNK_SIZE = 2
    sent = []
    monkeypatch.setattr(tasks.run_payroll_chunk, "delay", lambda *args: sent.append(args))
    return sent


def dead_worker_run(queued, employees=5):
    """A run fanned out into chunks; its first chunk done, then its worker died holding the
    second; the lease has expired and the lock with it."""
    period = july(company_with_staff(employees))
    outcome = PayrollProcessor(period).run_payroll(force=True, fan_out=True)
    assert outcome.status == "dispatched"
    run = outcome.run
    assert processing.chunk_process(run.pk, 0) == "done"
    past = timezone.now() - dt.timedelta(seconds=1)
    PayrollRunChunk.objects.filter(run=run, index=1).update(
        status=ChunkStatus.RUNNING, attempts=1, claimed_until=past
    )
    period.refresh_from_db()
    lock_release(lock_name(period.pk), period.lock_token)
    PayrollPeriod.objects.filter(pk=period.pk).update(lock_expires_at=past)
    queued.clear()
    return period, run


@pytest.mark.django_db
def test_the_cleanup_queues_the_unfinished_chunks_again_and_the_run_completes(queued):
    period, run = dead_worker_run(queued)
    assert stale_runs_release() == 1
    assert queued == [(run.pk, 1), (run.pk, 2)]
    period.refresh_from_db()
    assert period.status == "processing"
    assert period.lock_expires_at > timezone.now()
    assert stale_runs_release() == 0  # the renewed lease holds
    assert AuditEvent.objects.filter(action="payroll.run.resumed").count() == 1

    for run_id, index in queued:
        assert processing.chunk_process(run_id, index) == "done"
    assert processing.chunk_process(run.pk, 1) == "skipped"  # a redelivered duplicate
    assert_paid_once(period, 5)
    assert PayrollRun.objects.get().pk == run.pk


@pytest.mark.django_db
def test_every_chunk_done_but_not_finalised_is_finalised_by_the_cleanup(queued, monkeypatch):
    period, run = dead_worker_run(queued, employees=4)
    PayrollRunChunk.objects.filter(run=run, index=1).update(status=ChunkStatus.PENDING)
    # The worker that did the last chunk died before finalising: nothing else would.
    with monkeypatch.context() as patch:
        patch.setattr(processing, "finalise_run_if_complete", lambda run_id: None)
        assert processing.chunk_process(run.pk, 1) == "done"
    PayrollPeriod.objects.filter(pk=period.pk).update(
        lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert PayrollRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert stale_runs_release() == 1
    assert queued == []
    assert_paid_once(period, 4)


@pytest.mark.django_db
def test_a_chunk_that_used_up_its_attempts_fails_the_run(queued):
    period, run = dead_worker_run(queued)
    PayrollRunChunk.objects.filter(run=run, index=1).update(attempts=tasks.MAX_RETRIES + 1)
    assert stale_runs_release() == 1
    assert queued == []
    period.refresh_from_db()
    assert period.status == "failed"
    assert "lease expired" in period.last_error
    assert PayrollRun.objects.get(pk=run.pk).status == RunStatus.FAILED
