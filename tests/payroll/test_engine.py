"""The gross-to-net engine against figures worked by hand (docs: ../shared/reference/payroll.md).

The engine is pure: no database, no Django. Every expected figure below is worked out in the
comment beside it, so an accountant can check it without running anything.
"""

import datetime as dt
from decimal import Decimal as D

import pytest

from payroll.engine import (
    Bracket,
    Deduction,
    Earning,
    EmployeeInput,
    EngineInputError,
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

# ---------------------------------------------------------------- reference data for the tests

FLSA = OvertimeRule("US-FLSA", weekly_threshold=D(40))
CALIFORNIA = OvertimeRule(
    "US-CA",
    daily_threshold=D(8),
    daily_double_threshold=D(12),
    weekly_threshold=D(40),
    seventh_day=True,
    weekly_excludes_daily_ot=True,
)
ALASKA = OvertimeRule(
    "US-AK", daily_threshold=D(8), weekly_threshold=D(40), weekly_excludes_daily_ot=True
)
NEVADA = OvertimeRule(
    "US-NV",
    daily_threshold=D(8),
    weekly_threshold=D(40),
    daily_requires_rate_below_min_wage_multiple=D("1.5"),
)
COLORADO = OvertimeRule(
    "US-CO", daily_threshold=D(12), weekly_threshold=D(40), greater_of_daily_or_weekly=True
)

MONDAY = dt.date(2025, 6, 2)  # a Monday


def week(*hours, start=MONDAY):
    """Time entries for consecutive days from `start`, zero-hour days left out."""
    return [TimeEntry(start + dt.timedelta(days=i), D(str(h))) for i, h in enumerate(hours) if h]


def hours_of(split):
    return (split["regular"], split["overtime"], split["double_time"])


def slabs(threshold, *steps, top):
    """Brackets from a tax-free threshold and (width, rate) steps, then `top` for the balance."""
    brackets, lower = [Bracket(D(0), D(threshold), D(0))], D(threshold)
    for width, rate in steps:
        brackets.append(Bracket(lower, lower + D(width), D(rate)))
        lower += D(width)
    brackets.append(Bracket(lower, None, D(top)))
    return tuple(brackets)


# Bangladesh, assessment year 2025-26 (Finance Act 2024): 350,000 nil, 100,000 at 5 %, 400,000 at
# 10 %, 500,000 at 15 %, 500,000 at 20 %, 2,000,000 at 25 %, the balance at 30 %.
BD_STEPS = (
    (100_000, "0.05"),
    (400_000, "0.10"),
    (500_000, "0.15"),
    (500_000, "0.20"),
    (2_000_000, "0.25"),
)
BD_2025_GENERAL = slabs(350_000, *BD_STEPS, top="0.30")
BD_2025_WOMEN_SENIORS = slabs(400_000, *BD_STEPS, top="0.30")
BD_2025_DISABLED = slabs(475_000, *BD_STEPS, top="0.30")
BD_2025_WAR_WOUNDED = slabs(500_000, *BD_STEPS, top="0.30")
# assessment year 2024-25: the same except everything above the 20 % bracket at 25 %
BD_2024_GENERAL = slabs(350_000, *BD_STEPS[:4], top="0.25")

REFERENCE_BRACKETS = (
    Bracket(D(0), D(250_000), D(0)),
    Bracket(D(250_000), D(500_000), D("0.05")),
    Bracket(D(500_000), None, D("0.20")),
)


def monthly(start=dt.date(2025, 7, 1), remaining=12):
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return PeriodInput(start, end, periods_per_year=12, remaining_periods=remaining)


def weekly(start=MONDAY, remaining=30, workweek_start=0):
    return PeriodInput(
        start,
        start + dt.timedelta(days=6),
        periods_per_year=52,
        remaining_periods=remaining,
        workweek_start=workweek_start,
    )


def salaried(annual, **kw):
    return EmployeeInput("E1", "salaried", annual_salary=D(annual), **kw)


def hourly(rate, entries, rule, **kw):
    return EmployeeInput(
        "H1", "hourly", hourly_rate=D(rate), time_entries=entries, overtime=rule, **kw
    )


def line(result, code, kind=None):
    found = [x for x in result.lines if x.code == code and (kind is None or x.kind == kind)]
    assert len(found) == 1, (code, result.lines)
    return found[0]


# ---------------------------------------------------------------- overtime


def test_california_worked_example_pays_1020():
    # rate 20.00; Mon 10, Tue 13, Wed 8, Thu 8, Fri 8
    # Mon: 8 regular + 2 at 1.5x; Tue: 8 regular + 4 at 1.5x + 1 at 2x; Wed-Fri: 24 regular
    # regular 40 (the weekly count takes only these 40, so no weekly overtime)
    # 40 x 20 + 6 x 30 + 1 x 40 = 800 + 180 + 40 = 1,020.00
    result = compute_payslip(hourly("20.00", week(10, 13, 8, 8, 8), CALIFORNIA), weekly())
    assert hours_of(result.hours) == (40, 6, 1)
    assert line(result, "REG").amount == D("800.00")
    assert line(result, "OT").amount == D("180.00")
    assert line(result, "OT").rate == D("30.00")
    assert line(result, "DT").amount == D("40.00")
    assert result.gross == D("1020.00")
    assert result.net == D("1020.00")


def test_california_weekly_count_excludes_daily_overtime():
    # Mon-Fri 10 each = 50 h: daily OT 2 x 5 = 10; regular 8 x 5 = 40, weekly excess 0
    split = classify_hours(week(10, 10, 10, 10, 10), CALIFORNIA)
    assert hours_of(split) == (40, 10, 0)
    # Mon-Sat 8, 8, 8, 8, 8, 8 = 48 h: no daily OT; the sixth day's 8 h pass 40 -> weekly OT
    assert hours_of(classify_hours(week(8, 8, 8, 8, 8, 8), CALIFORNIA)) == (40, 8, 0)


def test_california_seventh_consecutive_day():
    # Mon-Sun 8 h each: Sat's 8 h go past 40 regular -> weekly OT; Sunday is the seventh
    # consecutive day worked: its first 8 h at 1.5x. regular 40, OT 16
    assert hours_of(classify_hours(week(8, 8, 8, 8, 8, 8, 8), CALIFORNIA)) == (40, 16, 0)
    # Sunday 10 h: 8 at 1.5x and 2 at 2x
    assert hours_of(classify_hours(week(8, 8, 8, 8, 8, 8, 10), CALIFORNIA)) == (40, 16, 2)
    # short week, 4 h a day for 7 days = 28 h: Sunday's 4 h still at 1.5x (seventh day)
    assert hours_of(classify_hours(week(4, 4, 4, 4, 4, 4, 4), CALIFORNIA)) == (24, 4, 0)
    # six days only (Sunday off): no seventh-day premium
    assert hours_of(classify_hours(week(4, 4, 4, 4, 4, 4, 0), CALIFORNIA)) == (24, 0, 0)
    # pay: rate 20, Mon-Sat 8, Sun 10 -> 40 x 20 + 16 x 30 + 2 x 40 = 800 + 480 + 80 = 1,360.00
    result = compute_payslip(hourly(20, week(8, 8, 8, 8, 8, 8, 10), CALIFORNIA), weekly())
    assert result.gross == D("1360.00")


def test_seventh_day_follows_the_workweek_start():
    # workweek Sunday..Saturday (6): the 7 days Mon..Sun straddle two workweeks -> no 7th day;
    # Sun 8 Jun is alone in its week. Hours 4 a day: all regular
    entries = week(4, 4, 4, 4, 4, 4, 4)
    assert hours_of(classify_hours(entries, CALIFORNIA, workweek_start=6)) == (28, 0, 0)
    assert hours_of(classify_hours(entries, CALIFORNIA, workweek_start=0)) == (24, 4, 0)


def test_weekly_threshold_follows_the_workweek_start():
    # Mon 2 - Sun 8 June: Mon-Sat 8 h, Sun 10 h. Workweek from Monday: 58 h in one week ->
    # 40 regular + 18 OT. Workweek from Sunday (6): Mon-Sat (48 h) close the week of Sun 1 June
    # -> 40 + 8 OT; Sun 8 June opens a new week -> 10 regular. 50 regular + 8 OT
    entries = week(8, 8, 8, 8, 8, 8, 10)
    assert hours_of(classify_hours(entries, FLSA, workweek_start=0)) == (40, 18, 0)
    assert hours_of(classify_hours(entries, FLSA, workweek_start=6)) == (50, 8, 0)


def test_flsa_weekly_only():
    # Mon-Fri 9 h = 45 h: no daily rule; the last 5 h of the week at 1.5x
    # rate 15: 40 x 15 + 5 x 22.50 = 600 + 112.50 = 712.50
    result = compute_payslip(hourly(15, week(9, 9, 9, 9, 9), FLSA), weekly())
    assert hours_of(result.hours) == (40, 5, 0)
    assert result.gross == D("712.50")
    # a 14 h day earns no daily overtime federally
    assert hours_of(classify_hours(week(14, 8, 8), FLSA)) == (30, 0, 0)


def test_alaska_daily_and_weekly_without_double_count():
    # Mon-Thu 10, Fri 4 = 44 h: daily OT 2 x 4 = 8; regular 32 + 4 = 36 <= 40 -> OT 8 (FLSA: 4)
    assert hours_of(classify_hours(week(10, 10, 10, 10, 4), ALASKA)) == (36, 8, 0)
    assert hours_of(classify_hours(week(10, 10, 10, 10, 4), FLSA)) == (40, 4, 0)
    # Mon-Fri 9, Sat 6 = 51 h: daily OT 5; regular 40 + 6 = 46 -> weekly 6 on Saturday; OT 11
    # 51 = 40 regular + 11 OT (each hour once)
    assert hours_of(classify_hours(week(9, 9, 9, 9, 9, 6), ALASKA)) == (40, 11, 0)
    # no double time in Alaska: a 14 h day is 8 + 6 at 1.5x
    assert hours_of(classify_hours(week(14), ALASKA)) == (8, 6, 0)


def test_weekly_count_including_daily_overtime_variant():
    # every worked hour counts toward 40: Mon 10 (2 daily OT), Tue-Thu 8 -> 34; Fri 8: the
    # first 6 h reach 40, the last 2 h are weekly OT. OT = 2 + 2 = 4, regular 38
    rule = OvertimeRule(
        "X", daily_threshold=D(8), weekly_threshold=D(40), weekly_excludes_daily_ot=False
    )
    assert hours_of(classify_hours(week(10, 8, 8, 8, 8), rule)) == (38, 4, 0)
    # the usual (excluding) count: regular 40, daily OT 2
    assert hours_of(classify_hours(week(10, 8, 8, 8, 8), ALASKA)) == (40, 2, 0)


def test_nevada_daily_overtime_only_below_one_and_a_half_minimum_wage():
    # minimum wage 12.00 -> 1.5x = 18.00. Mon 10, Tue-Thu 8 = 34 h
    entries = week(10, 8, 8, 8)
    # rate 15.00 < 18.00: daily OT 2 -> 32 x 15 + 2 x 22.50 = 480 + 45 = 525.00
    low = compute_payslip(hourly(15, entries, NEVADA, min_wage=D(12)), weekly())
    assert hours_of(low.hours) == (32, 2, 0)
    assert low.gross == D("525.00")
    # rate 18.00, not below 18.00: no daily OT -> 34 x 18 = 612.00
    edge = compute_payslip(hourly(18, entries, NEVADA, min_wage=D(12)), weekly())
    assert hours_of(edge.hours) == (34, 0, 0)
    assert edge.gross == D("612.00")
    # rate 25.00: no daily OT, but the weekly 40 still applies: Mon-Fri 10 = 50 -> 40 + 10 OT
    high = classify_hours(week(10, 10, 10, 10, 10), NEVADA, rate=D(25), min_wage=D(12))
    assert hours_of(high) == (40, 10, 0)
    # rate 17.99 with the same week: daily 2 x 5 = 10, regular 40 -> 40 + 10 as well
    low_week = classify_hours(week(10, 10, 10, 10, 10), NEVADA, rate=D("17.99"), min_wage=D(12))
    assert hours_of(low_week) == (40, 10, 0)


def test_nevada_rule_needs_the_minimum_wage():
    with pytest.raises(EngineInputError) as caught:
        compute_payslip(hourly(15, week(10), NEVADA), weekly())
    assert caught.value.code == "min_wage_missing"


def test_colorado_greater_of_daily_or_weekly():
    # Mon-Wed 14 h = 42 h: daily method 2 x 3 = 6 OT; weekly method 42 - 40 = 2 -> daily wins
    assert hours_of(classify_hours(week(14, 14, 14), COLORADO)) == (36, 6, 0)
    # Mon-Fri 10 h = 50 h: daily method 0; weekly method 10 -> weekly wins
    assert hours_of(classify_hours(week(10, 10, 10, 10, 10), COLORADO)) == (40, 10, 0)
    # Mon 13, Tue-Fri 9.5 = 51 h: daily 1; weekly 11 -> weekly
    assert hours_of(classify_hours(week(13, "9.5", "9.5", "9.5", "9.5"), COLORADO)) == (40, 11, 0)
    # no double time: a 16 h day is 12 + 4 at 1.5x
    assert hours_of(classify_hours(week(16), COLORADO)) == (12, 4, 0)
    # rate 30: 36 x 30 + 6 x 45 = 1,080 + 270 = 1,350.00
    result = compute_payslip(hourly(30, week(14, 14, 14), COLORADO), weekly())
    assert result.gross == D("1350.00")


def test_no_overtime_rule_pays_every_hour_regular():
    assert hours_of(classify_hours(week(14, 14, 14, 14), None)) == (56, 0, 0)


def test_entries_on_one_day_are_added_before_classifying():
    entries = [TimeEntry(MONDAY, D(6)), TimeEntry(MONDAY, D(5))]
    assert hours_of(classify_hours(entries, CALIFORNIA)) == (8, 3, 0)


def test_bad_hours_are_refused():
    with pytest.raises(EngineInputError):
        classify_hours([TimeEntry(MONDAY, D(-1))], FLSA)
    with pytest.raises(EngineInputError):
        classify_hours([TimeEntry(MONDAY, D(20)), TimeEntry(MONDAY, D(5))], FLSA)


def test_workweek_split_across_periods_is_paid_as_one_week():
    # FLSA, workweek from Monday, a period starting Wednesday 4 June 2025: Mon 2 and Tue 3 June
    # (10 h each) were paid in the previous period as 20 regular hours. This period: Wed-Fri
    # 10 h each.
    # The whole week: 50 h = 40 regular (Mon-Thu) + 10 OT (Fri). Minus the 20 already paid:
    # this period pays 20 regular + 10 OT = 30 h, rate 10: 200 + 150 = 350.00
    period = PeriodInput(dt.date(2025, 6, 4), dt.date(2025, 6, 30), 12, 7)
    entries = week(10, 10, 10, 10, 10)
    result = compute_payslip(hourly(10, entries, FLSA), period)
    assert hours_of(result.hours) == (20, 10, 0)
    assert result.gross == D("350.00")
    # the previous period, given only Mon and Tue, paid them regular
    before = PeriodInput(dt.date(2025, 5, 5), dt.date(2025, 6, 3), 12, 8)
    assert hours_of(compute_payslip(hourly(10, entries, FLSA), before).hours) == (20, 0, 0)


def test_colorado_split_week_reclassifies_the_days_already_paid():
    # Colorado, period starting Wed 4 Jun. Mon 2 and Tue 3 Jun at 13 h were paid as daily OT:
    # 24 regular + 2 OT. Whole week Mon 13, Tue 13, Wed-Fri 10 = 56 h: daily 2, weekly 16 ->
    # weekly: 40 regular + 16 OT. This period pays the difference: 16 regular + 14 OT = 30 h,
    # exactly the 30 h worked in it; rate 10: 160 + 210 = 370.00. The week in total:
    # 240 + 30 (before) + 370 = 640 = 40 x 10 + 16 x 15.
    period = PeriodInput(dt.date(2025, 6, 4), dt.date(2025, 6, 30), 12, 7)
    result = compute_payslip(hourly(10, week(13, 13, 10, 10, 10), COLORADO), period)
    assert hours_of(result.hours) == (16, 14, 0)
    assert result.gross == D("370.00")


def test_hourly_pay_only_inside_the_period_and_employment():
    # joins Wednesday: Mon and Tue entries are not paid (with a warning); Wed-Fri 8 h at 20
    emp = hourly(20, week(8, 8, 8, 8, 8), FLSA, start_date=MONDAY + dt.timedelta(days=2))
    result = compute_payslip(emp, weekly())
    assert result.gross == D("480.00")
    assert any("outside the employment dates" in w for w in result.warnings)
    # an entry after the period end is ignored
    later = hourly(20, week(8, start=MONDAY + dt.timedelta(days=7)), FLSA)
    assert compute_payslip(later, weekly()).gross == D("0.00")


# ---------------------------------------------------------------- salary and proration


def test_salary_is_annual_over_periods():
    # 1,200,000 / 12 = 100,000.00; 50,000 / 52 = 961.538... -> 961.54
    assert compute_payslip(salaried(1_200_000), monthly()).gross == D("100000.00")
    assert compute_payslip(salaried(50_000), weekly()).gross == D("961.54")


def test_joiner_and_leaver_prorated_by_calendar_days():
    # July has 31 days. Joins 10 July: employed 22 days -> 100,000 x 22 / 31 = 70,967.74
    joiner = compute_payslip(salaried(1_200_000, start_date=dt.date(2025, 7, 10)), monthly())
    assert joiner.gross == D("70967.74")
    assert line(joiner, "SALARY").quantity == 22
    # leaves 15 July: 15 days -> 100,000 x 15 / 31 = 48,387.10 (48,387.096...)
    leaver = compute_payslip(salaried(1_200_000, end_date=dt.date(2025, 7, 15)), monthly())
    assert leaver.gross == D("48387.10")
    # joins 10 and leaves 19 July: 10 days -> 32,258.06 (32,258.064...)
    both = salaried(1_200_000, start_date=dt.date(2025, 7, 10), end_date=dt.date(2025, 7, 19))
    assert compute_payslip(both, monthly()).gross == D("32258.06")
    # not yet employed: nothing, and a warning says why
    future = compute_payslip(salaried(1_200_000, start_date=dt.date(2025, 8, 1)), monthly())
    assert future.gross == D("0.00")
    assert future.warnings


def test_not_yet_employed_owes_no_tax():
    # joins in August: July pays nothing and projects nothing, so no tax is due or carried
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL)
    employee = salaried(1_200_000, start_date=dt.date(2025, 8, 1), progressive_tax=table)
    result = compute_payslip(employee, monthly())
    assert result.taxes == D("0.00")
    assert result.carried == {}


