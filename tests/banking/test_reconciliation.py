"""Reconciliation services: auto-reconcile, manual match/unmatch, accept/reject, booking a fee
from a line, settling invoices from a receipt, the allocation caps in PostgreSQL."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from accounting.models import JournalEntry, JournalLine
from banking import reconciliation as recon
from banking import services
from banking.errors import AllocationExceeded, InvalidTransition
from banking.models import (
    BankTransaction,
    LineStatus,
    MatchMethod,
    MatchStatus,
    ReconciliationMatch,
    StatementLine,
)
from banking.tasks import reconcile_account
from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from core.models import AuditEvent
from invoicing import services as invoicing
from invoicing.models import Invoice
from tests.banking.recon_helpers import statement
from tests.invoicing.conftest import sales  # noqa: F401  (the fixture, reused)

D = date
M = Decimal


def deposit(bank, amount, day, account=None, **kw):
    return bank.txn(
        kind="deposit",
        amount=amount,
        date=day,
        counter_account=bank.account("4200"),
        account=account,
        post=True,
        **kw,
    )


def payment(bank, amount, day, account=None, **kw):
    return bank.txn(
        kind="withdrawal",
        amount=amount,
        date=day,
        counter_account=bank.account("6200"),
        account=account,
        post=True,
        **kw,
    )


def fresh(obj):
    obj.refresh_from_db()
    return obj


def live_matches(line):
    return list(
        ReconciliationMatch.objects.filter(statement_line=line)
        .exclude(status=MatchStatus.REJECTED)
        .order_by("id")
    )


# --- auto-reconcile ------------------------------------------------------------------------------


def test_auto_reconcile_reference_beats_amount_and_confident_matches_are_accepted(bank):
    by_amount = deposit(bank, "10000.00", D(2026, 3, 10), reference="DEP-77")
    by_ref = deposit(bank, "10000.00", D(2026, 3, 4), reference="INV-0042")
    rent = payment(bank, "3000.00", D(2026, 3, 11))
    line, rent_line = statement(
        bank,
        bank.main,
        [
            (D(2026, 3, 10), "10000.00", {"reference": "inv-0042"}),
            (D(2026, 3, 12), "-3000.00", {"description": "Rent March"}),
        ],
    )

    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)

    assert summary["suggested"] == 2 and summary["accepted"] == 2
    assert summary["by_method"] == {"amount_date": 1, "reference": 1}
    (m,) = live_matches(line)
    assert (m.bank_transaction_id, m.method, m.confidence, m.status) == (
        by_ref.pk,
        MatchMethod.REFERENCE,
        M("1.0000"),
        MatchStatus.ACCEPTED,
    )
    (r,) = live_matches(rent_line)
    # a day apart in the default 3-day window: 0.98 - 0.08 * 1/3 = 0.9533 -> 0.95
    assert (r.bank_transaction_id, r.method, r.confidence) == (rent.pk, "amount_date", M("0.9500"))
    assert fresh(line).status == LineStatus.MATCHED
    assert fresh(line).reconciled_amount == M("10000.00")
    assert fresh(by_ref).reconciled_amount == M("10000.00")
    assert fresh(by_amount).reconciled_amount == M("0.00")
    assert fresh(rent).reconciled_amount == M("3000.00")
    assert AuditEvent.objects.filter(action="banking.reconciliation.auto").count() == 1


def test_auto_reconcile_twice_adds_nothing(bank):
    deposit(bank, "500.00", D(2026, 3, 2))
    deposit(bank, "500.00", D(2026, 3, 2), counterparty="Karim Traders")
    deposit(bank, "750.00", D(2026, 3, 3))
    statement(
        bank,
        bank.main,
        [
            (D(2026, 3, 2), "500.00", {"counterparty": "Nadia Foods"}),  # ambiguous: suggested
            (D(2026, 3, 3), "750.00"),  # certain: accepted
            (D(2026, 3, 9), "-99.00"),  # nothing: left open
        ],
    )
    first = recon.reconciliation_auto(
        company=bank.company, bank_account=bank.main, period="2026-03"
    )
    assert (first["suggested"], first["accepted"], first["for_review"]) == (2, 1, 1)
    assert first["unmatched_lines"] == 1
    count = ReconciliationMatch.objects.count()

    second = recon.reconciliation_auto(
        company=bank.company, bank_account=bank.main, period="2026-03"
    )

    assert (second["suggested"], second["accepted"]) == (0, 0)
    assert ReconciliationMatch.objects.count() == count


def test_a_low_confidence_suggestion_waits_then_accept_counts_it(bank):
    txn = deposit(bank, "2500.00", D(2026, 3, 1), counterparty="Nadia Foods")
    (line,) = statement(
        bank, bank.main, [(D(2026, 3, 20), "2500.00", {"counterparty": "Nadia Foods"})]
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    (m,) = live_matches(line)
    # 19 days apart: outside the window, found by party similarity (score 100 -> 0.90)
    assert (m.method, m.confidence, m.status) == ("similarity", M("0.9000"), MatchStatus.SUGGESTED)
    assert fresh(line).status == LineStatus.UNMATCHED
    assert fresh(txn).reconciled_amount == M("0.00")

    recon.reconciliation_accept(actor=bank.clerk, match=m)

    assert fresh(m).status == MatchStatus.ACCEPTED and m.accepted_at is not None
    assert fresh(line).status == LineStatus.MATCHED
    assert fresh(txn).reconciled_amount == M("2500.00")
    recon.reconciliation_accept(actor=bank.clerk, match=m)  # twice: nothing more
    assert fresh(txn).reconciled_amount == M("2500.00")


def test_a_rejected_suggestion_is_not_offered_again(bank):
    deposit(bank, "2500.00", D(2026, 3, 1), counterparty="Nadia Foods")
    (line,) = statement(
        bank, bank.main, [(D(2026, 3, 20), "2500.00", {"counterparty": "Nadia Foods"})]
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    (m,) = live_matches(line)

    recon.reconciliation_reject(actor=bank.clerk, match=m)
    again = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)

    assert again["suggested"] == 0
    assert live_matches(line) == []
    with pytest.raises(InvalidTransition):
        recon.reconciliation_accept(actor=bank.clerk, match=m)


def test_the_company_auto_accept_confidence_decides(bank):
    services.banking_settings_update(
        actor=bank.owner, company=bank.company, auto_accept_confidence="0.85"
    )
    deposit(bank, "2500.00", D(2026, 3, 1), counterparty="Nadia Foods")
    (line,) = statement(
        bank, bank.main, [(D(2026, 3, 20), "2500.00", {"counterparty": "Nadia Foods"})]
    )
    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    assert summary["accepted"] == 1  # 0.90 >= 0.85
    assert fresh(line).status == LineStatus.MATCHED


def test_a_draft_transaction_is_never_matched(bank):
    bank.txn(
        kind="deposit", amount="400.00", date=D(2026, 3, 5), counter_account=bank.account("4200")
    )
    statement(bank, bank.main, [(D(2026, 3, 5), "400.00")])
    assert recon.reconciliation_auto(company=bank.company, bank_account=bank.main)["suggested"] == 0


def test_the_task_reconciles_an_account(bank):
    deposit(bank, "640.00", D(2026, 4, 2))
    (line,) = statement(bank, bank.main, [(D(2026, 4, 2), "640.00")])
    summary = reconcile_account.apply(args=[bank.main.pk, "2026-04"]).get()
    assert summary["accepted"] == 1
    assert fresh(line).status == LineStatus.MATCHED
    assert reconcile_account.apply(args=[bank.main.pk]).get()["suggested"] == 0
    assert reconcile_account.apply(args=[987654]).get() is None


def test_a_clerk_may_reconcile_an_auditor_may_not(bank):
    statement(bank, bank.main, [(D(2026, 3, 5), "1.00")])
    with pytest.raises(PermissionDeniedError):
        recon.reconciliation_auto(company=bank.company, bank_account=bank.main, actor=bank.auditor)
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main, actor=bank.clerk)


def test_another_companys_account_is_refused(bank):
    with pytest.raises(ValidationFailed):
        recon.reconciliation_auto(company=bank.tenants.b, bank_account=bank.main.pk)


# --- manual matching -----------------------------------------------------------------------------


def test_partial_allocation_leaves_the_line_partially_matched_and_unmatch_restores(bank):
    txn = deposit(bank, "6000.00", D(2026, 3, 5))
    (line,) = statement(bank, bank.main, [(D(2026, 3, 6), "10000.00")])

    (m,) = recon.reconciliation_match(
        actor=bank.clerk, statement_line=line, allocations=[(txn, "6000.00")]
    )

    line = fresh(line)
    assert (line.status, line.reconciled_amount) == (LineStatus.PARTIALLY_MATCHED, M("6000.00"))
    assert fresh(txn).reconciled_amount == M("6000.00")
    assert (m.method, m.status, m.confidence) == (MatchMethod.MANUAL, MatchStatus.ACCEPTED, 1)

    recon.reconciliation_unmatch(actor=bank.clerk, match=m)

    line = fresh(line)
    assert (line.status, line.reconciled_amount) == (LineStatus.UNMATCHED, M("0.00"))
    assert fresh(txn).reconciled_amount == M("0.00")
    assert fresh(m).status == MatchStatus.REJECTED  # kept for the record, not offered again
    assert AuditEvent.objects.filter(action="banking.reconciliation.unmatch").count() == 1


def test_many_to_one_by_hand_with_amounts_taken_from_what_is_open(bank):
    a = deposit(bank, "10000.00", D(2026, 3, 5))
    b = deposit(bank, "5000.00", D(2026, 3, 6))
    (line,) = statement(bank, bank.main, [(D(2026, 3, 7), "15000.00")])

    matches = recon.reconciliation_match(
        actor=bank.clerk, statement_line=line, allocations=[(a, None), (b.pk, None)]
    )

    assert [(m.bank_transaction_id, m.amount) for m in matches] == [
        (a.pk, M("10000.00")),
        (b.pk, M("5000.00")),
    ]
    assert fresh(line).status == LineStatus.MATCHED
    assert fresh(a).reconciled_amount == M("10000.00")
    assert fresh(b).reconciled_amount == M("5000.00")


def test_manual_match_refuses_more_than_is_open(bank):
    txn = deposit(bank, "6000.00", D(2026, 3, 5))
    other = deposit(bank, "6000.00", D(2026, 3, 5))
    (line,) = statement(bank, bank.main, [(D(2026, 3, 6), "4000.00")])

    with pytest.raises(AllocationExceeded) as caught:
        recon.reconciliation_match(
            actor=bank.clerk, statement_line=line, allocations=[(txn, "4000.01")]
        )
    assert caught.value.code == "allocation_exceeded"
    recon.reconciliation_match(
        actor=bank.clerk, statement_line=line, allocations=[(txn, "1000.00")]
    )
    with pytest.raises(AllocationExceeded):  # the line has 3,000 left
        recon.reconciliation_match(
            actor=bank.clerk, statement_line=line, allocations=[(other, "3000.01")]
        )
    (line2,) = statement(bank, bank.main, [(D(2026, 3, 6), "9000.00")])
    with pytest.raises(AllocationExceeded):  # the transaction has 5,000 left
        recon.reconciliation_match(
            actor=bank.clerk, statement_line=line2, allocations=[(txn, "5000.01")]
        )
    assert fresh(line).reconciled_amount == M("1000.00")
    assert fresh(txn).reconciled_amount == M("1000.00")


def test_manual_match_checks_sign_posting_and_account(bank):
    out = payment(bank, "100.00", D(2026, 3, 5))
    draft = bank.txn(
        kind="deposit", amount="100.00", date=D(2026, 3, 5), counter_account=bank.account("4200")
    )
    elsewhere = deposit(bank, "100.00", D(2026, 3, 5), account=bank.second)
    (line,) = statement(bank, bank.main, [(D(2026, 3, 6), "100.00")])
    for txn, code in ((out, "sign_mismatch"), (draft, "not_posted"), (elsewhere, "other_account")):
        with pytest.raises(ValidationFailed) as caught:
            recon.reconciliation_match(
                actor=bank.clerk, statement_line=line, allocations=[(txn, None)]
            )
        assert caught.value.code == code
    assert ReconciliationMatch.objects.count() == 0


def test_a_manual_match_withdraws_pending_suggestions(bank):
    suggested_txn = deposit(bank, "2500.00", D(2026, 3, 1), counterparty="Nadia Foods")
    chosen = deposit(bank, "2500.00", D(2026, 2, 1))
    (line,) = statement(
        bank, bank.main, [(D(2026, 3, 20), "2500.00", {"counterparty": "Nadia Foods"})]
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    assert [m.bank_transaction_id for m in live_matches(line)] == [suggested_txn.pk]

    recon.reconciliation_match(actor=bank.clerk, statement_line=line, allocations=[(chosen, None)])

    assert [(m.bank_transaction_id, m.status) for m in live_matches(line)] == [
        (chosen.pk, MatchStatus.ACCEPTED)
    ]


# --- booking from a line -------------------------------------------------------------------------


def test_an_unmatched_fee_line_becomes_a_posted_fee_transaction_matched_to_it(bank):
    (line,) = statement(
        bank, bank.main, [(D(2026, 3, 31), "-1500.00", {"description": "Account maintenance fee"})]
    )

    txn = recon.statement_line_create_transaction(
        actor=bank.clerk, statement_line=line, kind="fee", **bank.dims
    )

    assert (txn.kind, txn.direction, txn.amount, txn.date) == (
        "fee",
        "out",
        M("1500.00"),
        D(2026, 3, 31),
    )
    assert (txn.source, txn.source_id, txn.posting_status) == ("statement", str(line.pk), "posted")
    lines = {
        jl.account.code: jl
        for jl in JournalLine.objects.filter(entry=txn.journal_entry).select_related("account")
    }
    assert (lines["6700"].debit, lines["1131"].credit) == (M("1500.00"), M("1500.00"))
    assert lines["6700"].cost_center_id == bank.cost_center.pk
    assert fresh(line).status == LineStatus.MATCHED
    assert fresh(txn).reconciled_amount == M("1500.00")
    (m,) = live_matches(line)
    assert (m.method, m.status) == (MatchMethod.CREATED_FROM_LINE, MatchStatus.ACCEPTED)
    with pytest.raises(ConflictError) as caught:  # nothing left to book
        recon.statement_line_create_transaction(actor=bank.clerk, statement_line=line, kind="fee")
    assert caught.value.code == "line_matched"


def test_interest_only_from_money_in(bank):
    (line,) = statement(bank, bank.main, [(D(2026, 3, 31), "-20.00")])
    with pytest.raises(ValidationFailed) as caught:
        recon.statement_line_create_transaction(
            actor=bank.clerk, statement_line=line, kind="interest"
        )
    assert caught.value.code == "sign_mismatch"
    (credit,) = statement(bank, bank.main, [(D(2026, 3, 31), "312.50")])
    txn = recon.statement_line_create_transaction(
        actor=bank.clerk, statement_line=credit, kind="interest"
    )
    assert (txn.direction, txn.counter_account.code) == ("in", "4800")


# --- settling invoices from a receipt ----------------------------------------------------------


def _invoice(ctx, amount, **kw):
    line = ctx.line(description="Consulting", unit="job", unit_price=amount, vat_rate="EXEMPT")
    return ctx.approved(line, **kw)


def _entries_debiting(account) -> int:
    return (
        JournalEntry.objects.filter(lines__account=account, lines__debit__gt=0).distinct().count()
    )


def test_one_receipt_settles_two_invoices_without_a_second_posting(bank, sales):  # noqa: F811
    first = _invoice(sales, "10000.00")
    second = _invoice(sales, "5000.00")
    assert (first.amount_due, second.amount_due) == (M("10000.00"), M("5000.00"))
    (line,) = statement(
        bank, bank.main, [(D(2026, 3, 15), "15000.00", {"counterparty": "Dhaka Retail Ltd"})]
    )
    ledger = bank.main.ledger_account
    before_entries = JournalEntry.objects.count()

    txns = recon.statement_line_settle_invoices(
        actor=bank.clerk, statement_line=line, settlements=[(first, None), (second, None)]
    )

    first, second = Invoice.objects.get(pk=first.pk), Invoice.objects.get(pk=second.pk)
    assert (first.status, first.amount_due) == ("paid", M("0.00"))
    assert (second.status, second.amount_due) == ("paid", M("0.00"))
    # two payments, two entries (one each), no third posting by banking
    assert JournalEntry.objects.count() == before_entries + 2
    assert [t.amount for t in txns] == [M("10000.00"), M("5000.00")]
    for txn, invoice in zip(txns, (first, second), strict=True):
        payment = invoice.payments.get()
        assert txn.journal_entry_id == payment.journal_entry_id
        assert (txn.source, txn.invoice_id, txn.posting_status) == (
            "invoice_payment",
            invoice.pk,
            "posted",
        )
        assert fresh(txn).reconciled_amount == txn.amount
    assert bank.balance(ledger) == M("15000.00")  # debited once per invoice, 15,000 in all
    assert BankTransaction.objects.filter(source="invoice_payment").count() == 2
    line = fresh(line)
    assert (line.status, line.reconciled_amount) == (LineStatus.MATCHED, M("15000.00"))
    assert [m.method for m in live_matches(line)] == [MatchMethod.INVOICE, MatchMethod.INVOICE]
    # the line is spent: settling again is refused and posts nothing
    with pytest.raises(ConflictError):
        recon.statement_line_settle_invoice(actor=bank.clerk, statement_line=line, invoice=first)
    assert JournalEntry.objects.count() == before_entries + 2
    # and auto-reconcile does not touch the settled transactions again
    assert recon.reconciliation_auto(company=bank.company, bank_account=bank.main)["suggested"] == 0


def test_partial_settlement_and_overpayment(bank, sales):  # noqa: F811
    invoice = _invoice(sales, "10000.00")
    (line,) = statement(bank, bank.main, [(D(2026, 3, 15), "12000.00")])

    with pytest.raises(ValidationFailed) as caught:
        recon.statement_line_settle_invoice(
            actor=bank.clerk, statement_line=line, invoice=invoice, amount="10000.01"
        )
    assert caught.value.code == "overpayment"
    recon.statement_line_settle_invoice(
        actor=bank.clerk, statement_line=line, invoice=invoice, amount="4000.00"
    )

    invoice = Invoice.objects.get(pk=invoice.pk)
    assert (invoice.status, invoice.amount_due) == ("partially_paid", M("6000.00"))
    line = fresh(line)
    assert (line.status, line.reconciled_amount) == (LineStatus.PARTIALLY_MATCHED, M("4000.00"))
    # None pays the smaller of what is due (6,000) and what the line has left (8,000)
    recon.statement_line_settle_invoice(actor=bank.clerk, statement_line=line, invoice=invoice)
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"
    assert fresh(line).reconciled_amount == M("10000.00")


def test_a_payment_line_cannot_settle_an_invoice(bank, sales):  # noqa: F811
    invoice = _invoice(sales, "100.00")
    (line,) = statement(bank, bank.main, [(D(2026, 3, 15), "-100.00")])
    with pytest.raises(ValidationFailed) as caught:
        recon.statement_line_settle_invoice(actor=bank.clerk, statement_line=line, invoice=invoice)
    assert caught.value.code == "sign_mismatch"


def test_settling_into_a_second_bank_account_whose_ledger_account_has_no_role(bank, sales):  # noqa: F811
    invoice = _invoice(sales, "700.00")
    (line,) = statement(bank, bank.second, [(D(2026, 3, 15), "700.00")])
    # invoicing alone refuses the account (it holds no bank role)...
    with pytest.raises(ValidationFailed) as caught:
        invoicing.invoice_payment_record(
            actor=bank.clerk, invoice=invoice, amount="700.00", account=bank.second.ledger_account
        )
    assert caught.value.code == "invalid_account"
    # ...banking vouches for it: it is the ledger account of one of the company's bank accounts
    txn = recon.statement_line_settle_invoice(
        actor=bank.clerk, statement_line=line, invoice=invoice
    )
    assert bank.balance(bank.second.ledger_account) == M("700.00")
    assert txn.bank_account_id == bank.second.pk
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


# --- the database backstop -----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_refuses_accepted_allocations_beyond_the_line_or_transaction(bank):
    txn = deposit(bank, "1000.00", D(2026, 3, 5))
    (line,) = statement(bank, bank.main, [(D(2026, 3, 5), "600.00")])
    recon.reconciliation_match(actor=bank.clerk, statement_line=line, allocations=[(txn, "600.00")])
    (line2,) = statement(bank, bank.main, [(D(2026, 3, 5), "900.00")])

    def raw_match(statement_line, amount, status="accepted"):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO banking_reconciliationmatch (company_id, statement_line_id, "
                "bank_transaction_id, amount, method, confidence, status, created_at) "
                "VALUES (%s, %s, %s, %s, 'manual', 1, %s, now())",
                [bank.company.pk, statement_line.pk, txn.pk, amount, status],
            )

    # the transaction has 400 left: 400.01 more, accepted, goes past its amount
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_match(line2, "400.01")
    # a second accepted allocation on the fully matched line goes past |600|
    with pytest.raises(IntegrityError), transaction.atomic():
        ReconciliationMatch.objects.filter(statement_line=line).update(amount=M("600.01"))
    # suggestions hold nothing back in the database; accepting one by update is checked
    raw_match(line2, "500.00", status="suggested")
    with pytest.raises(IntegrityError), transaction.atomic():
        ReconciliationMatch.objects.filter(statement_line=line2).update(status="accepted")
    # exactly what is left is fine
    ReconciliationMatch.objects.filter(statement_line=line2).update(
        amount=M("400.00"), status="accepted"
    )
    assert ReconciliationMatch.objects.filter(status="accepted").count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_auto_reconcile_writes_with_copy_and_the_caps_hold(bank):
    for k in range(30):
        deposit(bank, f"{100 + k}.00", D(2026, 3, 1 + k % 28), reference=f"R{k}")
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 1 + k % 28), f"{100 + k}.00", {"reference": f"r {k}"}) for k in range(30)],
    )
    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    assert (summary["suggested"], summary["accepted"]) == (30, 30)
    assert not StatementLine.objects.exclude(status=LineStatus.MATCHED).exists()
    assert not BankTransaction.objects.exclude(reconciled_amount=models_amount()).exists()


def models_amount():
    from django.db.models import F

    return F("amount")


# --- review 1: rejected pairs, ambiguity, references far apart -------------------------------


def test_a_rejected_pair_leaves_the_line_for_the_other_deposit(bank):
    wrong = deposit(bank, "500.00", D(2026, 3, 10), counterparty="Acme")
    right = deposit(bank, "500.00", D(2026, 3, 13), counterparty="Acme")
    (line,) = statement(bank, bank.main, [(D(2026, 3, 10), "500.00", {"counterparty": "Acme"})])
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    (first,) = live_matches(line)
    assert first.bank_transaction_id == wrong.pk
    recon.reconciliation_unmatch(actor=bank.clerk, match=first)
    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    (second,) = live_matches(line)
    assert second.bank_transaction_id == right.pk
    assert summary["suggested"] == 1
    assert summary["unmatched_lines"] == 0


def test_a_many_to_one_group_is_never_written_without_its_rejected_member(bank):
    services.banking_settings_update(
        actor=bank.owner, company=bank.company, auto_accept_confidence="0.70"
    )
    a = deposit(bank, "100.00", D(2026, 3, 10))
    b = deposit(bank, "200.00", D(2026, 3, 10))
    (line,) = statement(bank, bank.main, [(D(2026, 3, 11), "300.00")])
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    matches = {m.bank_transaction_id: m for m in live_matches(line)}
    assert set(matches) == {a.pk, b.pk}
    recon.reconciliation_unmatch(actor=bank.clerk, match=matches[a.pk])
    recon.reconciliation_unmatch(actor=bank.clerk, match=matches[b.pk])
    ReconciliationMatch.objects.filter(bank_transaction=b).delete()  # only a's pair rejected
    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    assert live_matches(line) == []
    assert summary["suggested"] == 0
    assert summary["unmatched_lines"] == 1


def test_the_same_day_same_party_line_gets_the_deposit(bank):
    deposit(bank, "500.00", D(2026, 3, 10), counterparty="Acme Ltd")
    early, exact = statement(
        bank,
        bank.main,
        [
            (D(2026, 3, 8), "500.00", {"counterparty": "Other Co"}),
            (D(2026, 3, 10), "500.00", {"counterparty": "Acme Ltd"}),
        ],
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    assert fresh(exact).status == LineStatus.MATCHED
    assert fresh(early).status == LineStatus.UNMATCHED


def test_a_cheque_number_reused_a_year_later_is_not_auto_accepted(bank):
    deposit(bank, "500.00", D(2025, 8, 1), reference="1001")
    (line,) = statement(bank, bank.main, [(D(2026, 6, 1), "500.00", {"reference": "1001"})])
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    (m,) = live_matches(line)
    assert (m.status, m.confidence) == (MatchStatus.SUGGESTED, M("0.6000"))


# --- review 1: the book side is the ledger -------------------------------------------------------


def test_an_invoice_paid_in_invoicing_is_adopted_matched_and_the_variance_clears(
    bank,
    sales,  # noqa: F811
):
    """Review scenario: a 10,000 invoice paid on invoicing's own screen (Dr bank / Cr
    receivable, no bank transaction); the statement shows +10,000. Auto-reconcile adopts the
    ledger entry as a book item and matches it; variance 0, the ledger holds 10,000 once."""
    invoice = _invoice(sales, "10000.00")
    invoicing.invoice_payment_record(
        actor=bank.clerk, invoice=invoice, amount="10000.00", date=D(2026, 3, 15)
    )
    (line,) = statement(
        bank,
        bank.main,
        [(D(2026, 3, 15), "10000.00", {"counterparty": "Dhaka Retail Ltd"})],
        opening="100000.00",
        opening_date=D(2026, 3, 1),
        closing="110000.00",
        closing_date=D(2026, 3, 31),
    )
    # before adoption the report already reads the ledger: the receipt is in the books,
    # not yet carried by a bank transaction
    before = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    assert before["book_balance"] == M("110000.00")
    assert before["ledger_not_adopted"] == M("10000.00")

    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)

    assert summary["adopted_from_ledger"] == 1 and summary["accepted"] == 1
    adopted = BankTransaction.objects.get(source="ledger")
    assert (adopted.kind, adopted.amount, adopted.posting_status) == (
        "deposit",
        M("10000.00"),
        "posted",
    )
    assert fresh(line).status == LineStatus.MATCHED
    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    assert (report["book_balance"], report["statement_closing"]) == (
        M("110000.00"),
        M("110000.00"),
    )
    assert (report["outstanding_deposits"], report["variance"]) == (M("0.00"), M("0.00"))
    assert bank.balance("1131") == M("10000.00")  # once (the opening is not posted)
    # adopting again adds nothing
    assert services.bank_ledger_adopt(bank_account=bank.main) == {"adopted": 0, "reversed": 0}


def test_a_reversed_deposit_and_its_reversal_are_neither_matched_nor_outstanding(bank):
    from accounting import services as ledger

    txn = deposit(bank, "5000.00", D(2026, 3, 5))
    ledger.journal_entry_reverse(
        actor=bank.owner, entry=txn.journal_entry, date=D(2026, 3, 6), reason="posted in error"
    )
    (line,) = statement(bank, bank.main, [(D(2026, 3, 5), "5000.00")])
    summary = recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    assert summary["adopted_from_ledger"] == 1  # the reversal, a 5,000 withdrawal
    assert summary["suggested"] == 0
    assert fresh(line).status == LineStatus.UNMATCHED
    assert set(BankTransaction.objects.values_list("is_reversed", flat=True)) == {True}
    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    # books: 100,000 + 5,000 − 5,000; the bank's +5,000 is an unmatched line, nothing is
    # outstanding: variance +5,000
    assert report["book_balance"] == M("100000.00")
    assert (report["outstanding_deposits"], report["outstanding_payments"]) == (
        M("0.00"),
        M("0.00"),
    )
    assert report["variance"] == M("5000.00")


def test_a_foreign_currency_account_cannot_settle_an_invoice_or_record_a_posted_movement(
    bank,
    sales,  # noqa: F811
):
    from accounting import services as ledger
    from accounting.models import JournalEntry as Entry

    usd_ledger = ledger.account_create(
        actor=bank.owner,
        company=bank.company,
        code="1133",
        name="USD bank",
        type="asset",
        parent=bank.account("1130"),
        is_postable=True,
    )
    usd = services.bank_account_create(
        actor=bank.owner,
        company=bank.company,
        name="USD",
        ledger_account=usd_ledger,
        currency="USD",
        opening_date=D(2025, 7, 1),
    )
    invoice = _invoice(sales, "100.00")
    (line,) = statement(bank, usd, [(D(2026, 3, 15), "100.00")])
    with pytest.raises(ValidationFailed) as caught:
        recon.statement_line_settle_invoice(actor=bank.clerk, statement_line=line, invoice=invoice)
    assert caught.value.code == "foreign_currency"
    assert Invoice.objects.get(pk=invoice.pk).amount_due == M("100.00")
    assert bank.balance("1133") == M("0.00")
    with pytest.raises(ValidationFailed) as caught:
        services.bank_transaction_create_posted(
            actor=bank.clerk,
            bank_account=usd,
            kind="deposit",
            amount="100.00",
            date=D(2026, 3, 15),
            journal_entry=Entry.objects.first(),
        )
    assert caught.value.code == "foreign_currency"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_refuses_live_matches_to_drafts_or_the_other_way(bank):
    out = payment(bank, "100.00", D(2026, 3, 5))
    draft = bank.txn(
        kind="deposit", amount="100.00", date=D(2026, 3, 5), counter_account=bank.account("4200")
    )
    (line,) = statement(bank, bank.main, [(D(2026, 3, 5), "100.00")])

    def raw(txn, status="accepted"):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO banking_reconciliationmatch (company_id, statement_line_id, "
                "bank_transaction_id, amount, method, confidence, status, created_at) "
                "VALUES (%s, %s, %s, 100, 'manual', 1, %s, now())",
                [bank.company.pk, line.pk, txn.pk, status],
            )

    for txn, status in ((out, "accepted"), (draft, "accepted"), (draft, "suggested")):
        with pytest.raises(IntegrityError), transaction.atomic():
            raw(txn, status)
    assert not ReconciliationMatch.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_derives_reconciled_amounts_from_the_matches(bank):
    txn = deposit(bank, "250.00", D(2026, 3, 6))
    (line,) = statement(bank, bank.main, [(D(2026, 3, 6), "250.00")])
    (match,) = recon.reconciliation_match(
        actor=bank.clerk, statement_line=line, allocations=[(txn, None)]
    )
    assert (match.cleared_on, match.booked_on) == (D(2026, 3, 6), D(2026, 3, 6))
    # flipping the match around Python: the amounts follow in the same statement
    ReconciliationMatch.objects.filter(pk=match.pk).update(status="rejected")
    assert (fresh(txn).reconciled_amount, fresh(line).reconciled_amount) == (M("0"), M("0"))
    assert fresh(line).status == LineStatus.UNMATCHED
    ReconciliationMatch.objects.filter(pk=match.pk).update(status="accepted")
    assert (fresh(txn).reconciled_amount, fresh(line).status) == (M("250.00"), "matched")
    # setting them directly is refused
    for attempt in (
        lambda: BankTransaction.objects.filter(pk=txn.pk).update(reconciled_amount=0),
        lambda: StatementLine.objects.filter(pk=line.pk).update(
            reconciled_amount=0, status="unmatched"
        ),
        lambda: StatementLine.objects.filter(pk=line.pk).update(status="partially_matched"),
        lambda: StatementLine.objects.filter(pk=line.pk).update(amount=M("300.00")),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            attempt()
    # deleting the accepted match around Python opens both again
    ReconciliationMatch.objects.filter(pk=match.pk).delete()
    assert (fresh(txn).reconciled_amount, fresh(line).status) == (M("0.00"), "unmatched")
    # ignoring a line stays possible
    StatementLine.objects.filter(pk=line.pk).update(status="ignored")


def test_the_match_window_defaults_agree(bank):
    from banking.matching import MatchConfig
    from banking.models import BankingSettings

    assert services.banking_settings_for(bank.company).match_window_days == 3
    assert BankingSettings._meta.get_field("match_window_days").default == 3
    assert MatchConfig().date_window_days == 3
