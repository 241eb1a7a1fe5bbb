"""The banking benchmark's workload, loaded set-based (COPY on PostgreSQL), never through the
services being measured.

- `company_make()`: a Bangladesh company (BDT, Asia/Dhaka) with its ledger, and
  `bank_account_make()` for bank accounts on their own postable ledger accounts under 1130.
- `reconcile_workload()`: `n` statement lines and `n` posted book transactions of one bank
  account over a year, in a realistic mix (see RECONCILE_MIX): most carry the same end-to-end
  reference on both sides, some only the same amount within a few days, some the same amount
  a month apart with the party spelt differently on the statement, some statement lines pay
  several book items at once (many-to-one), and the rest have no partner on the other side
  (bank charges and interest the books lack, cheques the bank has not cleared).
- `history_load()`: a table of transactions spread over accounts and years (the older months
  reconciled, as a company that reconciles monthly leaves them), with one account's report
  month open and its statement imported.
- `camt_file()`: a CAMT.053 file of `entries` entries (a copy of the generator in
  tests/banking/test_imports.py, so the benchmark does not import a test module).

Posted transactions need a journal entry (the check `posted <=> journal_entry`); the ledger
side is not what is measured here (bench/ledger.py measures posting), so every loaded
transaction of an account points to one real entry posted through the ledger service.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from bench._bulk import analyze as _analyze
from bench._bulk import table_insert

SEED = 6
YEAR_START = date(2025, 7, 1)  # the reconcile workloads' year (a July-June fiscal year)
HISTORY_START = date(2022, 1, 1)
HISTORY_END = date(2026, 6, 30)
REPORT_MONTH = date(2026, 5, 1)
REPORT_MONTH_END = date(2026, 5, 31)
HISTORY_ACCOUNTS = 10
# Kind of event -> weight. Each event uses one statement line and one book transaction, except
# many_to_one (one line, 2-4 transactions), bank_only (a line) and book_only (a transaction).
RECONCILE_MIX = (
    ("reference", 60),
    ("amount_date", 14),
    ("similarity", 7),
    ("many_to_one", 5),
    ("bank_only", 7),
    ("book_only", 7),
)
UNBOOKED_FEES = (Decimal("-150.00"), Decimal("-250.00"), Decimal("-75.00"))
OUTSTANDING_SHARE = 0.05  # report month: book items the bank has not cleared by month end

TXN_COLUMNS = (
    "company_id",
    "bank_account_id",
    "kind",
    "direction",
    "amount",
    "date",
    "value_date",
    "reference",
    "counterparty",
    "memo",
    "branch",
    "cost_center_id",
    "project_id",
    "department_id",
    "counter_account_id",
    "posting_status",
    "journal_entry_id",
    "posted_at",
    "source",
    "source_id",
    "invoice_id",
    "reconciled_amount",
    "version",
    "created_at",
    "updated_at",
)
LINE_COLUMNS = (
    "company_id",
    "bank_account_id",
    "statement_import_id",
    "line_no",
    "date",
    "value_date",
    "amount",
    "currency",
    "bank_id",
    "content_hash",
    "reference",
    "counterparty",
    "counterparty_account",
    "description",
    "raw",
    "reconciled_amount",
    "status",
)

_FIRST = (
    "Padma",
    "Meghna",
    "Jamuna",
    "Karnaphuli",
    "Surma",
    "Teesta",
    "Rupsha",
    "Buriganga",
    "Titas",
    "Madhumati",
    "Shitalakshya",
    "Dhaleshwari",
    "Arial",
    "Kushiyara",
    "Gorai",
    "Atrai",
    "Bhairab",
    "Halda",
    "Sangu",
    "Matamuhuri",
    "Kapotaksha",
    "Feni",
    "Ichamati",
    "Mahananda",
    "Dakatia",
    "Turag",
    "Bangshi",
    "Chitra",
    "Nabaganga",
    "Kirtankhola",
)
_SECOND = (
    "Textiles",
    "Traders",
    "Garments",
    "Foods",
    "Pharma",
    "Steel",
    "Cement",
    "Electronics",
    "Logistics",
    "Agro",
    "Fisheries",
    "Plastics",
    "Leather",
    "Ceramics",
    "Paper",
    "Printing",
    "Packaging",
    "Shipping",
    "Builders",
    "Motors",
)
_SUFFIX = ("Ltd", "Limited", "& Co", "Enterprise", "Industries", "Corporation")


def analyze(*tables: str) -> None:
    """Planner statistics after a load, on PostgreSQL (SQLite has no VACUUM ANALYZE <table>)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        _analyze(*tables)


