"""Payroll data: employees and their pay, statutory reference data (tax tables, flat taxes,
overtime rules) with effective dates and sources, periods with their automation rule, runs and
payslips.

Writes go through payroll.services; the processor (payroll.processing) writes runs and payslips.
The database keeps the invariants that matter for money: one live payslip per employee and
period, one completed run per period, one active run per period, sane amounts and dates.

Statutory rows (tax tables, flat taxes, overtime rules, standard deduction and earning types)
have no company: they are shared by every company and shipped as data (migration 0002). A company
may add its own rows, which take precedence over the shared ones for the same jurisdiction.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q, Value

from core.models import Company

MONEY = {"max_digits": 18, "decimal_places": 2}
RATE = {"max_digits": 12, "decimal_places": 6}
# Rates are fractions: 0.100000 is 10 %. (The database checks the same bounds.)
FRACTION = [
    MinValueValidator(Decimal(0), message="A rate is a fraction from 0 to 1 (0.10 is 10 percent)."),
    MaxValueValidator(Decimal(1), message="A rate is a fraction from 0 to 1 (0.10 is 10 percent)."),
]
HOURS = {"max_digits": 7, "decimal_places": 2}


class PayType(models.TextChoices):
    SALARIED = "salaried", "Salaried"
    HOURLY = "hourly", "Hourly"


class TaxpayerCategory(models.TextChoices):
    """Bangladesh income tax thresholds differ by category (Finance Act 2024)."""

    GENERAL = "general", "General"
    WOMEN_SENIOR = "women_senior", "Woman, or aged 65 or over"
    THIRD_GENDER_DISABLED = "third_gender_disabled", "Third gender, or physically challenged"
    WAR_WOUNDED_FREEDOM_FIGHTER = (
        "war_wounded_freedom_fighter",
        "Gazetted war-wounded freedom fighter",
    )


class PeriodType(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    BI_WEEKLY = "bi_weekly", "Bi-weekly"
    SEMI_MONTHLY = "semi_monthly", "Semi-monthly"
    MONTHLY = "monthly", "Monthly"


PERIODS_PER_YEAR = {
    PeriodType.WEEKLY: 52,
    PeriodType.BI_WEEKLY: 26,
    PeriodType.SEMI_MONTHLY: 24,
    PeriodType.MONTHLY: 12,
}


def _effective_dates_constraint(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(effective_to__isnull=True) | Q(effective_to__gte=F("effective_from")),
        name=name,
    )


def _unique_per_company_or_shared(fields: list[str], name: str) -> list[models.UniqueConstraint]:
    """Unique among a company's own rows, and among the shared rows (no company)."""
    rest = [f for f in fields if f != "company"]
    return [
        models.UniqueConstraint(
            fields=fields, condition=Q(company__isnull=False), name=f"{name}_own"
        ),
        models.UniqueConstraint(
            fields=rest, condition=Q(company__isnull=True), name=f"{name}_shared"
        ),
    ]


# --- employees and their pay ---------------------------------------------------------------------