# ---------------------------------------------------------------- progressive tax


def test_reference_annual_tax_worked_example():
    # 250,000 x 0 + 250,000 x 5 % + 300,000 x 20 % = 12,500 + 60,000 = 72,500
    assert annual_progressive_tax(REFERENCE_BRACKETS, D(800_000)) == D("72500.00")


def test_reference_month_4_withholds_5722_22():
    # month 4 of 12 (9 remaining with this one): taxable so far 200,000; this month 75,000 of
    # which 65,625 regular (the rest a one-off). Projected 200,000 + 75,000 + 65,625 x 8
    # = 800,000 -> 72,500 a year; withheld 21,000 -> (72,500 - 21,000) / 9 = 5,722.22
    table = ProgressiveTax("REF", "Reference", REFERENCE_BRACKETS)
    tax = period_progressive_tax(
        table,
        taxable=D(75_000),
        regular_taxable=D(65_625),
        taxable_ytd=D(200_000),
        withheld_ytd=D(21_000),
        remaining_periods=9,
    )
    assert tax == D("5722.22")
    # the same through compute_payslip: salary 787,500 a year = 65,625 a month, bonus 9,375
    employee = salaried(
        787_500,
        earnings=[Earning("BONUS", "Bonus", D(9_375), taxable=True, recurring=False)],
        ytd=YearToDate(taxable=D(200_000), tax_withheld=D(21_000)),
        progressive_tax=table,
    )
    result = compute_payslip(employee, monthly(dt.date(2025, 10, 1), remaining=9))
    assert line(result, "REF").amount == D("5722.22")
    assert result.net == D("75000.00") - D("5722.22")


