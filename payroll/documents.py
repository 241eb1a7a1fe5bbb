"""Payslips as documents: HTML for the browser, PDF for download and email.

    payslip_context(payslip) -> {"slip": {...}}   # every figure formatted for print
    payslip_html(payslip) -> str
    payslip_pdf(payslip) -> bytes                 # starts with b"%PDF"
    payslip_filename(payslip) -> "payslip_E001_2025-07.pdf"
    payslips_email_queue(run_id=...)              # after a run commits (payroll.processing)
    payslips_email_send(payslip_ids)              # one batch, over one SMTP connection

What a payslip prints comes from the payslip as issued: its lines, its totals and the
year-to-date figures stored on it when the run wrote it (tax year of the employee's country), so
reprinting after later runs prints what was paid. A void payslip prints with a VOID stamp.

Emails: after a run commits, `payslips_email_queue` splits the run's payslips whose employee
has an email address into batches of EMAIL_BATCH_SIZE and queues one Celery task per batch
(`payroll.documents.payslips_email`), so ten thousand payslips never make one task outlast the
time limit. Each payslip is claimed (emailed_at set with a conditional update) before it is
sent, so a redelivered task sends nobody a second copy; a send that fails releases the claim
and is logged. Mail goes through Django's email backend, configured by EMAIL_URL
(smtp://user:password@host:port, submission+tls://...).

Importing this module registers the email task; payroll/admin.py imports it, and Django's admin
autodiscovery imports every admin module at start-up, in web and worker processes alike.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from core.pdf import render_html, render_pdf
from payroll.models import LineKind, PayrollRun, Payslip, PayslipStatus

log = logging.getLogger(__name__)

TEMPLATE = "payroll/payslip.html"
EMAIL_TASK = "payroll.documents.payslips_email"
EMAIL_BATCH_SIZE = 100
ZERO = Decimal("0.00")

SECTIONS = (
    (LineKind.EARNING, "Earnings"),
    (LineKind.PRE_TAX_DEDUCTION, "Pre-tax deductions"),
    (LineKind.TAX, "Taxes"),
    (LineKind.POST_TAX_DEDUCTION, "Post-tax deductions"),
)
EMPLOYER_KINDS = (LineKind.EMPLOYER, LineKind.EMPLOYER_TAX)


# --- formatting ----------------------------------------------------------------------------


def amount(value) -> str:
    if value is None:
        return ""
    value = Decimal(value).quantize(Decimal("0.01"))
    if value == 0:
        value = ZERO  # never print -0.00
    return f"{value:,.2f}"


def quantity(value) -> str:
    if value is None:
        return ""
    text = f"{Decimal(value).normalize():f}"
    return text


def rate(value, kind: str = LineKind.EARNING) -> str:
    """An earning's rate is money per hour; a tax's or deduction's is a fraction, printed as a
    percent (0.100000 -> 10%)."""
    if value is None:
        return ""
    value = Decimal(value)
    if kind != LineKind.EARNING:
        return f"{(value * 100).normalize():f}%"
    return amount(value) if value == value.quantize(Decimal("0.01")) else f"{value.normalize():f}"


def masked(account_number: str) -> str:
    digits = (account_number or "").strip()
    if len(digits) <= 4:
        return digits
    return "•" * 4 + digits[-4:]


# --- the document --------------------------------------------------------------------------


def payslip_context(payslip: Payslip) -> dict:
    payslip = (
        Payslip.objects.select_related(
            "company", "employee", "period", "run", "department", "cost_center"
        )
        .prefetch_related("lines")
        .get(pk=payslip.pk)
    )
    company, employee, period = payslip.company, payslip.employee, payslip.period
    lines = list(payslip.lines.all())
    sections = []
    for kind, title in SECTIONS:
        rows = [line for line in lines if line.kind == kind]
        if not rows:
            continue
        sections.append(
            {
                "title": title,
                "kind": kind,
                "rows": [
                    {
                        "description": line.description,
                        "code": line.code,
                        "quantity": (
                            quantity(line.quantity)
                            if kind == LineKind.EARNING
                            else amount(line.quantity)  # the wages a tax applied to
                        ),
                        "rate": rate(line.rate, kind),
                        "amount": amount(line.amount),
                        "non_taxable": kind == LineKind.EARNING and not line.taxable,
                    }
                    for line in rows
                ],
                "total": amount(sum((line.amount for line in rows), ZERO)),
            }
        )
    employer = [
        {"description": line.description, "amount": amount(line.amount)}
        for line in lines
        if line.kind in EMPLOYER_KINDS
    ]
    currency = payslip.currency
    void = payslip.status == PayslipStatus.VOID
    return {
        "slip": {
            "id": payslip.pk,
            "title": f"Payslip {period.name or period}",
            "reference": f"Payslip {employee.code} {payslip.period_start:%Y-%m-%d}",
            "status": payslip.get_status_display(),
            "stamp": "VOID" if void else "",
            "currency": currency,
            "company": {
                "name": company.legal_name or company.name,
                "address": company.address,
                "etin": company.etin,
            },
            "employee": {
                "code": employee.code,
                "name": employee.name,
                "role": employee.role,
                "department": str(payslip.department) if payslip.department_id else "",
                "cost_center": str(payslip.cost_center) if payslip.cost_center_id else "",
                "pay_type": payslip.get_pay_type_display(),
                "location": employee.jurisdiction,
                "tax_category": employee.get_tax_category_display(),
                "bank": ", ".join(p for p in (employee.bank_name, employee.bank_branch) if p),
                "account": masked(employee.bank_account_number),
            },
            "period": {
                "name": period.name or str(period),
                "start": payslip.period_start.isoformat(),
                "end": payslip.period_end.isoformat(),
                "pay_date": payslip.pay_date.isoformat(),
                "run": f"Run {payslip.run.attempt}",
            },
            "hours": {
                "regular": quantity(payslip.regular_hours),
                "overtime": quantity(payslip.overtime_hours),
                "double_time": quantity(payslip.double_time_hours),
                "shown": payslip.regular_hours or payslip.overtime_hours,
            },
            "sections": sections,
            "employer": employer,
            "employer_total": amount(payslip.employer_contributions),
            "totals": {
                "gross": amount(payslip.gross),
                "taxable": amount(payslip.taxable),
                "taxes": amount(payslip.taxes),
                "deductions": amount(payslip.deductions),
                "net": amount(payslip.net),
            },
            "ytd": [
                ("Gross pay", amount(payslip.ytd_gross)),
                ("Taxable pay", amount(payslip.ytd_taxable)),
                ("Income tax", amount(payslip.ytd_income_tax)),
                ("All taxes", amount(payslip.ytd_taxes)),
                ("Deductions", amount(payslip.ytd_deductions)),
                ("Net pay", amount(payslip.ytd_net)),
            ],
            "warnings": [str(w) for w in (payslip.warnings or [])],
            "carried": [
                (str(code), amount(value)) for code, value in (payslip.carried or {}).items()
            ],
        }
    }


def payslip_html(payslip: Payslip) -> str:
    return render_html(TEMPLATE, payslip_context(payslip))


def payslip_pdf(payslip: Payslip) -> bytes:
    return render_pdf(TEMPLATE, payslip_context(payslip))


def payslip_filename(payslip: Payslip, extension: str = "pdf") -> str:
    code = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in payslip.employee.code)
    return f"payslip_{code}_{payslip.period_start:%Y-%m-%d}.{extension}"


# --- email ---------------------------------------------------------------------------------


def payslips_email_queue(*, run_id: int) -> int:
    """Queue the run's payslip emails (called after the run commits). Returns the number of
    payslips queued."""
    if PayrollRun.objects.filter(pk=run_id, mail_payslips=False).exists():
        return 0  # a back-dated run (the demo's): its payslips are not mailed
    ids = list(
        Payslip.objects.filter(run_id=run_id, status=PayslipStatus.ISSUED, emailed_at__isnull=True)
        .exclude(employee__email="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    queued = 0
    for start in range(0, len(ids), EMAIL_BATCH_SIZE):
        batch = ids[start : start + EMAIL_BATCH_SIZE]
        try:
            payslips_email.delay(batch)
        except Exception:  # noqa: BLE001 (the run is committed; a broker outage must not undo it)
            log.exception(
                "payslip emails not queued; resend them with Email again",
                extra={"run": run_id, "payslips": len(batch)},
            )
            continue
        queued += len(batch)
    return queued


def _message(payslip: Payslip, connection) -> EmailMultiAlternatives:
    context = payslip_context(payslip)
    context["first_name"] = payslip.employee.name.split(" ")[0] if payslip.employee.name else ""
    subject = render_to_string("payroll/email/payslip_subject.txt", context).strip()
    body = render_to_string("payroll/email/payslip_body.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[payslip.employee.email],
        connection=connection,
    )
    message.attach(payslip_filename(payslip), render_pdf(TEMPLATE, context), "application/pdf")
    return message


def payslips_email_send(payslip_ids: list[int]) -> dict:
    """Email these payslips (issued, with an address, not yet emailed), each with its PDF.
    Returns {"sent": n, "failed": n, "skipped": n}."""
    sent = failed = skipped = 0
    connection = get_connection(fail_silently=False)
    try:
        for payslip in (
            Payslip.objects.select_related("employee").filter(pk__in=payslip_ids).order_by("pk")
        ):
            if payslip.status != PayslipStatus.ISSUED or not payslip.employee.email:
                skipped += 1
                continue
            now = timezone.now()
            claimed = Payslip.objects.filter(
                pk=payslip.pk, emailed_at__isnull=True, status=PayslipStatus.ISSUED
            ).update(emailed_at=now)
            if claimed != 1:
                skipped += 1
                continue
            try:
                _message(payslip, connection).send()
            except Exception:
                Payslip.objects.filter(pk=payslip.pk, emailed_at=now).update(emailed_at=None)
                log.exception("payslip email not sent", extra={"payslip": payslip.pk})
                failed += 1
                continue
            sent += 1
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 (closing a broken connection must not hide the result)
            log.warning("closing the mail connection failed", exc_info=True)
    log.info("payslip emails", extra={"sent": sent, "failed": failed, "skipped": skipped})
    return {"sent": sent, "failed": failed, "skipped": skipped}


@shared_task(name=EMAIL_TASK, ignore_result=True)
def payslips_email(payslip_ids: list[int]) -> dict:
    return payslips_email_send(payslip_ids)


def payslip_email_now(*, actor, payslip: Payslip) -> bool:
    """Send one payslip again (admin action "email again"): clears emailed_at and sends it.
    Returns True when it went out."""
    from payroll.services import require_payroll_role

    require_payroll_role(actor, payslip.company, "email payslips")
    with transaction.atomic():
        Payslip.objects.filter(pk=payslip.pk).update(emailed_at=None)
    return payslips_email_send([payslip.pk])["sent"] == 1