class Employee(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="employees")
    code = models.CharField(max_length=30, help_text="Employee number, unique in the company.")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, help_text="Payslips are emailed here.")
    department = models.ForeignKey(
        "accounting.Department",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="employees",
    )
    cost_center = models.ForeignKey(
        "accounting.CostCenter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="employees",
    )
    role = models.CharField(
        max_length=100, blank=True, help_text="Job role; role-based pay rates match on it."
    )
    pay_type = models.CharField(max_length=10, choices=PayType.choices, default=PayType.SALARIED)
    annual_salary = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Salaried: pay for a full year."
    )
    hourly_rate = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Hourly: base rate. Empty means the role's pay rate for the location.",
    )
    jurisdiction = models.CharField(
        "location",
        max_length=20,
        default="BD",
        help_text="Where the work is done: a country (BD, US) or a state (US-CA, US-NV). "
        "Decides the tax tables and the overtime rule.",
    )
    tax_category = models.CharField(
        "taxpayer category",
        max_length=40,
        choices=TaxpayerCategory.choices,
        default=TaxpayerCategory.GENERAL,
    )
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True, help_text="Last day worked, if left.")
    bank_name = models.CharField(max_length=100, blank=True)
    bank_branch = models.CharField(max_length=100, blank=True)
    bank_account_name = models.CharField(max_length=200, blank=True)
    bank_account_number = models.CharField(max_length=40, blank=True)
    bank_routing_number = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "code"], name="payroll_employee_code_unique"
            ),
            models.CheckConstraint(
                condition=Q(pay_type__in=PayType.values), name="payroll_employee_pay_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="payroll_employee_dates",
            ),
            models.CheckConstraint(
                condition=Q(annual_salary__isnull=True) | Q(annual_salary__gte=0),
                name="payroll_employee_salary_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(hourly_rate__isnull=True) | Q(hourly_rate__gte=0),
                name="payroll_employee_rate_not_negative",
            ),
            models.CheckConstraint(condition=~Q(code=""), name="payroll_employee_code_not_blank"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def is_employed_during(self, start: dt.date, end: dt.date) -> bool:
        return self.start_date <= end and (self.end_date is None or self.end_date >= start)


class PayRate(models.Model):
    """Role-based pay for a location, used when an employee has no rate of their own."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="pay_rates")
    role = models.CharField(max_length=100)
    jurisdiction = models.CharField("location", max_length=20)
    pay_type = models.CharField(max_length=10, choices=PayType.choices, default=PayType.HOURLY)
    annual_salary = models.DecimalField(**MONEY, null=True, blank=True)
    hourly_rate = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["company", "role", "jurisdiction", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "role", "jurisdiction", "pay_type", "effective_from"],
                name="payroll_pay_rate_unique",
            ),
            _effective_dates_constraint("payroll_pay_rate_dates"),
            models.CheckConstraint(
                condition=(Q(annual_salary__isnull=True) | Q(annual_salary__gte=0))
                & (Q(hourly_rate__isnull=True) | Q(hourly_rate__gte=0)),
                name="payroll_pay_rate_not_negative",
            ),
        ]

    def __str__(self) -> str:
        amount = self.hourly_rate if self.pay_type == PayType.HOURLY else self.annual_salary
        return f"{self.role} @ {self.jurisdiction}: {amount} from {self.effective_from}"


class EarningCategory(models.TextChoices):
    BONUS = "bonus", "Bonus"
    COMMISSION = "commission", "Commission"
    ALLOWANCE = "allowance", "Allowance"
    REIMBURSEMENT = "reimbursement", "Reimbursement"
    OTHER = "other", "Other"


class EarningType(models.Model):
    company = models.ForeignKey(
        Company,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="earning_types",
        help_text="Empty for the standard types every company shares.",
    )
    code = models.CharField(max_length=30)
    name = models.CharField(max_length=100)
    category = models.CharField(
        max_length=20, choices=EarningCategory.choices, default=EarningCategory.OTHER
    )
    is_taxable = models.BooleanField("taxable", default=True)
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            *_unique_per_company_or_shared(["company", "code"], "payroll_earning_type_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name}{'' if self.is_taxable else ' (non-taxable)'}"


class EmployeeEarning(models.Model):
    """An earning beside base pay: a one-off for a period (bonus, commission), or recurring
    (an allowance) between effective dates when no period is given."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="earnings")
    earning_type = models.ForeignKey(EarningType, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(
        "PayrollPeriod",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="earnings",
        help_text="The period of a one-off earning; empty for a recurring one.",
    )
    amount = models.DecimalField(**MONEY)
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True)
    memo = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["employee", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payroll_earning_positive"),
            models.CheckConstraint(
                condition=Q(period__isnull=False) | Q(effective_from__isnull=False),
                name="payroll_earning_period_or_dates",
            ),
        ]
        indexes = [models.Index(fields=["period", "employee"], name="payroll_earning_period")]

    def __str__(self) -> str:
        return f"{self.employee.code} {self.earning_type.code} {self.amount}"

    def clean(self):
        if self.period_id is None and self.effective_from is None:
            raise ValidationError(
                {
                    "effective_from": "Give the period of a one-off earning, or the day a "
                    "recurring earning starts (effective_from)."
                }
            )


class DeductionTiming(models.TextChoices):
    PRE_TAX = "pre_tax", "Pre-tax (reduces taxable pay)"
    POST_TAX = "post_tax", "Post-tax"


class DeductionCalculation(models.TextChoices):
    FIXED = "fixed", "Fixed amount per period"
    PERCENT = "percent", "Percent of gross pay"


class PercentOf(models.TextChoices):
    BASIC = "basic", "Basic pay (salary and hours)"
    GROSS = "gross", "Gross pay (all earnings)"


class DeductionType(models.Model):
    company = models.ForeignKey(
        Company,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deduction_types",
        help_text="Empty for the standard types every company shares.",
    )
    code = models.CharField(max_length=30)
    name = models.CharField(max_length=100)
    timing = models.CharField(
        max_length=10, choices=DeductionTiming.choices, default=DeductionTiming.POST_TAX
    )
    calculation = models.CharField(
        max_length=10, choices=DeductionCalculation.choices, default=DeductionCalculation.FIXED
    )
    default_amount = models.DecimalField(**MONEY, null=True, blank=True)
    default_rate = models.DecimalField(
        **RATE,
        null=True,
        blank=True,
        validators=FRACTION,
        help_text="A fraction: 0.100000 is 10%.",
    )
    annual_cap = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Most the employee pays in a tax year."
    )
    percent_of = models.CharField(
        max_length=10,
        choices=PercentOf.choices,
        default=PercentOf.BASIC,
        help_text="Percent deductions: the base they are a percent of.",
    )
    employer_rate = models.DecimalField(
        **RATE,
        default=0,
        validators=FRACTION,
        help_text="Employer's share: for a percent deduction a fraction of the same base "
        "(0.100000 pays 10%); for a fixed one a fraction of the employee's amount (1 matches it).",
    )
    has_balance = models.BooleanField(
        default=False, help_text="A loan: repayments stop when the employee's balance is paid."
    )
    is_active = models.BooleanField("active", default=True)
    source = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            *_unique_per_company_or_shared(
                ["company", "code"], "payroll_deduction_type_code_unique"
            ),
            models.CheckConstraint(
                condition=Q(timing__in=DeductionTiming.values), name="payroll_deduction_timing"
            ),
            models.CheckConstraint(
                condition=Q(calculation__in=DeductionCalculation.values),
                name="payroll_deduction_calculation",
            ),
            models.CheckConstraint(
                condition=Q(employer_rate__gte=0),
                name="payroll_deduction_employer_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(employer_rate__lte=1)
                & (Q(default_rate__isnull=True) | Q(default_rate__gte=0, default_rate__lte=1)),
                name="payroll_deduction_rates_fractions",
            ),
            models.CheckConstraint(
                condition=Q(annual_cap__isnull=True) | Q(annual_cap__gt=0),
                name="payroll_deduction_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class EmployeeDeduction(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="deductions")
    deduction_type = models.ForeignKey(DeductionType, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Fixed: per period. Empty uses the type's."
    )
    rate = models.DecimalField(
        **RATE,
        null=True,
        blank=True,
        validators=FRACTION,
        help_text="Percent: a fraction (0.100000 is 10%). Empty uses the type's.",
    )
    balance = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Loan: what is still owed."
    )
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["employee", "deduction_type"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(amount__isnull=True) | Q(amount__gte=0))
                & (Q(rate__isnull=True) | Q(rate__gte=0))
                & (Q(balance__isnull=True) | Q(balance__gte=0)),
                name="payroll_employee_deduction_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(rate__isnull=True) | Q(rate__lte=1),
                name="payroll_employee_deduction_rate_fraction",
            ),
        ]
        indexes = [models.Index(fields=["employee"], name="payroll_emp_deduction_employee")]

    def __str__(self) -> str:
        return f"{self.employee_id}: {self.deduction_type_id}"


