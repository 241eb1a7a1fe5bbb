"""The printable Mushak forms of an invoice: 6.3 (tax invoice), 6.7 (credit note), 6.8 (debit
note), as HTML and PDF.

    mushak_context(invoice) -> {"doc": {...}}   # every figure already formatted for print
    mushak_html(invoice) -> str                 # one copy (the original), for the browser
    mushak_pdf(invoice) -> bytes                # two copies: original (buyer), duplicate (seller)
    mushak_filename(invoice) -> "Mushak-6.3_INV-2025-26-000123.pdf"

The form follows the invoice's kind (invoice -> 6.3, credit note -> 6.7, debit note -> 6.8); a
vendor bill has no Mushak form and is refused (ValidationFailed not_a_mushak_document). Drafts
print with a DRAFT stamp and no number, voided documents with a VOID stamp.

Everything printed comes from the read model as snapshotted at approval (rates, amounts, the
time of issue), so reprinting an issued invoice after a rate change prints what was issued.
The responsible officer is the approver (their name and their role in the company, e.g.
"Accountant") unless the caller names someone (`officer_name`, `officer_designation`).
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

from num2words import num2words

from core.errors import ValidationFailed
from core.pdf import render_html, render_pdf
from invoicing.models import Invoice, InvoiceKind, InvoiceStatus, VatKind

TEMPLATES = {
    InvoiceKind.INVOICE: "invoicing/mushak_6_3.html",
    InvoiceKind.CREDIT_NOTE: "invoicing/mushak_6_7.html",
    InvoiceKind.DEBIT_NOTE: "invoicing/mushak_6_8.html",
}
FORMS = {InvoiceKind.INVOICE: "6.3", InvoiceKind.CREDIT_NOTE: "6.7", InvoiceKind.DEBIT_NOTE: "6.8"}

# Rule 40: a credit or debit note must name the buyer when its VAT effect exceeds Tk 5,000.
NOTE_BUYER_THRESHOLD = Decimal("5000.00")

HEADS = {
    "6.3": {
        "code_bn": "মূসক-৬.৩",
        "code_en": "Mushak-6.3",
        "title_bn": "কর চালানপত্র",
        "title_en": "Tax invoice",
        "rule_bn": "[বিধি ৪০ এর উপ-বিধি (১) এর দফা (গ) ও দফা (চ) দ্রষ্টব্য]",
        "rule_en": "[see rule 40(1)(c) and (f)]",
    },
    "6.7": {
        "code_bn": "মূসক-৬.৭",
        "code_en": "Mushak-6.7",
        "title_bn": "ক্রেডিট নোট",
        "title_en": "Credit note",
        "rule_bn": "",
        "rule_en": "",
    },
    "6.8": {
        "code_bn": "মূসক-৬.৮",
        "code_en": "Mushak-6.8",
        "title_bn": "ডেবিট নোট",
        "title_en": "Debit note",
        "rule_bn": "",
        "rule_en": "",
    },
}

COPIES = {
    "original": {"key": "original", "label_bn": "মূল কপি", "label_en": "Original (buyer)"},
    "duplicate": {"key": "duplicate", "label_bn": "দ্বিতীয় কপি", "label_en": "Duplicate (seller)"},
}
HTML_COPIES = ("original",)
PDF_COPIES = ("original", "duplicate")

ZERO = Decimal("0.00")


# --- formatting ----------------------------------------------------------------------------


def amount(value: Decimal | None) -> str:
    """Taka to the paisa with South Asian grouping, as Bangladesh prints amounts:
    1234567.5 -> "12,34,567.50"; negatives keep their sign."""
    value = Decimal(value or 0).quantize(Decimal("0.01"))
    sign = "-" if value < 0 else ""
    whole, _, paisa = f"{abs(value):.2f}".partition(".")
    if len(whole) > 3:
        head, tail = whole[:-3], whole[-3:]
        groups = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        whole = ",".join([*groups, tail])
    return f"{sign}{whole}.{paisa}"


def quantity(value: Decimal) -> str:
    """4-place quantities without trailing zeros: 120.0000 -> "120", 10.5000 -> "10.5"."""
    text = f"{Decimal(value).normalize():f}"
    return text


def unit_price(value: Decimal) -> str:
    """At least two places, up to the four stored: 520 -> "520.00", 12.3456 -> "12.3456"."""
    value = Decimal(value)
    if value == value.quantize(Decimal("0.01")):
        return amount(value)
    whole = amount(value.quantize(Decimal("1"), rounding="ROUND_DOWN")).split(".")[0]
    fraction = f"{value.normalize():f}".split(".")[1]
    return f"{whole}.{fraction}"


def rate(value: Decimal) -> str:
    """A percentage rate: 15.0000 -> "15%", 7.5000 -> "7.5%", 0 -> "—" (none)."""
    value = Decimal(value)
    if not value:
        return "—"
    return f"{value.normalize():f}%"


def vat_column(line) -> str:
    """Column 9: the VAT rate, "Zero-rated", "Exempt (SRO ...)" or the specific tax per unit."""
    if line.vat_kind == VatKind.PERCENT:
        return f"{Decimal(line.vat_rate).normalize():f}%"
    if line.vat_kind == VatKind.SPECIFIC:
        per = unit_price(line.vat_specific_amount)
        return f"Tk {per}/{line.unit}" if line.unit else f"Tk {per}/unit"
    if line.vat_kind == VatKind.ZERO:
        return "0% (zero-rated)"
    return f"Exempt ({line.sro_reference})" if line.sro_reference else "Exempt"


def date_text(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def time_text(value: time | None) -> str:
    return value.strftime("%H:%M") if value else ""


def in_words(value: Decimal) -> dict[str, str]:
    """The amount in words, English (lakh and crore) and Bangla: 89289.75 -> "Taka eighty-nine
    thousand, two hundred and eighty-nine and paisa seventy-five only"."""
    value = abs(Decimal(value).quantize(Decimal("0.01")))
    taka, paisa = int(value), int((value * 100) % 100)
    english = f"Taka {num2words(taka, lang='en_IN')}"
    bangla = f"{num2words(taka, lang='bn')} টাকা"
    if paisa:
        english += f" and paisa {num2words(paisa, lang='en_IN')}"
        bangla += f" {num2words(paisa, lang='bn')} পয়সা"
    return {"en": f"{english} only", "bn": f"{bangla} মাত্র"}