def test_tax_never_negative_when_over_withheld():
    table = ProgressiveTax("REF", "Reference", REFERENCE_BRACKETS)
    tax = period_progressive_tax(
        table,
        taxable=D(10_000),
        regular_taxable=D(10_000),
        taxable_ytd=D(30_000),
        withheld_ytd=D(50_000),
        remaining_periods=9,
    )
    assert tax == D("0.00")


@pytest.mark.parametrize(
    ("brackets", "income", "expected"),
    [
        # 300,000 is inside the nil band
        (BD_2025_GENERAL, 300_000, "0.00"),
        # 350,000 exactly: the nil band is [0, 350,000), nothing of the 5 % band used
        (BD_2025_GENERAL, 350_000, "0.00"),
        # 450,000: 100,000 x 5 % = 5,000
        (BD_2025_GENERAL, 450_000, "5000.00"),
        # 1,000,000: 5,000 + 400,000 x 10 % (40,000) + 150,000 x 15 % (22,500) = 67,500
        (BD_2025_GENERAL, 1_000_000, "67500.00"),
        # 5,000,000: 5,000 + 40,000 + 75,000 + 100,000 + 2,000,000 x 25 % (500,000)
        #            + 1,150,000 x 30 % (345,000) = 1,065,000
        (BD_2025_GENERAL, 5_000_000, "1065000.00"),
        # same income, AY 2024-25: 5,000 + 40,000 + 75,000 + 100,000 + 3,150,000 x 25 %
        #            (787,500) = 1,007,500
        (BD_2024_GENERAL, 5_000_000, "1007500.00"),
        # woman, 1,000,000 (threshold 400,000): 5,000 + 40,000 + 100,000 x 15 % = 60,000
        (BD_2025_WOMEN_SENIORS, 1_000_000, "60000.00"),
        # physically challenged, 600,000 (threshold 475,000): 100,000 x 5 % + 25,000 x 10 %
        # = 5,000 + 2,500 = 7,500
        (BD_2025_DISABLED, 600_000, "7500.00"),
        # war-wounded freedom fighter, 500,000 (threshold 500,000): nil
        (BD_2025_WAR_WOUNDED, 500_000, "0.00"),
        # 360,000.50 (general): 10,000.50 x 5 % = 500.025 -> 500.03 (half-up)
        (BD_2025_GENERAL, "360000.50", "500.03"),
    ],
)
def test_bangladesh_brackets(brackets, income, expected):
    assert annual_progressive_tax(brackets, D(income)) == D(expected)


