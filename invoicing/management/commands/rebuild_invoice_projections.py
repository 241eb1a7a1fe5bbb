from django.core.management.base import BaseCommand, CommandError

from core.commands import companies_from_option
from invoicing import projection


class Command(BaseCommand):
    help = (
        "Rebuild the invoice read model (invoices, lines, payments) from the event store. "
        "With --check, only compare and exit 1 when the stored rows differ."
    )

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Company slug (default: every company).")
        parser.add_argument(
            "--check", action="store_true", help="Compare without writing; exit 1 on a difference."
        )

    def handle(self, *args, company=None, check=False, **options):
        companies = companies_from_option(company)
        differing = []
        for each in companies:
            if check:
                same = projection.projections_match(company=each)
                self.stdout.write(f"{each.slug}: {'match' if same else 'DIFFER'}")
                if not same:
                    differing.append(each.slug)
                continue
            counts = projection.projections_rebuild(company=each)
            self.stdout.write(
                f"{each.slug}: {counts['streams']} invoices, {counts['lines']} lines, "
                f"{counts['payments']} payments rebuilt from events"
            )
        if differing:
            raise CommandError(f"read model differs from the events for: {', '.join(differing)}")
