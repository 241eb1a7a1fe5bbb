"""Payslips as HTML and PDF (with year-to-date figures), and their emails: queued after the run
commits, sent with the PDF attached, once; through Django's locmem backend and through a real
SMTP server (aiosmtpd) configured by EMAIL_URL."""

import io
from decimal import Decimal

import environ
import pytest
from django.core import mail

from payroll import documents, services
from payroll.models import Payslip, PayslipStatus
from payroll.processing import PayrollProcessor
from tests.payroll.conftest import deduction_type, employee, monthly

D = Decimal
pytestmark = pytest.mark.django_db


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def paid(books, dims):
    """E001: 1,200,000 a year, PF 10% pre-tax, health 1,500 post-tax; July and August 2025
    paid. Each month: gross 100,000.00, tax 6,625.00, deductions 11,500.00, net 81,875.00."""
    company = books.a
    emp = employee(company, "E001", name="Rahima Akter", department=dims["ops"])
    services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("PF")
    )
    services.employee_deduction_create(
        actor=None, employee=emp, deduction_type=deduction_type("HEALTH"), amount=D("1500.00")
    )
    july, august = monthly(company, 2025, 7), monthly(company, 2025, 8)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    assert PayrollProcessor(august).run_payroll().status == "completed"
    return {
        "employee": emp,
        "july": Payslip.objects.get(employee=emp, period=july),
        "august": Payslip.objects.get(employee=emp, period=august),
    }


def test_payslip_html_shows_lines_totals_and_year_to_date(paid):
    html = documents.payslip_html(paid["august"])
    assert "Rahima Akter (E001)" in html
    assert "2025-08-01 to 2025-08-31" in html
    assert "Operations" in html
    for figure in ("100,000.00", "10,000.00", "6,625.00", "1,500.00", "81,875.00"):
        assert figure in html, figure
    # year to date after two months: gross 200,000, tax 13,250, net 163,750
    context = documents.payslip_context(paid["august"])["slip"]
    ytd = dict(context["ytd"])
    assert ytd["Gross pay"] == "200,000.00"
    assert ytd["Income tax"] == "13,250.00"
    assert ytd["Net pay"] == "163,750.00"
    assert context["employer_total"] == "10,000.00"


def test_payslip_pdf_carries_net_pay_and_year_to_date(paid):
    pdf = documents.payslip_pdf(paid["august"])
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "PAYSLIP" in text
    assert "Net pay" in text
    assert "81,875.00" in text
    assert "163,750.00" in text  # net year to date
    assert documents.payslip_filename(paid["august"]) == "payslip_E001_2025-08-01.pdf"


def test_void_payslip_prints_void(paid):
    services.payroll_period_reopen(actor=None, period=paid["august"].period, reason="fix")
    paid["august"].refresh_from_db()
    assert paid["august"].status == PayslipStatus.VOID
    assert "VOID" in pdf_text(documents.payslip_pdf(paid["august"]))


