"""The general ledger's data. Every write goes through accounting.services; PostgreSQL enforces
the invariants (accounting/sql/ledger_invariants.sql) so that going around Python fails too."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Company


class AccountType(models.TextChoices):
    ASSET = "asset", "Asset"
    LIABILITY = "liability", "Liability"
    EQUITY = "equity", "Equity"
    INCOME = "income", "Income"
    EXPENSE = "expense", "Expense"


# Types whose balance is normally a debit; the others are normally credits.
DEBIT_NORMAL_TYPES = frozenset({AccountType.ASSET, AccountType.EXPENSE})
PROFIT_AND_LOSS_TYPES = frozenset({AccountType.INCOME, AccountType.EXPENSE})


class Account(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="accounts")
    code = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=AccountType.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    is_postable = models.BooleanField(
        "postable", default=True, help_text="Header accounts group others and take no postings."
    )
    is_active = models.BooleanField("active", default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company", "code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="account_code_unique"),
            models.CheckConstraint(
                condition=Q(type__in=AccountType.values), name="account_type_valid"
            ),
            models.CheckConstraint(condition=~Q(code=""), name="account_code_not_blank"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_debit_normal(self) -> bool:
        return self.type in DEBIT_NORMAL_TYPES


class AccountRoleName(models.TextChoices):
    """What other modules post to. They ask for a role, never for an account code."""

    ACCOUNTS_RECEIVABLE = "accounts_receivable", "Accounts receivable"
    ACCOUNTS_PAYABLE = "accounts_payable", "Accounts payable"
    SALES_REVENUE = "sales_revenue", "Sales revenue"
    VAT_PAYABLE = "vat_payable", "VAT payable (output tax)"
    VAT_RECEIVABLE = "vat_receivable", "VAT receivable (input tax)"
    SD_PAYABLE = "sd_payable", "Supplementary duty payable"
    VDS_RECEIVABLE = "vds_receivable", "VAT deducted at source by customers"
    VDS_PAYABLE = "vds_payable", "VAT deducted at source from suppliers"
    SALARY_EXPENSE = "salary_expense", "Salary expense"
    EMPLOYER_CONTRIBUTION_EXPENSE = "employer_contribution_expense", "Employer contributions"
    SALARIES_PAYABLE = "salaries_payable", "Salaries payable"
    PAYROLL_TAX_PAYABLE = "payroll_tax_payable", "Payroll tax payable"
    DEDUCTIONS_PAYABLE = "deductions_payable", "Employee deductions payable"
    EMPLOYER_CONTRIBUTIONS_PAYABLE = (
        "employer_contributions_payable",
        "Employer contributions payable",
    )
    EMPLOYEE_LOANS = "employee_loans", "Employee loans and advances"
    BANK = "bank", "Main bank account"
    BANK_CLEARING = "bank_clearing", "Bank clearing"
    BANK_FEES = "bank_fees", "Bank charges"
    INTEREST_INCOME = "interest_income", "Interest income"
    CASH_IN_TRANSIT = "cash_in_transit", "Cash in transit"
    INTERNAL_TRANSFER = "internal_transfer", "Internal transfers"
    PETTY_CASH = "petty_cash", "Petty cash"
    CASH_OVER_SHORT = "cash_over_short", "Cash over and short"
    RETAINED_EARNINGS = "retained_earnings", "Retained earnings"
    OPENING_BALANCE_EQUITY = "opening_balance_equity", "Opening balance equity"
    ROUNDING = "rounding", "Rounding differences"


class AccountRole(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="account_roles")
    role = models.CharField(max_length=40, choices=AccountRoleName.choices)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="roles")

    class Meta:
        ordering = ["company", "role"]
        constraints = [
            models.UniqueConstraint(fields=["company", "role"], name="account_role_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} → {self.account}"


class Dimension(models.Model):
    """Cost centres, projects and departments share one shape; each is its own table so a
    journal line can carry all three."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["company", "code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class CostCenter(Dimension):
    class Meta(Dimension.Meta):
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="cost_center_code_unique")
        ]


