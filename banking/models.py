"""Banking data: bank accounts, book transactions, statements, reconciliation, transfers, cash.

Writes go through banking.services (and banking.reconciliation / banking.imports); the database
keeps the invariants that matter even when something goes around them (banking/sql/):

- a posted transaction's amount, date, kind, direction, accounts and dimensions never change,
  and it is never deleted nor moved back to draft;
- accepted reconciliation allocations never exceed a statement line's |amount| nor a
  transaction's amount;
- `BankDailyBalance` (posted inflow and outflow per account and day) is kept by triggers from
  the posted transactions, so a cash position over years of history reads a few hundred rows.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from core.models import Company, validate_currency


def _money(**kwargs) -> models.DecimalField:
    kwargs.setdefault("max_digits", 18)
    kwargs.setdefault("decimal_places", 2)
    return models.DecimalField(**kwargs)


def _dimension(model: str) -> models.ForeignKey:
    return models.ForeignKey(
        f"accounting.{model}",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )


_CONFIDENCE = [MinValueValidator(0), MaxValueValidator(1)]


# ---------------------------------------------------------------------------------------------
# Settings and accounts
# ---------------------------------------------------------------------------------------------


class BankingSettings(models.Model):
    """A company's own banking thresholds. Empty fields fall back to the project settings
    BANKING_RECONCILIATION_THRESHOLD, BANKING_VARIANCE_ALERT_THRESHOLD and
    BANKING_AUTO_ACCEPT_CONFIDENCE (see banking.services.banking_settings_for)."""

    company = models.OneToOneField(
        Company, on_delete=models.PROTECT, related_name="banking_settings"
    )
    reconciliation_threshold = _money(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="A reconciliation whose variance exceeds this is not reconciled.",
    )
    variance_alert_threshold = _money(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="A variance above this raises an alert (email, log, metric).",
    )
    auto_accept_confidence = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=_CONFIDENCE,
        help_text="Match suggestions at or above this confidence are accepted automatically.",
    )
    # 3 days, as the matcher's own default (banking.matching.MatchConfig) and the issue's
    # "amount and sign within a date window": a wider window only adds competing candidates.
    match_window_days = models.PositiveSmallIntegerField(
        default=3, help_text="Days either side of a statement line's date to look for a match."
    )
    alert_recipients = models.TextField(
        blank=True, help_text="E-mail addresses for variance alerts, comma separated."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "banking settings"
        verbose_name_plural = "banking settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(reconciliation_threshold__isnull=True)
                | Q(reconciliation_threshold__gte=0),
                name="banking_settings_threshold_nonneg",
            ),
            models.CheckConstraint(
                condition=Q(variance_alert_threshold__isnull=True)
                | Q(variance_alert_threshold__gte=0),
                name="banking_settings_alert_nonneg",
            ),
            models.CheckConstraint(
                condition=Q(auto_accept_confidence__isnull=True)
                | Q(auto_accept_confidence__gte=0, auto_accept_confidence__lte=1),
                name="banking_settings_confidence_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"Banking settings of {self.company}"


class BankAccount(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="bank_accounts")
    name = models.CharField(max_length=100)
    ledger_account = models.ForeignKey(
        "accounting.Account",
        on_delete=models.PROTECT,
        related_name="bank_accounts",
        help_text="The postable asset account this bank account posts to.",
    )
    currency = models.CharField(max_length=3, validators=[validate_currency])
    bank_name = models.CharField(max_length=100, blank=True)
    branch = models.CharField(max_length=100, blank=True)
    account_number_masked = models.CharField(
        max_length=40, blank=True, help_text="Shown masked, e.g. ****1234."
    )
    iban = models.CharField(
        "IBAN", max_length=34, blank=True, help_text="Stored without spaces, upper case."
    )
    bic = models.CharField("BIC", max_length=11, blank=True)
    opening_balance = _money(default=0)
    opening_date = models.DateField(
        null=True, blank=True, help_text="The book balance before transactions from this day."
    )
    is_active = models.BooleanField("active", default=True)
    statement_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text="The saved CSV column mapping (see banking.parsers.csv.CsvMapping).",
    )
    auto_accept_confidence = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=_CONFIDENCE,
        help_text="Empty: the company's default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "ledger_account"], name="banking_account_ledger_unique"
            ),
            models.UniqueConstraint(
                fields=["company", "iban"],
                condition=~Q(iban=""),
                name="banking_account_iban_unique",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="banking_account_currency_iso"
            ),
            models.CheckConstraint(
                condition=Q(auto_accept_confidence__isnull=True)
                | Q(auto_accept_confidence__gte=0, auto_accept_confidence__lte=1),
                name="banking_account_confidence_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------
# Book transactions
# ---------------------------------------------------------------------------------------------


class TransactionKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    WITHDRAWAL = "withdrawal", "Withdrawal"
    TRANSFER = "transfer", "Transfer"
    FEE = "fee", "Bank fee"
    INTEREST = "interest", "Interest"


class Direction(models.TextChoices):
    IN = "in", "Money in"
    OUT = "out", "Money out"


class PostingStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    POSTED = "posted", "Posted"


class TransactionSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    STATEMENT = "statement", "Statement line"
    INVOICE_PAYMENT = "invoice_payment", "Invoice payment"
    TRANSFER = "transfer", "Transfer"
    CASH_SUBMISSION = "cash_submission", "Cash submission"
    FLOAT = "float", "Petty cash float"
    LEDGER = "ledger", "Ledger entry"


class BankTransaction(models.Model):
    """A movement on a bank account in the books. `amount` is positive; `direction` says which
    way it goes. Posting makes one journal entry: the bank's ledger account against
    `counter_account`, with the transaction's dimensions on every line."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="transactions", db_index=False
    )
    kind = models.CharField(max_length=10, choices=TransactionKind.choices)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    amount = _money(validators=[MinValueValidator(0)])
    date = models.DateField()
    value_date = models.DateField(null=True, blank=True)
    reference = models.CharField(max_length=140, blank=True)
    counterparty = models.CharField(max_length=200, blank=True)
    memo = models.CharField(max_length=500, blank=True)
    branch = models.CharField(max_length=100, blank=True)
    cost_center = _dimension("CostCenter")
    project = _dimension("Project")
    department = _dimension("Department")
    counter_account = models.ForeignKey(
        "accounting.Account",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The other side of the posting; empty takes the default of the kind.",
    )
    posting_status = models.CharField(
        max_length=6, choices=PostingStatus.choices, default=PostingStatus.DRAFT
    )
    journal_entry = models.ForeignKey(
        "accounting.JournalEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    posted_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(
        max_length=16, choices=TransactionSource.choices, default=TransactionSource.MANUAL
    )
    source_id = models.CharField(max_length=64, blank=True)
    # The invoice read model may be rebuilt (rows deleted and projected again): no FK constraint.
    invoice = models.ForeignKey(
        "invoicing.Invoice",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    reconciled_amount = _money(default=0)
    is_reversed = models.BooleanField(
        "reversed",
        default=False,
        db_default=False,  # rows loaded around Django (COPY, raw INSERT) are not reversed
        help_text="Its journal entry was reversed (or it is the reversal): it counts in the "
        "balance, nets out with its pair, and is neither matched nor outstanding.",
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="banking_txn_amount_positive"),
            models.CheckConstraint(
                condition=Q(kind__in=TransactionKind.values), name="banking_txn_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["deposit", "interest"], direction="in")
                | Q(kind__in=["withdrawal", "fee"], direction="out")
                | Q(kind="transfer", direction__in=["in", "out"]),
                name="banking_txn_direction_of_kind",
            ),
            models.CheckConstraint(
                condition=Q(posting_status="draft", journal_entry__isnull=True)
                | Q(posting_status="posted", journal_entry__isnull=False),
                name="banking_txn_posted_has_entry",
            ),
            models.CheckConstraint(
                condition=Q(reconciled_amount__gte=0, reconciled_amount__lte=F("amount")),
                name="banking_txn_reconciled_0_amount",
            ),
            models.CheckConstraint(
                condition=Q(source__in=TransactionSource.values), name="banking_txn_source_valid"
            ),
        ]
        indexes = [
            # Cash position, dimensional analysis, the reconciliation's book side: one account
            # and a date range, answered from the index alone on PostgreSQL (an index-only
            # scan; SQLite builds it without the included columns).
            models.Index(
                fields=["bank_account", "date"],
                include=[
                    "amount",
                    "direction",
                    "posting_status",
                    "cost_center",
                    "project",
                    "department",
                    "branch",
                ],
                name="banking_txn_account_date",
            ),
            models.Index(fields=["company", "posting_status"], name="banking_txn_company_status"),
            models.Index(fields=["company", "source", "source_id"], name="banking_txn_source"),
            models.Index(
                fields=["bank_account", "date"],
                condition=Q(reconciled_amount__lt=F("amount")),
                name="banking_txn_unreconciled",
            ),
        ]

    def __str__(self) -> str:
        sign = "+" if self.direction == Direction.IN else "-"
        return f"{self.date} {self.get_kind_display()} {sign}{self.amount}"

    @property
    def signed_amount(self):
        return self.amount if self.direction == Direction.IN else -self.amount

    @property
    def is_posted(self) -> bool:
        return self.posting_status == PostingStatus.POSTED


