from pathlib import Path

from django.db import migrations

from core.db import run_sql_file


class Migration(migrations.Migration):
    dependencies = [("accounting", "0001_ledger")]

    operations = [run_sql_file(str(Path(__file__).resolve().parent.parent), "ledger_invariants")]
