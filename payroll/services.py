"""Every write to payroll data. The admin, the API, management commands and Celery tasks call
these; none of them holds business logic of its own.

Each service runs in one transaction, validates, writes, records an audit event, and queues its
side effects (the period's beat entry, the run task, payslip emails) with `on_commit`. Pay runs
themselves are written by payroll.processing.PayrollProcessor, which these services start.
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounting.models import CostCenter, Department
from core.errors import ConflictError, PermissionDeniedError, ServiceUnavailable, ValidationFailed
from core.models import Company, Membership
from core.roles import roles_for
from core.services import audit_record, model_snapshot
from payroll.automation import automation_rule_validate
from payroll.models import (
    DeductionType,
    EarningType,
    Employee,
    EmployeeDeduction,
    EmployeeEarning,
    PayRate,
    PayrollPeriod,
    PayrollRun,
    PaySchedule,
    PayType,
    PeriodStatus,
    PeriodType,
    RunStatus,
    RunTrigger,
    TimeEntry,
)

SYSTEM_JOB = "payroll"

# Status moves a period may make, and which service makes them.
PERIOD_TRANSITIONS: dict[str, frozenset[str]] = {
    PeriodStatus.DRAFT: frozenset({PeriodStatus.ACTIVE, PeriodStatus.CANCELLED}),
    PeriodStatus.ACTIVE: frozenset(
        {PeriodStatus.DRAFT, PeriodStatus.PROCESSING, PeriodStatus.CANCELLED}
    ),
    PeriodStatus.PROCESSING: frozenset({PeriodStatus.COMPLETED, PeriodStatus.FAILED}),
    PeriodStatus.FAILED: frozenset(
        {PeriodStatus.PROCESSING, PeriodStatus.ACTIVE, PeriodStatus.CANCELLED}
    ),
    # reopen: back to draft, so that neither the nightly run nor a cron entry pays it again
    # before someone has corrected it and activated (or run) it explicitly
    PeriodStatus.COMPLETED: frozenset({PeriodStatus.DRAFT}),
    PeriodStatus.CANCELLED: frozenset(),
}
RUNNABLE_STATUSES = (PeriodStatus.ACTIVE, PeriodStatus.FAILED)
EDITABLE_STATUSES = (PeriodStatus.DRAFT, PeriodStatus.ACTIVE, PeriodStatus.FAILED)


# --- who may do what -------------------------------------------------------------------------


def require_payroll_role(actor, company: Company, what: str) -> None:
    """System jobs (actor None) and platform administrators pass; members need a role that
    writes the payroll scope (owner or payroll manager)."""
    if actor is None or getattr(actor, "is_superuser", False):
        return
    role = (
        Membership.objects.filter(user=actor, company=company)
        .values_list("role", flat=True)
        .first()
    )
    if role not in roles_for("payroll", write=True):
        raise PermissionDeniedError(
            f"Only an owner or a payroll manager may {what}.", code="role_required"
        )


def check_transition(period: PayrollPeriod, to: str) -> None:
    if to not in PERIOD_TRANSITIONS[period.status]:
        raise ConflictError(
            f"{period} is {period.get_status_display().lower()}; it cannot become "
            f"{PeriodStatus(to).label.lower()}.",
            code="invalid_status",
            fields={"status": [f"{period.status} -> {to} is not allowed."]},
        )


def _full_clean(obj, *, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_constraints=True)
    except ValidationError as exc:
        raise ValidationFailed.from_django(exc) from None


def _set_fields(obj, fields: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationFailed(
            f"Unknown {what} field(s): {', '.join(unknown)}.",
            code="unknown_field",
            fields={name: ["Unknown field."] for name in unknown},
        )
    for name, value in fields.items():
        setattr(obj, name, value)


def _same_company(company: Company, **objects) -> None:
    for name, obj in objects.items():
        if obj is not None and getattr(obj, "company_id", company.pk) not in (None, company.pk):
            raise ValidationFailed(
                f"The {name.replace('_', ' ')} belongs to another company.",
                code="wrong_company",
                fields={name: ["Not found in this company."]},
            )


# --- employees ---------------------------------------------------------------------------------

EMPLOYEE_FIELDS = (
    "code",
    "name",
    "email",
    "department",
    "department_id",
    "cost_center",
    "cost_center_id",
    "role",
    "pay_type",
    "annual_salary",
    "hourly_rate",
    "jurisdiction",
    "tax_category",
    "start_date",
    "end_date",
    "bank_name",
    "bank_branch",
    "bank_account_name",
    "bank_account_number",
    "bank_routing_number",
)


# pay type -> (the employee's own pay field, error code, message, field message)
_OWN_PAY_REQUIRED = {
    PayType.SALARIED: (
        "annual_salary",
        "salary_required",
        "A salaried employee needs an annual salary (or a salaried pay rate for the "
        "role and location).",
        "Required for salaried employees.",
    ),
    PayType.HOURLY: (
        "hourly_rate",
        "rate_required",
        "An hourly employee needs an hourly rate (or an hourly pay rate for the role "
        "and location).",
        "Required for hourly employees.",
    ),
}


def _check_employee(employee: Employee) -> None:
    company = employee.company
    for name, model in (("department", Department), ("cost_center", CostCenter)):
        pk = getattr(employee, f"{name}_id")
        if pk and not model.objects.filter(pk=pk, company=company).exists():
            raise ValidationFailed(
                f"The {name.replace('_', ' ')} belongs to another company.",
                code="wrong_company",
                fields={name: ["Not found in this company."]},
            )
    employee.jurisdiction = (employee.jurisdiction or "").strip().upper()
    employee.code = (employee.code or "").strip()
    required = _OWN_PAY_REQUIRED.get(employee.pay_type)
    if required and getattr(employee, required[0]) is None:
        field, code, message, field_message = required
        has_rate = PayRate.objects.filter(
            company=company,
            role=employee.role,
            jurisdiction=employee.jurisdiction,
            pay_type=employee.pay_type,
        ).exists()
        if not has_rate:
            raise ValidationFailed(message, code=code, fields={field: [field_message]})


def _save_unique(obj, message: str, code: str, field: str) -> None:
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise ConflictError(message, code=code, fields={field: [message]}) from None


@transaction.atomic
def employee_create(*, actor, company: Company, **fields) -> Employee:
    require_payroll_role(actor, company, "add employees")
    employee = Employee(company=company)
    _set_fields(employee, fields, EMPLOYEE_FIELDS, "employee")
    _check_employee(employee)
    _full_clean(employee)
    _save_unique(
        employee,
        f"Employee code {employee.code} is already used.",
        "duplicate_code",
        "code",
    )
    audit_record(
        action="payroll.employee.created",
        actor=actor,
        company=company,
        obj=employee,
        after=model_snapshot(employee),
    )
    return employee


@transaction.atomic
def employee_update(*, actor, employee: Employee, **changes) -> Employee:
    require_payroll_role(actor, employee.company, "change employees")
    employee = Employee.objects.select_for_update().get(pk=employee.pk)
    before = model_snapshot(employee)
    _set_fields(employee, changes, EMPLOYEE_FIELDS, "employee")
    _check_employee(employee)
    _full_clean(employee)
    _save_unique(
        employee,
        f"Employee code {employee.code} is already used.",
        "duplicate_code",
        "code",
    )
    after = model_snapshot(employee)
    audit_record(
        action="payroll.employee.updated",
        actor=actor,
        company=employee.company,
        obj=employee,
        before={k: v for k, v in before.items() if after.get(k) != v},
        after={k: v for k, v in after.items() if before.get(k) != v},
    )
    return employee


# --- reference rows edited in the admin and the API --------------------------------------------


def _refuse_if_settled(obj, stored=None) -> None:
    """Rows that fed a completed (or processing) pay run change only after a reopen: a time
    entry on a day of such a period, a one-off earning of such a period (as it is now or as it
    is being changed to)."""
    if isinstance(obj, TimeEntry):
        days = {d for d in (obj.day, getattr(stored, "day", None)) if d is not None}
        company_id = obj.company_id or getattr(stored, "company_id", None)
        for day in sorted(days):
            settled = (
                PayrollPeriod.objects.filter(
                    company_id=company_id,
                    status__in=[PeriodStatus.COMPLETED, PeriodStatus.PROCESSING],
                    start_date__lte=day,
                    end_date__gte=day,
                )
                .order_by("start_date")
                .first()
            )
            if settled is not None:
                raise ConflictError(
                    f"{day} lies in the payroll period {settled.start_date}..{settled.end_date}, "
                    f"which is {settled.status}; reopen it before changing its hours.",
                    code="period_settled",
                )
    elif isinstance(obj, EmployeeEarning):
        ids = {i for i in (obj.period_id, getattr(stored, "period_id", None)) if i is not None}
        for period in PayrollPeriod.objects.filter(pk__in=ids).order_by("start_date"):
            if period.status not in EDITABLE_STATUSES:
                raise ConflictError(
                    f"{period} is {period.get_status_display().lower()}; its earnings change "
                    "only after it is reopened.",
                    code="period_closed",
                    fields={"period": [f"{period} is {period.status}."]},
                )


@transaction.atomic
def reference_row_save(*, actor, obj, company: Company | None = None):
    """Create or change a reference row (pay rate, deduction or earning type, tax table, flat
    tax, overtime rule, employee deduction or earning). Shared rows (no company) are changed by
    platform administrators only."""
    owner = company or getattr(obj, "company", None)
    if owner is None:
        if actor is not None and not getattr(actor, "is_superuser", False):
            raise PermissionDeniedError(
                "Shared statutory data is changed by platform administrators only.",
                code="shared_reference_data",
            )
    else:
        require_payroll_role(actor, owner, "change payroll settings")
        if hasattr(obj, "company_id") and obj.company_id is None and company is not None:
            obj.company = company
    creating = obj.pk is None
    stored = None if creating else type(obj).objects.get(pk=obj.pk)
    before = None if creating else model_snapshot(stored)
    _refuse_if_settled(obj, stored)
    _full_clean(obj)
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        raise ConflictError(
            f"A {obj._meta.verbose_name} like this already exists ({exc.__cause__ or exc}).",
            code="duplicate",
        ) from None
    audit_record(
        action=f"payroll.{obj._meta.model_name}.{'created' if creating else 'updated'}",
        actor=actor,
        company=owner,
        obj=obj,
        before=before,
        after=model_snapshot(obj),
    )
    return obj


@transaction.atomic
def reference_row_delete(*, actor, obj) -> None:
    owner = getattr(obj, "company", None)
    if owner is None and hasattr(obj, "employee"):
        owner = obj.employee.company
    if owner is None:
        if actor is not None and not getattr(actor, "is_superuser", False):
            raise PermissionDeniedError(
                "Shared statutory data is changed by platform administrators only.",
                code="shared_reference_data",
            )
    else:
        require_payroll_role(actor, owner, "change payroll settings")
    if obj.pk is not None:
        _refuse_if_settled(type(obj).objects.get(pk=obj.pk))
    audit_record(
        action=f"payroll.{obj._meta.model_name}.deleted",
        actor=actor,
        company=owner,
        obj=obj,
        before=model_snapshot(obj),
    )
    try:
        with transaction.atomic():
            obj.delete()
    except IntegrityError:
        raise ConflictError(
            f"{obj} is used by payslips and cannot be deleted; deactivate it instead.",
            code="in_use",
        ) from None


@transaction.atomic
def employee_deduction_create(
    *, actor, employee: Employee, deduction_type: DeductionType, **fields
) -> EmployeeDeduction:
    _same_company(employee.company, deduction_type=deduction_type)
    row = EmployeeDeduction(
        company=employee.company, employee=employee, deduction_type=deduction_type
    )
    _set_fields(
        row,
        fields,
        ("amount", "rate", "balance", "start_date", "end_date", "is_active"),
        "deduction",
    )
    if (
        deduction_type.calculation == "fixed"
        and row.amount is None
        and (deduction_type.default_amount is None)
    ):
        raise ValidationFailed(
            f"{deduction_type.name} is a fixed amount: give the amount per period.",
            code="amount_required",
            fields={"amount": ["Required for a fixed deduction."]},
        )
    if deduction_type.has_balance and row.balance is None:
        raise ValidationFailed(
            f"{deduction_type.name} repays a balance: give the balance owed.",
            code="balance_required",
            fields={"balance": ["Required for a loan."]},
        )
    return reference_row_save(actor=actor, obj=row, company=employee.company)


@transaction.atomic
def employee_earning_create(
    *, actor, employee: Employee, earning_type: EarningType, amount, period=None, **fields
) -> EmployeeEarning:
    _same_company(employee.company, earning_type=earning_type, period=period)
    if period is not None and period.status not in EDITABLE_STATUSES:
        raise ConflictError(
            f"{period} is {period.get_status_display().lower()}; earnings can no longer be "
            "added to it.",
            code="period_closed",
        )
    row = EmployeeEarning(
        company=employee.company,
        employee=employee,
        earning_type=earning_type,
        amount=amount,
        period=period,
    )
    _set_fields(row, fields, ("effective_from", "effective_to", "memo"), "earning")
    return reference_row_save(actor=actor, obj=row, company=employee.company)


# --- time entries ------------------------------------------------------------------------------


def _as_date(value, field: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationFailed(
            f"{field} must be a date written YYYY-MM-DD, not {value!r}.",
            code="invalid_date",
            fields={field: ["Enter a date as YYYY-MM-DD."]},
        ) from None


def _as_hours(value, where: str) -> Decimal:
    if isinstance(value, float | bool):
        raise ValidationFailed(f"{where}: hours must be a decimal string, not {value!r}.")
    try:
        hours = Decimal(str(value).strip())
    except Exception:
        raise ValidationFailed(
            f"{where}: hours must be a number, not {value!r}.",
            code="invalid_hours",
            fields={"hours": ["Enter a number of hours."]},
        ) from None
    if not hours.is_finite() or hours < 0 or hours > 24 or hours != hours.quantize(Decimal("0.01")):
        raise ValidationFailed(
            f"{where}: hours must be between 0 and 24 with at most two decimals, not {value}.",
            code="invalid_hours",
            fields={"hours": ["Between 0 and 24, two decimals at most."]},
        )
    return hours


@transaction.atomic
def time_entries_upsert(*, actor, company: Company, entries: list[dict]) -> dict:
    """Record hours worked, all or nothing: each entry {"employee": code (a string, even all
    digits), id (an int) or Employee, and/or "employee_id": id, "day", "hours", "note"}. An
    existing entry for the same employee and day is replaced.
    Days inside a completed or processing period are refused (that pay is settled).
    Returns {"created": n, "updated": n}."""
    require_payroll_role(actor, company, "record time")
    if not entries:
        return {"created": 0, "updated": 0}
    if not isinstance(entries, list | tuple):
        raise ValidationFailed(
            "entries must be a list of {employee, day, hours} objects.",
            code="invalid_entries",
            fields={"entries": ["Expected a list."]},
        )
    by_id: dict[int, int] = {}
    by_code: dict[str, int] = {}

    def is_id(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    keys_id = {
        e.get(name)
        for e in entries
        if isinstance(e, dict)
        for name in ("employee", "employee_id")
        if is_id(e.get(name))
    }
    keys_code = {
        e["employee"].strip()
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("employee"), str)
    }
    for pk in Employee.objects.filter(company=company, pk__in=keys_id).values_list("pk", flat=True):
        by_id[pk] = pk
    for pk, code in Employee.objects.filter(company=company, code__in=keys_code).values_list(
        "pk", "code"
    ):
        by_code[code] = pk
    rows: dict[tuple[int, dt.date], tuple[Decimal, str]] = {}
    for index, entry in enumerate(entries, start=1):
        where = f"Entry {index}"
        if not isinstance(entry, dict):
            raise ValidationFailed(
                f"{where}: must be an object.",
                code="invalid_entry",
                fields={"entries": [f"{where}: must be an object."]},
            )
        key, by_pk = entry.get("employee"), entry.get("employee_id")
        if isinstance(key, Employee):
            key = key.pk if key.company_id == company.pk else None
        employee_id = None
        if isinstance(key, str):
            # an employee code, even when it is all digits (numeric employee numbers)
            employee_id = by_code.get(key.strip())
            if employee_id is None and key.strip().isdigit() and by_pk is None:
                raise ValidationFailed(
                    f"{where}: no employee has the code {key!r}; to name an employee by id "
                    "give employee_id instead.",
                    code="unknown_employee",
                    fields={"employee": [f"No employee with code {key!r}."]},
                )
        elif is_id(key):
            employee_id = by_id.get(key)
        if by_pk is not None:
            pk_match = by_id.get(by_pk) if is_id(by_pk) else None
            if pk_match is None:
                raise ValidationFailed(
                    f"{where}: no employee with id {by_pk!r} in this company.",
                    code="unknown_employee",
                    fields={"employee_id": [f"Unknown employee {by_pk!r}."]},
                )
            if key not in (None, "") and employee_id != pk_match:
                raise ValidationFailed(
                    f"{where}: employee {key!r} and employee_id {by_pk} name different "
                    "employees; give one of them.",
                    code="ambiguous_employee",
                    fields={"employee": ["Does not match employee_id."]},
                )
            employee_id = pk_match
        if employee_id is None:
            raise ValidationFailed(
                f"{where}: no employee {key!r} in this company.",
                code="unknown_employee",
                fields={"employee": [f"Unknown employee {key!r}."]},
            )
        day = _as_date(entry.get("day"), "day")
        hours = _as_hours(entry.get("hours"), where)
        if (employee_id, day) in rows:
            raise ValidationFailed(
                f"{where}: employee {key} has two entries for {day}.",
                code="duplicate_entry",
            )
        rows[(employee_id, day)] = (hours, str(entry.get("note") or "")[:200])
    days = [day for _, day in rows]
    settled = (
        PayrollPeriod.objects.filter(
            company=company,
            status__in=[PeriodStatus.COMPLETED, PeriodStatus.PROCESSING],
            start_date__lte=max(days),
            end_date__gte=min(days),
        )
        .order_by("start_date")
        .values_list("start_date", "end_date", "status")
    )
    for start, end, status in settled:
        clash = next((d for d in days if start <= d <= end), None)
        if clash is not None:
            raise ConflictError(
                f"{clash} lies in the payroll period {start}..{end}, which is {status}; "
                "reopen it before changing its hours.",
                code="period_settled",
            )
    existing = {
        (e.employee_id, e.day): e
        for e in TimeEntry.objects.select_for_update().filter(
            company=company,
            employee_id__in={k[0] for k in rows},
            day__gte=min(days),
            day__lte=max(days),
        )
    }
    new, changed = [], []
    for (employee_id, day), (hours, note) in rows.items():
        current = existing.get((employee_id, day))
        if current is None:
            new.append(
                TimeEntry(company=company, employee_id=employee_id, day=day, hours=hours, note=note)
            )
        elif current.hours != hours or current.note != note:
            current.hours, current.note = hours, note
            changed.append(current)
    TimeEntry.objects.bulk_create(new, batch_size=5000)
    TimeEntry.objects.bulk_update(changed, ["hours", "note"], batch_size=2000)
    audit_record(
        action="payroll.time_entries.recorded",
        actor=actor,
        company=company,
        after={
            "created": len(new),
            "updated": len(changed),
            "from": min(days),
            "to": max(days),
        },
    )
    return {"created": len(new), "updated": len(changed)}


# --- pay schedules and periods -----------------------------------------------------------------

PERIOD_FIELDS = (
    "name",
    "start_date",
    "end_date",
    "period_type",
    "pay_date",
    "automation_enabled",
    "automation_rule",
    "schedule",
    "schedule_id",
)


def lock_company_periods(company_id: int) -> None:
    """Serialise the checks that span a company's periods (overlap on create and update,
    order on claim and reopen) by locking the company's row until the transaction ends."""
    list(Company.objects.select_for_update().filter(pk=company_id).values_list("pk", flat=True))


