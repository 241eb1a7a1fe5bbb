"""Automation rules: validation messages, when a period is due (company time zone), pay
schedules, the daily beat dispatcher, and a cron rule's own beat entry firing for real."""

import datetime as dt
import json
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from core.errors import ConflictError, ValidationFailed
from payroll import services
from payroll.automation import automation_rule_validate
from payroll.models import PayrollPeriod, Payslip, PeriodStatus, RunTrigger
from payroll.processing import PayrollProcessor
from payroll.tasks import (
    AUTO_RUN_SCHEDULE_NAME,
    AUTO_RUN_TASK,
    CLEANUP_SCHEDULE_NAME,
    RUN_TASK,
    auto_run_payroll,
    declare_schedules,
    period_task_name,
)
from tests.payroll.conftest import employee, monthly, period

pytestmark = pytest.mark.django_db
UTC = dt.UTC
DHAKA = ZoneInfo("Asia/Dhaka")


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "code", "words"),
    [
        ({"run_on": "2025-07-25"}, "automation_rule_unknown_key", "Unknown automation rule key"),
        (
            {"run_on_date": "2025-07-25", "days_before_end": 3},
            "automation_rule_ambiguous",
            "exactly one",
        ),
        ({"run_on_date": "2025-02-30"}, "automation_rule_bad_date", "YYYY-MM-DD"),
        ({"run_on_date": "25/07/2025"}, "automation_rule_bad_date", "YYYY-MM-DD"),
        ({"days_before_end": -1}, "automation_rule_negative_days", "cannot be negative"),
        ({"days_before_end": "three"}, "automation_rule_bad_days", "whole number"),
        ({"days_before_end": 2.5}, "automation_rule_bad_days", "whole number"),
        ({"cron": "61 * * * *"}, "automation_rule_invalid_cron", "not a valid expression"),
        ({"cron": "0 9 25 *"}, "automation_rule_invalid_cron", "five fields"),
        # croniter accepts these, celery beat cannot build them (the entry would never fire)
        ({"cron": "0 2 L * *"}, "automation_rule_invalid_cron", "not a valid expression"),
        ({"cron": "0 2 * * 7"}, "automation_rule_invalid_cron", "not a valid expression"),
        # not ten characters long: a validation error, not an AttributeError (500)
        ({"run_on_date": "2025-7-1"}, "automation_rule_bad_date", "YYYY-MM-DD"),
        ({"run_on_date": ""}, "automation_rule_bad_date", "YYYY-MM-DD"),
        ({"run_on_date": "tomorrow"}, "automation_rule_bad_date", "YYYY-MM-DD"),
        ({"days_before_end": 1.5}, "automation_rule_bad_days", "must be a whole number of days"),
        ({"days_before_end": "1.5"}, "automation_rule_bad_days", "must be a whole number of days"),
        ([], "automation_rule_not_object", "must be an object"),
        ({}, "automation_rule_missing", "no rule is set"),
    ],
)
def test_invalid_rules_get_a_clear_message(rule, code, words):
    with pytest.raises(ValidationFailed) as caught:
        automation_rule_validate(rule)
    assert caught.value.code == code
    assert words in caught.value.message
    assert caught.value.fields == {"automation_rule": [caught.value.message]}


def test_valid_rules_are_normalised():
    assert automation_rule_validate({"run_on_date": " 2025-07-25 "}) == {
        "run_on_date": "2025-07-25"
    }
    assert automation_rule_validate({"days_before_end": "3"}) == {"days_before_end": 3}
    assert automation_rule_validate({"cron": "0  9 25 * *"}) == {"cron": "0 9 25 * *"}
    assert automation_rule_validate({}, enabled=False) == {}


def test_services_refuse_a_bad_rule_and_save_nothing(books):
    with pytest.raises(ValidationFailed) as caught:
        monthly(books.a, 2025, 7, automation_enabled=True, automation_rule={"days_before_end": -2})
    assert caught.value.code == "automation_rule_negative_days"
    assert not PayrollPeriod.objects.exists()


# --- when a period is due ----------------------------------------------------------------------


