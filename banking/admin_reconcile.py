"""The reconciliation screen: one bank account and one month, the accountant's daily page.

    <admin>/banking/bankaccount/<id>/reconcile/?period=YYYY-MM     (admin:banking_reconcile)

At the top the month's figures from banking.reconciliation.reconciliation_report (statement
balance, book balance, outstanding deposits and payments, variance against the threshold).
Below, statement lines of the month on the left (open ones first; each with its matches and an
Unmatch button), candidate book transactions on the right (posted, not fully reconciled, dated
within the matching window around the month), and the suggestions with their confidence.

Every button posts one form to this page, which calls one service and redirects back to the
same account and month with a message (post/redirect/get): match (a line and one or more
transactions, each with an optional partial amount), unmatch, accept, reject, auto-reconcile,
create a fee or interest transaction from an unmatched line, settle an open invoice from a
receipt line. Reading needs the banking read role, every button the write role.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounting.admin import _plural
from banking import reconciliation
from banking.forms import month_of
from banking.models import (
    BankTransaction,
    LineStatus,
    MatchStatus,
    PostingStatus,
    ReconciliationMatch,
    StatementLine,
)
from core.errors import DomainError, ValidationFailed

WINDOW_DAYS = 7
LINES_SHOWN = 500
CANDIDATES_SHOWN = 500
CREATE_KINDS = [("fee", "Bank fee"), ("interest", "Interest")]


def _money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


def _next_month(first):
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def _amount(text: str, what: str) -> Decimal | None:
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValidationFailed(
            f"{what}: {text!r} is not an amount.", code="invalid_amount"
        ) from None
    if value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValidationFailed(
            f"{what}: {text} must be positive with at most two decimals.", code="invalid_amount"
        )
    return value


def _ids(values) -> list[int]:
    return [int(v) for v in values if str(v).isdigit()]


# --- actions -----------------------------------------------------------------------------------


def _line(account, raw) -> StatementLine:
    line = StatementLine.objects.filter(bank_account=account, pk=raw if str(raw).isdigit() else 0)
    found = line.first()
    if found is None:
        raise ValidationFailed("Choose a statement line of this account.", code="no_line")
    return found


def _match(account, raw) -> ReconciliationMatch:
    found = (
        ReconciliationMatch.objects.filter(
            statement_line__bank_account=account, pk=raw if str(raw).isdigit() else 0
        )
        .select_related("statement_line", "bank_transaction")
        .first()
    )
    if found is None:
        raise ValidationFailed("That match is no longer there.", code="no_match")
    return found


def _do_match(request, account, period) -> str:
    line = _line(account, request.POST.get("line"))
    chosen = _ids(request.POST.getlist("transactions"))
    if not chosen:
        raise ValidationFailed(
            "Tick one or more book transactions to match with the line.", code="no_transactions"
        )
    transactions = {
        t.pk: t for t in BankTransaction.objects.filter(bank_account=account, pk__in=chosen)
    }
    allocations = []
    for pk in chosen:
        if pk not in transactions:
            raise ValidationFailed("A chosen transaction is not of this account.", code="foreign")
        amount = _amount(request.POST.get(f"amount_{pk}", ""), f"Amount for {transactions[pk]}")
        allocations.append((transactions[pk], amount))
    matches = reconciliation.reconciliation_match(
        actor=request.user, statement_line=line, allocations=allocations
    )
    return f"Line {line} matched with {_plural(len(matches or allocations), 'transaction')}."


def _do_unmatch(request, account, period) -> str:
    match = _match(account, request.POST.get("match"))
    reconciliation.reconciliation_unmatch(actor=request.user, match=match)
    return f"Unmatched {match.statement_line} from {match.bank_transaction}."


def _do_accept(request, account, period) -> str:
    match = _match(account, request.POST.get("match"))
    reconciliation.reconciliation_accept(actor=request.user, match=match)
    return f"Suggestion accepted: {match.statement_line} ↔ {match.bank_transaction}."


def _do_reject(request, account, period) -> str:
    match = _match(account, request.POST.get("match"))
    reconciliation.reconciliation_reject(actor=request.user, match=match)
    return f"Suggestion rejected: {match.statement_line} ↔ {match.bank_transaction}."


def _summary_text(summary: dict) -> str:
    return (
        f"{_plural(summary['lines'], 'line')} looked at, {summary['suggested']} suggested, "
        f"{summary['accepted']} accepted, {summary['for_review']} to review"
    )


def _do_auto(request, account, period) -> str:
    summary = reconciliation.reconciliation_auto(
        company=account.company, bank_account=account, period=period, actor=request.user
    )
    text = _summary_text(summary)
    return f"Auto-reconcile done{': ' + text if text else ''}."


def _do_create(request, account, period) -> str:
    line = _line(account, request.POST.get("line"))
    kind = request.POST.get("kind", "")
    if kind not in dict(CREATE_KINDS):
        raise ValidationFailed("Choose fee or interest.", code="invalid_kind")
    created = reconciliation.statement_line_create_transaction(
        actor=request.user, statement_line=line, kind=kind
    )
    return f"{dict(CREATE_KINDS)[kind]} transaction {created} created, posted and matched."


def _do_settle(request, account, period) -> str:
    from invoicing.models import Invoice

    line = _line(account, request.POST.get("line"))
    invoice = Invoice.objects.filter(
        company=account.company, pk=request.POST.get("invoice") or 0
    ).first()
    if invoice is None:
        raise ValidationFailed("Choose an open invoice.", code="no_invoice")
    amount = _amount(request.POST.get("amount", ""), "Amount")
    reconciliation.statement_line_settle_invoice(
        actor=request.user, statement_line=line, invoice=invoice, amount=amount
    )
    return f"{invoice} settled from line {line}."


ACTIONS = {
    "match": _do_match,
    "unmatch": _do_unmatch,
    "accept": _do_accept,
    "reject": _do_reject,
    "auto": _do_auto,
    "create": _do_create,
    "settle": _do_settle,
}


# --- the page ----------------------------------------------------------------------------------


def _report(account, period) -> dict | None:
    try:
        report = reconciliation.reconciliation_report(bank_account=account, period=period)
    except DomainError:
        return None
    return report if isinstance(report, dict) else vars(report)


def _figures(report: dict | None, currency: str) -> list[dict]:
    if not report:
        return []
    rows = [
        ("Statement opening", "statement_opening"),
        ("Statement closing", "statement_closing"),
        ("Book balance", "book_balance"),
        ("Outstanding deposits", "outstanding_deposits"),
        ("Outstanding payments", "outstanding_payments"),
        ("Adjusted statement balance", "adjusted_statement_balance"),
        ("Variance", "variance"),
        ("Threshold", "threshold"),
        ("Unmatched statement lines", "unmatched_statement_lines"),
    ]
    return [
        {
            "label": label,
            "value": value if isinstance(value, int) else _money(value) if value is not None
            else "no statement",
            "key": key,
        }
        for label, key in rows
        if key in report
        for value in [report.get(key)]
    ]  # fmt: skip


def screen(model_admin, request, account):
    today = account.company.today()
    period = month_of(request.GET.get("period") or request.POST.get("period"), today)
    end = _next_month(period)
    can_write = model_admin._allowed(request, account, write=True)
    here = reverse("admin:banking_reconcile", args=[account.pk])
    back = f"{here}?{urlencode({'period': f'{period:%Y-%m}'})}"

    if request.method == "POST":
        if not can_write:
            raise PermissionDenied
        action = ACTIONS.get(request.POST.get("action", ""))
        if action is None:
            model_admin.message_user(request, "Unknown action.", messages.ERROR)
        else:
            try:
                model_admin.message_user(request, action(request, account, period))
            except DomainError as error:
                model_admin.message_user(request, error.message, messages.ERROR)
        return HttpResponseRedirect(back)

    report = _report(account, period)
    lines = list(
        StatementLine.objects.filter(bank_account=account, date__gte=period, date__lt=end).order_by(
            "date", "id"
        )[:LINES_SHOWN]
    )
    matches_by_line: dict[int, list] = {}
    suggestions = []
    for match in (
        ReconciliationMatch.objects.filter(statement_line__in=[line.pk for line in lines])
        .exclude(status=MatchStatus.REJECTED)
        .select_related("bank_transaction")
        .order_by("-confidence", "id")
    ):
        if match.status == MatchStatus.SUGGESTED:
            suggestions.append(match)
        else:
            matches_by_line.setdefault(match.statement_line_id, []).append(match)
    line_by_id = {line.pk: line for line in lines}
    for match in suggestions:
        match.line = line_by_id.get(match.statement_line_id)

    window = timedelta(days=WINDOW_DAYS)
    candidates = list(
        BankTransaction.objects.filter(
            bank_account=account,
            posting_status=PostingStatus.POSTED,
            reconciled_amount__lt=F("amount"),
            date__gte=period - window,
            date__lt=end + window,
        )
        .select_related("cost_center", "project", "department")
        .order_by("date", "id")[:CANDIDATES_SHOWN]
    )
    for candidate in candidates:
        candidate.open_amount = candidate.amount - candidate.reconciled_amount

    open_statuses = {LineStatus.UNMATCHED, LineStatus.PARTIALLY_MATCHED}
    receipts = [line for line in lines if line.status in open_statuses and line.amount > 0]
    invoices_by_amount = _open_invoices(account, receipts)
    rows = []
    for line in lines:
        left = abs(line.amount) - line.reconciled_amount
        rows.append(
            {
                "line": line,
                "open": line.status in open_statuses,
                "left": left,
                "matches": matches_by_line.get(line.pk, []),
                "invoices": invoices_by_amount.get(left, []) if line.amount > 0 else [],
            }
        )
    rows.sort(key=lambda row: (not row["open"], row["line"].date, row["line"].pk))

    previous = (period - timedelta(days=1)).replace(day=1)
    variance = (report or {}).get("variance")
    threshold = (report or {}).get("threshold")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Reconcile {account.name}",
        "subtitle": f"{period:%B %Y}",
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "account": account,
        "period": period,
        "period_text": f"{period:%Y-%m}",
        "previous": f"{previous:%Y-%m}",
        "next": f"{end:%Y-%m}",
        "report": report,
        "figures": _figures(report, account.currency),
        "within_threshold": (
            None
            if variance is None or threshold is None
            else abs(Decimal(variance)) <= Decimal(threshold)
        ),
        "status": (report or {}).get("status", ""),
        "rows": rows,
        "open_count": sum(1 for row in rows if row["open"]),
        "suggestions": suggestions,
        "candidates": candidates,
        "can_write": can_write,
        "create_kinds": CREATE_KINDS,
        "window_days": WINDOW_DAYS,
    }
    return TemplateResponse(request, "admin/banking/reconcile.html", context)


def _open_invoices(account, receipts) -> dict:
    """Open invoices whose amount due equals what a receipt line has left, in one query."""
    if not receipts:
        return {}
    from invoicing.models import Invoice, InvoiceKind
    from invoicing.selectors import OPEN_STATUSES

    amounts = {abs(line.amount) - line.reconciled_amount for line in receipts}
    found: dict = {}
    for invoice in (
        Invoice.objects.filter(
            company=account.company,
            kind=InvoiceKind.INVOICE,
            status__in=OPEN_STATUSES,
            amount_due__in=amounts,
        )
        .select_related("customer")
        .order_by("due_date", "id")[:200]
    ):
        found.setdefault(invoice.amount_due, []).append(invoice)
    return found
