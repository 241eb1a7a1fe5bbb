from django.core.management.base import BaseCommand, CommandError

from accounting import selectors, services
from core.commands import companies_from_option


class Command(BaseCommand):
    help = (
        "Recompute the per-period account balances from the journal lines. With --check, only "
        "compare and exit 1 when they differ."
    )

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Company slug (default: every company).")
        parser.add_argument(
            "--check", action="store_true", help="Compare without writing; exit 1 on a difference."
        )

    def handle(self, *args, company=None, check=False, **options):
        companies = companies_from_option(company)
        differences = 0
        for each in companies:
            expected = selectors.rebuild_expected_balances(each)
            stored = selectors.stored_balances(each)
            diff = {k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k)}
            differences += len(diff)
            if check:
                state = f"{len(diff)} differ" if diff else "match"
                self.stdout.write(f"{each.slug}: {len(expected)} balance rows, {state}")
                continue
            rows = services.balances_rebuild(company=each)
            self.stdout.write(
                f"{each.slug}: {rows} balance rows rebuilt ({len(diff)} were out of step)"
            )
        if check and differences:
            raise CommandError(f"{differences} balance row(s) differ from the journal lines")
