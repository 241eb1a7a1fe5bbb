"""Makers of banking rows for tests/factories.py::tenant_object (the router-driven tenant
isolation and role tests need one row of every model the API serves) and for other tests.

Every row is made through banking's services where one exists; the ledger is set up first.
"""

from decimal import Decimal

from accounting import services as ledger
from accounting.models import Account, AccountRoleName, AccountType
from banking import services
from banking.models import (
    BankAccount,
    BankingSettings,
    BankReconciliation,
    BankTransaction,
    BankTransfer,
    CashSubmission,
    FloatAllocation,
    MatchMethod,
    PettyCashVoucher,
    ReconciliationMatch,
    StatementImport,
    StatementLine,
)

CSV_MAPPING = {"date": "Date", "amount": "Amount", "reference": "Reference", "description": "Text"}


def _ledger_ready(company) -> None:
    from tests.factories import ledger_ready

    ledger_ready(company)


def bank_account_for(company, **fields) -> BankAccount:
    """A fresh bank account on its own new ledger account under 1130 Bank accounts."""
    _ledger_ready(company)
    parent = Account.objects.get(company=company, code="1130")
    n = BankAccount.objects.filter(company=company).count() + 1
    code = f"1130.{n}"
    while Account.objects.filter(company=company, code=code).exists():
        n += 1
        code = f"1130.{n}"
    ledger_account = ledger.account_create(
        actor=None,
        company=company,
        code=code,
        name=f"Bank account {n}",
        type=AccountType.ASSET,
        parent=parent,
        is_postable=True,
    )
    return services.bank_account_create(
        actor=None,
        company=company,
        **{
            "name": f"Bank {n}",
            "ledger_account": ledger_account,
            "bank_name": "Test Bank",
            "opening_balance": "1000.00",
            **fields,
        },
    )


def bank_transaction_for(company, *, post: bool = False, bank_account=None) -> BankTransaction:
    """A 100.00 bank fee today (posted when asked)."""
    account = bank_account or bank_account_for(company)
    txn = services.bank_transaction_create(
        actor=None,
        bank_account=account,
        kind="fee",
        amount="100.00",
        date=company.today(),
        reference=f"FEE-{account.pk}",
    )
    if post:
        services.bank_transaction_post(actor=None, transaction=txn)
        txn.refresh_from_db()
    return txn


def bank_transfer_for(company) -> BankTransfer:
    return services.bank_transfer_create(
        actor=None,
        from_account=bank_account_for(company),
        to_account=bank_account_for(company),
        amount="250.00",
        date=company.today(),
        reference="TRF",
    )


def cash_submission_for(company) -> CashSubmission:
    account = bank_account_for(company)
    return services.cash_submission_create(
        actor=None,
        bank_account=account,
        branch="Head office",
        expected_amount="500.00",
        submitted_on=company.today(),
        from_account=Account.objects.get(company=company, code="1110"),
    )


def float_allocation_for(company) -> FloatAllocation:
    return services.float_allocation_create(
        actor=None,
        bank_account=bank_account_for(company),
        name="Imprest",
        custodian="Office manager",
        float_amount="1000.00",
        issued_on=company.today(),
    )


def petty_cash_voucher_for(company) -> PettyCashVoucher:
    return services.petty_cash_voucher_create(
        actor=None,
        float_allocation=float_allocation_for(company),
        date=company.today(),
        amount="50.00",
        expense_account=ledger.account_for_role(company=company, role=AccountRoleName.BANK_FEES),
        description="Stamps",
    )


def statement_import_for(company, bank_account=None) -> StatementImport:
    """A two-line CSV statement imported through banking.imports (the ORM when the import
    service is not there)."""
    account = bank_account or bank_account_for(company)
    today = company.today().isoformat()
    content = (
        "Date,Amount,Reference,Text\n"
        f"{today},-100.00,FEE-{account.pk},Bank charges\n"
        f"{today},1500.00,DEP-{account.pk},Customer deposit\n"
    ).encode()
    try:
        from banking.imports import statement_import_create
    except ImportError:
        statement_import_create = None
    if statement_import_create is not None:
        return statement_import_create(
            actor=None,
            bank_account=account,
            content=content,
            filename="statement.csv",
            format="csv",
            mapping=CSV_MAPPING,
        )
    import hashlib

    made = StatementImport.objects.create(
        company=company,
        bank_account=account,
        format="csv",
        filename="statement.csv",
        sha256=hashlib.sha256(content).hexdigest(),
        raw=content,
        line_count=2,
        new_line_count=2,
    )
    for n, (amount, ref) in enumerate(
        ((Decimal("-100.00"), f"FEE-{account.pk}"), (Decimal("1500.00"), f"DEP-{account.pk}")), 1
    ):
        StatementLine.objects.create(
            company=company,
            bank_account=account,
            statement_import=made,
            line_no=n,
            date=company.today(),
            amount=amount,
            currency=account.currency,
            content_hash=hashlib.sha256(f"{account.pk}:{n}".encode()).hexdigest(),
            reference=ref,
        )
    return made


def statement_line_for(company) -> StatementLine:
    return statement_import_for(company).lines.order_by("line_no").first()


def reconciliation_match_for(company) -> ReconciliationMatch:
    """A suggested match of the statement's 100.00 fee line to the posted 100.00 fee."""
    account = bank_account_for(company)
    txn = bank_transaction_for(company, post=True, bank_account=account)
    line = statement_import_for(company, bank_account=account).lines.get(amount=Decimal("-100.00"))
    return ReconciliationMatch.objects.create(
        company=company,
        statement_line=line,
        bank_transaction=txn,
        amount=Decimal("100.00"),
        method=MatchMethod.REFERENCE,
        confidence=Decimal("0.99"),
    )


def bank_reconciliation_for(company) -> BankReconciliation:
    account = bank_account_for(company)
    return BankReconciliation.objects.create(
        company=company,
        bank_account=account,
        period=company.today().replace(day=1),
        book_balance=account.opening_balance,
        threshold=services.banking_settings_for(company).reconciliation_threshold,
    )


def banking_settings_for_company(company) -> BankingSettings:
    return services.banking_settings_update(
        actor=None, company=company, reconciliation_threshold="500.00"
    )


def _banking_makers(company) -> dict:
    return {
        BankAccount: lambda: bank_account_for(company),
        BankTransaction: lambda: bank_transaction_for(company),
        BankTransfer: lambda: bank_transfer_for(company),
        CashSubmission: lambda: cash_submission_for(company),
        FloatAllocation: lambda: float_allocation_for(company),
        PettyCashVoucher: lambda: petty_cash_voucher_for(company),
        StatementImport: lambda: statement_import_for(company),
        StatementLine: lambda: statement_line_for(company),
        ReconciliationMatch: lambda: reconciliation_match_for(company),
        BankReconciliation: lambda: bank_reconciliation_for(company),
        BankingSettings: lambda: banking_settings_for_company(company),
    }