def test_bangladesh_monthly_withholding_first_month():
    # July (12 remaining), 1,200,000 a year, nothing paid yet: projected 100,000 + 100,000 x 11
    # = 1,200,000 -> 5,000 + 40,000 + 350,000 x 15 % (52,500) = 97,500 a year -> 8,125.00
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL)
    result = compute_payslip(salaried(1_200_000, progressive_tax=table), monthly())
    assert line(result, "BD-IT").amount == D("8125.00")
    assert result.net == D("91875.00")


def test_annual_exemption_comes_off_the_projection():
    # 1,200,000 projected - 200,000 exemption = 1,000,000 -> 67,500 a year / 12 = 5,625.00
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL, annual_exemption=D(200_000))
    result = compute_payslip(salaried(1_200_000, progressive_tax=table), monthly())
    assert line(result, "BD-IT").amount == D("5625.00")


def test_mid_year_raise_self_corrects():
    # month 7 of 12 (6 remaining). 6 months at 100,000 withheld 8,125 each = 48,750; raise to
    # 150,000 a month. Projected 600,000 + 150,000 + 150,000 x 5 = 1,500,000 -> 5,000 + 40,000 +
    # 75,000 + 150,000 x 20 % (30,000) = 150,000 a year. (150,000 - 48,750) / 6 = 16,875.00
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL)
    employee = salaried(
        1_800_000,
        progressive_tax=table,
        ytd=YearToDate(taxable=D(600_000), tax_withheld=D(48_750)),
    )
    result = compute_payslip(employee, monthly(dt.date(2026, 1, 1), remaining=6))
    assert line(result, "BD-IT").amount == D("16875.00")


