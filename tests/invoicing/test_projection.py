"""The read model is a function of the events: random command sequences, then a rebuild must
reproduce the live rows; the ledger stays balanced and receivables equal the open amounts."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounting.models import Account, JournalLine
from accounting.services import account_for_role
from core.errors import DomainError
from invoicing import projection, services
from invoicing.models import Invoice, InvoiceEvent, InvoiceLine, PartyBalance, ProjectionCheckpoint
from invoicing.selectors import receivables_total
from invoicing.tasks import receivables_feed_run

D = Decimal
START = date(2025, 8, 1)

prices = st.sampled_from(["10.05", "0.99", "100.00", "1234.56", "3.33"])
qtys = st.sampled_from(["1", "2", "3", "0.5", "7"])
codes = st.sampled_from(["VAT15", "VAT5", "VAT7.5", "EXEMPT", "ZERO", "SPECIFIC"])
line_st = st.fixed_dictionaries(
    {
        "description": st.just("Goods"),
        "quantity": qtys,
        "unit_price": prices,
        "vat_rate": codes,
        "sd_rate": st.sampled_from(["0", "0", "10", "20"]),
    }
)
lines_st = st.lists(line_st, min_size=0, max_size=3)
fraction = st.sampled_from([D("0.25"), D("0.5"), D(1), D("1.01")])
command = st.one_of(
    st.tuples(st.just("draft"), lines_st, st.booleans()),
    st.tuples(st.just("edit"), st.integers(0, 9), lines_st),
    st.tuples(st.just("approve"), st.integers(0, 9)),
    st.tuples(st.just("pay"), st.integers(0, 9), fraction, st.booleans()),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("credit"), st.integers(0, 9), fraction),
    st.tuples(st.just("debit"), st.integers(0, 9)),
    st.tuples(st.just("overdue"), st.integers(0, 120)),
)


def run(sales, commands):
    invoices: list[int] = []

    def pick(i):
        return Invoice.objects.get(pk=invoices[i % len(invoices)]) if invoices else None

    for cmd in commands:
        kind = cmd[0]
        try:
            if kind == "draft":
                customer = sales.withholding if cmd[2] else sales.customer
                invoices.append(
                    services.invoice_create_draft(
                        actor=sales.clerk,
                        company=sales.company,
                        customer=customer,
                        lines=cmd[1],
                        issue_date=START,
                    ).pk
                )
                continue
            inv = pick(cmd[1]) if kind != "overdue" else None
            if inv is None and kind != "overdue":
                continue
            if kind == "edit":
                services.invoice_edit_draft(
                    actor=sales.clerk, invoice=inv, lines=cmd[2], expected_version=inv.version
                )
            elif kind == "approve":
                services.invoice_approve(actor=sales.clerk, invoice=inv)
            elif kind == "pay":
                amount = (inv.amount_due * cmd[2]).quantize(D("0.01"))
                withheld = min(inv.vds_amount, amount) if cmd[3] else D(0)
                services.invoice_payment_record(
                    actor=sales.clerk,
                    invoice=inv,
                    amount=str(amount - withheld),
                    vds_withheld=str(withheld),
                    date=START + timedelta(days=3),
                )
            elif kind == "void":
                services.invoice_void(actor=sales.clerk, invoice=inv, reason="test")
            elif kind == "credit":
                value = (inv.amount_due * cmd[2] / D("1.15")).quantize(D("0.01"))
                services.credit_note_issue(
                    actor=sales.clerk,
                    invoice=inv,
                    reason="Return",
                    issue_date=START,
                    lines=[
                        {
                            "description": "Return",
                            "quantity": "1",
                            "unit_price": str(value),
                            "vat_rate": "VAT15",
                        }
                    ],
                )
            elif kind == "debit":
                services.debit_note_issue(
                    actor=sales.clerk,
                    invoice=inv,
                    reason="Extra",
                    issue_date=START,
                    lines=[
                        {
                            "description": "Extra",
                            "quantity": "1",
                            "unit_price": "9.99",
                            "vat_rate": "VAT15",
                            "sd_rate": "10",
                        }
                    ],
                )
            elif kind == "overdue":
                for pk in invoices:
                    services.invoice_mark_overdue(
                        invoice=Invoice.objects.get(pk=pk), today=START + timedelta(days=cmd[1])
                    )
        except DomainError:
            pass  # refusals are part of the game; they must leave no trace


def check_invariants(company):
    live = projection.invoice_snapshot(Invoice.objects.filter(company=company))
    projection.projections_rebuild(company=company)
    rebuilt = projection.invoice_snapshot(Invoice.objects.filter(company=company))
    assert rebuilt == live
    # every entry balances, and the books balance overall
    lines = JournalLine.objects.filter(entry__company=company)
    for entry_id, dr, cr in (
        lines.values("entry_id")
        .annotate(dr=Sum("debit"), cr=Sum("credit"))
        .values_list("entry_id", "dr", "cr")
    ):
        assert dr == cr, entry_id
    # accounts receivable equals the open amounts of the read model
    ar = account_for_role(company=company, role="accounts_receivable")
    totals = lines.filter(account=ar).aggregate(dr=Sum("debit"), cr=Sum("credit"))
    balance = (totals["dr"] or 0) - (totals["cr"] or 0)
    assert balance == receivables_total(company)
    # each invoice's figures add up
    for inv in Invoice.objects.filter(company=company, kind="invoice").exclude(status="void"):
        assert (
            inv.amount_due
            == (inv.total_amount + inv.debited_amount - inv.credited_amount - inv.amount_paid)
            or inv.status == "draft"
        )
        assert inv.amount_due >= 0
        agg = InvoiceLine.objects.filter(invoice=inv).aggregate(v=Sum("value"), t=Sum("total"))
        assert (agg["v"] or 0) == inv.total_value and (agg["t"] or 0) == inv.total_amount


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands=st.lists(command, min_size=1, max_size=20))
def test_random_command_sequences_rebuild_to_the_live_rows(sales, commands):
    with transaction.atomic():
        run(sales, commands)
        check_invariants(sales.company)
        transaction.set_rollback(True)


def test_rebuild_after_the_read_model_was_damaged_restores_it(sales):
    inv = sales.approved(sales.line(), sales.line(quantity="2"))
    services.invoice_payment_record(
        actor=sales.clerk, invoice=inv, amount="50.00", date="2025-08-12"
    )
    services.credit_note_issue(
        actor=sales.clerk,
        invoice=inv,
        reason="Return",
        lines=[sales.line(unit_price="10.00")],
        issue_date="2025-08-12",
    )
    live = projection.invoice_snapshot(Invoice.objects.filter(company=sales.company))
    Invoice.objects.filter(pk=inv.pk).update(total_amount=0, status="draft")
    InvoiceLine.objects.filter(invoice=inv).delete()
    with pytest.raises(CommandError):
        call_command("rebuild_invoice_projections", "--company", "alpha", "--check")
    call_command("rebuild_invoice_projections", "--company", "alpha")
    assert projection.invoice_snapshot(Invoice.objects.filter(company=sales.company)) == live
    call_command("rebuild_invoice_projections", "--check")  # every company matches now
    with pytest.raises(CommandError, match="no company"):
        call_command("rebuild_invoice_projections", "--company", "nope")


@pytest.mark.django_db(transaction=True)
def test_receivables_feed_folds_the_log_behind_its_checkpoint(sales):
    a = sales.approved({"item": sales.service.pk, "quantity": "1"})  # 1725.00
    sales.approved()  # 115.00
    w = sales.approved({"item": sales.service.pk, "quantity": "2"}, customer=sales.withholding)
    assert receivables_feed_run() > 0
    services.invoice_payment_record(
        actor=sales.clerk, invoice=a, amount="725.00", date="2025-08-20"
    )
    services.invoice_payment_record(
        actor=sales.clerk, invoice=w, amount="3000.00", vds_withheld="450.00", date="2025-08-20"
    )
    services.credit_note_issue(
        actor=sales.clerk,
        invoice=a,
        reason="Discount",
        lines=[sales.line(unit_price="100.00")],
        issue_date="2025-08-21",
    )
    handled = receivables_feed_run(batch=2)  # small batches: the checkpoint moves each time
    assert handled == 4  # payment, payment, credit applied, note issued
    assert receivables_feed_run() == 0  # nothing twice
    balances = dict(PartyBalance.objects.values_list("party_id", "balance"))
    # customer: 1,725.00 - 725.00 paid - 115.00 credited + 115.00 second invoice
    assert balances == {sales.customer.pk: D("1000.00"), sales.withholding.pk: D("0.00")}
    for party_id, balance in balances.items():
        due = Invoice.objects.filter(customer_id=party_id, kind="invoice").aggregate(
            s=Sum("amount_due")
        )["s"]
        assert balance == due
    checkpoint = ProjectionCheckpoint.objects.get(name="invoicing.receivables_feed")
    assert checkpoint.position == InvoiceEvent.objects.order_by("-id").first().id


def test_no_account_codes_are_hard_coded(sales):
    """Postings follow the role map: remap receivables and approval posts to the new account."""
    from accounting.services import account_create, account_role_set

    new_ar = account_create(
        actor=sales.owner,
        company=sales.company,
        code="1290",
        name="Trade receivables (new)",
        type="asset",
    )
    account_role_set(
        actor=sales.owner, company=sales.company, role="accounts_receivable", account=new_ar
    )
    inv = sales.approved()
    assert JournalLine.objects.filter(entry=inv.journal_entry, account=new_ar).get().debit == D(
        "115.00"
    )
    assert Account.objects.get(pk=new_ar.pk).code == "1290"
