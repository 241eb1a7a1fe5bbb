"""Helpers more than one connector needs word for word: the exact-decimal JSON body
(QuickBooks, Zoho, Xero), the JSON object of a reply (QuickBooks, Zoho), the imported chart
lookup (QuickBooks, Zoho) and the XML text reader (Tally, Busy)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from accounting.integrations.connectors.base import MalformedReply, ServerFailure


def exact_json(body: Any, *, sort_keys: bool = False) -> bytes:
    """JSON with Decimal amounts written as exact JSON numbers (never through float)."""
    numbers: dict[str, str] = {}

    def default(value):
        if isinstance(value, Decimal):
            key = f"@@dec{len(numbers)}@@"
            numbers[key] = format(value, "f")
            return key
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        raise TypeError(f"cannot encode {type(value).__name__}")

    text = json.dumps(body, default=default, sort_keys=sort_keys)
    if numbers:
        text = re.sub(r'"(@@dec\d+@@)"', lambda m: numbers[m.group(1)], text)
    return text.encode()


def reply_object(response: httpx.Response, *, source: str, external_id: str = "") -> dict:
    """The reply's JSON object. A body that is not one is a ServerFailure on HTTP 5xx (say, a
    proxy's error page) and a MalformedReply otherwise; `source` names the system."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        detail = {"status": status, "body": response.text[:500]}
        if status >= 500:
            raise ServerFailure(
                f"{source} answered HTTP {status}.", detail=detail, external_id=external_id
            )
        raise MalformedReply(
            f"{source} answered HTTP {status} with a body that is not JSON.",
            detail=detail,
            external_id=external_id,
        )
    return payload


def account_mappings(connection) -> tuple[dict[str, str], dict[str, str]]:
    """The connection's imported chart: external code -> id and external name -> id (read
    once per connector, not per line)."""
    from accounting.integrations.models import AccountMapping

    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    rows = AccountMapping.objects.filter(connection=connection).order_by("id")
    for external_id, code, name in rows.values_list(
        "external_id", "external_code", "external_name"
    ):
        if code:
            by_code.setdefault(code, external_id)
        by_name.setdefault(name, external_id)
    return by_code, by_name


def xml_text(element: ET.Element | None, path: str) -> str:
    """The stripped text at `path` under `element`; "" where the element or its text is missing."""
    if element is None:
        return ""
    found = element.find(path)
    return (found.text or "").strip() if found is not None and found.text else ""
