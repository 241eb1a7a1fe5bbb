"""Gross-to-net payroll engine: pure Python, no Django, no ORM, Decimal throughout.

The processor turns database rows into the frozen input records below and calls
`compute_payslip(employee, period)` once per employee; everything here is deterministic and
side-effect free, so it can run for 10,000 employees in a few hundred milliseconds and be
property-tested.

Inputs (all money and hours are `Decimal` or `int`; floats are refused by Decimal arithmetic;
every *rate* is a fraction: 0.062 means 6.2 %, 0.10 means 10 %):

- `Bracket(lower, upper, rate)`: half-open `[lower, upper)`, `upper=None` for the top bracket.
- `ProgressiveTax(code, name, brackets, annual_exemption=0)`: an annual bracket table. Thresholds
  by taxpayer category (women, seniors, ...) are expressed by the caller picking the table for the
  category; `annual_exemption` is subtracted from the projected annual income before the brackets.
- `FlatTax(code, name, rate, wage_base=None, employer_rate=0)`: `rate` x this period's wages,
  where only wages up to the annual `wage_base` count (year-to-date wages from
  `YearToDate.flat_wages[code]`); `employer_rate` adds an employer line on the same wages.
- `OvertimeRule(...)`: see `classify_hours`.
- `TimeEntry(day, hours)`; several entries on one day are added up.
- `Earning(code, name, amount, taxable=True, recurring=False)`: bonus, commission (one-off),
  allowances (recurring, taxable or not).
- `Deduction(code, name, pre_tax, method, value, annual_cap=None, taken_ytd=None,
  employer_rate=None, balance=None, percent_of="basic")`:
  `method="fixed"`: `value` is an amount per period; `method="percent"`: `value` is a fraction of
  the base (`percent_of="basic"`: pay from salary and time entries; `"gross"`: all earnings).
  `annual_cap` limits the year's total with `taken_ytd` (None: looked up in
  `YearToDate.deductions[code]`, else 0); `balance` (loans) limits it to what is still owed.
  `employer_rate` (employer share, e.g. provident fund): for a percent deduction the employer pays
  `employer_rate` x the same base; for a fixed one, `employer_rate` x the employee amount (a match).
  In both cases the share shrinks in proportion when the cap or balance shrinks the employee part.
- `YearToDate(taxable, tax_withheld, flat_wages, deductions)`: this tax year before this period:
  `taxable` = the sum of earlier `PayResult.taxable`; `tax_withheld` = the progressive tax only
  (earlier tax lines whose code is the `ProgressiveTax.code`); `flat_wages[code]` = the sum of
  earlier flat-tax lines' `quantity`; `deductions[code]` = the sum of earlier deduction lines.
- `EmployeeInput(employee_id, pay_type, annual_salary, hourly_rate, start_date, end_date,
  time_entries, earnings, deductions, ytd, overtime, progressive_tax, flat_taxes, min_wage,
  arrears)`.
  `arrears`: what earlier periods carried (pass `PayResult.carried` back as it is): a
  deduction's arrears are collected with it (within its cap and balance), a flat tax's with it;
  the progressive tax's are ignored because re-projecting the year collects them anyway
  (they lower the tax withheld so far); arrears whose code matches nothing this period are
  collected as post-tax deductions after the others.
- `PeriodInput(start, end, periods_per_year, remaining_periods, workweek_start=0)`:
  `remaining_periods` counts this period (12 in the first month of a monthly year, 1 in the last);
  `workweek_start` is the weekday the fixed 168-hour workweek starts on (0 = Monday).

Output: `PayResult(gross, pre_tax_deductions, taxable, taxes, deductions, employer_contributions,
net, lines, warnings, carried, hours)` with `PayLine(kind, code, name, amount, quantity, rate)`;
`kind` is "earning", "tax", "deduction" or "employer". Invariants (property-tested):
`gross` = sum of earning lines, `taxes` = sum of tax lines, `deductions` = sum of deduction lines
(pre- and post-tax, employee side), `employer_contributions` = sum of employer lines (outside net),
`net` = gross - taxes - deductions >= 0. `carried` maps a tax or deduction code to the part that
could not be collected this period (give it back as the next period's `arrears`); `hours` has
"regular", "overtime" and "double_time" paid this period. Flat-tax lines carry the wages subject
to the tax in `quantity` (add them to the year-to-date `flat_wages`); hour lines carry hours and
the hourly rate paid; a prorated salary line carries the days employed. Line codes made by the
engine: "SALARY", "REG", "OT", "DT"; the others are the input codes (a deduction or flat tax with
an employer share has a "deduction"/"tax" line and an "employer" line under the same code).
Errors in the input raise `EngineInputError` (a ValueError with a stable `code` and `field`);
floats raise TypeError.

Rules, and the choices made where the reference is silent:

- Nobody is paid, or projected, for a period they are not employed in (a warning says so);
  earnings given for it are still paid (e.g. a bonus after leaving).
- Salary: `annual_salary / periods_per_year`, prorated for a joiner or leaver inside the period by
  calendar days employed / calendar days in the period (one rounding, half-up, on the result).
  Salaried employees are treated as exempt: their time entries are not paid.
- Hourly: pay comes from time entries dated inside the period and the employment dates. Entries
  from the days of the period's first workweek that fall before the period start may be passed
  too: they count toward that workweek's thresholds and are not paid again (the period pays the
  week-to-date classification minus what the days before the period already earned, so a week
  split across two periods is paid exactly as a whole week would be; under Colorado's greater-of
  this can move hours already paid as regular into overtime, so a line may carry negative
  regular hours balanced by more overtime hours). Other entries are ignored.
  Regular, overtime and double-time lines are each hours x rate x multiplier, rounded half-up.
- Overtime: see `classify_hours`. Each hour is classified once at the highest premium.
- Taxable pay = taxable earnings - pre-tax deductions (never below zero: a pre-tax deduction
  larger than the taxable pay left is cut and the rest carried).
- Progressive tax is annualised as in the reference (`period_progressive_tax`). "Regular" taxable
  pay for the projection is the full-period (unprorated) salary or this period's time pay, plus
  recurring taxable earnings, minus the recurring pre-tax deductions on that pay (kept within
  their annual caps). In the employee's last period (end date inside it) nothing is projected and
  the whole remaining annual tax is due now.
- Flat taxes apply to taxable pay (after pre-tax deductions), up to the annual wage base.
- Collection order: pre-tax deductions are taken first (by definition they come before tax),
  then taxes (progressive, then flat, in order), then post-tax deductions in the order given.
  Whatever cannot be collected without making net pay negative goes to `carried` with a warning.
- Amounts are rounded half-up to cents per line; sums of lines are exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

__all__ = [
    "Bracket",
    "DEDUCTION",
    "DOUBLE_TIME",
    "DOUBLE_TIME_CODE",
    "Deduction",
    "EARNING",
    "EMPLOYER",
    "Earning",
    "EmployeeInput",
    "EngineInputError",
    "FlatTax",
    "OVERTIME",
    "OVERTIME_CODE",
    "OvertimeRule",
    "PayLine",
    "PayResult",
    "PeriodInput",
    "ProgressiveTax",
    "REGULAR",
    "REGULAR_CODE",
    "SALARY_CODE",
    "TAX",
    "TimeEntry",
    "YearToDate",
    "annual_progressive_tax",
    "classify_hours",
    "compute_payslip",
    "period_progressive_tax",
    "projected_annual_taxable",
]

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_D0 = Decimal(0)
_D24 = Decimal(24)

REGULAR = "regular"
OVERTIME = "overtime"
DOUBLE_TIME = "double_time"

# Codes of the lines the engine makes itself (earnings, taxes and deductions use the input codes).
SALARY_CODE = "SALARY"
REGULAR_CODE = "REG"
OVERTIME_CODE = "OT"
DOUBLE_TIME_CODE = "DT"

EARNING = "earning"
TAX = "tax"
DEDUCTION = "deduction"
EMPLOYER = "employer"


class EngineInputError(ValueError):
    """The input cannot be computed. `code` is stable; `field` names the offending input."""

    def __init__(self, message: str, *, code: str = "payroll_input_invalid", field: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def _no_float(owner: str, **values) -> None:
    for name, value in values.items():
        if isinstance(value, float):
            raise TypeError(f"{owner}: {name} must be a Decimal, not a float ({value!r})")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Bracket:
    lower: Decimal
    upper: Decimal | None
    rate: Decimal


@dataclass(frozen=True, slots=True)
class ProgressiveTax:
    code: str
    name: str
    brackets: tuple[Bracket, ...]
    annual_exemption: Decimal = _D0

    def __post_init__(self):
        brackets = tuple(sorted(self.brackets, key=lambda b: b.lower))
        object.__setattr__(self, "brackets", brackets)
        previous_upper = None
        for i, b in enumerate(brackets):
            _no_float(f"tax table {self.code}", lower=b.lower, upper=b.upper, rate=b.rate)
            if not 0 <= b.rate <= 1 or b.lower < 0:
                raise EngineInputError(
                    f"tax table {self.code}: bracket from {b.lower} needs a rate between 0 and 1 "
                    "and a bound not below zero",
                    code="tax_table_invalid",
                    field="brackets",
                )
            if b.upper is not None and b.upper <= b.lower:
                raise EngineInputError(
                    f"tax table {self.code}: bracket from {b.lower} ends at {b.upper}",
                    code="tax_table_invalid",
                    field="brackets",
                )
            if b.upper is None and i != len(brackets) - 1:
                raise EngineInputError(
                    f"tax table {self.code}: only the top bracket may be open-ended",
                    code="tax_table_invalid",
                    field="brackets",
                )
            if previous_upper is not None and b.lower < previous_upper:
                raise EngineInputError(
                    f"tax table {self.code}: brackets overlap at {b.lower}",
                    code="tax_table_invalid",
                    field="brackets",
                )
            previous_upper = b.upper
        if self.annual_exemption < 0:
            raise EngineInputError(
                f"tax table {self.code}: negative annual exemption",
                code="tax_table_invalid",
                field="annual_exemption",
            )


@dataclass(frozen=True, slots=True)
class FlatTax:
    code: str
    name: str
    rate: Decimal
    wage_base: Decimal | None = None
    employer_rate: Decimal = _D0

    def __post_init__(self):
        _no_float(
            f"flat tax {self.code}",
            rate=self.rate,
            wage_base=self.wage_base,
            employer_rate=self.employer_rate,
        )
        if not 0 <= self.rate <= 1 or not 0 <= self.employer_rate <= 1:
            raise EngineInputError(
                f"flat tax {self.code}: rates must be fractions between 0 and 1",
                code="flat_tax_invalid",
                field="rate",
            )
        if self.wage_base is not None and self.wage_base < 0:
            raise EngineInputError(
                f"flat tax {self.code}: negative wage base",
                code="flat_tax_invalid",
                field="wage_base",
            )


@dataclass(frozen=True, slots=True)
class OvertimeRule:
    """How a jurisdiction turns worked hours into regular, overtime and double-time hours.

    - `daily_threshold`: hours in a workday beyond it are overtime (None: no daily rule).
    - `daily_double_threshold`: hours in a workday beyond it are double time (California 12).
    - `weekly_threshold`: hours in the workweek beyond it are overtime (None: no weekly rule).
    - `seventh_day`: on the seventh consecutive day worked in the workweek, the first
      `seventh_day_double_after` hours are overtime and the rest double time (California).
    - `weekly_excludes_daily_ot`: the weekly count takes only hours not already paid as daily
      overtime (California, Alaska; the FLSA credit). False: every worked hour counts.
    - `daily_requires_rate_below_min_wage_multiple`: daily overtime only when the hourly rate is
      below this multiple of the minimum wage (Nevada: 1.5).
    - `greater_of_daily_or_weekly`: compute the week by the daily rule alone and by the weekly
      rule alone and pay whichever pays more (Colorado; ties go to the daily calculation).
    """

    code: str
    daily_threshold: Decimal | None = None
    daily_double_threshold: Decimal | None = None
    weekly_threshold: Decimal | None = None
    seventh_day: bool = False
    weekly_excludes_daily_ot: bool = True
    daily_requires_rate_below_min_wage_multiple: Decimal | None = None
    greater_of_daily_or_weekly: bool = False
    ot_multiplier: Decimal = Decimal("1.5")
    dt_multiplier: Decimal = Decimal(2)
    seventh_day_double_after: Decimal = Decimal(8)

    def __post_init__(self):
        def bad(message, field_name):
            raise EngineInputError(
                f"overtime rule {self.code}: {message}",
                code="overtime_rule_invalid",
                field=field_name,
            )

        for name in ("daily_threshold", "daily_double_threshold", "weekly_threshold"):
            value = getattr(self, name)
            if value is not None and value < 0:
                bad(f"{name} must not be negative", name)
        if self.daily_double_threshold is not None:
            if self.daily_threshold is None:
                bad("daily double time needs a daily threshold", "daily_double_threshold")
            if self.daily_double_threshold <= self.daily_threshold:
                bad(
                    "the double-time threshold must be above the overtime one",
                    "daily_double_threshold",
                )
        if self.greater_of_daily_or_weekly:
            if self.daily_threshold is None or self.weekly_threshold is None:
                bad(
                    "greater-of needs both a daily and a weekly threshold",
                    "greater_of_daily_or_weekly",
                )
            if self.seventh_day:
                bad("greater-of cannot be combined with a seventh-day rule", "seventh_day")
        if self.ot_multiplier < 1 or self.dt_multiplier < self.ot_multiplier:
            bad("multipliers must satisfy 1 <= overtime <= double time", "ot_multiplier")
        if self.seventh_day_double_after < 0:
            bad("seventh_day_double_after must not be negative", "seventh_day_double_after")


@dataclass(frozen=True, slots=True)
class TimeEntry:
    day: dt.date
    hours: Decimal

    def __post_init__(self):
        if isinstance(self.hours, float):
            _no_float(f"time entry on {self.day}", hours=self.hours)


@dataclass(frozen=True, slots=True)
class Earning:
    code: str
    name: str
    amount: Decimal
    taxable: bool = True
    recurring: bool = False

    def __post_init__(self):
        if isinstance(self.amount, float):
            _no_float(f"earning {self.code}", amount=self.amount)
        if self.amount < 0:
            raise EngineInputError(
                f"earning {self.code}: negative amount", code="earning_invalid", field="amount"
            )


_METHODS = frozenset(("fixed", "percent"))
_PERCENT_OF = frozenset(("basic", "gross"))


@dataclass(frozen=True, slots=True)
class Deduction:
    code: str
    name: str
    pre_tax: bool
    method: str
    value: Decimal
    annual_cap: Decimal | None = None
    taken_ytd: Decimal | None = None
    employer_rate: Decimal | None = None
    balance: Decimal | None = None
    percent_of: str = "basic"

    def __post_init__(self):
        _no_float(
            f"deduction {self.code}",
            value=self.value,
            annual_cap=self.annual_cap,
            taken_ytd=self.taken_ytd,
            employer_rate=self.employer_rate,
            balance=self.balance,
        )
        if self.method not in _METHODS:
            raise EngineInputError(
                f"deduction {self.code}: method must be 'fixed' or 'percent', not {self.method!r}",
                field="method",
            )
        if self.percent_of not in _PERCENT_OF:
            raise EngineInputError(
                f"deduction {self.code}: percent_of must be 'basic' or 'gross'", field="percent_of"
            )
        if self.value < 0:
            raise EngineInputError(f"deduction {self.code}: negative value", field="value")
        if self.annual_cap is not None and self.annual_cap < 0:
            raise EngineInputError(
                f"deduction {self.code}: negative annual cap", field="annual_cap"
            )
        if self.balance is not None and self.balance < 0:
            raise EngineInputError(f"deduction {self.code}: negative balance", field="balance")


@dataclass(frozen=True, slots=True)
class YearToDate:
    taxable: Decimal = _D0
    tax_withheld: Decimal = _D0
    flat_wages: Mapping[str, Decimal] = field(default_factory=dict)
    deductions: Mapping[str, Decimal] = field(default_factory=dict)


_NO_YTD = YearToDate()
_PAY_TYPES = frozenset(("salaried", "hourly"))


@dataclass(frozen=True, slots=True)
class EmployeeInput:
    employee_id: object
    pay_type: str
    annual_salary: Decimal | None = None
    hourly_rate: Decimal | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    time_entries: Sequence[TimeEntry] = ()
    earnings: Sequence[Earning] = ()
    deductions: Sequence[Deduction] = ()
    ytd: YearToDate = _NO_YTD
    overtime: OvertimeRule | None = None
    progressive_tax: ProgressiveTax | None = None
    flat_taxes: Sequence[FlatTax] = ()
    min_wage: Decimal | None = None
    arrears: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self):
        who = f"employee {self.employee_id}"
        _no_float(
            who,
            annual_salary=self.annual_salary,
            hourly_rate=self.hourly_rate,
            min_wage=self.min_wage,
        )
        if self.pay_type not in _PAY_TYPES:
            raise EngineInputError(
                f"{who}: pay type must be 'salaried' or 'hourly', not {self.pay_type!r}",
                field="pay_type",
            )
        if self.pay_type == "salaried":
            if self.annual_salary is None or self.annual_salary < 0:
                raise EngineInputError(
                    f"{who}: a salaried employee needs an annual salary", field="annual_salary"
                )
        elif self.hourly_rate is None or self.hourly_rate < 0:
            raise EngineInputError(
                f"{who}: an hourly employee needs an hourly rate", field="hourly_rate"
            )
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise EngineInputError(f"{who}: end date before start date", field="end_date")


@dataclass(frozen=True, slots=True)
class PeriodInput:
    start: dt.date
    end: dt.date
    periods_per_year: int
    remaining_periods: int
    workweek_start: int = 0

    def __post_init__(self):
        if self.end < self.start:
            raise EngineInputError("period ends before it starts", field="end")
        if self.periods_per_year < 1:
            raise EngineInputError("periods_per_year must be at least 1", field="periods_per_year")
        if not 1 <= self.remaining_periods <= self.periods_per_year:
            raise EngineInputError(
                "remaining_periods (this one included) must be between 1 and periods_per_year",
                field="remaining_periods",
            )
        if not 0 <= self.workweek_start <= 6:
            raise EngineInputError("workweek_start must be 0 (Monday) to 6", field="workweek_start")


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class PayLine:
    kind: str
    code: str
    name: str
    amount: Decimal
    quantity: Decimal | None = None
    rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PayResult:
    gross: Decimal
    pre_tax_deductions: Decimal
    taxable: Decimal
    taxes: Decimal
    deductions: Decimal
    employer_contributions: Decimal
    net: Decimal
    lines: tuple[PayLine, ...]
    warnings: tuple[str, ...]
    carried: Mapping[str, Decimal]
    hours: Mapping[str, Decimal]


# --------------------------------------------------------------------------- overtime


def _daily_rule_applies(rule: OvertimeRule, rate, min_wage) -> bool:
    if rule.daily_threshold is None:
        return False
    multiple = rule.daily_requires_rate_below_min_wage_multiple
    if multiple is None:
        return True
    if rate is None or min_wage is None:
        raise EngineInputError(
            f"overtime rule {rule.code} depends on the hourly rate and the minimum wage; "
            "both are needed",
            code="min_wage_missing",
            field="min_wage",
        )
    return rate < multiple * min_wage


def _hours_by_day(entries) -> dict:
    days: dict = {}
    for entry in entries:
        hours = entry.hours
        if hours < 0:
            raise EngineInputError(
                f"time entry on {entry.day} has negative hours",
                code="time_entry_invalid",
                field="hours",
            )
        day = entry.day
        days[day] = days[day] + hours if day in days else hours
    for day, hours in days.items():
        if hours > _D24:
            raise EngineInputError(
                f"{hours} hours on {day}: a day has 24", code="time_entry_invalid", field="hours"
            )
    return days


def _greater_of_week(hours_list, rule, daily: bool):
    """Colorado: (regular, overtime, double_time) of one workweek, by whichever of the daily or
    the weekly calculation pays the larger premium."""
    dth = rule.daily_threshold
    ddt = rule.daily_double_threshold
    wth = rule.weekly_threshold
    total = d_ot = d_dt = _D0
    for hours in hours_list:
        total += hours
        if daily and hours > dth:
            if ddt is not None and hours > ddt:
                d_dt += hours - ddt
                d_ot += ddt - dth
            else:
                d_ot += hours - dth
    w_ot = total - wth if total > wth else _D0
    if daily and d_ot * (rule.ot_multiplier - 1) + d_dt * (rule.dt_multiplier - 1) >= w_ot * (
        rule.ot_multiplier - 1
    ):
        return total - d_ot - d_dt, d_ot, d_dt
    return total - w_ot, w_ot, _D0


def _classify_days(days: dict, rule, workweek_start: int, daily: bool, paid_from=None):
    """(regular, overtime, double_time) for hours by day, workweek by workweek, counting only
    the days from `paid_from` on (earlier days only fill the thresholds of their workweek)."""
    regular = overtime = double = _D0
    items = sorted(days.items())
    if rule is None or (not daily and rule.weekly_threshold is None and not rule.seventh_day):
        for day, hours in items:
            if paid_from is None or day >= paid_from:
                regular += hours
        return regular, overtime, double

    if rule.greater_of_daily_or_weekly:
        # whole-week calculations: a week straddling `paid_from` pays the week's classification
        # minus what its earlier days earned on their own
        week = None
        before: list = []
        after: list = []
        for day, hours in (*items, (None, None)):
            key = None if day is None else day.toordinal() - (day.weekday() - workweek_start) % 7
            if key != week:
                if after:
                    r, o, d = _greater_of_week(before + after, rule, daily)
                    if before:
                        r0, o0, d0 = _greater_of_week(before, rule, daily)
                        r, o, d = r - r0, o - o0, d - d0
                    regular += r
                    overtime += o
                    double += d
                week = key
                before = []
                after = []
            if day is not None:
                if paid_from is None or day >= paid_from:
                    after.append(hours)
                else:
                    before.append(hours)
        return regular, overtime, double

    dth = rule.daily_threshold
    ddt = rule.daily_double_threshold
    wth = rule.weekly_threshold
    excludes = rule.weekly_excludes_daily_ot
    seventh = rule.seventh_day
    seventh_after = rule.seventh_day_double_after
    week = None
    counted = _D0
    worked_days = 0
    for day, hours in items:
        position = (day.weekday() - workweek_start) % 7
        key = day.toordinal() - position
        if key != week:
            week = key
            counted = _D0
            worked_days = 0
        if not hours:
            continue
        worked_days += 1
        paid = paid_from is None or day >= paid_from
        if seventh and position == 6 and worked_days == 7:
            # the seventh consecutive day worked in the workweek
            o = hours if hours < seventh_after else seventh_after
            if paid:
                overtime += o
                double += hours - o
            if not excludes:
                counted += hours
            continue
        o = d = _D0
        if daily and hours > dth:
            if ddt is not None and hours > ddt:
                d = hours - ddt
                o = ddt - dth
            else:
                o = hours - dth
        r = hours - o - d
        if wth is not None:
            excess = counted + r - wth
            counted += r if excludes else hours
            if excess > 0:
                moved = r if excess > r else excess
                r -= moved
                o += moved
        if paid:
            regular += r
            overtime += o
            double += d
    return regular, overtime, double


def classify_hours(
    entries: Sequence[TimeEntry],
    rule: OvertimeRule | None,
    workweek_start: int = 0,
    rate: Decimal | None = None,
    min_wage: Decimal | None = None,
) -> dict[str, Decimal]:
    """Split worked hours into {"regular", "overtime", "double_time"}; the three add up to the
    hours worked (no hour is counted twice, none is lost).

    Workweeks start on `workweek_start` (0 = Monday). Within a workweek, days are taken in
    order; a day's first hours are its regular ones, so weekly overtime falls on the last hours of
    the week. Per day: hours beyond the daily threshold are overtime and beyond the double-time
    threshold double time; the weekly rule then turns the regular hours that lie beyond the
    weekly threshold into overtime (counting only regular hours when `weekly_excludes_daily_ot`,
    every worked hour otherwise). The seventh consecutive day worked in a workweek (seventh_day
    rules) pays its first `seventh_day_double_after` hours as overtime and the rest as double
    time, and those premium hours do not count toward the weekly threshold. Colorado's
    greater-of compares whole-week calculations; its "12 consecutive hours" test needs clock
    times, which time entries do not carry, and is not applied.
    """
    days = _hours_by_day(entries)
    daily = rule is not None and _daily_rule_applies(rule, rate, min_wage)
    regular, overtime, double = _classify_days(days, rule, workweek_start, daily)
    return {REGULAR: regular, OVERTIME: overtime, DOUBLE_TIME: double}


# --------------------------------------------------------------------------- progressive tax


def annual_progressive_tax(brackets: Sequence[Bracket], income: Decimal) -> Decimal:
    """Sum over brackets of (the part of `income` inside [lower, upper)) x rate, half-up to
    cents."""
    tax = _D0
    for b in brackets:
        if income <= b.lower:
            break
        top = income if b.upper is None or income < b.upper else b.upper
        tax += (top - b.lower) * b.rate
    return _money(tax)


def projected_annual_taxable(
    *,
    taxable_ytd: Decimal,
    taxable: Decimal,
    regular_taxable: Decimal,
    periods_after: int,
    annual_exemption: Decimal = _D0,
) -> Decimal:
    """taxable so far this year + this period's taxable + regular taxable x periods after this
    one - annual exemption, never below zero."""
    projected = taxable_ytd + taxable + regular_taxable * periods_after - annual_exemption
    return projected if projected > 0 else _D0


def period_progressive_tax(
    table: ProgressiveTax,
    *,
    taxable: Decimal,
    regular_taxable: Decimal,
    taxable_ytd: Decimal,
    withheld_ytd: Decimal,
    remaining_periods: int,
    final: bool = False,
) -> Decimal:
    """This period's withholding: (annual tax on the projected year - tax withheld so far) /
    remaining periods including this one, half-up to cents, never negative.

    `final=True` (the employee's last period) projects nothing further and makes the whole
    remainder due now.
    """
    if remaining_periods < 1:
        raise EngineInputError("remaining_periods must be at least 1", field="remaining_periods")
    periods_after = 0 if final else remaining_periods - 1
    projected = projected_annual_taxable(
        taxable_ytd=taxable_ytd,
        taxable=taxable,
        regular_taxable=regular_taxable,
        periods_after=periods_after,
        annual_exemption=table.annual_exemption,
    )
    due = annual_progressive_tax(table.brackets, projected) - withheld_ytd
    if due <= 0:
        return ZERO
    return _money(due / (1 if final else remaining_periods))


# --------------------------------------------------------------------------- gross to net


def _workweek_start_of(day: dt.date, workweek_start: int) -> dt.date:
    return day - dt.timedelta(days=(day.weekday() - workweek_start) % 7)


def _hourly_pay(emp: EmployeeInput, period: PeriodInput, last: dt.date, lines, warnings):
    """Lines for time worked; returns (pay, hours mapping)."""
    rate = emp.hourly_rate
    context_from = _workweek_start_of(period.start, period.workweek_start)
    days: dict = {}
    outside = 0
    p_start, p_end = period.start, period.end
    emp_start = emp.start_date
    for entry in emp.time_entries:
        day = entry.day
        if day < context_from or day > p_end:
            continue
        if (emp_start is not None and day < emp_start) or day > last:
            if day >= p_start:
                outside += 1
            continue
        hours = entry.hours
        if hours < 0:
            raise EngineInputError(
                f"time entry on {day} has negative hours", code="time_entry_invalid", field="hours"
            )
        days[day] = days[day] + hours if day in days else hours
    for day, hours in days.items():
        if hours > _D24:
            raise EngineInputError(
                f"{hours} hours on {day}: a day has 24", code="time_entry_invalid", field="hours"
            )
    if outside:
        warnings.append(
            f"{outside} time entr{'y' if outside == 1 else 'ies'} outside the employment dates "
            "not paid"
        )
    rule = emp.overtime
    daily = rule is not None and _daily_rule_applies(rule, rate, emp.min_wage)
    reg, ot, dbl = _classify_days(days, rule, period.workweek_start, daily, p_start)
    pay = _D0
    if reg:
        amount = _money(reg * rate)
        lines.append(PayLine(EARNING, REGULAR_CODE, "Regular hours", amount, reg, rate))
        pay += amount
    if ot:
        r = rate * rule.ot_multiplier
        amount = _money(ot * r)
        lines.append(PayLine(EARNING, OVERTIME_CODE, "Overtime", amount, ot, r))
        pay += amount
    if dbl:
        r = rate * rule.dt_multiplier
        amount = _money(dbl * r)
        lines.append(PayLine(EARNING, DOUBLE_TIME_CODE, "Double time", amount, dbl, r))
        pay += amount
    return pay, {REGULAR: reg, OVERTIME: ot, DOUBLE_TIME: dbl}


_NO_HOURS = MappingProxyType({REGULAR: _D0, OVERTIME: _D0, DOUBLE_TIME: _D0})


def _limit(ded: Deduction, amount: Decimal, ytd: YearToDate) -> tuple[Decimal, Decimal]:
    """(amount within the annual cap and the balance, room left under the cap after it)."""
    room = None
    if ded.annual_cap is not None:
        taken = ded.taken_ytd
        if taken is None:
            taken = ytd.deductions.get(ded.code, _D0)
        room = ded.annual_cap - taken
        if room < 0:
            room = _D0
        if amount > room:
            amount = _money(room)
    if ded.balance is not None and amount > ded.balance:
        amount = _money(ded.balance)
    return amount, (None if room is None else room - amount)


def _take_deductions(deductions, room, total, lines, carried, warnings, what: str):
    """Take each (deduction, amount) out of `room` in order, adding a line per amount taken to
    `lines` and to `total`; what does not fit is carried forward with a warning naming `what`
    (the taxable or the net pay). Returns (total, room left)."""
    for ded, amount in deductions:
        take = amount if amount <= room else room
        if take:
            lines.append(
                PayLine(
                    DEDUCTION,
                    ded.code,
                    ded.name,
                    take,
                    None,
                    ded.value if ded.method == "percent" else None,
                )
            )
            total += take
            room -= take
        if take != amount:
            short = amount - take
            carried[ded.code] = carried.get(ded.code, _D0) + short
            warnings.append(
                f"{ded.code}: {short} of {amount} exceeds the {what} left; carried forward"
            )
    return total, room


def compute_payslip(employee: EmployeeInput, period: PeriodInput) -> PayResult:
    """Gross to net for one employee and one period (see the module docstring for the rules)."""
    emp = employee
    lines: list[PayLine] = []
    warnings: list[str] = []
    carried: dict[str, Decimal] = {}
    ytd = emp.ytd

    p_start, p_end = period.start, period.end
    first = p_start if emp.start_date is None or emp.start_date < p_start else emp.start_date
    last = p_end if emp.end_date is None or emp.end_date > p_end else emp.end_date
    employed_days = (last - first).days + 1
    if employed_days < 0:
        employed_days = 0
    final = emp.end_date is not None and emp.end_date <= p_end
    if employed_days == 0:
        warnings.append("not employed during the period: no salary or time paid")

    # ---- base pay
    hours = _NO_HOURS
    if not employed_days:
        # nothing paid, and nothing projected from this period's pay
        basic = regular_base = _D0
    elif emp.pay_type == "salaried":
        period_days = (p_end - p_start).days + 1
        regular_base = _money(emp.annual_salary / period.periods_per_year)
        if employed_days == period_days:
            basic = regular_base
            if basic:
                lines.append(PayLine(EARNING, SALARY_CODE, "Salary", basic))
        else:
            basic = _money(
                emp.annual_salary * employed_days / (period.periods_per_year * period_days)
            )
            if basic:
                lines.append(
                    PayLine(
                        EARNING, SALARY_CODE, "Salary (prorated)", basic, Decimal(employed_days)
                    )
                )
    else:
        basic, hours = _hourly_pay(emp, period, last, lines, warnings)
        hours = MappingProxyType(hours)
        regular_base = basic

    # ---- earnings
    gross = basic
    taxable_gross = basic
    recurring_taxable = regular_base
    recurring_gross = regular_base
    for earning in emp.earnings:
        amount = _money(earning.amount)
        if not amount:
            continue
        lines.append(PayLine(EARNING, earning.code, earning.name, amount))
        gross += amount
        if earning.taxable:
            taxable_gross += amount
        if earning.recurring:
            recurring_gross += amount
            if earning.taxable:
                recurring_taxable += amount

    periods_after = 0 if final else period.remaining_periods - 1

    # ---- deductions: amounts due before collection
    arrears = emp.arrears
    seen: set = set()
    employer_total = _D0
    employer_lines: list[PayLine] = []
    pre_tax: list = []
    post_tax: list = []
    regular_pre_tax = _D0
    for ded in emp.deductions:
        if ded.method == "percent":
            base = basic if ded.percent_of == "basic" else gross
            full = _money(base * ded.value)
        else:
            full = _money(ded.value)
        amount, room = _limit(ded, full, ytd)
        owed = arrears.get(ded.code) if arrears else None
        if ded.employer_rate:
            if ded.method == "percent":
                share = base * ded.employer_rate
                if amount != full:
                    share = share * amount / full
            else:
                share = amount * ded.employer_rate
            share = _money(share)
            if share:
                employer_lines.append(
                    PayLine(EMPLOYER, ded.code, ded.name, share, None, ded.employer_rate)
                )
                employer_total += share
        if owed:
            # carried from earlier periods: collected with this period's amount, within the
            # same annual cap and balance (the employer share was paid when it fell due)
            seen.add(ded.code)
            amount, room = _limit(ded, full + _money(owed), ytd)
        if ded.pre_tax:
            pre_tax.append((ded, amount))
            if periods_after and ded.balance is None:
                # the same deduction on a full regular period, kept within the cap still open
                if ded.method == "percent":
                    base = regular_base if ded.percent_of == "basic" else recurring_gross
                    regular = base * ded.value
                else:
                    regular = ded.value
                if room is not None and regular * periods_after > room:
                    regular = room / periods_after
                regular_pre_tax += regular
        else:
            post_tax.append((ded, amount))

    # ---- pre-tax deductions (they cannot take taxable pay below zero)
    pre_total, _left = _take_deductions(
        pre_tax, taxable_gross, _D0, lines, carried, warnings, "taxable pay"
    )
    deduction_total = pre_total
    taxable = taxable_gross - pre_total
    available = gross - pre_total

    # ---- taxes
    tax_total = _D0
    due_taxes: list = []
    progressive_code = emp.progressive_tax.code if emp.progressive_tax is not None else None
    if emp.progressive_tax is not None:
        table = emp.progressive_tax
        regular_taxable = recurring_taxable - regular_pre_tax
        if regular_taxable < 0:
            regular_taxable = _D0
        due = period_progressive_tax(
            table,
            taxable=taxable,
            regular_taxable=regular_taxable,
            taxable_ytd=ytd.taxable,
            withheld_ytd=ytd.tax_withheld,
            remaining_periods=period.remaining_periods,
            final=final,
        )
        due_taxes.append((table.code, table.name, due, None, None))
    for flat in emp.flat_taxes:
        wages = taxable
        if flat.wage_base is not None:
            room = flat.wage_base - ytd.flat_wages.get(flat.code, _D0)
            if room < wages:
                wages = room if room > 0 else _D0
        due = _money(wages * flat.rate)
        if arrears and arrears.get(flat.code):
            seen.add(flat.code)
            due += _money(arrears[flat.code])
        due_taxes.append((flat.code, flat.name, due, wages, flat.rate))
        if flat.employer_rate:
            share = _money(wages * flat.employer_rate)
            if share:
                employer_lines.append(
                    PayLine(EMPLOYER, flat.code, flat.name, share, wages, flat.employer_rate)
                )
                employer_total += share
    for code, name, due, wages, rate in due_taxes:
        take = due if due <= available else available
        if take or wages:
            lines.append(PayLine(TAX, code, name, take, wages, rate))
        tax_total += take
        available -= take
        if take != due:
            short = due - take
            carried[code] = carried.get(code, _D0) + short
            warnings.append(
                f"{code}: tax of {due} exceeds the pay left; {short} not withheld, carried forward"
            )

    # ---- arrears whose deduction or tax is no longer configured: post-tax, last
    if arrears:
        for code, owed in arrears.items():
            if owed and code not in seen and code != progressive_code:
                owed = _money(owed)
                post_tax.append((Deduction(code, f"{code} (carried)", False, "fixed", owed), owed))

    # ---- post-tax deductions, in order
    deduction_total, available = _take_deductions(
        post_tax, available, deduction_total, lines, carried, warnings, "net pay"
    )

    lines.extend(employer_lines)
    net = gross - tax_total - deduction_total
    return PayResult(
        gross=gross + ZERO,
        pre_tax_deductions=pre_total + ZERO,
        taxable=taxable + ZERO,
        taxes=tax_total + ZERO,
        deductions=deduction_total + ZERO,
        employer_contributions=employer_total + ZERO,
        net=net + ZERO,
        lines=tuple(lines),
        warnings=tuple(warnings),
        carried=MappingProxyType(carried),
        hours=hours,
    )