def _party(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_SUFFIX)} {rng.randint(1, 999)}"


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


@dataclass
class Company:
    company: object
    owner: object
    income_account_id: int
    payable_account_id: int
    accounts: list = field(default_factory=list)
    _codes: int = 11300


def company_make(slug: str = "bench-banking") -> Company:
    from accounting import services as ledger
    from accounting.models import Account
    from core.models import User
    from core.services import company_create

    owner = User.objects.create_user(username=slug, password=None)
    company = company_create(
        actor=None,
        name="Bench Banking Ltd",
        slug=slug,
        owner=owner,
        fiscal_year_start_month=7,
        base_currency="BDT",
        time_zone="Asia/Dhaka",
        country="BD",
    )
    ledger.company_ledger_setup(company=company)
    ledger.fiscal_year_create(actor=None, company=company, containing=company.today())
    codes = dict(
        Account.objects.filter(company=company, code__in=["4200", "2110"]).values_list("code", "pk")
    )
    return Company(
        company=company,
        owner=owner,
        income_account_id=codes["4200"],
        payable_account_id=codes["2110"],
    )


@dataclass
class Account:
    bank_account: object
    journal_entry_id: int


def bank_account_make(
    setup: Company,
    name: str,
    *,
    currency: str = "BDT",
    iban: str = "",
    opening_balance: str = "0.00",
    opening_date: date | None = None,
) -> Account:
    """A bank account on a new ledger account 113xx, and the one real posted entry its loaded
    transactions point to."""
    from accounting import services as ledger
    from accounting.models import Account as LedgerAccount
    from accounting.models import AccountType
    from banking.services import bank_account_create

    company = setup.company
    setup._codes += 1
    ledger_account = ledger.account_create(
        actor=None,
        company=company,
        code=str(setup._codes),
        name=f"Bank {name}",
        type=AccountType.ASSET,
        parent=LedgerAccount.objects.get(company=company, code="1130"),
        is_postable=True,
    )
    account = bank_account_create(
        actor=None,
        company=company,
        name=name,
        ledger_account=ledger_account,
        currency=currency,
        iban=iban,
        bank_name="Bench Bank",
        opening_balance=opening_balance,
        opening_date=opening_date,
    )
    entry = ledger.journal_entry_post(
        actor=None,
        system_job="bench",
        company=company,
        date=company.today(),
        lines=[
            {"account": ledger_account, "debit": "1.00"},
            {"account_code": "3300", "credit": "1.00"},
        ],
        memo=f"Bench: the entry the loaded transactions of {name} point to",
        source_type="bench",
        idempotency_key=f"bench-anchor-{ledger_account.pk}",
    )
    made = Account(bank_account=account, journal_entry_id=entry.pk)
    setup.accounts.append(made)
    return made


def statement_import_make(
    account: Account,
    *,
    key: str,
    lines: int,
    opening: Decimal | None = None,
    opening_date: date | None = None,
    closing: Decimal | None = None,
    closing_date: date | None = None,
):
    from banking.models import StatementImport

    bank = account.bank_account
    return StatementImport.objects.create(
        company_id=bank.company_id,
        bank_account=bank,
        format="camt053",
        filename=f"{key}.xml",
        sha256=hashlib.sha256(f"{bank.pk}:{key}".encode()).hexdigest(),
        raw=b"",
        statement_id=key,
        currency=bank.currency,
        opening_balance=opening,
        opening_date=opening_date,
        closing_balance=closing,
        closing_date=closing_date,
        line_count=lines,
        new_line_count=lines,
    )


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------
class _Rows:
    """Builds transaction and line tuples of one bank account."""

    def __init__(self, setup: Company, account: Account, statement_import_id: int | None):
        from django.utils import timezone

        self.setup = setup
        self.account = account
        self.bank_id = account.bank_account.pk
        self.company_id = setup.company.pk
        self.currency = account.bank_account.currency
        self.import_id = statement_import_id
        self.now = timezone.now()
        self.line_no = 0

    def txn(
        self,
        cents: int,
        day: date,
        *,
        inflow: bool,
        reference: str = "",
        party: str = "",
        reconciled: bool = False,
    ) -> tuple:
        amount = _money(cents)
        return (
            self.company_id,
            self.bank_id,
            "deposit" if inflow else "withdrawal",
            "in" if inflow else "out",
            amount,
            day,
            None,
            reference,
            party,
            "",
            "",
            None,
            None,
            None,
            self.setup.income_account_id if inflow else self.setup.payable_account_id,
            "posted",
            self.account.journal_entry_id,
            self.now,
            "manual",
            "",
            None,
            amount if reconciled else Decimal("0.00"),
            1,
            self.now,
            self.now,
        )

    def line(
        self,
        signed_cents: int,
        day: date,
        *,
        reference: str = "",
        party: str = "",
        description: str = "",
    ) -> tuple:
        self.line_no += 1
        bank_id = f"AS{self.import_id}-{self.line_no:08d}"
        return (
            self.company_id,
            self.bank_id,
            self.import_id,
            self.line_no,
            day,
            day,
            _money(signed_cents),
            self.currency,
            bank_id,
            hashlib.sha256(bank_id.encode()).hexdigest(),
            reference,
            party,
            "",
            description,
            "",
            Decimal("0.00"),
            "unmatched",
        )


