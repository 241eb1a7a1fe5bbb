"""Per-system checks of a connection's non-secret settings, shared by the API serializer and the
admin form (hub-ui). Returns the settings with defaults filled in; raises ValidationFailed with
`fields={"settings": [...]}` naming what is wrong.

- Tally: `host` (default "127.0.0.1"), `port` 1-65535 (default 9000), optional `company`.
- Busy: `bridge_url`, an https:// address (plain http only with BUSY_ALLOW_INSECURE, the tests).
- Zoho Books: `region` one of Zoho's data centres (default "com"), `organization_id` (digits).
- QuickBooks Online: `environment` production or sandbox (default production), `realm_id`
  (digits; may be left empty until the OAuth callback, which carries it as `realmId`).
- Xero: `tenant_id` (a UUID; may be left empty until connected: it is the organisation chosen).

Other keys (the connectors' optional ones: voucher types, page sizes, base_url overrides for the
fakes…) pass through; keys that look like secrets are refused by services (they belong in
credentials).
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings as django_settings

from core.errors import ValidationFailed

ZOHO_REGIONS = ("com", "eu", "in", "com.au", "jp", "ca")
QUICKBOOKS_ENVIRONMENTS = ("production", "sandbox")
HOST_RE = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,253}$")

# What each system needs, for forms and help texts: key -> (label, help).
FIELDS = {
    "tally": {
        "host": ("Host", 'Tally XML server host (default "127.0.0.1").'),
        "port": ("Port", "Tally XML server port (default 9000)."),
        "company": ("Company", "Tally company name; empty: the company open in Tally."),
    },
    "busy": {"bridge_url": ("Bridge URL", "https:// address of the Kontor Busy bridge.")},
    "zoho_books": {
        "region": ("Region", f"Zoho data centre: {', '.join(ZOHO_REGIONS)} (default com)."),
        "organization_id": ("Organization ID", "Zoho Books organization_id (Settings > Profile)."),
    },
    "quickbooks": {
        "environment": ("Environment", "production or sandbox (default production)."),
        "realm_id": ("Realm ID", "The company (realm) id; filled in by Connect."),
    },
    "xero": {"tenant_id": ("Tenant ID", "The Xero organisation (xero-tenant-id).")},
}


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def connection_settings_clean(system: str, values) -> dict:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValidationFailed(fields={"settings": ["An object of names and values."]})
    cleaned = dict(values)
    problems: list[str] = []
    if system == "tally":
        host = _text(cleaned.get("host")) or "127.0.0.1"
        if not HOST_RE.match(host):
            problems.append("host: a host name or IP address.")
        try:
            port = int(cleaned.get("port") or 9000)
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            problems.append("port: a number from 1 to 65535.")
        cleaned.update(host=host, port=port)
    elif system == "busy":
        url = _text(cleaned.get("bridge_url"))
        parts = urlsplit(url)
        insecure_ok = bool(getattr(django_settings, "BUSY_ALLOW_INSECURE", False))
        if not url:
            problems.append("bridge_url: required (https://… of the Busy bridge).")
        elif not parts.netloc or parts.scheme not in (
            ("https", "http") if insecure_ok else ("https",)
        ):
            problems.append("bridge_url: an https:// address.")
        cleaned["bridge_url"] = url
    elif system == "zoho_books":
        region = _text(cleaned.get("region")) or "com"
        if region not in ZOHO_REGIONS:
            problems.append(f"region: one of {', '.join(ZOHO_REGIONS)}.")
        organization = _text(cleaned.get("organization_id"))
        if not organization.isdigit():
            problems.append("organization_id: required, the digits of your Zoho organization.")
        cleaned.update(region=region, organization_id=organization)
    elif system == "quickbooks":
        environment = _text(cleaned.get("environment")) or "production"
        if environment not in QUICKBOOKS_ENVIRONMENTS:
            problems.append("environment: production or sandbox.")
        realm = _text(cleaned.get("realm_id"))
        if realm and not realm.isdigit():
            problems.append("realm_id: digits (QuickBooks' company id).")
        cleaned.update(environment=environment, realm_id=realm)
    elif system == "xero":
        tenant = _text(cleaned.get("tenant_id"))
        if tenant:
            try:
                tenant = str(uuid.UUID(tenant))
            except ValueError:
                problems.append("tenant_id: a UUID (Xero's tenantId).")
        cleaned["tenant_id"] = tenant
    if problems:
        raise ValidationFailed("Check the connection settings.", fields={"settings": problems})
    return cleaned
