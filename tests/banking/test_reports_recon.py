"""The monthly bank reconciliation report and the variance report, with figures to check by
hand. Main bank account: opening balance 100,000.00 on 2025-07-01 (books and bank alike).

The form (banking.reconciliation._figures):
    variance = (statement closing + outstanding deposits − outstanding payments) − book balance
"""

from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from banking import reconciliation as recon
from banking import services
from banking.alerts import variance_alerts_total
from banking.models import BankReconciliation, ReconciliationStatus
from core.errors import ConflictError
from core.models import AuditEvent
from tests.banking.recon_helpers import statement
from tests.banking.test_reconciliation import deposit, payment

D = date
M = Decimal


def march(bank):
    """March 2026 on the main account, built so the variance is nil:

    books:     100,000 + 30,000 (matched) + 8,000 (Mar 30, not on the statement)
               − 15,000 (matched) − 3,000 (cheque of Mar 31, not presented)   = 120,000
    statement: 100,000 + 30,000 − 15,000                                       = 115,000
    variance:  115,000 + 8,000 − 3,000 − 120,000                               =       0
    """
    received = deposit(bank, "30000.00", D(2026, 3, 3), reference="DEP-1")
    paid = payment(bank, "15000.00", D(2026, 3, 10), reference="CHQ-101")
    in_transit = deposit(bank, "8000.00", D(2026, 3, 30), reference="DEP-2")
    cheque = payment(bank, "3000.00", D(2026, 3, 31), reference="CHQ-102")
    lines = statement(
        bank,
        bank.main,
        [
            (D(2026, 3, 3), "30000.00", {"reference": "DEP-1"}),
            (D(2026, 3, 11), "-15000.00", {"reference": "CHQ-101"}),
        ],
        opening="100000.00",
        opening_date=D(2026, 3, 1),
        closing="115000.00",
        closing_date=D(2026, 3, 31),
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    return received, paid, in_transit, cheque, lines


def test_outstanding_items_explain_the_difference_and_the_variance_is_nil(bank):
    received, paid, in_transit, cheque, _lines = march(bank)

    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")

    assert report["statement_opening"] == M("100000.00")
    assert report["statement_closing"] == M("115000.00")
    assert report["book_balance"] == M("120000.00")
    assert report["outstanding_deposits"] == M("8000.00")
    assert report["outstanding_payments"] == M("3000.00")
    assert report["adjusted_statement_balance"] == M("120000.00")
    assert report["variance"] == M("0.00")
    assert report["status"] == ReconciliationStatus.OPEN and report["within_threshold"] is True
    assert [i["id"] for i in report["outstanding_deposit_items"]] == [in_transit.pk]
    assert [i["id"] for i in report["outstanding_payment_items"]] == [cheque.pk]
    assert report["unmatched_lines"] == [] and report["unmatched_statement_lines"] == 0
    row = BankReconciliation.objects.get(bank_account=bank.main, period=D(2026, 3, 1))
    assert (row.statement_closing, row.book_balance, row.variance, row.threshold) == (
        M("115000.00"),
        M("120000.00"),
        M("0.00"),
        M("1000.00"),
    )


def test_an_unbooked_bank_fee_is_a_variance_above_the_threshold(bank):
    march(bank)
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 31), "-1500.00", {"description": "Service charge"})],
        closing="113500.00",
        closing_date=D(2026, 3, 31),
    )

    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")

    # 113,500 + 8,000 − 3,000 − 120,000 = −1,500: the bank took a fee the books lack
    assert report["statement_closing"] == M("113500.00")
    assert report["variance"] == M("-1500.00")
    assert report["status"] == ReconciliationStatus.EXCEEDS_THRESHOLD  # |−1,500| > 1,000
    assert report["within_threshold"] is False
    assert [(u["amount"], u["unmatched"]) for u in report["unmatched_lines"]] == [
        (M("-1500.00"), M("1500.00"))
    ]
    assert report["unmatched_paid"] == M("1500.00")
    assert len(mail.outbox) == 0  # 1,500 is below the 5,000 alert threshold

    # booking the fee from the line closes the gap
    (fee_line,) = report["unmatched_lines"]
    recon.statement_line_create_transaction(
        actor=bank.clerk, statement_line=fee_line["id"], kind="fee"
    )
    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    assert (report["book_balance"], report["variance"]) == (M("118500.00"), M("0.00"))
    assert report["status"] == ReconciliationStatus.OPEN


