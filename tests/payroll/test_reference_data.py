"""The statutory data shipped by migration 0002: as data, with effective dates and sources."""

from datetime import date
from decimal import Decimal

import pytest

from payroll.models import DeductionType, EarningType, FlatTax, OvertimeRule, TaxTable

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("category", "threshold"),
    [
        ("general", "350000"),
        ("women_senior", "400000"),
        ("third_gender_disabled", "475000"),
        ("war_wounded_freedom_fighter", "500000"),
    ],
)
def test_bangladesh_thresholds_are_the_first_nil_bracket(category, threshold):
    for start, top_rate in ((date(2023, 7, 1), D("0.25")), (date(2024, 7, 1), D("0.30"))):
        table = TaxTable.objects.get(
            company=None, jurisdiction="BD", category=category, effective_from=start
        )
        brackets = list(table.brackets.order_by("lower").values_list("lower", "upper", "rate"))
        assert brackets[0] == (D("0.00"), D(threshold), D("0"))
        assert brackets[1] == (D(threshold), D(threshold) + 100000, D("0.05"))
        assert brackets[-1][1] is None and brackets[-1][2] == top_rate
        assert all(b[1] == n[0] for b, n in zip(brackets, brackets[1:], strict=False))
        assert "Finance Act" in table.source


def test_assessment_years_do_not_overlap():
    tables = TaxTable.objects.filter(company=None, jurisdiction="BD", category="general")
    assert list(
        tables.order_by("effective_from").values_list("effective_from", "effective_to")
    ) == [
        (date(2023, 7, 1), date(2024, 6, 30)),
        (date(2024, 7, 1), None),
    ]


def test_social_security_wage_bases():
    rows = FlatTax.objects.filter(company=None, code="OASDI").order_by("effective_from")
    assert [
        (r.effective_from.year, r.wage_base, r.employee_rate, r.employer_rate) for r in rows
    ] == [
        (2025, D("176100.00"), D("0.062000"), D("0.062000")),
        (2026, D("184500.00"), D("0.062000"), D("0.062000")),
    ]
    assert all("ssa.gov" in r.source for r in rows)


def test_overtime_rules_by_jurisdiction():
    rules = {r.jurisdiction: r for r in OvertimeRule.objects.filter(company=None)}
    assert set(rules) == {"US", "US-CA", "US-AK", "US-NV", "US-CO"}
    assert rules["US"].weekly_threshold == 40 and rules["US"].daily_threshold is None
    ca = rules["US-CA"]
    assert (ca.daily_threshold, ca.daily_double_threshold, ca.seventh_day) == (8, 12, True)
    nv = rules["US-NV"]
    assert (nv.daily_requires_rate_below_min_wage_multiple, nv.minimum_wage) == (
        D("1.5000"),
        D("12.0000"),
    )
    assert rules["US-CO"].greater_of_daily_or_weekly and rules["US-CO"].daily_threshold == 12
    assert all(r.source for r in rules.values())


def test_standard_deduction_and_earning_types():
    pf = DeductionType.objects.get(company=None, code="PF")
    assert (pf.timing, pf.calculation, pf.default_rate, pf.employer_rate) == (
        "pre_tax",
        "percent",
        D("0.100000"),
        D("0.100000"),
    )
    health = DeductionType.objects.get(company=None, code="HEALTH")
    assert (health.timing, health.calculation) == ("post_tax", "fixed")
    assert DeductionType.objects.get(company=None, code="LOAN").has_balance
    assert not EarningType.objects.get(company=None, code="ALLOWANCE_NT").is_taxable
    assert EarningType.objects.get(company=None, code="BONUS").is_taxable
