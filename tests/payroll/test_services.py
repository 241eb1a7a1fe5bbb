"""Payroll services: clear refusals that save nothing, status moves, time entries, roles,
metrics."""

from datetime import date
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from core.errors import ConflictError, DomainError, PermissionDeniedError, ValidationFailed
from core.models import AuditEvent
from payroll import services
from payroll.models import Employee, PayRate, PeriodStatus, TimeEntry
from payroll.processing import PayrollProcessor
from tests.payroll.conftest import employee, monthly

D = Decimal
pytestmark = pytest.mark.django_db


def test_employee_needs_pay_and_a_unique_code(books):
    company = books.a
    with pytest.raises(ValidationFailed) as caught:
        services.employee_create(
            actor=None,
            company=company,
            code="H1",
            name="No rate",
            pay_type="hourly",
            start_date=date(2025, 1, 1),
        )
    assert caught.value.code == "rate_required" and "hourly_rate" in caught.value.fields
    employee(company, "E1")
    with pytest.raises(DomainError) as caught:
        employee(company, "E1")
    assert "already" in caught.value.message
    with pytest.raises(ValidationFailed) as caught:
        employee(company, "E2", start_date=date(2025, 5, 1), end_date=date(2025, 4, 1))
    assert Employee.objects.filter(company=company).count() == 1


def test_employee_dimensions_must_be_the_companys(books, dims):
    with pytest.raises(ValidationFailed) as caught:
        employee(books.b, "X1", department=dims["ops"])
    assert caught.value.code == "wrong_company"


def test_role_based_pay_rate_pays_an_employee_without_a_rate(books):
    """A cashier in BD on the role's 150.0000/h: 10 h on one day, no overtime rule in BD."""
    company = books.a
    PayRate.objects.create(
        company=company,
        role="cashier",
        jurisdiction="BD",
        pay_type="hourly",
        hourly_rate=D("150.0000"),
        effective_from=date(2025, 1, 1),
    )
    worker = employee(company, "C1", pay_type="hourly", role="cashier")
    services.time_entries_upsert(
        actor=None,
        company=company,
        entries=[{"employee": "C1", "day": "2025-07-03", "hours": "10"}],
    )
    PayrollProcessor(monthly(company, 2025, 7)).run_payroll()
    assert worker.payslips.get().gross == D("1500.00")


def test_time_entries_are_all_or_nothing_and_replace_the_same_day(books):
    company = books.a
    worker = employee(company, "H1", pay_type="hourly", hourly_rate=D("100"))
    result = services.time_entries_upsert(
        actor=None,
        company=company,
        entries=[
            {"employee": worker.pk, "day": "2025-07-01", "hours": "8"},
            {"employee": "H1", "day": "2025-07-02", "hours": "7.5"},
        ],
    )
    assert result == {"created": 2, "updated": 0}
    with pytest.raises(ValidationFailed) as caught:
        services.time_entries_upsert(
            actor=None,
            company=company,
            entries=[
                {"employee": "H1", "day": "2025-07-03", "hours": "8"},
                {"employee": "H1", "day": "2025-07-04", "hours": "25"},
            ],
        )
    assert caught.value.code == "invalid_hours" and "Entry 2" in caught.value.message
    assert TimeEntry.objects.count() == 2
    result = services.time_entries_upsert(
        actor=None, company=company, entries=[{"employee": "H1", "day": "2025-07-01", "hours": "9"}]
    )
    assert result == {"created": 0, "updated": 1}
    with pytest.raises(ValidationFailed) as caught:
        services.time_entries_upsert(
            actor=None,
            company=books.b,
            entries=[{"employee": "H1", "day": "2025-07-01", "hours": "1"}],
        )
    assert caught.value.code == "unknown_employee"


def test_hours_in_a_paid_period_are_refused(books):
    company = books.a
    employee(company, "H1", pay_type="hourly", hourly_rate=D("100"))
    PayrollProcessor(monthly(company, 2025, 7)).run_payroll()
    with pytest.raises(ConflictError) as caught:
        services.time_entries_upsert(
            actor=None,
            company=company,
            entries=[{"employee": "H1", "day": "2025-07-10", "hours": "8"}],
        )
    assert caught.value.code == "period_settled"


def test_status_moves_follow_the_transitions_map(books):
    company = books.a
    p = monthly(company, 2025, 7, activate=False)
    assert PayrollProcessor(p).run_payroll().status == "not_runnable"  # a draft is not run
    p = services.payroll_period_activate(actor=None, period=p)
    p = services.payroll_period_cancel(actor=None, period=p)
    with pytest.raises(ConflictError) as caught:
        services.payroll_period_activate(actor=None, period=p)
    assert caught.value.code == "invalid_status"
    with pytest.raises(ConflictError):
        services.payroll_period_update(actor=None, period=p, name="x")
    assert AuditEvent.objects.filter(action="payroll.period.cancelled").count() == 1


