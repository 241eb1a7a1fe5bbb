"""Fixtures for banking tests.

`bank`: company A (BDT, July-June; ledger and fiscal years 2025-26 and 2026-27 from `books`)
with two bank accounts: "Main" on the `bank` role's account (1131) and "Second" on a new ledger
account 1132 under 1130 Bank accounts; one cost centre, project and department; and users per
role. Company B has its ledger too (for isolation tests).
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from accounting import services as ledger
from accounting.models import (
    Account,
    AccountRoleName,
    AccountType,
    CostCenter,
    Department,
    JournalLine,
    Project,
)
from banking import services
from tests.invoicing.conftest import books  # noqa: F401  (the fixture, reused)

D = date


@dataclass
class Bank:
    company: object
    owner: object
    accountant: object
    clerk: object
    auditor: object
    main: object
    second: object
    cost_center: object
    project: object
    department: object
    tenants: object

    @property
    def dims(self) -> dict:
        return {
            "cost_center": self.cost_center,
            "project": self.project,
            "department": self.department,
        }

    def account(self, code: str) -> Account:
        return Account.objects.get(company=self.company, code=code)

    def role_account(self, role: str) -> Account:
        return ledger.account_for_role(company=self.company, role=role)

    def balance(self, account: Account | str) -> Decimal:
        """Debits − credits posted to the account (all dimensions, all dates)."""
        if isinstance(account, str):
            account = self.account(account)
        lines = JournalLine.objects.filter(company=self.company, account=account)
        debit = sum((line.debit for line in lines), Decimal("0.00"))
        credit = sum((line.credit for line in lines), Decimal("0.00"))
        return debit - credit

    def txn(self, *, account=None, post: bool = False, **fields):
        fields = {"actor": self.clerk, "bank_account": account or self.main, **fields}
        txn = services.bank_transaction_create(**fields)
        if post:
            services.bank_transaction_post(actor=self.clerk, transaction=txn)
            txn.refresh_from_db()
        return txn


@pytest.fixture
def bank(books) -> Bank:  # noqa: F811
    a = books.a
    owner = books.users_a["owner"]
    ledger.company_ledger_setup(company=a)
    second_ledger = ledger.account_create(
        actor=owner,
        company=a,
        code="1132",
        name="Second bank account",
        type=AccountType.ASSET,
        parent=Account.objects.get(company=a, code="1130"),
        is_postable=True,
    )
    main = services.bank_account_create(
        actor=owner,
        company=a,
        name="Main",
        ledger_account=ledger.account_for_role(company=a, role=AccountRoleName.BANK),
        bank_name="Dhaka Bank",
        branch="Gulshan",
        account_number_masked="****1234",
        opening_balance="100000.00",
        opening_date=D(2025, 7, 1),
    )
    second = services.bank_account_create(
        actor=owner,
        company=a,
        name="Second",
        ledger_account=second_ledger,
        bank_name="City Bank",
        opening_balance="0.00",
        opening_date=D(2025, 7, 1),
    )
    cost_center = ledger.dimension_create(
        actor=owner, company=a, model=CostCenter, code="CC-DHK", name="Dhaka office"
    )
    project = ledger.dimension_create(
        actor=owner, company=a, model=Project, code="P-ERP", name="ERP roll-out"
    )
    department = ledger.dimension_create(
        actor=owner, company=a, model=Department, code="FIN", name="Finance"
    )
    return Bank(
        company=a,
        owner=owner,
        accountant=books.users_a["accountant"],
        clerk=books.users_a["clerk"],
        auditor=books.users_a["auditor"],
        main=main,
        second=second,
        cost_center=cost_center,
        project=project,
        department=department,
        tenants=books,
    )