def _check_period(period: PayrollPeriod) -> None:
    if period.start_date and period.end_date and period.end_date < period.start_date:
        raise ValidationFailed(
            "The period ends before it starts.",
            code="invalid_dates",
            fields={"end_date": ["On or after the start date."]},
        )
    if period.pay_date and period.start_date and period.pay_date < period.start_date:
        raise ValidationFailed(
            "The pay date is before the period starts.",
            code="invalid_dates",
            fields={"pay_date": ["On or after the start date."]},
        )
    period.automation_rule = automation_rule_validate(
        period.automation_rule, enabled=period.automation_enabled
    )
    if period.schedule_id and period.schedule.company_id != period.company_id:
        raise ValidationFailed(
            "The pay schedule belongs to another company.",
            code="wrong_company",
            fields={"schedule": ["Not found in this company."]},
        )
    _check_period_length(period)
    lock_company_periods(period.company_id)
    # Any live period of the company, whatever its type: every employee is in scope of every
    # period, so two periods covering the same day would pay that day twice.
    overlapping = (
        PayrollPeriod.objects.filter(
            company=period.company,
            start_date__lte=period.end_date,
            end_date__gte=period.start_date,
        )
        .exclude(status=PeriodStatus.CANCELLED)
        .exclude(pk=period.pk)
        .first()
    )
    if overlapping is not None:
        raise ConflictError(
            f"{overlapping} overlaps {period.start_date}..{period.end_date}.",
            code="period_overlap",
            fields={"start_date": [f"Overlaps {overlapping}."]},
        )


