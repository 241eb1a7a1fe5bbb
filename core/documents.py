"""Documents (payslip and invoice PDFs, uploaded statements) are stored through Django's storage
API: the filesystem by default, S3-compatible storage when AWS_STORAGE_BUCKET_NAME is set."""

import re
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from core.models import Company

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def document_store(*, company: Company, category: str, filename: str, content: bytes) -> str:
    """Save `content` under companies/<slug>/<category>/<yyyy>/<mm>/ and return its storage name.
    Names never collide: a random prefix keeps two uploads of one file apart."""
    safe_name = _UNSAFE.sub("-", filename).strip("-.") or "document"
    today = timezone.now()
    path = (
        f"companies/{company.slug}/{_UNSAFE.sub('-', category)}/{today:%Y/%m}/"
        f"{uuid.uuid4().hex[:12]}-{safe_name}"
    )
    return default_storage.save(path, ContentFile(content))


def document_read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def document_belongs_to(name: str, company: Company) -> bool:
    return name.startswith(f"companies/{company.slug}/")
