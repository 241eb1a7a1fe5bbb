"""The banking API as an integrator uses it: CRUD through the services, post-accounting
(idempotent, 409 on a changed posted transaction), statement upload, reconciliation matches and
the six endpoints from the banking guide, with 400/404/409 answered in the one error shape.

Figures: Main opens 2025-07-01 with 100,000.00. In August 2026 it receives 12,500.00 (RCPT-1)
and 3,000.00 (RCPT-2), pays 4,200.00 rent (CHQ-77) and a 150.00 bank fee; the book balance at
2026-08-31 is 100,000.00 + 12,500.00 + 3,000.00 - 4,200.00 - 150.00 = 111,150.00.
"""

from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounting.models import JournalLine
from banking import services
from banking.models import (
    BankTransaction,
    PostingStatus,
    ReconciliationMatch,
    StatementImport,
    StatementLine,
)
from tests.invoicing.conftest import sales  # noqa: F401  (the fixture, reused)

D = date
pytestmark = pytest.mark.django_db
BASE = "/api/v1/banking"

CSV_MAPPING = {
    "date": "Date",
    "amount": "Amount",
    "reference": "Reference",
    "description": "Text",
    "date_format": "%d/%m/%Y",
}
AUGUST_CSV = (
    b"Date,Reference,Text,Amount\n"
    b"05/08/2026,RCPT-1,Customer receipt,12500.00\n"
    b"12/08/2026,CHQ-77,Rent August,-4200.00\n"
    b"31/08/2026,,Monthly fee,-150.00\n"
    b"31/08/2026,,SMS alert charges,-25.00\n"
)
BROKEN_CSV = (
    b"Date,Reference,Text,Amount\n"
    b"05/08/2026,RCPT-1,Customer receipt,12500.00\n"
    b"12/08/2026,CHQ-77,Rent August,twelve\n"
)