@dataclass
class ReconcileWorkload:
    account: Account
    lines: int
    transactions: int
    events: dict[str, int]


def reconcile_workload(setup: Company, name: str, n: int, seed: int) -> ReconcileWorkload:
    """`n` statement lines and `n` posted transactions of a new bank account, loaded by COPY."""
    rng = random.Random(seed)
    account = bank_account_make(setup, name, opening_date=YEAR_START)
    statement = statement_import_make(account, key=f"{name}-year", lines=n)
    rows = _Rows(setup, account, statement.pk)
    lines: list[tuple] = []
    txns: list[tuple] = []
    events = dict.fromkeys((kind for kind, _ in RECONCILE_MIX), 0)
    kinds = [kind for kind, _ in RECONCILE_MIX]
    weights = [weight for _, weight in RECONCILE_MIX]
    serial = 0

    def day_of_year() -> date:
        return YEAR_START + timedelta(days=rng.randrange(365))

    while len(lines) < n or len(txns) < n:
        if len(lines) >= n:
            kind = "book_only"
        elif len(txns) >= n:
            kind = "bank_only"
        else:
            kind = rng.choices(kinds, weights)[0]
            if kind == "many_to_one" and n - len(txns) < 4:
                kind = "reference"
        serial += 1
        inflow = rng.random() < 0.55
        sign = 1 if inflow else -1
        cents = rng.randint(100, 5_000_000)
        day = day_of_year()
        party = _party(rng)
        if kind == "reference":
            reference = f"E2E{seed}-{serial:07d}"
            txns.append(rows.txn(cents, day, inflow=inflow, reference=reference, party=party))
            lines.append(
                rows.line(
                    sign * cents,
                    day + timedelta(days=rng.randint(0, 2)),
                    reference=reference.lower() if rng.random() < 0.2 else reference,
                    party=party.upper(),
                    description=f"Payment {reference}",
                )
            )
        elif kind == "amount_date":
            txns.append(rows.txn(cents, day, inflow=inflow, party=party))
            lines.append(
                rows.line(
                    sign * cents,
                    day + timedelta(days=rng.randint(0, 3)),
                    party=party.upper(),
                    description="Transfer",
                )
            )
        elif kind == "similarity":
            txns.append(rows.txn(cents, day, inflow=inflow, reference=f"PO-{serial}", party=party))
            lines.append(
                rows.line(
                    sign * cents,
                    day + timedelta(days=rng.randint(15, 45)),
                    party=f"{party.upper()} DHAKA",
                    description=f"{'From' if inflow else 'To'} {party}",
                )
            )
        elif kind == "many_to_one":
            parts = rng.randint(2, min(4, n - len(txns)))
            cuts = sorted(rng.sample(range(1, cents), parts - 1)) if cents > parts else []
            amounts = [b - a for a, b in zip([0, *cuts], [*cuts, cents], strict=True)]
            if len(amounts) != parts or min(amounts) <= 0:
                amounts = [cents]
            for amount in amounts:
                txns.append(
                    rows.txn(
                        amount, day + timedelta(days=rng.randint(-1, 1)), inflow=inflow,
                        party=party,
                    )
                )  # fmt: skip
            lines.append(rows.line(sign * cents, day, party=party, description=f"Batch {party}"))
        elif kind == "bank_only":
            fee = rng.random() < 0.7
            lines.append(
                rows.line(
                    -rng.randint(5_000, 150_000) if fee else rng.randint(100, 90_000),
                    day,
                    description="Bank charges" if fee else "Interest credited",
                )
            )
        else:  # book_only: a cheque or receipt the bank has not cleared
            txns.append(rows.txn(cents, day, inflow=inflow, reference=f"CHQ-{serial}", party=party))
        events[kind] += 1
    table_insert("banking_banktransaction", TXN_COLUMNS, txns)
    table_insert("banking_statementline", LINE_COLUMNS, lines)
    analyze("banking_banktransaction", "banking_statementline")
    return ReconcileWorkload(
        account=account, lines=len(lines), transactions=len(txns), events=events
    )


