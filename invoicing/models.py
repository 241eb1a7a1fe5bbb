"""Invoicing data: parties, items, VAT rates, the invoice event store and its read model.

Write model: `InvoiceEvent`, an append-only log (PostgreSQL refuses UPDATE and DELETE on it,
see invoicing/sql/event_store.sql); one stream per invoice or note, `unique(stream_id, version)`
gives optimistic concurrency. Read model: `Invoice`, `InvoiceLine`, `InvoicePayment`, projected
from the events in the same transaction as the append (invoicing/projection.py) and rebuildable
from them (`manage.py rebuild_invoice_projections`). Never write the read model by hand: call
invoicing.services.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from core.models import Company

# ---------------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------------


class PartyKind(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    VENDOR = "vendor", "Vendor"
    BOTH = "both", "Customer and vendor"


class Party(models.Model):
    """A customer and/or vendor. BIN and e-TIN are stored as bare digits, shown formatted."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="parties")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=PartyKind.choices, default=PartyKind.CUSTOMER)
    address = models.TextField(blank=True, help_text="Registered / billing address.")
    shipping_address = models.TextField(blank=True, help_text="Default destination of supply.")
    bin = models.CharField(
        "BIN", max_length=13, blank=True, help_text="VAT registration number, 13 digits."
    )
    etin = models.CharField("e-TIN", max_length=12, blank=True, help_text="12 digits.")
    is_withholding_entity = models.BooleanField(
        "VAT withholding entity",
        default=False,
        help_text="Deducts VAT at source (VDS) and issues Mushak-6.6 certificates.",
    )
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    payment_terms_days = models.PositiveSmallIntegerField(
        default=30, help_text="Default days from issue to due date."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "parties"
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=PartyKind.values), name="invoicing_party_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(bin="") | Q(bin__regex=r"^[0-9]{13}$"), name="invoicing_party_bin_13"
            ),
            models.CheckConstraint(
                condition=Q(etin="") | Q(etin__regex=r"^[0-9]{12}$"),
                name="invoicing_party_etin_12",
            ),
        ]
        indexes = [models.Index(fields=["company", "name"], name="invoicing_party_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def bin_display(self) -> str:
        """`001745707-0402`: the 9-digit base number and the 4-digit branch."""
        return f"{self.bin[:9]}-{self.bin[9:]}" if len(self.bin) == 13 else self.bin

    @property
    def etin_display(self) -> str:
        """`1234-5678-9012`."""
        e = self.etin
        return f"{e[:4]}-{e[4:8]}-{e[8:]}" if len(e) == 12 else e

    @property
    def is_customer(self) -> bool:
        return self.kind in (PartyKind.CUSTOMER, PartyKind.BOTH)

    @property
    def is_vendor(self) -> bool:
        return self.kind in (PartyKind.VENDOR, PartyKind.BOTH)


class VatKind(models.TextChoices):
    PERCENT = "percent", "Percentage of value + SD"
    ZERO = "zero", "Zero-rated"
    EXEMPT = "exempt", "Exempt"
    SPECIFIC = "specific", "Specific (taka per unit)"


class VatRate(models.Model):
    """A VAT rate the company may put on a line. Rates are data: `rate` is a percentage
    (15.0000 means 15 %); a specific rate charges `specific_amount` taka per unit instead."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="vat_rates")
    code = models.CharField(max_length=30, help_text="Short code used on lines and in the API.")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=VatKind.choices, default=VatKind.PERCENT)
    rate = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Percent of (value + SD); 0 for zero-rated, exempt and specific.",
    )
    specific_amount = models.DecimalField(
        max_digits=18,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Taka per unit for a specific rate (an item may carry its own).",
    )
    sro_reference = models.CharField(
        "SRO reference", max_length=100, blank=True, help_text="Statutory order, for exemptions."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["company", "-rate", "code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="invoicing_vatrate_code"),
            models.CheckConstraint(
                condition=Q(kind__in=VatKind.values), name="invoicing_vatrate_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(rate__gte=0, rate__lte=100), name="invoicing_vatrate_rate_0_100"
            ),
            models.CheckConstraint(
                condition=Q(kind="percent") | Q(rate=0), name="invoicing_vatrate_rate_percent_only"
            ),
            models.CheckConstraint(
                condition=Q(specific_amount__gte=0), name="invoicing_vatrate_specific_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.label})"

    @property
    def label(self) -> str:
        """What column 9 of the Mushak-6.3 shows: `15%`, `Zero-rated`, `Exempt`, `Tk 2.50/unit`."""
        if self.kind == VatKind.PERCENT:
            return f"{self.rate.normalize():f}%"
        if self.kind == VatKind.SPECIFIC:
            return f"Tk {self.specific_amount.normalize():f}/unit"
        return self.get_kind_display()


class Item(models.Model):
    """A good or service in the catalogue. Lines copy its figures when drafted."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="items")
    code = models.CharField(max_length=50)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    brand = models.CharField(max_length=100, blank=True)
    unit = models.CharField("unit of supply", max_length=30, default="pcs")
    unit_price = models.DecimalField(
        max_digits=18, decimal_places=4, default=0, validators=[MinValueValidator(0)]
    )
    vat_rate = models.ForeignKey(VatRate, on_delete=models.PROTECT, related_name="items")
    specific_vat_amount = models.DecimalField(
        max_digits=18,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Taka per unit when the VAT rate is specific; empty uses the rate's amount.",
    )
    sd_rate = models.DecimalField(
        "SD rate",
        max_digits=7,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Supplementary duty, percent of value.",
    )
    hs_code = models.CharField("HS code", max_length=20, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="invoicing_item_code"),
            models.CheckConstraint(
                condition=Q(sd_rate__gte=0, sd_rate__lte=1000), name="invoicing_item_sd_rate"
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="invoicing_item_price"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


# ---------------------------------------------------------------------------------------------
# Write model: the event store
# ---------------------------------------------------------------------------------------------


class InvoiceEvent(models.Model):
    """One fact about one invoice stream. Append-only (PostgreSQL trigger). `id` is the global
    position; consumers read it in order (see invoicing/events.py for the safe-ordering rule)."""

    id = models.BigAutoField(primary_key=True)
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="+", db_index=False
    )  # the (company, id) index below serves it
    stream_id = models.UUIDField()
    version = models.PositiveIntegerField()
    type = models.CharField(max_length=50)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    metadata = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder, help_text="actor, request id"
    )
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream_id", "version"], name="invoicing_event_stream_version"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="invoicing_event_version_1"),
        ]
        indexes = [
            models.Index(fields=["company", "id"], name="invoicing_event_company"),
        ]

    def __str__(self) -> str:
        return f"{self.stream_id} v{self.version} {self.type}"


