"""Sales register and monthly VAT summary, checked by hand on a small November 2025:

    INV/000001  03 Nov  Meghna  cement 7.5%, consulting 15% + SD 10%, soft drink specific + SD 25%
                        value 79,950.00  SD 2,025.00  VAT 7,314.75  total 89,289.75
    INV/000002  10 Nov  BRDB (withholds VAT)  IT support 40,000.00 at 15% (VAT 6,000.00),
                        rice 5,550.00 exempt -> value 45,550.00  VAT 6,000.00  total 51,550.00;
                        paid 25 Nov: 45,550.00 in the bank + 6,000.00 VAT deducted at source
    INV/000003  12 Nov  Meghna  10,000.00 at 15%, voided 20 Nov -> left out
    CN/000001   15 Nov  on INV/000001: 20 bags returned: -10,400.00, VAT -780.00, total -11,180.00
    DN/000001   18 Nov  on INV/000001: 2 h consulting: 3,000.00, SD 300.00, VAT 495.00, 3,795.00

Register totals: value 79,950 + 45,550 - 10,400 + 3,000 = 118,100.00; SD 2,325.00;
VAT 7,314.75 + 6,000 - 780 + 495 = 13,029.75; total 133,454.75.
9.1 feed: output VAT 13,314.75 and SD 2,025.00; increasing (debit note) VAT 495.00, SD 300.00;
decreasing: credit note VAT 780.00, VDS 6,000.00 -> net VAT 13,314.75 + 495 - 6,780 = 7,029.75,
net SD 2,325.00.
"""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib import admin as django_admin
from django.test import RequestFactory

from invoicing import reports, services
from invoicing.models import Invoice
from tests.invoicing.test_documents import CEMENT, CONSULTING, NOW, SOFT_DRINK, Books

D = Decimal
IT_SUPPORT = {
    "description": "IT support, November",
    "unit": "month",
    "quantity": "1",
    "unit_price": "40000.00",
    "vat_rate": "VAT15",
}
RICE = {
    "description": "Rice, coarse",
    "unit": "kg",
    "quantity": "100",
    "unit_price": "55.50",
    "vat_rate": "EXEMPT",
}
SMALL = {"description": "Spare parts", "unit": "set", "quantity": "1", "unit_price": "10000"}


class November:
    def __init__(self, books: Books):
        self.books = books
        self.inv1 = books.invoice(books.buyer, [CEMENT, CONSULTING, SOFT_DRINK], date(2025, 11, 3))
        self.inv2 = books.invoice(books.withholder, [IT_SUPPORT, RICE], date(2025, 11, 10))
        self.inv3 = books.invoice(books.buyer, [{**SMALL, "vat_rate": "VAT15"}], date(2025, 11, 12))
        services.invoice_void(actor=books.actor, invoice=self.inv3, reason="Wrong customer")
        self.credit = services.credit_note_issue(
            actor=books.actor,
            invoice=self.inv1,
            reason="20 bags returned",
            lines=[{**CEMENT, "quantity": "20"}],
            issue_date=date(2025, 11, 15),
        )
        self.debit = services.debit_note_issue(
            actor=books.actor,
            invoice=self.inv1,
            reason="2 more hours",
            lines=[{**CONSULTING, "quantity": "2"}],
            issue_date=date(2025, 11, 18),
        )
        services.invoice_payment_record(
            actor=books.actor,
            invoice=self.inv2,
            amount="45550.00",
            vds_withheld="6000.00",
            date=date(2025, 11, 25),
        )
        # a draft is never reported
        books.invoice(books.buyer, [CEMENT], date(2025, 11, 19), approve=False)


@pytest.fixture
def november(tenants):
    with time_machine.travel(NOW, tick=False):
        yield November(Books(tenants))


def money_of(row, *names):
    return tuple(row[name] for name in names)


