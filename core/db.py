"""Migration helpers: database-level rules live in readable .sql files beside the app."""

from pathlib import Path

from django.db import migrations


def run_sql_file(app_dir: str, name: str, *, vendor: str = "postgresql") -> migrations.RunPython:
    """A migration step that runs `<app>/sql/<name>.sql`, and `<name>.reverse.sql` to undo it,
    on the given database vendor only (the embedded SQLite default skips it)."""
    folder = Path(app_dir) / "sql"
    forward = (folder / f"{name}.sql").read_text()
    reverse = (folder / f"{name}.reverse.sql").read_text()

    def runner(sql):
        def run(apps, schema_editor):
            if schema_editor.connection.vendor == vendor:
                schema_editor.execute(sql, params=None)

        return run

    return migrations.RunPython(runner(forward), runner(reverse), elidable=False)