# --- the context ---------------------------------------------------------------------------


def _officer(invoice: Invoice, name: str | None, designation: str | None) -> dict:
    user = invoice.approved_by
    if name is None:
        name = (user.get_full_name() or user.get_username()) if user else ""
        name = name or invoice.approved_by_label
    if designation is None:
        designation = ""
        if user is not None:
            membership = user.memberships.filter(company_id=invoice.company_id).first()
            if membership is not None:
                designation = membership.get_role_display()
    return {"name": name, "designation": designation}


def _etin(etin: str) -> str:
    return f"{etin[:4]}-{etin[4:8]}-{etin[8:]}" if len(etin) == 12 else etin


def _bin_display(digits: str) -> str:
    return f"{digits[:9]}-{digits[9:]}" if len(digits) == 13 else digits


def _buyer(invoice: Invoice, party) -> dict:
    """The buyer as at issue (snapshotted in the approval or note event); live party data only
    for drafts and documents issued before snapshots were kept."""
    live = _party(party)
    if not invoice.buyer_name:
        return live
    return {
        "name": invoice.buyer_name,
        "bin": _bin_display(invoice.buyer_bin),
        "etin": live["etin"],
        "address": invoice.buyer_address,
    }


def _seller(invoice: Invoice, company) -> dict:
    if not invoice.seller_name:
        return {
            "name": company.legal_name or company.name,
            "bin": company.bin_display,
            "etin": _etin(company.etin),
            "address": invoice.place_of_supply or company.address,
        }
    return {
        "name": invoice.seller_name,
        "bin": _bin_display(invoice.seller_bin),
        "etin": _etin(company.etin),
        "address": invoice.place_of_supply or invoice.seller_address,
    }


