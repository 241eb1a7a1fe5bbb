"""Integration hub demo data for `manage.py seed_demo`: a Tally connection and a Zoho Books
connection per company, both left disabled (nothing real is behind them), with sync runs and
errors made by the real sync engine so the admin screens show real rows.

No network is used: while seeding, the two systems are served by `DemoTally`/`DemoZoho` below,
small in-process connectors (registered through `connectors.register` and removed afterwards)
that answer like a remote would:
- Tally: the connection test succeeds ("demo Tally"); the chart of accounts imports into account
  mappings (mapped to the local account of the same code where there is one); the contacts
  import reads its first page (three parties, named "... (Tally demo)") and fails on the second
  with a server error, so the run ends `partial` with one retryable error.
- Zoho Books: the placeholder credentials are refused, so the test fails and the contacts import
  ends `failed` with an `auth` error suggesting to connect again.
Credentials are placeholders (`demo-placeholder-not-a-secret`), never real secrets.

Idempotent: skipped when the company already has the demo's Tally connection.
"""

from __future__ import annotations

from accounting.integrations import connectors, services
from accounting.integrations.connectors import register
from accounting.integrations.connectors.base import (
    ACCOUNTS,
    CONTACTS,
    AuthFailure,
    Connector,
    ExternalAccount,
    ExternalContact,
    Page,
    ServerFailure,
)
from accounting.integrations.models import IntegrationConnection
from accounting.integrations.sync import sync_run
from core.models import Company

TALLY_NAME = "Tally (demo)"
ZOHO_NAME = "Zoho Books (demo)"
PLACEHOLDER = "demo-placeholder-not-a-secret"

CHART = [
    ("1110", "Cash on hand", "Cash-in-Hand"),
    ("1200", "Accounts receivable", "Sundry Debtors"),
    ("4000", "Sales", "Sales Accounts"),
    ("5000", "Purchases", "Purchase Accounts"),
    ("6100", "Office rent", "Indirect Expenses"),
]
CONTACTS_PAGE = [
    ("Meghna Traders", "accounts@meghna.example", "customer"),
    ("Padma Supplies", "billing@padma.example", "vendor"),
    ("Jamuna Retail", "ap@jamuna.example", "customer"),
]


class DemoTally(Connector):
    system = "tally"
    supports = frozenset({ACCOUNTS, CONTACTS})

    def test_connection(self) -> dict:
        return {"success": True, "latency_ms": 18, "version": "demo Tally", "message": "OK"}

    def fetch_accounts(self, *, cursor=None, since=None):
        return Page(
            [
                ExternalAccount(external_id=f"tally-{code}", code=code, name=name, type=kind)
                for code, name, kind in CHART
            ],
            None,
        )

    def fetch_contacts(self, *, cursor=None, since=None):
        if cursor:
            raise ServerFailure(
                "Tally stopped answering on the second page (demo).",
                suggested_fix="Keep Tally open with the company loaded; the sync is retried.",
            )
        return Page(
            [
                ExternalContact(
                    external_id=f"tally-party-{n}",
                    name=f"{name} (Tally demo)",
                    email=email,
                    kind=kind,
                    version=str(n),
                )
                for n, (name, email, kind) in enumerate(CONTACTS_PAGE, start=1)
            ],
            "2",
        )


class DemoZoho(Connector):
    system = "zoho_books"
    supports = frozenset({CONTACTS})

    def _refuse(self):
        raise AuthFailure(
            "Zoho refused the demo's placeholder token.",
            suggested_fix="Connect the integration (Connect in the admin) with a real account.",
        )

    def test_connection(self) -> dict:
        self._refuse()

    def fetch_contacts(self, *, cursor=None, since=None):
        self._refuse()


def seed(*, company: Company, actor, stdout=None) -> int:
    if IntegrationConnection.objects.filter(company=company, name=TALLY_NAME).exists():
        return 0
    previous = {system: connectors._OVERRIDES.get(system) for system in ("tally", "zoho_books")}
    register("tally", DemoTally)
    register("zoho_books", DemoZoho)
    try:
        tally = services.connection_create(
            actor=actor,
            company=company,
            system="tally",
            name=TALLY_NAME,
            settings={"host": "127.0.0.1", "port": 9000, "company": company.name},
            direction="bidirectional",
            frequency="manual",
            entities=["accounts", "contacts", "invoices"],
        )
        zoho = services.connection_create(
            actor=actor,
            company=company,
            system="zoho_books",
            name=ZOHO_NAME,
            settings={"region": "in", "organization_id": "60000000001"},
            credentials={
                "access_token": PLACEHOLDER,
                "refresh_token": PLACEHOLDER,
                "expires_at": "4102444800",
            },
            direction="import",
            frequency="daily",
            entities=["contacts"],
        )
        runs = 0
        services.connection_test(actor=actor, connection=tally)
        services.connection_test(actor=actor, connection=zoho)
        for connection, entity in ((tally, "accounts"), (tally, "contacts"), (zoho, "contacts")):
            sync_run(connection=connection, entity=entity, direction="import", triggered_by=actor)
            runs += 1
        for connection in (tally, zoho):
            connection.refresh_from_db()
            services.connection_disable(
                actor=actor, connection=connection, reason="Demo connection: nothing behind it."
            )
    finally:
        for system, cls in previous.items():  # whatever was installed before (tests) comes back
            register(system, cls)
    if stdout is not None:
        stdout.write(f"  integrations: 2 connections (disabled), {runs + 2} runs for {company}")
    return 2 + runs + 2
