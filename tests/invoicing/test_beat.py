"""Beat jobs: overdue marking with reminder emails after commit, recurring invoices, and the
schedules they run on."""

from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from django_celery_beat.models import PeriodicTask

from core.errors import DomainError
from invoicing import services, tasks
from invoicing.models import Invoice, InvoiceEvent, RecurringInvoice

D = Decimal


def test_schedules_are_declared_on_migrate(db):
    names = set(
        PeriodicTask.objects.filter(name__startswith="invoicing:").values_list("task", flat=True)
    )
    assert names == {tasks.OVERDUE_TASK, tasks.RECURRING_TASK, tasks.LEDGER_EXPORT_TASK}


def test_overdue_is_marked_once_and_reminders_go_after_commit(
    sales, django_capture_on_commit_callbacks
):
    late = sales.approved(due_date=date(2025, 9, 9))
    paid = sales.approved(due_date=date(2025, 9, 9))
    services.invoice_payment_record(
        actor=sales.clerk, invoice=paid, amount="115.00", date="2025-08-15"
    )
    not_yet = sales.approved(due_date=date(2025, 9, 30))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.invoices_mark_overdue(today="2025-09-10") == 1
    assert mail.outbox == []  # nothing is sent before the transaction commits
    assert len(callbacks) == 1
    callbacks[0]()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ap@dhakaretail.example"]
    assert "INV/2025-26/000001" in message.subject and "115.00" in message.body
    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert (statuses[late.pk], statuses[paid.pk], statuses[not_yet.pk]) == (
        "overdue",
        "paid",
        "approved",
    )
    # the next day: nothing new; a week later: one more reminder, no second MarkedOverdue
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.invoices_mark_overdue(today="2025-09-11") == 0
        assert tasks.invoices_mark_overdue(today="2025-09-17") == 1
    assert len(mail.outbox) == 2
    types = list(
        InvoiceEvent.objects.filter(stream_id=late.stream_id).values_list("type", flat=True)
    )
    # each reminder recorded once it was sent: 10 and 17 September
    assert types.count("MarkedOverdue") == 1 and types.count("ReminderSent") == 2
    # an overdue invoice paid in part stays overdue; paid in full it is paid
    late.refresh_from_db()
    services.invoice_payment_record(
        actor=sales.clerk, invoice=late, amount="15.00", date="2025-09-18"
    )
    late.refresh_from_db()
    assert late.status == "overdue"
    services.invoice_payment_record(
        actor=sales.clerk, invoice=late, amount="100.00", date="2025-09-18"
    )
    late.refresh_from_db()
    assert (late.status, late.amount_due) == ("paid", 0)


def test_a_reminder_that_failed_to_send_is_not_recorded_and_is_retried(
    sales, django_capture_on_commit_callbacks, monkeypatch
):
    late = sales.approved(due_date=date(2025, 9, 9))

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr(tasks, "send_mail", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.invoices_mark_overdue(today="2025-09-10") == 1
    types = list(
        InvoiceEvent.objects.filter(stream_id=late.stream_id).values_list("type", flat=True)
    )
    assert "ReminderSent" not in types and mail.outbox == []
    late.refresh_from_db()
    assert (late.status, late.last_reminder_on) == ("overdue", None)
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):  # the next day it goes
        assert tasks.invoices_mark_overdue(today="2025-09-11") == 1
    assert len(mail.outbox) == 1
    late.refresh_from_db()
    assert late.last_reminder_on == date(2025, 9, 11)


def test_recurring_invoice_drafts_each_due_occurrence_once(sales):
    template = services.recurring_invoice_create(
        actor=sales.owner,
        company=sales.company,
        name="Monthly support",
        customer=sales.customer.pk,
        lines=[{"item": sales.service.pk, "quantity": "10"}],
        frequency="monthly",
        next_date="2025-08-31",
        due_days=15,
    )
    assert tasks.recurring_invoices_run(today="2025-10-01") == 2  # Aug 31 and Sep 30
    assert tasks.recurring_invoices_run(today="2025-10-01") == 0  # a retry issues nothing
    made = Invoice.objects.filter(recurring=template).order_by("issue_date")
    assert [(i.issue_date, i.due_date, i.status, i.total_amount) for i in made] == [
        (date(2025, 8, 31), date(2025, 9, 15), "draft", D("17250.00")),
        (date(2025, 9, 30), date(2025, 10, 15), "draft", D("17250.00")),
    ]
    template.refresh_from_db()
    assert (template.next_date, template.last_run_on) == (date(2025, 10, 31), date(2025, 9, 30))


def test_recurring_invoice_can_approve_by_setting(sales):
    services.recurring_invoice_create(
        actor=sales.owner,
        company=sales.company,
        name="Rent",
        customer=sales.customer.pk,
        lines=[sales.line(unit_price="5000.00")],
        frequency="quarterly",
        next_date="2025-08-01",
        auto_approve=True,
    )
    assert tasks.recurring_invoices_run(today="2025-08-01") == 1
    invoice = Invoice.objects.get(recurring__name="Rent")
    assert (invoice.status, invoice.number) == ("approved", "INV/2025-26/000001")
    assert RecurringInvoice.objects.get(name="Rent").next_date == date(2025, 11, 1)


def test_recurring_failure_is_recorded_and_retried(sales):
    template = services.recurring_invoice_create(
        actor=sales.owner,
        company=sales.company,
        name="Far",
        customer=sales.customer.pk,
        lines=[sales.line()],
        next_date="2024-01-01",
        auto_approve=True,  # no fiscal year 2023-24
    )
    assert tasks.recurring_invoices_run(today="2024-01-02") == 0
    template.refresh_from_db()
    assert template.last_error and template.next_date == date(2024, 1, 1)
    assert not Invoice.objects.filter(recurring=template).exists()


def test_recurring_template_with_a_bad_rate_is_refused(sales):
    with pytest.raises(DomainError) as info:
        services.recurring_invoice_create(
            actor=sales.owner,
            company=sales.company,
            name="Bad",
            customer=sales.customer.pk,
            lines=[sales.line(vat_rate="VAT99")],
        )
    assert info.value.code == "vat_rate_not_allowed"


def test_operators_can_run_the_jobs_from_the_command_line(sales):
    from io import StringIO

    from django.core.management import CommandError, call_command

    sales.approved(due_date=date(2025, 9, 9))
    out = StringIO()
    call_command("invoicing_run", "overdue", "--today", "2025-09-10", stdout=out)
    call_command("invoicing_run", "recurring", "--today", "2025-09-10", stdout=out)
    call_command("invoicing_run", "feed", stdout=out)
    assert out.getvalue().splitlines() == [
        "overdue: 1 invoices marked or reminded",
        "recurring: 0 invoices issued",
        "receivables feed: 3 events folded",
    ]
    with pytest.raises(CommandError, match="not a date"):
        call_command("invoicing_run", "overdue", "--today", "10/09/2025")
