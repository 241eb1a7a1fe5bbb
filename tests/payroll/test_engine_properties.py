"""Properties of the gross-to-net engine that must hold for any input (hypothesis).

- gross is the sum of the earning lines; taxes, deductions and employer contributions are the sums
  of their lines; every line is in whole cents;
- net = gross - taxes - deductions, and net >= 0 (what cannot be collected is carried);
- tax never decreases as taxable pay rises;
- no hour is paid twice: the classified hours add up to the hours worked, under every rule, and a
  workweek split across two periods is paid exactly as the whole week.
"""

import datetime as dt
from decimal import Decimal as D

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from payroll.engine import (
    Bracket,
    Deduction,
    Earning,
    EmployeeInput,
    FlatTax,
    OvertimeRule,
    PeriodInput,
    ProgressiveTax,
    TimeEntry,
    YearToDate,
    annual_progressive_tax,
    classify_hours,
    compute_payslip,
    period_progressive_tax,
)

RULES = [
    None,
    OvertimeRule("US-FLSA", weekly_threshold=D(40)),
    OvertimeRule(
        "US-CA",
        daily_threshold=D(8),
        daily_double_threshold=D(12),
        weekly_threshold=D(40),
        seventh_day=True,
    ),
    OvertimeRule("US-AK", daily_threshold=D(8), weekly_threshold=D(40)),
    OvertimeRule(
        "US-NV",
        daily_threshold=D(8),
        weekly_threshold=D(40),
        daily_requires_rate_below_min_wage_multiple=D("1.5"),
    ),
    OvertimeRule(
        "US-CO", daily_threshold=D(12), weekly_threshold=D(40), greater_of_daily_or_weekly=True
    ),
    OvertimeRule(
        "X-INCL", daily_threshold=D(8), weekly_threshold=D(40), weekly_excludes_daily_ot=False
    ),
]

BD = ProgressiveTax(
    "BD-IT",
    "Income tax",
    (
        Bracket(D(0), D(350_000), D(0)),
        Bracket(D(350_000), D(450_000), D("0.05")),
        Bracket(D(450_000), D(850_000), D("0.10")),
        Bracket(D(850_000), D(1_350_000), D("0.15")),
        Bracket(D(1_350_000), D(1_850_000), D("0.20")),
        Bracket(D(1_850_000), D(3_850_000), D("0.25")),
        Bracket(D(3_850_000), None, D("0.30")),
    ),
)
REF = ProgressiveTax(
    "REF",
    "Reference",
    (
        Bracket(D(0), D(250_000), D(0)),
        Bracket(D(250_000), D(500_000), D("0.05")),
        Bracket(D(500_000), None, D("0.20")),
    ),
    annual_exemption=D(50_000),
)

PERIOD_START = dt.date(2025, 9, 3)  # a Wednesday: the first workweek starts before the period


def cents(low, high):
    return st.decimals(min_value=D(low), max_value=D(high), places=2)


quarter_hours = st.integers(min_value=0, max_value=96).map(lambda q: D(q) / 4)
rates = st.decimals(min_value=D(0), max_value=D("0.35"), places=4)


@st.composite
def entries(draw, first=PERIOD_START - dt.timedelta(days=9), days=45):
    """Up to `days` days of time entries, sometimes two on a day, never more than 24 h a day."""
    out = []
    for offset in range(days):
        if draw(st.booleans()):
            continue
        day = first + dt.timedelta(days=offset)
        hours = draw(quarter_hours)
        if hours > 8 and draw(st.booleans()):
            out.append(TimeEntry(day, D(8)))
            out.append(TimeEntry(day, hours - 8))
        else:
            out.append(TimeEntry(day, hours))
    return out


@st.composite
def deductions(draw):
    out = []
    for i in range(draw(st.integers(0, 4))):
        method = draw(st.sampled_from(["fixed", "percent"]))
        value = draw(rates) if method == "percent" else draw(cents(0, 20_000))
        cap = draw(st.none() | cents(0, 100_000))
        out.append(
            Deduction(
                f"D{i}",
                f"Deduction {i}",
                pre_tax=draw(st.booleans()),
                method=method,
                value=value,
                annual_cap=cap,
                taken_ytd=draw(st.none() | cents(0, 100_000)),
                employer_rate=draw(st.none() | rates),
                balance=draw(st.none() | cents(0, 50_000)),
                percent_of=draw(st.sampled_from(["basic", "gross"])),
            )
        )
    return out


earnings = st.lists(
    st.builds(
        Earning,
        code=st.sampled_from(["BONUS", "COMM", "HRA", "CONV", "MEAL"]),
        name=st.just("Earning"),
        amount=cents(0, 50_000),
        taxable=st.booleans(),
        recurring=st.booleans(),
    ),
    max_size=4,
)