# ---------------------------------------------------------------------------------------------
# Read model
# ---------------------------------------------------------------------------------------------


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", "Tax invoice (Mushak-6.3)"
    CREDIT_NOTE = "credit_note", "Credit note (Mushak-6.7)"
    DEBIT_NOTE = "debit_note", "Debit note (Mushak-6.8)"
    BILL = "bill", "Vendor bill"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    PARTIALLY_PAID = "partially_paid", "Partially paid"
    PAID = "paid", "Paid"
    OVERDUE = "overdue", "Overdue"
    VOID = "void", "Void"


MUSHAK_FORM = {
    InvoiceKind.INVOICE: "6.3",
    InvoiceKind.CREDIT_NOTE: "6.7",
    InvoiceKind.DEBIT_NOTE: "6.8",
    InvoiceKind.BILL: "",
}


def _money(**kwargs):
    return models.DecimalField(max_digits=18, decimal_places=2, default=0, **kwargs)


class Invoice(models.Model):
    """Read model of one stream (a tax invoice, a credit or debit note, a vendor bill).

    Every column is derived from the stream's events; `version` is the stream version the row
    reflects and is what a client sends back as `expected_version`. For a tax invoice,
    `amount_due = total_amount + debited_amount - credited_amount - amount_paid`."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="invoices")
    stream_id = models.UUIDField(unique=True)
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=InvoiceKind.choices)
    original = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="adjustments",
        help_text="The invoice a credit or debit note adjusts.",
    )
    # Numbering (empty until approval)
    number = models.CharField(max_length=60, blank=True)
    series = models.CharField(max_length=20, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    branch = models.CharField(
        max_length=30, blank=True, help_text="Place-of-supply code; numbers run per branch."
    )
    place_of_supply = models.CharField(
        max_length=255, blank=True, help_text="Address of issue printed on the form."
    )
    fiscal_year = models.CharField(max_length=9, blank=True, help_text="2025-26")
    mushak_form = models.CharField(max_length=4, blank=True, help_text="6.3, 6.7 or 6.8")
    mushak_number = models.CharField(
        max_length=60, blank=True, help_text="The challan number printed on the Mushak form."
    )
    status = models.CharField(
        max_length=15, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    customer = models.ForeignKey(
        Party, null=True, blank=True, on_delete=models.PROTECT, related_name="sales_invoices"
    )
    vendor = models.ForeignKey(
        Party, null=True, blank=True, on_delete=models.PROTECT, related_name="vendor_bills"
    )
    issue_date = models.DateField()
    issue_time = models.TimeField(null=True, blank=True, help_text="Set at approval (24 h).")
    due_date = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="BDT")
    # Totals: sums of the rounded lines
    total_value = _money(help_text="Sum of line values, before SD and VAT.")
    total_sd = _money()
    total_vat = _money()
    total_amount = _money(help_text="Value + SD + VAT.")
    vds_amount = _money(help_text="VAT the withholding buyer deducts at source.")
    credited_amount = _money(help_text="Credit notes issued against this invoice.")
    debited_amount = _money(help_text="Debit notes issued against this invoice.")
    amount_paid = _money(help_text="Payments and VAT withheld at source.")
    amount_due = _money(
        help_text="Negative when credit notes after payment left the customer in credit."
    )
    # Buyer and seller as at issue (approval or note): reprints show these, not today's data
    buyer_name = models.CharField(max_length=255, blank=True)
    buyer_bin = models.CharField(max_length=13, blank=True)
    buyer_address = models.TextField(blank=True)
    buyer_withholding = models.BooleanField(
        default=False, help_text="The buyer deducted VAT at source (VDS) when issued."
    )
    seller_name = models.CharField(max_length=255, blank=True)
    seller_bin = models.CharField(max_length=13, blank=True)
    seller_address = models.TextField(blank=True)
    # Mushak header fields
    destination = models.CharField(max_length=255, blank=True)
    vehicle_type = models.CharField(max_length=50, blank=True)
    vehicle_number = models.CharField(max_length=50, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why a note was issued.")
    notes = models.TextField(blank=True)
    # Life cycle
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    approved_by_label = models.CharField(max_length=150, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=500, blank=True)
    journal_entry = models.ForeignKey(
        "accounting.JournalEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    void_journal_entry = models.ForeignKey(
        "accounting.JournalEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    # PROTECT: the events name the template, so a rebuild must find it (deactivate instead).
    recurring = models.ForeignKey(
        "RecurringInvoice",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
        db_constraint=False,
    )
    last_reminder_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(help_text="When the first event was recorded.")
    updated_at = models.DateTimeField(help_text="When the latest event was recorded.")

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "number"],
                condition=~Q(number=""),
                name="invoicing_invoice_number_unique",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=InvoiceKind.values), name="invoicing_invoice_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=InvoiceStatus.values), name="invoicing_invoice_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="draft")
                | Q(status="void", approved_at__isnull=True)
                | ~Q(number=""),
                name="invoicing_invoice_numbered_after_approval",
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0), name="invoicing_invoice_paid_nonneg"
            ),
        ]
        indexes = [
            models.Index(fields=["company", "customer"], name="invoicing_inv_customer"),
            models.Index(fields=["company", "vendor"], name="invoicing_inv_vendor"),
            models.Index(fields=["company", "status"], name="invoicing_inv_status"),
            models.Index(fields=["company", "fiscal_year"], name="invoicing_inv_fy"),
            models.Index(fields=["company", "-issue_date", "-id"], name="invoicing_inv_date"),
            models.Index(fields=["mushak_number"], name="invoicing_inv_mushak"),
            models.Index(fields=["company", "status", "due_date"], name="invoicing_inv_due"),
            # The list API sorts by these (ordering=total_amount, amount_due, due_date): without
            # them a sorted page of 100,000 invoices is a full sort spilling to disk.
            models.Index(fields=["company", "total_amount", "id"], name="invoicing_inv_total"),
            models.Index(fields=["company", "amount_due", "id"], name="invoicing_inv_amount_due"),
            models.Index(fields=["company", "due_date", "id"], name="invoicing_inv_due_date"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {str(self.stream_id)[:8]}"

    @property
    def is_note(self) -> bool:
        return self.kind in (InvoiceKind.CREDIT_NOTE, InvoiceKind.DEBIT_NOTE)

    @property
    def party(self):
        return self.vendor if self.kind == InvoiceKind.BILL else self.customer


class InvoiceLine(models.Model):
    """One line as printed in the 11 Mushak-6.3 columns; rates and amounts as snapshotted."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    serial = models.PositiveSmallIntegerField()
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    description = models.CharField(max_length=500)
    brand = models.CharField(max_length=100, blank=True)
    unit = models.CharField(max_length=30)
    quantity = models.DecimalField(max_digits=18, decimal_places=4)
    unit_price = models.DecimalField(max_digits=18, decimal_places=4)
    value = _money(help_text="quantity x unit price, rounded half-up.")
    sd_rate = models.DecimalField(max_digits=7, decimal_places=4, default=0)
    sd_amount = _money()
    vat_rate_code = models.CharField(max_length=30)
    vat_kind = models.CharField(max_length=10, choices=VatKind.choices)
    vat_rate = models.DecimalField(max_digits=7, decimal_places=4, default=0)
    vat_specific_amount = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    vat_label = models.CharField(max_length=40, blank=True, help_text="15%, Exempt, Tk 2/unit")
    sro_reference = models.CharField(max_length=100, blank=True)
    vat_amount = _money()
    total = _money(help_text="Value including SD and VAT.")

    class Meta:
        ordering = ["invoice", "serial"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "serial"], name="invoicing_line_serial"),
        ]

    def __str__(self) -> str:
        return f"{self.serial}. {self.description}"