def test_leaver_settles_the_year_in_the_last_period():
    # leaves 31 Dec (month 6 of 12, 7 remaining). 5 months at 100,000 taxed 8,125 each = 40,625.
    # Nothing projected beyond December: 600,000 -> 5,000 + 150,000 x 10 % = 20,000 a year,
    # already over-withheld -> 0 this month
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL)
    employee = salaried(
        1_200_000,
        end_date=dt.date(2025, 12, 31),
        progressive_tax=table,
        ytd=YearToDate(taxable=D(500_000), tax_withheld=D(10_000)),
    )
    result = compute_payslip(employee, monthly(dt.date(2025, 12, 1), remaining=7))
    # 20,000 - 10,000 = 10,000 all due now (not spread over 7)
    assert line(result, "BD-IT").amount == D("10000.00")


def test_joiner_projection_uses_a_full_month():
    # joins 16 July (16 of 31 days): 100,000 x 16 / 31 = 51,612.90 this month; the 11 months
    # after are full: projected 51,612.90 + 100,000 x 11 = 1,151,612.90 ->
    # 5,000 + 40,000 + 301,612.90 x 15 % (45,241.935) = 90,241.935 -> 90,241.94 / 12 = 7,520.16
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL)
    employee = salaried(1_200_000, start_date=dt.date(2025, 7, 16), progressive_tax=table)
    result = compute_payslip(employee, monthly())
    assert result.gross == D("51612.90")
    assert line(result, "BD-IT").amount == D("7520.16")