def test_run_on_date_and_days_before_end(books):
    company = books.a
    on_date = monthly(
        company, 2025, 7, automation_enabled=True, automation_rule={"run_on_date": "2025-07-25"}
    )
    assert not on_date.is_due_for_automation(date(2025, 7, 24))
    assert on_date.is_due_for_automation(date(2025, 7, 25))
    assert on_date.is_due_for_automation(date(2025, 7, 27))  # a missed day still runs

    before_end = monthly(
        company, 2025, 8, automation_enabled=True, automation_rule={"days_before_end": 3}
    )
    assert not before_end.is_due_for_automation(date(2025, 8, 27))
    assert before_end.is_due_for_automation(date(2025, 8, 28))
    assert before_end.automation_next_run() == date(2025, 8, 28)

    before_end.automation_enabled = False
    assert not before_end.is_due_for_automation(date(2025, 8, 30))


def test_due_means_today_in_the_company_time_zone(books):
    """At 20:30 UTC on 24 July it is already 02:30 on 25 July in Dhaka."""
    p = monthly(
        books.a, 2025, 7, automation_enabled=True, automation_rule={"run_on_date": "2025-07-25"}
    )
    assert p.is_due_for_automation(now=dt.datetime(2025, 7, 24, 20, 30, tzinfo=UTC))
    assert not p.is_due_for_automation(now=dt.datetime(2025, 7, 24, 17, 0, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2025, 7, 24, 20, 30, tzinfo=UTC), tick=False):
        assert p.is_due_for_automation()


def test_cron_rule_is_due_once_it_fired_in_the_period(books):
    p = monthly(books.a, 2025, 7, automation_enabled=True, automation_rule={"cron": "0 9 25 * *"})
    fire = dt.datetime(2025, 7, 25, 9, 0, tzinfo=DHAKA)
    assert p.automation_next_run() == fire
    assert not p.is_due_for_automation(now=fire - dt.timedelta(minutes=1))
    assert p.is_due_for_automation(now=fire)
    assert p.is_due_for_automation(date(2025, 7, 25))


def test_only_active_periods_are_due(books):
    p = monthly(
        books.a,
        2025,
        7,
        activate=False,
        automation_enabled=True,
        automation_rule={"run_on_date": "2025-07-01"},
    )
    assert not p.is_due_for_automation(date(2025, 7, 30))
    p = services.payroll_period_activate(actor=None, period=p)
    assert p.is_due_for_automation(date(2025, 7, 30))


def test_a_run_before_the_rule_date_needs_force(books):
    company = books.a
    employee(company, "E1")
    p = monthly(
        company, 2025, 7, automation_enabled=True, automation_rule={"run_on_date": "2099-01-01"}
    )
    outcome = PayrollProcessor(p).run_payroll()
    assert outcome.status == "not_due"
    assert "force" in outcome.message
    assert not Payslip.objects.exists()
    assert PayrollProcessor(p).run_payroll(force=True).status == "completed"


# --- pay schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "anchor", "expected"),
    [
        (
            "monthly",
            date(2025, 7, 1),
            [(date(2025, 7, 1), date(2025, 7, 31)), (date(2025, 8, 1), date(2025, 8, 31))],
        ),
        (
            "semi_monthly",
            date(2025, 2, 1),
            [
                (date(2025, 2, 1), date(2025, 2, 15)),
                (date(2025, 2, 16), date(2025, 2, 28)),
                (date(2025, 3, 1), date(2025, 3, 15)),
            ],
        ),
        (
            "weekly",
            date(2025, 7, 7),
            [(date(2025, 7, 7), date(2025, 7, 13)), (date(2025, 7, 14), date(2025, 7, 20))],
        ),
        (
            "bi_weekly",
            date(2025, 7, 7),
            [(date(2025, 7, 7), date(2025, 7, 20)), (date(2025, 7, 21), date(2025, 8, 3))],
        ),
    ],
)
def test_pay_schedule_generates_upcoming_periods(books, frequency, anchor, expected):
    schedule = services.pay_schedule_create(
        actor=None,
        company=books.a,
        name=f"{frequency} staff",
        frequency=frequency,
        anchor_date=anchor,
        pay_day_offset=2,
        automation_enabled=True,
        automation_rule={"days_before_end": 1},
    )
    periods = services.pay_schedule_generate_periods(
        actor=None, schedule=schedule, count=len(expected)
    )
    assert [(p.start_date, p.end_date) for p in periods] == expected
    assert all(p.pay_date == p.end_date + dt.timedelta(days=2) for p in periods)
    assert all(p.period_type == frequency and p.status == "active" for p in periods)
    assert all(p.automation_rule == {"days_before_end": 1} for p in periods)
    more = services.pay_schedule_generate_periods(actor=None, schedule=schedule, count=1)
    assert more[0].start_date == expected[-1][1] + dt.timedelta(days=1)


