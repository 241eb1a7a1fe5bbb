"""The invoice aggregate: replay a stream's events into state, decide commands into new events.

Pure Python, no ORM: the services load a stream, call `decide_*`, append what it returns and
project the resulting state. Every refusal is an `InvoiceError` (HTTP 400) or a `ConflictError`
(HTTP 409) with a stable code, raised before anything is written.

Streams: one per tax invoice (or vendor bill) and one per credit/debit note. A note is issued
into its own stream (`NoteIssued`) and applied to the invoice it adjusts (`CreditNoteApplied`,
`DebitNoteApplied`) in the same transaction, so both versions move together.

Payloads are JSON: decimals as strings, dates ISO. Event types and their payloads:

    InvoiceDrafted      kind, customer_id, vendor_id, issue_date, due_date, currency, branch,
                        place_of_supply, destination, vehicle_type, vehicle_number, notes,
                        recurring_id, lines
    DraftEdited         any of the header fields above, and lines (replaced whole)
    InvoiceApproved     number, series, sequence, fiscal_year, issue_date, issue_time, due_date,
                        lines (snapshot), totals, vds_amount, journal_entry_id, approved_at
    PaymentRecorded     date, amount, vds_withheld, method, reference, account_code,
                        journal_entry_id
    InvoiceVoided       reason, date, journal_entry_id (reversal; null for a draft)
    MarkedOverdue       date
    ReminderSent        date, to
    CreditNoteApplied   note_stream_id, note_number, amount
    DebitNoteApplied    note_stream_id, note_number, amount
    NoteIssued          kind, original_stream_id, original_number, customer_id, reason, number,
                        series, sequence, fiscal_year, issue_date, issue_time, currency, branch,
                        place_of_supply, lines, totals, journal_entry_id, approved_at
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation

from core.errors import ConflictError, DomainError
from invoicing import tax

ZERO = Decimal("0.00")

INVOICE = "invoice"
BILL = "bill"
CREDIT_NOTE = "credit_note"
DEBIT_NOTE = "debit_note"

DRAFT = "draft"
APPROVED = "approved"
PARTIALLY_PAID = "partially_paid"
PAID = "paid"
OVERDUE = "overdue"
VOID = "void"
OPEN_STATUSES = (APPROVED, PARTIALLY_PAID, OVERDUE)

HEADER_FIELDS = (
    "customer_id",
    "vendor_id",
    "issue_date",
    "due_date",
    "currency",
    "branch",
    "place_of_supply",
    "destination",
    "vehicle_type",
    "vehicle_number",
    "notes",
)
TEXT_LIMITS = {
    "branch": 30,
    "place_of_supply": 255,
    "destination": 255,
    "vehicle_type": 50,
    "vehicle_number": 50,
    "notes": 5000,
    "reason": 500,
    "description": 500,
    "brand": 100,
    "unit": 30,
    "method": 30,
    "reference": 100,
}
MAX_LINES = 500
MAX_QUANTITY = Decimal("1e12")
MAX_PRICE = Decimal("1e12")
# Money columns are DecimalField(max_digits=18, decimal_places=2): below 10^16. Every line
# figure and every invoice total stays below 10^15, which leaves room for the sums of notes
# and payments on top.
MAX_AMOUNT = Decimal("1e15")
# Any number typed in is refused from 10^15 up before it is quantized (a 28-digit context
# cannot quantize 1e30 to 4 places).
MAX_INPUT = Decimal("1e15")


class InvoiceError(DomainError):
    code = "invalid_invoice"
    default_message = "The invoice cannot be changed this way."


_DECIMALS: dict[str, Decimal] = {}


def _dec(text) -> Decimal:
    """Decimal of a payload string; replays parse the same few strings (rates, prices) again
    and again, so they are kept (Decimals are immutable)."""
    found = _DECIMALS.get(text)
    if found is None:
        found = Decimal(text)
        if len(_DECIMALS) < 100_000:
            _DECIMALS[text] = found
    return found


# --- state -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Line:
    serial: int
    description: str
    unit: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate_code: str
    vat_kind: str
    vat_rate: Decimal = ZERO
    vat_specific_amount: Decimal = ZERO
    sd_rate: Decimal = ZERO
    item_id: int | None = None
    brand: str = ""
    sro_reference: str = ""
    value: Decimal = ZERO
    sd_amount: Decimal = ZERO
    vat_amount: Decimal = ZERO
    total: Decimal = ZERO

    @property
    def vat_label(self) -> str:
        return tax.vat_label(self.vat_kind, self.vat_rate, self.vat_specific_amount)

    def computed(self) -> Line:
        t = tax.line_tax(
            quantity=self.quantity,
            unit_price=self.unit_price,
            sd_rate=self.sd_rate,
            vat_kind=self.vat_kind,
            vat_rate=self.vat_rate,
            vat_specific_amount=self.vat_specific_amount,
        )
        return replace(
            self, value=t.value, sd_amount=t.sd_amount, vat_amount=t.vat_amount, total=t.total
        )

    def as_payload(self) -> dict:
        return {
            "serial": self.serial,
            "item_id": self.item_id,
            "description": self.description,
            "brand": self.brand,
            "unit": self.unit,
            "quantity": str(self.quantity),
            "unit_price": str(self.unit_price),
            "sd_rate": str(self.sd_rate),
            "vat_rate_code": self.vat_rate_code,
            "vat_kind": self.vat_kind,
            "vat_rate": str(self.vat_rate),
            "vat_specific_amount": str(self.vat_specific_amount),
            "sro_reference": self.sro_reference,
            "value": str(self.value),
            "sd_amount": str(self.sd_amount),
            "vat_amount": str(self.vat_amount),
            "total": str(self.total),
        }

    @classmethod
    def from_payload(cls, data: dict) -> Line:
        d = _dec
        return cls(
            int(data["serial"]),
            data["description"],
            data["unit"],
            d(data["quantity"]),
            d(data["unit_price"]),
            data["vat_rate_code"],
            data["vat_kind"],
            d(data.get("vat_rate", "0")),
            d(data.get("vat_specific_amount", "0")),
            d(data.get("sd_rate", "0")),
            data.get("item_id"),
            data.get("brand", ""),
            data.get("sro_reference", ""),
            d(data["value"]),
            d(data["sd_amount"]),
            d(data["vat_amount"]),
            d(data["total"]),
        )


@dataclass
class Payment:
    version: int
    date: date
    amount: Decimal
    vds_withheld: Decimal
    method: str
    reference: str
    account_code: str
    journal_entry_id: int | None
    recorded_at: object = None


@dataclass
class InvoiceState:
    """Everything the read model shows, derived from the events alone."""

    stream_id: str = ""
    version: int = 0
    kind: str = INVOICE
    status: str = DRAFT
    customer_id: int | None = None
    vendor_id: int | None = None
    issue_date: date | None = None
    issue_time: str | None = None
    due_date: date | None = None
    currency: str = "BDT"
    branch: str = ""
    place_of_supply: str = ""
    destination: str = ""
    vehicle_type: str = ""
    vehicle_number: str = ""
    notes: str = ""
    reason: str = ""
    recurring_id: int | None = None
    lines: tuple[Line, ...] = ()
    number: str = ""
    series: str = ""
    sequence: int | None = None
    fiscal_year: str = ""
    original_stream_id: str | None = None
    total_value: Decimal = ZERO
    total_sd: Decimal = ZERO
    total_vat: Decimal = ZERO
    total_amount: Decimal = ZERO
    vds_amount: Decimal = ZERO
    credited_amount: Decimal = ZERO
    debited_amount: Decimal = ZERO
    amount_paid: Decimal = ZERO
    vds_withheld: Decimal = ZERO
    overdue: bool = False
    approved: bool = False
    voided: bool = False
    approved_at: str | None = None
    approved_by_id: int | None = None
    approved_by_label: str = ""
    created_by_id: int | None = None
    voided_at: str | None = None
    void_reason: str = ""
    journal_entry_id: int | None = None
    void_journal_entry_id: int | None = None
    last_reminder_on: date | None = None
    payments: list[Payment] = field(default_factory=list)
    note_count: int = 0
    # VAT of the notes applied to this invoice, and per VAT code the net change notes made to
    # value, SD and VAT ({code: [value, sd, vat]}; debit notes add, credit notes subtract).
    credited_vat: Decimal = ZERO
    debited_vat: Decimal = ZERO
    note_by_rate: dict = field(default_factory=dict)
    # Buyer and seller as they were when the document was issued (printed from these).
    withholding_buyer: bool = False
    buyer_name: str = ""
    buyer_bin: str = ""
    buyer_address: str = ""
    seller_name: str = ""
    seller_bin: str = ""
    seller_address: str = ""
    created_at: object = None
    updated_at: object = None

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def is_note(self) -> bool:
        return self.kind in (CREDIT_NOTE, DEBIT_NOTE)

    @property
    def amount_due(self) -> Decimal:
        """What the customer still owes; negative when credit notes after payment left the
        customer in credit (the company owes that back, shown as a negative amount due)."""
        if not self.approved or self.voided or self.is_note:
            return ZERO
        return self.total_amount + self.debited_amount - self.credited_amount - self.amount_paid

    @property
    def invoiced_amount(self) -> Decimal:
        """Total charged so far: the invoice, plus debit notes, less credit notes."""
        return self.total_amount + self.debited_amount - self.credited_amount

    @property
    def vds_due(self) -> Decimal:
        """VAT a withholding buyer may still deduct at source: the VAT charged net of notes,
        less what it has withheld already."""
        if not self.withholding_buyer:
            return ZERO
        charged = self.total_vat + self.debited_vat - self.credited_vat
        return max(tax.round_money(charged) - self.vds_withheld, ZERO)

    def open_by_rate(self) -> dict[str, list[Decimal]]:
        """Per VAT code, the value, SD and VAT still open on the invoice (its lines, plus debit
        notes, less earlier credit notes)."""
        out: dict[str, list[Decimal]] = {}
        for line in self.lines:
            row = out.setdefault(line.vat_rate_code, [ZERO, ZERO, ZERO])
            row[0] += line.value
            row[1] += line.sd_amount
            row[2] += line.vat_amount
        for code, change in self.note_by_rate.items():
            row = out.setdefault(code, [ZERO, ZERO, ZERO])
            for i in range(3):
                row[i] += change[i]
        return out

    def derive_status(self) -> str:
        if self.voided:
            return VOID
        if not self.approved:
            return DRAFT
        if self.is_note:
            return APPROVED
        if self.amount_due <= 0:
            return PAID
        if self.overdue:
            return OVERDUE
        if self.amount_paid > 0:
            return PARTIALLY_PAID
        return APPROVED

    @property
    def label(self) -> str:
        return self.number or "this draft"


def _date(value) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(value)


def _set_parties(state: InvoiceState, p: dict) -> None:
    buyer = p.get("buyer") or {}
    seller = p.get("seller") or {}
    state.buyer_name = buyer.get("name", "")
    state.buyer_bin = buyer.get("bin", "")
    state.buyer_address = buyer.get("address", "")
    state.seller_name = seller.get("name", "")
    state.seller_bin = seller.get("bin", "")
    state.seller_address = seller.get("address", "")
    if "withholding" in buyer:
        state.withholding_buyer = bool(buyer["withholding"])
    else:  # approved before the buyer was snapshotted: a VDS figure means a withholding buyer
        state.withholding_buyer = Decimal(p.get("vds_amount", "0")) > 0


def _apply_note(state: InvoiceState, p: dict, sign: int) -> None:
    for code, figures in (p.get("by_rate") or {}).items():
        row = state.note_by_rate.setdefault(code, [ZERO, ZERO, ZERO])
        for i in range(3):
            row[i] += sign * Decimal(figures[i])


def rate_figures(lines) -> dict[str, list[str]]:
    """{code: [value, sd, vat]} of note lines (the payload of *NoteApplied)."""
    out: dict[str, list[Decimal]] = {}
    for line in lines:
        row = out.setdefault(line.vat_rate_code, [ZERO, ZERO, ZERO])
        row[0] += line.value
        row[1] += line.sd_amount
        row[2] += line.vat_amount
    return {code: [str(x) for x in row] for code, row in out.items()}


def _set_totals(state: InvoiceState, totals: dict | None = None) -> None:
    t = tax.totals(state.lines)
    state.total_value, state.total_sd, state.total_vat, state.total_amount = (
        t.value,
        t.sd,
        t.vat,
        t.total,
    )


def apply(state: InvoiceState, event_type: str, payload: dict, meta: dict | None = None):
    """Fold one event into the state (mutates and returns it)."""
    meta = meta or {}
    state.version += 1
    recorded_at = meta.get("recorded_at")
    if state.version == 1:
        state.created_at = recorded_at
        state.created_by_id = meta.get("actor_id")
    state.updated_at = recorded_at
    p = payload
    if event_type == "InvoiceDrafted":
        state.kind = p.get("kind", INVOICE)
        for name in HEADER_FIELDS:
            if name in p:
                setattr(state, name, p[name])
        state.recurring_id = p.get("recurring_id")
        state.lines = tuple(Line.from_payload(x) for x in p.get("lines", []))
        _set_totals(state)
    elif event_type == "DraftEdited":
        for name in HEADER_FIELDS:
            if name in p:
                setattr(state, name, p[name])
        if "lines" in p:
            state.lines = tuple(Line.from_payload(x) for x in p["lines"])
            _set_totals(state)
    elif event_type == "InvoiceApproved":
        state.approved = True
        for name in ("number", "series", "sequence", "fiscal_year", "issue_time"):
            setattr(state, name, p[name])
        state.issue_date = p["issue_date"]
        state.due_date = p.get("due_date")
        state.lines = tuple(Line.from_payload(x) for x in p["lines"])
        _set_totals(state)
        state.vds_amount = Decimal(p.get("vds_amount", "0"))
        _set_parties(state, p)
        state.journal_entry_id = p.get("journal_entry_id")
        state.approved_at = p.get("approved_at")
        state.approved_by_id = meta.get("actor_id")
        state.approved_by_label = meta.get("actor", "")
    elif event_type == "PaymentRecorded":
        amount = Decimal(p["amount"])
        withheld = Decimal(p.get("vds_withheld", "0"))
        state.amount_paid += amount + withheld
        state.vds_withheld += withheld
        state.payments.append(
            Payment(
                version=state.version,
                date=_date(p["date"]),
                amount=amount,
                vds_withheld=withheld,
                method=p.get("method", ""),
                reference=p.get("reference", ""),
                account_code=p.get("account_code", ""),
                journal_entry_id=p.get("journal_entry_id"),
                recorded_at=recorded_at,
            )
        )
    elif event_type == "InvoiceVoided":
        state.voided = True
        state.void_reason = p.get("reason", "")
        state.voided_at = p.get("voided_at")
        state.void_journal_entry_id = p.get("journal_entry_id")
    elif event_type == "MarkedOverdue":
        state.overdue = True
        if p.get("reminder"):
            state.last_reminder_on = _date(p["date"])
    elif event_type == "ReminderSent":
        state.last_reminder_on = _date(p["date"])
    elif event_type == "CreditNoteApplied":
        state.credited_amount += Decimal(p["amount"])
        state.credited_vat += Decimal(p.get("vat", "0"))
        _apply_note(state, p, -1)
        state.note_count += 1
    elif event_type == "DebitNoteApplied":
        state.debited_amount += Decimal(p["amount"])
        state.debited_vat += Decimal(p.get("vat", "0"))
        _apply_note(state, p, 1)
        state.note_count += 1
    elif event_type == "NoteIssued":
        state.kind = p["kind"]
        state.approved = True
        state.original_stream_id = p["original_stream_id"]
        state.customer_id = p.get("customer_id")
        state.reason = p.get("reason", "")
        for name in (
            "number",
            "series",
            "sequence",
            "fiscal_year",
            "issue_time",
            "currency",
            "branch",
            "place_of_supply",
        ):
            setattr(state, name, p.get(name, getattr(state, name)))
        state.issue_date = p["issue_date"]
        state.lines = tuple(Line.from_payload(x) for x in p["lines"])
        _set_totals(state)
        _set_parties(state, p)
        state.journal_entry_id = p.get("journal_entry_id")
        state.approved_at = p.get("approved_at")
        state.approved_by_id = meta.get("actor_id")
        state.approved_by_label = meta.get("actor", "")
    else:
        raise ValueError(f"unknown invoice event type {event_type!r}")
    if isinstance(state.issue_date, str):
        state.issue_date = _date(state.issue_date)
    if isinstance(state.due_date, str):
        state.due_date = _date(state.due_date)
    state.status = state.derive_status()
    return state


def replay(events, stream_id: str = "") -> InvoiceState:
    """`events`: iterable of (type, payload, meta) in version order."""
    state = InvoiceState(stream_id=str(stream_id))
    for event_type, payload, meta in events:
        apply(state, event_type, payload, meta)
    return state


# --- validation helpers ----------------------------------------------------------------------


def _decimal(value, *, what: str, field_name: str, places: int) -> Decimal:
    if isinstance(value, bool | float):
        raise InvoiceError(
            f"{what}: give a decimal string, not {type(value).__name__}.",
            code="invalid_number",
            fields={field_name: ['Give a decimal string such as "12.50".']},
        )
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvoiceError(
            f"{what}: {str(value)[:40]!r} is not a number.",
            code="invalid_number",
            fields={field_name: ["Not a number."]},
        ) from None
    if not number.is_finite():
        raise InvoiceError(
            f"{what}: {str(value)[:40]!r} is not a number.",
            code="invalid_number",
            fields={field_name: ["Not a number."]},
        )
    if abs(number) >= MAX_INPUT:
        raise InvoiceError(
            f"{what}: {str(value)[:40]} is too large (at most 999,999,999,999,999.99).",
            code="amount_too_large",
            fields={field_name: ["Too large."]},
        )
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise InvoiceError(
            f"{what}: at most {places} decimal places.",
            code="invalid_number",
            fields={field_name: [f"At most {places} decimal places."]},
        )
    return number


def _text(value, name: str, what: str) -> str:
    text = "" if value is None else str(value).strip()
    limit = TEXT_LIMITS.get(name)
    if limit and len(text) > limit:
        raise InvoiceError(
            f"{what}: at most {limit} characters.",
            code="too_long",
            fields={name: [f"At most {limit} characters."]},
        )
    return text


@dataclass(frozen=True)
class RateInfo:
    """A company VAT rate as the services resolved it (code, kind, rate, per-unit amount)."""

    code: str
    kind: str
    rate: Decimal
    specific_amount: Decimal
    sro_reference: str = ""


def build_lines(raw_lines, rates: dict[str, RateInfo]) -> tuple[Line, ...]:
    """Validate line inputs (already merged with item defaults by the service) and compute
    their tax. `rates`: the company's active rates by code. Each raw line is a dict with
    description, unit, quantity, unit_price, vat_rate (code), sd_rate, optional item_id,
    brand and specific_vat_amount."""
    if raw_lines is None:
        return ()
    if not isinstance(raw_lines, list | tuple):
        raise InvoiceError("Lines must be a list.", code="invalid_lines")
    if len(raw_lines) > MAX_LINES:
        raise InvoiceError(f"At most {MAX_LINES} lines per invoice.", code="too_many_lines")
    lines = []
    for index, raw in enumerate(raw_lines, start=1):
        what = f"Line {index}"
        if not isinstance(raw, dict):
            raise InvoiceError(f"{what}: expected an object.", code="invalid_lines")
        description = _text(raw.get("description"), "description", what)
        if not description:
            raise InvoiceError(
                f"{what}: describe the goods or service.",
                code="description_required",
                fields={f"lines[{index - 1}].description": ["Required."]},
            )
        unit = _text(raw.get("unit") or "pcs", "unit", what)
        quantity = _decimal(
            raw.get("quantity"), what=f"{what} quantity", field_name="quantity", places=4
        )
        if quantity <= 0:
            raise InvoiceError(
                f"{what}: the quantity must be positive.",
                code="invalid_quantity",
                fields={f"lines[{index - 1}].quantity": ["Must be positive."]},
            )
        if quantity > MAX_QUANTITY:
            raise InvoiceError(
                f"{what}: a quantity of {quantity:,} is too large (at most {MAX_QUANTITY:,}).",
                code="amount_too_large",
                fields={f"lines[{index - 1}].quantity": [f"At most {MAX_QUANTITY:,}."]},
            )
        unit_price = _decimal(
            raw.get("unit_price"), what=f"{what} unit price", field_name="unit_price", places=4
        )
        if unit_price < 0:
            raise InvoiceError(
                f"{what}: the unit price cannot be negative.",
                code="invalid_price",
                fields={f"lines[{index - 1}].unit_price": ["Cannot be negative."]},
            )
        if unit_price > MAX_PRICE:
            raise InvoiceError(
                f"{what}: a unit price of {unit_price:,} is too large (at most {MAX_PRICE:,}).",
                code="amount_too_large",
                fields={f"lines[{index - 1}].unit_price": [f"At most {MAX_PRICE:,}."]},
            )
        sd_rate = _decimal(
            raw.get("sd_rate") or "0", what=f"{what} SD rate", field_name="sd_rate", places=4
        )
        if sd_rate < 0 or sd_rate > 1000:
            raise InvoiceError(
                f"{what}: the SD rate must be between 0 and 1000 percent.",
                code="invalid_sd_rate",
                fields={f"lines[{index - 1}].sd_rate": ["Between 0 and 1000."]},
            )
        code = str(raw.get("vat_rate") or "").strip()
        rate = rates.get(code)
        if rate is None:
            allowed = ", ".join(sorted(rates)) or "none"
            raise InvoiceError(
                f"{what}: VAT rate {code or '(none)'!r} is not in the company's list "
                f"(allowed: {allowed}).",
                code="vat_rate_not_allowed",
                fields={f"lines[{index - 1}].vat_rate": [f"Choose one of: {allowed}."]},
            )
        specific = ZERO
        if rate.kind == tax.SPECIFIC:
            # The amount per unit is the company's (or the item's, when the line names one):
            # a line may repeat it but not change it.
            item_amount = raw.get("item_specific_vat")
            specific = _dec(item_amount) if item_amount not in (None, "") else rate.specific_amount
            given = raw.get("specific_vat_amount")
            if given not in (None, ""):
                typed = _decimal(
                    given,
                    what=f"{what} specific VAT",
                    field_name="specific_vat_amount",
                    places=4,
                )
                if typed != specific:
                    source = "the item's" if item_amount not in (None, "") else "the company's"
                    raise InvoiceError(
                        f"{what}: the specific VAT is {specific:,} per unit ({source} "
                        f"{rate.code} amount), not {typed:,}; change the rate or the item, "
                        "not the line.",
                        code="invalid_specific_vat",
                        fields={
                            f"lines[{index - 1}].specific_vat_amount": [f"Must be {specific}."]
                        },
                    )
            if specific <= 0:
                raise InvoiceError(
                    f"{what}: a specific VAT needs a positive amount per unit.",
                    code="invalid_specific_vat",
                    fields={f"lines[{index - 1}].specific_vat_amount": ["Must be positive."]},
                )
        lines.append(
            Line(
                serial=index,
                item_id=raw.get("item_id"),
                description=description,
                brand=_text(raw.get("brand"), "brand", what),
                unit=unit,
                quantity=quantity,
                unit_price=unit_price,
                sd_rate=sd_rate,
                vat_rate_code=rate.code,
                vat_kind=rate.kind,
                vat_rate=rate.rate if rate.kind == tax.PERCENT else ZERO,
                vat_specific_amount=specific,
                sro_reference=rate.sro_reference,
            ).computed()
        )
    check_size(lines)
    return tuple(lines)


def check_size(lines) -> None:
    """Every line figure and the totals below 10^15 (the money columns hold less than 10^16;
    the rest is room for notes and payments)."""
    labels = {"value": "value", "sd_amount": "SD", "vat_amount": "VAT", "total": "total"}
    for line in lines:
        for name, label in labels.items():
            if abs(getattr(line, name)) >= MAX_AMOUNT:
                raise InvoiceError(
                    f"Line {line.serial}: the {label} of {getattr(line, name):,.2f} is too "
                    "large (at most 999,999,999,999,999.99).",
                    code="amount_too_large",
                    fields={f"lines[{line.serial - 1}]": ["Too large."]},
                )
    if lines and abs(tax.totals(lines).total) >= MAX_AMOUNT:
        raise InvoiceError(
            f"The invoice total of {tax.totals(lines).total:,.2f} is too large (at most "
            "999,999,999,999,999.99); split it into several invoices.",
            code="amount_too_large",
            fields={"lines": ["Total too large."]},
        )


def resnapshot(lines, rates: dict[str, RateInfo]) -> tuple[Line, ...]:
    """Lines with the company's current rates at approval (the snapshot that is kept).
    A rate withdrawn since the draft refuses approval."""
    out = []
    for line in lines:
        rate = rates.get(line.vat_rate_code)
        if rate is None or rate.kind != line.vat_kind:
            raise InvoiceError(
                f"Line {line.serial}: VAT rate {line.vat_rate_code!r} is no longer in the "
                "company's list; edit the draft.",
                code="vat_rate_not_allowed",
                fields={f"lines[{line.serial - 1}].vat_rate": ["No longer allowed."]},
            )
        new_rate = rate.rate if rate.kind == tax.PERCENT else ZERO
        out.append(replace(line, vat_rate=new_rate, sro_reference=rate.sro_reference).computed())
    check_size(out)
    return tuple(out)


def check_version(state: InvoiceState, expected_version) -> None:
    if expected_version is None or expected_version == "":
        return
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise InvoiceError(
            "expected_version must be a whole number.",
            code="invalid_version",
            fields={"expected_version": ["A whole number."]},
        ) from None
    if expected != state.version:
        raise ConflictError(
            f"{state.label.capitalize() if not state.number else state.number} has changed "
            f"(version {state.version}, you had {expected}); reload it and try again.",
            code="stale_version",
            fields={"expected_version": [f"Current version is {state.version}."]},
        )


def _header(changes: dict) -> dict:
    out = {}
    for name in HEADER_FIELDS:
        if name not in changes:
            continue
        value = changes[name]
        if name in ("issue_date", "due_date"):
            value = _date(value)
            out[name] = value.isoformat() if value else None
        elif name in ("customer_id", "vendor_id"):
            out[name] = value
        else:
            out[name] = _text(value, name, name.replace("_", " ").capitalize())
    return out


# --- commands --------------------------------------------------------------------------------


def decide_create_draft(state: InvoiceState, *, header: dict, lines, kind: str = INVOICE):
    if state.exists:
        raise ConflictError("This invoice already exists.", code="already_exists")
    if kind not in (INVOICE, BILL):
        raise InvoiceError(f"Unknown invoice kind {kind!r}.", code="invalid_kind")
    payload = {"kind": kind, **_header(header)}
    if kind == INVOICE and not payload.get("customer_id"):
        raise InvoiceError(
            "Choose the customer.", code="customer_required", fields={"customer": ["Required."]}
        )
    if kind == BILL and not payload.get("vendor_id"):
        raise InvoiceError(
            "Choose the vendor.", code="vendor_required", fields={"vendor": ["Required."]}
        )
    _check_dates(payload.get("issue_date"), payload.get("due_date"))
    payload["recurring_id"] = header.get("recurring_id")
    payload["lines"] = [line.as_payload() for line in lines]
    return [("InvoiceDrafted", payload)]


def _check_dates(issue_date, due_date) -> None:
    issue, due = _date(issue_date), _date(due_date)
    if issue and due and due < issue:
        raise InvoiceError(
            "The due date cannot be before the issue date.",
            code="invalid_due_date",
            fields={"due_date": ["On or after the issue date."]},
        )


def _require_draft(state: InvoiceState, doing: str) -> None:
    if not state.exists:
        raise InvoiceError("No such invoice.", code="not_found")
    if state.status != DRAFT:
        raise InvoiceError(
            f"{state.label} is {state.status.replace('_', ' ')}; only a draft can be {doing}. "
            "Issue a credit or debit note to change an approved invoice.",
            code="not_draft",
        )


def decide_edit_draft(state: InvoiceState, *, header: dict, lines=None):
    _require_draft(state, "edited")
    payload = _header(header)
    if state.kind == INVOICE and "customer_id" in payload and not payload["customer_id"]:
        raise InvoiceError(
            "Choose the customer.", code="customer_required", fields={"customer": ["Required."]}
        )
    issue = payload.get("issue_date", state.issue_date)
    due = payload.get("due_date", state.due_date)
    _check_dates(issue, due)
    if lines is not None:
        payload["lines"] = [line.as_payload() for line in lines]
    if not payload:
        return []
    return [("DraftEdited", payload)]


def decide_approve(
    state: InvoiceState,
    *,
    lines: tuple[Line, ...],
    number: str,
    series: str,
    sequence: int,
    fiscal_year: str,
    issue_date: date,
    issue_time: str,
    due_date: date | None,
    withholding_buyer: bool,
    journal_entry_id: int | None,
    approved_at: str,
    buyer: dict | None = None,
    seller: dict | None = None,
):
    check_approvable(state)
    t = tax.totals(lines)
    return [
        (
            "InvoiceApproved",
            {
                "number": number,
                "series": series,
                "sequence": sequence,
                "fiscal_year": fiscal_year,
                "issue_date": issue_date.isoformat(),
                "issue_time": issue_time,
                "due_date": due_date.isoformat() if due_date else None,
                "lines": [line.as_payload() for line in lines],
                "totals": {
                    "value": str(t.value),
                    "sd": str(t.sd),
                    "vat": str(t.vat),
                    "total": str(t.total),
                },
                "vds_amount": str(
                    tax.vds_amount(total_vat=t.vat, withholding_buyer=withholding_buyer)
                ),
                "buyer": {**(buyer or {}), "withholding": bool(withholding_buyer)},
                "seller": seller or {},
                "journal_entry_id": journal_entry_id,
                "approved_at": approved_at,
            },
        )
    ]


def check_approvable(state: InvoiceState, lines=None) -> None:
    """The refusals of approval, callable before the number is drawn and the entry posted."""
    _require_draft(state, "approved")
    lines = state.lines if lines is None else lines
    if not lines:
        raise InvoiceError(
            "An invoice needs at least one line before it can be approved.", code="no_lines"
        )
    if tax.totals(lines).total <= 0:
        raise InvoiceError("An invoice of zero cannot be approved.", code="zero_total")
    if state.kind == INVOICE and not state.customer_id:
        raise InvoiceError("Choose the customer before approving.", code="customer_required")


def check_payment(state: InvoiceState, *, amount, vds_withheld) -> tuple[Decimal, Decimal]:
    if not state.exists:
        raise InvoiceError("No such invoice.", code="not_found")
    if state.is_note:
        raise InvoiceError("Payments are recorded against invoices, not notes.", code="not_payable")
    if state.status not in OPEN_STATUSES:
        raise InvoiceError(
            f"{state.label} is {state.status.replace('_', ' ')}; payments are recorded only "
            "against approved, unpaid invoices.",
            code="not_payable",
        )
    amount = _decimal(amount, what="Amount", field_name="amount", places=2)
    withheld = _decimal(vds_withheld or "0", what="VDS", field_name="vds_withheld", places=2)
    if amount < 0 or withheld < 0 or amount + withheld <= 0:
        raise InvoiceError(
            "The payment must be a positive amount.",
            code="invalid_amount",
            fields={"amount": ["Must be positive."]},
        )
    due = state.amount_due
    if amount + withheld > due:
        raise InvoiceError(
            f"A payment of {amount + withheld:,.2f} is more than the {due:,.2f} due on "
            f"{state.number}; record at most {due:,.2f}.",
            code="overpayment",
            fields={"amount": [f"At most {due:,.2f}."]},
        )
    remaining_vds = state.vds_due
    if withheld > remaining_vds:
        raise InvoiceError(
            f"VAT withheld at source of {withheld:,.2f} is more than the {remaining_vds:,.2f} "
            f"still open on {state.number}.",
            code="vds_exceeds",
            fields={"vds_withheld": [f"At most {remaining_vds:,.2f}."]},
        )
    return amount, withheld


def decide_payment(
    state: InvoiceState,
    *,
    amount,
    vds_withheld,
    day: date,
    method: str,
    reference: str,
    account_code: str,
    journal_entry_id: int | None,
):
    amount, withheld = check_payment(state, amount=amount, vds_withheld=vds_withheld)
    return [
        (
            "PaymentRecorded",
            {
                "date": day.isoformat(),
                "amount": str(amount),
                "vds_withheld": str(withheld),
                "method": _text(method, "method", "Method"),
                "reference": _text(reference, "reference", "Reference"),
                "account_code": account_code,
                "journal_entry_id": journal_entry_id,
            },
        )
    ]


def check_void(state: InvoiceState, reason: str) -> str:
    if not state.exists:
        raise InvoiceError("No such invoice.", code="not_found")
    if state.voided:
        raise InvoiceError(f"{state.label} is already void.", code="already_void")
    if state.is_note:
        raise InvoiceError(
            "A credit or debit note cannot be voided; issue an opposite note.",
            code="not_voidable",
        )
    if state.amount_paid > 0:
        raise InvoiceError(
            f"{state.label} has payments recorded; issue a credit note instead of voiding.",
            code="has_payments",
        )
    if state.note_count:
        raise InvoiceError(
            f"{state.label} has credit or debit notes; issue a credit note instead.",
            code="has_notes",
        )
    reason = _text(reason, "reason", "Reason")
    if not reason:
        raise InvoiceError(
            "Say why the invoice is voided.",
            code="reason_required",
            fields={"reason": ["Required."]},
        )
    return reason


def decide_void(
    state: InvoiceState, *, reason: str, day: date, voided_at: str, journal_entry_id: int | None
):
    reason = check_void(state, reason)
    return [
        (
            "InvoiceVoided",
            {
                "reason": reason,
                "date": day.isoformat(),
                "voided_at": voided_at,
                "journal_entry_id": journal_entry_id,
            },
        )
    ]


def check_note(original: InvoiceState, *, kind: str, lines, reason: str) -> str:
    if not original.exists:
        raise InvoiceError("No such invoice.", code="not_found")
    if original.kind != INVOICE:
        raise InvoiceError("Credit and debit notes adjust a tax invoice.", code="not_adjustable")
    if not original.approved or original.voided:
        raise InvoiceError(
            f"{original.label} is {original.status}; notes adjust approved invoices only.",
            code="not_adjustable",
        )
    if not lines:
        raise InvoiceError("A note needs at least one line.", code="no_lines")
    reason = _text(reason, "reason", "Reason")
    if not reason:
        raise InvoiceError(
            "Say why the note is issued (it is printed on the Mushak form).",
            code="reason_required",
            fields={"reason": ["Required."]},
        )
    check_size(lines)
    total = tax.totals(lines).total
    if total <= 0:
        raise InvoiceError("A note of zero cannot be issued.", code="zero_total")
    if kind == CREDIT_NOTE:
        _check_credit(original, lines, total)
    return reason


def _check_credit(original: InvoiceState, lines, total: Decimal) -> None:
    """A credit note takes back at most what was charged: in total (the invoice plus debit
    notes less earlier credit notes, paid or not) and per VAT code, value, SD and VAT each, so
    the output VAT it decreases is VAT the invoice really carried at that rate."""
    left = original.invoiced_amount
    if total > left:
        raise InvoiceError(
            f"A credit note of {total:,.2f} is more than the {left:,.2f} charged on "
            f"{original.number} (after earlier notes).",
            code="credit_exceeds_invoice",
            fields={"lines": [f"At most {left:,.2f} in total."]},
        )
    open_rates = original.open_by_rate()
    asked = rate_figures(lines)
    for code, figures in asked.items():
        if code not in open_rates:
            carried = ", ".join(sorted(open_rates)) or "none"
            raise InvoiceError(
                f"{original.number} carried no supply at VAT rate {code}; a credit note "
                f"decreases supplies at the rates invoiced ({carried}).",
                code="credit_exceeds_invoice",
                fields={"lines": [f"Use one of: {carried}."]},
            )
        have = open_rates[code]
        for i, label in enumerate(("value", "SD", "VAT")):
            if Decimal(figures[i]) > have[i]:
                raise InvoiceError(
                    f"A credit note {label} of {Decimal(figures[i]):,.2f} at {code} is more "
                    f"than the {have[i]:,.2f} still open at that rate on {original.number}.",
                    code="credit_exceeds_invoice",
                    fields={"lines": [f"{label} at {code}: at most {have[i]:,.2f}."]},
                )


def decide_note(
    original: InvoiceState,
    note: InvoiceState,
    *,
    kind: str,
    lines: tuple[Line, ...],
    reason: str,
    number: str,
    series: str,
    sequence: int,
    fiscal_year: str,
    issue_date: date,
    issue_time: str,
    journal_entry_id: int | None,
    approved_at: str,
    buyer: dict | None = None,
    seller: dict | None = None,
):
    """Events for the note's new stream and for the original invoice's stream."""
    reason = check_note(original, kind=kind, lines=lines, reason=reason)
    if note.exists:
        raise ConflictError("This note already exists.", code="already_exists")
    t = tax.totals(lines)
    note_events = [
        (
            "NoteIssued",
            {
                "kind": kind,
                "original_stream_id": original.stream_id,
                "original_number": original.number,
                "customer_id": original.customer_id,
                "reason": reason,
                "number": number,
                "series": series,
                "sequence": sequence,
                "fiscal_year": fiscal_year,
                "issue_date": issue_date.isoformat(),
                "issue_time": issue_time,
                "currency": original.currency,
                "branch": original.branch,
                "place_of_supply": original.place_of_supply,
                "lines": [line.as_payload() for line in lines],
                "totals": {
                    "value": str(t.value),
                    "sd": str(t.sd),
                    "vat": str(t.vat),
                    "total": str(t.total),
                },
                "buyer": {
                    **(buyer or {}),
                    "withholding": bool(
                        (buyer or {}).get("withholding", original.withholding_buyer)
                    ),
                },
                "seller": seller or {},
                "journal_entry_id": journal_entry_id,
                "approved_at": approved_at,
            },
        )
    ]
    applied = "CreditNoteApplied" if kind == CREDIT_NOTE else "DebitNoteApplied"
    original_events = [
        (
            applied,
            {
                "note_stream_id": note.stream_id,
                "note_number": number,
                "amount": str(t.total),
                "vat": str(t.vat),
                "by_rate": rate_figures(lines),
            },
        )
    ]
    return note_events, original_events


def decide_mark_overdue(state: InvoiceState, *, today: date, remind: bool = True):
    """MarkedOverdue once, when an open invoice passes its due date; [] otherwise."""
    if state.status not in (APPROVED, PARTIALLY_PAID) or state.overdue:
        return []
    if state.due_date is None or state.due_date >= today:
        return []
    return [("MarkedOverdue", {"date": today.isoformat(), "reminder": remind})]


def decide_reminder(state: InvoiceState, *, today: date, every_days: int, to: str):
    """A repeated reminder for an invoice still overdue `every_days` after the last one."""
    if state.status != OVERDUE or not to:
        return []
    last = state.last_reminder_on
    if last is not None and (today - last).days < every_days:
        return []
    return [("ReminderSent", {"date": today.isoformat(), "to": to})]
