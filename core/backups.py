"""Database backups and restores (`manage.py backup_database`, `manage.py restore_database`).

PostgreSQL is dumped with pg_dump's custom format; the embedded SQLite default is copied with
SQLite's online backup API, so `make run` installations can back up too. A backup is three
files sharing one stem, `kontor-<database>-<UTC timestamp>`:

    <stem>.dump (or .sqlite3)   the database
    <stem>.dump.sha256          its checksum, in `sha256sum` format
    <stem>.manifest.json        row counts per table and each company's ledger chain head

On PostgreSQL the manifest is read in the very snapshot pg_dump dumps (pg_export_snapshot), so
the counts describe the dump exactly even while the application writes. `restore --verify`
restores into a scratch database, compares it with the manifest and recomputes the ledger hash
chains there with `manage.py verify_ledger`.

The database password never reaches argv or the output: the PostgreSQL tools get it through
PGPASSWORD, and errors are reduced to one line with the password masked.
"""

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.files import File
from django.db import connections

log = logging.getLogger(__name__)

try:
    from psycopg import Error as _PsycopgError
except ImportError:  # an SQLite-only installation

    class _PsycopgError(Exception):
        pass


# Failures reported as one BackupError line (permission denied on a table, disk full...).
_FAILURES = (OSError, sqlite3.Error, _PsycopgError)

NAME_RE = re.compile(r"^kontor-(?P<db>[\w.-]+?)-(?P<stamp>\d{8}T\d{6}Z)\.(?:dump|sqlite3)$")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST_VERSION = 1
# Connection settings the PostgreSQL tools take from the environment (OPTIONS key -> variable).
_PG_ENV_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}


class BackupError(Exception):
    """Why a backup or restore could not be done, in one line fit for an operator."""


@dataclass
class Backup:
    path: Path
    checksum_path: Path
    manifest_path: Path
    sha256: str
    manifest: dict


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def ok(self, line: str) -> None:
        self.lines.append(line)

    def problem(self, line: str) -> None:
        self.lines.append(line)
        self.problems.append(line)


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name.rsplit(".", 1)[0] + ".manifest.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The configured database
# ---------------------------------------------------------------------------------------------
class Database:
    """A database's connection settings, for the dump tools and plain DB-API connections."""

    def __init__(self, settings_dict: dict, vendor: str):
        self.settings = settings_dict
        self.vendor = vendor
        if self.vendor not in ("postgresql", "sqlite"):
            raise BackupError(f"backups support PostgreSQL and SQLite, not {self.vendor}")
        self.name = str(self.settings["NAME"])
        self.password = self.settings.get("PASSWORD") or ""

    @classmethod
    def configured(cls, alias: str = "default") -> "Database":
        return cls(connections[alias].settings_dict, connections[alias].vendor)

    @classmethod
    def sqlite_file(cls, path: Path | str) -> "Database":
        return cls({"NAME": str(path)}, "sqlite")

    @property
    def label(self) -> str:
        name = Path(self.name).stem if self.vendor == "sqlite" else self.name
        return re.sub(r"[^\w.-]+", "_", name) or "db"

    def mask(self, text: str) -> str:
        """One line, with the password masked should a tool ever echo it."""
        line = " ".join(str(text).split())
        # A very short password would mask ordinary letters; such a password is its own problem.
        return line.replace(self.password, "***") if len(self.password) >= 4 else line

    # PostgreSQL
    def pg_env(self) -> dict[str, str]:
        env = dict(os.environ)
        values = {
            "PGHOST": self.settings.get("HOST") or "",
            "PGPORT": str(self.settings.get("PORT") or ""),
            "PGUSER": self.settings.get("USER") or "",
            "PGPASSWORD": self.password,
        }
        options = self.settings.get("OPTIONS") or {}
        values.update(
            {var: str(options[key]) for key, var in _PG_ENV_OPTIONS.items() if key in options}
        )
        for var, value in values.items():
            if value:
                env[var] = value
            else:
                env.pop(var, None)
        return env

    def pg_connect(self, dbname: str | None = None, **kwargs):
        import psycopg

        options = self.settings.get("OPTIONS") or {}
        params = {
            "dbname": dbname or self.name,
            "host": self.settings.get("HOST") or None,
            "port": self.settings.get("PORT") or None,
            "user": self.settings.get("USER") or None,
            "password": self.password or None,
            **{key: options[key] for key in _PG_ENV_OPTIONS if key in options},
        }
        try:
            return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, **kwargs)
        except psycopg.Error as exc:
            raise BackupError(f"cannot connect to the database: {self.mask(exc)}") from exc

    def pg_tool(self, name: str) -> str:
        bin_dir = settings.BACKUP_PG_BIN_DIR or None
        found = shutil.which(name, path=bin_dir)
        if not found:
            where = f"in BACKUP_PG_BIN_DIR ({bin_dir})" if bin_dir else "on PATH"
            raise BackupError(
                f"{name} was not found {where}: install the PostgreSQL client "
                "(Debian: postgresql-client, at least the server's major version) "
                "or set BACKUP_PG_BIN_DIR"
            )
        return found

    def pg_run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, env=self.pg_env(), capture_output=True, text=True)  # noqa: S603 - fixed tool, no shell
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if "error:" in line or "FATAL" in line] or lines
            why = errors[0] if errors else f"exit status {result.returncode}"
            raise BackupError(f"{Path(argv[0]).name} failed: {self.mask(why)}")

    def database_url(self, name: str) -> str:
        """A DATABASE_URL for a child process; the password travels in PGPASSWORD instead."""
        if self.vendor == "sqlite":
            return f"sqlite:///{Path(name).resolve()}"
        user = quote(self.settings.get("USER") or "", safe="")
        host = quote(self.settings.get("HOST") or "", safe="")
        port = self.settings.get("PORT") or 5432
        return f"postgres://{user}@{host}:{port}/{quote(name, safe='')}"


