"""Fixtures for the integration hub tests.

`books` and `sales` come from the invoicing fixtures (companies A and B with ledgers, VAT rates,
parties). `connection` is a Zoho-style connection of company A with planted credentials.
`fast_retries` shrinks the HTTP retry delays so tests never wait.
"""

import pytest

from accounting.integrations.http import http_client_for
from accounting.integrations.models import ExternalRef, IntegrationConnection
from tests.invoicing.conftest import books, sales  # noqa: F401  (fixtures reused)

PLANTED_SECRET = "s3cr3t-PLANTED-7f1c9e2ab84d"


def connection_make(company, *, system="zoho_books", name="Books", credentials=None, **kw):
    connection = IntegrationConnection(company=company, system=system, name=name, **kw)
    connection.set_credentials(
        credentials
        if credentials is not None
        else {
            "client_id": "client-1",
            "client_secret": PLANTED_SECRET,
            "access_token": "access-" + PLANTED_SECRET,
            "refresh_token": "refresh-" + PLANTED_SECRET,
        }
    )
    connection.save()
    return connection


class Sleeps(list):
    """The injected sleep: records each wait instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


def http_for(connection, sleeps=None, **options):
    """The connection's HTTP client with 3 attempts, waits from 100 ms to 10 s recorded in
    `sleeps` (never slept) and the backoff at its upper bound, so waits are exact."""
    options.setdefault("max_attempts", 3)
    options.setdefault("initial_delay_ms", 100)
    options.setdefault("max_delay_ms", 10_000)
    options.setdefault("rand", lambda: 1.0)
    return http_client_for(connection, sleep=sleeps if sleeps is not None else Sleeps(), **options)


def ref_for(connection, result, entity="invoice"):
    """An unsaved ExternalRef of local invoice 41 holding a push's result (id and version)."""
    return ExternalRef(
        company=connection.company,
        connection=connection,
        entity=entity,
        local_type="invoicing.invoice",
        local_id="41",
        external_id=result.external_id,
        external_version=result.version,
    )


@pytest.fixture
def connection(tenants):
    return connection_make(tenants.a, settings={"region": "com", "organization_id": "60001"})


@pytest.fixture
def fast_retries(settings):
    settings.RETRY_MAX_ATTEMPTS = 3
    settings.RETRY_INITIAL_DELAY = 1
    settings.RETRY_MAX_DELAY = 5
    return settings


@pytest.fixture
def remote():
    """Connections of system zoho_books talk to an in-memory remote during the test."""
    from accounting.integrations.connectors import register
    from tests.integrations.memory_connector import MemoryConnector, Remote

    state = Remote()
    MemoryConnector.remote = state
    register("zoho_books", MemoryConnector)
    yield state
    register("zoho_books", None)
