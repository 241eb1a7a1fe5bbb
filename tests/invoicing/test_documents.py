"""Mushak-6.3, 6.7 and 6.8 as HTML and PDF, from invoices made through invoicing.services.

The figures are worked by hand (VAT base = value + SD, each rounded half-up per line):

    line 1  cement 120 bag x 520.00, SD 0, VAT 7.5%   62,400.00 + 0.00     + 4,680.00 = 67,080.00
    line 2  consulting 10.5 h x 1,500.00, SD 10%, 15% 15,750.00 + 1,575.00 + 2,598.75 = 19,923.75
            (VAT = (15,750 + 1,575) x 15% = 2,598.75)
    line 3  soft drink 3 case x 600.00, SD 25%,
            specific VAT Tk 12 per case               1,800.00 + 450.00    + 36.00    = 2,286.00
    totals                                            79,950.00  2,025.00    7,314.75   89,289.75
"""

import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine

from accounting.services import company_ledger_setup
from core.errors import ValidationFailed
from core.pdf import bengali_font_missing, pdf_from_html
from invoicing import documents, services
from invoicing.models import Invoice, InvoiceKind

# 2025-11-20 10:30 in Dhaka (UTC+6): the "now" of these tests.
NOW = datetime(2025, 11, 20, 4, 30, tzinfo=UTC)

CEMENT = {
    "description": "Portland composite cement, 50 kg bag",
    "brand": "Shah Cement",
    "unit": "bag",
    "quantity": "120",
    "unit_price": "520.00",
    "vat_rate": "VAT7.5",
    "sd_rate": "0",
}
CONSULTING = {
    "description": "Site supervision (consulting)",
    "unit": "hour",
    "quantity": "10.5",
    "unit_price": "1500.00",
    "vat_rate": "VAT15",
    "sd_rate": "10",
}
SOFT_DRINK = {
    "description": "Soft drink, 250 ml can",
    "brand": "Mojo",
    "unit": "case",
    "quantity": "3",
    "unit_price": "600.00",
    "vat_rate": "SPECIFIC",
    "specific_vat_amount": "12",
    "sd_rate": "25",
}


class Books:
    """Company A ready to invoice: ledger, VAT rates, two customers (one withholds VAT)."""

    def __init__(self, tenants):
        self.company = tenants.a
        self.company.legal_name = "Padma Trading Ltd."
        self.company.bin = "0017457070402"
        self.company.address = "House 12, Road 5, Dhanmondi, Dhaka 1205"
        self.company.save()
        self.actor = tenants.users_a["accountant"]
        self.actor.first_name, self.actor.last_name = "Farhana", "Rahman"
        self.actor.save()
        company_ledger_setup(company=self.company)
        services.vat_rates_seed(company=self.company)
        # The soft drink's specific VAT (Tk 12 a case) is the company's rate, not the line's.
        services.vat_rate_update(
            actor=self.actor,
            vat_rate=self.company.vat_rates.get(code="SPECIFIC"),
            specific_amount=Decimal("12"),
        )
        self.buyer = services.party_create(
            actor=self.actor,
            company=self.company,
            name="Meghna Builders Ltd.",
            bin="0001234560101",
            address="Plot 7, Tejgaon I/A, Dhaka 1208",
            shipping_address="Site office, Mirpur 10, Dhaka 1216",
        )
        self.withholder = services.party_create(
            actor=self.actor,
            company=self.company,
            name="Bangladesh Rural Development Board",
            bin="0009876540001",
            address="Palli Bhaban, Kawran Bazar, Dhaka 1215",
            is_withholding_entity=True,
        )

    def invoice(self, customer, lines, day, *, approve=True, **fields) -> Invoice:
        invoice = services.invoice_create_draft(
            actor=self.actor, company=self.company, customer=customer.pk, lines=lines,
            issue_date=day, **fields,
        )  # fmt: skip
        if approve:
            invoice = services.invoice_approve(actor=self.actor, invoice=invoice)
        return Invoice.objects.get(pk=invoice.pk)


@pytest.fixture
def books(tenants):
    with time_machine.travel(NOW, tick=False):
        yield Books(tenants)