# ---------------------------------------------------------------------------------------------
# Manifest: row counts and ledger chain heads
# ---------------------------------------------------------------------------------------------
_PG_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2
"""
_SQLITE_TABLES = (
    "SELECT 'main', name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
    "ESCAPE '\\' ORDER BY name"
)
_HEADS = (
    "SELECT c.slug, h.company_id, h.last_entry_id, h.last_hash FROM accounting_ledgerchain h "
    "JOIN core_company c ON c.id = h.company_id ORDER BY c.slug"
)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_state(connection, vendor: str) -> dict:
    """Row counts of every table and the ledger chain heads, through a DB-API connection."""
    cursor = connection.cursor()
    cursor.execute(_PG_TABLES if vendor == "postgresql" else _SQLITE_TABLES)
    tables = cursor.fetchall()
    counts = {}
    for schema, table in tables:
        key = table if schema in ("public", "main") else f"{schema}.{table}"
        cursor.execute(f"SELECT count(*) FROM {_quote_ident(schema)}.{_quote_ident(table)}")  # noqa: S608 - quoted identifiers from the catalog
        counts[key] = cursor.fetchone()[0]
    heads = {}
    if "accounting_ledgerchain" in counts and "core_company" in counts:
        cursor.execute(_HEADS)
        for slug, company_id, last_entry_id, last_hash in cursor.fetchall():
            heads[slug] = {
                "company_id": company_id,
                "last_entry_id": last_entry_id,
                "last_hash": last_hash,
            }
    return {"tables": counts, "ledger_heads": heads}


# ---------------------------------------------------------------------------------------------
# Backup
# ---------------------------------------------------------------------------------------------
def backup_create(
    *, output_dir: Path | str, now: datetime | None = None, database: Database | None = None
) -> Backup:
    """Dump the database (default: the configured one) into output_dir, with its checksum and
    manifest."""
    db = database or Database.configured()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {out}: {exc.strerror}") from exc
    suffix = "dump" if db.vendor == "postgresql" else "sqlite3"
    path = out / f"kontor-{db.label}-{now.strftime(STAMP_FORMAT)}.{suffix}"
    if path.exists():
        raise BackupError(f"{path} already exists")
    partial = path.with_name(path.name + ".partial")
    try:
        manifest = _dump(db, path, partial, now)
    except _FAILURES as exc:
        raise BackupError(f"backup failed: {db.mask(exc)}") from exc
    finally:
        partial.unlink(missing_ok=True)
    log.info(
        "backup written",
        extra={"file": str(path), "bytes": manifest["size"], "tables": len(manifest["tables"])},
    )
    return Backup(path, checksum_path(path), manifest_path(path), manifest["sha256"], manifest)


def _dump(db: Database, path: Path, partial: Path, now: datetime) -> dict:
    try:
        if db.vendor == "postgresql":
            state = _pg_dump(db, partial)
        else:
            state = _sqlite_copy(db, partial)
        digest = sha256_of(partial)
        manifest = {
            "version": MANIFEST_VERSION,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "vendor": db.vendor,
            "database": db.label,
            "file": path.name,
            "sha256": digest,
            "size": partial.stat().st_size,
            **state,
        }
        checksum_path(path).write_text(f"{digest}  {path.name}\n")
        manifest_path(path).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        partial.rename(path)  # last: a dump without its checksum and manifest is never left
    except BaseException:
        checksum_path(path).unlink(missing_ok=True)
        manifest_path(path).unlink(missing_ok=True)
        raise
    return manifest


def _pg_dump(db: Database, target: Path) -> dict:
    from psycopg import IsolationLevel

    pg_dump = db.pg_tool("pg_dump")
    # The manifest and the dump read one snapshot: exported here, kept open while pg_dump runs.
    with db.pg_connect() as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        state = read_state(conn, "postgresql")
        db.pg_run(
            [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={target}",
                "--dbname",
                db.name,
            ]
        )
        conn.rollback()
    return state


def _sqlite_copy(db: Database, target: Path) -> dict:
    source_path = Path(db.name)
    if not source_path.is_file():
        raise BackupError(f"the SQLite database {source_path} does not exist")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        return read_state(copy, "sqlite")  # the copy is the snapshot
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    finally:
        copy.close()
        source.close()


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------
def retention_expired(
    names, *, keep: int, keep_days: int = 0, now: datetime | None = None, protect=()
):
    """The backup files (of names) retention drops: per database, all but the newest `keep`,
    except those younger than `keep_days` days when that is set and those in `protect` (the
    backup just made, even when a clock ahead of this one stamped others later). Other names
    are ignored."""
    now = now or datetime.now(UTC)
    keep = max(keep, 1)
    by_db: dict[str, list[tuple[datetime, str]]] = {}
    for name in names:
        match = NAME_RE.match(name)
        if match:
            stamp = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
            by_db.setdefault(match["db"], []).append((stamp, name))
    expired = []
    for backups in by_db.values():
        backups.sort(reverse=True)
        for stamp, name in backups[keep:]:
            if name in protect or (keep_days and now - stamp < timedelta(days=keep_days)):
                continue
            expired.append(name)
    return sorted(expired)


def _companions(name: str) -> list[str]:
    stem = name.rsplit(".", 1)[0]
    return [name, name + ".sha256", stem + ".manifest.json"]


def retention_apply_dir(
    directory: Path | str, *, keep: int, keep_days: int = 0, protect=()
) -> list[str]:
    directory = Path(directory)
    expired = retention_expired(
        [p.name for p in directory.iterdir()], keep=keep, keep_days=keep_days, protect=protect
    )
    for name in expired:
        for companion in _companions(name):
            (directory / companion).unlink(missing_ok=True)
    return expired


def backup_storage():
    from django.core.files.storage import storages

    if "backups" not in settings.STORAGES:
        raise BackupError(
            "no backup storage is configured: set BACKUP_S3_BUCKET (and BACKUP_S3_ENDPOINT_URL, "
            "credentials) to upload"
        )
    return storages["backups"]


def backup_upload(backup: Backup, *, keep: int, keep_days: int = 0) -> list[str]:
    """Upload the three files to the backups storage, then apply retention there. Returns the
    names retention removed."""
    storage = backup_storage()
    try:
        for path in (backup.path, backup.checksum_path, backup.manifest_path):
            with path.open("rb") as handle:
                saved = storage.save(path.name, File(handle, name=path.name))
            if saved != path.name:
                raise BackupError(f"the storage saved {path.name} as {saved}")
        _, files = storage.listdir("")
        expired = retention_expired(
            files, keep=keep, keep_days=keep_days, protect={backup.path.name}
        )
        present = set(files)
        for name in expired:
            for companion in _companions(name):
                if companion in present:
                    storage.delete(companion)
    except BackupError:
        raise
    except Exception as exc:  # boto3/botocore raise many kinds; report one line
        raise BackupError(
            f"upload failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    return expired


# ---------------------------------------------------------------------------------------------
# Restore and verify
# ---------------------------------------------------------------------------------------------
@dataclass
class Target:
    """Where a dump is restored: a PostgreSQL database name or an SQLite file path."""

    db: Database
    name: str
    scratch: bool
    # What this restore made and may therefore remove: never a database or file it found.
    created: bool = False
    temp_dir: Path | None = None

    def connect(self):
        """A DB-API connection to the target (tests tamper with a restored copy through it)."""
        if self.db.vendor == "postgresql":
            return self.db.pg_connect(self.name)
        return sqlite3.connect(self.name)


def check_file(path: Path, report: Report) -> dict | None:
    """Check the dump against its checksum file; return its manifest (None when absent)."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist")
    sums = checksum_path(path)
    if sums.is_file():
        expected = sums.read_text().split()[0] if sums.read_text().split() else ""
        actual = sha256_of(path)
        if actual != expected:
            report.problem(
                f"checksum: {path.name} does not match {sums.name} "
                f"(sha256 {actual[:12]}…, expected {expected[:12]}…)"
            )
        else:
            report.ok(f"checksum: sha256 {actual[:12]}… matches {sums.name}")
    else:
        report.ok(f"checksum: no {sums.name} beside the dump; not checked")
    manifest_file = manifest_path(path)
    if not manifest_file.is_file():
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
        manifest["tables"], manifest["ledger_heads"]  # noqa: B018 - both must be there
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"the manifest {manifest_file.name} is unreadable: {exc}") from exc
    return manifest


