"""The database as backstop for the integration hub (whatever writes around the services):

- tenancy: a SyncRun, SyncError, ExternalRef, WebhookEvent or AccountMapping belongs to the
  company of its connection; an AccountMapping's account belongs to that company too; a
  connection never moves to another company;
- checks: connection frequency, run sync_type and entity, error severity and entity, external
  ref entity, and records_processed = records_succeeded + records_failed on every run (the
  engine counts each record once, as a success or a failure).

PostgreSQL: trigger functions and CHECK constraints. SQLite (embedded development and the
default test database): the same rules as BEFORE INSERT/UPDATE triggers that RAISE(ABORT),
which Django reports as IntegrityError like PostgreSQL's check_violation. SQLite drops a
table's triggers when Django rebuilds the table: a later migration altering one of these
tables must run this step's SQLite part again.

Written as SQL in the migration, not as model constraints, so the tenancy rules (which span two
tables) and the checks are declared in one place for both databases.
"""

# ruff: noqa: S608 - every name in the SQL is a constant of this module, never input
from django.db import migrations

CHILDREN = (
    "integrations_syncrun",
    "integrations_syncerror",
    "integrations_externalref",
    "integrations_webhookevent",
    "integrations_accountmapping",
)
CONNECTION = "integrations_integrationconnection"

FREQUENCIES = ("manual", "hourly", "every_6_hours", "daily")
SYNC_TYPES = ("import", "export", "test", "webhook", "retry")
SEVERITIES = ("info", "warning", "error", "critical")
ENTITIES = ("accounts", "contacts", "invoices", "credit_notes", "payments", "journals")
REF_ENTITIES = ("account", "contact", "invoice", "credit_note", "payment", "journal")


def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# (table, constraint name, condition) — valid SQL on both databases once {r} is filled in:
# "" in a PostgreSQL CHECK, "NEW." in an SQLite trigger's WHEN.
CHECKS = (
    (CONNECTION, "integrations_connection_frequency_valid", "{r}frequency IN " + _in(FREQUENCIES)),
    ("integrations_syncrun", "integrations_run_type_valid", "{r}sync_type IN " + _in(SYNC_TYPES)),
    (
        "integrations_syncrun",
        "integrations_run_entity_valid",
        "{r}entity IN " + _in(("", *ENTITIES)),
    ),
    (
        "integrations_syncrun",
        "integrations_run_counts_add_up",
        "{r}records_processed = {r}records_succeeded + {r}records_failed",
    ),
    (
        "integrations_syncerror",
        "integrations_error_severity_valid",
        "{r}severity IN " + _in(SEVERITIES),
    ),
    (
        "integrations_syncerror",
        "integrations_error_entity_valid",
        "{r}entity IN " + _in(("", *ENTITIES)),
    ),
    (
        "integrations_externalref",
        "integrations_ref_entity_valid",
        "{r}entity IN " + _in(REF_ENTITIES),
    ),
)

