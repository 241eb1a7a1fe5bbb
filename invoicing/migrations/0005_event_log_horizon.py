from pathlib import Path

from django.db import migrations

from core.db import run_sql_file


class Migration(migrations.Migration):
    dependencies = [("invoicing", "0004_recurring_anchor_day")]

    operations = [
        run_sql_file(str(Path(__file__).resolve().parent.parent), "event_log_horizon"),
        migrations.RemoveIndex(model_name="invoiceevent", name="invoicing_event_tx"),
        migrations.RemoveField(model_name="invoiceevent", name="transaction_id"),
        migrations.RemoveField(model_name="projectioncheckpoint", name="transaction_id"),
    ]