def restore(
    *,
    path: Path | str,
    target: str | None = None,
    yes: bool = False,
    verify: bool = False,
    scratch_name: str | None = None,
    safety_dir: Path | str | None = None,
    on_restored: Callable[[Target], None] | None = None,
    database: Database | None = None,
) -> Report:
    """Restore a backup. With verify and no target, into a scratch database (created, checked,
    dropped; it must not exist); otherwise into target (default: the live database). Replacing
    any existing database needs yes=True; the live one is first backed up into safety_dir when
    that is given. on_restored runs between the restore and the checks (a hook for tests)."""
    db = database or Database.configured()
    path = Path(path)
    report = Report()
    manifest = check_file(path, report)
    if report.problems:
        return report
    if manifest is not None and manifest.get("vendor") != db.vendor:
        raise BackupError(
            f"{path.name} is a {manifest.get('vendor')} backup; "
            f"the configured database is {db.vendor}"
        )
    if verify and manifest is None:
        raise BackupError(f"--verify needs the manifest {manifest_path(path).name} beside the dump")

    live = False
    if verify and target is None:
        if scratch_name:
            where = Target(db, scratch_name, scratch=True)
        elif db.vendor == "sqlite":
            temp_dir = Path(tempfile.mkdtemp(prefix="kontor-verify-"))
            where = Target(db, str(temp_dir / "scratch.sqlite3"), scratch=True, temp_dir=temp_dir)
        else:
            where = Target(db, f"{db.name[:40]}_verify_{secrets.token_hex(4)}", scratch=True)
    else:
        name = target or db.name
        live = (
            Path(name).resolve() == Path(db.name).resolve()
            if db.vendor == "sqlite"
            else name == db.name
        )
        if live and not yes:
            raise BackupError(
                f"refusing to restore over the live database {db.label} without --yes "
                "(use --verify to check the backup in a scratch database)"
            )
        where = Target(db, name, scratch=False)

    try:
        if live and safety_dir is not None:
            safety = backup_create(output_dir=safety_dir, database=db)
            report.ok(f"safety backup of the live database before the restore: {safety.path}")
        _restore_into(where, path, replace=yes)
        kind = "scratch database" if where.scratch else "database"
        report.ok(f"restored {path.name} into {kind} {Path(where.name).name}")
        if on_restored is not None:
            on_restored(where)
        if verify:
            _verify(where, manifest, report)
        if not where.scratch and not report.problems:
            _migrate(where, report)
    except _FAILURES as exc:
        raise BackupError(f"restore failed: {db.mask(exc)}") from exc
    finally:
        if where.scratch:
            _drop(where)
    return report