flat_taxes = st.lists(
    st.builds(
        FlatTax,
        code=st.sampled_from(["SS", "MED", "UI"]),
        name=st.just("Flat"),
        rate=rates,
        wage_base=st.none() | cents(0, 200_000),
        employer_rate=rates,
    ),
    max_size=2,
    unique_by=lambda f: f.code,
)

ytds = st.builds(
    YearToDate,
    taxable=cents(0, 2_000_000),
    tax_withheld=cents(0, 300_000),
    flat_wages=st.dictionaries(st.sampled_from(["SS", "MED", "UI"]), cents(0, 200_000)),
    deductions=st.dictionaries(st.sampled_from(["D0", "D1", "D2", "D3"]), cents(0, 100_000)),
)

employment_dates = st.none() | st.dates(
    min_value=PERIOD_START - dt.timedelta(days=40), max_value=PERIOD_START + dt.timedelta(days=40)
)


@st.composite
def employees(draw, **fixed):
    pay_type = fixed.get("pay_type") or draw(st.sampled_from(["salaried", "hourly"]))
    start = draw(employment_dates)
    end = draw(employment_dates)
    if start and end and end < start:
        start, end = end, start
    kw = {
        "employee_id": "E",
        "pay_type": pay_type,
        "annual_salary": draw(cents(0, 5_000_000)) if pay_type == "salaried" else None,
        "hourly_rate": draw(cents(0, 200)) if pay_type == "hourly" else None,
        "start_date": start,
        "end_date": end,
        "time_entries": draw(entries()),
        "earnings": draw(earnings),
        "deductions": draw(deductions()),
        "ytd": draw(ytds),
        "overtime": draw(st.sampled_from(RULES)),
        "progressive_tax": draw(st.sampled_from([None, BD, REF])),
        "flat_taxes": draw(flat_taxes),
        "min_wage": draw(cents(0, 20)),
        "arrears": draw(
            st.dictionaries(
                st.sampled_from(["D0", "D1", "SS", "BD-IT", "REF", "OLD"]),
                st.decimals(min_value=D(0), max_value=D(5_000), places=3),
            )
        ),
    }
    kw.update(fixed)
    return EmployeeInput(**kw)


@st.composite
def periods(draw):
    length = draw(st.sampled_from([7, 14, 15, 30]))
    per_year = {7: 52, 14: 26, 15: 24, 30: 12}[length]
    return PeriodInput(
        PERIOD_START,
        PERIOD_START + dt.timedelta(days=length - 1),
        periods_per_year=per_year,
        remaining_periods=draw(st.integers(1, per_year)),
        workweek_start=draw(st.integers(0, 6)),
    )


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sum(lines, kind):
    return sum((x.amount for x in lines if x.kind == kind), D("0.00"))


@SETTINGS
@given(employees(), periods())
def test_totals_are_the_sums_of_lines_and_net_is_never_negative(employee, period):
    result = compute_payslip(employee, period)
    assert result.gross == _sum(result.lines, "earning")
    assert result.taxes == _sum(result.lines, "tax")
    assert result.deductions == _sum(result.lines, "deduction")
    assert result.employer_contributions == _sum(result.lines, "employer")
    assert result.net == result.gross - result.taxes - result.deductions
    assert result.net >= 0
    assert 0 <= result.taxable <= result.gross
    assert result.pre_tax_deductions <= result.deductions
    for line in result.lines:
        assert line.amount == line.amount.quantize(D("0.01")), line
        assert line.amount.as_tuple().exponent == -2, line
        if line.kind != "earning":
            assert line.amount >= 0, line
    for code, amount in result.carried.items():
        assert amount > 0, code
    # every carried amount is explained
    assert len(result.warnings) >= len(result.carried)


@SETTINGS
@given(employees(pay_type="hourly", hourly_rate=D("17.50")), periods())
def test_no_hour_is_paid_twice(employee, period):
    result = compute_payslip(employee, period)
    first = max(period.start, employee.start_date or period.start)
    last = min(period.end, employee.end_date or period.end)
    worked = sum((e.hours for e in employee.time_entries if first <= e.day <= last), D(0))
    hours = result.hours
    assert hours["regular"] + hours["overtime"] + hours["double_time"] == worked
    assert hours["overtime"] >= 0
    assert hours["double_time"] >= 0


