"""Banking's panels on the admin dashboard (format: core/dashboard.py): each bank account with
its posted book balance and the statement lines still to reconcile (linked to its
reconciliation screen), and the banking reports."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.urls import NoReverseMatch, reverse

from banking.models import BankAccount, BankDailyBalance, LineStatus, StatementLine
from core.selectors import companies_for

ACCOUNTS_SHOWN = 12


def panels(request) -> list[dict]:
    companies = list(companies_for(request.user, "banking", write=False)[:20])
    if not companies:
        return []
    try:
        accounts_url = reverse("admin:banking_bankaccount_changelist")
    except NoReverseMatch:  # the banking admin is not registered
        return []
    accounts = list(
        BankAccount.objects.filter(company__in=companies, is_active=True)
        .select_related("company")
        .order_by("company__name", "name")[:ACCOUNTS_SHOWN]
    )
    ids = [account.pk for account in accounts]
    # Two grouped queries for all accounts: the daily balances the triggers keep, and the
    # open statement lines (partial index on unreconciled lines).
    movements = {
        row["bank_account_id"]: (row["inflow"] or 0) - (row["outflow"] or 0)
        for row in BankDailyBalance.objects.filter(bank_account_id__in=ids)
        .values("bank_account_id")
        .annotate(inflow=Sum("inflow"), outflow=Sum("outflow"))
    }
    open_lines = {
        row["bank_account_id"]: row["open"]
        for row in StatementLine.objects.filter(
            bank_account_id__in=ids,
            status__in=[LineStatus.UNMATCHED, LineStatus.PARTIALLY_MATCHED],
        )
        .values("bank_account_id")
        .annotate(open=Count("id"))
    }
    several = len({account.company_id for account in accounts}) > 1
    rows = []
    for account in accounts:
        balance = account.opening_balance + movements.get(account.pk, 0)
        reconcile = reverse("admin:banking_reconcile", args=[account.pk])
        pending = open_lines.get(account.pk, 0)
        rows.append(
            [
                (account.name, reverse("admin:banking_bankaccount_change", args=[account.pk])),
                *([account.company.name] if several else []),
                f"{account.currency} {balance:,.2f}",
                (f"{pending} to reconcile", reconcile) if pending else ("reconciled", reconcile),
            ]
        )
    from banking.admin_reports import report_links

    reports = [[(link["title"], link["url"])] for link in report_links()]
    return [
        {
            "title": "Bank accounts",
            "columns": ["Account", *(["Company"] if several else []), "Book balance", "Statement"],
            "rows": rows,
            "empty": "No bank accounts yet.",
            "link": accounts_url,
            "nowrap_columns": 1,
        },
        {
            "title": "Banking reports",
            "columns": ["Report"],
            "rows": reports,
            "empty": "",
        },
    ]