def test_sales_register_rows_and_totals(november):
    report = reports.sales_register(
        company=november.books.company, date_from=date(2025, 11, 1), date_to=date(2025, 11, 30)
    )
    rows = report["rows"]
    assert [(r["serial"], r["date"], r["form"], r["number"]) for r in rows] == [
        (1, date(2025, 11, 3), "6.3", "INV/2025-26/000001"),
        (2, date(2025, 11, 10), "6.3", "INV/2025-26/000002"),
        (3, date(2025, 11, 15), "6.7", "CN/2025-26/000001"),
        (4, date(2025, 11, 18), "6.8", "DN/2025-26/000001"),
    ]
    amounts = ("value", "sd", "vat", "total", "vds")
    expected = [
        ("79950.00", "2025.00", "7314.75", "89289.75", "0.00"),
        ("45550.00", "0.00", "6000.00", "51550.00", "6000.00"),
        ("-10400.00", "0.00", "-780.00", "-11180.00", "0.00"),
        ("3000.00", "300.00", "495.00", "3795.00", "0.00"),
    ]
    for row, figures in zip(rows, expected, strict=True):
        assert money_of(row, *amounts) == tuple(D(x) for x in figures), row["number"]
    assert rows[0]["customer"] == "Meghna Builders Ltd."
    assert rows[0]["customer_bin"] == "000123456-0101"
    assert rows[0]["description"] == "Portland composite cement, 50 kg bag (+2 more)"
    assert rows[2]["original_number"] == "INV/2025-26/000001"
    assert money_of(report["totals"], *amounts) == (
        D("118100.00"), D("2325.00"), D("13029.75"), D("133454.75"), D("6000.00"),
    )  # fmt: skip
    assert report["by_kind"]["credit_notes"]["vat"] == D("-780.00")
    assert report["by_kind"]["debit_notes"]["sd"] == D("300.00")
    assert report["void_numbers"] == ["INV/2025-26/000003"]


def test_sales_register_csv(november):
    report = reports.sales_register(
        company=november.books.company, date_from=date(2025, 11, 1), date_to=date(2025, 11, 30)
    )
    lines = list(csv.reader(io.StringIO(reports.report_csv(report))))
    assert lines[0][0].startswith("Sales register (Mushak-6.2) Padma Trading Ltd.")
    assert lines[1] == reports.REGISTER_COLUMNS
    assert lines[2][:6] == ["1", "2025-11-03", "10:30", "issued", "6.3", "INV/2025-26/000001"]
    assert lines[2][-5:] == ["79950.00", "2025.00", "7314.75", "89289.75", "0.00"]
    assert lines[4][4:6] == ["6.7", "CN/2025-26/000001"]
    assert lines[4][-5:] == ["-10400.00", "0.00", "-780.00", "-11180.00", "0.00"]
    assert lines[6][5] == "Total"
    assert lines[6][-5:] == ["118100.00", "2325.00", "13029.75", "133454.75", "6000.00"]
    assert lines[7] == ["Void (left out)", "INV/2025-26/000003"]
    assert len(lines) == 8


def test_vat_summary_feeds_the_9_1_return(november):
    report = reports.vat_summary(company=november.books.company, month="2025-11")
    output = {row["category"]: row for row in report["output"]["rows"]}
    assert list(output) == ["exempt", "standard", "reduced_7.5", "specific"]
    assert money_of(output["exempt"], "value", "sd", "vat") == (D("5550.00"), D("0.00"), D("0.00"))
    assert money_of(output["standard"], "value", "sd", "vat") == (
        D("55750.00"), D("1575.00"), D("8598.75"),
    )  # fmt: skip
    assert output["standard"]["lines"] == 2
    assert money_of(output["reduced_7.5"], "value", "sd", "vat") == (
        D("62400.00"), D("0.00"), D("4680.00"),
    )  # fmt: skip
    assert money_of(output["specific"], "value", "sd", "vat") == (
        D("1800.00"), D("450.00"), D("36.00"),
    )  # fmt: skip
    assert report["output"]["totals"] == {
        "value": D("125500.00"), "sd": D("2025.00"), "vat": D("13314.75"),
    }  # fmt: skip
    increasing = {row["adjustment"]: row for row in report["increasing"]["rows"]}
    assert money_of(increasing["debit_notes"], "count", "value", "sd", "vat") == (
        1, D("3000.00"), D("300.00"), D("495.00"),
    )  # fmt: skip
    decreasing = {row["adjustment"]: row for row in report["decreasing"]["rows"]}
    assert money_of(decreasing["credit_notes"], "count", "value", "sd", "vat") == (
        1, D("10400.00"), D("0.00"), D("780.00"),
    )  # fmt: skip
    assert decreasing["voided_invoices"]["count"] == 0
    assert money_of(decreasing["vds"], "count", "vat") == (1, D("6000.00"))
    assert report["decreasing"]["totals"]["vat"] == D("6780.00")
    assert report["net"] == {"vat": D("7029.75"), "sd": D("2325.00"), "total": D("9354.75")}
    assert report["return_due_date"] == date(2025, 12, 15)
    assert report["void_numbers"] == ["INV/2025-26/000003"]

    lines = list(csv.reader(io.StringIO(reports.report_csv(report))))
    assert lines[1] == ["section", "line", "label", "count", "value", "sd", "vat"]
    assert ["output", "total", "Output tax", "", "125500.00", "2025.00", "13314.75"] in lines
    assert lines[-1] == ["net", "payable", "Net payable (VAT, SD)", "", "", "2325.00", "7029.75"]