@SETTINGS
@given(entries(), st.sampled_from(RULES), st.integers(0, 6), cents(0, 40))
def test_classified_hours_add_up_and_never_go_negative(worked, rule, workweek_start, rate):
    split = classify_hours(worked, rule, workweek_start, rate=rate, min_wage=D("12.00"))
    assert all(v >= 0 for v in split.values())
    assert sum(split.values()) == sum((e.hours for e in worked), D(0))
    # no premium hours without a rule, and never fewer than the federal weekly rule gives
    if rule is None:
        assert split["overtime"] == split["double_time"] == 0
    else:
        flsa = classify_hours(worked, RULES[1], workweek_start)
        assert split["overtime"] + split["double_time"] >= flsa["overtime"]


@SETTINGS
@given(entries(first=dt.date(2025, 9, 1), days=14), st.sampled_from(RULES[1:]), st.integers(1, 13))
def test_a_workweek_split_across_periods_is_paid_as_the_whole(worked, rule, split_after):
    # periods [1 Sep, 1 Sep + split) and [split, 14 Sep]; the workweek starts Monday 1 Sep
    start = dt.date(2025, 9, 1)
    cut = start + dt.timedelta(days=split_after)
    first = PeriodInput(start, cut - dt.timedelta(days=1), 26, 10)
    second = PeriodInput(cut, start + dt.timedelta(days=13), 26, 9)
    employee = EmployeeInput(
        "E", "hourly", hourly_rate=D("10.00"), time_entries=worked, overtime=rule, min_wage=D(12)
    )
    a = compute_payslip(employee, first).hours
    b = compute_payslip(employee, second).hours
    whole = classify_hours(worked, rule, 0, rate=D("10.00"), min_wage=D(12))
    for key, value in whole.items():
        assert a[key] + b[key] == value, key


def _tax_due(employee, result):
    codes = {f.code for f in employee.flat_taxes}
    if employee.progressive_tax:
        codes.add(employee.progressive_tax.code)
    return result.taxes + sum((v for k, v in result.carried.items() if k in codes), D(0))


@SETTINGS
@given(
    employees(pay_type="salaried"),
    periods(),
    cents(0, 1_000_000),
    cents(0, 1_000_000),
)
def test_tax_never_decreases_as_taxable_pay_rises(employee, period, bonus_1, bonus_2):
    low, high = sorted((bonus_1, bonus_2))

    def with_bonus(amount):
        extra = Earning("XB", "Extra bonus", amount, taxable=True, recurring=False)
        changed = EmployeeInput(
            **{
                name: getattr(employee, name)
                for name in EmployeeInput.__dataclass_fields__
                if name != "earnings"
            },
            earnings=(*employee.earnings, extra),
        )
        result = compute_payslip(changed, period)
        return result.taxable, _tax_due(changed, result)

    taxable_low, due_low = with_bonus(low)
    taxable_high, due_high = with_bonus(high)
    assume(taxable_low <= taxable_high)
    assert due_low <= due_high


@SETTINGS
@given(employees(pay_type="salaried"), periods(), cents(0, 5_000_000), cents(0, 5_000_000))
def test_tax_never_decreases_with_a_raise(employee, period, salary_1, salary_2):
    low, high = sorted((salary_1, salary_2))

    def with_salary(amount):
        fields = {name: getattr(employee, name) for name in EmployeeInput.__dataclass_fields__}
        changed = EmployeeInput(**{**fields, "annual_salary": amount})
        result = compute_payslip(changed, period)
        return result.taxable, _tax_due(changed, result)

    taxable_low, due_low = with_salary(low)
    taxable_high, due_high = with_salary(high)
    assume(taxable_low <= taxable_high)  # pre-tax deductions round per line, cent by cent
    assert due_low <= due_high


@SETTINGS
@given(cents(0, 10_000_000), cents(0, 10_000_000))
def test_annual_tax_is_monotone_and_below_income(a, b):
    low, high = sorted((a, b))
    for table in (BD, REF):
        assert annual_progressive_tax(table.brackets, low) <= annual_progressive_tax(
            table.brackets, high
        )
        assert annual_progressive_tax(table.brackets, high) <= high


@SETTINGS
@given(
    cents(0, 500_000),
    cents(0, 500_000),
    cents(0, 500_000),
    cents(0, 3_000_000),
    cents(0, 300_000),
    st.integers(1, 12),
    st.booleans(),
)
def test_period_tax_rises_with_this_periods_taxable_pay(
    taxable_1, taxable_2, regular, ytd_taxable, withheld, remaining, final
):
    low, high = sorted((taxable_1, taxable_2))

    def tax(taxable):
        return period_progressive_tax(
            BD,
            taxable=taxable,
            regular_taxable=regular,
            taxable_ytd=ytd_taxable,
            withheld_ytd=withheld,
            remaining_periods=remaining,
            final=final,
        )

    assert D(0) <= tax(low) <= tax(high)