def test_tax_table_rejects_overlapping_brackets():
    with pytest.raises(EngineInputError):
        ProgressiveTax("X", "X", (Bracket(D(0), D(100), D(0)), Bracket(D(50), None, D("0.1"))))
    with pytest.raises(EngineInputError):
        ProgressiveTax("X", "X", (Bracket(D(0), None, D(0)), Bracket(D(50), None, D("0.1"))))


# ---------------------------------------------------------------- flat taxes


SOCIAL_SECURITY = FlatTax(
    "SS", "Social security", D("0.062"), wage_base=D(176_100), employer_rate=D("0.062")
)


def test_flat_tax_below_the_wage_base():
    # 20,000 a month, 100,000 so far: 20,000 x 6.2 % = 1,240.00, employer the same
    employee = salaried(
        240_000, flat_taxes=[SOCIAL_SECURITY], ytd=YearToDate(flat_wages={"SS": D(100_000)})
    )
    result = compute_payslip(employee, monthly())
    assert line(result, "SS", "tax").amount == D("1240.00")
    assert line(result, "SS", "employer").amount == D("1240.00")
    assert result.employer_contributions == D("1240.00")
    assert result.net == D("18760.00")  # employer share is outside net


def test_flat_tax_crossing_the_wage_base_mid_year():
    # wage base 176,100. 160,000 taxed so far; this month 20,000 -> only 16,100 subject:
    # 16,100 x 6.2 % = 998.20; the line reports the 16,100 wages for the year-to-date
    employee = salaried(
        240_000, flat_taxes=[SOCIAL_SECURITY], ytd=YearToDate(flat_wages={"SS": D(160_000)})
    )
    result = compute_payslip(employee, monthly())
    tax = line(result, "SS", "tax")
    assert tax.amount == D("998.20")
    assert tax.quantity == D(16_100)
    assert line(result, "SS", "employer").amount == D("998.20")
    # the next month: the base is reached, nothing more
    after = salaried(
        240_000, flat_taxes=[SOCIAL_SECURITY], ytd=YearToDate(flat_wages={"SS": D(176_100)})
    )
    result = compute_payslip(after, monthly())
    assert result.taxes == D("0.00")
    assert result.employer_contributions == D("0.00")


def test_uncapped_flat_tax():
    # Medicare-style 1.45 % without a base on 20,000: 290.00
    medicare = FlatTax("MED", "Medicare", D("0.0145"))
    result = compute_payslip(salaried(240_000, flat_taxes=[medicare]), monthly())
    assert result.taxes == D("290.00")


# ---------------------------------------------------------------- earnings and deductions

PF = Deduction(
    "PF", "Provident fund", pre_tax=True, method="percent", value=D("0.10"), employer_rate=D("0.10")
)
HEALTH = Deduction("HI", "Health insurance", pre_tax=False, method="fixed", value=D(1_500))


def test_earnings_taxable_and_not():
    # salary 50,000 + house rent allowance 10,000 (taxable, recurring) + conveyance 2,500
    # (not taxable) + commission 4,321.555 (one-off, rounds half-up to 4,321.56)
    employee = salaried(
        600_000,
        earnings=[
            Earning("HRA", "House rent", D(10_000), taxable=True, recurring=True),
            Earning("CONV", "Conveyance", D(2_500), taxable=False, recurring=True),
            Earning("COMM", "Commission", D("4321.555"), taxable=True, recurring=False),
        ],
    )
    result = compute_payslip(employee, monthly())
    assert result.gross == D("66821.56")
    assert result.taxable == D("64321.56")
    assert line(result, "COMM").amount == D("4321.56")