class InvoicePayment(models.Model):
    """A payment (or VAT withheld at source) recorded against an invoice, projected from its
    PaymentRecorded event."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="payments")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    event_version = models.PositiveIntegerField()
    date = models.DateField()
    amount = _money(help_text="Received in the bank or cash account.")
    vds_withheld = _money(help_text="VAT the buyer withheld at source (Mushak-6.6).")
    method = models.CharField(max_length=30, blank=True)
    reference = models.CharField(max_length=100, blank=True)
    account_code = models.CharField(max_length=30, blank=True)
    journal_entry = models.ForeignKey(
        "accounting.JournalEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["invoice", "event_version"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "event_version"], name="invoicing_payment_event"
            ),
        ]
        indexes = [models.Index(fields=["company", "date"], name="invoicing_payment_date")]

    def __str__(self) -> str:
        return f"{self.invoice} {self.date} {self.amount}"


class InvoiceCounter(models.Model):
    """Gapless numbering: one row per company, series, branch and fiscal year, incremented in
    the approving transaction (a rollback gives the number back)."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    series = models.CharField(max_length=20)
    branch = models.CharField(max_length=30, blank=True)
    fiscal_year = models.CharField(max_length=9)
    last = models.PositiveIntegerField(default=0)
    last_date = models.DateField(
        null=True,
        blank=True,
        help_text="Issue date of the last number drawn (dates follow numbers).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company", "series", "branch", "fiscal_year"],
                name="invoicing_counter_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.series}/{self.branch or '-'}/{self.fiscal_year}: {self.last}"