def test_completed_period_changes_only_by_reopen(books):
    company = books.a
    employee(company, "E1")
    p = monthly(company, 2025, 7)
    PayrollProcessor(p).run_payroll()
    p.refresh_from_db()
    with pytest.raises(ConflictError) as caught:
        services.payroll_period_update(actor=None, period=p, pay_date=date(2025, 8, 2))
    assert caught.value.code == "period_not_editable"
    with pytest.raises(ValidationFailed) as caught:
        services.payroll_period_reopen(actor=None, period=p, reason=" ")
    assert caught.value.code == "reason_required"
    p = services.payroll_period_reopen(actor=None, period=p, reason="late overtime")
    assert p.status == PeriodStatus.DRAFT


def test_roles(books):
    company = books.a
    clerk = books.users_a["clerk"]
    accountant = books.users_a["accountant"]
    manager = books.users_a["payroll_manager"]
    for user in (clerk, accountant):
        with pytest.raises(PermissionDeniedError):
            services.employee_create(
                actor=user,
                company=company,
                code="E9",
                name="Nine",
                annual_salary=D("100"),
                start_date=date(2025, 1, 1),
            )
    emp = services.employee_create(
        actor=manager,
        company=company,
        code="E9",
        name="Nine",
        annual_salary=D("120000.00"),
        start_date=date(2025, 1, 1),
    )
    p = monthly(company, 2025, 7)
    outcome = services.payroll_period_run(actor=manager, period=p, force=True, asynchronous=False)
    assert outcome.status == "completed"
    run = outcome.run
    assert run.triggered_by == manager
    assert emp.payslips.get().net == D("10000.00")
    with pytest.raises(PermissionDeniedError):
        services.payroll_period_reopen(actor=accountant, period=p, reason="no")


def _sample(name, labels=None):
    return REGISTRY.get_sample_value(name, labels or {}) or 0


def test_metrics_count_runs_and_time_them(books):
    company = books.a
    employee(company, "E1")
    completed = _sample("payroll_calculations_total", {"status": "completed"})
    skipped = _sample("payroll_calculations_total", {"status": "skipped"})
    timed = _sample("payroll_calculation_duration_seconds_count")
    p = monthly(company, 2025, 7)
    PayrollProcessor(p).run_payroll()
    PayrollProcessor(p).run_payroll()
    assert _sample("payroll_calculations_total", {"status": "completed"}) == completed + 1
    assert _sample("payroll_calculations_total", {"status": "skipped"}) == skipped + 1
    assert _sample("payroll_calculation_duration_seconds_count") == timed + 1
    assert _sample("payroll_batch_jobs_active") == 0


def test_metrics_are_served(client, db):
    body = client.get("/metrics").content.decode()
    for name in (
        "payroll_calculations_total",
        "payroll_calculation_duration_seconds",
        "payroll_batch_jobs_active",
    ):
        assert name in body


# --- periods: no overlap across types, length matches the type ------------------------------


def test_overlapping_periods_of_different_types_are_refused(books):
    """A monthly July and a weekly 7-13 July would both pay E001 for 7-13 July (100,000.00 for
    the month and 1,200,000 / 52 = 23,076.92 for the week): the week is refused."""
    from payroll.models import PayrollPeriod
    from tests.payroll.conftest import period

    company = books.a
    employee(company, "E001")
    july = monthly(company, 2025, 7)
    with pytest.raises(ConflictError) as caught:
        period(company, date(2025, 7, 7), date(2025, 7, 13), period_type="weekly")
    assert caught.value.code == "period_overlap"
    assert str(july) in caught.value.message
    # semi-monthly over the same days too; a cancelled July frees the days
    with pytest.raises(ConflictError):
        period(company, date(2025, 7, 16), date(2025, 7, 31), period_type="semi_monthly")
    services.payroll_period_cancel(actor=None, period=july)
    week = period(company, date(2025, 7, 7), date(2025, 7, 13), period_type="weekly")
    assert PayrollPeriod.objects.exclude(status="cancelled").get() == week