POSTGRES_FORWARD = [
    f"""
    CREATE OR REPLACE FUNCTION integrations_company_of_connection() RETURNS trigger AS $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM {CONNECTION} c
            WHERE c.id = NEW.connection_id AND c.company_id = NEW.company_id
        ) THEN
            RAISE EXCEPTION '%: company % is not the company of connection %',
                TG_TABLE_NAME, NEW.company_id, NEW.connection_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE OR REPLACE FUNCTION integrations_mapping_account_company() RETURNS trigger AS $$
    BEGIN
        IF NEW.account_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM accounting_account a
            WHERE a.id = NEW.account_id AND a.company_id = NEW.company_id
        ) THEN
            RAISE EXCEPTION 'account % is not an account of company %',
                NEW.account_id, NEW.company_id USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE OR REPLACE FUNCTION integrations_connection_company_fixed() RETURNS trigger AS $$
    BEGIN
        IF NEW.company_id <> OLD.company_id THEN
            RAISE EXCEPTION 'a connection cannot move to another company'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    *[
        f"""
        CREATE TRIGGER {table}_company_check
        BEFORE INSERT OR UPDATE OF company_id, connection_id ON {table}
        FOR EACH ROW EXECUTE FUNCTION integrations_company_of_connection();
        """
        for table in CHILDREN
    ],
    """
    CREATE TRIGGER integrations_accountmapping_account_check
    BEFORE INSERT OR UPDATE OF company_id, account_id ON integrations_accountmapping
    FOR EACH ROW EXECUTE FUNCTION integrations_mapping_account_company();
    """,
    f"""
    CREATE TRIGGER {CONNECTION}_company_fixed
    BEFORE UPDATE OF company_id ON {CONNECTION}
    FOR EACH ROW EXECUTE FUNCTION integrations_connection_company_fixed();
    """,
    *[
        f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({cond.format(r='')})"
        for table, name, cond in CHECKS
    ],
]

POSTGRES_REVERSE = [
    *[f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}" for table, name, _ in CHECKS],
    f"DROP TRIGGER IF EXISTS {CONNECTION}_company_fixed ON {CONNECTION}",
    "DROP TRIGGER IF EXISTS integrations_accountmapping_account_check "
    "ON integrations_accountmapping",
    *[f"DROP TRIGGER IF EXISTS {table}_company_check ON {table}" for table in CHILDREN],
    "DROP FUNCTION IF EXISTS integrations_connection_company_fixed()",
    "DROP FUNCTION IF EXISTS integrations_mapping_account_company()",
    "DROP FUNCTION IF EXISTS integrations_company_of_connection()",
]


def _sqlite_triggers() -> list[tuple[str, str]]:
    """(trigger name, CREATE TRIGGER statement) pairs: one per event and rule."""
    triggers = []

    def add(name, table, event, when, message):
        triggers.append(
            (
                name,
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                f"WHEN {when} BEGIN SELECT RAISE(ABORT, '{message}'); END",
            )
        )

    for table in CHILDREN:
        when = (
            f"NOT EXISTS (SELECT 1 FROM {CONNECTION} c "
            "WHERE c.id = NEW.connection_id AND c.company_id = NEW.company_id)"
        )
        message = f"{table}: company is not the company of its connection"
        add(f"{table}_company_ins", table, "INSERT", when, message)
        add(f"{table}_company_upd", table, "UPDATE OF company_id, connection_id", when, message)
    when = (
        "NEW.account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM accounting_account a "
        "WHERE a.id = NEW.account_id AND a.company_id = NEW.company_id)"
    )
    message = "integrations_accountmapping: account of another company"
    add("integrations_mapping_account_ins", "integrations_accountmapping", "INSERT", when, message)
    add(
        "integrations_mapping_account_upd",
        "integrations_accountmapping",
        "UPDATE OF company_id, account_id",
        when,
        message,
    )
    add(
        f"{CONNECTION}_company_fixed",
        CONNECTION,
        "UPDATE OF company_id",
        "NEW.company_id <> OLD.company_id",
        "a connection cannot move to another company",
    )
    for table, name, cond in CHECKS:
        for event, suffix in (("INSERT", "ins"), ("UPDATE", "upd")):
            add(f"{name}_{suffix}", table, event, f"NOT ({cond.format(r='NEW.')})", name)
    return triggers


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for statement in POSTGRES_FORWARD:
            schema_editor.execute(statement, params=None)
    elif vendor == "sqlite":
        for _name, statement in _sqlite_triggers():
            schema_editor.execute(statement, params=None)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for statement in POSTGRES_REVERSE:
            schema_editor.execute(statement, params=None)
    elif vendor == "sqlite":
        for name, _statement in _sqlite_triggers():
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_webhookevent"),
        ("accounting", "0002_ledger_invariants"),
    ]

    operations = [migrations.RunPython(forward, reverse, elidable=False)]
