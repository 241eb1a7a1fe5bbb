"""Pay runs, exactly once: `PayrollProcessor(period).run_payroll(force=False)`.

Who runs a period is decided in three layers:

1. a token-based lock `payroll_processing_<id>` (Redis SET NX with expiry; core.locks) keeps a
   duplicate worker from even starting;
2. the database has the final word: a conditional `UPDATE ... SET status='processing' WHERE
   status IN ('active','failed')` must change exactly one row, and a partial unique index allows
   one running run per period;
3. payslips are unique per employee and period while live (partial unique constraint), and one
   run per period may be completed, so even a lease that expired during a long pause cannot pay
   anybody twice.

A run preloads everything it needs in a fixed number of queries (the count does not grow with
the number of employees), computes every payslip in memory with the pure engine
(payroll/engine.py), writes payslips and lines set-based (COPY on PostgreSQL, bulk INSERTs
elsewhere) and posts one balanced journal entry keyed by the run. Periods with more than
PAYROLL_FAN_OUT_THRESHOLD employees are split into chunks of PAYROLL_CHUNK_SIZE; each chunk is
its own transaction, claimed with a conditional update, its payslips stay `processing` until
the last chunk finalises the run (posting, payslips issued, period completed) exactly once
under the run's row lock. A crash leaves a failed run with nothing issued or posted; running
the period again discards the unfinished payslips and starts a new attempt.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from core.errors import ConflictError, DomainError, ServiceUnavailable, ValidationFailed
from core.locks import LockUnavailable, lock_acquire, lock_holder, lock_release
from core.services import audit_record
from payroll import engine
from payroll.automation import rule_is_due
from payroll.metrics import (
    payroll_batch_jobs_active,
    payroll_calculation_duration_seconds,
    payroll_calculations_total,
)
from payroll.models import (
    ChunkStatus,
    Employee,
    EmployeeDeduction,
    EmployeeEarning,
    FlatTax,
    LineKind,
    OvertimeRule,
    PayRate,
    PayrollPeriod,
    PayrollRun,
    PayrollRunChunk,
    Payslip,
    PayslipLine,
    PayslipStatus,
    PayType,
    PeriodStatus,
    RunStatus,
    RunTrigger,
    TaxBracket,
    TaxTable,
    TimeEntry,
)
from payroll.reference_data import payslip_tax_date, payslip_tax_year

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
SYSTEM_JOB = "payroll.run"
INCOME_TAX_CODE = "INCOME_TAX"
RUNNABLE = (PeriodStatus.ACTIVE, PeriodStatus.FAILED)
UNFINISHED = (PayslipStatus.PENDING, PayslipStatus.PROCESSING)

ROLE_SALARY = "salary_expense"
ROLE_EMPLOYER_EXPENSE = "employer_contribution_expense"
ROLE_TAX = "payroll_tax_payable"
ROLE_DEDUCTIONS = "deductions_payable"
ROLE_LOANS = "employee_loans"
ROLE_EMPLOYER_PAYABLE = "employer_contributions_payable"
ROLE_NET = "salaries_payable"


def lock_name(period_id: int) -> str:
    return f"payroll_processing_{period_id}"


def lock_ttl() -> int:
    return int(settings.PAYROLL_LOCK_TTL_SECONDS)


# --- outcomes and refusals ---------------------------------------------------------------------


class PayrollNotDue(ConflictError):
    code = "not_due"


class PayrollAlreadyCompleted(ConflictError):
    code = "already_completed"


class PayrollBusy(ConflictError):
    code = "period_busy"


@dataclass
class RunOutcome:
    """What run_payroll did. `status`: completed, dispatched (chunks queued for workers),
    already_completed, not_due, busy, not_runnable, failed, unavailable (Redis could not be
    reached to start it: nothing changed, try again)."""

    status: str
    period_id: int
    run: PayrollRun | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "dispatched", "already_completed", "not_due", "busy")

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "not_runnable", "unavailable")


# --- preloading --------------------------------------------------------------------------------


def _country(jurisdiction: str) -> str:
    return jurisdiction.split("-", 1)[0]


def _effective(rows, day: dt.date):
    return [
        r
        for r in rows
        if r["effective_from"] <= day and (r["effective_to"] is None or r["effective_to"] >= day)
    ]


def _pick(rows_by_jurisdiction: dict, jurisdiction: str, company_id: int):
    """The row for the exact jurisdiction, else for its country; the company's own row
    before the shared one; the latest effective_from first."""
    for key in (jurisdiction, _country(jurisdiction)):
        rows = rows_by_jurisdiction.get(key)
        if rows:
            rows = sorted(rows, key=lambda r: (r["company_id"] == company_id, r["effective_from"]))
            return rows[-1]
    return None


def period_tax_year(period: PayrollPeriod, country: str) -> tuple[dt.date, dt.date]:
    """The tax year the period's payslips of employees in `country` belong to."""
    return payslip_tax_year(country, period.company, period.end_date, period.pay_date)


