"""The bank reconciliation variance alert: a structured warning in the log, the Prometheus
counter `banking_reconciliation_variance_alerts_total`, and an email to the company's owners
and accountants (and the addresses in its banking settings) after commit.

Raised by `banking.reconciliation.reconciliation_refresh` (at the end of auto-reconcile, of the
import's reconcile task, of closing a month, and by the daily `banking.refresh_reconciliations`
beat task for open months) when |variance| exceeds the alert threshold, once per bank account,
month and variance figure: the audit event written with the alert is the record that it was
raised, so refreshing again stays quiet until the variance changes. The caller holds the lock
on the BankReconciliation row, so two refreshes at once cannot both raise it. The log line,
the metric and the email follow the commit (a rolled-back refresh raises nothing).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from prometheus_client import Counter

from core.roles import Role
from core.services import audit_record

log = logging.getLogger(__name__)

ALERT_ACTION = "banking.reconciliation.variance_alert"
ALERT_ROLES = (Role.OWNER, Role.ACCOUNTANT)

variance_alerts_total = Counter(
    "banking_reconciliation_variance_alerts_total",
    "Bank reconciliation variance alerts raised (|variance| above the alert threshold).",
)


def _already_raised(reconciliation, variance: Decimal) -> bool:
    from core.models import AuditEvent

    return AuditEvent.objects.filter(
        action=ALERT_ACTION,
        object_type=reconciliation._meta.label_lower,
        object_id=str(reconciliation.pk),
        after__variance=str(variance),
    ).exists()


def alert_recipients(company, extra=()) -> list[str]:
    """Owners' and accountants' e-mail addresses, then the company's extra addresses, each
    once, in a stable order."""
    users = (
        get_user_model()
        .objects.filter(
            memberships__company=company, memberships__role__in=ALERT_ROLES, is_active=True
        )
        .exclude(email="")
    )
    found = list(users.order_by("email").values_list("email", flat=True).distinct())
    for address in extra:
        if address not in found:
            found.append(address)
    return found


def variance_alert_raise(
    *, reconciliation, variance: Decimal, alert_threshold: Decimal, extra_recipients=()
) -> bool:
    """Raise the alert unless it was raised for this figure already; True when raised."""
    if _already_raised(reconciliation, variance):
        return False
    account = reconciliation.bank_account
    company = account.company
    recipients = alert_recipients(company, extra_recipients)
    details = {
        "bank_account": account.pk,
        "bank_account_name": account.name,
        "period": reconciliation.period.strftime("%Y-%m"),
        "variance": str(variance),
        "alert_threshold": str(alert_threshold),
        "recipients": len(recipients),
    }
    audit_record(
        action=ALERT_ACTION,
        system_job="banking.reconciliation",
        company=company,
        obj=reconciliation,
        after=details,
    )
    reconciliation_id = reconciliation.pk

    def after_commit():
        log.warning("bank reconciliation variance above alert threshold", extra=details)
        variance_alerts_total.inc()
        if recipients:
            variance_alert_send(reconciliation_id, str(variance), recipients)

    transaction.on_commit(after_commit)
    return True


def variance_alert_send(reconciliation_id: int, variance: str, recipients: list[str]) -> bool:
    """The alert email (after commit); True when the mail server took it."""
    from banking.models import BankReconciliation

    row = BankReconciliation.objects.select_related("bank_account", "company").get(
        pk=reconciliation_id
    )
    account = row.bank_account
    subject = (
        f"[{row.company.name}] Bank reconciliation variance {variance} {account.currency} "
        f"on {account.name}, {row.period:%B %Y}"
    )
    body = (
        f"The bank reconciliation of {account.name} for {row.period:%B %Y} does not agree.\n\n"
        f"Statement closing balance: {row.statement_closing}\n"
        f"Outstanding deposits: {row.outstanding_deposits}\n"
        f"Outstanding payments: {row.outstanding_payments}\n"
        f"Book balance: {row.book_balance}\n"
        f"Variance: {variance} (threshold {row.threshold})\n\n"
        "Unmatched statement lines (bank fees, interest, receipts not yet booked) usually "
        "explain it: open the reconciliation screen of the account to match or book them.\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception:
        log.exception(
            "bank reconciliation variance alert not sent",
            extra={"reconciliation": reconciliation_id},
        )
        return False
    return True