# --- statutory reference data ------------------------------------------------------------------


class TaxTable(models.Model):
    """Progressive income tax on annualised taxable pay. Brackets are half-open: `lower`
    inclusive, `upper` exclusive. A category's tax-free threshold is its first nil bracket."""

    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.PROTECT, related_name="tax_tables"
    )
    jurisdiction = models.CharField(max_length=20, help_text="BD, US, US-CA ...")
    category = models.CharField(
        "taxpayer category / filing status",
        max_length=40,
        choices=TaxpayerCategory.choices,
        default=TaxpayerCategory.GENERAL,
    )
    name = models.CharField(max_length=200)
    effective_from = models.DateField(help_text="First day of the tax (income) year it covers.")
    effective_to = models.DateField(null=True, blank=True)
    annual_exemption = models.DecimalField(
        **MONEY, default=0, help_text="Subtracted from projected annual taxable pay."
    )
    source = models.TextField(help_text="Where the figures come from (act, section, URL).")
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["jurisdiction", "category", "-effective_from"]
        constraints = [
            *_unique_per_company_or_shared(
                ["company", "jurisdiction", "category", "effective_from"],
                "payroll_tax_table_unique",
            ),
            _effective_dates_constraint("payroll_tax_table_dates"),
            models.CheckConstraint(
                condition=Q(annual_exemption__gte=0), name="payroll_tax_table_exemption"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TaxBracket(models.Model):
    table = models.ForeignKey(TaxTable, on_delete=models.CASCADE, related_name="brackets")
    lower = models.DecimalField(**MONEY, help_text="Inclusive.")
    upper = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Exclusive; empty: no limit."
    )
    rate = models.DecimalField(**RATE, validators=FRACTION, help_text="A fraction: 0.050000 is 5%.")

    class Meta:
        ordering = ["table", "lower"]
        constraints = [
            models.UniqueConstraint(fields=["table", "lower"], name="payroll_tax_bracket_unique"),
            models.CheckConstraint(
                condition=Q(upper__isnull=True) | Q(upper__gt=F("lower")),
                name="payroll_tax_bracket_bounds",
            ),
            models.CheckConstraint(
                condition=Q(lower__gte=0) & Q(rate__gte=0) & Q(rate__lte=1),
                name="payroll_tax_bracket_rate",
            ),
        ]

    def __str__(self) -> str:
        upper = f"{self.upper:,}" if self.upper is not None else "..."
        return f"{self.lower:,} - {upper}: {self.rate * 100:.2f}%"


class FlatTax(models.Model):
    """A flat-rate tax on taxable pay (after pre-tax deductions) up to an annual wage base
    (social security style), with an optional employer share on the same wages."""

    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.PROTECT, related_name="flat_taxes"
    )
    jurisdiction = models.CharField(max_length=20)
    code = models.CharField(max_length=30)
    name = models.CharField(max_length=200)
    employee_rate = models.DecimalField(**RATE, validators=FRACTION)
    employer_rate = models.DecimalField(**RATE, default=0, validators=FRACTION)
    wage_base = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Annual wages taxed at most; empty: no cap."
    )
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)
    source = models.TextField()
    is_active = models.BooleanField("active", default=True)

    class Meta:
        verbose_name_plural = "flat taxes"
        ordering = ["jurisdiction", "code", "-effective_from"]
        constraints = [
            *_unique_per_company_or_shared(
                ["company", "jurisdiction", "code", "effective_from"], "payroll_flat_tax_unique"
            ),
            _effective_dates_constraint("payroll_flat_tax_dates"),
            models.CheckConstraint(
                condition=Q(employee_rate__gte=0, employee_rate__lte=1)
                & Q(employer_rate__gte=0, employer_rate__lte=1)
                & (Q(wage_base__isnull=True) | Q(wage_base__gt=0)),
                name="payroll_flat_tax_rates",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.effective_from:%Y})"