def _party(party) -> dict:
    if party is None:
        return {"name": "", "bin": "", "address": "", "etin": ""}
    return {
        "name": party.name,
        "bin": party.bin_display,
        "etin": party.etin_display,
        "address": party.address,
    }


def _lines(invoice: Invoice) -> list[dict]:
    return [
        {
            "serial": line.serial,
            "description": line.description,
            "brand": line.brand,
            "unit": line.unit,
            "quantity": quantity(line.quantity),
            "unit_price": unit_price(line.unit_price),
            "value": amount(line.value),
            "sd_rate": rate(line.sd_rate),
            "sd_amount": amount(line.sd_amount),
            "vat_rate": vat_column(line),
            "vat_amount": amount(line.vat_amount),
            "total": amount(line.total),
        }
        for line in invoice.lines.all()
    ]


def _totals(value, sd, vat, total) -> dict:
    return {"value": amount(value), "sd": amount(sd), "vat": amount(vat), "total": amount(total)}


def mushak_form(invoice: Invoice) -> str:
    """'6.3', '6.7' or '6.8'; a vendor bill has no Mushak form."""
    if invoice.kind not in FORMS:
        raise ValidationFailed(
            f"{invoice.get_kind_display()} {invoice} has no Mushak form: only tax invoices "
            "(6.3), credit notes (6.7) and debit notes (6.8) are printed.",
            code="not_a_mushak_document",
        )
    return FORMS[invoice.kind]


def mushak_context(
    invoice: Invoice,
    *,
    copies: tuple[str, ...] = HTML_COPIES,
    officer_name: str | None = None,
    officer_designation: str | None = None,
) -> dict:
    """Everything the Mushak template prints, formatted, under the key "doc"."""
    form = mushak_form(invoice)
    company = invoice.company
    customer = invoice.customer
    buyer = _buyer(invoice, customer)
    destination = invoice.destination or (
        (customer.shipping_address or customer.address) if customer else ""
    )
    stamp = ""
    if invoice.status == InvoiceStatus.DRAFT:
        stamp = "DRAFT"
    elif invoice.status == InvoiceStatus.VOID:
        stamp = "VOID"
    doc = {
        "form": form,
        "head": HEADS[form],
        "kind": invoice.kind,
        "status": invoice.status,
        "stamp": stamp,
        "number": invoice.mushak_number or invoice.number,
        "date": date_text(invoice.issue_date),
        "time": time_text(invoice.issue_time),
        "currency": invoice.currency,
        "seller": _seller(invoice, company),
        "buyer": buyer,
        "destination": destination,
        "vehicle": ", ".join(x for x in (invoice.vehicle_type, invoice.vehicle_number) if x),
        "lines": _lines(invoice),
        "totals": _totals(
            invoice.total_value, invoice.total_sd, invoice.total_vat, invoice.total_amount
        ),
        "amount_in_words": in_words(invoice.total_amount),
        "officer": _officer(invoice, officer_name, officer_designation),
        "copies": [COPIES[key] for key in copies],
        "vds": None,
        "void_reason": invoice.void_reason if invoice.status == InvoiceStatus.VOID else "",
        "notes": [invoice.notes] if invoice.notes else [],
    }
    withholding = (
        invoice.buyer_withholding
        if invoice.buyer_name
        else bool(customer and customer.is_withholding_entity)
    )
    if invoice.kind == InvoiceKind.INVOICE and withholding:
        vds = invoice.vds_amount
        doc["vds"] = {
            "amount": amount(vds),
            "net_payable": amount(invoice.total_amount - vds),
            "share": (
                f"{(vds * 100 / invoice.total_vat).quantize(Decimal('0.01')).normalize():f}%"
                if invoice.total_vat
                else ""
            ),
        }
    if invoice.is_note:
        doc.update(_note_context(invoice))
    return {"doc": doc}