@pytest.fixture
def invoice(books):
    return books.invoice(
        books.buyer,
        [CEMENT, CONSULTING, SOFT_DRINK],
        date(2025, 11, 3),
        vehicle_type="Covered van",
        vehicle_number="Dhaka Metro-Ta 11-2345",
    )


def text_of(html: str) -> str:
    """The visible text, tags dropped and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


# --- Mushak-6.3 ---------------------------------------------------------------------------------


def test_mushak_6_3_html_carries_every_header_field(books, invoice):
    html = documents.mushak_html(invoice)
    text = text_of(html)
    assert invoice.number == "INV/2025-26/000001"
    for expected in (
        "মূসক-৬.৩",
        "Mushak-6.3",
        "কর চালানপত্র",
        "Tax invoice",
        # seller: registered name, BIN shown 9-4, address of issue
        "Padma Trading Ltd.",
        "001745707-0402",
        "House 12, Road 5, Dhanmondi, Dhaka 1205",
        # buyer: name, BIN, address; destination (the buyer's shipping address by default)
        "Meghna Builders Ltd.",
        "000123456-0101",
        "Plot 7, Tejgaon I/A, Dhaka 1208",
        "সরবরাহের গন্তব্যস্থল",
        "Site office, Mirpur 10, Dhaka 1216",
        # vehicle, number, date and time of issue (24 h, Dhaka time at approval)
        "Covered van, Dhaka Metro-Ta 11-2345",
        "INV/2025-26/000001",
        "03/11/2025",
        "10:30",
        # footer: the approver and their role, signature line
        "Farhana Rahman",
        "Accountant",
        "স্বাক্ষর",
        "Signature",
    ):
        assert expected in text, expected
    assert 'font-family: "Noto Sans", "Noto Sans Bengali"' in html
    assert "DRAFT" not in text and "VOID" not in text


def test_mushak_6_3_lines_show_all_eleven_columns_and_hand_checked_totals(invoice):
    html = documents.mushak_html(invoice)
    body = html[html.index('<table class="grid" id="lines-original"') :]
    body = body[: body.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    header = [text_of(cell).strip() for cell in re.findall(r"<th>(.*?)</th>", rows[0], re.S)]
    assert len(header) == 11
    assert header[1].startswith("পণ্য বা সেবার বর্ণনা") and "with brand" in header[1]
    assert [text_of(c).strip() for c in re.findall(r"<th>(.*?)</th>", rows[1])] == [
        f"({n})" for n in range(1, 12)
    ]

    def cells(row):
        return [text_of(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]

    assert cells(rows[2]) == [
        "1", "Portland composite cement, 50 kg bag Brand: Shah Cement", "bag", "120", "520.00",
        "62,400.00", "—", "0.00", "7.5%", "4,680.00", "67,080.00",
    ]  # fmt: skip
    assert cells(rows[3]) == [
        "2", "Site supervision (consulting)", "hour", "10.5", "1,500.00",
        "15,750.00", "10%", "1,575.00", "15%", "2,598.75", "19,923.75",
    ]  # fmt: skip
    assert cells(rows[4]) == [
        "3", "Soft drink, 250 ml can Brand: Mojo", "case", "3", "600.00",
        "1,800.00", "25%", "450.00", "Tk 12.00/case", "36.00", "2,286.00",
    ]  # fmt: skip
    assert cells(rows[5]) == [
        "সর্বমোট / Total", "79,950.00", "", "2,025.00", "", "7,314.75", "89,289.75",
    ]  # fmt: skip
    # the read model agrees with the form
    assert (invoice.total_value, invoice.total_sd, invoice.total_vat, invoice.total_amount) == (
        Decimal("79950.00"),
        Decimal("2025.00"),
        Decimal("7314.75"),
        Decimal("89289.75"),
    )
    text = text_of(html)
    assert (
        "Taka eighty-nine thousand, two hundred and eighty-nine and paisa seventy-five only" in text
    )


def test_mushak_6_3_for_a_withholding_buyer_is_the_vds_certificate(books):
    invoice = books.invoice(
        books.withholder,
        [{**CONSULTING, "quantity": "20"}],  # 30,000.00 + SD 3,000.00 + VAT 4,950.00
        date(2025, 11, 10),
    )
    text = text_of(documents.mushak_html(invoice))
    assert "উৎসে কর কর্তন সনদপত্র" in text
    assert "serves as the certificate of VAT deducted at source" in text
    assert "VAT to be deducted at source: Tk 4,950.00" in text
    assert "payable to the seller: Tk 33,000.00" in text  # 37,950.00 - 4,950.00
    # an ordinary buyer gets no VDS note
    other = books.invoice(books.buyer, [CONSULTING], date(2025, 11, 10))
    assert "deducted at source" not in text_of(documents.mushak_html(other))


def test_draft_prints_stamped_without_a_number_and_void_prints_void(books):
    draft = books.invoice(books.buyer, [CEMENT], date(2025, 11, 5), approve=False)
    text = text_of(documents.mushak_html(draft))
    assert "DRAFT" in text and "(not yet issued)" in text
    assert documents.mushak_filename(draft) == f"Mushak-6.3_draft-{draft.pk}.pdf"

    approved = books.invoice(books.buyer, [CEMENT], date(2025, 11, 5))
    services.invoice_void(actor=books.actor, invoice=approved, reason="Keyed twice")
    text = text_of(documents.mushak_html(Invoice.objects.get(pk=approved.pk)))
    assert "VOID" in text and "Keyed twice" in text and approved.number in text


def test_user_text_is_escaped(books):
    books.buyer.name = "<script>alert(1)</script> & Co"
    books.buyer.save()
    invoice = books.invoice(books.buyer, [CEMENT], date(2025, 11, 5))
    html = documents.mushak_html(invoice)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html


def test_mushak_6_3_pdf_has_both_copies_the_number_and_the_totals(invoice):
    pdf = documents.mushak_pdf(invoice)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert text.count("INV/2025-26/000001") >= 2
    for figure in ("79,950.00", "2,025.00", "7,314.75", "89,289.75", "001745707-0402"):
        assert figure in text, figure
    assert "Original (buyer)" in text and "Duplicate (seller)" in text
    assert documents.mushak_filename(invoice) == "Mushak-6.3_INV-2025-26-000001.pdf"


@pytest.mark.skipif(bool(bengali_font_missing()), reason=bengali_font_missing() or "ok")
def test_bangla_labels_are_set_in_a_bengali_font():
    from pypdf import PdfReader

    pdf = pdf_from_html(
        "<html><body><p style=\"font-family: 'Noto Sans Bengali'\">মূসক-৬.৩ কর চালানপত্র</p>"
        "</body></html>"
    )
    fonts = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    assert any("Bengali" in name for name in fonts), fonts


def test_documents_never_fetch_from_the_network():
    html = (
        '<html><body><img src="http://169.254.169.254/latest/meta-data/">'
        '<img src="file:///etc/passwd"><p>ok</p></body></html>'
    )
    from unittest import mock

    with mock.patch("urllib.request.OpenerDirector.open") as opened:
        pdf = pdf_from_html(html)
    assert pdf.startswith(b"%PDF")
    opened.assert_not_called()


# --- Mushak-6.7 and 6.8 ---------------------------------------------------------------------


def test_credit_note_mushak_6_7(books, invoice):
    note = services.credit_note_issue(
        actor=books.actor,
        invoice=invoice,
        reason="20 bags returned damaged",
        lines=[{**CEMENT, "quantity": "20"}],  # 10,400.00 + VAT 780.00 = 11,180.00
        issue_date=date(2025, 11, 15),
    )
    note = Invoice.objects.get(pk=note.pk)
    assert note.kind == InvoiceKind.CREDIT_NOTE
    html = documents.mushak_html(note)
    text = text_of(html)
    assert 'class="mushak mushak-6-7"' in html
    for expected in (
        "মূসক-৬.৭",
        "ক্রেডিট নোট",
        "Credit note",
        note.number,  # note number, date and time
        "15/11/2025",
        "10:30",
        "Padma Trading Ltd.",  # supplier name, address, BIN
        "House 12, Road 5, Dhanmondi, Dhaka 1205",
        "001745707-0402",
        "INV/2025-26/000001",  # original 6.3 number, date, time
        "03/11/2025",
        "20 bags returned damaged",  # reason
        "Meghna Builders Ltd.",  # buyer
        "000123456-0101",
        "the VAT effect is Tk 5,000 or less",
    ):
        assert expected in text, expected
    # VAT effect: original, this note (negative), after the note
    effect = text_of(html[html.index('id="effect-original"') :].split("</table>")[0])
    assert "Original Mushak-6.3 INV/2025-26/000001 79,950.00 2,025.00 7,314.75 89,289.75" in effect
    assert "-10,400.00 0.00 -780.00 -11,180.00" in effect
    assert "After this note 69,550.00 2,025.00 6,534.75 78,109.75" in effect
    pdf = documents.mushak_pdf(note)
    assert pdf.startswith(b"%PDF")
    assert note.number in pdf_text(pdf) and "11,180.00" in pdf_text(pdf)
    assert documents.mushak_filename(note).startswith("Mushak-6.7_")


def test_debit_note_mushak_6_8_names_the_buyer_as_required_above_tk_5000(books, invoice):
    note = services.debit_note_issue(
        actor=books.actor,
        invoice=invoice,
        reason="Additional supervision agreed",
        # 40 h x 1,500 = 60,000.00; SD 6,000.00; VAT 66,000 x 15% = 9,900.00 (> 5,000)
        lines=[{**CONSULTING, "quantity": "40"}],
        issue_date=date(2025, 11, 18),
    )
    note = Invoice.objects.get(pk=note.pk)
    html = documents.mushak_html(note)
    text = text_of(html)
    assert 'class="mushak mushak-6-8"' in html
    assert "মূসক-৬.৮" in text and "ডেবিট নোট" in text and "Debit note" in text
    assert "required: the VAT effect exceeds Tk 5,000" in text
    assert "Meghna Builders Ltd." in text and "000123456-0101" in text
    assert "+" not in documents.mushak_context(note)["doc"]["effect"]["vat"]
    assert documents.mushak_context(note)["doc"]["effect"]["vat"] == "9,900.00"
    assert "75,900.00" in text  # 60,000 + 6,000 + 9,900


def test_a_vendor_bill_has_no_mushak_form(books, invoice):
    Invoice.objects.filter(pk=invoice.pk).update(kind=InvoiceKind.BILL)
    bill = Invoice.objects.get(pk=invoice.pk)
    with pytest.raises(ValidationFailed) as caught:
        documents.mushak_html(bill)
    assert caught.value.code == "not_a_mushak_document"


def test_amount_formatting_groups_lakh_and_crore():
    assert documents.amount(Decimal("1234567.5")) == "12,34,567.50"
    assert documents.amount(Decimal("-12345678.01")) == "-1,23,45,678.01"
    assert documents.amount(Decimal("999")) == "999.00"
    assert documents.unit_price(Decimal("12345.3456")) == "12,345.3456"
    assert documents.quantity(Decimal("100.0000")) == "100"


def test_a_later_note_shows_the_earlier_notes_in_its_vat_effect(books, invoice):
    services.credit_note_issue(
        actor=books.actor,
        invoice=invoice,
        reason="20 bags returned",
        lines=[{**CEMENT, "quantity": "20"}],  # -10,400.00, VAT -780.00, -11,180.00
        issue_date=date(2025, 11, 15),
    )
    debit = services.debit_note_issue(
        actor=books.actor,
        invoice=invoice,
        reason="2 more hours",
        lines=[{**CONSULTING, "quantity": "2"}],  # 3,000.00 + SD 300.00 + VAT 495.00
        issue_date=date(2025, 11, 18),
    )
    original = documents.mushak_context(Invoice.objects.get(pk=debit.pk))["doc"]["original"]
    assert original["earlier"] == {
        "value": "-10,400.00", "sd": "0.00", "vat": "-780.00", "total": "-11,180.00",
    }  # fmt: skip
    # 79,950 - 10,400 + 3,000; 2,025 + 300; 7,314.75 - 780 + 495; 89,289.75 - 11,180 + 3,795
    assert original["after"] == {
        "value": "72,550.00", "sd": "2,325.00", "vat": "7,029.75", "total": "81,904.75",
    }  # fmt: skip


def test_a_server_without_weasyprint_answers_a_clear_error(monkeypatch):
    import sys

    from core.pdf import PdfRenderError

    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if Pango were missing
    with pytest.raises(PdfRenderError) as caught:
        pdf_from_html("<p>x</p>")
    assert (caught.value.code, caught.value.http_status) == ("pdf_unavailable", 503)
    assert "ask for the HTML" in caught.value.message