def _camt(iban: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-08-31T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id><CreDtTm>2026-08-31T18:00:00</CreDtTm>
<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>BDT</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="BDT">100000.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-08-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="BDT">112500.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-08-31</Dt></Dt></Bal>
<Ntry><Amt Ccy="BDT">12500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-08-05</Dt></BookgDt><AcctSvcrRef>X-1</AcctSvcrRef></Ntry>
</Stmt></BkToCstmrStmt></Document>""".encode()


@pytest.fixture
def august(bank):
    """Main's August 2026, posted, with the CSV mapping saved on the account."""
    services.bank_account_update(
        actor=bank.owner, bank_account=bank.main, statement_mapping=CSV_MAPPING
    )
    revenue = bank.account("4200")
    rent = bank.account("6200")
    made = {
        "rcpt1": bank.txn(kind="deposit", amount="12500.00", date=D(2026, 8, 5),
                          reference="RCPT-1", counter_account=revenue, post=True, **bank.dims),
        "rcpt2": bank.txn(kind="deposit", amount="3000.00", date=D(2026, 8, 20),
                          reference="RCPT-2", counter_account=revenue, post=True, **bank.dims),
        "rent": bank.txn(kind="withdrawal", amount="4200.00", date=D(2026, 8, 12),
                         reference="CHQ-77", counter_account=rent, post=True, **bank.dims),
        "fee": bank.txn(kind="fee", amount="150.00", date=D(2026, 8, 31), post=True),
    }  # fmt: skip
    bank.main.refresh_from_db()
    return made


def _foreign_account(bank):
    """Company B's own bank account (B keeps books in USD)."""
    from accounting.services import account_for_role

    b = bank.tenants.b
    return services.bank_account_create(
        actor=bank.tenants.owner_b,
        company=b,
        name="Beta operating",
        ledger_account=account_for_role(company=b, role="bank"),
    )


def _upload(client, account, content, name="august.csv", **extra):
    return client.post(
        f"{BASE}/imports/",
        {"bank_account": account.pk, "file": SimpleUploadedFile(name, content), **extra},
        format="multipart",
    )


# --- accounts and transactions -----------------------------------------------------------------


def test_bank_accounts_are_created_listed_and_changed_through_the_service(bank, api):
    client = api(bank.owner, bank.company)
    ledger = bank.account("1150")  # bank clearing: a postable asset without a bank account yet
    created = client.post(
        f"{BASE}/accounts/",
        {
            "name": "Payroll account",
            "ledger_account": ledger.pk,
            "iban": "gb29 nwbk 6016 1331 9268 19",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["iban"] == "GB29NWBK60161331926819"
    assert body["currency"] == "BDT"
    names = [row["name"] for row in client.get(f"{BASE}/accounts/").json()["results"]]
    assert names == ["Main", "Payroll account", "Second"]

    changed = client.patch(
        f"{BASE}/accounts/{body['id']}/", {"statement_mapping": CSV_MAPPING}, format="json"
    )
    assert changed.status_code == 200
    assert changed.json()["statement_mapping"]["date_format"] == "%d/%m/%Y"


def test_a_bad_csv_mapping_is_refused_naming_the_field(bank, api):
    response = api(bank.owner, bank.company).patch(
        f"{BASE}/accounts/{bank.main.pk}/",
        {"statement_mapping": {"amount": "Amount"}},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "statement_mapping" in body["fields"]
    assert "date" in body["message"]


def test_post_accounting_answers_the_entry_and_is_idempotent(bank, api):
    client = api(bank.clerk, bank.company)
    created = client.post(
        f"{BASE}/transactions/",
        {
            "bank_account": bank.main.pk,
            "kind": "deposit",
            "amount": "12500.00",
            "date": "2026-08-05",
            "reference": "RCPT-1",
            "counter_account": bank.account("4200").pk,
            "cost_center": bank.cost_center.pk,
            "project": bank.project.pk,
            "department": bank.department.pk,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    txn = created.json()
    assert (txn["direction"], txn["posting_status"], txn["version"]) == ("in", "draft", 1)

    first = client.post(f"{BASE}/transactions/{txn['id']}/post-accounting/")
    assert first.status_code == 200, first.content
    posted = first.json()
    assert posted["posting_status"] == "posted"
    assert posted["replayed"] is False
    assert posted["journal_entry_reference"]
    lines = JournalLine.objects.filter(entry_id=posted["journal_entry_id"])
    assert sorted((line.account.code, line.debit, line.credit) for line in lines) == [
        ("1131", Decimal("12500.00"), Decimal("0.00")),
        ("4200", Decimal("0.00"), Decimal("12500.00")),
    ]
    assert {(line.cost_center_id, line.project_id, line.department_id) for line in lines} == {
        (bank.cost_center.pk, bank.project.pk, bank.department.pk)
    }

    # the guide's spelling, without the trailing slash, answers the same
    again = client.post(f"{BASE}/transactions/{txn['id']}/post-accounting")
    assert again.status_code == 200
    assert again.json()["journal_entry_id"] == posted["journal_entry_id"]
    assert again.json()["replayed"] is True
    assert lines.count() == 2


def test_a_posted_transaction_cannot_change_or_go(bank, api, august):
    client = api(bank.accountant, bank.company)
    rent = august["rent"]
    changed = client.patch(
        f"{BASE}/transactions/{rent.pk}/", {"amount": "4300.00", "expected_version": rent.version},
        format="json",
    )  # fmt: skip
    assert changed.status_code == 409
    assert changed.json()["code"] == "already_posted"
    assert client.delete(f"{BASE}/transactions/{rent.pk}/").json()["code"] == "already_posted"
    rent.refresh_from_db()
    assert rent.amount == Decimal("4200.00")


def test_a_stale_version_is_refused_from_the_body_or_if_match(bank, api):
    client = api(bank.clerk, bank.company)
    txn = bank.txn(kind="fee", amount="10.00", date=D(2026, 8, 3))
    first = client.patch(
        f"{BASE}/transactions/{txn.pk}/", {"amount": "12.00", "expected_version": 1}, format="json"
    )
    assert first.status_code == 200, first.content
    assert first.json()["version"] == 2
    stale = client.patch(
        f"{BASE}/transactions/{txn.pk}/", {"amount": "13.00"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    post = client.post(
        f"{BASE}/transactions/{txn.pk}/post-accounting/", {"expected_version": 1}, format="json"
    )
    assert post.status_code == 409
    txn.refresh_from_db()
    assert (txn.amount, txn.posting_status) == (Decimal("12.00"), PostingStatus.DRAFT)


def test_transactions_filter_by_account_status_kind_date_and_dimension(bank, api, august):
    bank.txn(account=bank.second, kind="interest", amount="80.00", date=D(2026, 8, 31))
    client = api(bank.auditor, bank.company)

    def ids(**query):
        return {row["id"] for row in client.get(f"{BASE}/transactions/", query).json()["results"]}

    assert ids(bank_account=bank.main.pk) == {t.pk for t in august.values()}
    assert ids(posting_status="draft") == set(
        BankTransaction.objects.filter(posting_status="draft").values_list("pk", flat=True)
    )
    assert ids(kind="fee") == {august["fee"].pk}
    assert ids(cost_center=bank.cost_center.pk) == {
        august["rcpt1"].pk, august["rcpt2"].pk, august["rent"].pk
    }  # fmt: skip
    assert ids(date_from="2026-08-13", date_to="2026-08-30") == {august["rcpt2"].pk}


def test_the_auditor_reads_but_cannot_write(bank, api, august):
    client = api(bank.auditor, bank.company)
    assert client.get(f"{BASE}/transactions/").status_code == 200
    draft = bank.txn(kind="fee", amount="5.00", date=D(2026, 8, 2))
    for response in (
        client.post(f"{BASE}/transactions/{draft.pk}/post-accounting/"),
        client.post(f"{BASE}/transactions/", {"bank_account": bank.main.pk}, format="json"),
        _upload(client, bank.main, AUGUST_CSV),
        client.post(
            f"{BASE}/reconciliation-matches/auto-reconcile/",
            {"bank_account": bank.main.pk},
            format="json",
        ),  # fmt: skip
    ):
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "role_forbidden"
    draft.refresh_from_db()
    assert draft.posting_status == PostingStatus.DRAFT
    assert not StatementImport.objects.exists()


# --- statement upload --------------------------------------------------------------------------


def test_a_csv_statement_is_uploaded_with_the_accounts_mapping_and_not_twice(bank, api, august):
    client = api(bank.clerk, bank.company)
    first = _upload(client, bank.main, AUGUST_CSV)
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["format"], body["line_count"], body["new_line_count"]) == ("csv", 4, 4)
    assert body["replayed"] is False
    amounts = sorted(
        StatementLine.objects.filter(bank_account=bank.main).values_list("amount", flat=True)
    )
    assert amounts == [
        Decimal("-4200.00"),
        Decimal("-150.00"),
        Decimal("-25.00"),
        Decimal("12500.00"),
    ]

    again = _upload(client, bank.main, AUGUST_CSV, name="august-again.csv")
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["id"] == body["id"]
    assert StatementLine.objects.count() == 4

    lines = client.get(f"{BASE}/statement-lines/", {"bank_account": bank.main.pk})
    assert lines.status_code == 200
    assert len(lines.json()["results"]) == 4
    assert client.post(f"{BASE}/statement-lines/", {}, format="json").status_code == 405


def test_a_broken_statement_is_refused_naming_the_line_and_nothing_is_imported(bank, api, august):
    response = _upload(api(bank.clerk, bank.company), bank.main, BROKEN_CSV)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_statement"
    assert "twelve" in body["message"] and "line" in body["message"]
    assert not StatementImport.objects.exists()
    assert not StatementLine.objects.exists()


def test_a_statement_of_another_account_is_refused(bank, api):
    response = _upload(
        api(bank.clerk, bank.company), bank.main, _camt("GB29NWBK60161331926819"), name="s.xml"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "account_mismatch"
    assert not StatementLine.objects.exists()


def test_an_upload_needs_a_file_and_an_account_of_the_company(bank, api):
    client = api(bank.clerk, bank.company)
    missing = client.post(f"{BASE}/imports/", {"bank_account": bank.main.pk}, format="multipart")
    assert missing.status_code == 400
    assert "file" in missing.json()["fields"]
    foreign = _foreign_account(bank)
    response = _upload(client, foreign, AUGUST_CSV)
    assert response.status_code == 400
    assert "bank_account" in response.json()["fields"]


# --- reconciliation matches --------------------------------------------------------------------


def test_match_unmatch_and_auto_reconcile(bank, api, august):
    client = api(bank.accountant, bank.company)
    assert _upload(client, bank.main, AUGUST_CSV).status_code == 201
    ReconciliationMatch.objects.all().delete()  # whatever the queued auto-match suggested
    StatementLine.objects.update(reconciled_amount=0, status="unmatched")
    BankTransaction.objects.update(reconciled_amount=0)
    rent_line = StatementLine.objects.get(amount=Decimal("-4200.00"))

    matched = client.post(
        f"{BASE}/reconciliation-matches/",
        {"statement_line": rent_line.pk, "allocations": [{"bank_transaction": august["rent"].pk}]},
        format="json",
    )
    assert matched.status_code == 201, matched.content
    match = matched.json()[0]
    assert (match["method"], match["status"], Decimal(match["amount"])) == (
        "manual", "accepted", Decimal("4200.00")
    )  # fmt: skip
    rent_line.refresh_from_db()
    assert rent_line.status == "matched"

    unmatched = client.delete(f"{BASE}/reconciliation-matches/{match['id']}/")
    assert unmatched.status_code == 204
    rent_line.refresh_from_db()
    assert (rent_line.status, rent_line.reconciled_amount) == ("unmatched", Decimal("0.00"))

    auto = client.post(
        f"{BASE}/reconciliation-matches/auto-reconcile/",
        {"bank_account": bank.main.pk, "period": "2026-08"},
        format="json",
    )
    assert auto.status_code == 200, auto.content
    suggested = client.get(f"{BASE}/reconciliation-matches/", {"bank_account": bank.main.pk})
    pairs = {
        (row["statement_line"], row["bank_transaction"]) for row in suggested.json()["results"]
    }
    assert (rent_line.pk, august["rent"].pk) in pairs


def test_a_match_beyond_the_line_is_refused(bank, api, august):
    client = api(bank.accountant, bank.company)
    _upload(client, bank.main, AUGUST_CSV)
    ReconciliationMatch.objects.all().delete()
    StatementLine.objects.update(reconciled_amount=0, status="unmatched")
    BankTransaction.objects.update(reconciled_amount=0)
    fee_line = StatementLine.objects.get(amount=Decimal("-150.00"))
    response = client.post(
        f"{BASE}/reconciliation-matches/",
        {
            "statement_line": fee_line.pk,
            "allocations": [{"bank_transaction": august["rent"].pk, "amount": "4200.00"}],
        },
        format="json",
    )
    assert response.status_code in (400, 409)
    assert response.json()["code"]
    assert not ReconciliationMatch.objects.exists()


# --- the six endpoints -------------------------------------------------------------------------


def test_the_reconciliation_report_gives_the_months_figures(bank, api, august):
    client = api(bank.auditor, bank.company)
    _upload(api(bank.clerk, bank.company), bank.main, AUGUST_CSV)
    response = client.get(
        f"{BASE}/reconciliation", {"bank_account_id": bank.main.pk, "period": "2026-08"}
    )
    assert response.status_code == 200, response.content
    report = response.json()
    assert Decimal(report["book_balance"]) == Decimal("111150.00")
    assert Decimal(report["threshold"]) == Decimal("1000.00")
    assert "variance" in report and "outstanding_deposits" in report


def test_cash_position_as_of_a_day_and_by_dimension(bank, api, august):
    client = api(bank.auditor, bank.company)
    response = client.get(
        f"{BASE}/cash-position", {"bank_account_id": bank.main.pk, "as_of": "2026-08-31"}
    )
    assert response.status_code == 200, response.content
    assert "111150.00" in response.content.decode()
    by = client.get(
        f"{BASE}/cash-position",
        {"bank_account_id": bank.main.pk, "as_of": "2026-08-31", "by": "cost_center"},
    )
    assert by.status_code == 200, by.content
    assert "CC-DHK" in by.content.decode()


def test_transfer_tracking_shows_each_state(bank, api):
    client = api(bank.clerk, bank.company)
    made = client.post(
        f"{BASE}/transfers/",
        {"from_account": bank.main.pk, "to_account": bank.second.pk, "amount": "5000.00",
         "date": "2026-08-10", "reference": "TRF-1"},
        format="json",
    )  # fmt: skip
    assert made.status_code == 201, made.content
    transfer = made.json()
    assert transfer["status"] == "initiated"
    sent = client.post(
        f"{BASE}/transfers/{transfer['id']}/send/", {"date": "2026-08-10"}, format="json"
    )
    assert sent.status_code == 200, sent.content
    assert sent.json()["status"] == "in_transit"
    part = client.post(
        f"{BASE}/transfers/{transfer['id']}/receive/",
        {"amount": "2000.00", "date": "2026-08-11"},
        format="json",
    )
    assert part.status_code == 200, part.content
    assert [leg["leg"] for leg in part.json()["legs"]] == ["out", "in"]

    report = api(bank.auditor, bank.company).get(
        f"{BASE}/transfer-tracking", {"bank_account_id": bank.main.pk, "period": "2026-08"}
    )
    assert report.status_code == 200, report.content
    assert "TRF-1" in report.content.decode()

    other = client.post(
        f"{BASE}/transfers/",
        {"from_account": bank.main.pk, "to_account": bank.second.pk, "amount": "10.00",
         "date": "2026-08-12"},
        format="json",
    )  # fmt: skip
    cancelled = client.post(f"{BASE}/transfers/{other.json()['id']}/cancel/", {}, format="json")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"


def test_dimensional_analysis_and_variance_report(bank, api, august):
    client = api(bank.auditor, bank.company)
    analysis = client.get(
        f"{BASE}/dimensional-analysis",
        {"bank_account_id": bank.main.pk, "period": "2026-08", "dimension": "cost_center"},
    )
    assert analysis.status_code == 200, analysis.content
    assert "CC-DHK" in analysis.content.decode()
    variance = client.get(
        f"{BASE}/variance-report", {"bank_account_id": bank.main.pk, "period": "2026-08"}
    )
    assert variance.status_code == 200, variance.content


@pytest.mark.parametrize(
    "path", ["reconciliation", "cash-position", "transfer-tracking", "dimensional-analysis",
             "variance-report"],
)  # fmt: skip
def test_reports_refuse_bad_parameters_and_another_companys_account(path, bank, api):
    client = api(bank.auditor, bank.company)
    bad = client.get(f"{BASE}/{path}", {"bank_account_id": bank.main.pk, "period": "2026-13"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_period"
    assert "period" in bad.json()["fields"]

    foreign = _foreign_account(bank)
    hidden = client.get(f"{BASE}/{path}", {"bank_account_id": foreign.pk, "period": "2026-08"})
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "not_found"


def test_the_report_paths_answer_with_and_without_a_trailing_slash(bank, api):
    client = api(bank.auditor, bank.company)
    query = {"bank_account_id": bank.main.pk, "period": "2026-08"}
    assert client.get(f"{BASE}/variance-report", query).status_code == 200
    assert client.get(f"{BASE}/variance-report/", query).status_code == 200
    csv = client.get(f"{BASE}/variance-report", {**query, "format": "csv"})
    assert csv.status_code == 200
    assert csv["Content-Type"].startswith("text/csv")


# --- cash and petty cash -----------------------------------------------------------------------


def test_a_cash_submission_is_deposited_with_its_variance(bank, api):
    client = api(bank.clerk, bank.company)
    made = client.post(
        f"{BASE}/cash-submissions/",
        {"bank_account": bank.main.pk, "branch": "Uttara", "from_account": bank.account("1110").pk,
         "expected_amount": "50000.00", "submitted_on": "2026-08-03"},
        format="json",
    )  # fmt: skip
    assert made.status_code == 201, made.content
    deposited = client.post(
        f"{BASE}/cash-submissions/{made.json()['id']}/deposit/",
        {"deposited_amount": "49900.00", "deposited_on": "2026-08-04"},
        format="json",
    )
    assert deposited.status_code == 200, deposited.content
    assert deposited.json()["status"] == "deposited"
    assert Decimal(deposited.json()["variance"]) == Decimal("-100.00")


def test_a_float_takes_vouchers_and_is_replenished(bank, api):
    client = api(bank.clerk, bank.company)
    made = client.post(
        f"{BASE}/float-allocations/",
        {"bank_account": bank.main.pk, "name": "Office box", "custodian": "Rina",
         "float_amount": "5000.00", "issued_on": "2026-08-01"},
        format="json",
    )  # fmt: skip
    assert made.status_code == 201, made.content
    float_id = made.json()["id"]
    voucher = client.post(
        f"{BASE}/float-allocations/{float_id}/vouchers/",
        {"date": "2026-08-05", "amount": "1200.00", "expense_account": bank.account("6500").pk,
         "description": "CNG fares", "cost_center": bank.cost_center.pk},
        format="json",
    )  # fmt: skip
    assert voucher.status_code == 201, voucher.content
    listed = client.get(f"{BASE}/float-allocations/{float_id}/vouchers/")
    assert [row["description"] for row in listed.json()] == ["CNG fares"]
    replenished = client.post(
        f"{BASE}/float-allocations/{float_id}/replenish/",
        {"counted_cash": "3750.00", "date": "2026-08-20"},
        format="json",
    )
    assert replenished.status_code == 200, replenished.content
    body = replenished.json()
    # counted 3,750.00 + vouchers 1,200.00 - float 5,000.00 = 50.00 short
    assert (Decimal(body["vouchers_total"]), Decimal(body["over_short"])) == (
        Decimal("1200.00"), Decimal("-50.00")
    )  # fmt: skip


# --- review fixes: parameters, sign-off, settlement, undo, ignore, limits ---------------------


def test_dimensional_analysis_defaults_to_cost_center_without_the_parameter(bank, api, august):
    client = api(bank.auditor, bank.company)
    response = client.get(
        f"{BASE}/dimensional-analysis", {"bank_account_id": bank.main.pk, "period": "2026-08"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["dimension"] == "cost_center"
    # 12,500 + 3,000 in, 4,200 out on CC-DHK; the fee carries no cost center
    row = next(r for r in body["rows"] if r["code"] == "CC-DHK")
    assert (Decimal(row["inflow"]), Decimal(row["outflow"])) == (Decimal("15500"), Decimal("4200"))


@pytest.mark.parametrize(
    "path", ["reconciliation", "cash-position", "transfer-tracking", "dimensional-analysis",
             "variance-report"],
)  # fmt: skip
@pytest.mark.parametrize("period", ["0000-01", "9999-12", "1899-12", "2201-01"])
def test_a_month_outside_the_years_answers_invalid_period(path, period, bank, api):
    client = api(bank.auditor, bank.company)
    response = client.get(f"{BASE}/{path}", {"bank_account_id": bank.main.pk, "period": period})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_period"
    assert "period" in response.json()["fields"]


@pytest.mark.parametrize("as_of", ["0001-01-05", "9999-12-31", "2026-02-30"])
def test_a_day_outside_the_years_answers_invalid_date(as_of, bank, api):
    client = api(bank.auditor, bank.company)
    response = client.get(f"{BASE}/cash-position", {"as_of": as_of})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_date"


@pytest.mark.parametrize("period", ["0000-01", "9999-12"])
def test_auto_reconcile_refuses_a_month_outside_the_years(period, bank, api):
    client = api(bank.accountant, bank.company)
    response = client.post(
        f"{BASE}/reconciliation-matches/auto-reconcile/",
        {"bank_account": bank.main.pk, "period": period},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_period"


def test_an_amount_too_large_for_the_books_is_refused_naming_the_line(bank, api, august):
    content = b"Date,Reference,Text,Amount\n05/08/2026,Z,big,99999999999999999999.00\n"
    response = _upload(api(bank.clerk, bank.company), bank.main, content)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_statement"
    assert "too large" in body["message"] and "line 2" in body["message"]
    assert not StatementLine.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_parsing(bank, api, august, settings):
    settings.BANKING_MAX_STATEMENT_BYTES = 100
    response = _upload(api(bank.clerk, bank.company), bank.main, AUGUST_CSV)  # 178 bytes
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "file_too_large"
    assert not StatementImport.objects.exists()


def test_a_zero_amount_line_is_imported_as_ignored_and_counted(bank, api, august):
    content = AUGUST_CSV + b"31/08/2026,HOLD,Card hold released,0.00\n"
    response = _upload(api(bank.clerk, bank.company), bank.main, content)
    assert response.status_code == 201, response.content
    assert (response.json()["new_line_count"], response.json()["ignored_line_count"]) == (5, 1)
    assert StatementLine.objects.get(reference="HOLD").status == "ignored"
    listed = api(bank.auditor, bank.company).get(f"{BASE}/imports/").json()["results"]
    assert listed[0]["ignored_line_count"] == 1


def test_a_full_iban_needs_the_accounts_iban_not_four_masked_digits(bank, api, august):
    client = api(bank.clerk, bank.company)
    iban = "DE47370400440532011234"  # ends with Main's visible ****1234
    response = _upload(client, bank.main, _camt(iban), name="s.xml")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "account_mismatch"
    assert "IBAN" in response.json()["message"]
    assert not StatementLine.objects.exists()
    services.bank_account_update(actor=bank.owner, bank_account=bank.main, iban=iban)
    assert _upload(client, bank.main, _camt(iban), name="s.xml").status_code == 201


def _sign_off_ready(bank, api):
    """August on a CAMT statement (closing 112,500.00) with RCPT-1 matched: adjusted statement
    balance 112,500 + 3,000 - 4,200 - 150 = 111,150 = the book balance; variance 0."""
    iban = "DE47370400440532011234"
    services.bank_account_update(actor=bank.owner, bank_account=bank.main, iban=iban)
    assert (
        _upload(api(bank.clerk, bank.company), bank.main, _camt(iban), name="s.xml").status_code
        == 201
    )
    ReconciliationMatch.objects.all().delete()
    return StatementLine.objects.get(bank_id="X-1")


def test_the_accountant_signs_a_month_off_through_the_api(bank, api, august):
    line = _sign_off_ready(bank, api)
    client = api(bank.accountant, bank.company)
    body = {"bank_account_id": bank.main.pk, "period": "2026-08"}
    early = client.post(f"{BASE}/reconciliation/close", body, format="json")
    assert early.status_code == 409, early.content  # RCPT-1 outstanding: variance 12,500
    assert early.json()["code"] == "variance_exceeds_threshold"
    matched = client.post(
        f"{BASE}/reconciliation-matches/",
        {"statement_line": line.pk, "allocations": [{"bank_transaction": august["rcpt1"].pk}]},
        format="json",
    )
    assert matched.status_code == 201, matched.content
    assert (
        api(bank.auditor, bank.company)
        .post(f"{BASE}/reconciliation/close", body, format="json")
        .status_code
        == 403
    )
    closed = client.post(f"{BASE}/reconciliation/close", body, format="json")
    assert closed.status_code == 200, closed.content
    assert closed.json()["status"] == "reconciled"
    assert Decimal(closed.json()["variance"]) == Decimal("0.00")
    assert closed.json()["reconciled_by"] == bank.accountant.pk
    listed = api(bank.auditor, bank.company).get(
        f"{BASE}/reconciliations", {"bank_account_id": bank.main.pk}
    )
    assert listed.status_code == 200
    assert [(r["period"], r["status"]) for r in listed.json()] == [("2026-08-01", "reconciled")]
    foreign = _foreign_account(bank)
    hidden = client.post(
        f"{BASE}/reconciliation/close",
        {"bank_account_id": foreign.pk, "period": "2026-08"},
        format="json",
    )
    assert hidden.status_code == 404


def test_a_receipt_settles_several_invoices_and_a_fee_is_booked_from_a_line(bank, api, sales):  # noqa: F811
    from invoicing.models import Invoice

    services.bank_account_update(
        actor=bank.owner, bank_account=bank.main, statement_mapping=CSV_MAPPING
    )
    first, second = sales.approved(), sales.approved()  # 115.00 due each
    content = (
        b"Date,Reference,Text,Amount\n"
        b"20/08/2026,PAY-1,Dhaka Retail payment,200.00\n"
        b"31/08/2026,SMS,SMS alert charges,-25.00\n"
    )
    client = api(bank.accountant, bank.company)
    assert _upload(client, bank.main, content).status_code == 201
    ReconciliationMatch.objects.all().delete()
    receipt = StatementLine.objects.get(reference="PAY-1")
    settled = client.post(
        f"{BASE}/statement-lines/{receipt.pk}/settle-invoice/",
        {"settlements": [{"invoice": first.pk}, {"invoice": second.pk, "amount": "85.00"}]},
        format="json",
    )
    assert settled.status_code == 201, settled.content
    assert sorted(Decimal(t["amount"]) for t in settled.json()) == [
        Decimal("85.00"),
        Decimal("115.00"),
    ]
    first.refresh_from_db()
    second.refresh_from_db()
    receipt.refresh_from_db()
    assert (first.status, first.amount_due) == ("paid", Decimal("0.00"))
    assert second.amount_due == Decimal("30.00")
    assert receipt.status == "matched"
    other = Invoice.objects.exclude(company=bank.company).first()
    if other is not None:  # another company's invoice is refused
        refused = client.post(
            f"{BASE}/statement-lines/{receipt.pk}/settle-invoice/",
            {"settlements": [{"invoice": other.pk}]},
            format="json",
        )
        assert refused.status_code in (400, 409)

    sms = StatementLine.objects.get(reference="SMS")
    created = client.post(
        f"{BASE}/statement-lines/{sms.pk}/create-transaction/", {"kind": "fee"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert (created.json()["kind"], Decimal(created.json()["amount"])) == ("fee", Decimal("25.00"))
    assert created.json()["posting_status"] == "posted"
    sms.refresh_from_db()
    assert sms.status == "matched"
    assert (
        api(bank.auditor, bank.company)
        .post(
            f"{BASE}/statement-lines/{sms.pk}/create-transaction/", {"kind": "fee"}, format="json"
        )
        .status_code
        == 403
    )


def test_a_line_is_ignored_and_brought_back(bank, api, august):
    client = api(bank.accountant, bank.company)
    _upload(client, bank.main, AUGUST_CSV)
    ReconciliationMatch.objects.all().delete()
    sms = StatementLine.objects.get(description="SMS alert charges")
    ignored = client.post(f"{BASE}/statement-lines/{sms.pk}/ignore/")
    assert ignored.status_code == 200, ignored.content
    assert ignored.json()["status"] == "ignored"
    back = client.post(f"{BASE}/statement-lines/{sms.pk}/unignore/")
    assert back.json()["status"] == "unmatched"


def test_a_wrong_import_is_deleted_unless_a_line_is_matched(bank, api, august):
    from core.models import AuditEvent

    client = api(bank.accountant, bank.company)
    record = _upload(client, bank.main, AUGUST_CSV).json()
    ReconciliationMatch.objects.all().delete()
    assert client.delete(f"{BASE}/imports/{record['id']}/").status_code == 204
    assert not StatementLine.objects.exists() and not StatementImport.objects.exists()
    assert AuditEvent.objects.filter(action="banking.statement.delete").count() == 1
    again = _upload(client, bank.main, AUGUST_CSV)
    assert again.status_code == 201  # not "replayed": the file can be imported again
    ReconciliationMatch.objects.all().delete()
    line = StatementLine.objects.get(reference="RCPT-1")
    client.post(
        f"{BASE}/reconciliation-matches/",
        {"statement_line": line.pk, "allocations": [{"bank_transaction": august["rcpt1"].pk}]},
        format="json",
    )
    refused = client.delete(f"{BASE}/imports/{again.json()['id']}/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "import_matched"
    assert StatementLine.objects.count() == 4


def test_the_transaction_list_does_not_query_per_row(bank, api, august):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api(bank.auditor, bank.company)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"{BASE}/transactions/", {"page_size": 100}).status_code == 200
        return len(captured)

    bank.txn(kind="fee", amount="1.00", date=D(2026, 8, 1), post=True)
    assert BankTransaction.objects.count() == 5  # 4 from the fixture + 1, all posted
    five = queries()
    for n in range(45):
        bank.txn(kind="fee", amount="1.00", date=D(2026, 8, 1 + n % 28), post=True)
    assert BankTransaction.objects.count() == 50
    assert queries() == five
