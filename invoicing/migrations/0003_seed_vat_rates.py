"""Give every existing company the standard Bangladesh VAT rates (new companies get them from
the company_created receiver in invoicing/apps.py). The figures are copied here on purpose:
a migration must not change when invoicing.tax.DEFAULT_VAT_RATES does."""

from decimal import Decimal

from django.db import migrations

RATES = [
    ("VAT15", "Standard 15%", "percent", "15", "", ""),
    ("VAT10", "Reduced 10%", "percent", "10", "", "Third Schedule"),
    ("VAT7.5", "Reduced 7.5%", "percent", "7.5", "", "Third Schedule"),
    ("VAT5", "Reduced 5%", "percent", "5", "", "Third Schedule"),
    ("ZERO", "Zero-rated (export)", "zero", "0", "", ""),
    ("EXEMPT", "Exempt", "exempt", "0", "", "First Schedule"),
    ("SPECIFIC", "Specific VAT per unit", "specific", "0", "1", "Third Schedule"),
]


def seed(apps, schema_editor):
    Company = apps.get_model("core", "Company")
    VatRate = apps.get_model("invoicing", "VatRate")
    for company in Company.objects.all():
        for code, name, kind, rate, specific, sro in RATES:
            VatRate.objects.get_or_create(
                company=company,
                code=code,
                defaults={
                    "name": name,
                    "kind": kind,
                    "rate": Decimal(rate),
                    "specific_amount": Decimal(specific or "0"),
                    "sro_reference": sro,
                },
            )


class Migration(migrations.Migration):
    dependencies = [
        ("invoicing", "0002_event_store_append_only"),
        ("core", "0004_user_email_unique"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