def test_the_output_vat_agrees_with_the_ledger(november):
    """Output VAT less credit-note VAT plus debit-note VAT is what the invoices credited to
    the VAT payable account in November (the VDS is a receivable, not a VAT posting)."""
    from django.db.models import Sum

    from accounting.models import JournalLine
    from accounting.services import account_for_role

    company = november.books.company
    account = account_for_role(company=company, role="vat_payable")
    lines = JournalLine.objects.filter(
        account=account, entry__date__gte=date(2025, 11, 1), entry__date__lte=date(2025, 11, 30)
    ).aggregate(debit=Sum("debit"), credit=Sum("credit"))
    ledger = (lines["credit"] or 0) - (lines["debit"] or 0)
    report = reports.vat_summary(company=company, month="2025-11")
    assert ledger == (
        report["output"]["totals"]["vat"]
        + report["increasing"]["totals"]["vat"]
        - report["decreasing"]["rows"][0]["vat"]
    )
    assert ledger == D("13029.75")


def test_an_earlier_invoice_voided_later_counts_in_its_month_and_comes_off_in_the_void_month(
    tenants,
):
    with time_machine.travel(datetime(2025, 10, 28, 5, 0, tzinfo=UTC), tick=False):
        books = Books(tenants)
        october = books.invoice(books.buyer, [IT_SUPPORT], date(2025, 10, 28))  # VAT 6,000.00
    with time_machine.travel(datetime(2025, 11, 5, 5, 0, tzinfo=UTC), tick=False):
        services.invoice_void(actor=books.actor, invoice=october, reason="Cancelled order")
    company = books.company
    oct_summary = reports.vat_summary(company=company, month="2025-10")
    nov_summary = reports.vat_summary(company=company, month="2025-11")
    assert oct_summary["output"]["totals"]["vat"] == D("6000.00")
    assert oct_summary["net"]["vat"] == D("6000.00")
    voided = {row["adjustment"]: row for row in nov_summary["decreasing"]["rows"]}
    assert money_of(voided["voided_invoices"], "count", "value", "vat") == (
        1, D("40000.00"), D("6000.00"),
    )  # fmt: skip
    assert nov_summary["net"]["vat"] == D("-6000.00")

    november_register = reports.sales_register(
        company=company, date_from=date(2025, 11, 1), date_to=date(2025, 11, 30)
    )
    [row] = november_register["rows"]
    assert (row["entry"], row["date"], row["number"], row["vat"]) == (
        "void", date(2025, 11, 5), october.number, D("-6000.00"),
    )  # fmt: skip
    both = reports.sales_register(
        company=company, date_from=date(2025, 10, 1), date_to=date(2025, 11, 30)
    )
    assert both["rows"] == [] and both["totals"]["total"] == D("0.00")
    assert both["void_numbers"] == [october.number]


