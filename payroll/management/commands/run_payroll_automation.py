"""Run payroll periods from the command line (cron jobs, operators, CI smoke tests).

Exit status: 0 when every period ran (or had nothing to do), 1 when some failed, 2 on bad
arguments. --dry-run computes and prints totals and writes nothing.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.money import format_money
from payroll.models import PayrollPeriod, RunTrigger
from payroll.processing import PayrollProcessor
from payroll.selectors import periods_due

PROGRESS_FROM = 1000  # employees; smaller runs finish before a bar would help


class _Rollback(Exception):
    pass


class ProgressBar:
    def __init__(self, stream, label: str, width: int = 30):
        self.stream, self.label, self.width = stream, label, width
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        filled = self.width * done // max(total, 1)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}",
            ending="",
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("")


class Command(BaseCommand):
    help = (
        "Run due payroll periods (or one with --period-id). --force runs a period its rule "
        "does not make due yet (never a completed one); --async queues the runs for Celery "
        "workers; --dry-run prints the totals a run would produce and writes nothing. "
        "Exits 0 when all went well, 1 when some period failed, 2 on bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period-id", type=int, help="Run this period only.")
        parser.add_argument(
            "--force", action="store_true", help="Run even if the rule's date has not come."
        )
        parser.add_argument(
            "--async", dest="asynchronous", action="store_true", help="Queue for Celery workers."
        )
        parser.add_argument("--dry-run", action="store_true", help="Preview; write nothing.")

    def handle(self, *args, period_id=None, force=False, asynchronous=False, dry_run=False, **o):
        if force and period_id is None:
            raise CommandError("--force needs --period-id: name the period to force.", returncode=2)
        if asynchronous and dry_run:
            raise CommandError("--async and --dry-run cannot be combined.", returncode=2)
        if period_id is not None:
            if period_id < 1:
                raise CommandError(f"--period-id must be positive, not {period_id}.", returncode=2)
            period = PayrollPeriod.objects.select_related("company").filter(pk=period_id).first()
            if period is None:
                raise CommandError(f"No payroll period {period_id}.", returncode=2)
            periods = [period]
        else:
            periods = periods_due()
        if not periods:
            self.stdout.write("No payroll period is due.")
            return
        if dry_run:
            return self._preview(periods)
        if asynchronous:
            from payroll.tasks import run_payroll_for_period

            for period in periods:
                run_payroll_for_period.delay(period.pk, force=force, trigger=RunTrigger.COMMAND)
                self.stdout.write(f"{period.pk} {period}: queued")
            return
        failed = 0
        for period in periods:
            bar = ProgressBar(self.stderr, f"{period}")
            outcome = PayrollProcessor(
                period, trigger=RunTrigger.COMMAND, progress=bar
            ).run_payroll(force=force)
            bar.close()
            run = outcome.run
            if outcome.status == "completed":
                self.stdout.write(
                    f"{period.pk} {period}: completed, {run.payslip_count} payslips, gross "
                    f"{format_money(run.gross_total)}, net {format_money(run.net_total)}"
                    + (f", entry {run.journal_entry.reference}" if run.journal_entry_id else "")
                )
            elif outcome.status in ("already_completed", "dispatched"):
                self.stdout.write(f"{period.pk} {period}: {outcome.status.replace('_', ' ')}")
            else:
                failed += 1
                self.stderr.write(f"{period.pk} {period}: {outcome.status}: {outcome.message}")
        if failed:
            raise CommandError(f"{failed} of {len(periods)} period(s) failed.", returncode=1)

    def _preview(self, periods):
        failed = 0
        try:
            with transaction.atomic():
                for period in periods:
                    p = PayrollProcessor(period).preview()
                    state = f", {len(p['errors'])} cannot be paid" if p["errors"] else ""
                    self.stdout.write(
                        f"{period.pk} {period}: {p['employees']} employees{state}; gross "
                        f"{format_money(p['gross'])}, taxes {format_money(p['taxes'])}, "
                        f"deductions {format_money(p['deductions'])}, employer "
                        f"{format_money(p['employer'])}, net {format_money(p['net'])} "
                        "(dry run, nothing written)"
                    )
                    for error in p["errors"][:10]:
                        self.stderr.write(f"  {error}")
                    failed += bool(p["errors"])
                raise _Rollback
        except _Rollback:
            pass
        if failed:
            raise CommandError(
                f"{failed} period(s) have employees that cannot be paid.", returncode=1
            )
