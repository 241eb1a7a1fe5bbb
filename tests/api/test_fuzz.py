"""API contract fuzzing: schemathesis generates requests for every operation of the served
OpenAPI schema and sends them, with a real JWT of company A's owner, to the WSGI app in-process.
No answer may be a 5xx, every status must be documented and every body must match its schema.
Then company B's owner tries every object of A through every operation that takes one: 404 only.

Bounded and deterministic for CI: MAX_EXAMPLES cases per operation (positive and negative data,
some aimed at A's real rows), Hypothesis derandomized, no example database."""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from django.db import transaction
from django.test import Client, override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.api_router import router
from tests.api.fuzz_setup import (
    API,
    APP,
    build_world,
    http_headers,
    listed_identifiers,
)

# 8 keeps CI within minutes; a deeper run: API_FUZZ_EXAMPLES=100 (still derandomized).
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

SCHEMA = schemathesis.openapi.from_wsgi(f"{API}/schema/?format=json", APP)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
PATH_PARAMETER = re.compile(r"\{([^}]+)\}")


def _label(operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


# Every resource of the API router lists its rows at /api/v1/<prefix>/.
LIST_PATHS = sorted(f"{API}/{prefix}/" for prefix, _viewset, _basename in router.registry)
# Operations that take a path parameter but no row of a router resource, and why.
NOT_A_ROW = {
    # The OAuth redirect target: {system} is an integration name, the state proves the company.
    "GET /api/v1/accounting/integrations/{system}/callback",
    # Authenticated by the sender's HMAC signature, not by a user's token.
    "POST /api/v1/accounting/integrations/{system}/webhooks/{connection_id}",
}


# Reads that random parameters do not satisfy, so the fuzz only sees their refusals (their own
# tests cover the answers): a required reference to a real row, or a row of another kind.
NOT_FROM_RANDOM_DATA = {
    "GET /api/v1/accounting/integrations/{system}/callback",  # needs a state the connect made
    "GET /api/v1/accounting/integrations/connections/{id}/connect/",  # an OAuth system only
    "GET /api/v1/accounting/reports/general-ledger/",  # a required account
    # Banking reports: 400/404 to every random bank_account_id and period (8 cases).
    "GET /api/v1/banking/dimensional-analysis/",
    "GET /api/v1/banking/reconciliation/",
    "GET /api/v1/banking/variance-report/",
    "GET /api/v1/invoicing/invoices/{id}/mushak-6-7/",  # a credit note's, A's row is an invoice
    "GET /api/v1/invoicing/invoices/{id}/mushak-6-8/",  # a debit note's
}


def _list_path(operation) -> str | None:
    """The router list path whose rows an operation's path parameter names:
    /api/v1/invoicing/invoices/{id}/approve/ -> /api/v1/invoicing/invoices/."""
    head = operation.path.partition("{")[0]
    return head if head in LIST_PATHS and len(PATH_PARAMETER.findall(operation.path)) == 1 else None


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Built once for the module inside a transaction that is rolled back at the end; each test
    runs in a savepoint of it (pytest-django's django_db), so fuzzed writes never leak."""
    # No network here: a connector's test or sync fails at once instead of retrying for seconds.
    fail_fast = override_settings(RETRY_MAX_ATTEMPTS=1, ACCOUNTING_CONNECT_TIMEOUT=1.0)
    with django_db_blocker.unblock(), fail_fast, transaction.atomic():
        yield build_world(LIST_PATHS)
        transaction.set_rollback(True)


def _strategy(world, operation):
    modes = [operation.as_strategy(GenerationMode.POSITIVE)]
    if operation.path_parameters or operation.query or operation.body or operation.headers:
        modes.append(operation.as_strategy(GenerationMode.NEGATIVE))
    head = _list_path(operation)
    if head:
        # Aim some positive cases at A's real rows, where the interesting code runs.
        (name,) = PATH_PARAMETER.findall(operation.path)
        modes += [
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters={name: value})
            for value in world.ids_a[head][:3]
        ]
    return st.one_of(*modes)


@pytest.mark.django_db
@pytest.mark.parametrize("operation", OPERATIONS, ids=_label)
def test_operation_answers_per_schema(operation, world):
    sent = []

    @given(case=_strategy(world, operation))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call(app=APP, headers=world.a.headers)
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=world.a.headers)

    check()
    assert sent, f"no request was sent for {_label(operation)}"
    # Not vacuous: a broken token or company header would make every answer a documented
    # 401/400/404 and every check pass. Reads of A's own rows must succeed at least once.
    assert set(sent) != {401}, f"{_label(operation)}: every request was refused as unauthenticated"
    if operation.method.upper() == "GET" and _label(operation) not in NOT_FROM_RANDOM_DATA:
        assert any(200 <= code < 300 for code in sent), (
            f"{_label(operation)} never answered 2xx: {sorted(set(sent))}"
        )


