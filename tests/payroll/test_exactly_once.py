"""A period is paid exactly once: concurrent workers, crashes, redelivered tasks, expired
leases, and the database constraints underneath (proved by going around Python)."""

import datetime as dt
import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounting import services as ledger
from accounting.models import JournalEntry
from payroll import processing
from payroll.models import (
    ChunkStatus,
    PayrollPeriod,
    PayrollRun,
    PayrollRunChunk,
    Payslip,
    PayslipStatus,
    PeriodStatus,
    RunStatus,
)
from payroll.processing import PayrollProcessor, lock_name, stale_runs_release
from payroll.tasks import process_payroll_run, run_payroll_chunk, run_payroll_for_period
from tests.payroll.conftest import deduction_type, employee, monthly

D = Decimal


def _staff(company, count, **fields):
    return [employee(company, f"E{i:03d}", **fields) for i in range(count)]


def _ledger(company):
    ledger.company_ledger_setup(company=company)
    ledger.fiscal_year_create(actor=None, company=company, containing=date(2025, 7, 1))


# --- the database backstop ---------------------------------------------------------------------


@pytest.mark.django_db
def test_one_live_payslip_per_employee_and_period_by_raw_sql(books):
    company = books.a
    _staff(company, 1)
    july = monthly(company, 2025, 7)
    PayrollProcessor(july).run_payroll()
    slip = Payslip.objects.get()
    columns = [f.column for f in Payslip._meta.concrete_fields if f.column != "id"]
    select = ", ".join(columns)
    copy = (
        f"INSERT INTO payroll_payslip ({select}) SELECT {select} FROM payroll_payslip WHERE id = %s"  # noqa: S608
    )
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(copy, [slip.pk])
    # A voided payslip no longer counts: the period can be paid again after a reopen.
    Payslip.objects.filter(pk=slip.pk).update(status=PayslipStatus.VOID)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(copy, [slip.pk])
    assert Payslip.objects.filter(period=july).count() == 2