def test_bad_months_and_ranges_are_refused():
    from core.errors import ValidationFailed

    for month in ("2025-13", "2025/11", "", "November"):
        with pytest.raises(ValidationFailed) as caught:
            reports.month_range(month)
        assert caught.value.code == "invalid_month"
    with pytest.raises(ValidationFailed) as caught:
        reports.check_range(date(2025, 12, 1), date(2025, 11, 1))
    assert caught.value.code == "invalid_range"
    assert reports.month_range("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))


# --- API ----------------------------------------------------------------------------------------


def test_api_sales_register_json_and_csv(november, api):
    client = api(november.books.actor, november.books.company)
    url = "/api/v1/invoicing/reports/sales-register/"
    response = client.get(url, {"from": "2025-11-01", "to": "2025-11-30"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 4
    assert body["totals"] == {
        "value": "118100.00", "sd": "2325.00", "vat": "13029.75", "total": "133454.75",
        "vds": "6000.00",
    }  # fmt: skip
    assert body["rows"][0]["time"] == "10:30"
    assert body["void_numbers"] == ["INV/2025-26/000003"]

    response = client.get(url, {"from": "2025-11-01", "to": "2025-11-30", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "alpha-sales-register-2025-11-01-2025-11-30.csv" in response["Content-Disposition"]
    text = response.content.decode()
    assert "118100.00,2325.00,13029.75,133454.75,6000.00" in text


def test_api_vat_summary_and_its_errors(november, api, tenants):
    client = api(tenants.users_a["auditor"], november.books.company)  # read-only role reads
    url = "/api/v1/invoicing/reports/vat-summary/"
    response = client.get(url, {"month": "2025-11"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["net"] == {"vat": "7029.75", "sd": "2325.00", "total": "9354.75"}
    assert body["return_due_date"] == "2025-12-15"
    assert [row["category"] for row in body["output"]["rows"]] == [
        "exempt", "standard", "reduced_7.5", "specific",
    ]  # fmt: skip

    csv_response = client.get(url, {"month": "2025-11", "format": "csv"})
    assert csv_response.status_code == 200
    assert csv_response.content.decode().splitlines()[-1] == (
        'net,payable,"Net payable (VAT, SD)",,,2325.00,7029.75'
    )

    for bad in ("2025-13", "11-2025"):
        response = client.get(url, {"month": bad, "format": "csv"})
        assert response.status_code == 400, bad
        error = response.json()
        assert set(error) >= {"code", "message", "fields"}
    response = client.get(
        "/api/v1/invoicing/reports/sales-register/", {"from": "2025-12-01", "to": "2025-11-01"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_range"

    # another company's user sees its own (empty) books, never these figures
    other = api(tenants.owner_b, tenants.b).get(url, {"month": "2025-11"})
    assert other.status_code == 200
    assert other.json()["net"]["vat"] == "0.00"


# --- admin --------------------------------------------------------------------------------------


def _admin_get(user, path_params, kind):
    from invoicing import admin_reports

    request = RequestFactory().get("/", path_params)
    request.user = user
    model_admin = django_admin.site._registry.get(Invoice) or django_admin.ModelAdmin(
        Invoice, django_admin.site
    )
    return admin_reports.report_view(model_admin, request, kind=kind)


def test_admin_report_pages_show_the_figures_and_export_csv(november, tenants):
    owner = tenants.users_a["owner"]
    owner.is_staff = owner.is_superuser = True
    owner.save()
    response = _admin_get(owner, {"month": "2025-11"}, "vat_summary")
    response.render()
    html = response.content.decode()
    assert "VAT summary (Mushak-9.1)" in html
    assert "13,314.75" in html and "7,029.75" in html and "2,325.00" in html
    assert "INV/2025-26/000003" in html  # voided, left out, named

    response = _admin_get(
        owner, {"date_from": "2025-11-01", "date_to": "2025-11-30"}, "sales_register"
    )
    response.render()
    html = response.content.decode()
    assert "CN/2025-26/000001" in html and "133,454.75" in html

    csv_response = _admin_get(
        owner,
        {"date_from": "2025-11-01", "date_to": "2025-11-30", "export": "csv"},
        "sales_register",
    )
    assert csv_response["Content-Type"].startswith("text/csv")
    assert b"133454.75" in csv_response.content

    bad = _admin_get(owner, {"month": "2025-13"}, "vat_summary")
    bad.render()
    assert "Correct the filters above" in bad.content.decode()


def test_admin_report_pages_keep_to_the_users_companies(november, tenants):
    from django.http import Http404

    from invoicing import admin_reports

    class AnyMember(django_admin.ModelAdmin):
        def has_view_permission(self, request, obj=None):
            return True

    def get(user, params):
        request = RequestFactory().get("/", params)
        request.user = user
        model_admin = AnyMember(Invoice, django_admin.site)
        return admin_reports.report_view(model_admin, request, kind="vat_summary")

    with pytest.raises(Http404):
        get(tenants.owner_b, {"company": str(tenants.a.pk), "month": "2025-11"})
    own = get(tenants.owner_b, {"month": "2025-11"})
    own.render()
    assert own.context_data["company"] == tenants.b
    assert "Padma Trading" not in own.content.decode()
    auditor = get(tenants.users_a["auditor"], {"month": "2025-11"})  # read-only role reads
    auditor.render()
    assert "7,029.75" in auditor.content.decode()
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        get(tenants.outsider, {"month": "2025-11"})


def test_reports_for_one_branch(tenants):
    """Serial numbers run per place of supply; the register and the summary can be cut by it."""
    with time_machine.travel(NOW, tick=False):
        books = Books(tenants)
        books.invoice(books.buyer, [IT_SUPPORT], date(2025, 11, 3))  # head office, VAT 6,000.00
        ctg = books.invoice(
            books.buyer, [CEMENT], date(2025, 11, 4), branch="CTG"
        )  # 62,400.00, VAT 4,680.00
    company = books.company
    register = reports.sales_register(
        company=company, date_from=date(2025, 11, 1), date_to=date(2025, 11, 30), branch="CTG"
    )
    assert [row["number"] for row in register["rows"]] == [ctg.number]
    assert "CTG" in ctg.number
    assert register["totals"]["vat"] == D("4680.00")
    everything = reports.vat_summary(company=company, month="2025-11")
    chittagong = reports.vat_summary(company=company, month="2025-11", branch="CTG")
    assert everything["net"]["vat"] == D("10680.00")
    assert chittagong["net"]["vat"] == D("4680.00")
