from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from accounting import selectors
from core.commands import companies_from_option


def _verify_in_one_snapshot(company):
    """On PostgreSQL the whole check reads one snapshot, so entries posted while it runs
    neither count as missing nor as strays beyond the chain head. Only the first statement of a
    transaction may choose its isolation; inside a caller's transaction its snapshot is used."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return selectors.ledger_verify(company=company)


class Command(BaseCommand):
    help = (
        "Recompute each company's hash chain of posted journal entries and name the first "
        "entry that was altered. Exits 1 when a chain is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Company slug (default: every company).")

    def handle(self, *args, company=None, **options):
        companies = companies_from_option(company)
        broken = []
        for each in companies:
            checked, problem = _verify_in_one_snapshot(each)
            if problem is None:
                self.stdout.write(f"{each.slug}: {checked} entries, chain intact")
            else:
                line = (
                    f"{each.slug}: entry {problem.reference} (id {problem.entry_id}) was altered: "
                    f"{problem.reason}; {checked} entries before it are intact"
                )
                self.stdout.write(line)
                broken.append(line)
        if broken:
            raise CommandError(broken[0])