def _note_context(invoice: Invoice) -> dict:
    original = invoice.original
    sign = Decimal(-1) if invoice.kind == InvoiceKind.CREDIT_NOTE else Decimal(1)
    effect_vat = invoice.total_vat
    required = abs(effect_vat) > NOTE_BUYER_THRESHOLD
    context = {
        "reason": invoice.reason,
        "original": None,
        "effect": {
            "sign": "−" if sign < 0 else "+",
            "value": amount(sign * invoice.total_value),
            "sd": amount(sign * invoice.total_sd),
            "vat": amount(sign * invoice.total_vat),
            "total": amount(sign * invoice.total_amount),
        },
        "buyer_required": required,
        "buyer_missing": required and not (invoice.customer and invoice.customer.name),
    }
    if original is not None:
        earlier = _earlier_notes(invoice)
        before = [
            original.total_value + earlier[0],
            original.total_sd + earlier[1],
            original.total_vat + earlier[2],
            original.total_amount + earlier[3],
        ]
        after = [
            before[0] + sign * invoice.total_value,
            before[1] + sign * invoice.total_sd,
            before[2] + sign * invoice.total_vat,
            before[3] + sign * invoice.total_amount,
        ]
        context["original"] = {
            "number": original.mushak_number or original.number,
            "date": date_text(original.issue_date),
            "time": time_text(original.issue_time),
            "totals": _totals(
                original.total_value,
                original.total_sd,
                original.total_vat,
                original.total_amount,
            ),
            "earlier": _totals(*earlier) if any(earlier) else None,
            "after": _totals(*after),
        }
    return context


def _earlier_notes(note: Invoice) -> list[Decimal]:
    """Net value, SD, VAT and total of the notes issued on the same invoice before this one
    (debit notes add, credit notes subtract)."""
    sums = [ZERO, ZERO, ZERO, ZERO]
    earlier = (
        Invoice.objects.filter(original_id=note.original_id, pk__lt=note.pk)
        .exclude(status=InvoiceStatus.DRAFT)
        .values_list("kind", "total_value", "total_sd", "total_vat", "total_amount")
    )
    for kind, *figures in earlier:
        sign = -1 if kind == InvoiceKind.CREDIT_NOTE else 1
        sums = [total + sign * figure for total, figure in zip(sums, figures, strict=True)]
    return sums


def _load(invoice: Invoice) -> Invoice:
    """The invoice with what the form prints in a handful of queries."""
    return (
        Invoice.objects.select_related(
            "company", "customer", "approved_by", "original", "original__customer"
        )
        .prefetch_related("lines")
        .get(pk=invoice.pk)
    )


def mushak_html(invoice: Invoice, *, copies: tuple[str, ...] = HTML_COPIES, **officer) -> str:
    mushak_form(invoice)
    invoice = _load(invoice)
    return render_html(TEMPLATES[invoice.kind], mushak_context(invoice, copies=copies, **officer))


def mushak_pdf(invoice: Invoice, *, copies: tuple[str, ...] = PDF_COPIES, **officer) -> bytes:
    mushak_form(invoice)
    invoice = _load(invoice)
    return render_pdf(TEMPLATES[invoice.kind], mushak_context(invoice, copies=copies, **officer))


def mushak_filename(invoice: Invoice, extension: str = "pdf") -> str:
    """`Mushak-6.3_INV-2025-26-000123.pdf` (a draft: `Mushak-6.3_draft-<id>.pdf`)."""
    form = mushak_form(invoice)
    number = (invoice.mushak_number or invoice.number).replace("/", "-")
    return f"Mushak-{form}_{number or f'draft-{invoice.pk}'}.{extension}"