class Project(Dimension):
    class Meta(Dimension.Meta):
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="project_code_unique")
        ]


class Department(Dimension):
    class Meta(Dimension.Meta):
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="department_code_unique")
        ]


class FiscalYear(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="fiscal_years")
    name = models.CharField(max_length=20, help_text="2025-26, or 2026 for a calendar year.")
    start_date = models.DateField()
    end_date = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closing_entry = models.OneToOneField(
        "JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["company", "-start_date"]
        constraints = [
            models.UniqueConstraint(fields=["company", "start_date"], name="fiscal_year_unique"),
            models.UniqueConstraint(fields=["company", "name"], name="fiscal_year_name_unique"),
            models.CheckConstraint(
                condition=Q(end_date__gt=models.F("start_date")), name="fiscal_year_dates"
            ),
        ]

    def __str__(self) -> str:
        return f"FY {self.name}"


class PeriodStatus(models.TextChoices):
    OPEN = "open", "Open"
    LOCKED = "locked", "Locked"
    CLOSED = "closed", "Closed"


class AccountingPeriod(models.Model):
    """A month of a fiscal year. Open takes postings; locked takes none until an accountant
    reopens it; closed is final unless an owner reopens it."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="periods")
    fiscal_year = models.ForeignKey(FiscalYear, on_delete=models.PROTECT, related_name="periods")
    number = models.PositiveSmallIntegerField(help_text="1 for the fiscal year's first month.")
    start_date = models.DateField()
    end_date = models.DateField()
    status = models.CharField(max_length=10, choices=PeriodStatus.choices, default="open")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["company", "start_date"]
        constraints = [
            models.UniqueConstraint(fields=["company", "start_date"], name="period_unique"),
            models.UniqueConstraint(fields=["fiscal_year", "number"], name="period_number_unique"),
            models.CheckConstraint(
                condition=Q(status__in=PeriodStatus.values), name="period_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")), name="period_dates"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start_date:%b %Y}"

    @property
    def label(self) -> str:
        return f"{self.start_date:%Y-%m} ({self.fiscal_year.name} P{self.number:02d})"


class EntryCounter(models.Model):
    """The counter row that numbers a company's journal entries within a fiscal year. Posting
    increments it in its own transaction, so a rolled-back posting leaves no gap."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+")
    fiscal_year = models.OneToOneField(FiscalYear, on_delete=models.PROTECT, related_name="+")
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.fiscal_year}: {self.last_number}"


