from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import backups


class Command(BaseCommand):
    help = (
        "Restore a backup made by backup_database. --verify restores it into a scratch database "
        "(created, then dropped), compares the row counts and ledger chain heads with the "
        "manifest and recomputes every ledger hash chain; exits 1 on any mismatch. Replacing an "
        "existing database (the live one included) needs --yes; the live one is backed up into "
        "BACKUP_DIR first."
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
        parser.add_argument(
            "--scratch-db",
            help="Name of the scratch database (SQLite: file) for --verify; it must not exist.",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Allow replacing an existing database, the live one included.",
        )
        parser.add_argument(
            "--no-safety-backup",
            action="store_true",
            help="Do not back up the live database into BACKUP_DIR before replacing it.",
        )

    def handle(
        self,
        *args,
        file,
        verify=False,
        target_db=None,
        scratch_db=None,
        yes=False,
        no_safety_backup=False,
        **options,
    ):
        try:
            report = backups.restore(
                path=file,
                target=target_db,
                yes=yes,
                verify=verify,
                scratch_name=scratch_db,
                safety_dir=None if no_safety_backup else settings.BACKUP_DIR,
            )
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines:
            self.stdout.write(line)
        if report.problems:
            what = "verify" if verify else "restore"
            self.stdout.write(f"{what} FAILED: {len(report.problems)} problem(s)")
            raise CommandError(report.problems[0])
        if verify:
            self.stdout.write("verify OK")