# ---------------------------------------------------------------------------------------------
# History for the reports
# ---------------------------------------------------------------------------------------------
@dataclass
class History:
    target: Account
    month_transactions: int
    month_lines: int
    loaded: int


def history_load(setup: Company, rows_wanted: int, seed: int) -> History:
    """`rows_wanted` posted transactions over HISTORY_ACCOUNTS accounts and HISTORY_START ..
    HISTORY_END. Months before REPORT_MONTH are reconciled; the target account's report month
    has its statement (the transactions' lines, less OUTSTANDING_SHARE, plus unbooked fees),
    imported after an April statement whose closing balance is the books' (nothing open)."""
    from banking.selectors import book_balance

    rng = random.Random(seed)
    accounts = [
        bank_account_make(
            setup,
            f"History {n + 1}",
            opening_balance="1000000.00",
            opening_date=HISTORY_START,
        )
        for n in range(HISTORY_ACCOUNTS)
    ]
    target = accounts[0]
    builders = [_Rows(setup, account, None) for account in accounts]
    span = (HISTORY_END - HISTORY_START).days + 1
    month: list[tuple[int, date, bool, str, str]] = []

    # The target account's transactions are held back and loaded once the ledger carries them:
    # one real journal entry per month (Dr/Cr the bank's ledger account by the month's net,
    # against equity 3300) posted through the ledger, and each transaction bound to its
    # month's entry, so the ledger's balance (the report's book side) equals the account's
    # transactions and the reported variance means what it says (bank_ledger_adopt finds
    # every entry carried). The other accounts keep the one anchor entry.
    held: list[tuple] = []
    nets: dict[date, int] = defaultdict(int)

    def generate():
        for serial in range(rows_wanted):
            k = rng.randrange(HISTORY_ACCOUNTS)
            day = HISTORY_START + timedelta(days=rng.randrange(span))
            inflow = rng.random() < 0.5
            cents = rng.randint(100, 2_000_000)
            party = _party(rng)
            if k == 0:
                nets[day.replace(day=1)] += cents if inflow else -cents
            if k == 0 and REPORT_MONTH <= day <= REPORT_MONTH_END:
                reference = f"H{seed}-{serial:08d}"
                month.append((cents, day, inflow, reference, party))
                held.append(
                    builders[k].txn(cents, day, inflow=inflow, reference=reference, party=party)
                )
                continue
            row = builders[k].txn(
                cents, day, inflow=inflow, party=party, reconciled=day < REPORT_MONTH
            )
            if k == 0:
                held.append(row)
                continue
            yield row

    loaded = table_insert("banking_banktransaction", TXN_COLUMNS, generate())
    entries = _month_entries(setup, target, nets)
    entry_at = TXN_COLUMNS.index("journal_entry_id")
    date_at = TXN_COLUMNS.index("date")
    loaded += table_insert(
        "banking_banktransaction",
        TXN_COLUMNS,
        (
            (*row[:entry_at], entries[row[date_at].replace(day=1)], *row[entry_at + 1 :])
            for row in held
        ),
    )
    analyze("banking_banktransaction", "banking_bankdailybalance")

    april_end = REPORT_MONTH - timedelta(days=1)
    april_closing = book_balance(bank_account=target.bank_account, as_of=april_end)
    statement_import_make(
        target, key="april", lines=0, closing=april_closing, closing_date=april_end
    )
    line_rows: list[tuple] = []
    cleared = [m for m in month if rng.random() >= OUTSTANDING_SHARE]
    total = sum((_money(c) if i else -_money(c) for c, _d, i, _r, _p in cleared), Decimal(0))
    total += sum(UNBOOKED_FEES, Decimal(0))
    statement = statement_import_make(
        target,
        key="may",
        lines=len(cleared) + len(UNBOOKED_FEES),
        opening=april_closing,
        opening_date=REPORT_MONTH,
        closing=april_closing + total,
        closing_date=REPORT_MONTH_END,
    )
    rows = _Rows(setup, target, statement.pk)
    for cents, day, inflow, reference, party in sorted(cleared, key=lambda m: (m[1], m[3])):
        posted = min(day + timedelta(days=rng.randint(0, 2)), REPORT_MONTH_END)
        line_rows.append(
            rows.line(
                cents if inflow else -cents,
                posted,
                reference=reference,
                party=party.upper(),
                description=f"Payment {reference}",
            )
        )
    for n, fee in enumerate(UNBOOKED_FEES):
        line_rows.append(
            rows.line(int(fee * 100), REPORT_MONTH + timedelta(days=9 * n + 3), description="Fee")
        )
    table_insert("banking_statementline", LINE_COLUMNS, line_rows)
    analyze("banking_statementline")
    return History(
        target=target, month_transactions=len(month), month_lines=len(line_rows), loaded=loaded
    )


