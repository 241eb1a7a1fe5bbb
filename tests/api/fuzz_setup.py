"""The world the API fuzz runs in (tests/api/test_fuzz.py): two companies with one row of every
model the API serves, an owner of each with a real JWT, and the WSGI app called in-process."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.urls import resolve

from config.api_router import router
from core.roles import Role
from tests.factories import (
    CompanyFactory,
    MembershipFactory,
    UserFactory,
    payroll_period_for,
    payroll_run_for,
    tenant_object,
)

PASSWORD = "pass-Word-123"  # tests.factories.UserFactory's
API = "/api/v1"
_HANDLER = WSGIHandler()


@contextlib.contextmanager
def _old_connections_kept():
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def APP(environ, start_response):  # noqa: N802 (it stands for the WSGI application)
    """Django's WSGI application for in-process calls. Django closes "old" database connections
    around each request, which inside the test's transaction would drop it; Django's test
    client switches that off for each request the same way."""
    with _old_connections_kept():
        response = _HANDLER(environ, start_response)
        try:
            body = b"".join(response)
        finally:
            response.close()  # sends request_finished, as a WSGI server would
    return [body]


@dataclass
class Tenant:
    company: object
    owner: object
    token: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    a: Tenant
    b: Tenant
    # List path (e.g. /api/v1/invoicing/invoices/) -> lookup values of A's own rows on it.
    ids_a: dict[str, list[str]]


def _populate(company) -> None:
    """One row of every model an API resource serves, made the way tests/factories.py does,
    plus a completed pay run (its period and payslips) and last month's open period."""
    from payroll.models import PayrollPeriod, PayrollRun, Payslip

    models = {viewset.queryset.model for _prefix, viewset, _basename in router.registry}
    for model in sorted(models - {PayrollPeriod, PayrollRun, Payslip}, key=lambda m: m._meta.label):
        tenant_object(model, company)
    payroll_run_for(company)
    payroll_period_for(company, months_back=1)


def _token(username: str) -> str:
    response = Client().post(
        f"{API}/auth/token/",
        {"username": username, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


def _tenant(company) -> Tenant:
    owner = UserFactory(username=f"{company.slug}-owner")
    MembershipFactory(user=owner, company=company, role=Role.OWNER)
    _populate(company)
    token = _token(owner.username)
    headers = {"Authorization": f"Bearer {token}", "X-Company": company.slug}
    return Tenant(company=company, owner=owner, token=token, headers=headers)


def build_world(list_paths: list[str]) -> World:
    a = _tenant(CompanyFactory(name="Fuzz Alpha", slug="fuzz-alpha"))
    b = _tenant(
        CompanyFactory(
            name="Fuzz Beta",
            slug="fuzz-beta",
            country="US",
            base_currency="USD",
            time_zone="America/New_York",
            fiscal_year_start_month=1,
        )
    )
    ids_a = {path: own_identifiers(path, a) for path in list_paths}
    return World(a=a, b=b, ids_a=ids_a)


def http_headers(headers: dict[str, str]) -> dict[str, str]:
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}


def listed_rows(path: str, tenant: Tenant) -> list[dict]:
    response = Client().get(path, {"page_size": 500}, **http_headers(tenant.headers))
    assert response.status_code == 200, (path, response.content)
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


def lookup_of(path: str) -> tuple[type, str, str]:
    """(model, lookup field, path from the model to its company) of a router list path."""
    view = resolve(path).func.cls
    lookup = view.lookup_field if view.lookup_field != "pk" else "id"
    return view.queryset.model, lookup, view.company_field


def listed_identifiers(path: str, tenant: Tenant) -> set[str]:
    _model, lookup, _company_field = lookup_of(path)
    return {str(row[lookup]) for row in listed_rows(path, tenant)}


def own_identifiers(path: str, tenant: Tenant) -> list[str]:
    """Lookup values of the rows listed at `path` that belong to the tenant's company (shared
    reference rows, company=None, are listed to everyone and are nobody's to leak)."""
    model, lookup, company_field = lookup_of(path)
    listed = listed_identifiers(path, tenant)
    query_field = "pk" if lookup == "id" else lookup
    own = model.objects.filter(**{f"{query_field}__in": listed, company_field: tenant.company.pk})
    return sorted(str(value) for value in own.values_list(query_field, flat=True))