def test_a_variance_above_the_alert_threshold_sends_one_email(
    bank, django_capture_on_commit_callbacks
):
    march(bank)
    # an unbooked receipt of 6,000 on the statement: variance +6,000 (above 5,000)
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 28), "6000.00", {"counterparty": "Unknown payer"})],
        closing="121000.00",
        closing_date=D(2026, 3, 31),
    )
    bank.owner.email = "owner@alpha.example"
    bank.owner.save()
    bank.accountant.email = "accounts@alpha.example"
    bank.accountant.save()
    bank.clerk.email = "clerk@alpha.example"  # a clerk is not told
    bank.clerk.save()
    services.banking_settings_update(
        actor=bank.owner, company=bank.company, alert_recipients="cfo@alpha.example"
    )
    before = variance_alerts_total._value.get()

    with django_capture_on_commit_callbacks(execute=True):
        report = recon.reconciliation_refresh(bank_account=bank.main, period="2026-03")
    assert report["variance"] == M("6000.00")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == [
        "accounts@alpha.example",
        "cfo@alpha.example",
        "owner@alpha.example",
    ]
    assert "6000.00" in message.subject and "March 2026" in message.subject
    assert variance_alerts_total._value.get() == before + 1
    assert AuditEvent.objects.filter(action="banking.reconciliation.variance_alert").count() == 1

    # refreshing again, same figure: no second alert
    with django_capture_on_commit_callbacks(execute=True):
        recon.reconciliation_refresh(bank_account=bank.main, period="2026-03")
    assert len(mail.outbox) == 1
    assert variance_alerts_total._value.get() == before + 1

    # a different figure is a new alert
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 29), "500.00")],
        closing="121500.00",
        closing_date=D(2026, 3, 31),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert recon.reconciliation_refresh(bank_account=bank.main, period="2026-03")[
            "variance"
        ] == M("6500.00")
    assert len(mail.outbox) == 2


def test_no_email_when_the_report_rolls_back(bank, django_capture_on_commit_callbacks):
    march(bank)
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 28), "6000.00")],
        closing="121000.00",
        closing_date=D(2026, 3, 31),
    )
    bank.owner.email = "owner@alpha.example"
    bank.owner.save()
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                recon.reconciliation_refresh(bank_account=bank.main, period="2026-03")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == [] and mail.outbox == []


def test_a_deposit_cleared_next_month_is_outstanding_at_the_end_of_this_one_only(bank):
    _received, _paid, in_transit, cheque, _lines = march(bank)
    # April: the bank credits the 8,000 on Apr 2 and pays the cheque on Apr 3
    statement(
        bank,
        bank.main,
        [
            (D(2026, 4, 2), "8000.00", {"reference": "DEP-2"}),
            (D(2026, 4, 3), "-3000.00", {"reference": "CHQ-102"}),
        ],
        opening="115000.00",
        opening_date=D(2026, 4, 1),
        closing="120000.00",
        closing_date=D(2026, 4, 30),
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)

    march_report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    april = recon.reconciliation_report(bank_account=bank.main, period="2026-04")

    assert (march_report["outstanding_deposits"], march_report["outstanding_payments"]) == (
        M("8000.00"),
        M("3000.00"),
    )
    assert march_report["variance"] == M("0.00")
    assert (april["statement_opening"], april["statement_closing"]) == (
        M("115000.00"),
        M("120000.00"),
    )
    assert (april["outstanding_deposits"], april["outstanding_payments"]) == (M("0.00"), M("0.00"))
    assert (april["book_balance"], april["variance"]) == (M("120000.00"), M("0.00"))