def test_every_operation_of_the_schema_is_fuzzed():
    """The parametrization above is the schema's operation list: compare it with the paths and
    methods of the served schema, read independently of schemathesis."""
    response = Client().get(f"{API}/schema/?format=json")
    served = {
        f"{method.upper()} {path}"
        for path, item in response.json()["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
    }
    assert {_label(operation) for operation in OPERATIONS} == served
    assert len(served) > 100


ROW_OPERATIONS = [operation for operation in OPERATIONS if _list_path(operation)]


def test_every_row_operation_is_tried_across_companies():
    with_parameter = {_label(operation) for operation in OPERATIONS if "{" in operation.path}
    assert with_parameter - {_label(operation) for operation in ROW_OPERATIONS} == NOT_A_ROW


@pytest.mark.django_db
def test_company_b_lists_none_of_company_a_rows(world):
    for path in LIST_PATHS:
        assert world.ids_a[path], f"company A has no row at {path}: the fuzz data is too thin"
        leaked = set(world.ids_a[path]) & listed_identifiers(path, world.b)
        assert not leaked, f"{path} lists company A's rows {sorted(leaked)} to company B"


@pytest.mark.django_db
@pytest.mark.parametrize("operation", ROW_OPERATIONS, ids=_label)
def test_company_b_cannot_reach_company_a_rows(operation, world):
    """Every operation on one of A's rows, sent with B's token, answers 404 not_found: no data,
    no 403 that would confirm the row exists, and nothing changed."""
    from core.models import AuditEvent

    (name,) = PATH_PARAMETER.findall(operation.path)
    client = Client(**http_headers(world.b.headers))
    send = getattr(client, operation.method.lower())
    audited = AuditEvent.objects.count()  # every write service records one
    for value in world.ids_a[_list_path(operation)]:
        path = operation.path.replace(f"{{{name}}}", value)
        response = send(path, {}, content_type="application/json")
        assert response.status_code == 404, (path, response.status_code, response.content[:300])
        assert response.json()["code"] == "not_found", (path, response.content[:300])
    assert AuditEvent.objects.count() == audited, "a refused request wrote something"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("moment", "status"),
    [
        ("0621-07-19T14:19:57+21:15", 200),  # the fuzz's find: PostgreSQL refused the offset
        ("2026-01-01T00:00:00-23:59", 200),
        ("0001-01-01T00:00:00+05:00", 400),  # before year 1 in UTC
        ("9999-12-31T23:59:59-05:00", 400),  # after year 9999 in UTC
    ],
)
def test_audit_events_filter_any_iso_offset(moment, status, world):
    client = Client(**http_headers(world.a.headers))
    for name in ("created_after", "created_before"):
        response = client.get(f"{API}/audit-events/", {name: moment})
        assert response.status_code == status, response.content


def test_every_operation_documents_the_outage_answer():
    """Any request can meet the database, Redis or the broker away (core.api.exceptions):
    503 service_unavailable is in every operation's responses, in the one error shape."""
    paths = Client().get(f"{API}/schema/?format=json").json()["paths"]
    missing = [
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "503" not in operation.get("responses", {})
    ]
    assert not missing, missing
    run = paths[f"{API}/payroll/periods/{{id}}/run/"]["post"]["responses"]["503"]
    assert run["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