def _refuse_existing(where: Target, replace: bool) -> None:
    kind = "database" if where.db.vendor == "postgresql" else "SQLite file"
    if where.scratch:
        raise BackupError(
            f"the scratch {kind} {where.name} already exists; name one that does not "
            "(it is dropped after the check)"
        )
    if not replace:
        raise BackupError(f"refusing to replace the existing {kind} {where.name} without --yes")


def _restore_into(where: Target, path: Path, *, replace: bool) -> None:
    db = where.db
    if db.vendor == "sqlite":
        if Path(where.name).exists():
            _refuse_existing(where, replace)
        else:
            where.created = True
        try:
            source = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
            dest = sqlite3.connect(where.name)
            try:
                source.backup(dest)
            finally:
                dest.close()
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"SQLite restore failed: {exc}") from exc
        return
    pg_restore = db.pg_tool("pg_restore")
    argv = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", where.name]
    from psycopg import sql

    with db.pg_connect(autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [where.name]
        ).fetchone()
        if exists:
            _refuse_existing(where, replace)
        else:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(where.name))
            )
            where.created = True
    if exists:  # replace what is there, all or nothing
        argv[1:1] = ["--clean", "--if-exists", "--single-transaction"]
    db.pg_run([*argv, str(path)])


def _drop(where: Target) -> None:
    """Remove the scratch copy, only when this restore created it."""
    if not where.created:
        return
    if where.db.vendor == "sqlite":
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(where.name + suffix).unlink(missing_ok=True)
        if where.temp_dir is not None:
            shutil.rmtree(where.temp_dir, ignore_errors=True)
        return
    from psycopg import sql

    try:
        with where.db.pg_connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(where.name)
                )
            )
    except Exception:  # the report already says what mattered; leave a trace of the leftover
        log.exception("could not drop the scratch database %s", where.name)


