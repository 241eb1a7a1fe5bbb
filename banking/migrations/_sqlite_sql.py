"""Reading banking/sql/*.sql for SQLite, which runs one statement per execute(): statements
are separated by blank lines (trigger bodies hold semicolons, so splitting on ';' would cut
them). Shared by the migrations that (re)create the SQLite triggers."""

from pathlib import Path


def statements(app_dir: Path, name: str) -> list[str]:
    text = (Path(app_dir) / "sql" / f"{name}.sql").read_text()
    blocks = [block.strip() for block in text.split("\n\n")]
    return [
        b
        for b in blocks
        if b and not all(line.lstrip().startswith("--") for line in b.splitlines())
    ]