def test_provident_fund_pre_tax_with_employer_share_and_health_post_tax():
    # basic 100,000: PF 10 % = 10,000 pre-tax, employer another 10,000 outside net
    # taxable 90,000 -> projected 90,000 x 12 = 1,080,000 (the PF comes off every month)
    #   5,000 + 40,000 + 230,000 x 15 % (34,500) = 79,500 a year / 12 = 6,625.00
    # health 1,500 post-tax. net = 100,000 - 6,625 - 10,000 - 1,500 = 81,875.00
    table = ProgressiveTax("BD-IT", "Income tax", BD_2025_GENERAL)
    employee = salaried(1_200_000, deductions=[PF, HEALTH], progressive_tax=table)
    result = compute_payslip(employee, monthly())
    assert result.pre_tax_deductions == D("10000.00")
    assert result.taxable == D("90000.00")
    assert line(result, "BD-IT").amount == D("6625.00")
    assert result.deductions == D("11500.00")
    assert line(result, "PF", "employer").amount == D("10000.00")
    assert result.employer_contributions == D("10000.00")
    assert result.net == D("81875.00")
    assert [x.kind for x in result.lines] == [
        "earning",
        "deduction",
        "tax",
        "deduction",
        "employer",
    ]


def test_percent_of_gross():
    # 2 % of gross 60,000 (salary 50,000 + allowance 10,000) = 1,200.00
    union = Deduction(
        "UN", "Union dues", pre_tax=False, method="percent", value=D("0.02"), percent_of="gross"
    )
    employee = salaried(
        600_000,
        earnings=[Earning("HRA", "House rent", D(10_000), recurring=True)],
        deductions=[union],
    )
    assert compute_payslip(employee, monthly()).deductions == D("1200.00")


def test_annual_cap_limits_a_deduction():
    # PF capped at 105,000 a year, 100,000 taken: only 5,000 this month; the employer share
    # shrinks in the same proportion: 10,000 x 5,000 / 10,000 = 5,000
    capped = Deduction(
        "PF",
        "Provident fund",
        True,
        "percent",
        D("0.10"),
        annual_cap=D(105_000),
        employer_rate=D("0.10"),
    )
    employee = salaried(
        1_200_000, deductions=[capped], ytd=YearToDate(deductions={"PF": D(100_000)})
    )
    result = compute_payslip(employee, monthly())
    assert line(result, "PF", "deduction").amount == D("5000.00")
    assert line(result, "PF", "employer").amount == D("5000.00")
    # taken_ytd on the deduction wins over the year-to-date mapping; cap reached -> nothing
    done = Deduction(
        "PF", "PF", True, "percent", D("0.10"), annual_cap=D(105_000), taken_ytd=D(105_000)
    )
    result = compute_payslip(salaried(1_200_000, deductions=[done]), monthly())
    assert result.deductions == D("0.00")
    assert not result.warnings


def test_loan_repayment_limited_by_balance():
    # 5,000 a month, 3,200.50 still owed: 3,200.50
    loan = Deduction("LOAN", "Salary advance", False, "fixed", D(5_000), balance=D("3200.50"))
    result = compute_payslip(salaried(600_000, deductions=[loan]), monthly())
    assert line(result, "LOAN").amount == D("3200.50")
    assert result.net == D("50000.00") - D("3200.50")


def test_uncollectable_deduction_is_carried_with_a_warning():
    # joins 29 July: 3 of 31 days of 31,000 a month = 3,000.00. Tax 6.2 % = 186.00.
    # health 1,500 then loan 2,000: 3,000 - 186 - 1,500 = 1,314 left for the loan ->
    # 686 carried. net 0.00
    loan = Deduction("LOAN", "Loan", False, "fixed", D(2_000), balance=D(10_000))
    employee = salaried(
        372_000,
        start_date=dt.date(2025, 7, 29),
        deductions=[HEALTH, loan],
        flat_taxes=[FlatTax("SS", "Social security", D("0.062"))],
    )
    result = compute_payslip(employee, monthly())
    assert result.gross == D("3000.00")
    assert line(result, "SS").amount == D("186.00")
    assert line(result, "HI").amount == D("1500.00")
    assert line(result, "LOAN").amount == D("1314.00")
    assert result.carried == {"LOAN": D("686.00")}
    assert result.net == D("0.00")
    assert any("LOAN" in w for w in result.warnings)


def test_carried_amounts_are_collected_next_period_as_arrears():
    # the month after the previous test: full month 31,000; SS 6.2 % = 1,922.00; health 1,500;
    # the loan 2,000 + 686 carried = 2,686 (balance 8,686 left); net 31,000 - 1,922 - 1,500
    # - 2,686 = 24,892.00
    loan = Deduction("LOAN", "Loan", False, "fixed", D(2_000), balance=D(8_686))
    employee = salaried(
        372_000,
        deductions=[HEALTH, loan],
        flat_taxes=[FlatTax("SS", "Social security", D("0.062"))],
        arrears={"LOAN": D("686.00")},
    )
    result = compute_payslip(employee, monthly(dt.date(2025, 8, 1), remaining=11))
    assert line(result, "LOAN").amount == D("2686.00")
    assert result.net == D("24892.00")
    assert result.carried == {}


