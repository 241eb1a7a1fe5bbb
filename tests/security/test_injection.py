"""SQL injection and HTML escaping: every query parameter of the report endpoints (taken from the
OpenAPI schema), every admin report form field, and every admin search box get hostile input.
No 5xx, no extra rows, and the payload never appears unescaped in HTML. Data planted with the
same payloads (an account, a customer, a bank transaction) must come out escaped too."""

import json
import re
from datetime import date

import pytest
from django.contrib import admin
from django.db import connection
from django.db.models import Q
from django.forms import BaseForm
from django.test import Client
from django.urls import reverse

from accounting import services as ledger
from accounting.admin_reports import REPORTS as ACCOUNTING_REPORTS
from accounting.models import Account, AccountType, JournalEntry
from banking.admin_reports import REPORTS as BANKING_REPORTS
from invoicing import services as invoicing
from invoicing.admin_reports import REPORTS as INVOICING_REPORTS
from tests.banking.conftest import bank  # noqa: F401  (fixtures reused)
from tests.factories import UserFactory
from tests.invoicing.conftest import books, sales  # noqa: F401

XSS = "<script>alert(1)</script>"
SQL_OR = "' OR 1=1 --"
SQL_DROP = "1; DROP TABLE accounting_journalentry; --"
SQL_UNION = "0 UNION SELECT username, password FROM core_user --"
PAYLOADS = [SQL_OR, SQL_DROP, SQL_UNION, XSS, '"><img src=x onerror=alert(1)>']
RAW_MARKERS = [XSS, "<img src=x onerror"]

REPORT_PREFIXES = ("/api/v1/accounting/reports/", "/api/v1/invoicing/reports/")
BANKING_REPORTS_API = (
    "/api/v1/banking/cash-position/",
    "/api/v1/banking/dimensional-analysis/",
    "/api/v1/banking/reconciliation/",
    "/api/v1/banking/reconciliations/",
    "/api/v1/banking/transfer-tracking/",
    "/api/v1/banking/variance-report/",
    "/api/v1/banking/transactions/",
    "/api/v1/banking/statement-lines/",
)


def _rows(value) -> int:
    """How many objects a JSON answer holds (rows, totals, sections), recursively."""
    if isinstance(value, dict):
        return 1 + sum(_rows(item) for item in value.values())
    if isinstance(value, list):
        return sum(_rows(item) for item in value)
    return 0


def _assert_escaped(response, where: str):
    """HTML must not carry the payload raw; JSON may (it is data), but only as JSON that no
    browser will sniff into HTML."""
    if "html" not in response.get("Content-Type", ""):
        assert response["Content-Type"].startswith(("application/json", "text/csv")), where
        assert response["X-Content-Type-Options"] == "nosniff", where
        return
    text = response.content.decode("utf-8", "replace")
    for marker in RAW_MARKERS:
        assert marker not in text, f"{where}: {marker!r} appears unescaped"


@pytest.fixture
def world(sales, bank):  # noqa: F811
    """Company A with posted invoices, bank transactions, and hostile names planted in data."""
    owner = sales.owner
    hostile = invoicing.party_create(
        actor=owner, company=sales.company, name=f"{XSS} Traders", email="x@hostile.example"
    )
    sales.approved(customer=hostile, branch="")
    sales.approved(issue_date=date(2025, 9, 5))
    ledger.account_create(
        actor=owner,
        company=sales.company,
        code="6999",
        name=f"Petty {XSS}",
        type=AccountType.EXPENSE,
        parent=None,
        is_postable=True,
    )
    bank.txn(kind="fee", amount="12.50", date=date(2025, 8, 14), reference=XSS, post=True)
    bank.txn(kind="interest", amount="40.00", date=date(2025, 9, 30), memo=SQL_OR, post=True)
    return bank


@pytest.fixture
def owner_api(world, api):
    return api(world.owner, world.company)


