"""The reconciliation screen: one bank account and one month, the accountant's daily page.

    <admin>/banking/bankaccount/<id>/reconcile/?period=YYYY-MM     (admin:banking_reconcile)

At the top the month's figures from banking.reconciliation.reconciliation_report (statement
balance, book balance, outstanding deposits and payments, variance against the threshold).
Below, statement lines of the month on the left (open ones first, ordered so in the database;
500 a page with "showing x–y of n", filtered by status, text and amount; each with its matches
and an Unmatch button), candidate book transactions on the right (posted, not fully reconciled,
dated within the company's matching window around the month; paged and filtered the same way),
and the suggestions with their confidence.

Every button posts one form to this page, which calls one service and redirects back to the
same account and month with a message (post/redirect/get): match (a line and one or more
transactions, each with an optional partial amount), unmatch, accept, reject, auto-reconcile,
create a fee or interest transaction from an unmatched line, settle one or more open invoices
(each with an amount) from a receipt line, ignore or un-ignore a line, and sign the month off
when its variance is within the threshold. Reading needs the banking read role, every button
the write role.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Lower
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounting.admin import _plural
from banking import imports, reconciliation
from banking.forms import month_of
from banking.models import (
    BankTransaction,
    LineStatus,
    MatchStatus,
    PostingStatus,
    ReconciliationMatch,
    StatementLine,
)
from banking.services import banking_settings_for
from core.errors import DomainError, ValidationFailed

LINES_SHOWN = 500  # per page
CANDIDATES_SHOWN = 500
LINE_FILTERS = [("", "All"), ("open", "Open"), ("matched", "Matched"), ("ignored", "Ignored")]
INVOICES_OFFERED = 500
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
    """One or more invoices from one receipt line: the ticked `invoice` ids, each with its
    `amount_<id>` (blank: what it has due, at most what the line has left; a single invoice may
    carry a plain `amount`), plus any invoice typed by number in `invoice_number` with
    `amount_number`."""
    from invoicing.models import Invoice

    line = _line(account, request.POST.get("line"))
    chosen = _ids(request.POST.getlist("invoice"))
    invoices = {i.pk: i for i in Invoice.objects.filter(company=account.company, pk__in=chosen)}
    settlements = []
    for pk in chosen:
        if pk not in invoices:
            raise ValidationFailed("Choose an open invoice.", code="no_invoice")
        text = request.POST.get(f"amount_{pk}", "")
        if not text and len(chosen) == 1:
            text = request.POST.get("amount", "")
        settlements.append((invoices[pk], _amount(text, f"Amount for {invoices[pk].number}")))
    number = (request.POST.get("invoice_number") or "").strip()
    if number:
        typed = Invoice.objects.filter(company=account.company, number=number).first()
        if typed is None:
            raise ValidationFailed(f"No invoice numbered {number!r}.", code="no_invoice")
        settlements.append((typed, _amount(request.POST.get("amount_number", ""), "Amount")))
    if not settlements:
        raise ValidationFailed("Choose an open invoice.", code="no_invoice")
    reconciliation.statement_line_settle_invoices(
        actor=request.user, statement_line=line, settlements=settlements
    )
    names = ", ".join(str(invoice.number or invoice.pk) for invoice, _ in settlements)
    return f"{names} settled from line {line}."


def _do_ignore(request, account, period) -> str:
    line = _line(account, request.POST.get("line"))
    imports.statement_line_ignore(actor=request.user, statement_line=line)
    return f"Line {line} set aside as ignored."


def _do_unignore(request, account, period) -> str:
    line = _line(account, request.POST.get("line"))
    imports.statement_line_unignore(actor=request.user, statement_line=line)
    return f"Line {line} back to review."


def _do_close(request, account, period) -> str:
    row = reconciliation.reconciliation_close(
        actor=request.user, bank_account=account, period=period
    )
    return f"{account.name} {period:%B %Y} signed off (variance {_money(row.variance)})."


ACTIONS = {
    "match": _do_match,
    "unmatch": _do_unmatch,
    "accept": _do_accept,
    "reject": _do_reject,
    "auto": _do_auto,
    "create": _do_create,
    "settle": _do_settle,
    "ignore": _do_ignore,
    "unignore": _do_unignore,
    "close": _do_close,
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
    if request.method == "POST" and request.GET.get("period"):
        back = request.get_full_path()  # the forms post to the page as filtered: back to it

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
    filters = {**_filters(request), "period": f"{period:%Y-%m}"}
    open_statuses = [LineStatus.UNMATCHED, LineStatus.PARTIALLY_MATCHED]
    line_query = _filtered_lines(
        StatementLine.objects.filter(bank_account=account, date__gte=period, date__lt=end),
        filters,
        open_statuses,
    )
    line_total = line_query.count()
    line_page = _page(filters["page"], line_total, LINES_SHOWN)
    # Open lines first, in the database: the page never hides an open line behind done ones.
    lines = list(
        line_query.annotate(
            done=Case(When(status__in=open_statuses, then=Value(0)), default=Value(1))
        ).order_by("done", "date", "id")[(line_page - 1) * LINES_SHOWN : line_page * LINES_SHOWN]
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

    window_days = banking_settings_for(account.company).match_window_days
    window = timedelta(days=window_days)
    candidate_query = BankTransaction.objects.filter(
        bank_account=account,
        posting_status=PostingStatus.POSTED,
        reconciled_amount__lt=F("amount"),
        date__gte=period - window,
        date__lt=end + window,
    )
    if filters["cq"]:
        candidate_query = candidate_query.filter(
            Q(reference__icontains=filters["cq"])
            | Q(counterparty__icontains=filters["cq"])
            | Q(memo__icontains=filters["cq"])
        )
    if filters["camount"] is not None:
        candidate_query = candidate_query.filter(amount=filters["camount"])
    candidate_total = candidate_query.count()
    candidate_page = _page(filters["cpage"], candidate_total, CANDIDATES_SHOWN)
    candidates = list(
        candidate_query.select_related("cost_center", "project", "department").order_by(
            "date", "id"
        )[(candidate_page - 1) * CANDIDATES_SHOWN : candidate_page * CANDIDATES_SHOWN]
    )
    for candidate in candidates:
        candidate.open_amount = candidate.amount - candidate.reconciled_amount

    receipts = [line for line in lines if line.status in open_statuses and line.amount > 0]
    invoices_for = _open_invoices(account, receipts)
    rows = []
    for line in lines:
        left = abs(line.amount) - line.reconciled_amount
        rows.append(
            {
                "line": line,
                "open": line.status in open_statuses,
                "ignorable": line.status in open_statuses and line.reconciled_amount == 0,
                "ignored": line.status == LineStatus.IGNORED,
                "left": left,
                "matches": matches_by_line.get(line.pk, []),
                "invoices": invoices_for.get(line.pk, []),
            }
        )
    open_count = _filtered_lines(
        StatementLine.objects.filter(bank_account=account, date__gte=period, date__lt=end),
        {**filters, "status": "open"},
        open_statuses,
    ).count()

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
        "open_count": open_count,
        "line_total": line_total,
        "line_pages": _pager(filters, "page", line_page, line_total, LINES_SHOWN, len(lines)),
        "suggestions": suggestions,
        "candidates": candidates,
        "candidate_total": candidate_total,
        "candidate_pages": _pager(
            filters, "cpage", candidate_page, candidate_total, CANDIDATES_SHOWN, len(candidates)
        ),
        "filters": filters,
        "line_filters": LINE_FILTERS,
        "can_write": can_write,
        "can_close": bool(
            can_write
            and report
            and report.get("variance") is not None
            and report.get("within_threshold")
            and report.get("status") != "reconciled"
        ),
        "create_kinds": CREATE_KINDS,
        "window_days": window_days,
    }
    return TemplateResponse(request, "admin/banking/reconcile.html", context)


def _open_invoices(account, receipts) -> dict:
    """Per open receipt line, the open invoices it may settle: those whose amount due equals
    what the line has left, and those of the customer the line names (its counterparty equal
    to the customer's name, ignoring case), in one query. Several may be ticked, each with an
    amount; any other invoice can be typed by number."""
    if not receipts:
        return {}
    from invoicing.models import Invoice, InvoiceKind
    from invoicing.selectors import OPEN_STATUSES

    amounts = {abs(line.amount) - line.reconciled_amount for line in receipts}
    names = {line.counterparty.strip().lower() for line in receipts if line.counterparty.strip()}
    found = list(
        Invoice.objects.filter(company=account.company, kind=InvoiceKind.INVOICE)
        .filter(status__in=OPEN_STATUSES)
        .annotate(customer_key=Lower("customer__name"))
        .filter(Q(amount_due__in=amounts) | Q(customer_key__in=names))
        .select_related("customer")
        .order_by("due_date", "id")[:INVOICES_OFFERED]
    )
    by_line: dict = {}
    for line in receipts:
        left = abs(line.amount) - line.reconciled_amount
        name = line.counterparty.strip().lower()
        exact = [i for i in found if i.amount_due == left]
        of_customer = [i for i in found if name and i.customer_key == name and i not in exact]
        by_line[line.pk] = (exact + of_customer)[:20]
    return by_line


def _filters(request) -> dict:
    """The screen's GET filters: line `status` (open, matched, ignored), text `q`, `amount`
    (the absolute amount), `page`; for candidates `cq`, `camount`, `cpage`."""

    def amount(key):
        try:
            value = Decimal((request.GET.get(key) or "").replace(",", "").strip())
        except InvalidOperation:
            return None
        return abs(value) if value.is_finite() else None

    def number(key):
        text = request.GET.get(key) or ""
        return int(text) if text.isdigit() and len(text) < 7 else 1

    status = request.GET.get("status") or ""
    return {
        "status": status if status in dict(LINE_FILTERS) else "",
        "q": (request.GET.get("q") or "").strip()[:100],
        "amount": amount("amount"),
        "page": number("page"),
        "cq": (request.GET.get("cq") or "").strip()[:100],
        "camount": amount("camount"),
        "cpage": number("cpage"),
    }


def _filtered_lines(query, filters: dict, open_statuses):
    if filters["status"] == "open":
        query = query.filter(status__in=open_statuses)
    elif filters["status"] == "matched":
        query = query.filter(status=LineStatus.MATCHED)
    elif filters["status"] == "ignored":
        query = query.filter(status=LineStatus.IGNORED)
    if filters["q"]:
        query = query.filter(
            Q(reference__icontains=filters["q"])
            | Q(counterparty__icontains=filters["q"])
            | Q(description__icontains=filters["q"])
            | Q(bank_id__icontains=filters["q"])
        )
    if filters["amount"] is not None:
        query = query.filter(Q(amount=filters["amount"]) | Q(amount=-filters["amount"]))
    return query


def _page(asked: int, total: int, size: int) -> int:
    last = max(1, -(-total // size))
    return min(max(1, asked), last)


def _pager(filters: dict, key: str, page: int, total: int, size: int, shown: int) -> dict:
    """ "showing 501–1,000 of 1,234" with links to the pages around, keeping the filters."""
    kept = {
        k: ("" if v is None else v)
        for k, v in filters.items()
        if k != key and v not in ("", None, 1)
    }
    last = max(1, -(-total // size))

    def link(number):
        return "?" + urlencode({**kept, key: number}) if 1 <= number <= last else ""

    first = (page - 1) * size + 1 if shown else 0
    return {
        "first": first,
        "last_shown": first + shown - 1 if shown else 0,
        "total": total,
        "page": page,
        "pages": last,
        "previous": link(page - 1),
        "next": link(page + 1),
        "partial": total > shown,
    }
