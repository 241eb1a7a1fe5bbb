from django.db import migrations

from payroll.reference_data import reference_data_load, reference_data_unload


class Migration(migrations.Migration):
    dependencies = [("payroll", "0001_payroll")]

    operations = [migrations.RunPython(reference_data_load, reference_data_unload)]
