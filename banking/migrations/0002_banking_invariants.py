from pathlib import Path

from django.db import migrations

from core.db import run_sql_file

APP_DIR = Path(__file__).resolve().parent.parent


def _sqlite_statements(name: str) -> list[str]:
    # SQLite runs one statement per execute(); the file's statements are separated by blank
    # lines (trigger bodies hold semicolons, so splitting on ';' would cut them).
    text = (APP_DIR / "sql" / f"{name}.sql").read_text()
    blocks = [block.strip() for block in text.split("\n\n")]
    return [
        b
        for b in blocks
        if b and not all(line.lstrip().startswith("--") for line in b.splitlines())
    ]


def _sqlite(name: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            for statement in _sqlite_statements(name):
                schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("banking", "0001_initial")]

    operations = [
        run_sql_file(str(APP_DIR), "banking_invariants"),
        migrations.RunPython(
            _sqlite("banking_invariants_sqlite"),
            _sqlite("banking_invariants_sqlite.reverse"),
            elidable=False,
        ),
    ]
