"""backup_database and restore_database: a real pg_dump/pg_restore round trip with ledger data,
tampering caught by --verify, retention, upload to S3 (moto) and the SQLite path."""

import json
import secrets
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from accounting.models import JournalEntry
from core import backups
from core.models import Company
from payroll.reference_data import reference_data_load
from tests.factories import CompanyFactory, journal_entry_for


def _post_books():
    """Two companies with posted entries (three and one)."""
    alpha = CompanyFactory(name="Alpha Traders", slug="alpha")
    beta = CompanyFactory(name="Beta Foods", slug="beta")
    entries = [journal_entry_for(alpha) for _ in range(3)]
    journal_entry_for(beta)
    return alpha, entries


def _scratch() -> str:
    return f"kontor_ops_verify_{secrets.token_hex(3)}"


def _database_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


def _outside_the_test_transaction(statement: str) -> None:
    """CREATE/DROP DATABASE, which cannot run in the test's transaction."""
    with backups.Database.configured().pg_connect(autocommit=True) as conn:
        conn.execute(statement)


def _copy(dump: Path, directory: Path) -> Path:
    """The dump with its checksum and manifest, copied for a test that may alter them."""
    for source in (dump, backups.checksum_path(dump), backups.manifest_path(dump)):
        shutil.copy2(source, directory / source.name)
    return directory / dump.name


@pytest.fixture(scope="module")
def books_dump(django_db_setup, django_db_blocker, tmp_path_factory):
    """The books of _post_books committed in the test database and backed up once for the
    module (pg_dump reads committed rows only). Tests restore copies of this one dump into
    scratch databases, so they need no transactional database (and no flush) of their own. The
    rows stay until a transactional test flushes them, or the module ends."""
    directory = tmp_path_factory.mktemp("books")
    out = StringIO()
    with django_db_blocker.unblock():
        _, entries = _post_books()
        alpha_head = max(
            JournalEntry.objects.filter(company__slug="alpha").values_list("pk", flat=True)
        )
        call_command("backup_database", "--output-dir", str(directory), "--keep", "3", stdout=out)
    (dump,) = directory.glob("kontor-*.dump")
    yield SimpleNamespace(
        dump=dump,
        output=out.getvalue(),
        entry_ids=[entry.pk for entry in entries],
        alpha_head=alpha_head,
    )
    with django_db_blocker.unblock():
        if Company.objects.exists():
            call_command("flush", "--noinput", verbosity=0)
            # The flush also took the rows migrations load (the payroll tax tables and types);
            # later tests in the session, ordinary ones included, rely on them.
            reference_data_load(apps)


@pytest.mark.postgres
@pytest.mark.django_db
def test_backup_then_verify_restores_into_a_scratch_database_and_finds_it_intact(
    books_dump, capsys
):
    dump = books_dump.dump
    assert books_dump.output.startswith(f"backup {dump} (")
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    digest, name = dump.with_name(dump.name + ".sha256").read_text().split()
    assert (digest, name) == (backups.sha256_of(dump), dump.name)
    manifest = json.loads(backups.manifest_path(dump).read_text())
    assert manifest["tables"]["accounting_journalentry"] == 4
    assert manifest["tables"]["core_company"] == 2
    assert set(manifest["ledger_heads"]) == {"alpha", "beta"}
    assert manifest["ledger_heads"]["alpha"]["last_entry_id"] == books_dump.alpha_head

    scratch = _scratch()
    call_command("restore_database", str(dump), "--verify", "--scratch-db", scratch)
    out = capsys.readouterr().out
    assert "checksum: sha256" in out and "matches" in out
    assert "tables match the manifest" in out
    assert "ledger heads: 2 companies match the manifest" in out
    assert "ledger chain: alpha: 3 entries, chain intact" in out
    assert "ledger chain: beta: 1 entries, chain intact" in out
    assert out.rstrip().endswith("verify OK")
    assert not _database_exists(scratch), "the scratch database is dropped afterwards"


