"""Celery tasks for invoicing (beat schedules are declared in invoicing/apps.py).

- `invoices_mark_overdue` (daily): open invoices past their due date become overdue, and the
  customer gets a reminder email after commit (again every INVOICING_REMINDER_EVERY_DAYS days
  while the invoice stays overdue).
- `recurring_invoices_run` (daily): each active template due today (company time zone) issues
  its next invoice, as a draft or approved.
- `receivables_feed` (every 5 minutes): the asynchronous consumer of the event log; folds new
  events into per-customer receivable balances (PartyBalance) behind a checkpoint updated in
  the same transaction.
"""

import logging
from decimal import Decimal

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from core.rls import tenant_context

log = logging.getLogger(__name__)

OVERDUE_TASK = "invoicing.tasks.invoices_mark_overdue"
RECURRING_TASK = "invoicing.tasks.recurring_invoices_run"
LEDGER_EXPORT_TASK = "invoicing.tasks.receivables_feed"
RECEIVABLES_FEED = "invoicing.receivables_feed"


@shared_task(name=OVERDUE_TASK, ignore_result=True)
def invoices_mark_overdue(today: str | None = None) -> int:
    """Returns how many invoices were marked overdue or reminded. One transaction per invoice,
    so one failure does not hold the others back."""
    from datetime import date

    from core.models import Company

    changed = 0
    for company in Company.objects.filter(is_active=True).order_by("pk"):
        with tenant_context(company.pk):  # each company's invoices with its scope alone
            changed += _mark_overdue(company, date.fromisoformat(today) if today else None)
    log.info("overdue invoices checked", extra={"changed": changed})
    return changed


def _mark_overdue(company, today) -> int:
    from invoicing.models import Invoice, InvoiceStatus
    from invoicing.services import invoice_mark_overdue

    changed = 0
    day = today or company.today()
    candidates = Invoice.objects.filter(
        company=company,
        kind="invoice",
        status__in=[
            InvoiceStatus.APPROVED,
            InvoiceStatus.PARTIALLY_PAID,
            InvoiceStatus.OVERDUE,
        ],
        due_date__lt=day,
    ).order_by("pk")
    for invoice in candidates.iterator():
        version = invoice.version
        try:
            after = invoice_mark_overdue(invoice=invoice, today=day)
        except Exception:  # one bad invoice must not stop the rest
            log.exception("marking invoice overdue failed", extra={"invoice": invoice.pk})
            continue
        changed += int(after.version != version or getattr(after, "reminder_queued", False))
    return changed


def reminder_send(invoice_id: int, to: str) -> bool:
    """Email the payment reminder (called after the marking transaction commits); True when
    the mail server took it."""
    from invoicing.models import Invoice

    invoice = Invoice.objects.select_related("company", "customer").get(pk=invoice_id)
    context = {"invoice": invoice, "company": invoice.company, "customer": invoice.customer}
    subject = render_to_string("invoicing/email/reminder_subject.txt", context).strip()
    body = render_to_string("invoicing/email/reminder_body.txt", context)
    html = render_to_string("invoicing/email/reminder_body.html", context)
    try:
        send_mail(
            subject,
            body,
            settings.DEFAULT_FROM_EMAIL,
            [to],
            html_message=html,
            fail_silently=False,
        )
    except Exception:
        log.exception("payment reminder not sent", extra={"invoice": invoice_id})
        return False
    return True


@shared_task(name=RECURRING_TASK, ignore_result=True)
def recurring_invoices_run(today: str | None = None) -> int:
    """Returns how many invoices were issued."""
    from invoicing.models import RecurringInvoice
    from invoicing.services import recurring_invoice_failed, recurring_invoice_generate

    issued = 0
    due = RecurringInvoice.objects.filter(is_active=True).select_related("company").order_by("pk")
    for template in list(due):  # not iterator(): each template runs in its company's scope
        day = today or template.company.today().isoformat()
        if template.next_date.isoformat() > day:
            continue
        with tenant_context(template.company_id):
            try:
                issued += len(recurring_invoice_generate(actor=None, recurring=template, today=day))
            except Exception as exc:  # recorded on the template; the others still run
                message = getattr(exc, "message", None) or str(exc)
                log.warning("recurring invoice failed", extra={"template": template.pk})
                recurring_invoice_failed(recurring=template, error=message)
    log.info("recurring invoices run", extra={"issued": issued})
    return issued


# --- the receivables feed: an asynchronous consumer of the event log -------------------------


def _fold(events) -> None:
    """Apply a batch of events to PartyBalance rows (called inside the checkpoint's
    transaction by invoicing.events.consumer_run)."""
    from invoicing.models import Invoice, Party, PartyBalance

    streams = {e.stream_id for e in events}
    owners = {
        stream: (customer, kind)
        for stream, customer, kind in Invoice.objects.filter(stream_id__in=streams).values_list(
            "stream_id", "customer_id", "kind"
        )
    }
    deltas: dict[int, dict] = {}
    last: dict[int, int] = {}
    zero = Decimal("0.00")
    for event in events:
        customer, kind = owners.get(event.stream_id, (None, None))
        if customer is None or kind != "invoice":
            continue
        p = event.payload
        d = deltas.setdefault(customer, {"invoiced": zero, "credited": zero, "received": zero})
        if event.type == "InvoiceApproved":
            d["invoiced"] += Decimal(p["totals"]["total"])
        elif event.type == "DebitNoteApplied":
            d["invoiced"] += Decimal(p["amount"])
        elif event.type == "CreditNoteApplied":
            d["credited"] += Decimal(p["amount"])
        elif event.type == "InvoiceVoided":
            d["credited"] += Decimal(p.get("reversed_amount", "0"))
        elif event.type == "PaymentRecorded":
            d["received"] += Decimal(p["amount"]) + Decimal(p.get("vds_withheld", "0"))
        last[customer] = event.id
    if not deltas:
        return
    existing = {
        b.party_id: b for b in PartyBalance.objects.select_for_update().filter(party_id__in=deltas)
    }
    companies = dict(Party.objects.filter(pk__in=deltas).values_list("pk", "company_id"))
    from django.utils import timezone

    now = timezone.now()
    new, changed = [], []
    for party_id, d in deltas.items():
        row = existing.get(party_id) or PartyBalance(
            party_id=party_id, company_id=companies[party_id]
        )
        row.invoiced += d["invoiced"]
        row.credited += d["credited"]
        row.received += d["received"]
        row.balance = row.invoiced - row.credited - row.received
        row.last_event_id = last[party_id]
        row.updated_at = now
        (changed if row.pk else new).append(row)
    PartyBalance.objects.bulk_create(new)
    PartyBalance.objects.bulk_update(
        changed, ["invoiced", "credited", "received", "balance", "last_event_id", "updated_at"]
    )


def receivables_feed_run(*, batch: int = 1000) -> int:
    from invoicing.events import consumer_run

    return consumer_run(RECEIVABLES_FEED, _fold, batch=batch)


@shared_task(name=LEDGER_EXPORT_TASK, ignore_result=True)
def receivables_feed() -> int:
    handled = receivables_feed_run()
    log.info("receivables feed", extra={"events": handled})
    return handled
