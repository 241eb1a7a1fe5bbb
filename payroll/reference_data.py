"""Statutory reference data shipped with Kontor, as plain data with effective dates and sources.

Migration 0002 loads it (`reference_data_load`); it is editable in the admin afterwards and a
later law is a new row (or a new migration), never a code change. Rates are fractions.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

# --- tax years --------------------------------------------------------------------------------

# The month a country's tax (income) year starts; year-to-date figures and the periods left for
# annualised tax count from it. Elsewhere the company's fiscal year start month is used.
TAX_YEAR_START_MONTH = {
    "BD": 7,  # income year July to June (Income Tax Act 2023, s.2)
    "US": 1,  # calendar year
}


# Countries whose wages belong to the tax year they are paid in (United States: wages are
# taxed when paid, IRS Publication 15 "When wages are paid"); elsewhere to the year the period
# (the work) ends in (Bangladesh: income of the income year, Income Tax Act 2023 s.2).
TAX_YEAR_BY_PAY_DATE = frozenset({"US"})


def tax_year_start_month(country: str, company) -> int:
    return TAX_YEAR_START_MONTH.get(country, company.fiscal_year_start_month)


def payslip_tax_date(country: str, period_end: dt.date, pay_date: dt.date) -> dt.date:
    """The day that places a payslip in a tax year (and picks its tax tables and wage bases)."""
    return pay_date if country in TAX_YEAR_BY_PAY_DATE else period_end


def payslip_tax_year(
    country: str, company, period_end: dt.date, pay_date: dt.date
) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the tax year a payslip belongs to: the one function every
    year-to-date figure is keyed by (stored on the payslip as tax_year_start)."""
    day = payslip_tax_date(country, period_end, pay_date)
    month = tax_year_start_month(country, company)
    year = day.year if day.month >= month else day.year - 1
    start = dt.date(year, month, 1)
    end = dt.date(year + 1, month, 1) - dt.timedelta(days=1)
    return start, end


# --- Bangladesh individual income tax -----------------------------------------------------------

BD_THRESHOLDS = {
    # taxpayer category -> tax-free threshold (the first, nil bracket)
    "general": D("350000"),
    "women_senior": D("400000"),
    "third_gender_disabled": D("475000"),
    "war_wounded_freedom_fighter": D("500000"),
}

# Slabs above the threshold: (width or None for "the balance", rate).
BD_SLABS_AY2024_25 = [
    (D("100000"), D("0.05")),
    (D("400000"), D("0.10")),
    (D("500000"), D("0.15")),
    (D("500000"), D("0.20")),
    (None, D("0.25")),
]
BD_SLABS_AY2025_26 = [
    (D("100000"), D("0.05")),
    (D("400000"), D("0.10")),
    (D("500000"), D("0.15")),
    (D("500000"), D("0.20")),
    (D("2000000"), D("0.25")),
    (None, D("0.30")),
]

BD_SOURCE_AY2024_25 = (
    "Income Tax Act 2023, Schedule 6 Part 1 as set by the Finance Act 2023 (assessment year "
    "2024-25, income year 1 July 2023 - 30 June 2024): first 350,000 nil (400,000 women and "
    "persons aged 65+, 475,000 third gender and physically challenged, 500,000 gazetted "
    "war-wounded freedom fighters), next 100,000 5%, next 400,000 10%, next 500,000 15%, next "
    "500,000 20%, balance 25%. National Board of Revenue, nbr.gov.bd."
)
BD_SOURCE_AY2025_26 = (
    "Income Tax Act 2023, Schedule 6 Part 1 as amended by the Finance Act 2024 (assessment year "
    "2025-26, income year 1 July 2024 - 30 June 2025): first 350,000 nil (400,000 women and "
    "persons aged 65+, 475,000 third gender and physically challenged, 500,000 gazetted "
    "war-wounded freedom fighters), next 100,000 5%, next 400,000 10%, next 500,000 15%, next "
    "500,000 20%, next 2,000,000 25%, balance 30%. National Board of Revenue, nbr.gov.bd."
)

BD_TAX_YEARS = [
    # (assessment year label, income year start, income year end, slabs, source)
    ("2024-25", dt.date(2023, 7, 1), dt.date(2024, 6, 30), BD_SLABS_AY2024_25, BD_SOURCE_AY2024_25),
    # Open-ended until a later Finance Act's table is added.
    ("2025-26", dt.date(2024, 7, 1), None, BD_SLABS_AY2025_26, BD_SOURCE_AY2025_26),
]

