"""Payslips carry the first day of their tax year (reference_data.payslip_tax_year: the pay
date's year in the US, the period end's elsewhere); year-to-date figures select by it."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    from payroll.reference_data import payslip_tax_year

    Payslip = apps.get_model("payroll", "Payslip")
    Company = apps.get_model("core", "Company")
    companies = {}
    rows = Payslip.objects.filter(tax_year_start__isnull=True).values_list(
        "pk", "company_id", "employee__jurisdiction", "period_end", "pay_date"
    )
    for pk, company_id, jurisdiction, period_end, pay_date in rows.iterator():
        if company_id not in companies:
            companies[company_id] = Company.objects.get(pk=company_id)
        start, _end = payslip_tax_year(
            jurisdiction.split("-", 1)[0], companies[company_id], period_end, pay_date
        )
        Payslip.objects.filter(pk=pk).update(tax_year_start=start)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("payroll", "0005_payslip_net_band"),
    ]

    operations = [
        migrations.AddField(
            model_name="payslip",
            name="tax_year_start",
            field=models.DateField(null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="payslip",
            name="tax_year_start",
            field=models.DateField(
                help_text="First day of the tax year the payslip belongs to "
                "(reference_data.payslip_tax_year); year-to-date figures are selected by it."
            ),
        ),
        migrations.AddIndex(
            model_name="payslip",
            index=models.Index(
                fields=["company", "tax_year_start", "employee"], name="payroll_payslip_tax_year"
            ),
        ),
    ]