def period_length_problem(period_type: str, start: dt.date, end: dt.date) -> str | None:
    """Why `start`..`end` is not a period of `period_type`, or None when it is one: weekly is
    7 days, bi-weekly 14, semi-monthly the 1st-15th or the 16th-month end, monthly one month
    from anchor to anchor (day d to the day before day d of the next month; a calendar month
    is the usual case)."""
    if period_type == PeriodType.WEEKLY:
        return None if (end - start).days + 1 == 7 else "A weekly period is exactly 7 days."
    if period_type == PeriodType.BI_WEEKLY:
        return None if (end - start).days + 1 == 14 else "A bi-weekly period is exactly 14 days."
    if period_type == PeriodType.SEMI_MONTHLY:
        month_end = calendar.monthrange(start.year, start.month)[1]
        if (start.day, end) in (
            (1, start.replace(day=15)),
            (16, start.replace(day=month_end)),
        ):
            return None
        return (
            "A semi-monthly period runs from the 1st to the 15th or from the 16th to the "
            "month's end."
        )
    if period_type == PeriodType.MONTHLY:
        if end == _add_months(start, 1) - dt.timedelta(days=1):
            return None
        return (
            "A monthly period runs one month, from a day to the day before that day next "
            "month (e.g. 1-31 July)."
        )
    return None


