from django.core.management.base import BaseCommand, CommandError

from core import backups


class Command(BaseCommand):
    help = (
        "Restore a backup made by backup_database. --verify restores it into a scratch database "
        "(created, then dropped), compares the row counts and ledger chain heads with the "
        "manifest and recomputes every ledger hash chain; exits 1 on any mismatch. Restoring "
        "over the live database needs --yes."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The .dump (PostgreSQL) or .sqlite3 (SQLite) file.")
        parser.add_argument(
            "--verify", action="store_true", help="Check the restored copy against the manifest."
        )
        parser.add_argument(
            "--target-db",
            help="Restore into this database (SQLite: file) instead of the live one; with "
            "--verify it is kept and checked instead of a scratch database.",
        )
        parser.add_argument("--scratch-db", help="Name of the scratch database for --verify.")
        parser.add_argument(
            "--yes", action="store_true", help="Allow restoring over the live database."
        )

    def handle(self, *args, file, verify=False, target_db=None, scratch_db=None, yes=False, **o):
        try:
            report = backups.restore(
                path=file, target=target_db, yes=yes, verify=verify, scratch_name=scratch_db
            )
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines:
            self.stdout.write(line)
        if report.problems:
            self.stdout.write(f"verify FAILED: {len(report.problems)} problem(s)")
            raise CommandError(report.problems[0])
        if verify:
            self.stdout.write("verify OK")