def test_arrears_of_taxes_and_of_ended_deductions():
    # SS arrears 100 are added to this month's 6.2 % of 10,000 (620.00) -> 720.00;
    # progressive-tax arrears are ignored (the projection collects them: they lowered the tax
    # withheld so far); an ended deduction "OLD" is collected last as a post-tax deduction
    # and a loan's arrears stay within its balance (500 + 300 owed, balance 600 -> 600)
    loan = Deduction("LOAN", "Loan", False, "fixed", D(500), balance=D(600))
    employee = salaried(
        120_000,
        deductions=[loan],
        flat_taxes=[FlatTax("SS", "Social security", D("0.062"))],
        progressive_tax=ProgressiveTax("REF", "Reference", REFERENCE_BRACKETS),
        arrears={"SS": D(100), "REF": D(5_000), "OLD": D(250), "LOAN": D(300)},
    )
    result = compute_payslip(employee, monthly())
    assert line(result, "SS").amount == D("720.00")
    assert [x.code for x in result.lines if x.code == "REF"] == []  # 120,000 a year is untaxed
    assert line(result, "OLD").amount == D("250.00")
    assert line(result, "LOAN").amount == D("600.00")
    assert result.net == D("10000.00") - D("720.00") - D("600.00") - D("250.00")


def test_taxes_are_collected_before_post_tax_deductions():
    # gross 1,000; flat tax 50 % (contrived) = 500, health 1,500: health gets the 500 left
    employee = salaried(12_000, deductions=[HEALTH], flat_taxes=[FlatTax("T", "Tax", D("0.5"))])
    result = compute_payslip(employee, monthly())
    assert result.taxes == D("500.00")
    assert result.deductions == D("500.00")
    assert result.carried == {"HI": D("1000.00")}
    assert result.net == D("0.00")


def test_pre_tax_deduction_cannot_exceed_taxable_pay():
    # taxable pay 1,000 (non-taxable allowance 500): a fixed pre-tax 1,200 takes 1,000,
    # carries 200; taxable 0; net = 1,500 - 1,000 = 500
    pension = Deduction("PEN", "Pension", True, "fixed", D(1_200))
    employee = salaried(
        12_000,
        earnings=[Earning("CONV", "Conveyance", D(500), taxable=False)],
        deductions=[pension],
    )
    result = compute_payslip(employee, monthly())
    assert result.taxable == D("0.00")
    assert result.carried == {"PEN": D("200.00")}
    assert result.net == D("500.00")


def test_fixed_deduction_with_employer_match():
    # 401(k)-style fixed 1,000 pre-tax with a 50 % match: employer 500
    k = Deduction("401K", "401(k)", True, "fixed", D(1_000), employer_rate=D("0.5"))
    result = compute_payslip(salaried(120_000, deductions=[k]), monthly())
    assert line(result, "401K", "employer").amount == D("500.00")


def test_hourly_full_gross_to_net():
    # California, rate 20, the worked week (1,020.00); PF 5 % of basic = 51.00 pre-tax;
    # taxable 969.00; 6.2 % = 60.078 -> 60.08; health 100 post-tax;
    # net = 1,020 - 60.08 - 51 - 100 = 808.92
    pf = Deduction("PF", "PF", True, "percent", D("0.05"))
    health = Deduction("HI", "Health", False, "fixed", D(100))
    employee = hourly(
        20,
        week(10, 13, 8, 8, 8),
        CALIFORNIA,
        deductions=[pf, health],
        flat_taxes=[FlatTax("SS", "Social security", D("0.062"))],
    )
    result = compute_payslip(employee, weekly())
    assert result.taxable == D("969.00")
    assert result.taxes == D("60.08")
    assert result.net == D("808.92")
    assert result.net == result.gross - result.taxes - result.deductions


# ---------------------------------------------------------------- input validation


def test_inputs_are_validated_with_stable_codes():
    with pytest.raises(EngineInputError):
        EmployeeInput("E", "contractor", annual_salary=D(1))
    with pytest.raises(EngineInputError):
        EmployeeInput("E", "salaried")
    with pytest.raises(EngineInputError):
        EmployeeInput("E", "hourly")
    with pytest.raises(EngineInputError):
        PeriodInput(dt.date(2025, 7, 31), dt.date(2025, 7, 1), 12, 1)
    with pytest.raises(EngineInputError):
        PeriodInput(dt.date(2025, 7, 1), dt.date(2025, 7, 31), 12, 0)
    with pytest.raises(EngineInputError):
        Deduction("X", "X", True, "percentage", D(1))
    with pytest.raises(EngineInputError):
        OvertimeRule("X", daily_threshold=D(12), daily_double_threshold=D(8))
    with pytest.raises(EngineInputError) as caught:
        Earning("B", "B", D(-1))
    assert caught.value.code == "earning_invalid"
    with pytest.raises(EngineInputError):
        FlatTax("SS", "SS", D("6.2"))  # a percentage where a fraction is expected
    with pytest.raises(EngineInputError):
        ProgressiveTax("X", "X", (Bracket(D(0), None, D(10)),))


def test_floats_are_refused():
    with pytest.raises(TypeError):
        compute_payslip(EmployeeInput("E", "salaried", annual_salary=1200.0), monthly())