def test_overlapping_periods_are_refused(books):
    monthly(books.a, 2025, 7)
    with pytest.raises(ConflictError) as caught:
        period(books.a, date(2025, 7, 15), date(2025, 8, 14))
    assert caught.value.code == "period_overlap"


# --- beat -------------------------------------------------------------------------------------


def test_schedules_are_declared_once_and_operator_edits_survive(db):
    declare_schedules()
    task = PeriodicTask.objects.get(name=AUTO_RUN_SCHEDULE_NAME)
    assert task.task == AUTO_RUN_TASK and task.queue == "payroll"
    assert (task.crontab.minute, task.crontab.hour) == ("0", "2")
    task.enabled = False
    task.save()
    declare_schedules()
    assert PeriodicTask.objects.get(name=AUTO_RUN_SCHEDULE_NAME).enabled is False
    assert PeriodicTask.objects.get(name=CLEANUP_SCHEDULE_NAME).interval.every == 3600


def test_auto_run_pays_due_periods_only(books):
    company = books.a
    employee(company, "E1")
    due = monthly(company, 2025, 7, automation_enabled=True, automation_rule={"days_before_end": 5})
    later = monthly(
        company, 2025, 8, automation_enabled=True, automation_rule={"days_before_end": 5}
    )
    manual = monthly(company, 2025, 9)
    with time_machine.travel(dt.datetime(2025, 7, 27, 2, 0, tzinfo=DHAKA), tick=False):
        assert auto_run_payroll() == 1
    for p in (due, later, manual):
        p.refresh_from_db()
    assert due.status == PeriodStatus.COMPLETED
    assert due.runs.get().trigger == RunTrigger.BEAT
    assert later.status == manual.status == PeriodStatus.ACTIVE
    with time_machine.travel(dt.datetime(2025, 7, 28, 2, 0, tzinfo=DHAKA), tick=False):
        assert auto_run_payroll() == 0  # paid once, never again


