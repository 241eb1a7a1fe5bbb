"""Re-encrypt every connection's credentials with the newest CREDENTIAL_ENCRYPTION_KEY.

Rotation: put the new key first in CREDENTIAL_ENCRYPTION_KEY (keep the old one after it),
deploy, run this command, then drop the old key. A malformed key, or a stored token that no
configured key opens, stops the command with one line on stderr and exit status 1, before
anything is written.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounting.integrations.crypto import CredentialKeyError, fernet, rotate_token
from accounting.integrations.models import IntegrationConnection


class Command(BaseCommand):
    help = "Re-encrypt all integration credentials with the newest key."

    def handle(self, *args, **options):
        try:
            fernet()  # the keys parse
            with transaction.atomic():
                rows = list(
                    IntegrationConnection.objects.select_for_update()
                    .exclude(credentials_encrypted="")
                    .only("id", "credentials_encrypted")
                    .order_by("pk")
                )
                for row in rows:
                    try:
                        row.credentials_encrypted = rotate_token(row.credentials_encrypted)
                    except CredentialKeyError as exc:
                        raise CredentialKeyError(f"connection {row.pk}: {exc}") from exc
                IntegrationConnection.objects.bulk_update(
                    rows, ["credentials_encrypted"], batch_size=500
                )
        except CredentialKeyError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        self.stdout.write(f"Re-encrypted the credentials of {len(rows)} connection(s).")