class OvertimeRule(models.Model):
    """Overtime for a jurisdiction. Each hour is classified once and paid the highest premium."""

    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.PROTECT, related_name="overtime_rules"
    )
    jurisdiction = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    daily_threshold = models.DecimalField(
        **HOURS, null=True, blank=True, help_text="Hours a day after which daily overtime starts."
    )
    daily_double_threshold = models.DecimalField(
        **HOURS, null=True, blank=True, help_text="Hours a day after which double time starts."
    )
    weekly_threshold = models.DecimalField(
        **HOURS, null=True, blank=True, help_text="Hours a workweek after which overtime starts."
    )
    seventh_day = models.BooleanField(
        default=False,
        help_text="7th consecutive day worked in the workweek: the first hours at the overtime "
        "rate, beyond 'seventh day double after' at double time.",
    )
    seventh_day_double_after = models.DecimalField(**HOURS, default=8)
    weekly_excludes_daily_ot = models.BooleanField(
        default=True, help_text="Hours paid as daily overtime do not count towards the week."
    )
    greater_of_daily_or_weekly = models.BooleanField(
        default=False, help_text="Pay whichever of the daily or weekly calculation pays more."
    )
    daily_requires_rate_below_min_wage_multiple = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Daily overtime only when the rate is below this multiple of the minimum wage.",
    )
    ot_multiplier = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("1.5"))
    dt_multiplier = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("2"))
    minimum_wage = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)
    source = models.TextField()
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["jurisdiction", "-effective_from"]
        constraints = [
            *_unique_per_company_or_shared(
                ["company", "jurisdiction", "effective_from"], "payroll_overtime_rule_unique"
            ),
            _effective_dates_constraint("payroll_overtime_rule_dates"),
            models.CheckConstraint(
                condition=Q(ot_multiplier__gte=1) & Q(dt_multiplier__gte=F("ot_multiplier")),
                name="payroll_overtime_rule_multipliers",
            ),
            models.CheckConstraint(
                condition=Q(daily_double_threshold__isnull=True)
                | Q(daily_double_threshold__gt=F("daily_threshold")),
                name="payroll_overtime_rule_double_after_daily",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TimeEntry(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="time_entries")
    day = models.DateField()
    hours = models.DecimalField(**HOURS)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name_plural = "time entries"
        ordering = ["employee", "day"]
        constraints = [
            models.UniqueConstraint(fields=["employee", "day"], name="payroll_time_entry_unique"),
            models.CheckConstraint(
                condition=Q(hours__gte=0) & Q(hours__lte=24), name="payroll_time_entry_hours"
            ),
        ]
        indexes = [models.Index(fields=["company", "day"], name="payroll_time_entry_day")]

    def __str__(self) -> str:
        return f"{self.employee_id} {self.day}: {self.hours} h"


# --- periods, automation, runs, payslips -------------------------------------------------------


class PaySchedule(models.Model):
    """How often a company pays: generates upcoming periods with their pay date and rule."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="pay_schedules")
    name = models.CharField(max_length=100)
    frequency = models.CharField(max_length=20, choices=PeriodType.choices)
    anchor_date = models.DateField(
        help_text="First day of the first period. Semi-monthly periods run 1-15 and 16-end."
    )
    pay_day_offset = models.PositiveSmallIntegerField(
        default=0, help_text="Pay date = period end + this many days."
    )
    automation_enabled = models.BooleanField(default=False)
    automation_rule = models.JSONField(
        default=dict, blank=True, help_text="Rule given to generated periods."
    )
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["company", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "name"], name="payroll_schedule_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_frequency_display()})"


class PeriodStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class PayrollPeriod(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="payroll_periods")
    schedule = models.ForeignKey(
        PaySchedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="periods"
    )
    name = models.CharField(max_length=100, blank=True)
    start_date = models.DateField()
    end_date = models.DateField()
    period_type = models.CharField(
        max_length=20, choices=PeriodType.choices, default=PeriodType.MONTHLY
    )
    pay_date = models.DateField()
    status = models.CharField(
        max_length=20, choices=PeriodStatus.choices, default=PeriodStatus.DRAFT
    )
    automation_enabled = models.BooleanField(default=False)
    automation_rule = models.JSONField(
        default=dict,
        blank=True,
        help_text='Exactly one of {"run_on_date": "YYYY-MM-DD"}, {"days_before_end": N}, '
        '{"cron": "m h dom mon dow"} (cron in the company\'s time zone).',
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="payroll_period",
        editable=False,
        help_text="The beat entry of a cron rule.",
    )
    # Who is processing it now, until when (the lease), and its last sign of life.
    lock_token = models.CharField(max_length=64, blank=True, editable=False)
    lock_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    processing_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "-start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=F("start_date")), name="payroll_period_dates"
            ),
            models.CheckConstraint(
                condition=Q(status__in=PeriodStatus.values), name="payroll_period_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(period_type__in=PeriodType.values), name="payroll_period_type_valid"
            ),
            models.UniqueConstraint(
                fields=["company", "period_type", "start_date"],
                condition=~Q(status="cancelled"),
                name="payroll_period_live_unique",
            ),
        ]
        indexes = [
            # What auto_run_payroll (active, failed) and the stale-lock cleanup (processing)
            # select.
            models.Index(
                fields=["status", "automation_enabled"],
                condition=Q(status__in=["active", "failed", "processing"]),
                name="payroll_period_workable",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_period_type_display()} {self.start_date}..{self.end_date}"

    @property
    def periods_per_year(self) -> int:
        return PERIODS_PER_YEAR[self.period_type]

    def is_due_for_automation(self, today: dt.date | None = None, *, now=None) -> bool:
        """True if automation is on, the period is active (or failed: ready to run again) and
        its rule says it is time. "Today" is today in the company's time zone; a cron rule is
        due once it has fired since the period began (with `today` given: on any day up to and
        including `today`)."""
        from payroll.automation import rule_is_due

        if not self.automation_enabled or self.status not in (
            PeriodStatus.ACTIVE,
            PeriodStatus.FAILED,
        ):
            return False
        return rule_is_due(self, today=today, now=now)

    def automation_next_run(self, *, now=None):
        """When the rule makes the period due next (a date or an aware datetime), or None."""
        from payroll.automation import rule_next_run

        if not self.automation_enabled or self.status not in (
            PeriodStatus.DRAFT,
            PeriodStatus.ACTIVE,
            PeriodStatus.FAILED,
        ):
            return None
        return rule_next_run(self, now=now)


class RunTrigger(models.TextChoices):
    BEAT = "beat", "Schedule (beat)"
    MANUAL = "manual", "Manual (admin)"
    API = "api", "API"
    COMMAND = "command", "Command"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    REOPENED = "reopened", "Reopened (payslips voided, entry reversed)"


class PayrollRun(models.Model):
    """One processing attempt of a period. A failed attempt stays as history; at most one is
    running and at most one is completed (until reopened) per period."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    period = models.ForeignKey(PayrollPeriod, on_delete=models.PROTECT, related_name="runs")
    attempt = models.PositiveIntegerField(default=1)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    forced = models.BooleanField(default=False)
    mail_payslips = models.BooleanField(
        default=True,
        help_text="Email the payslips when the run commits (off for back-dated demo runs).",
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    started_at = models.DateTimeField()
    picked_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker took the run to process it (once)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    # Progress: employees done out of total; chunks of a fanned-out run.
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    payslip_count = models.PositiveIntegerField(default=0)
    warning_count = models.PositiveIntegerField(default=0)
    gross_total = models.DecimalField(**MONEY, default=0)
    taxes_total = models.DecimalField(**MONEY, default=0)
    deductions_total = models.DecimalField(**MONEY, default=0)
    employer_total = models.DecimalField(**MONEY, default=0)
    net_total = models.DecimalField(**MONEY, default=0)
    journal_entry = models.ForeignKey(
        "accounting.JournalEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    error = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"],
                condition=Q(status="running"),
                name="payroll_run_one_running_per_period",
            ),
            models.UniqueConstraint(
                fields=["period"],
                condition=Q(status="completed"),
                name="payroll_run_one_completed_per_period",
            ),
            models.UniqueConstraint(fields=["period", "attempt"], name="payroll_run_attempt"),
            models.CheckConstraint(
                condition=Q(done__lte=F("total")) & Q(chunks_done__lte=F("chunks_total")),
                name="payroll_run_progress",
            ),
        ]
        indexes = [models.Index(fields=["company", "-started_at"], name="payroll_run_company")]

    def __str__(self) -> str:
        return f"Run {self.attempt} of {self.period}"

    @property
    def progress_percent(self) -> int:
        return 100 if self.total == 0 else int(self.done * 100 / self.total)


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PayrollRunChunk(models.Model):
    """A slice of a fanned-out run's employees, claimed by one worker at a time."""

    run = models.ForeignKey(PayrollRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    employee_ids = models.JSONField(default=list)
    status = models.CharField(
        max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="payroll_chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.run} chunk {self.index}"


class PayslipStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    ISSUED = "issued", "Issued"
    VOID = "void", "Void"


LIVE_PAYSLIP = ~Q(status="void")
NET_TOLERANCE = Value(Decimal("0.001"))


class Payslip(models.Model):
    # Indexes are chosen for the write path (a run writes thousands of rows at once): the
    # composite indexes below lead with employee, period and run, so their foreign keys need
    # none of their own.
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    employee = models.ForeignKey(
        Employee, on_delete=models.PROTECT, related_name="payslips", db_index=False
    )
    period = models.ForeignKey(
        PayrollPeriod, on_delete=models.PROTECT, related_name="payslips", db_index=False
    )
    run = models.ForeignKey(
        PayrollRun, on_delete=models.PROTECT, related_name="payslips", db_index=False
    )
    # Copied from the period so year-to-date and per-employee history read one table.
    period_start = models.DateField()
    period_end = models.DateField()
    pay_date = models.DateField()
    tax_year_start = models.DateField(
        help_text="First day of the tax year the payslip belongs to "
        "(reference_data.payslip_tax_year); year-to-date figures are selected by it."
    )
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=12, choices=PayslipStatus.choices, default=PayslipStatus.PENDING
    )
    pay_type = models.CharField(max_length=10, choices=PayType.choices)
    department = models.ForeignKey(
        "accounting.Department",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    cost_center = models.ForeignKey(
        "accounting.CostCenter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    regular_hours = models.DecimalField(**HOURS, default=0)
    overtime_hours = models.DecimalField(**HOURS, default=0)
    double_time_hours = models.DecimalField(**HOURS, default=0)
    gross = models.DecimalField(**MONEY)
    taxable = models.DecimalField(**MONEY)
    income_tax = models.DecimalField(**MONEY, default=0)
    other_taxes = models.DecimalField(**MONEY, default=0)
    taxes = models.DecimalField(**MONEY, help_text="Income tax plus flat taxes (employee).")
    pre_tax_deductions = models.DecimalField(**MONEY, default=0)
    post_tax_deductions = models.DecimalField(**MONEY, default=0)
    deductions = models.DecimalField(**MONEY, help_text="Pre-tax plus post-tax deductions.")
    employer_contributions = models.DecimalField(**MONEY, default=0)
    net = models.DecimalField(**MONEY)
    # Year-to-date (tax year) figures including this payslip, as printed on it.
    ytd_gross = models.DecimalField(**MONEY, default=0)
    ytd_taxable = models.DecimalField(**MONEY, default=0)
    ytd_taxes = models.DecimalField(**MONEY, default=0)
    ytd_income_tax = models.DecimalField(**MONEY, default=0)
    ytd_deductions = models.DecimalField(**MONEY, default=0)
    ytd_net = models.DecimalField(**MONEY, default=0)
    warnings = models.JSONField(default=list, blank=True)
    carried = models.JSONField(
        default=dict,
        blank=True,
        help_text="Taxes or deductions that could not be collected without negative net pay.",
    )
    created_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["period", "employee"]
        constraints = [
            models.UniqueConstraint(
                fields=["employee", "period"],
                condition=LIVE_PAYSLIP,
                name="payroll_payslip_one_live_per_employee_period",
            ),
            models.CheckConstraint(
                condition=Q(gross__gte=0) & Q(net__gte=0) & Q(taxes__gte=0) & Q(deductions__gte=0),
                name="payroll_payslip_amounts_not_negative",
            ),
            # Net = gross - taxes - deductions. Written as a band narrower than a cent: exact
            # for two-place amounts on PostgreSQL, and safe where SQLite adds in floating point.
            models.CheckConstraint(
                condition=Q(net__gte=F("gross") - F("taxes") - F("deductions") - NET_TOLERANCE)
                & Q(net__lte=F("gross") - F("taxes") - F("deductions") + NET_TOLERANCE),
                name="payroll_payslip_net_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(status__in=PayslipStatus.values), name="payroll_payslip_status_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["employee", "period_start", "period_end"], name="payroll_payslip_emp_dates"
            ),
            models.Index(
                fields=["status"],
                condition=Q(status__in=["pending", "processing"]),
                name="payroll_payslip_unfinished",
            ),
            models.Index(fields=["run"], name="payroll_payslip_run"),
            # Year-to-date and carried amounts: a company's payslips from a date on.
            models.Index(fields=["company", "period_start"], name="payroll_payslip_company"),
            models.Index(
                fields=["company", "tax_year_start", "employee"], name="payroll_payslip_tax_year"
            ),
            models.Index(fields=["period", "status"], name="payroll_payslip_period"),
        ]

    def __str__(self) -> str:
        return f"Payslip {self.employee_id} {self.period_start}..{self.period_end}"


class LineKind(models.TextChoices):
    EARNING = "earning", "Earning"
    PRE_TAX_DEDUCTION = "pre_tax", "Pre-tax deduction"
    TAX = "tax", "Tax"
    POST_TAX_DEDUCTION = "post_tax", "Post-tax deduction"
    EMPLOYER = "employer", "Employer contribution"
    EMPLOYER_TAX = "employer_tax", "Employer tax"


class PayslipLine(models.Model):
    # The unique (payslip, line_no) index serves the foreign key too.
    payslip = models.ForeignKey(
        Payslip, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    line_no = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=12, choices=LineKind.choices)
    code = models.CharField(max_length=40)
    description = models.CharField(max_length=200)
    quantity = models.DecimalField(
        max_digits=18,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Hours, days employed, or the wages a flat tax applied to.",
    )
    rate = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    amount = models.DecimalField(**MONEY)
    taxable = models.BooleanField(default=True)
    account_role = models.CharField(
        max_length=40,
        help_text="The ledger role the line posts to (salary_expense, payroll_tax_payable, "
        "deductions_payable, employee_loans, employer_contributions_payable).",
    )
    employee_deduction = models.ForeignKey(
        EmployeeDeduction,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="The deduction a deduction or employer line comes from (loan balances).",
    )

    class Meta:
        ordering = ["payslip", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["payslip", "line_no"], name="payroll_payslip_line_no"),
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"
