from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import backups


class Command(BaseCommand):
    help = (
        "Back up the configured database (pg_dump custom format on PostgreSQL, SQLite's online "
        "backup on the embedded default) with a sha256 checksum and a manifest of row counts and "
        "ledger chain heads; then drop old backups (keep the newest N) and optionally upload to "
        "the S3-compatible storage configured by BACKUP_S3_BUCKET."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output-dir", help="Default: BACKUP_DIR.")
        parser.add_argument(
            "--keep", type=int, help="Backups kept, newest first (default: BACKUP_KEEP)."
        )
        parser.add_argument(
            "--keep-days",
            type=int,
            help="Also keep every backup younger than this many days (default: BACKUP_KEEP_DAYS).",
        )
        parser.add_argument(
            "--upload", action="store_true", help="Upload to the backups storage (S3)."
        )

    def handle(self, *args, output_dir=None, keep=None, keep_days=None, upload=False, **options):
        keep = settings.BACKUP_KEEP if keep is None else keep
        keep_days = settings.BACKUP_KEEP_DAYS if keep_days is None else keep_days
        if keep < 1:
            raise CommandError("--keep must be at least 1")
        directory = Path(output_dir or settings.BACKUP_DIR)
        try:
            if upload:
                backups.backup_storage()  # fail before dumping when nothing is configured
            backup = backups.backup_create(output_dir=directory)
            self.stdout.write(
                f"backup {backup.path} ({backup.manifest['size']} bytes, sha256 {backup.sha256}, "
                f"{len(backup.manifest['tables'])} tables)"
            )
            removed = backups.retention_apply_dir(
                directory, keep=keep, keep_days=keep_days, protect={backup.path.name}
            )
            for name in removed:
                self.stdout.write(f"removed old backup {name}")
            if upload:
                removed = backups.backup_upload(backup, keep=keep, keep_days=keep_days)
                self.stdout.write(f"uploaded {backup.path.name} to the backups storage")
                for name in removed:
                    self.stdout.write(f"removed old backup {name} from the backups storage")
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from exc
