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
from invoicing import services as invoicing_services
from invoicing.models import Invoice, Item, Party, RecurringInvoice, VatRate


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


def party_for(company, **fields) -> Party:
    """A customer with a valid BIN (and the company's standard VAT rates, for what follows)."""
    invoicing_services.vat_rates_seed(company=company)
    count = Party.objects.filter(company=company).count()
    return invoicing_services.party_create(
        actor=None,
        company=company,
        **{"name": f"Customer {count + 1}", "bin": f"{count + 1:013d}", **fields},
    )


def vat_rate_for(company) -> VatRate:
    invoicing_services.vat_rates_seed(company=company)
    return VatRate.objects.filter(company=company).order_by("pk").first()


def item_for(company) -> Item:
    invoicing_services.vat_rates_seed(company=company)
    count = Item.objects.filter(company=company).count()
    return invoicing_services.item_create(
        actor=None,
        company=company,
        code=f"ITEM-{count + 1}",
        name=f"Item {count + 1}",
        unit_price="100.00",
        vat_rate="VAT15",
    )


INVOICE_LINE = {
    "description": "Widget",
    "unit": "pcs",
    "quantity": "2",
    "unit_price": "50.00",
    "vat_rate": "VAT15",
}


def draft_invoice_for(company) -> Invoice:
    """A draft tax invoice of 100.00 + 15.00 VAT (no ledger needed until approval)."""
    return invoicing_services.invoice_create_draft(
        actor=None, company=company, customer=party_for(company), lines=[INVOICE_LINE]
    )


def recurring_invoice_for(company) -> RecurringInvoice:
    return invoicing_services.recurring_invoice_create(
        actor=None,
        company=company,
        name="Monthly service",
        customer=party_for(company),
        lines=[INVOICE_LINE],
    )


def payroll_employee_for(company, **fields):
    """A salaried employee made through the payroll service."""
    import datetime as dt
    from decimal import Decimal

    from payroll import services as payroll_services
    from payroll.models import Employee

    number = Employee.objects.filter(company=company).count() + 1
    values = {
        "code": f"E{number:04d}",
        "name": f"Employee {number}",
        "email": f"e{number}@{company.slug}.example.test",
        "pay_type": "salaried",
        "annual_salary": Decimal("600000.00") if company.country == "BD" else Decimal("60000.00"),
        "jurisdiction": "BD" if company.country == "BD" else "US",
        "start_date": dt.date(2020, 1, 1),
        **fields,
    }
    return payroll_services.employee_create(actor=None, company=company, **values)


def payroll_period_for(company, *, months_back: int = 0, **fields):
    """An active monthly period (months_back before this month) made through the service."""
    import calendar

    from payroll import services as payroll_services

    today = company.today()
    month0 = today.year * 12 + today.month - 1 - months_back
    year, month = month0 // 12, month0 % 12 + 1
    start = today.replace(year=year, month=month, day=1)
    end = start.replace(day=calendar.monthrange(year, month)[1])
    return payroll_services.payroll_period_create(
        actor=None, company=company, start_date=start, end_date=end, activate=True, **fields
    )


def payroll_run_for(company):
    """A completed pay run of this month for one employee (the books set up first)."""
    from payroll.processing import PayrollProcessor

    ledger_ready(company)
    payroll_employee_for(company)
    outcome = PayrollProcessor(payroll_period_for(company)).run_payroll(force=True)
    assert outcome.status == "completed", outcome.message
    return outcome.run


def _payroll_makers(company) -> dict:
    import datetime as dt

    from payroll import models as payroll
    from payroll import services as payroll_services

    def deduction():
        employee = payroll_employee_for(company)
        health = payroll.DeductionType.objects.get(company=None, code="HEALTH")
        return payroll_services.employee_deduction_create(
            actor=None, employee=employee, deduction_type=health, amount="100.00"
        )

    def earning():
        employee = payroll_employee_for(company)
        allowance = payroll.EarningType.objects.get(company=None, code="ALLOWANCE")
        return payroll_services.employee_earning_create(
            actor=None,
            employee=employee,
            earning_type=allowance,
            amount="500.00",
            effective_from=dt.date(2025, 1, 1),
        )

    def time_entry():
        employee = payroll_employee_for(company, pay_type="hourly", hourly_rate="10.0000")
        payroll_services.time_entries_upsert(
            actor=None,
            company=company,
            entries=[{"employee": employee.pk, "day": company.today(), "hours": "8.00"}],
        )
        return payroll.TimeEntry.objects.get(employee=employee)

    def reference(model, **fields):
        return payroll_services.reference_row_save(
            actor=None, obj=model(company=company, **fields), company=company
        )

    since = dt.date(2025, 1, 1)
    return {
        payroll.Employee: lambda: payroll_employee_for(company),
        payroll.EmployeeDeduction: deduction,
        payroll.EmployeeEarning: earning,
        payroll.PayRate: lambda: reference(
            payroll.PayRate,
            role="Tester",
            jurisdiction="XX",
            pay_type="hourly",
            hourly_rate="12.5000",
            effective_from=since,
        ),
        payroll.TimeEntry: time_entry,
        payroll.TaxTable: lambda: reference(
            payroll.TaxTable, jurisdiction="XX", name="Test tax", effective_from=since, source="t"
        ),
        payroll.OvertimeRule: lambda: reference(
            payroll.OvertimeRule,
            jurisdiction="XX",
            name="Test overtime",
            weekly_threshold="40.00",
            effective_from=since,
            source="test",
        ),
        payroll.DeductionType: lambda: reference(
            payroll.DeductionType, code="TEST", name="Test deduction", default_amount="10.00"
        ),
        payroll.PaySchedule: lambda: payroll_services.pay_schedule_create(
            actor=None,
            company=company,
            name="Monthly",
            frequency="monthly",
            anchor_date=company.today().replace(day=1),
        ),
        payroll.PayrollPeriod: lambda: payroll_period_for(company),
        payroll.PayrollRun: lambda: payroll_run_for(company),
        payroll.Payslip: lambda: payroll_run_for(company).payslips.first(),
    }


def tenant_object(model, company):
    """Make one row of `model` that belongs to `company`. The router-driven isolation test asks
    for every model an API endpoint serves: a new endpoint needs its model added here."""
    if model is Company:
        return company
    from tests.banking.makers import _banking_makers  # lazy: it imports this module
    from tests.integrations.makers import _integration_makers  # lazy, like banking's

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
        Party: lambda: party_for(company),
        VatRate: lambda: vat_rate_for(company),
        Item: lambda: item_for(company),
        Invoice: lambda: draft_invoice_for(company),
        RecurringInvoice: lambda: recurring_invoice_for(company),
        **_payroll_makers(company),
        **_banking_makers(company),
        **_integration_makers(company),
    }
    if model not in makers:
        raise LookupError(
            f"tests/factories.py: tenant_object() cannot make a {model.__name__}; "
            "add a factory for it so tenant isolation is tested"
        )
    return makers[model]()
