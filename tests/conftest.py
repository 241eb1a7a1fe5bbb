import os
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from core.roles import Role
from tests.factories import CompanyFactory, MembershipFactory, UserFactory

IN_CI = os.environ.get("CI", "").lower() == "true"


def _redis_available() -> bool:
    url = os.environ.get("REDIS_URL")
    if not url:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_runtest_setup(item):
    """Marked tests need a real service. Locally they skip without it; in CI a skip is a
    failure, so a misconfigured CI cannot pass by testing less."""
    missing = []
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        missing.append("PostgreSQL (set DATABASE_URL)")
    if item.get_closest_marker("redis") and not _redis_available():
        missing.append("Redis (set REDIS_URL)")
    if missing:
        reason = f"needs {' and '.join(missing)}"
        if IN_CI:
            pytest.fail(f"CI=true but this test {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@dataclass
class Tenants:
    """Two companies. A has one user per role; B has an owner; `outsider` belongs to neither."""

    a: object
    b: object
    users_a: dict
    owner_b: object
    outsider: object


@pytest.fixture
def tenants(db) -> Tenants:
    company_a = CompanyFactory(name="Alpha Traders", slug="alpha")
    company_b = CompanyFactory(
        name="Beta Foods",
        slug="beta",
        country="US",
        base_currency="USD",
        time_zone="America/New_York",
        fiscal_year_start_month=1,
    )
    users_a = {}
    for role in Role.values:
        user = UserFactory(username=f"a-{role}")
        MembershipFactory(user=user, company=company_a, role=role)
        users_a[role] = user
    owner_b = UserFactory(username="b-owner")
    MembershipFactory(user=owner_b, company=company_b, role=Role.OWNER)
    return Tenants(
        a=company_a,
        b=company_b,
        users_a=users_a,
        owner_b=owner_b,
        outsider=UserFactory(username="outsider"),
    )


@pytest.fixture
def api():
    """api(user, company) -> an APIClient authenticated as `user`, acting for `company`."""

    def make(user=None, company=None):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        if company is not None:
            client.credentials(HTTP_X_COMPANY=company.slug)
        return client

    return make