def test_cron_rule_owns_a_beat_entry_kept_in_sync(books, django_capture_on_commit_callbacks):
    company = books.a
    with django_capture_on_commit_callbacks(execute=True):
        p = monthly(
            company, 2025, 7, automation_enabled=True, automation_rule={"cron": "0 9 25 * *"}
        )
    task = PeriodicTask.objects.get(name=period_task_name(p.pk))
    p.refresh_from_db()
    assert p.periodic_task_id == task.pk
    assert task.task == RUN_TASK and task.enabled and task.queue == "payroll"
    assert json.loads(task.kwargs) == {"period_id": p.pk}
    assert str(task.crontab.timezone) == "Asia/Dhaka"
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("0", "9", "25")

    with django_capture_on_commit_callbacks(execute=True):
        services.payroll_period_update(
            actor=None, period=p, automation_rule={"cron": "30 10 26 * *"}
        )
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("30", "10", "26")

    with django_capture_on_commit_callbacks(execute=True):
        services.payroll_period_cancel(actor=None, period=p)
    task.refresh_from_db()
    assert task.enabled is False

    other = monthly(
        company, 2025, 8, automation_enabled=True, automation_rule={"cron": "0 9 * * *"}
    )
    from payroll.tasks import period_schedule_sync

    period_schedule_sync(other.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.payroll_period_update(
            actor=None, period=other, automation_rule={"days_before_end": 2}
        )
    assert not PeriodicTask.objects.filter(name=period_task_name(other.pk)).exists()

    third = monthly(
        company,
        2025,
        9,
        activate=False,
        automation_enabled=True,
        automation_rule={"cron": "0 9 * * *"},
    )
    period_schedule_sync(third.pk)
    assert PeriodicTask.objects.get(name=period_task_name(third.pk)).enabled is False  # draft
    services.payroll_period_delete(actor=None, period=third)
    assert not PeriodicTask.objects.filter(name=period_task_name(third.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_cron_rule_fires_through_the_beat_scheduler(tenants, statutory):
    """django-celery-beat's DatabaseScheduler reads the period's PeriodicTask, finds it due when
    the cron time comes (09:00 in Dhaka on the 25th), and sends run_payroll_for_period, which
    pays the period; the entry is then disabled."""
    from django_celery_beat.schedulers import DatabaseScheduler

    from accounting import services as ledger
    from config.celery_app import app

    company = tenants.a
    ledger.company_ledger_setup(company=company)
    ledger.fiscal_year_create(actor=None, company=company, containing=date(2025, 7, 1))
    employee(company, "E1")
    with time_machine.travel(dt.datetime(2025, 7, 20, 12, 0, tzinfo=DHAKA), tick=False):
        p = monthly(
            company, 2025, 7, automation_enabled=True, automation_rule={"cron": "0 9 25 * *"}
        )
    # Beat loads crontab entries whose hour is near the current one.
    with time_machine.travel(dt.datetime(2025, 7, 25, 8, 30, tzinfo=DHAKA), tick=False):
        scheduler = DatabaseScheduler(app=app, lazy=True)
        entry = scheduler.all_as_schedule()[period_task_name(p.pk)]
        assert entry.task == RUN_TASK and entry.kwargs == {"period_id": p.pk}
        assert entry.options["queue"] == "payroll"
        assert entry.is_due().is_due is False
    with time_machine.travel(dt.datetime(2025, 7, 25, 8, 59, tzinfo=DHAKA), tick=False):
        assert entry.is_due().is_due is False
    with time_machine.travel(dt.datetime(2025, 7, 25, 9, 0, 30, tzinfo=DHAKA), tick=False):
        assert entry.is_due().is_due is True
        scheduler.apply_entry(entry, producer=None)
    p.refresh_from_db()
    assert p.status == PeriodStatus.COMPLETED
    run = p.runs.get()
    assert run.trigger == RunTrigger.BEAT
    assert Payslip.objects.get(period=p).net == Decimal("91875.00")
    assert PeriodicTask.objects.get(name=period_task_name(p.pk)).enabled is False


def test_nightly_run_queues_only_the_earliest_due_period_of_each_company(books, monkeypatch):
    """July and August are both due: only July is queued tonight; August follows once July is
    paid (the next night)."""
    from payroll import tasks
    from tests.payroll.conftest import employee, monthly

    employee(books.a, "E001")
    rule = {"run_on_date": "2025-01-01"}
    july = monthly(books.a, 2025, 7, automation_enabled=True, automation_rule=rule)
    august = monthly(books.a, 2025, 8, automation_enabled=True, automation_rule=rule)
    queued = []
    monkeypatch.setattr(tasks.run_payroll_for_period, "delay", lambda pk: queued.append(pk))
    assert tasks.auto_run_payroll() == 1
    assert queued == [july.pk]
    queued.clear()
    from payroll.processing import PayrollProcessor

    assert PayrollProcessor(july).run_payroll().status == "completed"
    assert tasks.auto_run_payroll() == 1
    assert queued == [august.pk]


def test_malformed_run_on_date_through_the_api_answers_400(books, api):
    client = api(books.users_a["payroll_manager"], books.a)
    client.raise_request_exception = False
    for value in ("2025-7-1", "", "tomorrow"):
        response = client.post(
            "/api/v1/payroll/periods/",
            {
                "start_date": "2025-07-01",
                "end_date": "2025-07-31",
                "automation_enabled": True,
                "automation_rule": {"run_on_date": value},
            },
            format="json",
        )
        assert response.status_code == 400, (value, response.status_code)
        assert response.json()["code"] == "automation_rule_bad_date"
    assert not PayrollPeriod.objects.exists()


def test_cron_day_of_month_and_day_of_week_both_match_as_in_celery(books):
    """'0 2 1-7 * 1' is the first Monday of the month for celery's crontab (both fields must
    match), not every day 1-7 plus every Monday: July 2025 starts on a Tuesday, so the rule is
    due from Monday 7 July 02:00 Dhaka, not on 1 July."""
    from payroll.automation import celery_crontab, rule_next_run

    july = monthly(
        books.a, 2025, 7, automation_enabled=True, automation_rule={"cron": "0 2 1-7 * 1"}
    )
    fire = rule_next_run(july)
    assert fire == dt.datetime(2025, 7, 7, 2, 0, tzinfo=books.a.tz)
    assert not july.is_due_for_automation(today=date(2025, 7, 6))
    assert july.is_due_for_automation(today=date(2025, 7, 7))
    # celery's crontab agrees: 1 July is not one of its days, 7 July is
    schedule = celery_crontab("0 2 1-7 * 1")
    assert 1 not in schedule.day_of_week or 1 in schedule.day_of_month  # Monday = 1
    assert date(2025, 7, 7).isoweekday() % 7 in schedule.day_of_week
    assert date(2025, 7, 1).isoweekday() % 7 not in schedule.day_of_week