def _verify(where: Target, manifest: dict, report: Report) -> None:
    conn = where.connect()
    try:
        state = read_state(conn, where.db.vendor)
    finally:
        conn.close()
    expected, restored = manifest["tables"], state["tables"]
    mismatched = 0
    for table in sorted(set(expected) | set(restored)):
        if table not in restored:
            report.problem(
                f"table {table}: {expected[table]} rows at backup, missing after restore"
            )
        elif table not in expected:
            report.problem(
                f"table {table}: restored ({restored[table]} rows) but not in the manifest"
            )
        elif expected[table] != restored[table]:
            report.problem(
                f"table {table}: {expected[table]} rows at backup, {restored[table]} restored"
            )
        else:
            continue
        mismatched += 1
    if not mismatched:
        report.ok(f"row counts: {len(expected)} tables match the manifest")

    heads_expected, heads_restored = manifest["ledger_heads"], state["ledger_heads"]
    bad_heads = 0
    for slug in sorted(set(heads_expected) | set(heads_restored)):
        if heads_expected.get(slug) != heads_restored.get(slug):
            bad_heads += 1
            report.problem(
                f"ledger head of {slug}: {_head(heads_expected.get(slug))} at backup, "
                f"{_head(heads_restored.get(slug))} restored"
            )
    if not bad_heads:
        report.ok(f"ledger heads: {len(heads_expected)} companies match the manifest")

    if "accounting_journalentry" in restored:
        _verify_ledger(where, report)


def _head(head: dict | None) -> str:
    if head is None:
        return "none"
    return f"entry {head['last_entry_id']} hash {str(head['last_hash'])[:12]}…"


def _manage(where: Target, *args: str) -> subprocess.CompletedProcess:
    """`manage.py <args>` in a child process whose DATABASE_URL names the restored database."""
    env = where.db.pg_env() if where.db.vendor == "postgresql" else dict(os.environ)
    env["DATABASE_URL"] = where.db.database_url(where.name)
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
    )


def _failure(where: Target, result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    why = lines[-1].removeprefix("CommandError: ") if lines else f"exit {result.returncode}"
    return where.db.mask(why)


def _verify_ledger(where: Target, report: Report) -> None:
    """`manage.py verify_ledger` against the restored copy: the same check, unchanged, on the
    restored rows."""
    result = _manage(where, "verify_ledger")
    broken = 0
    for line in filter(None, map(str.strip, result.stdout.splitlines())):
        if line.endswith("chain intact"):
            report.ok(f"ledger chain: {line}")
        else:
            broken += 1
            report.problem(f"ledger chain: {line}")
    if result.returncode != 0 and not broken:
        report.problem(f"ledger chain: verify_ledger failed: {_failure(where, result)}")


def _migrate(where: Target, report: Report) -> None:
    """A database that is kept gets `manage.py migrate`: it brings an older dump to this
    release's schema and re-runs what migrate installs beside the schema (row-level security
    grants, which pg_restore --no-privileges leaves out, and the beat schedules)."""
    conn = where.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'django_migrations'"
            if where.db.vendor == "postgresql"
            else "SELECT count(*) FROM sqlite_master WHERE name = 'django_migrations'"
        )
        has_migrations = cursor.fetchone()[0] > 0
    finally:
        conn.close()
    if not has_migrations:
        report.ok("migrate: not a Kontor database (no django_migrations); skipped")
        return
    result = _manage(where, "migrate", "--noinput")
    if result.returncode != 0:
        report.problem(f"migrate: failed: {_failure(where, result)}")
    else:
        report.ok("migrate: schema and row-level security brought to this release")