class LedgerChain(models.Model):
    """Head of a company's hash chain of posted entries. Posting locks this row, which also
    puts a company's postings in one order."""

    company = models.OneToOneField(Company, on_delete=models.PROTECT, primary_key=True)
    last_entry = models.ForeignKey(
        "JournalEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"{self.company}: {self.last_hash[:12]}"


class EntryStatus(models.TextChoices):
    POSTED = "posted", "Posted"
    REVERSED = "reversed", "Reversed"


class JournalEntry(models.Model):
    # Indexes are chosen for the write path: every index costs each posted row. The company's
    # composite indexes below serve the company FK; the fiscal year and posting user are only
    # looked up when such a row is deleted, which the ledger never does. Company and fiscal
    # year carry no database foreign key (PostgreSQL checks each row at commit): the entry
    # trigger requires the entry's period to be of the same company and fiscal year, and the
    # period's own foreign keys and the one below keep all three from being deleted.
    company = models.ForeignKey(
        Company,
        on_delete=models.PROTECT,
        related_name="journal_entries",
        db_index=False,
        db_constraint=False,
    )
    fiscal_year = models.ForeignKey(
        FiscalYear, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    period = models.ForeignKey(AccountingPeriod, on_delete=models.PROTECT, related_name="entries")
    number = models.PositiveIntegerField(help_text="Gapless within the company's fiscal year.")
    date = models.DateField()
    memo = models.CharField(max_length=500, blank=True)
    source_type = models.CharField(
        max_length=50, blank=True, help_text="What posted it: manual, payroll_run, invoice..."
    )
    source_id = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=150)
    content_digest = models.CharField(
        max_length=64, help_text="SHA-256 of what was asked for; a reused key must match it."
    )
    total = models.DecimalField(max_digits=18, decimal_places=2, help_text="Sum of the debits.")
    status = models.CharField(
        max_length=10, choices=EntryStatus.choices, default=EntryStatus.POSTED
    )
    reversal_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    reversal_reason = models.CharField(max_length=500, blank=True)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    posted_by_label = models.CharField("posted by", max_length=150)
    posted_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name_plural = "journal entries"
        ordering = ["-date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "fiscal_year", "number"], name="journal_entry_number_unique"
            ),
            models.UniqueConstraint(
                fields=["company", "idempotency_key"], name="journal_entry_idempotency_unique"
            ),
            models.CheckConstraint(
                condition=Q(status__in=EntryStatus.values), name="journal_entry_status_valid"
            ),
            models.CheckConstraint(condition=Q(total__gt=0), name="journal_entry_total_positive"),
            models.CheckConstraint(condition=Q(number__gt=0), name="journal_entry_number_positive"),
        ]
        indexes = [
            models.Index(fields=["company", "date", "id"], name="journal_entry_company_date"),
            models.Index(fields=["company", "source_type", "source_id"], name="journal_entry_src"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        """JE/2025-26/000123: the number as people quote it."""
        return f"JE/{self.fiscal_year.name}/{self.number:06d}"


class JournalLine(models.Model):
    # Few indexes (primary key, entry, entry + line number, account + entry): lines are the
    # biggest table and each index costs every posted line. Dimension and company lookups go
    # through the entry or the per-period balances.
    #
    # No database foreign keys: PostgreSQL checks each one row by row at commit, a third of a
    # bulk posting's time. The line trigger (sql/ledger_invariants.sql, rule 2) refuses a line
    # whose entry, account or dimension is missing or of another company, set-based; entries
    # are never deleted, and accounts and dimensions in use cannot be (rule 6).
    entry = models.ForeignKey(
        JournalEntry, on_delete=models.PROTECT, related_name="lines", db_constraint=False
    )
    # The company again, so lines can be scoped and checked without joining the entry.
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    line_no = models.PositiveSmallIntegerField()
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="lines", db_index=False, db_constraint=False
    )
    debit = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    credit = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    cost_center = models.ForeignKey(
        CostCenter,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    project = models.ForeignKey(
        Project,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    memo = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["entry", "line_no"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(debit__gt=0) & Q(credit=0)) | (Q(debit=0) & Q(credit__gt=0)),
                name="journal_line_one_side_positive",
            ),
            models.UniqueConstraint(fields=["entry", "line_no"], name="journal_line_no_unique"),
        ]
        indexes = [
            models.Index(fields=["account", "entry"], name="journal_line_account"),
        ]

    def __str__(self) -> str:
        side = f"Dr {self.debit}" if self.debit else f"Cr {self.credit}"
        return f"{self.account_id} {side}"


class AccountBalance(models.Model):
    """Movements per period, account and dimension combination, kept up to date by posting so
    reports read these rows instead of every line. `manage.py rebuild_balances` recomputes them.

    Dimension keys are plain integers with 0 for "none" (not nullable foreign keys) so the
    unique key works with ON CONFLICT on both PostgreSQL and SQLite. Year-end closing entries
    are kept apart (`closing`) so profit and loss can leave them out.
    """

    # The unique key (period first) and the (company, period) index serve these foreign keys.
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    period = models.ForeignKey(
        AccountingPeriod, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False)
    cost_center_key = models.IntegerField(default=0)
    project_key = models.IntegerField(default=0)
    department_key = models.IntegerField(default=0)
    closing = models.BooleanField(default=False)
    debit = models.DecimalField(max_digits=20, decimal_places=2, default=0)
    credit = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "period",
                    "account",
                    "cost_center_key",
                    "project_key",
                    "department_key",
                    "closing",
                ],
                name="account_balance_key",
            ),
        ]
        indexes = [models.Index(fields=["company", "period"], name="account_balance_period")]

    def __str__(self) -> str:
        return f"{self.period} {self.account_id}: {self.debit} / {self.credit}"
