"""manage.py run_payroll_automation: exit 0 all good, 1 some failed, 2 bad arguments; the dry
run prints previewed totals and writes nothing."""

import datetime as dt
from datetime import date
from decimal import Decimal
from io import StringIO
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import time_machine

from accounting.models import JournalEntry
from core.models import AuditEvent
from payroll.management.commands import run_payroll_automation as command_module
from payroll.models import Employee, PayrollPeriod, PayrollRun, Payslip, PayslipLine, PeriodStatus
from tests.payroll.conftest import employee, monthly

pytestmark = pytest.mark.django_db
DHAKA = ZoneInfo("Asia/Dhaka")
LATE_JULY = dt.datetime(2025, 7, 29, 2, 0, tzinfo=DHAKA)


def run(*argv):
    """Run as from the command line; returns (exit status, stdout, stderr)."""
    cmd = command_module.Command(stdout=StringIO(), stderr=StringIO())
    status = 0
    # run_from_argv closes the database connections when it ends: keep the test's open.
    with mock.patch("django.core.management.base.connections.close_all"):
        try:
            cmd.run_from_argv(["manage.py", "run_payroll_automation", *argv])
        except SystemExit as exc:
            status = exc.code
    return status, cmd.stdout._out.getvalue(), cmd.stderr._out.getvalue()


@pytest.fixture
def due_period(books):
    company = books.a
    employee(company, "E1")
    employee(company, "E2", annual_salary=Decimal("600000.00"))
    return monthly(
        company, 2025, 7, automation_enabled=True, automation_rule={"days_before_end": 3}
    )


def _counts():
    return (
        Payslip.objects.count(),
        PayslipLine.objects.count(),
        PayrollRun.objects.count(),
        JournalEntry.objects.count(),
        AuditEvent.objects.count(),
        list(PayrollPeriod.objects.values_list("status", flat=True)),
    )


def test_dry_run_previews_totals_and_writes_nothing(due_period):
    """E1 1,200,000 a year: 100,000 gross, 8,125 tax. E2 600,000: 50,000 gross, projected
    600,000: 5,000 + 150,000 x 10% = 20,000, 1,666.67 a month."""
    before = _counts()
    with time_machine.travel(LATE_JULY, tick=False):
        status, out, err = run("--dry-run")
    assert status == 0, err
    assert f"{due_period.pk} " in out
    assert "2 employees" in out
    assert "gross 150,000.00" in out
    assert "taxes 9,791.67" in out
    assert "net 140,208.33" in out
    assert "dry run, nothing written" in out
    assert _counts() == before


def test_runs_due_periods_and_exits_0(due_period):
    with time_machine.travel(LATE_JULY, tick=False):
        status, out, err = run()
    assert status == 0, err
    assert "completed, 2 payslips, gross 150,000.00, net 140,208.33, entry JE/" in out
    due_period.refresh_from_db()
    assert due_period.status == PeriodStatus.COMPLETED
    assert due_period.runs.get().trigger == "command"
    with time_machine.travel(LATE_JULY, tick=False):
        assert run() == (0, "No payroll period is due.\n", "")


def test_a_period_not_due_needs_force(due_period):
    with time_machine.travel(dt.datetime(2025, 7, 10, tzinfo=DHAKA), tick=False):
        status, _, err = run("--period-id", str(due_period.pk))
        assert status == 1
        assert "not_due" in err and "force" in err
        status, out, _ = run("--period-id", str(due_period.pk), "--force")
    assert status == 0
    assert "completed" in out
    status, out, _ = run("--period-id", str(due_period.pk), "--force")
    assert status == 0 and "already completed" in out  # never paid twice


def test_some_failed_exits_1(due_period):
    Employee.objects.create(  # around the service: an hourly employee with no rate anywhere
        company=due_period.company,
        code="BAD",
        name="No Rate",
        pay_type="hourly",
        jurisdiction="BD",
        start_date=date(2020, 1, 1),
    )
    with time_machine.travel(LATE_JULY, tick=False):
        status, out, err = run()
    assert status == 1
    assert "BAD No Rate" in err and "hourly rate" in err
    assert "1 of 1 period(s) failed" in err
    due_period.refresh_from_db()
    assert due_period.status == PeriodStatus.FAILED
    assert not Payslip.objects.exists()
    with time_machine.travel(LATE_JULY, tick=False):
        status, _, err = run("--dry-run")
    assert status == 1 and "BAD No Rate" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--period-id", "999"], "No payroll period 999"),
        (["--force"], "--force needs --period-id"),
        (["--period-id", "0"], "must be positive"),
        (["--async", "--dry-run"], "cannot be combined"),
    ],
)
def test_bad_arguments_exit_2(db, argv, words):
    status, _, err = run(*argv)
    assert status == 2
    assert words in err
    assert len(err.strip().splitlines()) == 1


def test_unparsable_arguments_exit_2(db, capsys):
    status, _, _ = run("--period-id", "abc")
    assert status == 2
    assert "invalid int value" in capsys.readouterr().err


def test_async_queues_the_runs(due_period):
    with time_machine.travel(LATE_JULY, tick=False):
        status, out, _ = run("--async")
    assert status == 0
    assert f"{due_period.pk} {due_period}: queued" in out
    due_period.refresh_from_db()
    assert due_period.status == PeriodStatus.COMPLETED  # eager Celery in tests


def test_progress_bar_on_long_runs(due_period, monkeypatch):
    monkeypatch.setattr(command_module, "PROGRESS_FROM", 1)
    with time_machine.travel(LATE_JULY, tick=False):
        status, _, err = run()
    assert status == 0
    assert "[##############################] 2/2" in err