def _check_period_length(period: PayrollPeriod) -> None:
    if not (period.start_date and period.end_date):
        return
    problem = period_length_problem(period.period_type, period.start_date, period.end_date)
    if problem:
        raise ValidationFailed(
            f"{period.start_date}..{period.end_date} is not a "
            f"{PeriodType(period.period_type).label.lower()} period. {problem}",
            code="period_length",
            fields={"end_date": [problem]},
        )


def _schedule_sync_after_commit(period_id: int) -> None:
    def sync():
        from payroll.tasks import period_schedule_sync

        period_schedule_sync(period_id)

    transaction.on_commit(sync, robust=True)


@transaction.atomic
def payroll_period_create(
    *,
    actor,
    company: Company,
    start_date,
    end_date,
    pay_date=None,
    period_type: str = PeriodType.MONTHLY,
    automation_enabled: bool = False,
    automation_rule: dict | None = None,
    name: str = "",
    schedule: PaySchedule | None = None,
    activate: bool = False,
) -> PayrollPeriod:
    require_payroll_role(actor, company, "create payroll periods")
    start, end = _as_date(start_date, "start_date"), _as_date(end_date, "end_date")
    period = PayrollPeriod(
        company=company,
        schedule=schedule,
        name=name or "",
        start_date=start,
        end_date=end,
        period_type=period_type,
        pay_date=_as_date(pay_date, "pay_date") if pay_date else end,
        automation_enabled=bool(automation_enabled),
        automation_rule=automation_rule or {},
        status=PeriodStatus.ACTIVE if activate else PeriodStatus.DRAFT,
    )
    _check_period(period)
    _full_clean(period, exclude=["automation_rule"])
    try:
        with transaction.atomic():
            period.save()
    except IntegrityError:
        raise ConflictError(
            f"A {period.get_period_type_display().lower()} period starting {start} exists.",
            code="period_overlap",
        ) from None
    audit_record(
        action="payroll.period.created",
        actor=actor,
        company=company,
        obj=period,
        after=model_snapshot(period),
    )
    _schedule_sync_after_commit(period.pk)
    return period