CATEGORY_LABELS = {
    "general": "general",
    "women_senior": "women and 65+",
    "third_gender_disabled": "third gender and physically challenged",
    "war_wounded_freedom_fighter": "war-wounded freedom fighters",
}


def bd_brackets(threshold: D, slabs) -> list[tuple[D, D | None, D]]:
    """Half-open brackets (lower, upper, rate): the nil threshold first, then each slab."""
    brackets = [(D("0"), threshold, D("0"))]
    lower = threshold
    for width, rate in slabs:
        upper = None if width is None else lower + width
        brackets.append((lower, upper, rate))
        lower = upper
    return brackets


# --- flat taxes with a wage base ----------------------------------------------------------------

OASDI_SOURCE = (
    "Social security (OASDI) tax: 6.2% employee (26 U.S.C. 3101(a)) and 6.2% employer "
    "(26 U.S.C. 3111(a)) on wages up to the contribution and benefit base (42 U.S.C. 430): "
    "{base} for {year}. Social Security Administration, ssa.gov/oact/cola/cbb.html."
)
FLAT_TAXES = [
    # (jurisdiction, code, name, employee rate, employer rate, wage base, from, to, source)
    (
        "US",
        "OASDI",
        "Social security (OASDI)",
        D("0.062"),
        D("0.062"),
        D("176100"),
        dt.date(2025, 1, 1),
        dt.date(2025, 12, 31),
        OASDI_SOURCE.format(base="$176,100", year=2025),
    ),
    (
        "US",
        "OASDI",
        "Social security (OASDI)",
        D("0.062"),
        D("0.062"),
        D("184500"),
        dt.date(2026, 1, 1),
        None,
        OASDI_SOURCE.format(base="$184,500", year=2026),
    ),
]

# --- overtime -------------------------------------------------------------------------------------

OVERTIME_RULES = [
    {
        "jurisdiction": "US",
        "name": "Federal (FLSA): over 40 hours a workweek at 1.5x",
        "weekly_threshold": D("40"),
        "effective_from": dt.date(1938, 10, 24),
        "source": "Fair Labor Standards Act, 29 U.S.C. 207(a)(1).",
    },
    {
        "jurisdiction": "US-CA",
        "name": "California: daily 8 h 1.5x, 12 h 2x, weekly 40 h, seventh day",
        "daily_threshold": D("8"),
        "daily_double_threshold": D("12"),
        "weekly_threshold": D("40"),
        "seventh_day": True,
        "weekly_excludes_daily_ot": True,
        "effective_from": dt.date(2000, 1, 1),
        "source": "Cal. Lab. Code 510(a): over 8 h in a workday or 40 h in a workweek and the "
        "first 8 h on the seventh consecutive day at 1.5x; over 12 h a day and over 8 h on the "
        "seventh day at 2x; hours paid as daily overtime are not counted again for the week.",
    },
    {
        "jurisdiction": "US-AK",
        "name": "Alaska: over 8 h a day or 40 h a week at 1.5x",
        "daily_threshold": D("8"),
        "weekly_threshold": D("40"),
        "weekly_excludes_daily_ot": True,
        "effective_from": dt.date(2000, 1, 1),
        "source": "Alaska Stat. 23.10.060: over 8 h a day or 40 h a week at 1.5x, weekly hours "
        "not counting hours already paid as daily overtime.",
    },
    {
        "jurisdiction": "US-NV",
        "name": "Nevada: daily 8 h at 1.5x below 1.5x minimum wage, weekly 40 h",
        "daily_threshold": D("8"),
        "weekly_threshold": D("40"),
        "weekly_excludes_daily_ot": True,
        "daily_requires_rate_below_min_wage_multiple": D("1.5"),
        "minimum_wage": D("12.00"),
        "effective_from": dt.date(2024, 7, 1),
        "source": "NRS 608.018: over 40 h a week at 1.5x; over 8 h in a 24-hour workday at 1.5x "
        "only for employees paid less than 1.5 times the minimum wage. Nevada minimum wage "
        "$12.00/h from 1 July 2024 (NRS 608.250, Labor Commissioner bulletin).",
    },
    {
        "jurisdiction": "US-CO",
        "name": "Colorado: over 12 h a workday or 40 h a week at 1.5x, whichever pays more",
        "daily_threshold": D("12"),
        "weekly_threshold": D("40"),
        "weekly_excludes_daily_ot": False,
        "greater_of_daily_or_weekly": True,
        "effective_from": dt.date(2020, 3, 16),
        "source": "Colorado Overtime and Minimum Pay Standards Order (COMPS Order #38), "
        "7 CCR 1103-1, Rule 4.1.1: over 40 h a workweek or 12 h a workday at 1.5x, whichever "
        "calculation results in the greater payment; no double time.",
    },
]