def _schema_report_params() -> dict[str, list[str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = {}
    for path, operations in schema["paths"].items():
        if "{" in path or "get" not in operations:
            continue
        if path.startswith(REPORT_PREFIXES) or path in BANKING_REPORTS_API:
            found[path] = [
                p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "query"
            ]
    return found


def _base_params(path: str, world) -> dict:
    if path.endswith("general-ledger/"):
        return {"account": Account.objects.get(company=world.company, code="1131").pk}
    if path.startswith("/api/v1/banking/") and not path.endswith("transactions/"):
        return {"bank_account_id": world.main.pk}
    return {}


@pytest.mark.django_db
def test_report_query_parameters_resist_injection(owner_api, world):
    paths = _schema_report_params()
    assert len([p for p in paths if p.startswith(REPORT_PREFIXES)]) == 6
    assert set(BANKING_REPORTS_API) <= set(paths)
    entries = JournalEntry.objects.count()
    tried = 0
    for path, params in paths.items():
        base = _base_params(path, world)
        baseline = owner_api.get(path, base)
        assert baseline.status_code == 200, (path, baseline.content[:300])
        _assert_escaped(baseline, path)
        widest = _rows(baseline.json())
        for name in params:
            for payload in PAYLOADS:
                response = owner_api.get(path, {**base, name: payload})
                tried += 1
                where = f"GET {path}?{name}={payload!r}"
                assert response.status_code < 500, where
                _assert_escaped(response, where)
                if response.status_code == 200 and "json" in response["Content-Type"]:
                    assert _rows(response.json()) <= widest, f"{where}: extra rows"
        # The browsable API (HTML) echoes the query: escaped.
        page = owner_api.get(path, {**base, params[0]: XSS}, HTTP_ACCEPT="text/html")
        assert page.status_code < 500
        _assert_escaped(page, f"{path} as HTML")
    assert tried > 300
    assert JournalEntry.objects.count() == entries  # nothing dropped, nothing added


@pytest.fixture
def superuser(world):
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _form_fields(response) -> list[str]:
    for context in response.context:
        for value in context.flatten().values():
            if isinstance(value, BaseForm):
                return list(value.fields)
    return []


@pytest.mark.django_db
def test_admin_report_forms_resist_injection(superuser, world):
    reports = [*ACCOUNTING_REPORTS, *INVOICING_REPORTS, *BANKING_REPORTS]
    assert len(reports) >= 9
    entries = JournalEntry.objects.count()
    for report in reports:
        base = {"company": world.company.pk}
        if report.kind == "general_ledger":
            base["account"] = Account.objects.get(company=world.company, code="1131").pk
        baseline = superuser.get(report.url, base)
        assert baseline.status_code == 200, (report.url, baseline.status_code)
        _assert_escaped(baseline, report.url)
        widest = baseline.content.count(b"<tr")
        fields = ["company", *_form_fields(baseline)]
        assert len(fields) > 1, f"{report.url}: no form found"
        for name in fields:
            for payload in PAYLOADS:
                response = superuser.get(report.url, {**base, name: payload})
                where = f"GET {report.url}?{name}={payload!r}"
                assert response.status_code < 500, where
                _assert_escaped(response, where)
                assert response.content.count(b"<tr") <= widest, f"{where}: extra rows"
    assert JournalEntry.objects.count() == entries


def _searchable_admins():
    return sorted(
        (model_admin for model_admin in admin.site._registry.values() if model_admin.search_fields),
        key=lambda model_admin: model_admin.model._meta.label,
    )


def _literal_matches(model_admin, text: str) -> int:
    condition = Q()
    for field in model_admin.search_fields:
        condition |= Q(**{f"{field.lstrip('^=@')}__icontains": text})
    return model_admin.model._default_manager.filter(condition).distinct().count()


@pytest.mark.django_db
def test_every_admin_search_box_resists_injection(superuser, world):
    searchable = _searchable_admins()
    assert len(searchable) >= 10
    tables = set(connection.introspection.table_names())
    for model_admin in searchable:
        opts = model_admin.model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        everything = superuser.get(url)
        assert everything.status_code == 200, (url, everything.status_code)
        total = everything.context["cl"].result_count
        for payload in PAYLOADS:
            response = superuser.get(url, {"q": payload})
            where = f"{opts.label} search {payload!r}"
            assert response.status_code == 200, where
            _assert_escaped(response, where)
            found = response.context["cl"].result_count
            assert found <= total, where
            if payload in (SQL_OR, SQL_DROP, SQL_UNION):
                # Only rows that hold the payload as text (the planted memo) may match.
                assert found <= _literal_matches(model_admin, payload), f"{where}: {found} rows"
            # The search box shows the query back, escaped.
            assert re.search(rb'name="q" value="[^"<>]*" id="searchbar"', response.content), where
    assert set(connection.introspection.table_names()) == tables


@pytest.mark.django_db
def test_planted_payloads_are_found_literally_and_shown_escaped(superuser, world):
    """Searching for the planted script finds exactly the planted row, shown escaped."""
    response = superuser.get(reverse("admin:invoicing_party_changelist"), {"q": XSS})
    assert response.context["cl"].result_count == 1
    assert b"&lt;script&gt;alert(1)&lt;/script&gt; Traders" in response.content
    _assert_escaped(response, "party changelist")


def test_payload_rows_helper_counts_nested_objects():
    assert _rows({"rows": [{"a": 1}, {"b": {"c": 2}}]}) == 4
    assert _rows(json.loads("[]")) == 0
