from datetime import date

from django.core.management.base import BaseCommand, CommandError

from invoicing import tasks


class Command(BaseCommand):
    help = (
        "Run an invoicing beat job now: 'overdue' (mark overdue, send reminders), 'recurring' "
        "(issue due recurring invoices) or 'feed' (fold new events into customer balances)."
    )

    def add_arguments(self, parser):
        parser.add_argument("job", choices=["overdue", "recurring", "feed"])
        parser.add_argument(
            "--today", help="Business date YYYY-MM-DD (default: today in each company's zone)."
        )

    def handle(self, *args, job, today=None, **options):
        if today:
            try:
                date.fromisoformat(today)
            except ValueError:
                raise CommandError(f"--today {today!r} is not a date (YYYY-MM-DD)") from None
        if job == "feed":
            if today:
                raise CommandError("--today does not apply to the feed")
            self.stdout.write(f"receivables feed: {tasks.receivables_feed_run()} events folded")
        elif job == "overdue":
            self.stdout.write(
                f"overdue: {tasks.invoices_mark_overdue(today=today)} invoices marked or reminded"
            )
        else:
            self.stdout.write(
                f"recurring: {tasks.recurring_invoices_run(today=today)} invoices issued"
            )
