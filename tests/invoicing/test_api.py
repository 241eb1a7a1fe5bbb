"""The invoicing REST API, with figures an accountant can check by hand.

Company A ("alpha", BDT, fiscal year July-June) sells to Dhaka Retail Ltd (BIN 001745707-0402);
invoices are dated in August 2025, so the first number is INV/2025-26/000001.

Line figures used below (VAT 15 % on value + SD, each rounded half-up per line):
  10 Widgets x 10.05      value 100.50   VAT 15.075 -> 15.08   total  115.58
  2 Consulting hours x 1500.00   value 3,000.00   VAT 450.00   total 3,450.00
  invoice: value 3,100.50 + VAT 465.08 = 3,565.58
  10 packs of cigarettes x 100.00: value 1,000.00, SD 65 % 650.00, specific VAT 2.50 x 10 = 25.00,
  total 1,675.00
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounting.models import JournalEntry, JournalLine
from accounting.services import account_for_role
from core.models import AuditEvent
from invoicing import services
from invoicing.models import (
    Invoice,
    InvoiceCounter,
    InvoiceEvent,
    InvoiceLine,
    InvoicePayment,
    Item,
    Party,
    RecurringInvoice,
)

API = "/api/v1/invoicing"
INVOICES = f"{API}/invoices/"
PARTIES = f"{API}/parties/"
ITEMS = f"{API}/items/"
RATES = f"{API}/vat-rates/"
RECURRING = f"{API}/recurring-invoices/"


def written(company):
    """Everything a refused request must leave untouched."""
    return (
        InvoiceEvent.objects.count(),
        list(Invoice.objects.order_by("pk").values_list("pk", "version", "status", "amount_paid")),
        InvoiceLine.objects.count(),
        InvoicePayment.objects.count(),
        JournalEntry.objects.filter(company=company).count(),
        list(InvoiceCounter.objects.values_list("series", "last")),
        AuditEvent.objects.count(),
        Party.objects.count(),
        Item.objects.count(),
    )


def by_account(entry_id) -> dict:
    out = {}
    for line in JournalLine.objects.filter(entry_id=entry_id).select_related("account"):
        d, c = out.get(line.account.code, (Decimal(0), Decimal(0)))
        out[line.account.code] = (d + line.debit, c + line.credit)
    return {code: (str(d), str(c)) for code, (d, c) in out.items()}


@pytest.fixture
def clerk(sales, api):
    return api(sales.clerk, sales.company)


@pytest.fixture
def auditor(sales, api):
    return api(sales.auditor, sales.company)


def draft_body(sales, **extra):
    return {
        "customer": sales.customer.pk,
        "issue_date": "2025-08-10",
        "lines": [
            {"item": sales.widget.pk, "quantity": "10"},
            {"item": sales.service.pk, "quantity": "2"},
        ],
        **extra,
    }


def create_draft(clerk, sales, **extra) -> dict:
    response = clerk.post(INVOICES, draft_body(sales, **extra), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def current(clerk, invoice) -> int:
    """The invoice's version now (every write sends the version it read)."""
    return clerk.get(f"{INVOICES}{invoice['id']}/").json()["version"]