def test_run_emails_each_payslip_after_commit_with_the_pdf(
    books, django_capture_on_commit_callbacks
):
    company = books.a
    employee(company, "E001", email="e001@example.test")
    employee(company, "E002", email="")  # no address: no email
    july = monthly(company, 2025, 7)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = PayrollProcessor(july).run_payroll()
        assert mail.outbox == []  # nothing leaves before the run commits
    assert outcome.status == "completed"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["e001@example.test"]
    assert "Your payslip for" in message.subject
    assert "Net pay:" in message.body
    ((filename, content, mimetype),) = message.attachments
    assert (filename, mimetype) == ("payslip_E001_2025-07-01.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    slip = Payslip.objects.get(employee__code="E001", period=july)
    assert slip.emailed_at is not None
    assert documents.amount(slip.net) in pdf_text(content)
    # a redelivered batch sends nobody a second copy
    assert documents.payslips_email_send([slip.pk]) == {"sent": 0, "failed": 0, "skipped": 1}
    assert len(mail.outbox) == 1


def test_a_failed_send_releases_the_claim(paid, settings, monkeypatch):
    slip = paid["july"]
    Payslip.objects.filter(pk=slip.pk).update(emailed_at=None)

    def broken(self, *args, **kwargs):
        raise OSError("mail server down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", broken)
    assert documents.payslips_email_send([slip.pk]) == {"sent": 0, "failed": 1, "skipped": 0}
    slip.refresh_from_db()
    assert slip.emailed_at is None


def test_payslip_email_through_a_real_smtp_server(paid, settings):
    """EMAIL_URL=smtp://... as production reads it; aiosmtpd receives the message."""
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            received.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = environ.Env.email_url_config(f"smtp://127.0.0.1:{port}")
        for name, value in config.items():
            setattr(settings, name, value)
        slip = paid["july"]
        Payslip.objects.filter(pk=slip.pk).update(emailed_at=None)
        assert documents.payslips_email_send([slip.pk]) == {"sent": 1, "failed": 0, "skipped": 0}
    finally:
        controller.stop()
    assert settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
    (envelope,) = received
    assert envelope.rcpt_tos == ["e001@example.test"]
    raw = envelope.content.decode("utf-8", "replace")
    assert "application/pdf" in raw
    assert 'filename="payslip_E001_2025-07-01.pdf"' in raw
    import email

    parsed = email.message_from_bytes(envelope.content)
    pdfs = [
        part.get_payload(decode=True)
        for part in parsed.walk()
        if part.get_content_type() == "application/pdf"
    ]
    assert len(pdfs) == 1 and pdfs[0].startswith(b"%PDF")
    assert "81,875.00" in pdf_text(pdfs[0])


def test_a_broker_outage_does_not_undo_the_run(paid, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(documents.payslips_email, "delay", down)
    Payslip.objects.update(emailed_at=None)
    assert documents.payslips_email_queue(run_id=paid["july"].run_id) == 0
    paid["july"].refresh_from_db()
    assert paid["july"].status == PayslipStatus.ISSUED


def test_email_batches_of_one_hundred(books, monkeypatch):
    from payroll.models import PayrollRun

    company = books.a
    for number in range(1, 206):
        employee(company, f"E{number:03d}", annual_salary=D("360000.00"))
    july = monthly(company, 2025, 7)
    assert PayrollProcessor(july).run_payroll().status == "completed"
    batches = []
    monkeypatch.setattr(documents.payslips_email, "delay", lambda ids: batches.append(ids))
    run = PayrollRun.objects.get(period=july)
    assert documents.payslips_email_queue(run_id=run.pk) == 205
    assert [len(batch) for batch in batches] == [100, 100, 5]
    assert sorted(i for batch in batches for i in batch) == sorted(
        Payslip.objects.filter(run=run).values_list("pk", flat=True)
    )


def test_a_failed_run_emails_nobody(books, django_capture_on_commit_callbacks):
    """No fiscal year covers January 2024, so the posting is refused and the run fails:
    nothing is committed, nobody gets a payslip."""
    company = books.a
    employee(company, "E001", email="e001@example.test")
    january = monthly(company, 2024, 1)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = PayrollProcessor(january).run_payroll()
    assert outcome.status == "failed"
    assert mail.outbox == []
    assert not Payslip.objects.filter(period=january).exclude(status="void").exists()


def test_a_run_marked_not_to_mail_emails_nobody_and_a_rolled_back_one_leaves_no_trace(
    books, django_capture_on_commit_callbacks
):
    """The 'do not mail' choice is a column of the run (mail_payslips), written in the run's
    own transaction: a rolled-back run leaves nothing behind that could silence a later run
    given the same id (SQLite reuses ids after a rollback)."""
    from django.db import transaction

    from payroll.models import PayrollRun

    company = books.a
    employee(company, "E001", email="e001@example.test")
    july, august = monthly(company, 2025, 7), monthly(company, 2025, 8)
    try:
        with transaction.atomic():
            services.payroll_period_run(
                actor=None, period=july, asynchronous=False, mail_payslips=False
            )
            raise RuntimeError("seed failed")
    except RuntimeError:
        pass
    assert not PayrollRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = PayrollProcessor(july).run_payroll()
    assert outcome.status == "completed" and outcome.run.mail_payslips
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        quiet = services.payroll_period_run(
            actor=None, period=august, asynchronous=False, mail_payslips=False
        )
    assert quiet.status == "completed"
    assert PayrollRun.objects.get(pk=quiet.run.pk).mail_payslips is False
    assert len(mail.outbox) == 1  # August's payslip was not mailed
