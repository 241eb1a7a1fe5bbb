"""PostgreSQL row-level security: a second wall behind the scoped querysets.

While the code acts for one company (an API request once its company is resolved, a Celery
task for one company) the connection runs `SET ROLE <RLS_ROLE>` with `kontor.company_id` set
to that company. That role is NOLOGIN and NOBYPASSRLS, and every table with a `company_id`
column has a policy for it alone: rows of other companies are invisible, and writing one is
refused by the database (SQLSTATE 42501). Outside a scope (admin pages, commands, beat
fan-outs) the connection is the ordinary database user, the tables' owner, whom RLS does not
restrict, so nothing else changes.

Rows whose company is NULL (the system-wide payroll tax tables and types, audit events not
tied to a company) are readable inside a scope; only audit events may also be written there
with no company. The Company table and the auth tables have no policy: they hold no company
data, and the membership resolution and the "me" endpoint read them across companies.

The role and policies are installed after every migrate (`install`, idempotent), from the model
registry, so a new model with a company is covered without a migration of its own.
SQLite (the embedded default) has none of this: every function here is a no-op there.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

log = logging.getLogger(__name__)

COMPANY_SETTING = "kontor.company_id"
POLICY = "kontor_tenant_isolation"
# Rows with no company may be written inside a scope (the audit trail of a company's request
# can record an event that names no company).
NULL_WRITABLE = frozenset({"core_auditevent"})
_STATE = "kontor_rls_company"  # attribute on the Django connection: the scoped company or None


def role() -> str:
    name = settings.RLS_ROLE
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ImproperlyConfigured("RLS_ROLE must be a lower-case PostgreSQL role name.")
    return name


def _active(connection) -> bool:
    return connection.vendor == "postgresql" and settings.RLS_ENABLED


def tenant_tables() -> dict[str, bool]:
    """{table: company_id nullable} for every model table with a company_id column."""
    tables = {}
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed:
            continue
        for field in meta.concrete_fields:
            if field.column == "company_id":
                tables[meta.db_table] = field.null
    return tables


def _policy_sql(table: str, nullable: bool, quote) -> str:
    current = f"NULLIF(current_setting('{COMPANY_SETTING}', true), '')::bigint"
    own = f"company_id = {current}"
    using = f"company_id IS NULL OR {own}" if nullable else own
    check = using if table in NULL_WRITABLE else own
    return (
        f"CREATE POLICY {POLICY} ON {quote(table)} AS PERMISSIVE FOR ALL TO {quote(role())} "
        f"USING ({using}) WITH CHECK ({check})"
    )


def install(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Create the tenant role (once per cluster), grant it the data of this database, and give
    every tenant table RLS and the policy. Idempotent, and it only touches what is missing, so a
    deploy's migrate does not lock every table. Returns the tables it changed."""
    connection = connections[using]
    if not _active(connection):
        return []
    quote = connection.ops.quote_name
    name = role()
    changed = []
    with connection.cursor() as cursor:
        # Roles are cluster-wide: parallel test databases may race to create it.
        create_role = (
            "DO $$ BEGIN "  # noqa: S608 - the name is checked by role()
            f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN "
            f"CREATE ROLE {quote(name)} NOLOGIN NOBYPASSRLS; END IF; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        cursor.execute(create_role)
        cursor.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", [name])
        if not cursor.fetchone()[0]:
            cursor.execute(f"GRANT {quote(name)} TO current_user")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quote(name)}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quote(name)}"
        )
        cursor.execute(
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quote(name)}"
        )
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity, p.policyname IS NOT NULL FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "LEFT JOIN pg_policies p ON p.schemaname = 'public' AND p.tablename = c.relname "
            "AND p.policyname = %s WHERE c.relkind IN ('r', 'p')",
            [POLICY],
        )
        present = {table: (rls, policy) for table, rls, policy in cursor.fetchall()}
        for table, nullable in sorted(tenant_tables().items()):
            if table not in present:
                continue  # a model whose migration has not run (e.g. `migrate core`)
            rls, policy = present[table]
            if not rls:
                cursor.execute(f"ALTER TABLE {quote(table)} ENABLE ROW LEVEL SECURITY")
            if not policy:
                cursor.execute(_policy_sql(table, nullable, quote))
            if not (rls and policy):
                changed.append(table)
    if changed:
        log.info("row-level security installed", extra={"tables": len(changed)})
    return changed


