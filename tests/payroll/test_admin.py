"""The payroll admin as payroll staff use it: every page renders, the actions go through the
services and say what they did (or why not), the CSV import is all or nothing and names the
bad line, payslips are read-only with a PDF."""

import html
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from core.errors import ConflictError
from payroll import services
from payroll.models import (
    DeductionType,
    EarningType,
    Employee,
    EmployeeDeduction,
    FlatTax,
    OvertimeRule,
    PayRate,
    PayrollPeriod,
    PayrollRun,
    PaySchedule,
    Payslip,
    PeriodStatus,
    TaxTable,
    TimeEntry,
)
from payroll.processing import PayrollProcessor
from tests.payroll.conftest import deduction_type, employee, monthly

D = Decimal
pytestmark = pytest.mark.django_db
ADMIN = "/admin/payroll"


def login(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager(books):
    return login(books.users_a["payroll_manager"])


@pytest.fixture
def paid(books, dims):
    company = books.a
    emp = employee(company, "E001", name="Rahima Akter", department=dims["ops"])
    services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("PF")
    )
    july = monthly(company, 2025, 7)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    return {"employee": emp, "period": july, "payslip": Payslip.objects.get(period=july)}


def _texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


MODELS = [
    Employee,
    PayRate,
    TimeEntry,
    PaySchedule,
    PayrollPeriod,
    PayrollRun,
    Payslip,
    TaxTable,
    FlatTax,
    OvertimeRule,
    DeductionType,
    EarningType,
]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_changelist_and_change_pages_render(model, paid, manager, books):
    company = books.a
    services.time_entries_upsert(
        actor=None,
        company=company,
        entries=[{"employee": "E001", "day": date(2025, 8, 1), "hours": "8"}],
    )
    services.pay_schedule_create(
        actor=None,
        company=company,
        name="Monthly",
        frequency="monthly",
        anchor_date=date(2025, 8, 1),
    )
    services.reference_row_save(
        actor=None,
        obj=PayRate(
            company=company,
            role="Clerk",
            jurisdiction="BD",
            pay_type="salaried",
            annual_salary=D("300000.00"),
            effective_from=date(2025, 1, 1),
        ),
    )
    name = model._meta.model_name
    listed = manager.get(f"{ADMIN}/{name}/")
    assert listed.status_code == 200, listed.content[:500]
    obj = model.objects.order_by("pk").first()
    assert obj is not None, name
    page = manager.get(f"{ADMIN}/{name}/{obj.pk}/change/")
    assert page.status_code == 200
    if model not in (PayrollRun, Payslip):
        assert manager.get(f"{ADMIN}/{name}/add/").status_code == 200


