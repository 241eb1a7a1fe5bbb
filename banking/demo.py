"""Demo banking for the demo companies (called by `manage.py seed_demo`, after the ledger demo).

Two bank accounts (the operating account on the ledger's bank role, and a second one on a new
ledger account 1132), a year of transactions (the twelve months up to today) with
cost centres, projects and departments, every one posted through banking's services; a
transfer between the accounts, a branch cash submission and a petty cash float with vouchers
and a replenishment. Then the bank's side, generated in memory from what was posted: a
CAMT.053 statement of the operating account for every month, and CSV statements (debit and
credit columns, the account's saved mapping) of the second account for the last two, all
imported through the import service. Every month but the latest is auto-reconciled and signed
off; the latest month's statement also holds entries the books do not have yet (an SMS charge,
an unidentified receipt) and lacks a cheque not yet presented, so the reconciliation screen
has work on it.

Deterministic (seeded by the company's slug); skipped when the company already has its demo
bank account.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from xml.sax.saxutils import escape

from accounting import services as ledger
from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRoleName,
    AccountType,
    CostCenter,
    Department,
    PeriodStatus,
    Project,
)
from banking import imports, reconciliation, services
from banking.models import BankAccount, BankTransaction, Direction
from core.models import Company

OPERATING = "Operating account"
SECOND = "Collections account"
CENT = Decimal("0.01")
# Monthly scale per currency, as in the ledger demo: taka in thousands, dollars in tens.
SCALE = {"BDT": Decimal("1000"), "USD": Decimal("10")}
CSV_MAPPING = {
    "date": "Date",
    "amount_mode": "debit_credit",
    "debit": "Withdrawal",
    "credit": "Deposit",
    "reference": "Reference",
    "counterparty": "Party",
    "description": "Details",
    "date_format": "%d/%m/%Y",
}

CUSTOMERS = ["Aarong Retail Ltd", "Padma Bank PLC", "Sylhet Tea Traders", "Rajshahi Silk House"]
EXPENSES = [  # account code, counterparty, low, high (in the currency's scale)
    ("6200", "Gulshan Properties", 80, 80),
    ("6300", "DESCO electricity", 8, 15),
    ("6400", "Office Mart", 2, 6),
    ("6800", "Rahman & Co, auditors", 10, 25),
]


def _months(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return months


def _amount(rng: random.Random, low: int, high: int, scale: Decimal) -> Decimal:
    return (Decimal(rng.randint(low * 100, high * 100)) / 100 * scale).quantize(CENT)


def _first_open_day(company: Company, today: date) -> date:
    """The first day of the month eleven months back (a year of months up to this one), or of
    the earliest open month after it: the ledger demo closes ended fiscal years only as the
    demo's last step (accounting.demo.finish), so normally the whole year is open."""
    month0 = today.year * 12 + today.month - 1 - 11
    back = date(month0 // 12, month0 % 12 + 1, 1)
    period = (
        AccountingPeriod.objects.filter(
            company=company, status=PeriodStatus.OPEN, start_date__gte=back
        )
        .order_by("start_date")
        .first()
    )
    return period.start_date if period else today.replace(day=1)


def _dimensions(company: Company, actor) -> tuple[list, list, list]:
    found = []
    for model, code, name in (
        (CostCenter, "CC-HQ", "Head office"),
        (Project, "P-GEN", "General"),
        (Department, "ADM", "Administration"),
    ):
        rows = list(model.objects.filter(company=company).order_by("code")[:4])
        if not rows:
            rows = [
                ledger.dimension_create(
                    actor=actor, company=company, model=model, code=code, name=name
                )
            ]
        found.append(rows)
    return found[0], found[1], found[2]


def _second_ledger_account(company: Company, actor) -> Account:
    existing = Account.objects.filter(company=company, code="1132").first()
    if existing is not None:
        return existing
    return ledger.account_create(
        actor=actor,
        company=company,
        code="1132",
        name="Collections bank account",
        type=AccountType.ASSET,
        parent=Account.objects.get(company=company, code="1130"),
        is_postable=True,
    )


def seed(*, company: Company, actor, stdout=None) -> int:
    if BankAccount.objects.filter(company=company, name=OPERATING).exists():
        return 0
    ledger.company_ledger_setup(actor=actor, company=company)
    today = company.today()
    ledger.fiscal_year_create(actor=actor, company=company, containing=today)
    start = _first_open_day(company, today)
    rng = random.Random(f"banking:{company.slug}")  # noqa: S311 - demo figures, not secrets
    scale = SCALE.get(company.base_currency, Decimal("10"))
    accounts = {a.code: a for a in Account.objects.filter(company=company)}
    cost_centers, projects, departments = _dimensions(company, actor)

    main = services.bank_account_create(
        actor=actor,
        company=company,
        name=OPERATING,
        ledger_account=ledger.account_for_role(company=company, role=AccountRoleName.BANK),
        bank_name="Dhaka Bank PLC" if company.base_currency == "BDT" else "First Republic",
        branch="Gulshan" if company.base_currency == "BDT" else "Market Street",
        account_number_masked="****4821",
        opening_balance=(Decimal("500") * scale).quantize(CENT),
        opening_date=start,
    )
    second = services.bank_account_create(
        actor=actor,
        company=company,
        name=SECOND,
        ledger_account=_second_ledger_account(company, actor),
        bank_name="City Bank PLC" if company.base_currency == "BDT" else "Pacific Savings",
        account_number_masked="****7730",
        opening_balance=(Decimal("50") * scale).quantize(CENT),
        opening_date=start,
        statement_mapping=CSV_MAPPING,
    )
    added = 2
    made: list[BankTransaction] = []

    def book(account, **fields):
        dims = {
            "cost_center": rng.choice(cost_centers),
            "project": rng.choice(projects),
            "department": rng.choice(departments),
        }
        txn = services.bank_transaction_create(
            actor=actor, bank_account=account, **{**dims, **fields}
        )
        services.bank_transaction_post(actor=actor, transaction=txn)
        made.append(txn)
        return txn

    months = _months(start, today)
    revenue = accounts["4200"]
    for month in months:
        last_day = min(today, (month.replace(day=28) + timedelta(days=4)).replace(day=1)
                       - timedelta(days=1))  # fmt: skip

        def day(low: int, high: int, *, _month=month, _last=last_day) -> date:
            return min(_month + timedelta(days=rng.randint(low, high)), _last)

        for number in range(rng.randint(3, 5)):
            customer = rng.choice(CUSTOMERS)
            book(
                main,
                kind="deposit",
                amount=_amount(rng, 20, 90, scale),
                date=day(1, 27),
                counter_account=revenue,
                counterparty=customer,
                reference=f"RCPT-{month:%y%m}-{number + 1:02d}",
                memo=f"Receipt from {customer}",
            )
        for code, party, low, high in EXPENSES:
            book(
                main,
                kind="withdrawal",
                amount=_amount(rng, low, high, scale),
                date=day(2, 25),
                counter_account=accounts[code],
                counterparty=party,
                reference=f"CHQ-{month:%y%m}{code[-2:]}",
                memo=accounts[code].name,
            )
        book(main, kind="fee", amount=_amount(rng, 1, 2, scale) / 10, date=last_day,
             reference=f"FEE-{month:%y%m}", memo="Account maintenance fee")  # fmt: skip
        book(
            second,
            kind="deposit",
            amount=_amount(rng, 10, 40, scale),
            date=day(5, 20),
            counter_account=revenue,
            counterparty=rng.choice(CUSTOMERS),
            reference=f"COL-{month:%y%m}",
            memo="Collection",
        )
        book(second, kind="interest", amount=_amount(rng, 1, 3, scale) / 10, date=last_day,
             reference=f"INT-{month:%y%m}", memo="Savings interest")  # fmt: skip
    added += len(made)

    # A transfer, a branch cash submission and a petty cash float, through their services.
    transfer_day = max(start, today - timedelta(days=20))
    transfer = services.bank_transfer_create(
        actor=actor,
        from_account=second,
        to_account=main,
        amount=(Decimal("20") * scale).quantize(CENT),
        date=transfer_day,
        expected_settlement_date=transfer_day + timedelta(days=2),
        reference="TRF-SWEEP",
        memo="Sweep collections to operating",
    )
    services.bank_transfer_send(actor=actor, transfer=transfer, date=transfer_day)
    services.bank_transfer_receive(
        actor=actor, transfer=transfer, date=min(today, transfer_day + timedelta(days=1))
    )
    submission = services.cash_submission_create(
        actor=actor,
        bank_account=main,
        branch="Uttara branch" if company.base_currency == "BDT" else "Oakland store",
        expected_amount=(Decimal("12") * scale).quantize(CENT),
        submitted_on=max(start, today - timedelta(days=6)),
        from_account=accounts["1110"],
        reference="CASH-UTR-01",
    )
    services.cash_submission_deposit(
        actor=actor,
        submission=submission,
        deposited_amount=submission.expected_amount - Decimal("1.00"),
        deposited_on=max(start, today - timedelta(days=5)),
    )
    float_ = services.float_allocation_create(
        actor=actor,
        bank_account=main,
        name="Head office petty cash",
        custodian="Office manager",
        float_amount=(Decimal("2") * scale).quantize(CENT),
        issued_on=start,
    )
    for offset, (code, text) in enumerate(
        [("6500", "Rickshaw and CNG fares"), ("6400", "Printer paper"), ("6900", "Tea and snacks")]
    ):
        services.petty_cash_voucher_create(
            actor=actor,
            float_allocation=float_,
            date=max(start, today - timedelta(days=15 - offset * 3)),
            amount=(Decimal(str(0.2 + offset * 0.1)) * scale).quantize(CENT),
            expense_account=accounts[code],
            description=text,
            cost_center=cost_centers[0],
            department=departments[0],
        )
    services.float_replenish(
        actor=actor,
        float_allocation=float_,
        counted_cash=(Decimal("1.4") * scale).quantize(CENT) - Decimal("0.50"),
        date=max(start, today - timedelta(days=2)),
    )
    added += 3

    # The book side is the ledger's bank account: the ledger demo's own bank entries (salaries,
    # charges, receipts) become transactions first, so the bank's files below show them too.
    for account in (main, second):
        services.bank_ledger_adopt(bank_account=account, actor=actor)

    # The bank's side, as files: a CAMT.053 statement of the operating account for every
    # month, and CSV statements of the second account for the last two. Every month but the
    # latest is auto-reconciled and signed off; the latest keeps open lines for the screen.
    for month in months:
        latest = month == months[-1]
        content = _camt053(main, month, _bank_view(main, month, latest=latest))
        imports.statement_import_create(
            actor=actor, bank_account=main, content=content, filename=f"camt053-{month:%Y-%m}.xml"
        )
        added += 1
        if not latest:
            reconciliation.reconciliation_auto(
                company=company, bank_account=main, period=month, actor=actor
            )
            _close(actor, main, month)
    for month in months[-2:]:
        imports.statement_import_create(
            actor=actor,
            bank_account=second,
            content=_csv(_bank_view(second, month, latest=month == months[-1])),
            filename=f"statement-{month:%Y-%m}.csv",
        )
        added += 1
    if stdout is not None:
        stdout.write(f"  banking: {company.slug}: {added} records\n")
    return added


def _bank_view(account: BankAccount, month: date, *, latest: bool) -> list:
    """What the bank shows for `month`: every posted movement of the account (a cheque written
    late in the latest month is not presented yet), plus, in the latest month, entries the books
    do not have yet (a charge, an unidentified receipt)."""
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    txns = list(
        BankTransaction.objects.filter(
            bank_account=account, date__gte=month, date__lt=end, posting_status="posted"
        )
        .exclude(is_reversed=True)  # a reversed entry and its reversal never reach the bank
        .order_by("date", "id")
    )
    lines = []
    skipped = False
    for txn in txns:
        if latest and not skipped and txn.kind == "withdrawal" and txn.date.day > 10:
            skipped = True  # an outstanding cheque
            continue
        sign = 1 if txn.direction == Direction.IN else -1
        lines.append((txn.date, sign * txn.amount, txn.reference, txn.counterparty, txn.memo))
    if latest and txns:
        last = txns[-1].date
        scale = SCALE.get(account.currency, Decimal("10"))
        lines.append((last, -(scale / 4).quantize(CENT), "SMS-ALERT", "", "SMS alert charges"))
        lines.append(
            (last, (scale * Decimal("3.5")).quantize(CENT), "", "Unknown remitter", "BEFTN credit")
        )
    lines.sort(key=lambda line: line[0])
    return lines


def _opening(account: BankAccount, month: date) -> Decimal:
    before = BankTransaction.objects.filter(
        bank_account=account, date__lt=month, posting_status="posted"
    )
    total = account.opening_balance
    for txn in before.only("amount", "direction"):
        total += txn.signed_amount
    return total


def _camt053(account: BankAccount, month: date, lines: list) -> bytes:
    """A CAMT.053.001.02 statement, as a bank's export would write it."""
    opening = _opening(account, month)
    closing = opening + sum((line[1] for line in lines), Decimal("0.00"))
    last = lines[-1][0] if lines else month
    ccy = account.currency

    def balance(code, amount, day):
        indicator = "CRDT" if amount >= 0 else "DBIT"
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="{ccy}">{abs(amount):.2f}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'
            f"<Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>"
        )

    entries = []
    for number, (day, amount, reference, party, text) in enumerate(lines, start=1):
        side = "Dbtr" if amount > 0 else "Cdtr"
        entries.append(
            f"<Ntry><NtryRef>{number}</NtryRef>"
            f'<Amt Ccy="{ccy}">{abs(amount):.2f}</Amt>'
            f"<CdtDbtInd>{'CRDT' if amount > 0 else 'DBIT'}</CdtDbtInd><Sts>BOOK</Sts>"
            f"<BookgDt><Dt>{day.isoformat()}</Dt></BookgDt><ValDt><Dt>{day.isoformat()}</Dt></ValDt>"
            f"<AcctSvcrRef>{account.pk}-{month:%Y%m}-{number:04d}</AcctSvcrRef>"
            f"<NtryDtls><TxDtls><Refs>"
            f"<EndToEndId>{escape(reference) or 'NOTPROVIDED'}</EndToEndId></Refs>"
            f"<RltdPties><{side}><Nm>{escape(party)}</Nm></{side}></RltdPties>"
            f"<RmtInf><Ustrd>{escape(text)}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>KONTOR-DEMO-{account.pk}-{month:%Y%m}</MsgId>"
        f"<CreDtTm>{last.isoformat()}T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{account.pk}-{month:%Y-%m}</Id><CreDtTm>{last.isoformat()}T18:00:00</CreDtTm>"
        f"<Acct><Id><Othr><Id>0012300{account.account_number_masked[-4:]}</Id></Othr></Id>"
        f"<Ccy>{ccy}</Ccy></Acct>"
        f"{balance('OPBD', opening, month)}{balance('CLBD', closing, last)}"
        f"{''.join(entries)}</Stmt></BkToCstmrStmt></Document>"
    ).encode()


def _csv(lines: list) -> bytes:
    """The second bank's CSV export: debit and credit columns, day-first dates."""
    rows = ["Date,Details,Reference,Party,Withdrawal,Deposit"]
    for day, amount, reference, party, text in lines:
        out, inn = (f"{-amount:.2f}", "") if amount < 0 else ("", f"{amount:.2f}")
        cells = [f"{day:%d/%m/%Y}", text, reference, party, out, inn]
        rows.append(",".join('"' + cell.replace('"', '""') + '"' for cell in cells))
    return ("\n".join(rows) + "\n").encode()


def _close(actor, account: BankAccount, month: date) -> None:
    """Accept what auto-reconcile suggested (a demo's accountant agrees with every suggestion)
    and sign the month off."""
    from banking.models import MatchStatus, ReconciliationMatch

    for match in ReconciliationMatch.objects.filter(
        statement_line__bank_account=account,
        statement_line__date__gte=month,
        status=MatchStatus.SUGGESTED,
    ).order_by("pk"):
        reconciliation.reconciliation_accept(actor=actor, match=match)
    reconciliation.reconciliation_close(actor=actor, bank_account=account, period=month)
