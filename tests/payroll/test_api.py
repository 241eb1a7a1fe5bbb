"""The payroll API end to end: CRUD through the services, the automation rule's messages,
running a period (202, force, 409), progress, payslips as PDF, reopen, bulk time entries (all
or nothing), tax tables with brackets, shared statutory rows read-only."""

import io
from datetime import date
from decimal import Decimal

import pytest

from payroll.models import Employee, PayrollPeriod, Payslip, PeriodStatus, TaxTable, TimeEntry
from tests.payroll.conftest import employee, monthly

D = Decimal
pytestmark = pytest.mark.django_db
BASE = "/api/v1/payroll"


@pytest.fixture
def client(books, api):
    return api(books.users_a["payroll_manager"], books.a)


def test_employee_create_list_update_and_refusals(client, books, dims):
    created = client.post(
        f"{BASE}/employees/",
        {
            "code": "E100",
            "name": "Karim Uddin",
            "email": "karim@example.test",
            "department": dims["ops"].pk,
            "pay_type": "salaried",
            "annual_salary": "840000.00",
            "jurisdiction": "bd",
            "start_date": "2024-01-15",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["code"], body["jurisdiction"], body["department_code"]) == ("E100", "BD", "OPS")
    assert body["annual_salary"] == "840000.00"

    changed = client.patch(
        f"{BASE}/employees/{body['id']}/", {"annual_salary": "900000.00"}, format="json"
    )
    assert changed.status_code == 200
    assert Employee.objects.get(pk=body["id"]).annual_salary == D("900000.00")

    duplicate = client.post(
        f"{BASE}/employees/",
        {"code": "E100", "name": "Again", "annual_salary": "1.00", "start_date": "2024-01-01"},
        format="json",
    )
    assert duplicate.status_code == 400, duplicate.content
    assert "already exists" in duplicate.json()["message"]

    no_salary = client.post(
        f"{BASE}/employees/",
        {"code": "E101", "name": "No Pay", "pay_type": "salaried", "start_date": "2024-01-01"},
        format="json",
    )
    assert no_salary.status_code == 400
    assert no_salary.json()["code"] == "salary_required"
    assert "annual_salary" in no_salary.json()["fields"]

    listed = client.get(f"{BASE}/employees/", {"search": "Karim"})
    assert [row["code"] for row in listed.json()["results"]] == ["E100"]


@pytest.mark.parametrize(
    ("rule", "code", "says"),
    [
        ({"run_on": "2025-07-25"}, "automation_rule_unknown_key", "Unknown automation rule key"),
        (
            {"run_on_date": "2025-07-25", "days_before_end": 3},
            "automation_rule_ambiguous",
            "exactly one",
        ),
        ({"run_on_date": "2025-02-30"}, "automation_rule_bad_date", "YYYY-MM-DD"),
        ({"days_before_end": -2}, "automation_rule_negative_days", "cannot be negative"),
        ({"cron": "61 2 * * *"}, "automation_rule_invalid_cron", "not a valid expression"),
        ({"cron": "0 2 * *"}, "automation_rule_invalid_cron", "five fields"),
    ],
)
def test_period_automation_rule_refusals(client, rule, code, says):
    response = client.post(
        f"{BASE}/periods/",
        {
            "start_date": "2025-07-01",
            "end_date": "2025-07-31",
            "automation_enabled": True,
            "automation_rule": rule,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code
    assert says in body["message"]
    assert body["fields"]["automation_rule"]
    assert not PayrollPeriod.objects.exists()


def test_period_create_update_and_next_run(client, books):
    created = client.post(
        f"{BASE}/periods/",
        {
            "name": "July 2025",
            "start_date": "2025-07-01",
            "end_date": "2025-07-31",
            "pay_date": "2025-07-31",
            "automation_enabled": True,
            "automation_rule": {"days_before_end": 3},
            "activate": True,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["status"], body["next_run"]) == ("active", "2025-07-28")
    changed = client.patch(
        f"{BASE}/periods/{body['id']}/",
        {"automation_rule": {"cron": "0  6 25 * *"}},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["automation_rule"] == {"cron": "0 6 25 * *"}
    assert changed.json()["next_run"].startswith("2025-07-25T06:00:00")
    bad = client.patch(
        f"{BASE}/periods/{body['id']}/", {"automation_rule": {"cron": "x"}}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "automation_rule_invalid_cron"


def test_run_endpoint_pays_the_period_once(client, books, django_capture_on_commit_callbacks):
    company = books.a
    employee(company, "E001")  # 1,200,000 a year: 100,000.00 a month
    employee(company, "E002", annual_salary=D("600000.00"))
    july = monthly(company, 2025, 7)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{BASE}/periods/{july.pk}/run/", {}, format="json")
    assert response.status_code == 202, response.content
    run = response.json()
    assert run["status"] == "running"
    assert run["progress"]["total"] == 2
    assert run["trigger"] == "api"

    detail = client.get(f"{BASE}/runs/{run['id']}/").json()
    assert detail["status"] == "completed"
    assert detail["progress"] == {
        "status": "completed",
        "done": 2,
        "total": 2,
        "percent": 100,
        "chunks_done": 0,
        "chunks_total": 0,
    }
    assert detail["gross_total"] == "150000.00"
    assert detail["journal_entry_reference"]
    july.refresh_from_db()
    assert july.status == PeriodStatus.COMPLETED

    again = client.post(f"{BASE}/periods/{july.pk}/run/", {"force": True}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "already_completed"
    assert Payslip.objects.filter(period=july).count() == 2

    slips = client.get(f"{BASE}/payslips/", {"period": july.pk}).json()["results"]
    assert sorted(row["gross"] for row in slips) == ["100000.00", "50000.00"]
    first = next(row for row in slips if row["employee_code"] == "E001")
    assert first["lines"][0]["kind"] == "earning"

    pdf = client.get(f"{BASE}/payslips/{first['id']}/pdf/")
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    content = b"".join(pdf) if pdf.streaming else pdf.content
    assert content.startswith(b"%PDF")
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert "Net pay" in text
    assert f"{D(first['net']):,.2f}" in text

    reopened = client.post(f"{BASE}/periods/{july.pk}/reopen/", {"reason": "wrong salary"})
    assert reopened.status_code == 200, reopened.content
    assert reopened.json()["status"] == "draft"
    assert not Payslip.objects.filter(period=july).exclude(status="void").exists()


def test_run_not_due_needs_force_and_busy_answers_409(client, books):
    company = books.a
    employee(company, "E001")
    july = monthly(
        company,
        2025,
        7,
        automation_enabled=True,
        automation_rule={"run_on_date": "2999-01-01"},
    )
    not_due = client.post(f"{BASE}/periods/{july.pk}/run/", {}, format="json")
    assert not_due.status_code == 409
    assert not_due.json()["code"] == "not_due"
    assert "force" in not_due.json()["message"]

    forced = client.post(f"{BASE}/periods/{july.pk}/run/", {"force": True}, format="json")
    assert forced.status_code == 202, forced.content
    assert forced.json()["forced"] is True
    # claimed for a worker (the task runs after commit, which this test never reaches)
    busy = client.post(f"{BASE}/periods/{july.pk}/run/", {"force": True}, format="json")
    assert busy.status_code == 409
    assert busy.json()["code"] == "period_busy"


def test_draft_period_cannot_run(client, books):
    draft = monthly(books.a, 2025, 7, activate=False)
    response = client.post(f"{BASE}/periods/{draft.pk}/run/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_status"


def test_dry_run_preview_writes_nothing(client, books):
    employee(books.a, "E001")
    july = monthly(books.a, 2025, 7)
    response = client.post(f"{BASE}/periods/{july.pk}/preview/")
    assert response.status_code == 200
    body = response.json()
    assert (body["employees"], body["gross"], body["errors"]) == (1, "100000.00", [])
    assert not Payslip.objects.exists()
    july.refresh_from_db()
    assert july.status == PeriodStatus.ACTIVE


def test_bulk_time_entries_all_or_nothing(client, books):
    company = books.a
    hourly = employee(company, "H001", pay_type="hourly", hourly_rate=D("250.0000"))
    good = [
        {"employee": "H001", "day": "2025-07-01", "hours": "8.00"},
        {"employee_id": hourly.pk, "day": "2025-07-02", "hours": "9.50", "note": "stock"},
    ]
    bad = [*good, {"employee": "H001", "day": "2025-07-03", "hours": "25"}]
    refused = client.post(f"{BASE}/time-entries/bulk/", {"entries": bad}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_entry"
    assert refused.json()["message"].startswith("Entry 3: hours: Ensure this value is less")
    unknown = client.post(
        f"{BASE}/time-entries/bulk/",
        {"entries": [*good, {"employee": "NOPE", "day": "2025-07-03", "hours": "8"}]},
        format="json",
    )
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unknown_employee"
    assert "Entry 3" in unknown.json()["message"]
    assert not TimeEntry.objects.exists()

    accepted = client.post(f"{BASE}/time-entries/bulk/", {"entries": good}, format="json")
    assert accepted.status_code == 201
    assert accepted.json() == {"created": 2, "updated": 0}
    assert sum(e.hours for e in TimeEntry.objects.all()) == D("17.50")

    one = client.post(
        f"{BASE}/time-entries/",
        {"employee": hourly.pk, "day": "2025-07-02", "hours": "10.00"},
        format="json",
    )
    assert one.status_code == 201, one.content
    assert TimeEntry.objects.get(day=date(2025, 7, 2)).hours == D("10.00")


def test_tax_table_with_brackets_and_shared_rows_read_only(client, books):
    created = client.post(
        f"{BASE}/tax-tables/",
        {
            "jurisdiction": "BD-DHK",
            "category": "general",
            "name": "City levy",
            "effective_from": "2025-07-01",
            "source": "Test ordinance 2025",
            "brackets": [
                {"lower": "0.00", "upper": "300000.00", "rate": "0"},
                {"lower": "300000.00", "upper": None, "rate": "0.02"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["shared"] is False
    assert [b["rate"] for b in body["brackets"]] == ["0.000000", "0.020000"]

    overlap = client.patch(
        f"{BASE}/tax-tables/{body['id']}/",
        {
            "brackets": [
                {"lower": "0.00", "upper": "300000.00", "rate": "0"},
                {"lower": "200000.00", "upper": None, "rate": "0.02"},
            ]
        },
        format="json",
    )
    assert overlap.status_code == 400
    assert overlap.json()["code"] == "brackets_overlap"
    assert TaxTable.objects.get(pk=body["id"]).brackets.count() == 2

    listed = client.get(f"{BASE}/tax-tables/", {"jurisdiction": "BD", "page_size": 100})
    shared = [row for row in listed.json()["results"] if row["shared"]]
    assert shared, "the statutory Bangladesh tables are listed"
    refused = client.patch(f"{BASE}/tax-tables/{shared[0]['id']}/", {"name": "x"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "shared_reference_data"


def test_auditor_reads_but_cannot_run(books, api):
    july = monthly(books.a, 2025, 7)
    auditor = api(books.users_a["auditor"], books.a)
    assert auditor.get(f"{BASE}/periods/").status_code == 200
    refused = auditor.post(f"{BASE}/periods/{july.pk}/run/", {}, format="json")
    assert refused.status_code == 403
    clerk = api(books.users_a["clerk"], books.a)
    assert clerk.get(f"{BASE}/payslips/").status_code == 403


def test_other_company_period_answers_404(books, api):
    july = monthly(books.a, 2025, 7)
    response = api(books.owner_b, books.b).post(f"{BASE}/periods/{july.pk}/run/", {})
    assert response.status_code == 404


def test_one_off_bonus_through_the_api_is_paid(client, books, django_capture_on_commit_callbacks):
    from payroll.models import EarningType

    company = books.a
    emp = employee(company, "E001")
    july = monthly(company, 2025, 7)
    bonus = EarningType.objects.get(company=None, code="BONUS")
    created = client.post(
        f"{BASE}/employee-earnings/",
        {
            "employee": emp.pk,
            "earning_type": bonus.pk,
            "period": july.pk,
            "amount": "25000.00",
            "memo": "Eid bonus",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["taxable"] is True
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{BASE}/periods/{july.pk}/run/").status_code == 202
    slip = Payslip.objects.get(employee=emp, period=july)
    assert slip.gross == D("125000.00")  # 100,000 salary + 25,000 bonus
    late = client.post(
        f"{BASE}/employee-earnings/",
        {"employee": emp.pk, "earning_type": bonus.pk, "period": july.pk, "amount": "1.00"},
        format="json",
    )
    assert late.status_code == 409
    assert late.json()["code"] == "period_closed"


def test_payslip_pdf_of_another_company_answers_404_json(books, api):
    from tests.factories import payroll_run_for

    run = payroll_run_for(books.a)
    slip = run.payslips.get()
    response = api(books.owner_b, books.b).get(
        f"{BASE}/payslips/{slip.pk}/pdf/", HTTP_ACCEPT="application/pdf"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_bulk_time_entry_all_digit_employee_is_a_code(client, books):
    """Employee numbers are often all digits: "12" is the employee whose code is 12, never the
    employee whose id is 12; ids go in employee_id; a code and an id naming two different
    employees are refused."""
    company = books.a
    first = employee(company, "A-1", pay_type="hourly", hourly_rate=D("200.0000"))
    numbered = employee(company, str(first.pk), pay_type="hourly", hourly_rate=D("200.0000"))
    response = client.post(
        f"{BASE}/time-entries/bulk/",
        {"entries": [{"employee": numbered.code, "day": "2025-07-01", "hours": "8.00"}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert TimeEntry.objects.get(day=date(2025, 7, 1)).employee_id == numbered.pk
    by_id = client.post(
        f"{BASE}/time-entries/bulk/",
        {"entries": [{"employee_id": first.pk, "day": "2025-07-02", "hours": "7.00"}]},
        format="json",
    )
    assert by_id.status_code == 201, by_id.content
    assert TimeEntry.objects.get(day=date(2025, 7, 2)).employee_id == first.pk
    both = client.post(
        f"{BASE}/time-entries/bulk/",
        {
            "entries": [
                {
                    "employee": numbered.code,
                    "employee_id": first.pk,
                    "day": "2025-07-03",
                    "hours": "8.00",
                }
            ]
        },
        format="json",
    )
    assert (both.status_code, both.json()["code"]) == (400, "ambiguous_employee")
    digits_no_code = client.post(
        f"{BASE}/time-entries/bulk/",
        {"entries": [{"employee": str(numbered.pk), "day": "2025-07-03", "hours": "8.00"}]},
        format="json",
    )
    assert (digits_no_code.status_code, digits_no_code.json()["code"]) == (400, "unknown_employee")
    assert "employee_id" in digits_no_code.json()["message"]
    assert TimeEntry.objects.count() == 2


@pytest.mark.parametrize("payload", [{"entries": "x"}, {"entries": {"a": 1}}, {}, {"entries": [1]}])
def test_bulk_time_entries_malformed_payload_answers_400(client, books, payload):
    client.raise_request_exception = False
    response = client.post(f"{BASE}/time-entries/bulk/", payload, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] in ("invalid_entries", "invalid_entry")
    assert body["message"]
    assert not TimeEntry.objects.exists()


def test_earning_of_a_paid_period_cannot_be_changed_or_deleted(client, books):
    """A 5,000 bonus paid with July: changing it to 50,000 or deleting it is refused (409)
    while July is completed; the payslip and the row keep 5,000."""
    from core.errors import ConflictError
    from payroll import services
    from payroll.models import EarningType, EmployeeEarning
    from payroll.processing import PayrollProcessor

    company = books.a
    emp = employee(company, "E001")
    july = monthly(company, 2025, 7)
    bonus = services.employee_earning_create(
        actor=None,
        employee=emp,
        earning_type=EarningType.objects.get(company=None, code="BONUS"),
        amount=D("5000.00"),
        period=july,
    )
    assert PayrollProcessor(july).run_payroll().status == "completed"
    changed = client.patch(
        f"{BASE}/employee-earnings/{bonus.pk}/", {"amount": "50000.00"}, format="json"
    )
    assert (changed.status_code, changed.json()["code"]) == (409, "period_closed")
    deleted = client.delete(f"{BASE}/employee-earnings/{bonus.pk}/")
    assert (deleted.status_code, deleted.json()["code"]) == (409, "period_closed")
    moved = services.payroll_period_create(
        actor=None, company=company, start_date=date(2025, 8, 1), end_date=date(2025, 8, 31)
    )
    recurring = services.employee_earning_create(
        actor=None,
        employee=emp,
        earning_type=EarningType.objects.get(company=None, code="BONUS"),
        amount=D("100.00"),
        period=moved,
    )
    recurring.period = july  # moved into the paid period (the admin inline can do this)
    with pytest.raises(ConflictError):
        services.reference_row_save(actor=None, obj=recurring)
    assert EmployeeEarning.objects.get(pk=bonus.pk).amount == D("5000.00")
    assert EmployeeEarning.objects.get(pk=recurring.pk).period_id == moved.pk


def test_run_answers_409_while_an_earlier_period_is_open_and_names_it(client, books):
    company = books.a
    employee(company, "E001")
    monthly(company, 2025, 7, name="July 2025")
    august = monthly(company, 2025, 8)
    response = client.post(f"{BASE}/periods/{august.pk}/run/", {"force": True}, format="json")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "earlier_period_open"
    assert "July 2025" in body["message"]
    assert not Payslip.objects.exists()
    assert PayrollPeriod.objects.get(pk=august.pk).status == PeriodStatus.ACTIVE


def test_weekly_period_of_31_days_answers_400(client, books):
    response = client.post(
        f"{BASE}/periods/",
        {"start_date": "2025-07-01", "end_date": "2025-07-31", "period_type": "weekly"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "period_length")
    assert not PayrollPeriod.objects.exists()


def _broker_down(monkeypatch):
    from kombu.exceptions import OperationalError

    from payroll.tasks import process_payroll_run

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    monkeypatch.setattr(process_payroll_run, "delay", refuse)


@pytest.mark.django_db(transaction=True)
def test_run_answers_503_and_releases_the_period_when_the_broker_is_down(books, api, monkeypatch):
    """Redis up (the lock is taken) but the broker down: the claim is committed, then queueing
    fails. The attempt fails at once with the reason and the period is runnable again, instead
    of staying claimed (and unpaid) until its lease expires."""
    from core.locks import lock_holder
    from payroll.models import PayrollRun, RunStatus
    from payroll.processing import lock_name

    employee(books.a, "E001")
    july = monthly(books.a, 2025, 7)
    client = api(books.users_a["payroll_manager"], books.a)
    _broker_down(monkeypatch)

    response = client.post(f"{BASE}/periods/{july.pk}/run/", {"force": True}, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "service_unavailable"
    assert "broker" in response.json()["message"]
    assert response["Retry-After"]
    july.refresh_from_db()
    assert july.status == PeriodStatus.FAILED
    assert "broker" in july.last_error
    assert july.lock_expires_at is None
    assert lock_holder(lock_name(july.pk)) is None
    run = PayrollRun.objects.get(period=july)
    assert run.status == RunStatus.FAILED and "broker" in run.error
    assert not Payslip.objects.filter(period=july).exists()

    monkeypatch.undo()
    again = client.post(f"{BASE}/periods/{july.pk}/run/", {"force": True}, format="json")
    assert again.status_code == 202, again.content
    assert again.json()["attempt"] == 2


def test_a_run_queued_after_commit_fails_its_attempt_when_the_broker_is_down(
    books, monkeypatch, django_capture_on_commit_callbacks
):
    """Started inside a transaction, the run is queued once it commits; a broker outage then
    fails the attempt (nobody is waiting to be told) rather than leaving it claimed."""
    from django.db import transaction

    from payroll import services
    from payroll.models import PayrollRun, RunStatus

    employee(books.a, "E001")
    july = monthly(books.a, 2025, 7)
    _broker_down(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        run = services.payroll_period_run(
            actor=books.users_a["payroll_manager"], period=july, force=True
        )
    run = PayrollRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.FAILED and "broker" in run.error
    july.refresh_from_db()
    assert july.status == PeriodStatus.FAILED
