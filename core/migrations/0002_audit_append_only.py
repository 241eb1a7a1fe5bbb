from pathlib import Path

from django.db import migrations

from core.db import run_sql_file


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [run_sql_file(str(Path(__file__).resolve().parent.parent), "audit_append_only")]
