"""Redis goes away when a run starts and in its middle. Kontor's cache, locks and task broker
point at a private redis-server here, which the tests kill and start again.

A run never starts without its lock (it refuses cleanly: nothing changes, the task retries),
a run whose database work is under way finishes on the database's word alone, a fanned-out
run that cannot queue its chunks fails cleanly, and whatever happened, the period is paid once
when Redis is back. Meanwhile /health/ready answers 503 naming the cache and the broker, and
the API answers 503 service_unavailable with a Retry-After header.
"""

import pytest
from django.test import Client

from core.roles import Role
from payroll import processing
from payroll.models import PayrollRun, Payslip, PeriodStatus, RunStatus
from payroll.processing import PayrollProcessor
from payroll.tasks import MAX_RETRIES, run_payroll_for_period
from tests.factories import MembershipFactory, UserFactory
from tests.faults.payroll_setup import assert_paid_once, company_with_staff, july

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def app_on_private_redis(settings, private_redis):
    """This process's cache, locks and Celery broker on the private Redis."""
    from config.celery_app import app

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": private_redis.url(0),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                "IGNORE_EXCEPTIONS": False,
            },
            "KEY_PREFIX": "kontor",
        }
    }
    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url = private_redis.url(1)
    # Celery keeps its connection and producer pools: start new ones on the private broker.
    app._pool = app.amqp._producer_pool = None
    settings.PAYROLL_RETRY_BACKOFF_SECONDS = 0
    yield private_redis
    app.conf.broker_url, app._pool, app.amqp._producer_pool = saved


def ready() -> tuple[int, dict]:
    response = Client().get("/health/ready")
    return response.status_code, response.json()


def assert_nothing_started(period):
    period.refresh_from_db()
    assert period.status == PeriodStatus.ACTIVE
    assert not PayrollRun.objects.filter(period=period).exists()
    assert not Payslip.objects.filter(period=period).exists()


@pytest.mark.django_db(transaction=True)
def test_redis_down_when_a_run_starts_nothing_starts_and_the_probe_says_so(
    statutory, app_on_private_redis, api, monkeypatch
):
    redis = app_on_private_redis
    company = company_with_staff(3)
    period = july(company)
    owner = UserFactory(username="faults-owner")
    MembershipFactory(user=owner, company=company, role=Role.OWNER)
    assert ready()[0] == 200

    redis.stop()
    status, body = ready()
    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["broker"]["ok"] is False
    assert "Connection" in body["checks"]["cache"]["error"]

    outcome = PayrollProcessor(period).run_payroll(force=True)
    assert outcome.status == "unavailable"
    assert "lock store (Redis) is unreachable" in outcome.message
    assert_nothing_started(period)

    # The beat-driven task retries (three times, with backoff), then gives up with the reason.
    attempts = []
    real_run = PayrollProcessor.run_payroll

    def counted(self, *args, **kwargs):
        attempts.append(1)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(PayrollProcessor, "run_payroll", counted)
    result = run_payroll_for_period.apply(args=[period.pk], kwargs={"force": True}).get()
    assert len(attempts) == 1 + MAX_RETRIES
    assert result["status"] == "unavailable"
    assert "unreachable" in result["message"]
    assert_nothing_started(period)

    # The API refuses with a retry hint, never a 500.
    response = api(owner, company).post(
        f"/api/v1/payroll/periods/{period.pk}/run/", {"force": True}, format="json"
    )
    assert response.status_code == 503, response.content
    assert response.headers["Retry-After"].isdigit()
    assert response.json()["code"] == "service_unavailable"
    assert_nothing_started(period)

    redis.start()
    assert ready()[0] == 200
    outcome = PayrollProcessor(period).run_payroll(force=True)
    assert outcome.status == "completed", outcome.message
    assert_paid_once(period, 3)


@pytest.mark.django_db(transaction=True)
def test_redis_dies_during_a_run_the_database_finishes_it_once(
    statutory, app_on_private_redis, monkeypatch
):
    """The lock was taken, then Redis went away while the payslips were computed: the run
    needs only the database from there on and completes; releasing the lock fails quietly
    (it expires). Once Redis is back, running the period again pays nobody twice."""
    redis = app_on_private_redis
    company = company_with_staff(3)
    period = july(company)
    real_compute = processing.compute_batch

    def redis_dies_then_compute(batch):
        redis.stop()
        return real_compute(batch)

    monkeypatch.setattr(processing, "compute_batch", redis_dies_then_compute)
    outcome = PayrollProcessor(period).run_payroll(force=True)
    assert outcome.status == "completed", outcome.message
    monkeypatch.setattr(processing, "compute_batch", real_compute)
    assert_paid_once(period, 3)

    assert PayrollProcessor(period).run_payroll(force=True).status == "unavailable"
    redis.start()
    # The lock the run could not release is still in Redis (append-only file): the period is
    # completed, so the database refuses a second payment anyway.
    again = PayrollProcessor(period).run_payroll(force=True)
    assert again.status == "already_completed", again.message
    assert_paid_once(period, 3)


@pytest.mark.django_db(transaction=True)
def test_redis_dies_before_the_chunks_are_queued_the_run_fails_cleanly_then_pays_once(
    statutory, app_on_private_redis, monkeypatch, settings
):
    """A fanned-out run: the period is claimed, then the broker is gone when its chunks are to
    be queued. The attempt fails with the reason, nothing is issued or posted; when Redis is
    back, the lock the failed attempt could not release is taken over and the period is paid
    once."""
    settings.PAYROLL_FAN_OUT_THRESHOLD = 3
    settings.PAYROLL_CHUNK_SIZE = 2
    redis = app_on_private_redis
    company = company_with_staff(5)
    period = july(company)
    real_chunked = PayrollProcessor._process_chunked

    def redis_dies_then_fan_out(self, run, *, fan_out):
        redis.stop()
        return real_chunked(self, run, fan_out=fan_out)

    monkeypatch.setattr(PayrollProcessor, "_process_chunked", redis_dies_then_fan_out)
    outcome = PayrollProcessor(period).run_payroll(force=True, fan_out=True)
    monkeypatch.setattr(PayrollProcessor, "_process_chunked", real_chunked)
    assert outcome.status == "failed"
    assert "task broker is unreachable" in outcome.message
    period.refresh_from_db()
    assert period.status == PeriodStatus.FAILED
    assert "task broker is unreachable" in period.last_error
    run = PayrollRun.objects.get(period=period)
    assert run.status == RunStatus.FAILED
    assert run.journal_entry_id is None
    assert not Payslip.objects.filter(period=period, status="issued").exists()

    redis.start()
    retry = PayrollProcessor(period).run_payroll(force=True)  # in this process: no workers
    assert retry.status == "completed", retry.message
    assert retry.run.attempt == 2
    assert_paid_once(period, 5)