def install_after_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
    install(using)


def scoped_company(using: str = DEFAULT_DB_ALIAS) -> int | None:
    return getattr(connections[using], _STATE, None)


def _set(connection, company_id: int | None) -> None:
    # One round trip: set_config('role', ...) is SET ROLE, 'none' is RESET ROLE.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, %s, false), set_config('role', %s, false)",
            [
                COMPANY_SETTING,
                "" if company_id is None else str(company_id),
                "none" if company_id is None else role(),
            ],
        )
    setattr(connection, _STATE, company_id)


def scope_enter(company_id: int, using: str = DEFAULT_DB_ALIAS) -> int | None:
    """Make the connection act for `company_id` alone; returns the scope it replaced (for
    scope_exit). Session-level SET: inside a transaction that rolls back it is undone too."""
    connection = connections[using]
    previous = getattr(connection, _STATE, None)
    if _active(connection) and previous != int(company_id):
        _set(connection, int(company_id))
    return previous


def scope_exit(previous: int | None = None, using: str = DEFAULT_DB_ALIAS) -> None:
    """Back to `previous` (None: unscoped). Never raises: when the connection cannot run the
    reset (an aborted transaction) the rollback to come undoes the SET made inside it, and a
    broken connection is closed so it is never handed out again still scoped."""
    connection = connections[using]
    if not _active(connection) or getattr(connection, _STATE, None) == previous:
        return
    if connection.connection is None:  # closed: a new session starts unscoped
        setattr(connection, _STATE, None)
        return
    if connection.needs_rollback:
        # The atomic block around us rolls back, SET included; a rollback can only undo it
        # when the scope began inside that block, which is how scopes nest.
        setattr(connection, _STATE, previous)
        return
    try:
        _set(connection, previous)
    except DatabaseError:
        setattr(connection, _STATE, previous)
        if connection.in_atomic_block:
            return  # the transaction is aborted: its rollback undoes the SET
        log.warning("row-level security scope could not be reset; connection closed")
        connection.close()


@contextlib.contextmanager
def tenant_context(company_id: int, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Act for one company (Celery tasks, commands): the database shows and accepts only its
    rows until the block ends, whatever the queries inside forget to filter."""
    previous = scope_enter(company_id, using)
    try:
        yield
    finally:
        scope_exit(previous, using)


def reset_leftover(sender=None, task=None, **kwargs) -> None:
    """Safety net on request_finished and Celery's task_postrun: no connection stays scoped
    past its request or task, whatever path the code took. An eager task (run inside the
    caller, e.g. a request) leaves the caller's scope alone: its own tenant_context restores it."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    for connection in connections.all(initialized_only=True):
        if getattr(connection, _STATE, None) is not None:
            scope_exit(None, connection.alias)


@contextlib.contextmanager
def copy_from(cursor, table: str, columns: Sequence[str]):
    """`COPY table (columns) FROM STDIN` on a Django cursor, yielding psycopg's Copy to write rows
    to. PostgreSQL refuses COPY FROM into a table with row-level security for a role subject to
    it, so inside a scope the rows go to a temporary table by COPY and then in with one INSERT ...
    SELECT: the same triggers fire and the policy checks every row. Names are the caller's
    constants (they are put in the SQL as they are)."""
    names = ", ".join(columns)
    raw = cursor.cursor
    if getattr(cursor.db, _STATE, None) is None:
        with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            yield copy
        return
    temp = f"rls_copy_{table}"
    cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{temp}")
    cursor.execute(f"CREATE TEMPORARY TABLE {temp} AS SELECT {names} FROM {table} WITH NO DATA")  # noqa: S608 - constant names
    with raw.copy(f"COPY {temp} ({names}) FROM STDIN") as copy:
        yield copy
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {temp}")  # noqa: S608
    cursor.execute(f"DROP TABLE {temp}")