@transaction.atomic
def payroll_period_update(*, actor, period: PayrollPeriod, **changes) -> PayrollPeriod:
    require_payroll_role(actor, period.company, "change payroll periods")
    lock_company_periods(period.company_id)  # company before period, as claim and reopen
    period = PayrollPeriod.objects.select_for_update().select_related("company").get(pk=period.pk)
    if period.status not in EDITABLE_STATUSES:
        raise ConflictError(
            f"{period} is {period.get_status_display().lower()}; reopen it to change it.",
            code="period_not_editable",
        )
    before = model_snapshot(period)
    if "status" in changes:
        raise ValidationFailed(
            "Change the status with activate, cancel, run or reopen.",
            code="status_read_only",
            fields={"status": ["Read-only here."]},
        )
    for name in ("start_date", "end_date", "pay_date"):
        if name in changes and changes[name] is not None:
            changes[name] = _as_date(changes[name], name)
    _set_fields(period, changes, PERIOD_FIELDS, "period")
    _check_period(period)
    _full_clean(period, exclude=["automation_rule"])
    period.save()
    after = model_snapshot(period)
    audit_record(
        action="payroll.period.updated",
        actor=actor,
        company=period.company,
        obj=period,
        before={k: v for k, v in before.items() if after.get(k) != v},
        after={k: v for k, v in after.items() if before.get(k) != v},
    )
    _schedule_sync_after_commit(period.pk)
    return period