def _month_entries(setup: Company, account: Account, nets: dict[date, int]) -> dict[date, int]:
    """One posted journal entry per month of `nets` (cents) moving the account's ledger
    account by that net against equity 3300; month start -> entry id."""
    from accounting import services as ledger

    company = setup.company
    ledger_account_id = account.bank_account.ledger_account_id
    entries = {}
    for start in sorted(nets):
        if not nets[start]:
            entries[start] = account.journal_entry_id  # nothing moved: the anchor carries it
            continue
        ledger.fiscal_year_create(actor=None, company=company, containing=start)
        net = _money(abs(nets[start]))
        bank_side, equity_side = ("debit", "credit") if nets[start] > 0 else ("credit", "debit")
        entry = ledger.journal_entry_post(
            actor=None,
            system_job="bench",
            company=company,
            date=_month_last_day(start),
            lines=[
                {"account": ledger_account_id, bank_side: net},
                {"account_code": "3300", equity_side: net},
            ],
            memo=f"Bench: the month's bank transactions of {account.bank_account.name}",
            source_type="bench",
            idempotency_key=f"bench-month-{ledger_account_id}-{start}",
        )
        entries[start] = entry.pk
    return entries


def _month_last_day(start: date) -> date:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# CAMT.053
# ---------------------------------------------------------------------------------------------
def camt_file(iban: str, entries: int) -> bytes:
    """A camt.053.001.08 statement of `entries` booked entries in January 2026, EUR (a copy of
    tests/banking/test_imports.py::camt_file)."""
    head = f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-01-31T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>BENCH-1</Id><CreDtTm>2026-01-31T18:00:00</CreDtTm>
<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1000.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-01</Dt></Dt></Bal>
"""
    body = []
    total = Decimal("1000.00")
    for n in range(entries):
        amount = Decimal(n % 997 + 1) / 100 + 1
        credit = n % 3 == 0
        total += amount if credit else -amount
        day = 1 + n % 28
        body.append(
            f'<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="EUR">{amount:.2f}</Amt>'
            f"<CdtDbtInd>{'CRDT' if credit else 'DBIT'}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
            f"<BookgDt><Dt>2026-01-{day:02d}</Dt></BookgDt><ValDt><Dt>2026-01-{day:02d}</Dt></ValDt>"
            f"<AcctSvcrRef>BENCH-{n:06d}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>E2E-{n}"
            f"</EndToEndId></Refs><RltdPties><Dbtr><Nm>Customer {n % 500}</Nm></Dbtr></RltdPties>"
            f"<RmtInf><Ustrd>Invoice INV-{n:06d}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n"
        )
    sign = "CRDT" if total >= 0 else "DBIT"
    tail = (
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{abs(total):.2f}</Amt>'
        f"<CdtDbtInd>{sign}</CdtDbtInd><Dt><Dt>2026-01-31</Dt></Dt></Bal>\n"
    )
    return (head + tail + "".join(body) + "</Stmt></BkToCstmrStmt></Document>\n").encode()