def remaining_periods(period: PayrollPeriod, tax_year_end: dt.date) -> int:
    """Periods left in the tax year, this one included."""
    per_year = period.periods_per_year
    end = period.end_date
    months_after = (tax_year_end.year - end.year) * 12 + tax_year_end.month - end.month
    if period.period_type == "monthly":
        count = months_after + 1
    elif period.period_type == "semi_monthly":
        count = 2 * months_after + (2 if end.day <= 15 else 1)
    else:
        # later periods of the same length that end inside the tax year
        length = (period.end_date - period.start_date).days + 1
        count = 1 + max(0, (tax_year_end - end).days // length)
    return max(1, min(per_year, count))


@dataclass
class Reference:
    """Statutory and company reference data for one period, preloaded once."""

    tax_tables: dict  # (jurisdiction, category) -> list of table rows with "brackets"
    flat_taxes: dict  # jurisdiction -> rows
    overtime: dict  # jurisdiction -> rows
    pay_rates: dict  # (role, jurisdiction, pay_type) -> rows
    cache: dict = field(default_factory=dict)


def _load_reference(period: PayrollPeriod) -> Reference:
    """Rows in force on the period's last day; tax tables and flat taxes (rates, wage bases)
    in force on the day that places the payslip in its tax year (the pay date in the US)."""
    company_id = period.company_id
    day = period.end_date

    def tax_day(row) -> dt.date:
        return payslip_tax_date(_country(row["jurisdiction"]), period.end_date, period.pay_date)

    def in_force(rows):
        return [
            r
            for r in rows
            if r["effective_from"] <= tax_day(r)
            and (r["effective_to"] is None or r["effective_to"] >= tax_day(r))
        ]

    shared_or_own = Q(company__isnull=True) | Q(company_id=company_id)
    tables = list(
        TaxTable.objects.filter(shared_or_own, is_active=True).values(
            "id",
            "company_id",
            "jurisdiction",
            "category",
            "name",
            "annual_exemption",
            "effective_from",
            "effective_to",
        )
    )
    tables = in_force(tables)
    brackets = defaultdict(list)
    for table_id, lower, upper, rate in TaxBracket.objects.filter(
        table_id__in=[t["id"] for t in tables]
    ).values_list("table_id", "lower", "upper", "rate"):
        brackets[table_id].append(engine.Bracket(lower, upper, rate))
    tax_tables = defaultdict(list)
    for table in tables:
        table["brackets"] = tuple(brackets[table["id"]])
        tax_tables[(table["jurisdiction"], table["category"])].append(table)
    flat = defaultdict(list)
    for row in in_force(
        list(
            FlatTax.objects.filter(shared_or_own, is_active=True).values(
                "id",
                "company_id",
                "jurisdiction",
                "code",
                "name",
                "employee_rate",
                "employer_rate",
                "wage_base",
                "effective_from",
                "effective_to",
            )
        )
    ):
        flat[row["jurisdiction"]].append(row)
    overtime = defaultdict(list)
    for row in _effective(
        list(OvertimeRule.objects.filter(shared_or_own, is_active=True).values()), day
    ):
        overtime[row["jurisdiction"]].append(row)
    rates = defaultdict(list)
    for row in _effective(list(PayRate.objects.filter(company_id=company_id).values()), day):
        rates[(row["role"], row["jurisdiction"], row["pay_type"])].append(row)
    return Reference(tax_tables=tax_tables, flat_taxes=flat, overtime=overtime, pay_rates=rates)


def _progressive_tax(ref: Reference, company_id: int, jurisdiction: str, category: str):
    key = ("tax", jurisdiction, category)
    if key not in ref.cache:
        table = None
        for cat in (category, "general"):
            by_jurisdiction = {
                j: rows for (j, c), rows in ref.tax_tables.items() if c == cat and rows
            }
            table = _pick(by_jurisdiction, jurisdiction, company_id)
            if table is not None:
                break
        ref.cache[key] = (
            None
            if table is None
            else engine.ProgressiveTax(
                code=INCOME_TAX_CODE,
                name=table["name"],
                brackets=table["brackets"],
                annual_exemption=table["annual_exemption"],
            )
        )
    return ref.cache[key]


def _flat_taxes(ref: Reference, company_id: int, jurisdiction: str) -> tuple:
    key = ("flat", jurisdiction)
    if key not in ref.cache:
        chosen: dict[str, dict] = {}
        for j in (_country(jurisdiction), jurisdiction):
            for row in ref.flat_taxes.get(j, ()):
                current = chosen.get(row["code"])
                rank = (j == jurisdiction, row["company_id"] == company_id, row["effective_from"])
                if current is None or rank > current[0]:
                    chosen[row["code"]] = (rank, row)
        ref.cache[key] = tuple(
            engine.FlatTax(
                code=row["code"],
                name=row["name"],
                rate=row["employee_rate"],
                wage_base=row["wage_base"],
                employer_rate=row["employer_rate"],
            )
            for _, row in (chosen[code] for code in sorted(chosen))
        )
    return ref.cache[key]


def _overtime(ref: Reference, company_id: int, jurisdiction: str):
    key = ("ot", jurisdiction)
    if key not in ref.cache:
        row = _pick(ref.overtime, jurisdiction, company_id)
        if row is None:
            ref.cache[key] = (None, None)
        else:
            ref.cache[key] = (
                engine.OvertimeRule(
                    code=row["jurisdiction"],
                    daily_threshold=row["daily_threshold"],
                    daily_double_threshold=row["daily_double_threshold"],
                    weekly_threshold=row["weekly_threshold"],
                    seventh_day=row["seventh_day"],
                    weekly_excludes_daily_ot=row["weekly_excludes_daily_ot"],
                    daily_requires_rate_below_min_wage_multiple=row[
                        "daily_requires_rate_below_min_wage_multiple"
                    ],
                    greater_of_daily_or_weekly=row["greater_of_daily_or_weekly"],
                    ot_multiplier=row["ot_multiplier"],
                    dt_multiplier=row["dt_multiplier"],
                    seventh_day_double_after=row["seventh_day_double_after"],
                ),
                row["minimum_wage"],
            )
    return ref.cache[key]


def _pay_rate(ref: Reference, role: str, jurisdiction: str, pay_type: str):
    rows = ref.pay_rates.get((role, jurisdiction, pay_type))
    if not rows:
        return None
    row = max(rows, key=lambda r: r["effective_from"])
    return row["hourly_rate"] if pay_type == PayType.HOURLY else row["annual_salary"]


EMPLOYEE_COLUMNS = (
    "id",
    "code",
    "name",
    "pay_type",
    "annual_salary",
    "hourly_rate",
    "role",
    "jurisdiction",
    "tax_category",
    "start_date",
    "end_date",
    "department_id",
    "cost_center_id",
)


def earlier_open_period(period: PayrollPeriod) -> PayrollPeriod | None:
    """The company's earliest live period before this one that is not completed (or None)."""
    return (
        PayrollPeriod.objects.filter(company_id=period.company_id, start_date__lt=period.start_date)
        .exclude(status__in=[PeriodStatus.COMPLETED, PeriodStatus.CANCELLED])
        .order_by("start_date", "pk")
        .first()
    )


def employees_in_scope(period: PayrollPeriod):
    """Employees employed for at least one day of the period."""
    return Employee.objects.filter(
        company_id=period.company_id, start_date__lte=period.end_date
    ).filter(Q(end_date__isnull=True) | Q(end_date__gte=period.start_date))


@dataclass
class Batch:
    """Everything one computation needs, loaded in a fixed number of queries."""

    period: PayrollPeriod
    employees: list[dict]
    time_entries: dict
    earnings: dict
    deductions: dict
    ytd: dict
    ytd_lines: dict
    arrears: dict
    ref: Reference
    tax_years: dict
    # employee -> deduction type code -> that employee's rows of the type (any state, by id):
    # arrears of a deduction whose row has ended still belong to it (a loan's balance)
    arrears_rows: dict = field(default_factory=dict)


def _load_batch(period: PayrollPeriod, employee_ids: list[int] | None = None) -> Batch:
    company_id = period.company_id
    scope = employees_in_scope(period)
    if employee_ids is not None:
        scope = scope.filter(pk__in=employee_ids)
    employees = list(scope.order_by("pk").values(*EMPLOYEE_COLUMNS))
    ids = None if employee_ids is None else [e["id"] for e in employees]
    workweek_start = settings.PAYROLL_WORKWEEK_START
    context_from = period.start_date - dt.timedelta(
        days=(period.start_date.weekday() - workweek_start) % 7
    )

    def for_employees(qs, column="employee_id"):
        return qs if ids is None else qs.filter(**{f"{column}__in": ids})

    time_entries = defaultdict(list)
    for employee_id, day, hours in for_employees(
        TimeEntry.objects.filter(
            company_id=company_id, day__gte=context_from, day__lte=period.end_date
        )
    ).values_list("employee_id", "day", "hours"):
        time_entries[employee_id].append(engine.TimeEntry(day, hours))

    earnings = defaultdict(list)
    for row in for_employees(
        EmployeeEarning.objects.filter(company_id=company_id).filter(
            Q(period_id=period.pk)
            | Q(
                period__isnull=True,
                effective_from__lte=period.end_date,
            )
            & (Q(effective_to__isnull=True) | Q(effective_to__gte=period.start_date))
        )
    ).values_list(
        "employee_id",
        "earning_type__code",
        "earning_type__name",
        "amount",
        "earning_type__is_taxable",
        "period_id",
        "memo",
    ):
        employee_id, code, name, amount, taxable, period_id, memo = row
        earnings[employee_id].append(
            engine.Earning(
                code=code,
                name=memo or name,
                amount=amount,
                taxable=taxable,
                recurring=period_id is None,
            )
        )

    deductions = defaultdict(list)
    for row in (
        for_employees(
            EmployeeDeduction.objects.filter(company_id=company_id, is_active=True)
            .filter(Q(start_date__isnull=True) | Q(start_date__lte=period.end_date))
            .filter(Q(end_date__isnull=True) | Q(end_date__gte=period.start_date))
            .filter(deduction_type__is_active=True)
        )
        .order_by("employee_id", "deduction_type__timing", "id")
        .values(
            "id",
            "employee_id",
            "amount",
            "rate",
            "balance",
            "deduction_type__code",
            "deduction_type__name",
            "deduction_type__timing",
            "deduction_type__calculation",
            "deduction_type__default_amount",
            "deduction_type__default_rate",
            "deduction_type__annual_cap",
            "deduction_type__employer_rate",
            "deduction_type__has_balance",
            "deduction_type__percent_of",
        )
    ):
        deductions[row["employee_id"]].append(row)

    # Year to date: payslips issued earlier in each tax year the employees are in (a company
    # paying in two countries has two tax years; each employee takes the rows of its own).
    ref = _load_reference(period)
    # tax year by country (payslip_tax_year); employees are matched to it by its first day
    tax_years = {
        country: period_tax_year(period, country)
        for country in {_country(e["jurisdiction"]) for e in employees}
    }
    month_of = {e["id"]: tax_years[_country(e["jurisdiction"])][0] for e in employees}
    ytd: dict[int, dict] = {}
    ytd_lines: dict[int, dict] = defaultdict(dict)
    # Line sums are read only for what needs them: wages under flat taxes with a wage base,
    # deductions with an annual cap.
    flat_codes = {
        tax.code
        for jurisdiction in {e["jurisdiction"] for e in employees}
        for tax in _flat_taxes(ref, company_id, jurisdiction)
        if tax.wage_base is not None
    }
    capped_codes = {
        row["deduction_type__code"]
        for rows in deductions.values()
        for row in rows
        if row["deduction_type__annual_cap"] is not None
    }
    wanted_lines = Q(kind=LineKind.TAX, code__in=sorted(flat_codes)) | Q(
        kind__in=[LineKind.PRE_TAX_DEDUCTION, LineKind.POST_TAX_DEDUCTION],
        code__in=sorted(capped_codes),
    )
    for month in sorted(set(month_of.values())):
        ty_start = month
        issued = for_employees(
            Payslip.objects.filter(
                company_id=company_id,
                status=PayslipStatus.ISSUED,
                tax_year_start=ty_start,
                period_end__lt=period.start_date,
            )
        )
        for row in issued.values("employee_id").annotate(
            gross=Sum("gross"),
            taxable=Sum("taxable"),
            income_tax=Sum("income_tax"),
            taxes=Sum("taxes"),
            deductions=Sum("deductions"),
            net=Sum("net"),
        ):
            if month_of.get(row["employee_id"]) == month:
                ytd[row["employee_id"]] = row
        if flat_codes or capped_codes:
            lines = for_employees(
                PayslipLine.objects.filter(
                    wanted_lines,
                    payslip__company_id=company_id,
                    payslip__status=PayslipStatus.ISSUED,
                    payslip__tax_year_start=ty_start,
                    payslip__period_end__lt=period.start_date,
                ),
                "payslip__employee_id",
            )
            for employee_id, kind, code, amount, quantity in lines.values_list(
                "payslip__employee_id", "kind", "code"
            ).annotate(amount=Sum("amount"), quantity=Sum("quantity")):
                if month_of.get(employee_id) == month:
                    ytd_lines[employee_id][(kind, code)] = (amount, quantity)
    # Amounts earlier periods could not collect (the engine's `carried`), from each employee's
    # latest issued payslip before this period; few payslips carry any, so they are read first.
    latest = Payslip.objects.filter(
        employee_id=OuterRef("employee_id"),
        status=PayslipStatus.ISSUED,
        period_end__lt=period.start_date,
    ).order_by("-period_end", "-pk")
    arrears = {
        employee_id: {code: Decimal(amount) for code, amount in carried.items()}
        for employee_id, carried in for_employees(
            Payslip.objects.filter(
                company_id=company_id,
                status=PayslipStatus.ISSUED,
                period_end__lt=period.start_date,
            )
            .exclude(carried={})
            .filter(pk=Subquery(latest.values("pk")[:1]))
        ).values_list("employee_id", "carried")
        if carried
    }
    arrears_rows: dict[int, dict] = defaultdict(lambda: defaultdict(list))
    if arrears:
        for row in (
            EmployeeDeduction.objects.filter(company_id=company_id, employee_id__in=list(arrears))
            .order_by("employee_id", "id")
            .values(
                "id",
                "employee_id",
                "balance",
                "deduction_type__code",
                "deduction_type__timing",
                "deduction_type__has_balance",
            )
        ):
            arrears_rows[row["employee_id"]][row["deduction_type__code"]].append(row)
    return Batch(
        arrears_rows=arrears_rows,
        arrears=arrears,
        period=period,
        employees=employees,
        time_entries=time_entries,
        earnings=earnings,
        deductions=deductions,
        ytd=ytd,
        ytd_lines=ytd_lines,
        ref=ref,
        tax_years=tax_years,
    )


def _cents(value) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


# --- computing ---------------------------------------------------------------------------------


@dataclass
class Computed:
    employee: dict
    result: engine.PayResult
    deduction_rows: dict  # engine code -> employee deduction row
    flat_codes: frozenset
    prior: dict
    arrears_only_rows: dict = field(default_factory=dict)  # carried code -> row no longer in force


def compute_batch(batch: Batch) -> tuple[list[Computed], list[str]]:
    """Gross to net for every employee of the batch, in memory. Returns the results and the
    errors (one line per employee whose data cannot be computed)."""
    period = batch.period
    company = period.company
    ref = batch.ref
    per_year = period.periods_per_year
    period_inputs = {
        month: engine.PeriodInput(
            start=period.start_date,
            end=period.end_date,
            periods_per_year=per_year,
            remaining_periods=remaining_periods(period, ty_end),
            workweek_start=settings.PAYROLL_WORKWEEK_START,
        )
        for month, (_ty_start, ty_end) in batch.tax_years.items()
    }  # keyed by country
    results: list[Computed] = []
    errors: list[str] = []
    no_ytd = engine.YearToDate()
    for emp in batch.employees:
        emp_id = emp["id"]
        jurisdiction = emp["jurisdiction"]
        month = _country(jurisdiction)
        try:
            overtime, min_wage = _overtime(ref, company.pk, jurisdiction)
            flat = _flat_taxes(ref, company.pk, jurisdiction)
            flat_codes = frozenset(f.code for f in flat)
            deduction_rows = {}
            inputs = []
            seen: dict[str, int] = {}
            lines_ytd = batch.ytd_lines.get(emp_id, {})
            for row in batch.deductions.get(emp_id, ()):
                code = row["deduction_type__code"]
                seen[code] = seen.get(code, 0) + 1
                if seen[code] > 1:
                    code = f"{code}-{seen[code]}"
                deduction_rows[code] = row
                percent = row["deduction_type__calculation"] == "percent"
                value = (
                    (
                        row["rate"]
                        if row["rate"] is not None
                        else row["deduction_type__default_rate"]
                    )
                    if percent
                    else (
                        row["amount"]
                        if row["amount"] is not None
                        else row["deduction_type__default_amount"]
                    )
                )
                pre_tax = row["deduction_type__timing"] == "pre_tax"
                kind = LineKind.PRE_TAX_DEDUCTION if pre_tax else LineKind.POST_TAX_DEDUCTION
                inputs.append(
                    engine.Deduction(
                        code=code,
                        name=row["deduction_type__name"],
                        pre_tax=pre_tax,
                        method="percent" if percent else "fixed",
                        value=value or Decimal(0),
                        annual_cap=row["deduction_type__annual_cap"],
                        taken_ytd=(lines_ytd.get((kind, code)) or (ZERO, None))[0],
                        employer_rate=row["deduction_type__employer_rate"] or None,
                        balance=row["balance"] if row["deduction_type__has_balance"] else None,
                        percent_of=row["deduction_type__percent_of"],
                    )
                )
            prior = batch.ytd.get(emp_id) or {}
            if prior:
                ytd = engine.YearToDate(
                    taxable=_cents(prior["taxable"]),
                    tax_withheld=_cents(prior["income_tax"]),
                    flat_wages={
                        code: Decimal(lines_ytd[(LineKind.TAX, code)][1] or 0)
                        for code in flat_codes
                        if (LineKind.TAX, code) in lines_ytd
                    },
                )
            else:
                ytd = no_ytd
            annual_salary = emp["annual_salary"]
            hourly_rate = emp["hourly_rate"]
            if emp["pay_type"] == PayType.SALARIED and annual_salary is None:
                annual_salary = _pay_rate(ref, emp["role"], jurisdiction, PayType.SALARIED)
            if emp["pay_type"] == PayType.HOURLY and hourly_rate is None:
                hourly_rate = _pay_rate(ref, emp["role"], jurisdiction, PayType.HOURLY)
            result = engine.compute_payslip(
                engine.EmployeeInput(
                    employee_id=emp_id,
                    pay_type=emp["pay_type"],
                    annual_salary=annual_salary,
                    hourly_rate=hourly_rate,
                    start_date=emp["start_date"],
                    end_date=emp["end_date"],
                    time_entries=batch.time_entries.get(emp_id, ()),
                    earnings=batch.earnings.get(emp_id, ()),
                    deductions=inputs,
                    ytd=ytd,
                    overtime=overtime,
                    progressive_tax=_progressive_tax(
                        ref, company.pk, jurisdiction, emp["tax_category"]
                    ),
                    flat_taxes=flat,
                    min_wage=min_wage,
                    arrears=batch.arrears.get(emp_id) or {},
                ),
                period_inputs[month],
            )
        except (engine.EngineInputError, TypeError, ArithmeticError) as exc:
            errors.append(f"{emp['code']} {emp['name']}: {exc}")
            continue
        arrears_only = {}
        for code in batch.arrears.get(emp_id) or ():
            if code in deduction_rows:
                continue
            row = _arrears_row(batch.arrears_rows.get(emp_id) or {}, code)
            if row is not None:
                arrears_only[code] = row
        results.append(
            Computed(
                employee=emp,
                result=result,
                arrears_only_rows=arrears_only,
                deduction_rows=deduction_rows,
                flat_codes=flat_codes,
                prior=prior,
            )
        )
    return results, errors


def _arrears_row(rows_by_type: dict, code: str) -> dict | None:
    """The employee deduction a carried code came from: "LOAN" is the employee's first LOAN
    row, "LOAN-2" the second (the engine numbers repeated types so)."""
    base, _, number = code.rpartition("-")
    if not (base and number.isdigit()):
        base, number = code, "1"
    rows = rows_by_type.get(base) or ()
    index = int(number) - 1
    return rows[index] if 0 <= index < len(rows) else None


def _refuse_errors(errors: list[str]) -> None:
    if errors:
        shown = "; ".join(errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValidationFailed(
            f"{len(errors)} employee(s) cannot be paid: {shown}{more}. Nothing was paid.",
            code="payroll_input_invalid",
            fields={"employees": errors[:50]},
        )


# --- writing -----------------------------------------------------------------------------------

PAYSLIP_COLUMNS = (
    "id",
    "company_id",
    "employee_id",
    "period_id",
    "run_id",
    "period_start",
    "period_end",
    "pay_date",
    "tax_year_start",
    "currency",
    "status",
    "pay_type",
    "department_id",
    "cost_center_id",
    "regular_hours",
    "overtime_hours",
    "double_time_hours",
    "gross",
    "taxable",
    "income_tax",
    "other_taxes",
    "taxes",
    "pre_tax_deductions",
    "post_tax_deductions",
    "deductions",
    "employer_contributions",
    "net",
    "ytd_gross",
    "ytd_taxable",
    "ytd_taxes",
    "ytd_income_tax",
    "ytd_deductions",
    "ytd_net",
    "warnings",
    "carried",
    "created_at",
)
LINE_COLUMNS = (
    "payslip_id",
    "line_no",
    "kind",
    "code",
    "description",
    "quantity",
    "rate",
    "amount",
    "taxable",
    "account_role",
    "employee_deduction_id",
)
_Q4 = Decimal("0.0001")
_Q6 = Decimal("0.000001")


def _payslip_rows(run: PayrollRun, computed: list[Computed], status: str):
    """(payslip values, lines per payslip) ready for COPY or bulk_create."""
    period = run.period
    now = timezone.now()
    currency = period.company.base_currency
    payslips, all_lines = [], []
    tax_years: dict[str, dt.date] = {}
    for item in computed:
        country = _country(item.employee["jurisdiction"])
        if country not in tax_years:
            tax_years[country] = period_tax_year(period, country)[0]
        emp, res, prior = item.employee, item.result, item.prior
        income_tax = ZERO
        lines = []
        for no, line in enumerate(res.lines, start=1):
            deduction = None
            taxable = True
            if line.kind == engine.EARNING:
                kind, role = LineKind.EARNING, ROLE_SALARY
            elif line.kind == engine.TAX:
                kind, role = LineKind.TAX, ROLE_TAX
                if line.code == INCOME_TAX_CODE:
                    income_tax += line.amount
            elif line.kind == engine.DEDUCTION:
                deduction = item.deduction_rows.get(line.code)
                pre = deduction is not None and deduction["deduction_type__timing"] == "pre_tax"
                if deduction is None:  # carried from a row no longer in force: post-tax
                    deduction = item.arrears_only_rows.get(line.code)
                kind = LineKind.PRE_TAX_DEDUCTION if pre else LineKind.POST_TAX_DEDUCTION
                loan = deduction is not None and deduction["deduction_type__has_balance"]
                role = ROLE_LOANS if loan else ROLE_DEDUCTIONS
            elif line.code in item.flat_codes and line.code not in item.deduction_rows:
                kind, role = LineKind.EMPLOYER_TAX, ROLE_TAX
            else:
                kind, role = LineKind.EMPLOYER, ROLE_EMPLOYER_PAYABLE
                deduction = item.deduction_rows.get(line.code)
            lines.append(
                [
                    no,
                    kind,
                    line.code[:40],
                    line.name[:200],
                    None if line.quantity is None else line.quantity.quantize(_Q4),
                    None if line.rate is None else line.rate.quantize(_Q6),
                    line.amount,
                    taxable,
                    role,
                    deduction["id"] if deduction is not None else None,
                ]
            )
        taxes, deductions, gross, net = res.taxes, res.deductions, res.gross, res.net
        hours = res.hours
        payslips.append(
            {
                "company_id": period.company_id,
                "employee_id": emp["id"],
                "period_id": period.pk,
                "run_id": run.pk,
                "period_start": period.start_date,
                "period_end": period.end_date,
                "pay_date": period.pay_date,
                "tax_year_start": tax_years[_country(emp["jurisdiction"])],
                "currency": currency,
                "status": status,
                "pay_type": emp["pay_type"],
                "department_id": emp["department_id"],
                "cost_center_id": emp["cost_center_id"],
                "regular_hours": hours.get(engine.REGULAR, ZERO),
                "overtime_hours": hours.get(engine.OVERTIME, ZERO),
                "double_time_hours": hours.get(engine.DOUBLE_TIME, ZERO),
                "gross": gross,
                "taxable": res.taxable,
                "income_tax": income_tax,
                "other_taxes": taxes - income_tax,
                "taxes": taxes,
                "pre_tax_deductions": res.pre_tax_deductions,
                "post_tax_deductions": deductions - res.pre_tax_deductions,
                "deductions": deductions,
                "employer_contributions": res.employer_contributions,
                "net": net,
                "ytd_gross": _cents(prior.get("gross")) + gross,
                "ytd_taxable": _cents(prior.get("taxable")) + res.taxable,
                "ytd_taxes": _cents(prior.get("taxes")) + taxes,
                "ytd_income_tax": _cents(prior.get("income_tax")) + income_tax,
                "ytd_deductions": _cents(prior.get("deductions")) + deductions,
                "ytd_net": _cents(prior.get("net")) + net,
                "warnings": list(res.warnings),
                "carried": {code: str(amount) for code, amount in res.carried.items()},
                "created_at": now,
            }
        )
        all_lines.append(lines)
    return payslips, all_lines


def _write_payslips(run: PayrollRun, computed: list[Computed], status: str) -> int:
    payslips, lines = _payslip_rows(run, computed, status)
    if not payslips:
        return 0
    try:
        with transaction.atomic():  # a savepoint: a duplicate is a clear conflict, not a 500
            if connection.vendor == "postgresql":
                _copy_payslips(payslips, lines)
            elif connection.vendor == "sqlite":
                _executemany_payslips(payslips, lines)
            else:
                _bulk_payslips(payslips, lines)
    except IntegrityError as exc:
        raise PayrollBusy(
            "A live payslip already exists for an employee of this period; nothing was written "
            f"({str(exc).splitlines()[0]}).",
            code="duplicate_payslip",
        ) from None
    return len(payslips)


def _copy_payslips(payslips: list[dict], lines: list[list]) -> None:
    from psycopg.types.json import Jsonb

    from core.rls import copy_from

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('payroll_payslip', 'id')) "
            "FROM generate_series(1, %s)",
            [len(payslips)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        # copy_from: a plain COPY, or (inside a tenant scope, where RLS refuses COPY FROM) a
        # COPY into a temporary table and one INSERT ... SELECT.
        with copy_from(cursor, "payroll_payslip", PAYSLIP_COLUMNS) as copy:
            for pk, row in zip(ids, payslips, strict=True):
                row["id"] = pk
                copy.write_row(
                    [
                        Jsonb(row[name]) if name in ("warnings", "carried") else row[name]
                        for name in PAYSLIP_COLUMNS
                    ]
                )
        with copy_from(cursor, "payroll_payslipline", LINE_COLUMNS) as copy:
            for pk, payslip_lines in zip(ids, lines, strict=True):
                for line in payslip_lines:
                    copy.write_row((pk, *line))


def _executemany_payslips(payslips: list[dict], lines: list[list]) -> None:
    """SQLite (the embedded default): one executemany per table with ids taken after the
    current maximum; SQLite lets one writer in at a time, so nobody else can take them."""
    import json

    ops = connection.ops

    def adapt(name, value):
        if value is None or isinstance(value, bool | int | str):
            return value
        if name in ("warnings", "carried"):
            return json.dumps(value)
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dt.datetime):
            return ops.adapt_datetimefield_value(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM payroll_payslip")
        base = cursor.fetchone()[0]
        rows = []
        for offset, row in enumerate(payslips, start=1):
            row["id"] = base + offset
            rows.append([adapt(name, row[name]) for name in PAYSLIP_COLUMNS])
        marks = ", ".join(["%s"] * len(PAYSLIP_COLUMNS))
        cursor.executemany(
            f"INSERT INTO payroll_payslip ({', '.join(PAYSLIP_COLUMNS)}) VALUES ({marks})",  # noqa: S608
            rows,
        )
        line_rows = [
            [
                row["id"],
                *(adapt(name, value) for name, value in zip(LINE_COLUMNS[1:], line, strict=True)),
            ]
            for row, payslip_lines in zip(payslips, lines, strict=True)
            for line in payslip_lines
        ]
        marks = ", ".join(["%s"] * len(LINE_COLUMNS))
        if line_rows:
            cursor.executemany(
                f"INSERT INTO payroll_payslipline ({', '.join(LINE_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                line_rows,
            )


def _bulk_payslips(payslips: list[dict], lines: list[list]) -> None:
    objects = [Payslip(**row) for row in payslips]
    Payslip.objects.bulk_create(objects, batch_size=1000)
    PayslipLine.objects.bulk_create(
        (
            PayslipLine(payslip_id=payslip.pk, **dict(zip(LINE_COLUMNS[1:], line, strict=True)))
            for payslip, payslip_lines in zip(objects, lines, strict=True)
            for line in payslip_lines
        ),
        batch_size=2000,
    )


def _delete_unfinished_payslips(period: PayrollPeriod) -> int:
    """Payslips of an attempt that never completed: never issued, never posted. Set-based."""
    params = [period.pk, *UNFINISHED]
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM payroll_payslipline WHERE payslip_id IN (SELECT id FROM payroll_payslip "
            "WHERE period_id = %s AND status IN (%s, %s))",
            params,
        )
        cursor.execute(
            "DELETE FROM payroll_payslip WHERE period_id = %s AND status IN (%s, %s)", params
        )
        return cursor.rowcount


def _loan_balances_apply(run: PayrollRun, sign: int) -> int:
    """Take this run's loan repayments off the balances (sign -1), or put them back (+1)."""
    op = "-" if sign < 0 else "+"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE payroll_employeededuction
               SET balance = CASE WHEN balance {op} v.paid < 0 THEN 0
                                  ELSE balance {op} v.paid END
              FROM (SELECT l.employee_deduction_id AS deduction_id, SUM(l.amount) AS paid
                      FROM payroll_payslipline l
                      JOIN payroll_payslip p ON p.id = l.payslip_id
                     WHERE p.run_id = %s AND l.account_role = %s
                       AND l.employee_deduction_id IS NOT NULL
                     GROUP BY l.employee_deduction_id) AS v
             WHERE payroll_employeededuction.id = v.deduction_id
               AND payroll_employeededuction.balance IS NOT NULL
            """,  # noqa: S608 (op is one of two constants)
            [run.pk, ROLE_LOANS],
        )
        return cursor.rowcount


def restore_loan_balances(run: PayrollRun) -> int:
    return _loan_balances_apply(run, +1)


def void_payslips(run: PayrollRun) -> int:
    return (
        Payslip.objects.filter(run=run)
        .exclude(status=PayslipStatus.VOID)
        .update(status=PayslipStatus.VOID, voided_at=timezone.now())
    )


# --- posting -----------------------------------------------------------------------------------


def _journal_lines(run: PayrollRun) -> tuple[list[dict], dict]:
    """The run's entry from its payslips, by SQL aggregates: salary and employer expense by
    department and cost center, the liabilities in one line per role."""
    payslips = Payslip.objects.filter(run=run).exclude(status=PayslipStatus.VOID)
    totals = payslips.aggregate(
        count=Count("id"),
        gross=Sum("gross"),
        taxes=Sum("taxes"),
        deductions=Sum("deductions"),
        employer=Sum("employer_contributions"),
        net=Sum("net"),
    )
    totals = {k: (_cents(v) if k != "count" else int(v or 0)) for k, v in totals.items()}
    lines: list[dict] = []
    by_dimension = (
        payslips.values("department_id", "cost_center_id")
        .annotate(gross=Sum("gross"), employer=Sum("employer_contributions"))
        .order_by("department_id", "cost_center_id")
    )
    for row in by_dimension:
        dims = {"department": row["department_id"], "cost_center": row["cost_center_id"]}
        if _cents(row["gross"]):
            lines.append(
                {
                    "account_role": ROLE_SALARY,
                    "debit": _cents(row["gross"]),
                    **dims,
                    "memo": "Gross pay",
                }
            )
        if _cents(row["employer"]):
            lines.append(
                {
                    "account_role": ROLE_EMPLOYER_EXPENSE,
                    "debit": _cents(row["employer"]),
                    **dims,
                    "memo": "Employer contributions",
                }
            )
    credits = dict(
        PayslipLine.objects.filter(payslip__run=run)
        .exclude(payslip__status=PayslipStatus.VOID)
        .exclude(kind=LineKind.EARNING)
        .values("account_role")
        .annotate(total=Sum("amount"))
        .values_list("account_role", "total")
    )
    memos = {
        ROLE_TAX: "Taxes withheld and employer taxes",
        ROLE_DEDUCTIONS: "Employee deductions",
        ROLE_LOANS: "Loan repayments",
        ROLE_EMPLOYER_PAYABLE: "Employer contributions payable",
    }
    for role in (ROLE_TAX, ROLE_DEDUCTIONS, ROLE_LOANS, ROLE_EMPLOYER_PAYABLE):
        amount = _cents(credits.get(role))
        if amount:
            lines.append({"account_role": role, "credit": amount, "memo": memos[role]})
    if totals["net"]:
        lines.append({"account_role": ROLE_NET, "credit": totals["net"], "memo": "Net pay"})
    return lines, totals


def _post_entry(run: PayrollRun, lines: list[dict]):
    from accounting.services import journal_entry_post

    if len(lines) < 2:
        return None
    period = run.period
    return journal_entry_post(
        actor=None,
        system_job=SYSTEM_JOB,
        company=period.company,
        date=period.end_date,
        lines=lines,
        memo=f"Payroll {period} (run {run.attempt})"[:500],
        source_type="payroll.run",
        source_id=str(run.pk),
        idempotency_key=f"payroll-run:{run.pk}",
    )


# --- the processor -----------------------------------------------------------------------------


ProgressCallback = Callable[[int, int], None]


class PayrollProcessor:
    def __init__(
        self,
        period: PayrollPeriod,
        *,
        trigger: str = RunTrigger.MANUAL,
        actor=None,
        progress: ProgressCallback | None = None,
        mail_payslips: bool = True,
    ):
        self.period = period
        self.mail_payslips = mail_payslips  # stored on the run; read when it commits
        self.trigger = trigger
        self.actor = actor if getattr(actor, "is_authenticated", False) else None
        self.progress = progress
        self.defer = False  # claim for a worker to process later (see payroll_period_run)

    # -- claiming

    def claim(self, force: bool = False) -> PayrollRun:
        """Take the period for one run, or raise PayrollAlreadyCompleted / PayrollNotDue /
        PayrollBusy / ConflictError(invalid_status). Commits the claim (outside any caller's
        transaction the lease is visible to other workers at once)."""
        name = lock_name(self.period.pk)
        try:
            token = lock_acquire(name, ttl_seconds=lock_ttl())
            if token is None and self._lock_left_behind(name):
                token = lock_acquire(name, ttl_seconds=lock_ttl())
        except LockUnavailable as exc:
            raise ServiceUnavailable(
                f"{self.period} cannot start now ({exc}); nothing was changed, it can run "
                "once Redis answers again."
            ) from exc
        if token is None:
            self._refuse_if_completed()
            raise PayrollBusy(f"{self.period} is being processed by another worker.")
        try:
            with transaction.atomic():
                return self._claim_in_db(token, force)
        except BaseException:
            lock_release(name, token)
            raise

    def _lock_left_behind(self, name: str) -> bool:
        """The lock is held by an attempt that has ended (the period is runnable again under
        that attempt's token) but could not release it, as when Redis was away at its end:
        free it instead of refusing every run until it expires. True if it is free now."""
        holder = lock_holder(name)
        if holder is None:
            return True
        left = PayrollPeriod.objects.filter(
            pk=self.period.pk, status__in=RUNNABLE, lock_token=holder
        ).exists()
        return left and lock_release(name, holder)

    def _refuse_if_completed(self) -> None:
        status = PayrollPeriod.objects.filter(pk=self.period.pk).values_list("status", flat=True)
        if status and status[0] == PeriodStatus.COMPLETED:
            raise PayrollAlreadyCompleted(
                f"{self.period} is already paid; reopen it to pay it again."
            )

    def _claim_in_db(self, token: str, force: bool) -> PayrollRun:
        period = PayrollPeriod.objects.select_related("company").get(pk=self.period.pk)
        self.period = period
        if period.status == PeriodStatus.COMPLETED:
            raise PayrollAlreadyCompleted(f"{period} is already paid; reopen it to pay it again.")
        if period.status == PeriodStatus.PROCESSING:
            raise PayrollBusy(f"{period} is being processed.")
        if period.status not in RUNNABLE:
            raise ConflictError(
                f"{period} is {period.get_status_display().lower()}; only an active or failed "
                "period can be run (activate it first).",
                code="invalid_status",
            )
        from payroll.services import lock_company_periods

        lock_company_periods(period.company_id)  # against a reopen of an earlier period
        earlier = earlier_open_period(period)
        if earlier is not None:
            raise ConflictError(
                f"{earlier} ({earlier.start_date}..{earlier.end_date}) is "
                f"{earlier.get_status_display().lower()}: pay (or cancel) it before {period}; "
                "periods are paid in order so that year-to-date figures, loan balances and "
                "carried amounts read the earlier ones.",
                code="earlier_period_open",
                fields={"period": [f"{earlier} is not completed or cancelled."]},
            )
        if not force and period.automation_enabled and not rule_is_due(period):
            next_run = period.automation_next_run()
            raise PayrollNotDue(
                f"{period} is not due yet (its rule says {next_run}); use force to run it now."
            )
        now = timezone.now()
        updated = PayrollPeriod.objects.filter(pk=period.pk, status__in=RUNNABLE).update(
            status=PeriodStatus.PROCESSING,
            lock_token=token,
            lock_expires_at=now + dt.timedelta(seconds=lock_ttl()),
            heartbeat_at=now,
            processing_started_at=now,
            last_error="",
            updated_at=now,
        )
        if updated != 1:
            raise PayrollBusy(f"{period} was taken by another worker.")
        before = period.status
        period.status = PeriodStatus.PROCESSING
        period.lock_token = token
        _delete_unfinished_payslips(period)
        attempt = (period.runs.aggregate(n=Max("attempt"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                run = PayrollRun.objects.create(
                    company_id=period.company_id,
                    period=period,
                    attempt=attempt,
                    trigger=self.trigger,
                    forced=force,
                    mail_payslips=self.mail_payslips,
                    triggered_by=self.actor,
                    started_at=now,
                    picked_at=None if self.defer else now,
                    total=employees_in_scope(period).count(),
                )
        except IntegrityError:
            raise PayrollBusy(f"{period} already has a run in progress.") from None
        run.period = period
        audit_record(
            action="payroll.run.started",
            actor=self.actor,
            system_job=SYSTEM_JOB,
            company=period.company,
            obj=run,
            before={"status": before},
            after={
                "status": PeriodStatus.PROCESSING,
                "trigger": self.trigger,
                "forced": force,
                "attempt": attempt,
                "employees": run.total,
            },
        )
        return run

    # -- running

    def run_payroll(
        self, force: bool = False, *, fan_out: bool = False, _after_stale: bool = False
    ) -> RunOutcome:
        """Claim the period and pay it. Synchronous unless the period is large and `fan_out`
        is set (Celery): then its chunks are queued for the workers and "dispatched" returned.
        Refusals (already completed, not due, busy) are outcomes, not errors: a redelivered
        task does nothing. A period held by an attempt whose lease has expired (its worker
        died; this may be that worker's redelivered task) is released first, as the hourly
        cleanup would, and run again."""
        pid = self.period.pk
        try:
            run = self.claim(force=force)
        except PayrollAlreadyCompleted as exc:
            payroll_calculations_total.labels(status="skipped").inc()
            return RunOutcome("already_completed", pid, message=exc.message)
        except PayrollNotDue as exc:
            payroll_calculations_total.labels(status="skipped").inc()
            return RunOutcome("not_due", pid, message=exc.message)
        except PayrollBusy as exc:
            try:
                released = not _after_stale and stale_runs_release(period_id=pid)
            except LockUnavailable:  # Redis went away just now: busy it is
                released = 0
            if released:
                status = PayrollPeriod.objects.filter(pk=pid).values_list("status", flat=True)
                if status and status[0] == PeriodStatus.FAILED:
                    return self.run_payroll(force=force, fan_out=fan_out, _after_stale=True)
            payroll_calculations_total.labels(status="skipped").inc()
            return RunOutcome("busy", pid, message=exc.message)
        except ServiceUnavailable as exc:
            return RunOutcome("unavailable", pid, message=exc.message)
        except DomainError as exc:
            return RunOutcome("not_runnable", pid, message=exc.message)
        return self.process(run, fan_out=fan_out, picked=True)

    def process(
        self, run: PayrollRun, *, fan_out: bool = False, picked: bool = False
    ) -> RunOutcome:
        """Pay a claimed run. A run claimed for a worker (picked_at empty) is taken with a
        conditional update first, so a redelivered task cannot process it twice."""
        run = PayrollRun.objects.select_related("period__company").get(pk=run.pk)
        period = run.period
        self.period = period
        token = period.lock_token
        if run.status != RunStatus.RUNNING:
            return RunOutcome(run.status, period.pk, run, "run is no longer running")
        if not picked:
            taken = PayrollRun.objects.filter(
                pk=run.pk, status=RunStatus.RUNNING, picked_at__isnull=True
            ).update(picked_at=timezone.now())
            if taken != 1:
                return RunOutcome("busy", period.pk, run, "another worker took the run")
        started = time.monotonic()
        payroll_batch_jobs_active.inc()
        keep_lock = False
        try:
            if run.total > settings.PAYROLL_FAN_OUT_THRESHOLD:
                outcome = self._process_chunked(run, fan_out=fan_out)
                keep_lock = outcome.status == "dispatched"
            else:
                outcome = self._process_whole(run)
        except Exception as exc:  # noqa: BLE001 (any failure fails the run, with its reason)
            run_fail(run, exc)
            payroll_calculations_total.labels(status="failed").inc()
            message = (
                exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            )
            return RunOutcome("failed", period.pk, _reload(run), message)
        finally:
            payroll_batch_jobs_active.dec()
            payroll_calculation_duration_seconds.observe(time.monotonic() - started)
            if not keep_lock and token:
                lock_release(lock_name(period.pk), token)
        if outcome.status == "completed":
            payroll_calculations_total.labels(status="completed").inc()
        return outcome

    def _process_whole(self, run: PayrollRun) -> RunOutcome:
        period = run.period
        with transaction.atomic(), _gc_paused():
            batch = _load_batch(period)
            computed, errors = compute_batch(batch)
            _refuse_errors(errors)
            if self.progress:
                self.progress(len(computed), run.total)
            written = _write_payslips(run, computed, PayslipStatus.ISSUED)
            PayrollRun.objects.filter(pk=run.pk).update(done=written, total=max(run.total, written))
            run = finalise_run(run.pk, expect_chunks=False)
        return RunOutcome("completed", period.pk, run)

    def _process_chunked(self, run: PayrollRun, *, fan_out: bool) -> RunOutcome:
        period = run.period
        size = max(1, int(settings.PAYROLL_CHUNK_SIZE))
        ids = list(employees_in_scope(period).order_by("pk").values_list("pk", flat=True))
        slices = [ids[i : i + size] for i in range(0, len(ids), size)]
        with transaction.atomic():
            PayrollRunChunk.objects.bulk_create(
                PayrollRunChunk(run=run, index=i, employee_ids=chunk)
                for i, chunk in enumerate(slices)
            )
            PayrollRun.objects.filter(pk=run.pk).update(total=len(ids), chunks_total=len(slices))
        if not slices:
            return RunOutcome("completed", period.pk, finalise_run(run.pk, expect_chunks=False))
        if fan_out:
            from payroll.tasks import run_payroll_chunk

            run_id, count = run.pk, len(slices)

            def dispatch():
                from kombu.exceptions import OperationalError as BrokerUnreachable

                try:
                    for index in range(count):
                        run_payroll_chunk.delay(run_id, index)
                except BrokerUnreachable as exc:
                    raise ServiceUnavailable(
                        f"The task broker is unreachable ({exc}); the run stopped before all "
                        "of its chunks were queued and will run again as a new attempt."
                    ) from exc

            # Workers must find the chunks: queue them once they are committed (at once when
            # no transaction is open, as in a Celery task).
            transaction.on_commit(dispatch)
            return RunOutcome("dispatched", period.pk, _reload(run))
        for index in range(len(slices)):
            chunk_process(run.pk, index, raise_errors=True)
            if self.progress:
                current = _reload(run)
                self.progress(current.done, current.total)
        current = _reload(run)
        if current.status != RunStatus.COMPLETED:
            raise ConflictError(f"{period}: the run did not complete.", code="run_incomplete")
        return RunOutcome("completed", period.pk, current)

    # -- dry run

    def preview(self) -> dict:
        """Compute the period without writing anything: totals, warnings and errors."""
        period = PayrollPeriod.objects.select_related("company").get(pk=self.period.pk)
        batch = _load_batch(period)
        computed, errors = compute_batch(batch)
        sums = defaultdict(lambda: ZERO)
        warnings = 0
        for item in computed:
            res = item.result
            sums["gross"] += res.gross
            sums["taxes"] += res.taxes
            sums["deductions"] += res.deductions
            sums["employer"] += res.employer_contributions
            sums["net"] += res.net
            warnings += len(res.warnings)
        return {
            "period_id": period.pk,
            "period": str(period),
            "employees": len(computed),
            "errors": errors,
            "warnings": warnings,
            **{k: sums[k] for k in ("gross", "taxes", "deductions", "employer", "net")},
        }


@contextmanager
def _gc_paused():
    """The cyclic garbage collector finds nothing to free among a run's hundreds of thousands
    of fresh objects (no cycles) but walks them all repeatedly; pause it for the run."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _reload(run: PayrollRun) -> PayrollRun:
    return PayrollRun.objects.select_related("period__company").get(pk=run.pk)


# --- chunks and finalising -------------------------------------------------------------------


def chunk_process(run_id: int, index: int, *, raise_errors: bool = False) -> str:
    """Process one chunk of a fanned-out run, once: claim it with a conditional update, write
    its payslips (status processing) and count it done in one transaction, then finalise the
    run if it was the last. Returns "done", "skipped" or "failed"."""
    now = timezone.now()
    ttl = dt.timedelta(seconds=lock_ttl())
    claimable = Q(status__in=[ChunkStatus.PENDING, ChunkStatus.FAILED]) | Q(
        status=ChunkStatus.RUNNING, claimed_until__lt=now
    )
    if not PayrollRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).exists():
        return "skipped"
    # Plain columns only in the WHERE: PostgreSQL re-checks them on the row it waited for, so
    # of two workers claiming the same chunk at once exactly one changes it.
    claimed = PayrollRunChunk.objects.filter(claimable, run_id=run_id, index=index).update(
        status=ChunkStatus.RUNNING, attempts=F("attempts") + 1, claimed_until=now + ttl
    )
    if claimed != 1:
        finalise_run_if_complete(run_id)
        return "skipped"
    chunk = PayrollRunChunk.objects.get(run_id=run_id, index=index)
    mine = {"pk": chunk.pk, "status": ChunkStatus.RUNNING, "attempts": chunk.attempts}
    run = PayrollRun.objects.select_related("period__company").get(pk=run_id)
    started = time.monotonic()
    payroll_batch_jobs_active.inc()
    try:
        with transaction.atomic(), _gc_paused():
            batch = _load_batch(run.period, employee_ids=chunk.employee_ids)
            computed, errors = compute_batch(batch)
            _refuse_errors(errors)
            written = _write_payslips(run, computed, PayslipStatus.PROCESSING)
            finished = timezone.now()
            updated = PayrollRunChunk.objects.filter(**mine).update(
                status=ChunkStatus.DONE, finished_at=finished, error=""
            )
            if updated != 1:
                raise ConflictError("the chunk was taken over meanwhile", code="chunk_taken")
            PayrollRun.objects.filter(pk=run_id).update(
                done=F("done") + written, chunks_done=F("chunks_done") + 1
            )
            PayrollPeriod.objects.filter(pk=run.period_id, status=PeriodStatus.PROCESSING).update(
                heartbeat_at=finished, lock_expires_at=finished + ttl
            )
    except Exception as exc:
        # Only this attempt's claim is marked failed; a chunk another worker finished stays done.
        PayrollRunChunk.objects.filter(**mine).update(
            status=ChunkStatus.FAILED, error=_describe(exc)[:2000]
        )
        if raise_errors:
            raise
        log.exception("payroll chunk failed", extra={"run": run_id, "chunk": index})
        return "failed"
    finally:
        payroll_batch_jobs_active.dec()
        payroll_calculation_duration_seconds.observe(time.monotonic() - started)
    finalise_run_if_complete(run_id)
    return "done"


def finalise_run_if_complete(run_id: int) -> PayrollRun | None:
    """Finalise a fanned-out run once its last chunk is done; safe to call any number of times
    from any worker (the run's row lock serialises them, the status check makes it once)."""
    run = PayrollRun.objects.filter(pk=run_id).values("status", "chunks_done", "chunks_total")
    row = run.first()
    if row is None or row["status"] != RunStatus.RUNNING:
        return None
    if row["chunks_done"] < row["chunks_total"]:
        return None
    try:
        finished = finalise_run(run_id, expect_chunks=True)
    except Exception as exc:
        failed = PayrollRun.objects.select_related("period__company").get(pk=run_id)
        run_fail(failed, exc)
        payroll_calculations_total.labels(status="failed").inc()
        raise
    if finished is not None and finished.status == RunStatus.COMPLETED:
        lock_release(lock_name(finished.period_id), finished.period.lock_token)
        payroll_calculations_total.labels(status="completed").inc()
    return finished


@transaction.atomic
def finalise_run(run_id: int, *, expect_chunks: bool) -> PayrollRun | None:
    """Post the run's journal entry, issue its payslips, take loan repayments off the balances,
    and complete the run and the period; in the caller's transaction for a whole run."""
    run = PayrollRun.objects.select_for_update().select_related("period__company").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        if not expect_chunks:
            raise ConflictError(
                f"Run {run.attempt} of {run.period} is {run.status}; it cannot complete.",
                code="run_not_running",
            )
        return None
    if expect_chunks and run.chunks_done < run.chunks_total:
        return None
    period = run.period
    lines, totals = _journal_lines(run)
    entry = _post_entry(run, lines)
    if expect_chunks:
        Payslip.objects.filter(run=run, status=PayslipStatus.PROCESSING).update(
            status=PayslipStatus.ISSUED
        )
    _loan_balances_apply(run, -1)
    now = timezone.now()
    run.status = RunStatus.COMPLETED
    run.finished_at = now
    run.duration_seconds = Decimal(str(round((now - run.started_at).total_seconds(), 3)))
    run.payslip_count = totals["count"]
    run.done = max(run.done, totals["count"])
    run.total = max(run.total, run.done)
    run.gross_total = totals["gross"]
    run.taxes_total = totals["taxes"]
    run.deductions_total = totals["deductions"]
    run.employer_total = totals["employer"]
    run.net_total = totals["net"]
    run.journal_entry = entry
    run.warning_count = (
        Payslip.objects.filter(run=run).exclude(warnings=[]).count() if totals["count"] else 0
    )
    run.save()
    updated = PayrollPeriod.objects.filter(pk=period.pk, status=PeriodStatus.PROCESSING).update(
        status=PeriodStatus.COMPLETED,
        completed_at=now,
        lock_expires_at=None,
        heartbeat_at=now,
        updated_at=now,
    )
    if updated != 1:
        raise ConflictError(
            f"{period} is no longer processing (its lease expired?); nothing was completed.",
            code="lease_lost",
        )
    period.status = PeriodStatus.COMPLETED
    audit_record(
        action="payroll.run.completed",
        system_job=SYSTEM_JOB,
        company=period.company,
        obj=run,
        before={"status": PeriodStatus.PROCESSING},
        after={
            "status": PeriodStatus.COMPLETED,
            "payslips": run.payslip_count,
            "gross": run.gross_total,
            "net": run.net_total,
            "journal_entry": entry.reference if entry is not None else None,
        },
    )
    transaction.on_commit(lambda: _after_completion(run.pk, period.pk), robust=True)
    return run


def _after_completion(run_id: int, period_id: int) -> None:
    """Optional listeners after commit: the period's beat entry is disabled; payslip emails go
    out when the documents module provides them."""
    from payroll.tasks import period_schedule_sync

    period_schedule_sync(period_id)
    try:
        from payroll import documents  # written by the interfaces module
    except ImportError:
        return
    send = getattr(documents, "payslips_email_queue", None)
    if send is not None:
        send(run_id=run_id)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def run_fail(run: PayrollRun, exc: BaseException) -> None:
    """Record a failed attempt: the run failed with its reason, the period failed (ready to
    run again), chunks stopped. Unfinished payslips stay `processing` (never issued) until the
    next attempt discards them.

    Only an attempt that is still running fails, and the period only while it is still held
    by this attempt's claim (its lock token as the caller loaded it with the run): a late
    failure of an old attempt never fails (or unlocks) a newer attempt of the same period."""
    message = _describe(exc)
    detail = message if isinstance(exc, DomainError) else traceback.format_exc(limit=5)
    now = timezone.now()
    token = run.period.lock_token if "period" in run._state.fields_cache else None
    if token is None:
        token = (
            PayrollPeriod.objects.filter(pk=run.period_id)
            .values_list("lock_token", flat=True)
            .first()
        )
    with transaction.atomic():
        changed = PayrollRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, finished_at=now, error=detail[:4000]
        )
        if not changed:
            log.warning(
                "payroll run failure ignored: the run is no longer running",
                extra={"run": run.pk, "error": message[:500]},
            )
            return
        PayrollRunChunk.objects.filter(
            run_id=run.pk, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
        ).update(status=ChunkStatus.FAILED)
        PayrollPeriod.objects.filter(
            pk=run.period_id, status=PeriodStatus.PROCESSING, lock_token=token or ""
        ).update(
            status=PeriodStatus.FAILED,
            last_error=message[:2000],
            lock_expires_at=None,
            updated_at=now,
        )
        audit_record(
            action="payroll.run.failed",
            system_job=SYSTEM_JOB,
            company=run.period.company,
            obj=run,
            before={"status": PeriodStatus.PROCESSING},
            after={"status": PeriodStatus.FAILED, "error": message[:500]},
        )
    if token:
        # Let the next attempt start at once (a fanned-out run holds the lock until it ends).
        lock_release(lock_name(run.period_id), token)
    log.warning("payroll run failed", extra={"run": run.pk, "error": message[:500]})


def stale_runs_release(now: dt.datetime | None = None, *, period_id: int | None = None) -> int:
    """Periods stuck in processing whose lease has expired (a worker died) become failed,
    ready to run again; a fanned-out run is resumed instead (see _resume_chunks). A period
    whose Redis lock is still held is left alone. Returns how many periods were handled."""
    now = now or timezone.now()
    released = 0
    stale = PayrollPeriod.objects.select_related("company").filter(
        status=PeriodStatus.PROCESSING, lock_expires_at__lt=now
    )
    if period_id is not None:
        stale = stale.filter(pk=period_id)
    for period in stale.order_by("pk"):
        if period.lock_token and lock_holder(lock_name(period.pk)) == period.lock_token:
            continue
        if _resume_chunks(period, now):
            released += 1
            continue
        with transaction.atomic():
            updated = PayrollPeriod.objects.filter(
                pk=period.pk, status=PeriodStatus.PROCESSING, lock_token=period.lock_token
            ).update(
                status=PeriodStatus.FAILED,
                last_error="The worker processing this period stopped (its lease expired).",
                lock_expires_at=None,
                updated_at=now,
            )
            if not updated:
                continue
            runs = list(PayrollRun.objects.filter(period=period, status=RunStatus.RUNNING))
            PayrollRun.objects.filter(period=period, status=RunStatus.RUNNING).update(
                status=RunStatus.FAILED, finished_at=now, error="Lease expired."
            )
            PayrollRunChunk.objects.filter(
                run__in=runs, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
            ).update(status=ChunkStatus.FAILED)
            audit_record(
                action="payroll.run.lease_expired",
                system_job="payroll.cleanup",
                company=period.company,
                obj=period,
                before={"status": PeriodStatus.PROCESSING},
                after={"status": PeriodStatus.FAILED},
            )
            released += 1
    return released


def _resume_chunks(period: PayrollPeriod, now: dt.datetime) -> bool:
    """A fanned-out run whose lease expired (its worker died, and the broker has not handed
    the chunk messages to another worker yet, or lost them): queue its unfinished chunks again
    and renew the lease, rather than failing chunks that are already paid for in the database.
    A second delivery of a chunk is harmless (its claim lets one worker in). Not when a chunk
    has used up its attempts: that run fails like any other. True if the run was resumed."""
    from payroll.tasks import MAX_RETRIES, run_payroll_chunk

    run = PayrollRun.objects.filter(
        period=period, status=RunStatus.RUNNING, chunks_total__gt=0
    ).first()
    if run is None:
        return False
    unfinished = PayrollRunChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE)
    if unfinished.filter(attempts__gt=MAX_RETRIES).exists():
        return False
    renewed = PayrollPeriod.objects.filter(
        pk=period.pk,
        status=PeriodStatus.PROCESSING,
        lock_token=period.lock_token,
        lock_expires_at__lt=now,
    ).update(lock_expires_at=now + dt.timedelta(seconds=lock_ttl()), heartbeat_at=now)
    if renewed != 1:
        return False
    indexes = list(unfinished.order_by("index").values_list("index", flat=True))
    for index in indexes:
        run_payroll_chunk.delay(run.pk, index)
    if not indexes:  # every chunk done, the finalising worker died: finalise here
        finalise_run_if_complete(run.pk)
    audit_record(
        action="payroll.run.resumed",
        system_job="payroll.cleanup",
        company=period.company,
        obj=run,
        after={"chunks_queued": indexes},
    )
    log.warning("stale payroll run resumed", extra={"run": run.pk, "chunks": indexes})
    return True