def test_without_imported_balances_the_statement_is_built_from_the_lines(bank):
    deposit(bank, "250.00", D(2026, 5, 6))
    statement(bank, bank.main, [(D(2026, 5, 6), "250.00"), (D(2026, 5, 20), "-40.00")])
    report = recon.reconciliation_report(bank_account=bank.main, period=D(2026, 5, 17))
    # statement: opening 100,000 + 250 − 40; books 100,250. Nothing matched yet, so the 250
    # is both an outstanding deposit and an unmatched line: 100,210 + 250 − 100,250 = +210
    assert report["period"] == D(2026, 5, 1)
    assert report["statement_opening"] == M("100000.00")
    assert report["statement_closing"] == M("100210.00")
    assert report["book_balance"] == M("100250.00")
    assert report["outstanding_deposits"] == M("250.00")
    assert report["variance"] == M("210.00")
    assert report["unmatched_statement_lines"] == 2
    # matched, only the unbooked −40 remains
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    report = recon.reconciliation_report(bank_account=bank.main, period="2026-05")
    assert (report["outstanding_deposits"], report["variance"]) == (M("0.00"), M("-40.00"))
    assert report["unmatched_statement_lines"] == 1


def test_no_statement_yet_means_no_variance(bank):
    report = recon.reconciliation_report(bank_account=bank.second, period="2026-05")
    assert report["statement_closing"] is None and report["variance"] is None
    assert report["status"] == ReconciliationStatus.OPEN


def test_close_signs_the_month_off_within_threshold_only(bank):
    march(bank)
    row = recon.reconciliation_close(
        actor=bank.accountant, bank_account=bank.main, period="2026-03"
    )
    assert (row.status, row.reconciled_by) == (ReconciliationStatus.RECONCILED, bank.accountant)
    assert (
        recon.reconciliation_report(bank_account=bank.main, period="2026-03")["status"]
        == "reconciled"
    )

    statement(
        bank,
        bank.main,
        [(D(2026, 3, 31), "-1500.00")],
        closing="113500.00",
        closing_date=D(2026, 3, 31),
    )
    assert recon.reconciliation_report(bank_account=bank.main, period="2026-03")["status"] == (
        ReconciliationStatus.EXCEEDS_THRESHOLD
    )
    with pytest.raises(ConflictError) as caught:
        recon.reconciliation_close(actor=bank.accountant, bank_account=bank.main, period="2026-03")
    assert caught.value.code == "variance_exceeds_threshold"


def test_variance_report_month_by_month(bank):
    march(bank)
    statement(
        bank,
        bank.main,
        [(D(2026, 4, 30), "-1500.00")],
        closing="113500.00",
        closing_date=D(2026, 4, 30),
    )

    report = recon.variance_report(bank_account=bank.main, period="2026-04", months=3)

    assert [p["period"] for p in report["periods"]] == [D(2026, 2, 1), D(2026, 3, 1), D(2026, 4, 1)]
    assert [p["variance"] for p in report["periods"]] == [M("0.00"), M("0.00"), M("-1500.00")]
    assert [p["status"] for p in report["periods"]] == ["open", "open", "exceeds_threshold"]
    assert report["threshold"] == M("1000.00") and report["alert_threshold"] == M("5000.00")
    assert not BankReconciliation.objects.filter(period=D(2026, 4, 1)).exists()  # read only


def test_the_report_runs_a_fixed_number_of_queries_whatever_the_history(bank):
    march(bank)

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            recon.reconciliation_report(bank_account=bank.main, period="2026-03")
        return len(ctx.captured_queries)

    queries()
    small = queries()
    for day in range(1, 29):  # a month of February history: matched, outstanding, unmatched
        deposit(bank, "10.00", D(2026, 2, day))
        deposit(bank, f"{day}.01", D(2026, 2, day))
    statement(
        bank,
        bank.main,
        [(D(2026, 2, day), "10.00") for day in range(1, 29)]
        + [(D(2026, 2, day), f"-{day}.02") for day in range(1, 29)],
    )
    recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    assert len(report["outstanding_deposit_items"]) == 1 + 28
    assert report["unmatched_statement_lines"] == 28
    assert small <= 18 and queries() <= 18  # no query per outstanding item or line