def _move(actor, period: PayrollPeriod, to: str, action: str, **extra) -> PayrollPeriod:
    check_transition(period, to)
    before = period.status
    updated = PayrollPeriod.objects.filter(pk=period.pk, status=before).update(
        status=to, updated_at=timezone.now(), **extra
    )
    if updated != 1:
        raise ConflictError(f"{period} changed meanwhile; try again.", code="concurrent_change")
    period.status = to
    for name, value in extra.items():
        setattr(period, name, value)
    audit_record(
        action=action,
        actor=actor,
        company=period.company,
        obj=period,
        before={"status": before},
        after={"status": to},
    )
    _schedule_sync_after_commit(period.pk)
    return period


def _locked_period(period: PayrollPeriod) -> PayrollPeriod:
    return PayrollPeriod.objects.select_for_update().select_related("company").get(pk=period.pk)


@transaction.atomic
def payroll_period_activate(*, actor, period: PayrollPeriod) -> PayrollPeriod:
    require_payroll_role(actor, period.company, "activate payroll periods")
    period = _locked_period(period)
    if period.automation_enabled:
        automation_rule_validate(period.automation_rule, enabled=True)
    return _move(actor, period, PeriodStatus.ACTIVE, "payroll.period.activated")


@transaction.atomic
def payroll_period_cancel(*, actor, period: PayrollPeriod) -> PayrollPeriod:
    require_payroll_role(actor, period.company, "cancel payroll periods")
    period = _locked_period(period)
    return _move(actor, period, PeriodStatus.CANCELLED, "payroll.period.cancelled")


@transaction.atomic
def payroll_period_delete(*, actor, period: PayrollPeriod) -> None:
    """Delete a draft or cancelled period that was never run, with its beat entry."""
    require_payroll_role(actor, period.company, "delete payroll periods")
    period = _locked_period(period)
    if period.status not in (PeriodStatus.DRAFT, PeriodStatus.CANCELLED) or period.runs.exists():
        raise ConflictError(
            f"{period} has been run or is live; cancel it instead of deleting it.",
            code="period_in_use",
        )
    task = period.periodic_task
    audit_record(
        action="payroll.period.deleted",
        actor=actor,
        company=period.company,
        obj=period,
        before=model_snapshot(period),
    )
    period.delete()
    if task is not None:
        task.delete()


# --- pay schedules -----------------------------------------------------------------------------


def _add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_bounds(frequency: str, start: dt.date) -> tuple[dt.date, dt.date]:
    """The period of `frequency` that starts on `start`, and its last day."""
    if frequency == PeriodType.WEEKLY:
        return start, start + dt.timedelta(days=6)
    if frequency == PeriodType.BI_WEEKLY:
        return start, start + dt.timedelta(days=13)
    if frequency == PeriodType.SEMI_MONTHLY:
        if start.day <= 15:
            return start, start.replace(day=15)
        return start, start.replace(day=calendar.monthrange(start.year, start.month)[1])
    return start, _add_months(start, 1) - dt.timedelta(days=1)


def _schedule_anchor(frequency: str, anchor: dt.date) -> dt.date:
    if frequency == PeriodType.SEMI_MONTHLY:
        return anchor.replace(day=1 if anchor.day <= 15 else 16)
    return anchor