class BankDailyBalance(models.Model):
    """Posted inflow and outflow per bank account and day. Kept by database triggers from
    BankTransaction (banking/sql/); never written by Python."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    date = models.DateField()
    inflow = _money(max_digits=20, default=0)
    outflow = _money(max_digits=20, default=0)
    count = models.IntegerField(default=0)

    class Meta:
        ordering = ["bank_account", "date"]
        constraints = [
            models.UniqueConstraint(
                fields=["bank_account", "date"], name="banking_daily_balance_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bank_account_id} {self.date}: +{self.inflow} -{self.outflow}"


# ---------------------------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------------------------


class StatementFormat(models.TextChoices):
    OFX = "ofx", "OFX"
    MT940 = "mt940", "MT940"
    CAMT053 = "camt053", "CAMT.053"
    CSV = "csv", "CSV"


class StatementImport(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="statement_imports", db_index=False
    )
    format = models.CharField(max_length=8, choices=StatementFormat.choices)
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField("SHA-256", max_length=64)
    raw = models.BinaryField(help_text="The file as uploaded.")
    statement_id = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    opening_balance = _money(null=True, blank=True)
    opening_date = models.DateField(null=True, blank=True)
    closing_balance = _money(null=True, blank=True)
    closing_date = models.DateField(null=True, blank=True)
    line_count = models.PositiveIntegerField(default=0)
    new_line_count = models.PositiveIntegerField(default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["bank_account", "sha256"], name="banking_import_file_unique"
            ),
            models.CheckConstraint(
                condition=Q(format__in=StatementFormat.values), name="banking_import_format_valid"
            ),
            models.CheckConstraint(
                condition=Q(new_line_count__lte=F("line_count")), name="banking_import_counts"
            ),
        ]
        indexes = [
            models.Index(fields=["company", "created_at"], name="banking_import_company"),
        ]

    def __str__(self) -> str:
        return self.filename or f"{self.get_format_display()} import {self.pk}"


class LineStatus(models.TextChoices):
    UNMATCHED = "unmatched", "Unmatched"
    PARTIALLY_MATCHED = "partially_matched", "Partially matched"
    MATCHED = "matched", "Matched"
    IGNORED = "ignored", "Ignored"


class StatementLine(models.Model):
    """One entry of a bank statement. `amount` is signed: + money in, − money out."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="statement_lines", db_index=False
    )
    statement_import = models.ForeignKey(
        StatementImport, on_delete=models.PROTECT, related_name="lines"
    )
    line_no = models.PositiveIntegerField(help_text="Position in the file, from 1.")
    date = models.DateField()
    value_date = models.DateField(null=True, blank=True)
    amount = _money()
    currency = models.CharField(max_length=3, blank=True)
    bank_id = models.CharField(
        max_length=100, blank=True, help_text="FITID / AcctSvcrRef / NtryRef; blank if none."
    )
    content_hash = models.CharField(max_length=64)
    reference = models.CharField(max_length=200, blank=True)
    counterparty = models.CharField(max_length=200, blank=True)
    counterparty_account = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    raw = models.TextField(blank=True, help_text="The line's source text.")
    reconciled_amount = _money(default=0)
    status = models.CharField(
        max_length=20, choices=LineStatus.choices, default=LineStatus.UNMATCHED
    )

    class Meta:
        ordering = ["bank_account", "date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["bank_account", "bank_id"],
                condition=~Q(bank_id=""),
                name="banking_line_bank_id_unique",
            ),
            models.UniqueConstraint(
                fields=["bank_account", "content_hash"], name="banking_line_hash_unique"
            ),
            models.CheckConstraint(
                condition=Q(status__in=LineStatus.values), name="banking_line_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(reconciled_amount__gte=0)
                & (
                    Q(amount__gte=0, reconciled_amount__lte=F("amount"))
                    | Q(amount__lt=0, reconciled_amount__lte=-F("amount"))
                ),
                name="banking_line_reconciled_0_abs",
            ),
            # the status says what reconciled_amount says (ignored lines aside)
            models.CheckConstraint(
                condition=Q(status="ignored")
                | Q(status="unmatched", reconciled_amount=0)
                | (
                    Q(status="partially_matched", reconciled_amount__gt=0)
                    & (
                        Q(amount__gte=0, reconciled_amount__lt=F("amount"))
                        | Q(amount__lt=0, reconciled_amount__lt=-F("amount"))
                    )
                )
                | (
                    Q(status="matched")
                    & (
                        Q(amount__gte=0, reconciled_amount=F("amount"))
                        | Q(amount__lt=0, reconciled_amount=-F("amount"))
                    )
                ),
                name="banking_line_status_of_reconciled",
            ),
        ]
        indexes = [
            models.Index(fields=["bank_account", "date"], name="banking_line_account_date"),
            models.Index(
                fields=["bank_account", "date"],
                condition=Q(status__in=["unmatched", "partially_matched"]),
                name="banking_line_unreconciled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.amount} {self.reference or self.description[:40]}"


# ---------------------------------------------------------------------------------------------
# Reconciliation
# ---------------------------------------------------------------------------------------------


class ReconciliationStatus(models.TextChoices):
    OPEN = "open", "Open"
    RECONCILED = "reconciled", "Reconciled"
    EXCEEDS_THRESHOLD = "exceeds_threshold", "Variance exceeds threshold"


class BankReconciliation(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="reconciliations", db_index=False
    )
    period = models.DateField(help_text="The first day of the month reconciled.")
    statement_opening = _money(null=True, blank=True)
    statement_closing = _money(null=True, blank=True)
    book_balance = _money(default=0)
    outstanding_deposits = _money(default=0)
    outstanding_payments = _money(default=0)
    variance = _money(default=0)
    threshold = _money(default=0)
    status = models.CharField(
        max_length=20, choices=ReconciliationStatus.choices, default=ReconciliationStatus.OPEN
    )
    reconciled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reconciled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bank_account", "-period"]
        constraints = [
            models.UniqueConstraint(
                fields=["bank_account", "period"], name="banking_reconciliation_period_unique"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ReconciliationStatus.values),
                name="banking_reconciliation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(threshold__gte=0), name="banking_reconciliation_threshold_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bank_account} {self.period:%Y-%m}"


class MatchMethod(models.TextChoices):
    REFERENCE = "reference", "Exact reference"
    AMOUNT_DATE = "amount_date", "Amount and date"
    SIMILARITY = "similarity", "Party or reference similarity"
    MANY_TO_ONE = "many_to_one", "Many to one"
    MANUAL = "manual", "Manual"
    CREATED_FROM_LINE = "created_from_line", "Created from the statement line"
    INVOICE = "invoice", "Invoice settlement"


class MatchStatus(models.TextChoices):
    SUGGESTED = "suggested", "Suggested"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class ReconciliationMatch(models.Model):
    """An allocation of (part of) a statement line to (part of) a book transaction."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    reconciliation = models.ForeignKey(
        BankReconciliation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="matches",
    )
    statement_line = models.ForeignKey(
        StatementLine, on_delete=models.PROTECT, related_name="matches"
    )
    bank_transaction = models.ForeignKey(
        BankTransaction, on_delete=models.PROTECT, related_name="matches"
    )
    amount = _money(help_text="The part allocated, positive.")
    # Copies of the two sides' account and dates (checked by the database against them), so
    # the month-end report finds what crossed a month end by an index: a transaction booked on
    # or before the end and cleared by a line after it, or the other way round.
    bank_account = models.ForeignKey(
        BankAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    booked_on = models.DateField(null=True, blank=True, help_text="The transaction's date.")
    cleared_on = models.DateField(null=True, blank=True, help_text="The statement line's date.")
    method = models.CharField(max_length=20, choices=MatchMethod.choices)
    confidence = models.DecimalField(
        max_digits=5, decimal_places=4, default=1, validators=_CONFIDENCE
    )
    status = models.CharField(
        max_length=10, choices=MatchStatus.choices, default=MatchStatus.SUGGESTED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["statement_line", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["statement_line", "bank_transaction"],
                condition=~Q(status="rejected"),
                name="banking_match_pair_unique",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="banking_match_amount_positive"),
            models.CheckConstraint(
                condition=Q(confidence__gte=0, confidence__lte=1), name="banking_match_confidence"
            ),
            models.CheckConstraint(
                condition=Q(method__in=MatchMethod.values), name="banking_match_method_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=MatchStatus.values), name="banking_match_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["company", "status"], name="banking_match_company_status"),
        ]

    def __str__(self) -> str:
        return f"{self.statement_line_id} ↔ {self.bank_transaction_id}: {self.amount}"

    def save(self, *args, **kwargs):
        # the copies of the line's account and date and the transaction's date (PostgreSQL's
        # trigger fills and checks them too; SQLite relies on this)
        if self.bank_account_id is None or self.cleared_on is None:
            line = StatementLine.objects.only("bank_account_id", "date").get(
                pk=self.statement_line_id
            )
            self.bank_account_id, self.cleared_on = line.bank_account_id, line.date
        if self.booked_on is None:
            self.booked_on = BankTransaction.objects.values_list("date", flat=True).get(
                pk=self.bank_transaction_id
            )
        super().save(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Transfers between own accounts
# ---------------------------------------------------------------------------------------------


class TransferStatus(models.TextChoices):
    INITIATED = "initiated", "Initiated"
    IN_TRANSIT = "in_transit", "In transit"
    SETTLED = "settled", "Settled"
    CANCELLED = "cancelled", "Cancelled"


class BankTransfer(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    from_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="transfers_out"
    )
    to_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="transfers_in"
    )
    amount = _money()
    currency = models.CharField(max_length=3, validators=[validate_currency])
    date = models.DateField(help_text="The day the transfer was initiated.")
    expected_settlement_date = models.DateField(null=True, blank=True)
    reference = models.CharField(max_length=140, blank=True)
    memo = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=10, choices=TransferStatus.choices, default=TransferStatus.INITIATED
    )
    cost_center = _dimension("CostCenter")
    project = _dimension("Project")
    department = _dimension("Department")
    settled_on = models.DateField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="banking_transfer_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(from_account=F("to_account")), name="banking_transfer_two_accounts"
            ),
            models.CheckConstraint(
                condition=Q(status__in=TransferStatus.values), name="banking_transfer_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["company", "status", "date"], name="banking_transfer_status"),
        ]

    def __str__(self) -> str:
        return f"{self.from_account} → {self.to_account} {self.amount} ({self.date})"


class TransferLeg(models.TextChoices):
    OUT = "out", "Out of the sending account"
    IN = "in", "Into the receiving account"


class BankTransferAllocation(models.Model):
    """One posted leg of a transfer: out of the sending account into transit, or from transit
    into the receiving account (several in-legs may add up to the amount)."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    transfer = models.ForeignKey(BankTransfer, on_delete=models.PROTECT, related_name="legs")
    leg = models.CharField(max_length=3, choices=TransferLeg.choices)
    bank_account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="+")
    bank_transaction = models.OneToOneField(
        BankTransaction, on_delete=models.PROTECT, related_name="transfer_leg"
    )
    amount = _money()
    date = models.DateField()
    cleared = models.BooleanField(
        default=False, help_text="Its transaction is reconciled to a statement line."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["transfer", "date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="banking_leg_amount_positive"),
            models.CheckConstraint(condition=Q(leg__in=["out", "in"]), name="banking_leg_valid"),
            models.UniqueConstraint(
                fields=["transfer"], condition=Q(leg="out"), name="banking_leg_one_out"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transfer_id} {self.leg} {self.amount}"


# ---------------------------------------------------------------------------------------------
# Cash: branch submissions through cash in transit, petty cash floats
# ---------------------------------------------------------------------------------------------


class CashSubmissionStatus(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    DEPOSITED = "deposited", "Deposited"
    CLOSED = "closed", "Closed"


class CashSubmission(models.Model):
    """Branch cash sent to the bank: Dr cash in transit / Cr branch cash when submitted; Dr bank
    / Cr cash in transit (the difference to cash over and short) when the bank credits it."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    branch = models.CharField(max_length=100)
    from_account = models.ForeignKey(
        "accounting.Account",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The branch's cash account.",
    )
    bank_account = models.ForeignKey(
        BankAccount, on_delete=models.PROTECT, related_name="cash_submissions"
    )
    expected_amount = _money()
    deposited_amount = _money(null=True, blank=True)
    submitted_on = models.DateField()
    deposited_on = models.DateField(null=True, blank=True)
    variance = _money(null=True, blank=True, help_text="Deposited − expected.")
    status = models.CharField(
        max_length=10, choices=CashSubmissionStatus.choices, default=CashSubmissionStatus.SUBMITTED
    )
    reference = models.CharField(max_length=140, blank=True)
    memo = models.CharField(max_length=500, blank=True)
    cost_center = _dimension("CostCenter")
    project = _dimension("Project")
    department = _dimension("Department")
    submission_entry = models.ForeignKey(
        "accounting.JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deposit_transaction = models.OneToOneField(
        BankTransaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cash_submission",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-submitted_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expected_amount__gt=0), name="banking_cash_expected_positive"
            ),
            models.CheckConstraint(
                condition=Q(deposited_amount__isnull=True) | Q(deposited_amount__gt=0),
                name="banking_cash_deposited_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=CashSubmissionStatus.values),
                name="banking_cash_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="submitted", deposit_transaction__isnull=True)
                | (
                    Q(status__in=["deposited", "closed"], deposit_transaction__isnull=False)
                    & Q(deposited_amount__isnull=False, deposited_on__isnull=False)
                ),
                name="banking_cash_deposit_complete",
            ),
        ]
        indexes = [
            models.Index(fields=["company", "status", "submitted_on"], name="banking_cash_status"),
        ]

    def __str__(self) -> str:
        return f"{self.branch} {self.submitted_on} {self.expected_amount}"


class FloatStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed"


class FloatAllocation(models.Model):
    """A petty cash imprest: a fixed float held by a custodian, issued from a bank account,
    spent by vouchers and replenished for them."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    custodian = models.CharField(max_length=200)
    petty_cash_account = models.ForeignKey(
        "accounting.Account", on_delete=models.PROTECT, related_name="+"
    )
    bank_account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="floats")
    float_amount = _money()
    issued_on = models.DateField()
    status = models.CharField(
        max_length=10, choices=FloatStatus.choices, default=FloatStatus.ACTIVE
    )
    cost_center = _dimension("CostCenter")
    project = _dimension("Project")
    department = _dimension("Department")
    issue_transaction = models.OneToOneField(
        BankTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(float_amount__gt=0), name="banking_float_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(status__in=FloatStatus.values), name="banking_float_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.custodian})"


class FloatReplenishment(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    float = models.ForeignKey(
        FloatAllocation, on_delete=models.PROTECT, related_name="replenishments"
    )
    date = models.DateField()
    vouchers_total = _money()
    counted_cash = _money()
    over_short = _money(help_text="Counted cash + vouchers − float: negative is short.")
    journal_entry = models.ForeignKey(
        "accounting.JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    bank_transaction = models.OneToOneField(
        BankTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["float", "-date", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(vouchers_total__gte=0, counted_cash__gte=0),
                name="banking_replenishment_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.float} {self.date} {self.vouchers_total}"


class VoucherStatus(models.TextChoices):
    OPEN = "open", "Open"
    REPLENISHED = "replenished", "Replenished"


class PettyCashVoucher(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    float = models.ForeignKey(FloatAllocation, on_delete=models.PROTECT, related_name="vouchers")
    date = models.DateField()
    amount = _money()
    expense_account = models.ForeignKey(
        "accounting.Account", on_delete=models.PROTECT, related_name="+"
    )
    description = models.CharField(max_length=500)
    reference = models.CharField(max_length=60, blank=True)
    cost_center = _dimension("CostCenter")
    project = _dimension("Project")
    department = _dimension("Department")
    status = models.CharField(
        max_length=12, choices=VoucherStatus.choices, default=VoucherStatus.OPEN
    )
    replenishment = models.ForeignKey(
        FloatReplenishment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="vouchers",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["float", "date", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="banking_voucher_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(status="open", replenishment__isnull=True)
                | Q(status="replenished", replenishment__isnull=False),
                name="banking_voucher_replenished_link",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.amount} {self.description[:40]}"
