"""The connector registry: system -> connector class, imported lazily.

Each connector module is imported the first time its system is asked for, so a missing or
broken module only affects connections of that system (they fail with a clear error), never
the app or the other systems.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounting.integrations.connectors.base import Connector
    from accounting.integrations.models import IntegrationConnection

# system -> "module:ClassName"
CONNECTORS: dict[str, str] = {
    "tally": "accounting.integrations.connectors.tally:TallyConnector",
    "busy": "accounting.integrations.connectors.busy:BusyConnector",
    "zoho_books": "accounting.integrations.connectors.zoho:ZohoBooksConnector",
    "quickbooks": "accounting.integrations.connectors.quickbooks:QuickBooksConnector",
    "xero": "accounting.integrations.connectors.xero:XeroConnector",
}

# Tests register fakes here: {"fake": FakeConnector}; consulted before CONNECTORS.
_OVERRIDES: dict[str, type[Connector]] = {}


class ConnectorUnavailable(LookupError):
    """No connector is installed for this system."""


def connector_class(system: str) -> type[Connector]:
    if system in _OVERRIDES:
        return _OVERRIDES[system]
    target = CONNECTORS.get(system)
    if target is None:
        raise ConnectorUnavailable(f"No connector is registered for {system!r}.")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConnectorUnavailable(f"The {system} connector is not available: {exc}") from exc
    return getattr(module, class_name)


def register(system: str, cls: type[Connector] | None) -> None:
    """Install (or with None remove) an override, e.g. an in-memory connector in tests."""
    if cls is None:
        _OVERRIDES.pop(system, None)
    else:
        _OVERRIDES[system] = cls


def connector_for(connection: IntegrationConnection, *, http=None) -> Connector:
    """The connector of a connection, on the shared HTTP client (built from the connection's
    settings, its rate limiter and, for OAuth systems, its token refresher) unless one is
    given."""
    cls = connector_class(connection.system)
    if http is None:
        from accounting.integrations.http import http_client_for

        http = http_client_for(connection)
    return cls(connection, http=http)