def approve(clerk, invoice) -> dict:
    response = clerk.post(
        f"{INVOICES}{invoice['id']}/approve/", {"version": current(clerk, invoice)}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


# --- parties, VAT rates, items -------------------------------------------------------------------


def test_a_party_is_added_with_a_formatted_bin_and_read_back(sales, clerk):
    created = clerk.post(
        PARTIES,
        {
            "name": "Karnaphuli Paper Mills",
            "bin": "000987654-0101",
            "etin": "1111-2222-3333",
            "is_withholding_entity": True,
            "address": "Chandraghona, Rangamati",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["bin"], body["bin_display"]) == ("0009876540101", "000987654-0101")
    assert (body["etin"], body["etin_display"]) == ("111122223333", "1111-2222-3333")
    assert body["kind"] == "customer" and body["is_withholding_entity"] is True

    changed = clerk.patch(f"{PARTIES}{body['id']}/", {"payment_terms_days": 45}, format="json")
    assert changed.status_code == 200 and changed.json()["payment_terms_days"] == 45
    found = clerk.get(PARTIES, {"bin": "000987654-0101"}).json()["results"]
    assert [row["name"] for row in found] == ["Karnaphuli Paper Mills"]
    withholding = clerk.get(PARTIES, {"is_withholding_entity": "true"}).json()["results"]
    assert {row["name"] for row in withholding} == {"Karnaphuli Paper Mills", "Padma Bank PLC"}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("bin", "00174570704", "invalid_bin"),
        ("bin", "001745707-04021", "invalid_bin"),
        ("etin", "1234-5678-901", "invalid_etin"),
        ("etin", "abcd-5678-9012", "invalid_etin"),
    ],
)
def test_an_invalid_bin_or_etin_is_refused_with_nothing_written(sales, clerk, field, value, code):
    before = written(sales.company)
    response = clerk.post(PARTIES, {"name": "Bad Ids Ltd", field: value}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and field in body["fields"]
    assert "digits" in body["message"]
    # and on a change too
    refused = clerk.patch(f"{PARTIES}{sales.customer.pk}/", {field: value}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == code
    assert written(sales.company) == before
    sales.customer.refresh_from_db()
    assert sales.customer.bin == "0017457070402"


def test_vat_rates_are_the_companys_data(sales, clerk):
    rates = clerk.get(RATES, {"page_size": 50}).json()["results"]
    labels = {row["code"]: row["label"] for row in rates}
    assert labels["VAT15"] == "15%" and labels["VAT7.5"] == "7.5%"
    assert labels["EXEMPT"] == "Exempt" and labels["ZERO"] == "Zero-rated"
    created = clerk.post(
        RATES,
        {"code": "VAT2", "name": "Trade VAT 2%", "kind": "percent", "rate": "2"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["label"] == "2%"
    duplicate = clerk.post(RATES, {"code": "VAT2", "name": "Again", "rate": "2"}, format="json")
    assert duplicate.status_code == 400 and duplicate.json()["code"] == "duplicate_code"


def test_items_name_their_vat_rate_by_code(sales, clerk):
    created = clerk.post(
        ITEMS,
        {
            "code": "RICE",
            "name": "Aromatic rice, 5 kg",
            "unit": "bag",
            "unit_price": "850.00",
            "vat_rate": "VAT5",
            "sd_rate": "0",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["vat_rate"] == "VAT5"

    before = written(sales.company)
    refused = clerk.post(
        ITEMS, {"code": "GOLD", "name": "Gold", "vat_rate": "VAT99"}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "vat_rate_not_allowed"
    assert "vat_rate" in refused.json()["fields"]
    assert written(sales.company) == before


# --- the invoice life cycle ----------------------------------------------------------------------


def test_draft_edit_approve_and_pay_with_hand_checked_figures(sales, clerk):
    draft = create_draft(clerk, sales)
    assert draft["status"] == "draft" and draft["number"] == "" and draft["version"] == 1
    assert [
        (row["description"], row["quantity"], row["value"], row["vat_amount"], row["total"])
        for row in draft["lines"]
    ] == [
        ("Widget", "10.0000", "100.50", "15.08", "115.58"),
        ("Consulting hour", "2.0000", "3000.00", "450.00", "3450.00"),
    ]
    assert (draft["total_value"], draft["total_vat"], draft["total_amount"]) == (
        "3100.50",
        "465.08",
        "3565.58",
    )
    assert draft["due_date"] == "2025-09-09"  # 30 days' terms

    # Edit: add the cigarettes (SD 65 %, specific VAT 2.50 a pack), sending the version read.
    lines = [*draft_body(sales)["lines"], {"item": sales.cigarette.pk, "quantity": "10"}]
    edited = clerk.patch(
        f"{INVOICES}{draft['id']}/",
        {"lines": lines, "version": draft["version"], "vehicle_number": "DHAKA-METRO-KA-11"},
        format="json",
    )
    assert edited.status_code == 200, edited.content
    body = edited.json()
    assert body["version"] == 2 and body["vehicle_number"] == "DHAKA-METRO-KA-11"
    cig = body["lines"][2]
    assert (cig["value"], cig["sd_amount"], cig["vat_amount"], cig["total"]) == (
        "1000.00",
        "650.00",
        "25.00",
        "1675.00",
    )
    assert (body["total_sd"], body["total_vat"], body["total_amount"]) == (
        "650.00",
        "490.08",
        "5240.58",
    )

    approved = approve(clerk, body)
    assert approved["number"] == "INV/2025-26/000001"
    assert (approved["status"], approved["mushak_form"], approved["fiscal_year"]) == (
        "approved",
        "6.3",
        "2025-26",
    )
    assert approved["amount_due"] == "5240.58"
    assert approved["journal_entry_reference"].startswith("JE/2025-26/")
    posted = by_account(approved["journal_entry"])
    debits = sum(Decimal(d) for d, _c in posted.values())
    credits = sum(Decimal(c) for _d, c in posted.values())
    assert debits == credits == Decimal("5240.58")

    part = clerk.post(
        f"{INVOICES}{draft['id']}/payments/",
        {
            "amount": "2000.00",
            "date": "2025-08-20",
            "reference": "CHQ 4411",
            "version": approved["version"],
        },
        format="json",
    )
    assert part.status_code == 201, part.content
    assert (part.json()["status"], part.json()["amount_paid"], part.json()["amount_due"]) == (
        "partially_paid",
        "2000.00",
        "3240.58",
    )
    rest = clerk.post(
        f"{INVOICES}{draft['id']}/payments/",
        {"amount": "3240.58", "date": "2025-08-25", "version": part.json()["version"]},
        format="json",
    )
    assert rest.status_code == 201, rest.content
    final = rest.json()
    assert (final["status"], final["amount_due"]) == ("paid", "0.00")
    assert [(p["date"], p["amount"], p["reference"]) for p in final["payments"]] == [
        ("2025-08-20", "2000.00", "CHQ 4411"),
        ("2025-08-25", "3240.58", ""),
    ]


def test_void_credit_and_debit_notes(sales, clerk):
    first = approve(clerk, create_draft(clerk, sales))
    credit = clerk.post(
        f"{INVOICES}{first['id']}/credit-notes/",
        {
            "reason": "2 widgets returned damaged",
            "lines": [{"item": sales.widget.pk, "quantity": "2"}],
            "issue_date": "2025-08-15",
            "version": first["version"],
        },
        format="json",
    )
    assert credit.status_code == 201, credit.content
    note = credit.json()
    # 2 x 10.05 = 20.10; VAT 3.015 -> 3.02; total 23.12
    assert (note["kind"], note["number"], note["mushak_form"]) == (
        "credit_note",
        "CN/2025-26/000001",
        "6.7",
    )
    assert (note["total_amount"], note["original_number"]) == ("23.12", "INV/2025-26/000001")
    debit = clerk.post(
        f"{INVOICES}{first['id']}/debit-notes/",
        {
            "reason": "Extra consulting hour",
            "lines": [{"item": sales.service.pk, "quantity": "1"}],
            "issue_date": "2025-08-16",
            "version": first["version"] + 1,
        },
        format="json",
    )
    assert debit.status_code == 201, debit.content
    assert debit.json()["number"] == "DN/2025-26/000001"
    assert debit.json()["total_amount"] == "1725.00"
    original = clerk.get(f"{INVOICES}{first['id']}/").json()
    # 3,565.58 - 23.12 + 1,725.00
    assert (original["credited_amount"], original["debited_amount"], original["amount_due"]) == (
        "23.12",
        "1725.00",
        "5267.46",
    )
    assert [n["number"] for n in original["notes_issued"]] == [
        "CN/2025-26/000001",
        "DN/2025-26/000001",
    ]

    second = approve(clerk, create_draft(clerk, sales))
    no_reason = clerk.post(
        f"{INVOICES}{second['id']}/void/",
        {"reason": " ", "version": second["version"]},
        format="json",
    )
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "reason_required"
    voided = clerk.post(
        f"{INVOICES}{second['id']}/void/",
        {"reason": "Issued twice", "version": second["version"]},
        format="json",
    )
    assert voided.status_code == 200, voided.content
    body = voided.json()
    assert (body["status"], body["number"], body["void_reason"]) == (
        "void",
        "INV/2025-26/000002",
        "Issued twice",
    )
    assert body["void_journal_entry"] is not None


# --- refusals: a code, a message, nothing written ------------------------------------------------


def test_approving_with_no_lines_is_refused(sales, clerk):
    empty = create_draft(clerk, sales, lines=[])
    before = written(sales.company)
    response = clerk.post(
        f"{INVOICES}{empty['id']}/approve/", {"version": empty["version"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "no_lines"
    assert "at least one line" in response.json()["message"]
    assert written(sales.company) == before


def test_editing_an_approved_invoice_is_refused(sales, clerk):
    invoice = approve(clerk, create_draft(clerk, sales))
    before = written(sales.company)
    response = clerk.patch(
        f"{INVOICES}{invoice['id']}/",
        {"notes": "changed my mind", "version": invoice["version"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "not_draft"
    assert "credit or debit note" in response.json()["message"]
    assert written(sales.company) == before


def test_paying_more_than_due_is_refused(sales, clerk):
    invoice = approve(clerk, create_draft(clerk, sales))
    before = written(sales.company)
    response = clerk.post(
        f"{INVOICES}{invoice['id']}/payments/",
        {"amount": "3565.59", "version": invoice["version"]},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "overpayment"
    assert "3,565.58" in body["message"] or "3565.58" in body["message"]
    assert written(sales.company) == before


def test_a_vat_rate_not_in_the_companys_list_is_refused(sales, clerk, books):
    before = written(sales.company)
    body = draft_body(sales)
    body["lines"] = [{"description": "Gold", "unit": "g", "quantity": "1", "unit_price": "9000",
                      "vat_rate": "VAT99"}]  # fmt: skip
    response = clerk.post(INVOICES, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "vat_rate_not_allowed"
    assert written(sales.company) == before


def test_a_stale_version_is_a_409_and_nothing_is_written(sales, clerk):
    draft = create_draft(clerk, sales)
    first = clerk.patch(
        f"{INVOICES}{draft['id']}/", {"notes": "first", "version": 1}, format="json"
    )
    assert first.status_code == 200 and first.json()["version"] == 2
    before = written(sales.company)
    late = clerk.patch(
        f"{INVOICES}{draft['id']}/", {"notes": "second", "version": 1}, format="json"
    )
    assert late.status_code == 409
    body = late.json()
    assert body["code"] == "stale_version"
    assert "version" in body["fields"]
    stale_approve = clerk.post(f"{INVOICES}{draft['id']}/approve/", {"version": 1}, format="json")
    assert stale_approve.status_code == 409
    assert written(sales.company) == before
    assert clerk.get(f"{INVOICES}{draft['id']}/").json()["notes"] == "first"


def test_bad_shapes_are_refused_before_any_service(sales, clerk):
    before = written(sales.company)
    unknown = clerk.post(INVOICES, {**draft_body(sales), "discount": "5"}, format="json")
    assert unknown.status_code == 400 and "discount" in unknown.json()["fields"]
    raw = (
        f'{{"customer": {sales.customer.pk}, "lines": [{{"description": "X", "unit": "pcs",'
        ' "quantity": 1, "unit_price": 10.00001, "vat_rate": "VAT15"}]}'
    )
    too_fine = clerk.post(INVOICES, raw, content_type="application/json")
    assert too_fine.status_code == 400, too_fine.content
    assert "unit_price" in too_fine.json()["fields"]
    assert "Line 1" in too_fine.json()["message"]
    assert written(sales.company) == before
    # JSON numbers are read exactly (never float): 10.005 is 10.005, its value 10.01 half-up
    exact = clerk.post(INVOICES, raw.replace("10.00001", "10.005"), content_type="application/json")
    assert exact.status_code == 201, exact.content
    assert exact.json()["lines"][0]["value"] == "10.01"


def test_auditor_reads_but_cannot_approve(sales, clerk, auditor):
    draft = create_draft(clerk, sales)
    assert auditor.get(f"{INVOICES}{draft['id']}/").status_code == 200
    before = written(sales.company)
    response = auditor.post(f"{INVOICES}{draft['id']}/approve/", {}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "role_forbidden"
    assert written(sales.company) == before


# --- history and documents -----------------------------------------------------------------------


def test_events_endpoint_shows_the_streams_history(sales, clerk):
    draft = create_draft(clerk, sales)
    clerk.patch(
        f"{INVOICES}{draft['id']}/", {"notes": "Deliver by noon", "version": 1}, format="json"
    )
    approve(clerk, draft)
    clerk.post(
        f"{INVOICES}{draft['id']}/payments/", {"amount": "565.58", "version": 3}, format="json"
    )
    events = clerk.get(f"{INVOICES}{draft['id']}/events/")
    assert events.status_code == 200
    rows = events.json()
    assert [(row["version"], row["type"]) for row in rows] == [
        (1, "InvoiceDrafted"),
        (2, "DraftEdited"),
        (3, "InvoiceApproved"),
        (4, "PaymentRecorded"),
    ]
    assert {row["actor"] for row in rows} == {"a-clerk"}
    assert rows[3]["payload"]["amount"] == "565.58"
    # read-only: no writes on the history
    assert clerk.post(f"{INVOICES}{draft['id']}/events/", {}, format="json").status_code == 405


def test_mushak_6_3_as_html_by_default_and_pdf_on_request(sales, clerk):
    invoice = approve(clerk, create_draft(clerk, sales))
    url = f"{INVOICES}{invoice['id']}/mushak-6-3/"
    html = clerk.get(url)
    assert html.status_code == 200
    assert html["Content-Type"].startswith("text/html")
    text = html.content.decode()
    assert "INV/2025-26/000001" in text and "001745707-0402" in text and "3,565.58" in text

    pdf = clerk.get(url, {"format": "pdf"})
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert "Mushak-6.3_INV-2025-26-000001.pdf" in pdf["Content-Disposition"]
    accepted = clerk.get(url, HTTP_ACCEPT="application/pdf")
    assert accepted.status_code == 200 and accepted.content.startswith(b"%PDF")


def test_a_note_prints_on_its_own_form(sales, clerk):
    invoice = approve(clerk, create_draft(clerk, sales))
    note = clerk.post(
        f"{INVOICES}{invoice['id']}/credit-notes/",
        {
            "reason": "Price agreed lower",
            "lines": [{"item": sales.widget.pk, "quantity": "1"}],
            "issue_date": "2025-08-20",
            "version": invoice["version"],
        },
        format="json",
    ).json()
    wrong = clerk.get(f"{INVOICES}{note['id']}/mushak-6-3/")
    assert wrong.status_code == 400
    assert wrong["Content-Type"] == "application/json"
    assert wrong.json()["code"] == "wrong_form" and "6.7" in wrong.json()["message"]
    right = clerk.get(f"{INVOICES}{note['id']}/mushak-6-7/")
    assert right.status_code == 200 and "CN/2025-26/000001" in right.content.decode()


# --- lists, filters and tenants ------------------------------------------------------------------


def test_filters_and_pagination(sales, clerk):
    first = approve(clerk, create_draft(clerk, sales))
    create_draft(clerk, sales, issue_date="2025-09-02")
    other = create_draft(clerk, sales, customer=sales.withholding.pk, issue_date="2025-08-01")

    def numbers_of(**params):
        rows = clerk.get(INVOICES, params).json()["results"]
        return [row["id"] for row in rows]

    everything = numbers_of()
    assert len(everything) == 3
    assert everything[0] != first["id"]  # newest issue date first: the September draft
    assert numbers_of(status="approved") == [first["id"]]
    assert set(numbers_of(status=["draft", "approved"])) == set(everything)
    assert numbers_of(customer=sales.withholding.pk) == [other["id"]]
    assert len(numbers_of(date_from="2025-08-05", date_to="2025-08-31")) == 1
    assert numbers_of(fiscal_year="2025-26") == [first["id"]]
    assert numbers_of(number="INV/2025-26/000001") == [first["id"]]
    assert numbers_of(open="true") == [first["id"]]
    page = clerk.get(INVOICES, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["previous"] is None
    rest = clerk.get(page["next"]).json()
    assert [row["id"] for row in page["results"] + rest["results"]] == everything
    assert rest["next"] is None
    by_total = numbers_of(ordering="number")
    assert by_total[-1] == first["id"]  # drafts have no number yet: they sort first
    bad = clerk.get(INVOICES, {"status": "lost"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"


def test_the_list_takes_the_same_queries_however_many_invoices(sales, clerk):
    create_draft(clerk, sales)

    def count_queries():
        with CaptureQueriesContext(connection) as ctx:
            assert clerk.get(INVOICES).status_code == 200
        return len(ctx.captured_queries)

    few = count_queries()
    for _ in range(6):
        create_draft(clerk, sales, customer=sales.withholding.pk)
    assert count_queries() == few


def test_another_companys_invoice_is_not_found_anywhere(sales, clerk, api):
    invoice = approve(clerk, create_draft(clerk, sales))
    outsider = api(sales.tenants.owner_b, sales.tenants.b)
    base = f"{INVOICES}{invoice['id']}/"
    for path in ("", "events/", "mushak-6-3/"):
        response = outsider.get(base + path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    before = written(sales.company)
    for path, body in (
        ("approve/", {}),
        ("payments/", {"amount": "1.00"}),
        ("void/", {"reason": "x"}),
        ("credit-notes/", {"reason": "x", "lines": []}),
    ):
        assert outsider.post(base + path, body, format="json").status_code == 404, path
    assert written(sales.company) == before
    # and A's customer cannot be put on B's invoice
    services.vat_rates_seed(company=sales.tenants.b)
    refused = outsider.post(INVOICES, draft_body(sales, lines=[]), format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_customer"


# --- recurring invoices --------------------------------------------------------------------------


def test_a_recurring_invoice_is_set_up_and_issued_on_demand(sales, clerk):
    created = clerk.post(
        RECURRING,
        {
            "name": "Monthly support",
            "customer": sales.customer.pk,
            "lines": [{"item": sales.service.pk, "quantity": "4"}],
            "frequency": "monthly",
            "next_date": "2025-08-01",
            "due_days": 15,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    template = created.json()
    assert template["customer_name"] == "Dhaka Retail Ltd"
    assert template["lines"] == [{"item": sales.service.pk, "quantity": "4"}]

    issued = clerk.post(
        f"{RECURRING}{template['id']}/generate/", {"today": "2025-09-10"}, format="json"
    )
    assert issued.status_code == 200, issued.content
    body = issued.json()
    assert body["issued"] == 2 and body["next_date"] == "2025-10-01"
    # 4 hours x 1,500.00 = 6,000.00 + 900.00 VAT
    assert {(row["status"], row["total_amount"]) for row in body["invoices"]} == {
        ("draft", "6900.00")
    }
    again = clerk.post(
        f"{RECURRING}{template['id']}/generate/", {"today": "2025-09-10"}, format="json"
    )
    assert again.json()["issued"] == 0
    assert RecurringInvoice.objects.get(pk=template["id"]).invoices.count() == 2

    bad = clerk.post(
        RECURRING,
        {"name": "Bad", "customer": sales.customer.pk, "lines": [
            {"description": "X", "unit": "pcs", "quantity": "1", "unit_price": "1",
             "vat_rate": "NOPE"}]},
        format="json",
    )  # fmt: skip
    assert bad.status_code == 400 and bad.json()["code"] == "vat_rate_not_allowed"


def test_a_payment_names_the_account_it_arrived_in(sales, clerk):
    invoice = approve(clerk, create_draft(clerk, sales))
    before = written(sales.company)
    unknown = clerk.post(
        f"{INVOICES}{invoice['id']}/payments/",
        {"amount": "100.00", "account": "9999", "version": invoice["version"]},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["code"] == "invalid_account"
    assert written(sales.company) == before
    cash = clerk.post(
        f"{INVOICES}{invoice['id']}/payments/",
        {
            "amount": "565.58",
            "account": "1120",
            "method": "cash",
            "date": "2025-08-11",
            "version": invoice["version"],
        },
        format="json",
    )
    assert cash.status_code == 201, cash.content
    payment = cash.json()["payments"][0]
    assert (payment["account_code"], payment["amount"]) == ("1120", "565.58")
    receivable = account_for_role(company=sales.company, role="accounts_receivable").code
    assert by_account(payment["journal_entry"]) == {
        "1120": ("565.58", "0.00"),
        receivable: ("0.00", "565.58"),
    }


def test_a_write_without_a_version_is_refused(sales, clerk):
    """Without `version` two clerks' edits would both succeed and the last would win, and a
    retried payment would be recorded twice: every write must say what it read."""
    draft = create_draft(clerk, sales)
    before = written(sales.company)
    for method, path, body in (
        ("patch", "", {"notes": "mine"}),
        ("post", "approve/", {}),
        ("post", "payments/", {"amount": "1.00"}),
        ("post", "void/", {"reason": "x"}),
        ("post", "credit-notes/", {"reason": "x", "lines": []}),
        ("post", "debit-notes/", {"reason": "x", "lines": []}),
    ):
        response = getattr(clerk, method)(f"{INVOICES}{draft['id']}/{path}", body, format="json")
        assert response.status_code == 400, (path, response.content)
        assert response.json()["code"] == "version_required"
        assert "version" in response.json()["fields"]
    assert written(sales.company) == before
    # If-Match works as well as the field
    edited = clerk.patch(
        f"{INVOICES}{draft['id']}/", {"notes": "mine"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = clerk.patch(
        f"{INVOICES}{draft['id']}/", {"notes": "theirs"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert stale.status_code == 409
    # a retried payment with the version it read is recorded once
    invoice = approve(clerk, draft)
    path = f"{INVOICES}{draft['id']}/payments/"
    body = {"amount": "100.00", "date": "2025-08-20", "version": invoice["version"]}
    assert clerk.post(path, body, format="json").status_code == 201
    assert clerk.post(path, body, format="json").status_code == 409
    assert clerk.get(f"{INVOICES}{draft['id']}/").json()["amount_paid"] == "100.00"