@pytest.mark.django_db
def test_one_completed_and_one_running_run_per_period_by_queryset_update(books):
    company = books.a
    _staff(company, 1)
    july = monthly(company, 2025, 7)
    first = PayrollProcessor(july).run_payroll().run
    other = PayrollRun.objects.create(
        company=company,
        period=july,
        attempt=2,
        trigger="manual",
        status=RunStatus.FAILED,
        started_at=timezone.now(),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        PayrollRun.objects.filter(pk=other.pk).update(status=RunStatus.COMPLETED)
    PayrollRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        PayrollRun.objects.filter(pk=other.pk).update(status=RunStatus.RUNNING)


@pytest.mark.django_db
def test_payslip_net_must_add_up_by_queryset_update(books):
    company = books.a
    _staff(company, 1)
    PayrollProcessor(monthly(company, 2025, 7)).run_payroll()
    with pytest.raises(IntegrityError), transaction.atomic():
        Payslip.objects.update(net=D("1.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Payslip.objects.update(gross=D("-5.00"), net=D("-5.00") - D("8125.00"))


# --- queries do not grow with employees --------------------------------------------------------


def _staff_with_deductions(company, count):
    from payroll import services

    for index in range(count):
        emp = employee(company, f"Q{index:03d}")
        services.employee_deduction_create(
            actor=None, employee=emp, deduction_type=deduction_type("PF")
        )
        services.employee_deduction_create(
            actor=None, employee=emp, deduction_type=deduction_type("HEALTH"), amount=D("500.00")
        )
        services.employee_deduction_create(
            actor=None,
            employee=emp,
            deduction_type=deduction_type("LOAN"),
            amount=D("1000.00"),
            balance=D("5000.00"),
        )


def _queries_of_run(company, month):
    p = monthly(company, 2025, month)
    with CaptureQueriesContext(connection) as queries:
        outcome = PayrollProcessor(p).run_payroll()
    assert outcome.status == "completed", outcome.message
    return len(queries.captured_queries), outcome.run.payslip_count


@pytest.mark.django_db
def test_the_number_of_queries_does_not_grow_with_employees(books, django_assert_max_num_queries):
    """Five employees and fifty, each with three deductions, take the same number of queries,
    in a first month and in a second one that reads year-to-date figures."""
    from tests.factories import CompanyFactory

    small = books.a
    large = CompanyFactory(name="Gamma Mills", slug="gamma")
    _ledger(large)
    _staff_with_deductions(small, 5)
    _staff_with_deductions(large, 50)

    first_small, count = _queries_of_run(small, 7)
    assert count == 5
    july = monthly(large, 2025, 7)
    with django_assert_max_num_queries(first_small):
        outcome = PayrollProcessor(july).run_payroll()
    assert outcome.run.payslip_count == 50

    second_small, _ = _queries_of_run(small, 8)
    second_large, _ = _queries_of_run(large, 8)
    assert second_large == second_small
    assert second_small <= 70  # a fixed budget, whatever the staff count


# --- crashes and retries -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_crash_before_posting_leaves_nothing_and_the_retry_pays_once(books, monkeypatch):
    company = books.a
    _staff(company, 3)
    july = monthly(company, 2025, 7)
    real_post = processing._post_entry

    def crash(run, lines):
        raise RuntimeError("database went away")

    monkeypatch.setattr(processing, "_post_entry", crash)
    outcome = PayrollProcessor(july).run_payroll()
    assert outcome.status == "failed" and "database went away" in outcome.message
    july.refresh_from_db()
    assert july.status == PeriodStatus.FAILED
    assert "database went away" in july.last_error
    assert not Payslip.objects.exists()
    assert not JournalEntry.objects.filter(source_type="payroll.run").exists()
    assert PayrollRun.objects.get().status == RunStatus.FAILED

    monkeypatch.setattr(processing, "_post_entry", real_post)
    retry = PayrollProcessor(july).run_payroll()
    assert retry.status == "completed"
    assert retry.run.attempt == 2
    assert Payslip.objects.filter(status="issued").count() == 3
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1


@pytest.fixture
def chunked(settings):
    settings.PAYROLL_FAN_OUT_THRESHOLD = 3
    settings.PAYROLL_CHUNK_SIZE = 2


@pytest.mark.django_db
def test_chunked_run_crash_halfway_then_retry(books, chunked, monkeypatch):
    """Six employees in three chunks; the second chunk crashes. Nothing looks complete: the
    first chunk's payslips stay `processing`, no entry is posted, the period is failed. The
    retry discards them and pays everybody once, with the same figures."""
    company = books.a
    _staff(company, 6)
    july = monthly(company, 2025, 7)
    real_write = processing._write_payslips
    calls = []

    def crash_on_second(run, computed, status):
        calls.append(len(computed))
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real_write(run, computed, status)

    monkeypatch.setattr(processing, "_write_payslips", crash_on_second)
    outcome = PayrollProcessor(july).run_payroll()
    assert outcome.status == "failed"
    july.refresh_from_db()
    run = PayrollRun.objects.get()
    assert (july.status, run.status) == (PeriodStatus.FAILED, RunStatus.FAILED)
    assert (run.done, run.total, run.chunks_done, run.chunks_total) == (2, 6, 1, 3)
    assert set(Payslip.objects.values_list("status", flat=True)) == {PayslipStatus.PROCESSING}
    assert not Payslip.objects.filter(status=PayslipStatus.ISSUED).exists()
    assert run.journal_entry_id is None
    assert not JournalEntry.objects.filter(source_type="payroll.run").exists()
    assert sorted(PayrollRunChunk.objects.values_list("status", flat=True)) == [
        ChunkStatus.DONE,
        ChunkStatus.FAILED,
        ChunkStatus.FAILED,
    ]

    retry = PayrollProcessor(july).run_payroll()
    assert retry.status == "completed", retry.message
    run2 = retry.run
    assert (run2.attempt, run2.done, run2.total, run2.chunks_done) == (2, 6, 6, 3)
    assert Payslip.objects.count() == 6
    assert Payslip.objects.filter(status=PayslipStatus.ISSUED, run=run2).count() == 6
    assert run2.gross_total == D("600000.00")
    assert run2.net_total == D("600000.00") - 6 * D("8125.00")
    entry = JournalEntry.objects.get(source_type="payroll.run")
    assert entry.total == D("600000.00")


@pytest.mark.django_db
def test_chunk_tasks_retry_a_transient_failure_and_finalise_once(
    books, chunked, monkeypatch, django_capture_on_commit_callbacks
):
    """Through Celery (eager here): the run fans out into chunk tasks; a chunk that fails once
    is retried by Celery and the last chunk finalises the run exactly once."""
    company = books.a
    _staff(company, 5)
    july = monthly(company, 2025, 7)
    real_write = processing._write_payslips
    failures = []

    def flaky(run, computed, status):
        if not failures:
            failures.append(1)
            raise RuntimeError("transient")
        return real_write(run, computed, status)

    monkeypatch.setattr(processing, "_write_payslips", flaky)
    finalised = []
    real_finalise = processing.finalise_run

    def counting(run_id, *, expect_chunks):
        result = real_finalise(run_id, expect_chunks=expect_chunks)
        if result is not None:
            finalised.append(run_id)
        return result

    monkeypatch.setattr(processing, "finalise_run", counting)
    with django_capture_on_commit_callbacks(execute=True):
        result = run_payroll_for_period.delay(july.pk, force=True, trigger="manual").get()
    assert result["status"] == "dispatched"
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED
    run = PayrollRun.objects.get()
    assert (run.status, run.done, run.chunks_done, run.chunks_total) == ("completed", 5, 3, 3)
    assert finalised == [run.pk]
    assert PayrollRunChunk.objects.get(index=0).attempts == 2
    assert Payslip.objects.filter(status="issued").count() == 5
    # Redelivered chunk tasks find their chunks done and the run completed: nothing happens.
    for index in range(3):
        assert run_payroll_chunk.delay(run.pk, index).get()["status"] == "skipped"
    assert Payslip.objects.count() == 5
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1


@pytest.mark.django_db
def test_redelivered_tasks_after_completion_do_nothing(books, django_capture_on_commit_callbacks):
    company = books.a
    _staff(company, 2)
    july = monthly(company, 2025, 7)
    from payroll import services

    with django_capture_on_commit_callbacks(execute=True):
        run = services.payroll_period_run(actor=None, period=july, force=True)
    assert run.status == "running" and run.total == 2
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    before = (Payslip.objects.count(), JournalEntry.objects.count(), PayrollRun.objects.count())

    assert process_payroll_run.delay(run.pk).get()["status"] == "skipped"
    assert run_payroll_for_period.delay(july.pk).get()["status"] == "already_completed"
    assert run_payroll_for_period.delay(july.pk, force=True).get()["status"] == "already_completed"
    after = (Payslip.objects.count(), JournalEntry.objects.count(), PayrollRun.objects.count())
    assert after == before


@pytest.mark.django_db
def test_a_claimed_run_is_processed_by_one_worker_only(books):
    company = books.a
    _staff(company, 2)
    july = monthly(company, 2025, 7)
    processor = PayrollProcessor(july)
    processor.defer = True
    run = processor.claim(force=True)
    assert run.picked_at is None
    first = PayrollProcessor(july).process(run)
    second = PayrollProcessor(july).process(run)
    assert first.status == "completed"
    assert second.status in ("completed", "busy")
    assert Payslip.objects.count() == 2


@pytest.mark.django_db
def test_a_stale_lease_becomes_failed_and_the_period_runs_again(books):
    company = books.a
    _staff(company, 2)
    july = monthly(company, 2025, 7)
    processor = PayrollProcessor(july)
    processor.defer = True
    run = processor.claim(force=True)  # a worker claimed it, then died
    from core.locks import lock_release

    july.refresh_from_db()
    assert stale_runs_release() == 0  # lease still valid
    PayrollPeriod.objects.filter(pk=july.pk).update(
        lock_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert stale_runs_release() == 0  # the Redis lock is still held by its token
    lock_release(lock_name(july.pk), july.lock_token)
    assert stale_runs_release() == 1
    july.refresh_from_db()
    run.refresh_from_db()
    assert (july.status, run.status) == (PeriodStatus.FAILED, RunStatus.FAILED)
    outcome = PayrollProcessor(july).run_payroll()
    assert outcome.status == "completed"
    assert Payslip.objects.filter(status="issued").count() == 2


# --- two workers at once (PostgreSQL and Redis) ------------------------------------------------


def _race(period_id, workers=2):
    barrier = threading.Barrier(workers)
    outcomes = []

    def work():
        try:
            period = PayrollPeriod.objects.select_related("company").get(pk=period_id)
            barrier.wait(timeout=10)
            outcomes.append(PayrollProcessor(period).run_payroll(force=True).status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return sorted(outcomes)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_two_workers_starting_the_same_period_pay_it_once(tenants, statutory):
    company = tenants.a
    _ledger(company)
    _staff(company, 20)
    july = monthly(company, 2025, 7)
    outcomes = _race(july.pk)
    assert outcomes.count("completed") == 1, outcomes
    assert set(outcomes) <= {"completed", "busy", "already_completed"}
    assert PayrollRun.objects.filter(period=july).count() == 1
    assert Payslip.objects.filter(period=july).count() == 20
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_the_lock_the_database_alone_lets_one_worker_pay(tenants, statutory, monkeypatch):
    """Every worker 'gets' the lock (as after an expired lease): the conditional status update
    and the unique constraints still let exactly one of them pay."""
    monkeypatch.setattr(processing, "lock_acquire", lambda name, ttl_seconds: "same-token")
    company = tenants.a
    _ledger(company)
    _staff(company, 20)
    july = monthly(company, 2025, 7)
    outcomes = _race(july.pk, workers=4)
    assert outcomes.count("completed") == 1, outcomes
    assert PayrollRun.objects.filter(period=july).count() == 1
    assert Payslip.objects.filter(period=july).count() == 20
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_workers_sharing_chunks_process_each_once_and_finalise_once(
    tenants, statutory, chunked, monkeypatch
):
    """Ten employees in five chunks; three workers take chunks concurrently (each tries them
    all). Each chunk is processed once, the run is finalised once: one entry, ten payslips."""
    from payroll import tasks

    queued = []
    monkeypatch.setattr(tasks.run_payroll_chunk, "delay", lambda *a: queued.append(a))
    company = tenants.a
    _ledger(company)
    _staff(company, 10)
    july = monthly(company, 2025, 7)
    outcome = PayrollProcessor(july).run_payroll(force=True, fan_out=True)
    assert outcome.status == "dispatched"
    run_id = outcome.run.pk
    assert sorted(index for _, index in queued) == [0, 1, 2, 3, 4]

    barrier = threading.Barrier(3)
    results = []

    def worker(order):
        try:
            barrier.wait(timeout=10)
            for index in order:
                results.append(processing.chunk_process(run_id, index))
        finally:
            connections.close_all()

    orders = [range(5), reversed(range(5)), [2, 0, 4, 1, 3]]
    threads = [threading.Thread(target=worker, args=(list(o),)) for o in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results.count("done") == 5, results
    run = PayrollRun.objects.get(pk=run_id)
    assert (run.status, run.done, run.chunks_done) == (RunStatus.COMPLETED, 10, 5)
    assert list(PayrollRunChunk.objects.values_list("attempts", flat=True)) == [1] * 5
    assert Payslip.objects.filter(status="issued").count() == 10
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED


@pytest.mark.django_db
def test_the_period_task_retries_a_failed_run_with_a_new_attempt(books, monkeypatch):
    """run_payroll_for_period: the first attempt fails (the ledger refuses), Celery retries
    with backoff, the second attempt pays the period."""
    company = books.a
    _staff(company, 2)
    july = monthly(company, 2025, 7)
    real_post = processing._post_entry
    failures = []

    def fail_once(run, lines):
        if not failures:
            failures.append(run.pk)
            raise RuntimeError("ledger busy")
        return real_post(run, lines)

    monkeypatch.setattr(processing, "_post_entry", fail_once)
    result = run_payroll_for_period.delay(july.pk, force=True).get()
    assert result["status"] == "completed"
    assert list(PayrollRun.objects.order_by("attempt").values_list("attempt", "status")) == [
        (1, RunStatus.FAILED),
        (2, RunStatus.COMPLETED),
    ]
    assert Payslip.objects.filter(status="issued").count() == 2


@pytest.mark.django_db
def test_a_claimed_run_that_fails_is_retried_by_its_task(
    books, monkeypatch, django_capture_on_commit_callbacks
):
    from payroll import services

    company = books.a
    _staff(company, 2)
    july = monthly(company, 2025, 7)
    real_post = processing._post_entry
    failures = []

    def fail_once(run, lines):
        if not failures:
            failures.append(run.pk)
            raise RuntimeError("ledger busy")
        return real_post(run, lines)

    monkeypatch.setattr(processing, "_post_entry", fail_once)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.payroll_period_run(actor=None, period=july, force=True, trigger="api")
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED
    assert list(PayrollRun.objects.order_by("attempt").values_list("trigger", "status")) == [
        ("api", RunStatus.FAILED),
        ("api", RunStatus.COMPLETED),
    ]
    run.refresh_from_db()
    assert "ledger busy" in run.error


@pytest.mark.django_db
def test_hourly_cleanup_task(books):
    from payroll.tasks import release_stale_payroll_locks

    company = books.a
    _staff(company, 1)
    july = monthly(company, 2025, 7)
    processor = PayrollProcessor(july)
    processor.defer = True
    processor.claim(force=True)
    july.refresh_from_db()
    from core.locks import lock_release

    lock_release(lock_name(july.pk), july.lock_token)
    PayrollPeriod.objects.filter(pk=july.pk).update(
        lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert release_stale_payroll_locks.delay().get() == 1
    july.refresh_from_db()
    assert july.status == PeriodStatus.FAILED
    assert "lease expired" in july.last_error


@pytest.mark.django_db
def test_a_fanned_out_run_whose_chunk_keeps_failing_fails_and_frees_the_period(
    books, chunked, monkeypatch, django_capture_on_commit_callbacks
):
    company = books.a
    _staff(company, 4)
    july = monthly(company, 2025, 7)
    real_write = processing._write_payslips
    monkeypatch.setattr(
        processing,
        "_write_payslips",
        lambda run, computed, status: (_ for _ in ()).throw(RuntimeError("disk full")),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert run_payroll_for_period.delay(july.pk, force=True).get()["status"] == "dispatched"
    july.refresh_from_db()
    run = PayrollRun.objects.get()
    assert (july.status, run.status) == (PeriodStatus.FAILED, RunStatus.FAILED)
    assert PayrollRunChunk.objects.get(index=0).attempts == 4  # the first try and 3 retries
    assert not Payslip.objects.filter(status="issued").exists()

    monkeypatch.setattr(processing, "_write_payslips", real_write)
    outcome = PayrollProcessor(july).run_payroll()  # not "busy": the lock was let go
    assert outcome.status == "completed", outcome.message
    assert Payslip.objects.filter(status="issued").count() == 4


def test_a_late_failure_of_an_old_attempt_leaves_the_newer_attempt_alone(books):
    """Attempt 1 is taken away (its lease expired: run failed, period failed); attempt 2 is
    running. Attempt 1's worker then fails late: attempt 2 and the period keep running, and
    attempt 2's lock stays held."""
    from core.locks import lock_holder, lock_release

    company = books.a
    employee(company, "E001")
    july = monthly(company, 2025, 7)
    first = PayrollProcessor(july).claim()
    old = PayrollRun.objects.select_related("period__company").get(pk=first.pk)
    # what stale_runs_release does once the lease has expired
    PayrollRun.objects.filter(pk=first.pk).update(status=RunStatus.FAILED, error="Lease expired.")
    PayrollPeriod.objects.filter(pk=july.pk).update(status=PeriodStatus.FAILED)
    lock_release(lock_name(july.pk), old.period.lock_token)
    second = PayrollProcessor(july).claim()
    new_token = PayrollPeriod.objects.get(pk=july.pk).lock_token
    assert new_token != old.period.lock_token

    processing.run_fail(old, RuntimeError("worker 1 died late"))

    july.refresh_from_db()
    assert (july.status, july.lock_token) == (PeriodStatus.PROCESSING, new_token)
    assert PayrollRun.objects.get(pk=second.pk).status == RunStatus.RUNNING
    assert PayrollRun.objects.get(pk=first.pk).error == "Lease expired."
    assert lock_holder(lock_name(july.pk)) == new_token
    # the current attempt failing does fail the period
    processing.run_fail(
        PayrollRun.objects.select_related("period__company").get(pk=second.pk),
        RuntimeError("boom"),
    )
    july.refresh_from_db()
    assert july.status == PeriodStatus.FAILED
    assert lock_holder(lock_name(july.pk)) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_periods_created_at_once_one_is_refused(tenants):
    """A monthly July and a weekly 7-13 July created at the same moment: the company row lock
    serialises the overlap check, so exactly one is saved."""
    from core.errors import DomainError
    from payroll import services

    company = tenants.a
    barrier = threading.Barrier(2)
    results = []
    shapes = [
        (date(2025, 7, 1), date(2025, 7, 31), "monthly"),
        (date(2025, 7, 7), date(2025, 7, 13), "weekly"),
    ]

    def create(start, end, period_type):
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                services.payroll_period_create(
                    actor=None,
                    company=company,
                    start_date=start,
                    end_date=end,
                    period_type=period_type,
                )
                import time

                time.sleep(0.3)  # hold the transaction open while the other one checks
            results.append("saved")
        except DomainError as exc:
            results.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=shape) for shape in shapes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["period_overlap", "saved"]
    assert PayrollPeriod.objects.filter(company=company).count() == 1


@pytest.mark.django_db
def test_a_redelivered_api_run_whose_worker_died_pays_the_period_once(
    books, django_capture_on_commit_callbacks
):
    """A run claimed by the API was picked by a worker that died inside its transaction
    (nothing written). Its redelivered task finds the run picked: while the lease holds it is
    busy and changes nothing; once the lease has expired it pays the period as attempt 2."""
    from core.locks import lock_release
    from payroll import services

    company = books.a
    _staff(company, 2)
    july = monthly(company, 2025, 7)
    with django_capture_on_commit_callbacks(execute=False):
        run = services.payroll_period_run(actor=None, period=july, force=True)
    PayrollRun.objects.filter(pk=run.pk).update(picked_at=timezone.now())  # the dead worker

    assert process_payroll_run.delay(run.pk).get()["status"] == "busy"  # lease still valid
    assert PayrollRun.objects.get(pk=run.pk).status == RunStatus.RUNNING

    july.refresh_from_db()
    lock_release(lock_name(july.pk), july.lock_token)  # the Redis lock expired too
    PayrollPeriod.objects.filter(pk=july.pk).update(
        lock_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    result = process_payroll_run.delay(run.pk).get()
    assert result["status"] == "completed"
    assert PayrollRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert PayrollRun.objects.get(status=RunStatus.COMPLETED).attempt == 2
    assert Payslip.objects.filter(period=july).exclude(status="void").count() == 2
    assert JournalEntry.objects.filter(source_type="payroll.run").count() == 1
    # Delivered once more: the period is paid, nothing happens.
    assert process_payroll_run.delay(run.pk).get()["status"] == "skipped"
    assert Payslip.objects.filter(period=july).count() == 2
