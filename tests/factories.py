import factory
from django.contrib.auth import get_user_model

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


def tenant_object(model, company):
    """Make one row of `model` that belongs to `company`. The router-driven isolation test asks
    for every model an API endpoint serves: a new endpoint needs its model added here."""
    if model is Company:
        return company
    makers = {
        Membership: lambda: MembershipFactory(company=company),
        AuditEvent: lambda: AuditEventFactory(company=company),
    }
    if model not in makers:
        raise LookupError(
            f"tests/factories.py: tenant_object() cannot make a {model.__name__}; "
            "add a factory for it so tenant isolation is tested"
        )
    return makers[model]()