# --- review 1: the report is read-only; the alert comes from auto-reconcile and a daily task --


def _unbooked_receipt(bank):
    march(bank)
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 28), "6000.00", {"counterparty": "Unknown payer"})],
        closing="121000.00",
        closing_date=D(2026, 3, 31),
    )
    bank.owner.email = "owner@alpha.example"
    bank.owner.save()


def test_viewing_the_report_writes_nothing_and_alerts_nobody(
    bank, django_capture_on_commit_callbacks
):
    _unbooked_receipt(bank)
    BankReconciliation.objects.all().delete()
    audits = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    assert report["variance"] == M("6000.00")
    assert report["status"] == ReconciliationStatus.EXCEEDS_THRESHOLD
    assert report["reconciliation_id"] is None
    assert not BankReconciliation.objects.exists()
    assert AuditEvent.objects.count() == audits
    assert callbacks == [] and mail.outbox == []


def test_auto_reconcile_stores_the_month_and_raises_the_alert_after_commit(
    bank, django_capture_on_commit_callbacks
):
    _unbooked_receipt(bank)
    before = variance_alerts_total._value.get()
    with django_capture_on_commit_callbacks(execute=True):
        recon.reconciliation_auto(company=bank.company, bank_account=bank.main)
    row = BankReconciliation.objects.get(bank_account=bank.main, period=D(2026, 3, 1))
    assert (row.variance, row.status) == (M("6000.00"), ReconciliationStatus.EXCEEDS_THRESHOLD)
    assert len(mail.outbox) == 1 and "6000.00" in mail.outbox[0].subject
    assert variance_alerts_total._value.get() == before + 1


def test_the_daily_task_refreshes_open_months_and_raises_the_alert(
    bank, django_capture_on_commit_callbacks, monkeypatch
):
    from banking import tasks

    _unbooked_receipt(bank)
    monkeypatch.setattr(type(bank.company), "today", lambda self: D(2026, 4, 15))
    with django_capture_on_commit_callbacks(execute=True):
        refreshed = tasks.refresh_reconciliations.apply().get()
    assert refreshed >= 2  # March and April of the main account at least
    assert BankReconciliation.objects.get(
        bank_account=bank.main, period=D(2026, 3, 1)
    ).variance == (M("6000.00"))
    # April carries the same unbooked 6,000 (no April statement yet): one alert per month
    assert sorted(m.subject.split(", ")[-1] for m in mail.outbox) == ["April 2026", "March 2026"]
    with django_capture_on_commit_callbacks(execute=True):
        tasks.refresh_reconciliations.apply().get()
    assert len(mail.outbox) == 2  # same figures: quiet


def test_the_refresh_is_declared_as_a_daily_beat_entry(db):
    from django_celery_beat.models import PeriodicTask

    from banking.tasks import REFRESH_SCHEDULE_NAME, REFRESH_TASK, declare_schedules

    declare_schedules()
    entry = PeriodicTask.objects.get(name=REFRESH_SCHEDULE_NAME)
    assert entry.task == REFRESH_TASK and entry.crontab is not None


def test_a_signed_off_month_whose_figures_change_is_reopened_with_an_audit_event(bank):
    march(bank)
    recon.reconciliation_close(actor=bank.accountant, bank_account=bank.main, period="2026-03")
    # a 500 fee appears on the March statement after sign-off
    statement(
        bank,
        bank.main,
        [(D(2026, 3, 31), "-500.00")],
        closing="114500.00",
        closing_date=D(2026, 3, 31),
    )
    report = recon.reconciliation_report(bank_account=bank.main, period="2026-03")
    assert (report["variance"], report["status"]) == (M("-500.00"), ReconciliationStatus.OPEN)
    recon.reconciliation_refresh(bank_account=bank.main, period="2026-03")
    row = BankReconciliation.objects.get(bank_account=bank.main, period=D(2026, 3, 1))
    assert (row.status, row.reconciled_at, row.variance) == (
        ReconciliationStatus.OPEN,
        None,
        M("-500.00"),
    )
    assert AuditEvent.objects.filter(action="banking.reconciliation.reopen").count() == 1