# --- standard deduction and earning types ------------------------------------------------------

DEDUCTION_TYPES = [
    {
        "code": "PF",
        "name": "Provident fund",
        "timing": "pre_tax",
        "calculation": "percent",
        "default_rate": D("0.10"),
        "employer_rate": D("0.10"),
        "source": "Recognised provident fund: employee contribution as a percent of pay with an "
        "equal employer contribution (Bangladesh Labour Act 2006 s.264; Income Tax Act 2023).",
    },
    {
        "code": "HEALTH",
        "name": "Health insurance",
        "timing": "post_tax",
        "calculation": "fixed",
        "source": "Company plan: a fixed premium per period, deducted after tax.",
    },
    {
        "code": "LOAN",
        "name": "Loan repayment",
        "timing": "post_tax",
        "calculation": "fixed",
        "has_balance": True,
        "source": "Employee loan or advance: fixed instalments until the balance is repaid.",
    },
]

EARNING_TYPES = [
    ("BONUS", "Bonus", "bonus", True),
    ("COMMISSION", "Commission", "commission", True),
    ("ALLOWANCE", "Taxable allowance", "allowance", True),
    ("ALLOWANCE_NT", "Non-taxable allowance", "allowance", False),
    ("REIMBURSEMENT", "Expense reimbursement", "reimbursement", False),
]


def reference_data_load(apps, schema_editor=None) -> None:
    """Create the shared (company-less) reference rows that are missing. Safe to run again."""
    TaxTable = apps.get_model("payroll", "TaxTable")
    TaxBracket = apps.get_model("payroll", "TaxBracket")
    FlatTax = apps.get_model("payroll", "FlatTax")
    OvertimeRule = apps.get_model("payroll", "OvertimeRule")
    DeductionType = apps.get_model("payroll", "DeductionType")
    EarningType = apps.get_model("payroll", "EarningType")

    for label, start, end, slabs, source in BD_TAX_YEARS:
        for category, threshold in BD_THRESHOLDS.items():
            table, created = TaxTable.objects.get_or_create(
                company=None,
                jurisdiction="BD",
                category=category,
                effective_from=start,
                defaults={
                    "name": f"Bangladesh income tax AY{label} ({CATEGORY_LABELS[category]})",
                    "effective_to": end,
                    "annual_exemption": D("0"),
                    "source": source,
                },
            )
            if created:
                TaxBracket.objects.bulk_create(
                    TaxBracket(table=table, lower=lower, upper=upper, rate=rate)
                    for lower, upper, rate in bd_brackets(threshold, slabs)
                )
    for jurisdiction, code, name, rate, employer, base, start, end, source in FLAT_TAXES:
        FlatTax.objects.get_or_create(
            company=None,
            jurisdiction=jurisdiction,
            code=code,
            effective_from=start,
            defaults={
                "name": name,
                "employee_rate": rate,
                "employer_rate": employer,
                "wage_base": base,
                "effective_to": end,
                "source": source,
            },
        )
    for spec in OVERTIME_RULES:
        spec = dict(spec)
        OvertimeRule.objects.get_or_create(
            company=None,
            jurisdiction=spec.pop("jurisdiction"),
            effective_from=spec.pop("effective_from"),
            defaults=spec,
        )
    for spec in DEDUCTION_TYPES:
        spec = dict(spec)
        DeductionType.objects.get_or_create(company=None, code=spec.pop("code"), defaults=spec)
    for code, name, category, taxable in EARNING_TYPES:
        EarningType.objects.get_or_create(
            company=None,
            code=code,
            defaults={"name": name, "category": category, "is_taxable": taxable},
        )


def reference_data_unload(apps, schema_editor=None) -> None:
    for name in ("TaxTable", "FlatTax", "OvertimeRule", "DeductionType", "EarningType"):
        model = apps.get_model("payroll", name)
        if name == "TaxTable":
            apps.get_model("payroll", "TaxBracket").objects.filter(table__company=None).delete()
        model.objects.filter(company=None).delete()