@pytest.mark.postgres
@pytest.mark.django_db
def test_verify_names_the_entry_whose_line_was_altered_in_the_restored_copy(books_dump):
    altered = books_dump.entry_ids[1]

    def alter_a_line(target):
        with target.connect() as conn:
            conn.execute("SET session_replication_role = replica")  # past the ledger triggers
            conn.execute(
                "UPDATE accounting_journalline SET debit = debit + 1 "
                "WHERE entry_id = %s AND debit > 0",
                [altered],
            )

    scratch = _scratch()
    report = backups.restore(
        path=books_dump.dump, verify=True, scratch_name=scratch, on_restored=alter_a_line
    )
    assert len(report.problems) == 1, report.lines
    problem = report.problems[0]
    assert problem.startswith("ledger chain: alpha: entry JE/")
    assert f"(id {altered}) was altered" in problem
    assert "1 entries before it are intact" in problem
    assert not _database_exists(scratch)


@pytest.mark.postgres
@pytest.mark.django_db
def test_verify_names_the_table_and_the_head_the_manifest_disagrees_with(
    books_dump, tmp_path, capsys
):
    dump = _copy(books_dump.dump, tmp_path)
    manifest_file = backups.manifest_path(dump)
    manifest = json.loads(manifest_file.read_text())
    manifest["tables"]["accounting_journalline"] += 2
    manifest["ledger_heads"]["beta"]["last_hash"] = "f" * 64
    manifest_file.write_text(json.dumps(manifest))

    with pytest.raises(CommandError) as caught:
        call_command("restore_database", str(dump), "--verify", "--scratch-db", _scratch())
    out = capsys.readouterr().out
    lines = manifest["tables"]["accounting_journalline"]
    assert str(caught.value) == (
        f"table accounting_journalline: {lines} rows at backup, {lines - 2} restored"
    )
    assert "ledger head of beta: entry" in out and "ffffffffffff" in out
    assert "verify FAILED: 2 problem(s)" in out


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_corrupted_dump_fails_its_checksum_before_anything_is_restored(books_dump, tmp_path):
    dump = _copy(books_dump.dump, tmp_path)
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    scratch = _scratch()
    with pytest.raises(CommandError, match=r"^checksum: kontor-.*\.dump does not match"):
        call_command("restore_database", str(dump), "--verify", "--scratch-db", scratch)
    assert not _database_exists(scratch)


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_existing_database_is_never_taken_for_scratch_nor_replaced_without_yes(books_dump):
    """--scratch-db naming a database that exists is refused and that database left alone (it
    used to be dropped on the way out); --target-db naming one needs --yes."""
    existing = f"kontor_ops_existing_{secrets.token_hex(3)}"
    _outside_the_test_transaction(f'CREATE DATABASE "{existing}"')
    try:
        with pytest.raises(CommandError, match=f"^the scratch database {existing} already exists"):
            call_command(
                "restore_database", str(books_dump.dump), "--verify", "--scratch-db", existing
            )
        assert _database_exists(existing)
        with pytest.raises(
            CommandError, match=f"^refusing to replace the existing database {existing} without"
        ):
            call_command("restore_database", str(books_dump.dump), "--target-db", existing)
        assert _database_exists(existing)
    finally:
        _outside_the_test_transaction(f'DROP DATABASE IF EXISTS "{existing}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_restoring_over_the_live_database_needs_yes_keeps_a_safety_backup_and_brings_it_back(
    books_dump, tmp_path, capsys
):
    dump = books_dump.dump  # of the books still committed in the live (test) database
    journal_entry_for(Company.objects.get(slug="alpha"))  # after the backup: the restore drops it
    assert JournalEntry.objects.count() == 5

    with pytest.raises(CommandError, match="refusing to restore over the live database"):
        call_command("restore_database", str(dump))
    assert JournalEntry.objects.count() == 5

    connection.close()  # the restore replaces the tables this connection has seen
    with override_settings(BACKUP_DIR=str(tmp_path / "safety")):
        call_command("restore_database", str(dump), "--yes")
    out = capsys.readouterr().out
    (safety,) = (tmp_path / "safety").glob("kontor-*.dump")
    assert f"safety backup of the live database before the restore: {safety}" in out
    safety_manifest = json.loads(backups.manifest_path(safety).read_text())
    assert safety_manifest["tables"]["accounting_journalentry"] == 5, "nothing is lost for good"
    assert "migrate: schema and row-level security brought to this release" in out
    assert JournalEntry.objects.count() == 4
    if settings.RLS_ENABLED:  # pg_restore --no-privileges dropped the grants; migrate is back
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT has_table_privilege(%s, 'accounting_journalentry', 'SELECT')",
                [settings.RLS_ROLE],
            )
            assert cursor.fetchone() == (True,)
    call_command("verify_ledger")
    assert "alpha: 3 entries, chain intact" in capsys.readouterr().out