@transaction.atomic
def pay_schedule_create(*, actor, company: Company, **fields) -> PaySchedule:
    require_payroll_role(actor, company, "create pay schedules")
    schedule = PaySchedule(company=company)
    _set_fields(
        schedule,
        fields,
        (
            "name",
            "frequency",
            "anchor_date",
            "pay_day_offset",
            "automation_enabled",
            "automation_rule",
            "is_active",
        ),
        "pay schedule",
    )
    schedule.anchor_date = _as_date(schedule.anchor_date, "anchor_date")
    schedule.automation_rule = automation_rule_validate(
        schedule.automation_rule, enabled=schedule.automation_enabled
    )
    if "run_on_date" in schedule.automation_rule:
        raise ValidationFailed(
            "A schedule's periods each need their own date: use days_before_end or cron.",
            code="automation_rule_bad_date",
            fields={"automation_rule": ["run_on_date cannot repeat across periods."]},
        )
    _full_clean(schedule, exclude=["automation_rule"])
    _save_unique(schedule, f"A schedule named {schedule.name} exists.", "duplicate_name", "name")
    audit_record(
        action="payroll.schedule.created",
        actor=actor,
        company=company,
        obj=schedule,
        after=model_snapshot(schedule),
    )
    return schedule


@transaction.atomic
def pay_schedule_generate_periods(
    *, actor, schedule: PaySchedule, count: int = 3, activate: bool = True
) -> list[PayrollPeriod]:
    """Create the next `count` periods after the schedule's latest one (or from its anchor),
    with the schedule's pay-date offset and automation rule. Returns the periods created."""
    require_payroll_role(actor, schedule.company, "generate payroll periods")
    if not 1 <= int(count) <= 60:
        raise ValidationFailed(
            "Generate between 1 and 60 periods at a time.",
            code="invalid_count",
            fields={"count": ["Between 1 and 60."]},
        )
    schedule = PaySchedule.objects.select_for_update().select_related("company").get(pk=schedule.pk)
    last_end = (
        PayrollPeriod.objects.filter(schedule=schedule)
        .exclude(status=PeriodStatus.CANCELLED)
        .aggregate(last=Max("end_date"))["last"]
    )
    start = (
        last_end + dt.timedelta(days=1)
        if last_end
        else _schedule_anchor(schedule.frequency, schedule.anchor_date)
    )
    created = []
    for _ in range(int(count)):
        first, last = period_bounds(schedule.frequency, start)
        created.append(
            payroll_period_create(
                actor=actor,
                company=schedule.company,
                schedule=schedule,
                name=f"{schedule.name} {first:%Y-%m-%d}",
                start_date=first,
                end_date=last,
                pay_date=last + dt.timedelta(days=schedule.pay_day_offset),
                period_type=schedule.frequency,
                automation_enabled=schedule.automation_enabled,
                automation_rule=dict(schedule.automation_rule),
                activate=activate,
            )
        )
        start = last + dt.timedelta(days=1)
    return created


# --- running, reopening ------------------------------------------------------------------------


def payroll_period_run(
    *,
    actor,
    period: PayrollPeriod,
    force: bool = False,
    trigger: str = RunTrigger.MANUAL,
    asynchronous: bool = True,
    mail_payslips: bool = True,
):
    """Start a pay run. Asynchronous (admin, API): the period is claimed now, in this
    request, and the returned run (status running, progress 0 of N) is processed by a Celery
    worker after commit. Synchronous (commands, tests): processed here; returns the outcome.

    A period whose automation rule does not make it due yet needs `force`; a completed period
    is never paid again (reopen it first)."""
    from payroll.processing import PayrollProcessor

    require_payroll_role(actor, period.company, "run payroll")
    processor = PayrollProcessor(period, trigger=trigger, actor=actor, mail_payslips=mail_payslips)
    if not asynchronous:
        return processor.run_payroll(force=force)
    processor.defer = True
    run = processor.claim(force=force)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _queue_run(run.pk), robust=True)
    else:  # the claim is committed: queue now, and tell the caller if that fails
        _queue_run(run.pk)
    return run


def _queue_run(run_id: int) -> None:
    """Hand a claimed run to a worker. If it cannot be queued (a separately configured broker
    is down), the attempt fails at once with the reason and the period is released, ready to
    run again, instead of staying claimed until its lease expires. Raises ServiceUnavailable
    (503 with Retry-After) for a broker outage, the original error otherwise."""
    from kombu.exceptions import OperationalError as BrokerUnreachable

    from payroll.processing import run_fail
    from payroll.tasks import process_payroll_run

    try:
        process_payroll_run.delay(run_id)
    except Exception as exc:
        error = exc
        if isinstance(exc, BrokerUnreachable | OSError):
            error = ServiceUnavailable(
                f"The task broker is unreachable ({exc}); the run was not started and the "
                "period can be run again once the broker answers."
            )
        run = PayrollRun.objects.select_related("period__company").get(pk=run_id)
        run_fail(run, error)
        if error is exc:
            raise
        raise error from exc


