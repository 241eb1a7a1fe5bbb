"""Invoicing services: every write to parties, items, VAT rates and invoices goes through here."""

from decimal import Decimal

from django.db import transaction

from core.models import Company
from invoicing.models import VatRate
from invoicing.tax import DEFAULT_VAT_RATES


def vat_rates_seed(*, company: Company) -> int:
    """Give a company the standard Bangladesh rates it lacks; returns how many were added."""
    with transaction.atomic():
        have = set(VatRate.objects.filter(company=company).values_list("code", flat=True))
        new = [
            VatRate(
                company=company,
                code=code,
                name=name,
                kind=kind,
                rate=Decimal(rate),
                specific_amount=Decimal(specific),
                sro_reference=sro,
            )
            for code, name, kind, rate, specific, sro in DEFAULT_VAT_RATES
            if code not in have
        ]
        VatRate.objects.bulk_create(new)
        return len(new)