@pytest.mark.postgres
@pytest.mark.django_db
def test_restore_into_another_database_keeps_it_and_verifies_it(books_dump, capsys):
    dump = books_dump.dump
    target = f"kontor_ops_target_{secrets.token_hex(3)}"
    try:
        call_command("restore_database", str(dump), "--target-db", target, "--verify")
        assert capsys.readouterr().out.rstrip().endswith("verify OK")
        assert _database_exists(target)
    finally:
        _outside_the_test_transaction(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.django_db
def test_backup_errors_are_one_line_without_the_password(tmp_path, monkeypatch):
    settings_dict = {**connection.settings_dict, "PASSWORD": "s3cret-pw", "USER": "nobody_here"}
    db = backups.Database(settings_dict, "postgresql")
    with pytest.raises(backups.BackupError) as caught:
        backups.backup_create(output_dir=tmp_path, database=db)
    message = str(caught.value)
    assert message.startswith("cannot connect to the database:")
    assert "\n" not in message and "s3cret-pw" not in message

    def refused(*args):
        raise psycopg.errors.InsufficientPrivilege(
            "permission denied for table accounting_journalentry\nHINT: grant it"
        )

    with monkeypatch.context() as patch:
        patch.setattr(backups, "read_state", refused)
        with pytest.raises(CommandError) as caught:
            call_command("backup_database", "--output-dir", str(tmp_path / "denied"))
    assert str(caught.value) == (
        "backup failed: permission denied for table accounting_journalentry HINT: grant it"
    )
    assert not list((tmp_path / "denied").iterdir()), "no partial file, checksum or manifest"

    monkeypatch.setattr("django.conf.settings.BACKUP_PG_BIN_DIR", str(tmp_path))
    with pytest.raises(CommandError, match=r"^pg_dump was not found in BACKUP_PG_BIN_DIR"):
        call_command("backup_database", "--output-dir", str(tmp_path))


def test_pg_dump_gets_the_password_from_the_environment_not_argv(tmp_path, monkeypatch):
    seen = {}

    def fake_run(argv, env, **kwargs):
        seen.update(argv=argv, env=env)
        raise SystemExit  # stop here

    db = backups.Database(
        {"NAME": "kontor", "USER": "kontor", "PASSWORD": "pw-123", "HOST": "db", "PORT": 5432},
        "postgresql",
    )
    monkeypatch.setattr(backups.subprocess, "run", fake_run)
    with pytest.raises(SystemExit):
        db.pg_run(["/usr/bin/pg_dump", "--dbname", "kontor"])
    assert "pw-123" not in " ".join(seen["argv"])
    assert seen["env"]["PGPASSWORD"] == "pw-123" and seen["env"]["PGHOST"] == "db"
    assert db.database_url("kontor_x") == "postgres://kontor@db:5432/kontor_x"


def _stamp(days_ago: int, now: datetime) -> str:
    return (now - timedelta(days=days_ago)).strftime(backups.STAMP_FORMAT)


def test_retention_keeps_the_newest_n_and_those_younger_than_keep_days(tmp_path):
    now = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    names = [f"kontor-kontor-{_stamp(days, now)}.dump" for days in range(6)]
    other_db = f"kontor-other-{_stamp(9, now)}.dump"
    assert backups.retention_expired([*names, other_db, "notes.txt"], keep=2, now=now) == sorted(
        names[2:]
    )
    assert backups.retention_expired(names, keep=2, keep_days=4, now=now) == sorted(names[4:])

    for name in names:
        for companion in backups._companions(name):
            (tmp_path / companion).write_text("x")
    (tmp_path / "notes.txt").write_text("kept")
    backups.retention_apply_dir(tmp_path, keep=2)
    left = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted(c for name in names[:2] for c in backups._companions(name))
    assert left == sorted([*expected, "notes.txt"])


def test_retention_never_drops_the_backup_just_made_even_behind_later_stamps():
    now = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    just_made = f"kontor-kontor-{_stamp(0, now)}.dump"
    ahead = f"kontor-kontor-{_stamp(-1, now)}.dump"  # a clock a day ahead wrote this one
    assert backups.retention_expired([just_made, ahead], keep=1, now=now) == [just_made]
    assert backups.retention_expired([just_made, ahead], keep=1, now=now, protect={just_made}) == []


def _sqlite_books(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE core_company (id integer primary key, slug text)")
        db.executemany("INSERT INTO core_company (slug) VALUES (?)", [("alpha",), ("beta",)])
        db.execute("CREATE TABLE accounting_ledgerchain (company_id, last_entry_id, last_hash)")
        db.execute("INSERT INTO accounting_ledgerchain VALUES (1, 7, ?)", ["a" * 64])
    db.close()


def test_sqlite_backup_uses_the_online_backup_api_and_verifies(tmp_path):
    live = tmp_path / "kontor.sqlite3"
    _sqlite_books(live)
    db = backups.Database.sqlite_file(live)
    backup = backups.backup_create(output_dir=tmp_path / "backups", database=db)
    assert backup.path.name.startswith("kontor-kontor-") and backup.path.suffix == ".sqlite3"
    assert backup.manifest["tables"] == {"accounting_ledgerchain": 1, "core_company": 2}
    assert backup.manifest["ledger_heads"]["alpha"]["last_entry_id"] == 7

    report = backups.restore(path=backup.path, verify=True, database=db)
    assert report.problems == [] and "row counts: 2 tables match the manifest" in report.lines

    with pytest.raises(backups.BackupError, match="refusing to restore over the live database"):
        backups.restore(path=backup.path, database=db)
    with sqlite3.connect(live) as conn:
        conn.execute("DELETE FROM core_company WHERE slug = 'beta'")
    conn.close()
    report = backups.restore(path=backup.path, database=db, yes=True, safety_dir=tmp_path / "s")
    assert report.lines[-1] == "migrate: not a Kontor database (no django_migrations); skipped"
    with sqlite3.connect(live) as conn:
        assert conn.execute("SELECT count(*) FROM core_company").fetchone() == (2,)
    conn.close()
    (safety,) = (tmp_path / "s").glob("kontor-kontor-*.sqlite3")
    assert json.loads(backups.manifest_path(safety).read_text())["tables"]["core_company"] == 1


def test_a_failed_backup_is_one_line_and_leaves_no_files(tmp_path, monkeypatch):
    live = tmp_path / "kontor.sqlite3"
    _sqlite_books(live)

    def disk_full(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backups, "sha256_of", disk_full)
    out = tmp_path / "backups"
    with pytest.raises(backups.BackupError) as caught:
        backups.backup_create(output_dir=out, database=backups.Database.sqlite_file(live))
    assert str(caught.value) == "backup failed: [Errno 28] No space left on device"
    assert not list(out.iterdir())


def test_sqlite_scratch_and_target_files_that_exist_are_refused_and_left_alone(tmp_path):
    """A scratch file the operator names is removed alone after the check (its folder used to
    be removed with everything in it), and an existing one, like an existing target, is kept."""
    live = tmp_path / "kontor.sqlite3"
    _sqlite_books(live)
    db = backups.Database.sqlite_file(live)
    backup = backups.backup_create(output_dir=tmp_path / "backups", database=db)
    folder = tmp_path / "checks"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    scratch = folder / "scratch.sqlite3"

    report = backups.restore(path=backup.path, verify=True, scratch_name=str(scratch), database=db)
    assert report.problems == [], report.lines
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]

    scratch.write_text("someone's file")
    with pytest.raises(backups.BackupError, match="^the scratch SQLite file .* already exists"):
        backups.restore(path=backup.path, verify=True, scratch_name=str(scratch), database=db)
    assert scratch.read_text() == "someone's file"
    with pytest.raises(backups.BackupError, match="^refusing to replace the existing SQLite file"):
        backups.restore(path=backup.path, target=str(scratch), database=db)
    assert scratch.read_text() == "someone's file"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the embedded default's test database")
@pytest.mark.django_db(transaction=True)
def test_sqlite_backup_of_a_migrated_database_verifies_the_ledger(tmp_path):
    _post_books()
    live = tmp_path / "kontor.sqlite3"
    connection.ensure_connection()
    with sqlite3.connect(live) as copy:
        connection.connection.backup(copy)  # the in-memory test database, as a file
    copy.close()
    db = backups.Database.sqlite_file(live)
    backup = backups.backup_create(output_dir=tmp_path / "backups", database=db)
    report = backups.restore(path=backup.path, verify=True, database=db)
    assert report.problems == [], report.lines
    assert "ledger chain: alpha: 3 entries, chain intact" in report.lines


S3_BACKUPS = {
    "BACKEND": "storages.backends.s3.S3Storage",
    "OPTIONS": {
        "bucket_name": "kontor-backups",
        "region_name": "us-east-1",
        "access_key": "testing",
        "secret_key": "testing",
        "location": "backups",
        "default_acl": None,
        "file_overwrite": True,
    },
}


def test_upload_puts_the_three_files_in_s3_and_applies_retention_there(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    live = tmp_path / "kontor.sqlite3"
    _sqlite_books(live)
    db = backups.Database.sqlite_file(live)
    now = datetime.now(UTC)
    old = [f"kontor-kontor-{_stamp(days, now)}.sqlite3" for days in (1, 2, 3)]

    with moto.mock_aws(), override_settings(STORAGES={**settings.STORAGES, "backups": S3_BACKUPS}):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="kontor-backups")
        for name in old:
            for companion in backups._companions(name):
                s3.put_object(Bucket="kontor-backups", Key=f"backups/{companion}", Body=b"x")
        backup = backups.backup_create(output_dir=tmp_path / "backups", database=db)
        removed = backups.backup_upload(backup, keep=2)
        keys = sorted(obj["Key"] for obj in s3.list_objects_v2(Bucket="kontor-backups")["Contents"])
        body = s3.get_object(Bucket="kontor-backups", Key=f"backups/{backup.path.name}")
        assert body["Body"].read() == backup.path.read_bytes()

    assert removed == sorted(old[1:])
    kept = [backup.path.name, old[0]]
    assert keys == sorted(f"backups/{c}" for name in kept for c in backups._companions(name))


def test_upload_without_a_configured_bucket_says_what_to_set(tmp_path):
    with pytest.raises(CommandError, match="no backup storage is configured: set BACKUP_S3_BUCKET"):
        call_command("backup_database", "--output-dir", str(tmp_path), "--upload")
    assert not list(tmp_path.iterdir()), "nothing is dumped when the upload cannot happen"