class ProjectionCheckpoint(models.Model):
    """How far an asynchronous consumer has read the global event log (InvoiceEvent.id).
    Updated in the same transaction as the consumer's own writes (invoicing.events)."""

    name = models.CharField(max_length=100, unique=True)
    position = models.BigIntegerField(
        default=0, help_text="InvoiceEvent.id of the last event read."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"


class PartyBalance(models.Model):
    """Receivable balance per customer, kept by the asynchronous receivables feed
    (invoicing.events.receivables_feed_run) from the event log, behind its checkpoint."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    party = models.OneToOneField(Party, on_delete=models.PROTECT, related_name="balance")
    invoiced = _money(help_text="Approved invoices and debit notes.")
    credited = _money(help_text="Credit notes and voided invoices.")
    received = _money(help_text="Payments and VAT withheld at source.")
    balance = _money(help_text="invoiced - credited - received")
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "party"]

    def __str__(self) -> str:
        return f"{self.party}: {self.balance}"


class Frequency(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    YEARLY = "yearly", "Yearly"


class RecurringInvoice(models.Model):
    """A template beat turns into a draft (or approved) invoice on each `next_date`.

    `lines` is a list of line inputs as the draft service takes them:
    `{"item": id?, "description", "unit", "quantity", "unit_price", "vat_rate": code,
    "sd_rate", "specific_vat_amount"?}`."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    customer = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="recurring")
    lines = models.JSONField(default=list, encoder=DjangoJSONEncoder)
    currency = models.CharField(max_length=3, blank=True, help_text="Empty: base currency.")
    branch = models.CharField(max_length=30, blank=True)
    destination = models.CharField(max_length=255, blank=True)
    notes = models.TextField(blank=True)
    frequency = models.CharField(
        max_length=10, choices=Frequency.choices, default=Frequency.MONTHLY
    )
    interval = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    next_date = models.DateField()
    anchor_day = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Day of the month the schedule keeps (31 = month end); set from next_date.",
    )
    end_date = models.DateField(null=True, blank=True)
    due_days = models.PositiveSmallIntegerField(default=30)
    auto_approve = models.BooleanField(
        default=False, help_text="Approve (number, post) each invoice instead of leaving a draft."
    )
    is_active = models.BooleanField(default=True)
    last_run_on = models.DateField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "next_date", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(frequency__in=Frequency.values), name="invoicing_recurring_freq"
            ),
            models.CheckConstraint(condition=Q(interval__gte=1), name="invoicing_recurring_every"),
        ]
        indexes = [
            models.Index(fields=["is_active", "next_date"], name="invoicing_recurring_due"),
        ]

    def __str__(self) -> str:
        return self.name