@transaction.atomic
def payroll_period_reopen(*, actor, period: PayrollPeriod, reason: str) -> PayrollPeriod:
    """Undo a completed pay run: void its payslips, reverse its journal entry, put loan
    balances back, and return the period to draft (activate or run it explicitly once it is
    corrected). Refused while a later period of the company is completed: its year-to-date
    figures, annualised tax and loan balances were computed from this one (reopen that first)."""
    from accounting.services import journal_entry_reverse
    from payroll.processing import restore_loan_balances, void_payslips

    require_payroll_role(actor, period.company, "reopen payroll periods")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "Say why the period is reopened.",
            code="reason_required",
            fields={"reason": ["Required."]},
        )
    lock_company_periods(period.company_id)
    period = _locked_period(period)
    check_transition(period, PeriodStatus.DRAFT)
    if period.status != PeriodStatus.COMPLETED:
        raise ConflictError(f"{period} is not completed.", code="invalid_status")
    later = (
        PayrollPeriod.objects.filter(
            company_id=period.company_id,
            start_date__gt=period.start_date,
            status__in=[PeriodStatus.COMPLETED, PeriodStatus.PROCESSING],
        )
        .order_by("-start_date")
        .first()
    )
    if later is not None:
        raise ConflictError(
            f"{later} ({later.start_date}..{later.end_date}) is "
            f"{later.get_status_display().lower()} and was computed from {period}; reopen the "
            "later periods first, latest first.",
            code="later_period_completed",
            fields={"period": [f"{later} is {later.status}."]},
        )
    run = (
        PayrollRun.objects.select_for_update()
        .filter(period=period, status=RunStatus.COMPLETED)
        .first()
    )
    reversal = None
    if run is not None:
        if run.journal_entry_id:
            entry = run.journal_entry
            reversal = journal_entry_reverse(
                actor=None,
                system_job=f"{SYSTEM_JOB}.reopen",
                entry=entry,
                date=max(entry.date, period.company.today()),
                reason=f"Payroll {period} reopened: {reason}",
            )
        restore_loan_balances(run)
        void_payslips(run)
        PayrollRun.objects.filter(pk=run.pk).update(status=RunStatus.REOPENED)
    _move(
        actor,
        period,
        PeriodStatus.DRAFT,
        "payroll.period.reopened",
        completed_at=None,
    )
    audit_record(
        action="payroll.run.reopened",
        actor=actor,
        company=period.company,
        obj=run or period,
        after={"reason": reason, "reversal": reversal.reference if reversal else None},
    )
    return period


# --- tax tables with their brackets (added for the admin and the API by payroll-interfaces) ----


@transaction.atomic
def tax_table_save(*, actor, table, company: Company | None, brackets: list[dict] | None = None):
    """Create or change a tax table and, when `brackets` is given ([{"lower", "upper", "rate"}]),
    replace its brackets, all or nothing. Bands must not overlap (half-open: lower inclusive,
    upper exclusive) and only the last may be open-ended."""
    from payroll.models import TaxBracket

    table = reference_row_save(actor=actor, obj=table, company=company)
    if brackets is None:
        return table
    rows = sorted(
        (
            TaxBracket(
                table=table,
                lower=Decimal(str(b["lower"])),
                upper=None if b.get("upper") in (None, "") else Decimal(str(b["upper"])),
                rate=Decimal(str(b["rate"])),
            )
            for b in brackets
        ),
        key=lambda b: b.lower,
    )
    for index, (current, following) in enumerate(zip(rows, [*rows[1:], None], strict=True)):
        where = f"Bracket {index + 1} ({current.lower}..{current.upper or ''})"
        if following is not None and (current.upper is None or current.upper > following.lower):
            raise ValidationFailed(
                f"{where} overlaps the next one, which starts at {following.lower}.",
                code="brackets_overlap",
                fields={"brackets": [f"{where} overlaps the next bracket."]},
            )
        try:
            current.full_clean(exclude=["table"], validate_constraints=False)
        except ValidationError as exc:
            raise ValidationFailed(
                f"{where}: {'; '.join(exc.messages)}",
                code="invalid_bracket",
                fields={"brackets": exc.messages},
            ) from None
        if current.upper is not None and current.upper <= current.lower:
            raise ValidationFailed(
                f"{where}: the upper bound must be above the lower one.",
                code="invalid_bracket",
                fields={"brackets": [f"{where}: upper <= lower."]},
            )
        if not Decimal(0) <= current.rate <= Decimal(1):
            raise ValidationFailed(
                f"{where}: the rate is a fraction between 0 and 1 (0.05 is 5%).",
                code="invalid_bracket",
                fields={"brackets": [f"{where}: rate out of range."]},
            )
    before = [(str(b.lower), str(b.upper), str(b.rate)) for b in table.brackets.all()]
    TaxBracket.objects.filter(table=table).delete()
    TaxBracket.objects.bulk_create(rows)
    audit_record(
        action="payroll.taxtable.brackets_replaced",
        actor=actor,
        company=table.company,
        obj=table,
        before={"brackets": before},
        after={"brackets": [(str(b.lower), str(b.upper), str(b.rate)) for b in rows]},
    )
    return table