@pytest.mark.parametrize(
    ("period_type", "start", "end", "ok"),
    [
        ("weekly", date(2025, 7, 7), date(2025, 7, 13), True),
        ("weekly", date(2025, 7, 1), date(2025, 7, 31), False),
        ("weekly", date(2025, 7, 7), date(2025, 7, 12), False),
        ("bi_weekly", date(2025, 7, 7), date(2025, 7, 20), True),
        ("bi_weekly", date(2025, 7, 7), date(2025, 7, 21), False),
        ("semi_monthly", date(2025, 7, 1), date(2025, 7, 15), True),
        ("semi_monthly", date(2025, 2, 16), date(2025, 2, 28), True),
        ("semi_monthly", date(2025, 7, 2), date(2025, 7, 16), False),
        ("semi_monthly", date(2025, 7, 16), date(2025, 8, 15), False),
        ("monthly", date(2025, 7, 1), date(2025, 7, 31), True),
        ("monthly", date(2025, 2, 1), date(2025, 2, 28), True),
        ("monthly", date(2025, 7, 15), date(2025, 8, 14), True),
        ("monthly", date(2025, 7, 1), date(2025, 7, 7), False),
        ("monthly", date(2025, 7, 1), date(2025, 8, 1), False),
    ],
)
def test_period_length_matches_its_type(books, period_type, start, end, ok):
    from payroll.models import PayrollPeriod
    from tests.payroll.conftest import period

    if ok:
        assert period(books.a, start, end, period_type=period_type).pk
        return
    with pytest.raises(ValidationFailed) as caught:
        period(books.a, start, end, period_type=period_type)
    assert caught.value.code == "period_length"
    assert "end_date" in caught.value.fields
    assert not PayrollPeriod.objects.exists()


def test_monthly_period_of_one_week_is_refused_by_update_too(books):
    july = monthly(books.a, 2025, 7)
    with pytest.raises(ValidationFailed) as caught:
        services.payroll_period_update(actor=None, period=july, end_date=date(2025, 7, 7))
    assert caught.value.code == "period_length"
    july.refresh_from_db()
    assert july.end_date == date(2025, 7, 31)


@pytest.mark.parametrize("frequency", ["weekly", "bi_weekly", "semi_monthly", "monthly"])
def test_schedule_generates_periods_of_its_length(books, frequency):
    schedule = services.pay_schedule_create(
        actor=None,
        company=books.a,
        name=frequency,
        frequency=frequency,
        anchor_date=date(2025, 7, 9),
    )
    made = services.pay_schedule_generate_periods(actor=None, schedule=schedule, count=5)
    assert len(made) == 5
    for first, second in zip(made, made[1:], strict=False):
        assert second.start_date == first.end_date + __import__("datetime").timedelta(days=1)
    for p in made:
        assert services.period_length_problem(frequency, p.start_date, p.end_date) is None


# --- rates are fractions ---------------------------------------------------------------------


def test_percent_rates_above_one_are_refused_and_the_database_checks_them(books):
    """rate=10 (meant as 10 %) would take 10 x gross: refused with a field message, and the
    database refuses it around Python too."""
    from django.db import IntegrityError, transaction

    from payroll.models import DeductionType, EmployeeDeduction
    from tests.payroll.conftest import deduction_type

    company = books.a
    emp = employee(company, "E001")
    with pytest.raises(ValidationFailed) as caught:
        services.employee_deduction_create(
            actor=None, employee=emp, deduction_type=deduction_type("PF"), rate=D("10")
        )
    assert "fraction" in caught.value.fields["rate"][0]
    assert not EmployeeDeduction.objects.exists()
    with pytest.raises(ValidationFailed) as caught:
        services.reference_row_save(
            actor=None,
            obj=DeductionType(code="X", name="X", calculation="percent", default_rate=D("1.5")),
            company=company,
        )
    assert "default_rate" in caught.value.fields
    row = services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("PF"), rate=D("1")
    )
    for model, pk, field in (
        (EmployeeDeduction, row.pk, "rate"),
        (DeductionType, deduction_type("PF").pk, "default_rate"),
        (DeductionType, deduction_type("PF").pk, "employer_rate"),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            model.objects.filter(pk=pk).update(**{field: D("1.000001")})


def test_flat_tax_and_bracket_rates_above_one_are_refused(books):
    from payroll.models import FlatTax, TaxTable

    company = books.a
    with pytest.raises(ValidationFailed) as caught:
        services.reference_row_save(
            actor=None,
            obj=FlatTax(
                jurisdiction="BD",
                code="SS",
                name="SS",
                employee_rate=D("6.2"),
                effective_from=date(2025, 1, 1),
            ),
            company=company,
        )
    assert "employee_rate" in caught.value.fields
    with pytest.raises(ValidationFailed):
        services.tax_table_save(
            actor=None,
            table=TaxTable(
                jurisdiction="BD", name="T", effective_from=date(2025, 7, 1), source="test"
            ),
            company=company,
            brackets=[{"lower": "0", "upper": None, "rate": "5"}],
        )
    assert not TaxTable.objects.filter(company=company).exists()


def test_earning_without_period_or_start_day_gets_a_field_message(books):
    from payroll.models import EmployeeEarning
    from tests.payroll.conftest import earning_type

    emp = employee(books.a, "E001")
    with pytest.raises(ValidationFailed) as caught:
        services.employee_earning_create(
            actor=None, employee=emp, earning_type=earning_type("BONUS"), amount=D("100.00")
        )
    assert "effective_from" in caught.value.fields
    assert "one-off earning" in caught.value.fields["effective_from"][0]
    assert not EmployeeEarning.objects.exists()
