from pathlib import Path

from django.db import migrations

from core.db import run_sql_file


class Migration(migrations.Migration):
    dependencies = [("invoicing", "0001_invoicing")]

    operations = [run_sql_file(str(Path(__file__).resolve().parent.parent), "event_store")]