def test_employee_created_with_a_deduction_inline(manager, books, dims):
    response = manager.post(
        f"{ADMIN}/employee/add/",
        {
            "company": books.a.pk,
            "code": "E200",
            "name": "Nusrat Jahan",
            "email": "nusrat@example.test",
            "role": "",
            "department": dims["sales"].pk,
            "cost_center": "",
            "jurisdiction": "BD",
            "tax_category": "women_senior",
            "pay_type": "salaried",
            "annual_salary": "720000.00",
            "hourly_rate": "",
            "start_date": "2025-07-01",
            "end_date": "",
            "bank_name": "",
            "bank_branch": "",
            "bank_account_name": "",
            "bank_account_number": "",
            "bank_routing_number": "",
            "deductions-TOTAL_FORMS": "1",
            "deductions-INITIAL_FORMS": "0",
            "deductions-0-deduction_type": DeductionType.objects.get(
                company=None, code="HEALTH"
            ).pk,
            "deductions-0-amount": "1500.00",
            "deductions-0-is_active": "on",
            "earnings-TOTAL_FORMS": "0",
            "earnings-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    emp = Employee.objects.get(code="E200")
    assert (emp.company, emp.annual_salary) == (books.a, D("720000.00"))
    deduction = EmployeeDeduction.objects.get(employee=emp)
    assert (deduction.amount, deduction.company) == (D("1500.00"), books.a)


def test_salaried_employee_without_salary_shows_the_service_message(manager, books):
    response = manager.post(
        f"{ADMIN}/employee/add/",
        {
            "company": books.a.pk,
            "code": "E201",
            "name": "No Salary",
            "jurisdiction": "BD",
            "tax_category": "general",
            "pay_type": "salaried",
            "start_date": "2025-07-01",
            "deductions-TOTAL_FORMS": "0",
            "deductions-INITIAL_FORMS": "0",
            "earnings-TOTAL_FORMS": "0",
            "earnings-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "A salaried employee needs an annual salary" in response.content.decode()
    assert not Employee.objects.filter(code="E201").exists()


def _period_post(manager, company, **fields):
    data = {
        "company": company.pk,
        "schedule": "",
        "name": "July 2025",
        "period_type": "monthly",
        "start_date": "2025-07-01",
        "end_date": "2025-07-31",
        "pay_date": "2025-07-31",
        "automation_enabled": "on",
        "automation_rule": '{"days_before_end": 3}',
        "activate": "on",
        **fields,
    }
    return manager.post(f"{ADMIN}/payrollperiod/add/", data)


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ('{"run_on": "2025-07-25"}', "Unknown automation rule key"),
        ('{"run_on_date": "2025-07-25", "cron": "0 2 * * *"}', "Give exactly one"),
        ('{"run_on_date": "25/07/2025"}', "YYYY-MM-DD"),
        ('{"days_before_end": -1}', "cannot be negative"),
        ('{"cron": "0 25 * * *"}', "not a valid expression"),
    ],
)
def test_period_form_refuses_bad_rules_with_the_message(manager, books, rule, says):
    response = _period_post(manager, books.a, automation_rule=rule)
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not PayrollPeriod.objects.exists()


def test_period_created_shows_rule_and_next_run(manager, books):
    response = _period_post(manager, books.a)
    assert response.status_code == 302, response.content.decode()[:2000]
    period = PayrollPeriod.objects.get()
    assert (period.status, period.automation_rule) == (PeriodStatus.ACTIVE, {"days_before_end": 3})
    listed = manager.get(f"{ADMIN}/payrollperiod/").content.decode()
    assert "{&quot;days_before_end&quot;: 3}" in listed
    assert "2025-07-28" in listed


def test_run_now_force_run_and_dry_run_actions(manager, books, django_capture_on_commit_callbacks):
    company = books.a
    employee(company, "E001")
    july = monthly(
        company, 2025, 7, automation_enabled=True, automation_rule={"run_on_date": "2999-01-01"}
    )
    url = f"{ADMIN}/payrollperiod/"

    dry = manager.post(url, {"action": "dry_run", "_selected_action": [july.pk]}, follow=True)
    text = " ".join(_texts(dry))
    assert "dry run, nothing written" in text
    assert "gross 100,000.00" in text
    assert not Payslip.objects.exists()

    refused = manager.post(url, {"action": "run_now", "_selected_action": [july.pk]}, follow=True)
    assert "is not due yet" in " ".join(_texts(refused))
    assert not PayrollRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        forced = manager.post(
            url, {"action": "force_run", "_selected_action": [july.pk]}, follow=True
        )
    assert "run 1 started for 1 employee (forced)" in " ".join(_texts(forced))
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED
    run = PayrollRun.objects.get(period=july)
    assert (run.done, run.total, run.gross_total) == (1, 1, D("100000.00"))
    listed = manager.get(url).content.decode()
    assert "1 / 1 (100%)" in listed
    assert "payroll-progress" in manager.get(f"{ADMIN}/payrollrun/").content.decode()

    again = manager.post(url, {"action": "force_run", "_selected_action": [july.pk]}, follow=True)
    assert "already paid" in " ".join(_texts(again))
    assert PayrollRun.objects.count() == 1


def test_reopen_action_asks_a_reason_then_voids_and_reverses(manager, paid):
    url = f"{ADMIN}/payrollperiod/"
    period = paid["period"]
    asked = manager.post(url, {"action": "reopen", "_selected_action": [period.pk]})
    assert asked.status_code == 200
    assert "Reason" in asked.content.decode()
    done = manager.post(
        url,
        {"action": "reopen", "_selected_action": [period.pk], "reason": "wrong department"},
        follow=True,
    )
    assert "reopened: payslips voided, journal entry reversed" in " ".join(_texts(done))
    period.refresh_from_db()
    assert period.status == PeriodStatus.DRAFT
    paid["payslip"].refresh_from_db()
    assert paid["payslip"].status == "void"


def test_payslip_is_read_only_with_a_pdf(manager, paid):
    slip = paid["payslip"]
    page = manager.get(f"{ADMIN}/payslip/{slip.pk}/change/").content.decode()
    assert slip.net == D("83375.00")  # 100,000 - PF 10,000 - tax 6,625
    assert "83375.00" in page or "83,375.00" in page
    assert f"/admin/payroll/payslip/{slip.pk}/pdf/" in page
    assert 'name="_save"' not in page
    pdf = manager.get(f"{ADMIN}/payslip/{slip.pk}/pdf/")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert "payslip_E001_2025-07-01.pdf" in pdf["Content-Disposition"]
    assert manager.get(f"{ADMIN}/payslip/add/").status_code == 403
    page = manager.get(f"{ADMIN}/payslip/{slip.pk}/html/").content.decode()
    assert "Rahima Akter (E001)" in page and "83,375.00" in page


def test_other_company_cannot_open_the_payslip(paid, books):
    outsider = login(books.owner_b)
    assert outsider.get(f"{ADMIN}/payslip/{paid['payslip'].pk}/pdf/").status_code == 404


def _upload(manager, company, text: str):
    return manager.post(
        f"{ADMIN}/timeentry/import/",
        {
            "company": company.pk,
            "file": SimpleUploadedFile("hours.csv", text.encode(), content_type="text/csv"),
        },
        follow=True,
    )


def test_time_entry_csv_import_good_file(manager, books):
    employee(books.a, "H001", pay_type="hourly", hourly_rate=D("250.0000"))
    assert manager.get(f"{ADMIN}/timeentry/import/").status_code == 200
    response = _upload(
        manager,
        books.a,
        "employee,day,hours,note\nH001,2025-07-01,8.00,\nH001,2025-07-02,9.50,stock count\n",
    )
    assert "Imported 2 rows: 2 new, 0 replaced." in " ".join(_texts(response))
    assert sum(e.hours for e in TimeEntry.objects.all()) == D("17.50")


@pytest.mark.parametrize(
    ("bad_row", "says"),
    [
        ("NOPE,2025-07-03,8", "Line 4: no employee with code 'NOPE'"),
        ("H001,03/07/2025,8", "Line 4: day '03/07/2025' is not a date"),
        ("H001,2025-07-03,25", "Line 4: hours must be between 0 and 24"),
        ("H001,2025-07-03,eight", "Line 4: hours 'eight' is not a number"),
        ("H001,2025-07-01,4", "Line 4: H001 already has a row for 2025-07-01"),
    ],
)
def test_time_entry_csv_import_bad_row_imports_nothing(manager, books, bad_row, says):
    employee(books.a, "H001", pay_type="hourly", hourly_rate=D("250.0000"))
    response = _upload(
        manager,
        books.a,
        f"employee,day,hours\nH001,2025-07-01,8.00\nH001,2025-07-02,9.50\n{bad_row}\n",
    )
    body = html.unescape(response.content.decode())
    assert says in body
    assert "Nothing was imported" in body
    assert not TimeEntry.objects.exists()


def test_time_entry_csv_import_into_a_paid_period_is_refused(manager, paid, books):
    response = _upload(manager, books.a, "employee,day,hours\nE001,2025-07-01,8\n")
    body = html.unescape(response.content.decode())
    assert "which is completed" in body
    assert not TimeEntry.objects.exists()


def test_tax_table_with_brackets_inline(manager, books):
    response = manager.post(
        f"{ADMIN}/taxtable/add/",
        {
            "company": books.a.pk,
            "jurisdiction": "BD-CTG",
            "category": "general",
            "name": "Port levy",
            "effective_from": "2025-07-01",
            "effective_to": "",
            "annual_exemption": "0",
            "source": "Test ordinance",
            "is_active": "on",
            "brackets-TOTAL_FORMS": "2",
            "brackets-INITIAL_FORMS": "0",
            "brackets-0-lower": "0",
            "brackets-0-upper": "100000",
            "brackets-0-rate": "0",
            "brackets-1-lower": "100000",
            "brackets-1-upper": "",
            "brackets-1-rate": "0.01",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    table = TaxTable.objects.get(name="Port levy")
    assert [(b.lower, b.upper, b.rate) for b in table.brackets.order_by("lower")] == [
        (D("0.00"), D("100000.00"), D("0.000000")),
        (D("100000.00"), None, D("0.010000")),
    ]


def test_shared_statutory_rows_are_read_only_for_company_staff(manager):
    shared = TaxTable.objects.filter(company=None).first()
    page = manager.get(f"{ADMIN}/taxtable/{shared.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert "Shared (statutory)" in manager.get(f"{ADMIN}/taxtable/").content.decode()


def test_clerk_does_not_see_payroll(books):
    clerk = login(books.users_a["clerk"])
    assert clerk.get(f"{ADMIN}/payslip/").status_code == 403


def test_dashboard_shows_upcoming_periods_and_last_runs(manager, paid, books):
    monthly(books.a, 2025, 8, automation_enabled=True, automation_rule={"days_before_end": 3})
    page = html.unescape(manager.get("/admin/").content.decode())
    assert "Upcoming payroll periods" in page
    assert "2025-08-28" in page  # August's next run: 3 days before its end
    assert "Last pay runs" in page
    assert "1 / 1 (100%)" in page
    assert "83,375.00" in page  # July's net


def test_employee_inline_deduction_changed_and_removed_through_services(manager, books):
    from core.models import AuditEvent

    emp = employee(books.a, "E300")
    health = services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("HEALTH"), amount=D("1000.00")
    )
    loan = services.employee_deduction_create(
        actor=None,
        employee=emp,
        deduction_type=deduction_type("LOAN"),
        amount=D("2000.00"),
        balance=D("10000.00"),
    )
    page = manager.get(f"{ADMIN}/employee/{emp.pk}/change/")
    assert page.status_code == 200
    data = {
        "code": "E300",
        "name": emp.name,
        "email": emp.email,
        "role": "",
        "department": "",
        "cost_center": "",
        "jurisdiction": "BD",
        "tax_category": "general",
        "pay_type": "salaried",
        "annual_salary": "1200000.00",
        "hourly_rate": "",
        "start_date": "2020-01-01",
        "end_date": "",
        "bank_name": "",
        "bank_branch": "",
        "bank_account_name": "",
        "bank_account_number": "",
        "bank_routing_number": "",
        "deductions-TOTAL_FORMS": "2",
        "deductions-INITIAL_FORMS": "2",
        "deductions-0-id": health.pk,
        "deductions-0-employee": emp.pk,
        "deductions-0-deduction_type": health.deduction_type_id,
        "deductions-0-amount": "1750.00",
        "deductions-0-is_active": "on",
        "deductions-1-id": loan.pk,
        "deductions-1-employee": emp.pk,
        "deductions-1-deduction_type": loan.deduction_type_id,
        "deductions-1-amount": "2000.00",
        "deductions-1-balance": "10000.00",
        "deductions-1-is_active": "on",
        "deductions-1-DELETE": "on",
        "earnings-TOTAL_FORMS": "0",
        "earnings-INITIAL_FORMS": "0",
    }
    response = manager.post(f"{ADMIN}/employee/{emp.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    health.refresh_from_db()
    assert health.amount == D("1750.00")
    assert not EmployeeDeduction.objects.filter(pk=loan.pk).exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"payroll.employeededuction.updated", "payroll.employeededuction.deleted"} <= actions


def test_reopen_of_an_unpaid_period_says_why(manager, books):
    july = monthly(books.a, 2025, 7)
    response = manager.post(
        f"{ADMIN}/payrollperiod/",
        {"action": "reopen", "_selected_action": [july.pk], "reason": "oops"},
        follow=True,
    )
    text = " ".join(_texts(response))
    assert "cannot become active" in text or "is not completed" in text
    july.refresh_from_db()
    assert july.status == PeriodStatus.ACTIVE


def test_auditor_sees_periods_but_gets_no_run_actions(books, paid):
    auditor = login(books.users_a["auditor"])
    page = auditor.get(f"{ADMIN}/payrollperiod/").content.decode()
    assert "dry_run" in page
    assert "force_run" not in page
    refused = auditor.post(
        f"{ADMIN}/payrollperiod/",
        {"action": "force_run", "_selected_action": [paid["period"].pk]},
        follow=True,
    )
    assert PayrollRun.objects.count() == 1
    assert refused.status_code == 200


def test_lists_refresh_while_a_run_is_in_progress(manager, books):
    employee(books.a, "E001")
    july = monthly(books.a, 2025, 7)
    assert 'http-equiv="refresh"' not in manager.get(f"{ADMIN}/payrollrun/").content.decode()
    services.payroll_period_run(actor=None, period=july)  # claimed; the worker runs after commit
    for name in ("payrollrun", "payrollperiod"):
        page = manager.get(f"{ADMIN}/{name}/").content.decode()
        assert 'http-equiv="refresh"' in page
        assert "0 / 1 (0%)" in page


def test_completed_period_page_saves_without_changes_and_refuses_edits(manager, paid):
    period = paid["period"]
    page = manager.get(f"{ADMIN}/payrollperiod/{period.pk}/change/")
    assert page.status_code == 200
    assert manager.post(f"{ADMIN}/payrollperiod/{period.pk}/change/", {}).status_code == 302
    period.refresh_from_db()
    assert period.status == PeriodStatus.COMPLETED
    refused = services.payroll_period_update
    with pytest.raises(Exception) as raised:
        refused(actor=None, period=period, name="Renamed")
    assert "reopen it to change it" in str(raised.value.message)


def test_time_entry_of_a_paid_period_cannot_be_deleted(manager, books):
    """Hours paid in July stay while July is completed; deleting them goes through the same
    settled-period check as changing them."""
    company = books.a
    employee(company, "H1", pay_type="hourly", hourly_rate=D("250.0000"))
    services.time_entries_upsert(
        actor=None,
        company=company,
        entries=[{"employee": "H1", "day": date(2025, 7, 1), "hours": "8.00"}],
    )
    july = monthly(company, 2025, 7)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    entry = TimeEntry.objects.get()
    response = manager.post(f"{ADMIN}/timeentry/{entry.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code in (200, 409)
    assert "reopen it before changing its hours" in response.content.decode()
    assert TimeEntry.objects.filter(pk=entry.pk).exists()
    with pytest.raises(ConflictError) as caught:
        services.reference_row_delete(actor=None, obj=entry)
    assert caught.value.code == "period_settled"
