import factory
from django.contrib.auth import get_user_model

from accounting import services as accounting_services
from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRole,
    AccountRoleName,
    AccountType,
    CostCenter,
    Department,
    FiscalYear,
    JournalEntry,
    Project,
)
from core.models import AuditEvent, Company, Membership
from core.roles import Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("pass-Word-123")


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")
    legal_name = factory.LazyAttribute(lambda c: f"{c.name} Ltd")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    company = factory.SubFactory(CompanyFactory)
    role = Role.CLERK


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    company = factory.SubFactory(CompanyFactory)
    actor_label = "system:test"
    action = "test.happened"


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    company = factory.SubFactory(CompanyFactory)
    code = factory.Sequence(lambda n: f"9{n:04d}")
    name = factory.Sequence(lambda n: f"Test account {n}")
    type = AccountType.EXPENSE


class _DimensionFactory(factory.django.DjangoModelFactory):
    company = factory.SubFactory(CompanyFactory)
    code = factory.Sequence(lambda n: f"D{n:03d}")
    name = factory.Sequence(lambda n: f"Dimension {n}")


class CostCenterFactory(_DimensionFactory):
    class Meta:
        model = CostCenter


class ProjectFactory(_DimensionFactory):
    class Meta:
        model = Project


class DepartmentFactory(_DimensionFactory):
    class Meta:
        model = Department


def ledger_ready(company) -> FiscalYear:
    """The company's standard chart, roles and current fiscal year (safe to call again);
    returns that fiscal year."""
    accounting_services.company_ledger_setup(company=company)
    return FiscalYear.objects.get(
        company=company, start_date=company.fiscal_year_start(company.today())
    )


def journal_entry_for(company) -> JournalEntry:
    """A posted entry today: cash 100.00 from sales."""
    ledger_ready(company)
    return accounting_services.journal_entry_post(
        system_job="test",
        company=company,
        date=company.today(),
        lines=[
            {"account_code": "1110", "debit": "100.00"},
            {"account_code": "4100", "credit": "100.00"},
        ],
    )


def bank_role_for(company) -> AccountRole:
    ledger_ready(company)
    return AccountRole.objects.get(company=company, role=AccountRoleName.BANK)


def tenant_object(model, company):
    """Make one row of `model` that belongs to `company`. The router-driven isolation test asks
    for every model an API endpoint serves: a new endpoint needs its model added here."""
    if model is Company:
        return company
    makers = {
        Membership: lambda: MembershipFactory(company=company),
        AuditEvent: lambda: AuditEventFactory(company=company),
        Account: lambda: AccountFactory(company=company),
        AccountRole: lambda: bank_role_for(company),
        CostCenter: lambda: CostCenterFactory(company=company),
        Project: lambda: ProjectFactory(company=company),
        Department: lambda: DepartmentFactory(company=company),
        FiscalYear: lambda: ledger_ready(company),
        AccountingPeriod: lambda: ledger_ready(company).periods.order_by("number").first(),
        JournalEntry: lambda: journal_entry_for(company),
    }
    if model not in makers:
        raise LookupError(
            f"tests/factories.py: tenant_object() cannot make a {model.__name__}; "
            "add a factory for it so tenant isolation is tested"
        )
    return makers[model]()
