"""Row-level security (core/rls.py): behind the scoped querysets, the database itself shows and
accepts only the company a request or task acts for."""

import json

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.throttling import BaseThrottle

from core import rls
from core.api.base import TenantAPIView
from core.errors import ConflictError
from core.models import AuditEvent, Company, Membership
from invoicing.models import Invoice
from tests.banking.makers import bank_account_for
from tests.factories import AuditEventFactory, UserFactory, draft_invoice_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _raw(sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def _acting_role() -> str:
    return _raw("SELECT current_user")[0]


def _invoice_companies() -> list[int]:
    """What a query that forgets the company filter sees: the ORM and raw SQL."""
    orm = sorted(set(Invoice.objects.values_list("company_id", flat=True)))
    raw = _raw("SELECT array_agg(DISTINCT company_id ORDER BY company_id) FROM invoicing_invoice")
    assert orm == (raw[0] or [])
    return orm


class Probe(TenantAPIView):
    """A careless view: every query below forgets the company."""

    scope = "company"
    fail_with = None

    def get(self, request):
        seen = {
            "invoices": _invoice_companies(),
            "invoice_count": Invoice.objects.count(),
            "raw_count": _raw("SELECT count(*) FROM invoicing_invoice")[0],
            "memberships": sorted(set(Membership.objects.values_list("company_id", flat=True))),
            "role": _acting_role(),
        }
        if self.fail_with is not None:
            raise self.fail_with
        return Response(seen)


def _get(view, user, company):
    request = APIRequestFactory().get("/probe/", HTTP_X_COMPANY=company.slug)
    force_authenticate(request, user)
    return view.as_view()(request)


@pytest.fixture
def invoices(tenants):
    """Two draft invoices of A, one of B."""
    return [
        draft_invoice_for(tenants.a),
        draft_invoice_for(tenants.a),
        draft_invoice_for(tenants.b),
    ]


def test_every_model_with_a_company_has_rls_and_a_policy_for_the_tenant_role():
    tables = {
        model._meta.db_table
        for model in apps.get_models()
        if not model._meta.proxy
        and any(
            isinstance(field, models.ForeignKey)
            and field.name == "company"
            and field.related_model is Company
            for field in model._meta.concrete_fields
        )
    }
    assert len(tables) > 40
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relrowsecurity"
        )
        with_rls = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT tablename, roles, cmd FROM pg_policies WHERE policyname = %s", [rls.POLICY]
        )
        policies = {table: (list(roles), cmd) for table, roles, cmd in cursor.fetchall()}
    assert tables - with_rls == set()
    assert {t: policies.get(t) for t in tables if policies.get(t) != ([rls.role()], "ALL")} == {}
    # The tenant registry itself stays readable: the company list and "me" need it.
    assert Company._meta.db_table not in with_rls


def test_every_table_in_the_database_with_a_company_has_rls_and_the_policy():
    """From the catalogue, not the models: a table made by raw SQL, a partition or a column
    referencing the company under another name would be missed by the registry."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "WHERE c.relkind IN ('r', 'p') AND a.attname = 'company_id' AND a.attnum > 0 "
            "AND NOT a.attisdropped "
            "UNION SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "WHERE k.contype = 'f' AND k.confrelid = %s::regclass",
            [Company._meta.db_table],
        )
        tables = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_policies p ON p.tablename = c.relname "
            "AND p.schemaname = 'public' AND p.policyname = %s WHERE c.relrowsecurity",
            [rls.POLICY],
        )
        protected = {row[0] for row in cursor.fetchall()}
    assert len(tables) > 40
    assert tables - protected == set()


def test_an_unscoped_query_in_an_api_request_sees_one_company(tenants, invoices):
    response = _get(Probe, tenants.users_a["owner"], tenants.a)
    assert response.status_code == 200, response.data
    assert response.data == {
        "invoices": [tenants.a.pk],
        "invoice_count": 2,
        "raw_count": 2,
        "memberships": [tenants.a.pk],
        "role": rls.role(),
    }
    response = _get(Probe, tenants.owner_b, tenants.b)
    assert response.data["invoices"] == [tenants.b.pk]
    assert response.data["raw_count"] == 1


def test_after_the_request_the_connection_is_unscoped_again(tenants, invoices):
    _get(Probe, tenants.users_a["owner"], tenants.a)
    assert _acting_role() != rls.role()
    assert rls.scoped_company() is None
    assert _invoice_companies() == sorted([tenants.a.pk, tenants.b.pk])


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug in the view"), ConflictError("a refused action")],
    ids=["unhandled", "domain-error"],
)
def test_the_scope_is_reset_even_when_the_view_raised(tenants, invoices, error):
    class Failing(Probe):
        fail_with = error

    if isinstance(error, ConflictError):
        assert _get(Failing, tenants.users_a["owner"], tenants.a).status_code == 409
    else:
        with pytest.raises(ValueError):
            _get(Failing, tenants.users_a["owner"], tenants.a)
    assert _acting_role() != rls.role()
    assert _invoice_companies() == sorted([tenants.a.pk, tenants.b.pk])


class _Refuse(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 30


@pytest.mark.parametrize("refusal", ["permission", "throttle"])
def test_a_request_refused_before_the_view_runs_leaves_the_connection_unscoped(
    tenants, invoices, refusal
):
    class Throttled(Probe):
        throttle_classes = [_Refuse]

    if refusal == "permission":  # B's owner asking for A
        assert _get(Probe, tenants.owner_b, tenants.a).status_code in (403, 404)
    else:
        assert _get(Throttled, tenants.users_a["owner"], tenants.a).status_code == 429
    assert _acting_role() != rls.role()
    assert rls.scoped_company() is None


def test_lazy_data_is_rendered_inside_the_scope(tenants, invoices):
    """DRF's JSON encoder runs a queryset left in the data when Django renders the response,
    after dispatch: that must still happen inside the company's scope."""

    class Lazy(TenantAPIView):
        scope = "company"

        def get(self, request):
            return Response({"companies": Invoice.objects.values_list("company_id", flat=True)})

    response = _get(Lazy, tenants.users_a["owner"], tenants.a)
    response.render()  # what Django's handler does next (a no-op once rendered)
    assert json.loads(response.content) == {"companies": [tenants.a.pk, tenants.a.pk]}
    assert rls.scoped_company() is None


def test_the_scope_is_reset_after_a_database_error_inside_the_view(tenants, invoices):
    class Refused(Probe):
        def get(self, request):
            with transaction.atomic():  # the refused write rolls back to here
                Membership.objects.create(user=UserFactory(), company=tenants.b, role="clerk")

    with pytest.raises(DatabaseError):
        _get(Refused, tenants.users_a["owner"], tenants.a)
    assert _acting_role() != rls.role()
    assert _invoice_companies() == sorted([tenants.a.pk, tenants.b.pk])


def test_writing_another_companys_row_inside_a_scope_is_refused_by_the_database(tenants):
    mine = Membership.objects.get(user=tenants.users_a["clerk"])
    theirs = Membership.objects.get(user=tenants.owner_b)
    newcomer = UserFactory()
    with rls.tenant_context(tenants.a.pk):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Membership.objects.create(user=newcomer, company=tenants.b, role="clerk")
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Membership.objects.filter(pk=mine.pk).update(company=tenants.b)
        # Another company's rows are out of sight: changing or deleting them touches nothing.
        assert Membership.objects.filter(pk=theirs.pk).update(role="viewer") == 0
        assert Membership.objects.filter(pk=theirs.pk).delete()[0] == 0
        Membership.objects.create(user=newcomer, company=tenants.a, role="clerk")
    theirs.refresh_from_db()
    assert theirs.role == "owner"
    assert Membership.objects.filter(user=newcomer, company=tenants.a).exists()


def test_rows_of_no_company_are_shared_and_only_audit_events_may_be_written_so(tenants):
    AuditEventFactory(company=None)
    AuditEventFactory(company=tenants.b)
    with rls.tenant_context(tenants.a.pk):
        assert list(AuditEvent.objects.values_list("company_id", flat=True)) == [None]
        AuditEventFactory(company=None)
    assert AuditEvent.objects.filter(company=None).count() == 2


def test_outside_a_scope_every_company_is_visible(tenants, invoices):
    """Admin pages, commands and the beat fan-outs run as the tables' owner."""
    assert rls.scoped_company() is None
    assert _invoice_companies() == sorted([tenants.a.pk, tenants.b.pk])
    with rls.tenant_context(tenants.a.pk):
        assert _invoice_companies() == [tenants.a.pk]
        with rls.tenant_context(tenants.a.pk):  # the same company again: nothing changes
            assert _invoice_companies() == [tenants.a.pk]
        with rls.tenant_context(tenants.b.pk):  # nested: back to A afterwards
            assert _invoice_companies() == [tenants.b.pk]
        assert _invoice_companies() == [tenants.a.pk]
    assert _invoice_companies() == sorted([tenants.a.pk, tenants.b.pk])


def test_admin_pages_stay_unscoped_and_list_every_company(tenants, invoices):
    """The admin may serve several companies at once: it runs as the owner, unscoped (its own
    company filtering is the admin's)."""
    from django.test import Client

    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get("/admin/invoicing/invoice/")
    assert response.status_code == 200
    shown = {invoice.company_id for invoice in response.context["cl"].result_list}
    assert shown == {tenants.a.pk, tenants.b.pk}
    assert _acting_role() != rls.role()


def test_a_celery_task_run_for_company_a_sees_only_a(tenants, invoices, monkeypatch):
    from banking import reconciliation
    from banking.tasks import reconcile_account

    seen = {}

    def probe(*, company, bank_account, period, system_job):
        seen["invoices"] = _invoice_companies()
        seen["role"] = _acting_role()
        return {"accepted": 0}

    monkeypatch.setattr(reconciliation, "reconciliation_auto", probe)
    account = bank_account_for(tenants.a)
    result = reconcile_account.apply(args=(account.pk,))
    assert result.successful(), result.traceback
    assert seen == {"invoices": [tenants.a.pk], "role": rls.role()}
    assert _acting_role() != rls.role()
    assert _invoice_companies() == sorted([tenants.a.pk, tenants.b.pk])


def test_copy_into_a_table_inside_a_scope_goes_through_insert_and_the_policy(tenants):
    """PostgreSQL refuses COPY FROM on a table with RLS for a role subject to it: copy_from
    loads a temporary table and INSERTs from it, so bulk loads in a scope still work and the
    policy still checks each row."""
    users = [UserFactory(), UserFactory()]

    def copy_membership(user, company):
        columns = ["user_id", "company_id", "role", "created_at"]
        with connection.cursor() as cursor, rls.copy_from(cursor, "core_membership", columns) as c:
            c.write_row((user.pk, company.pk, "clerk", timezone.now()))

    with rls.tenant_context(tenants.a.pk):
        copy_membership(users[0], tenants.a)
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            copy_membership(users[1], tenants.b)
    assert Membership.objects.filter(user=users[0], company=tenants.a).exists()
    assert not Membership.objects.filter(user=users[1]).exists()


def test_an_eager_task_inside_a_scope_leaves_the_callers_scope_alone(tenants, monkeypatch):
    """task_postrun resets leftover scopes, but not the caller's scope around an eager task
    (a request that runs its task inline)."""
    from banking import reconciliation
    from banking.tasks import reconcile_account

    monkeypatch.setattr(reconciliation, "reconciliation_auto", lambda **kwargs: {})
    account = bank_account_for(tenants.a)
    with rls.tenant_context(tenants.a.pk):
        assert reconcile_account.apply(args=(account.pk,)).successful()
        assert rls.scoped_company() == tenants.a.pk
        assert _acting_role() == rls.role()
    assert _acting_role() != rls.role()


def test_ledger_triggers_and_the_copy_posting_work_inside_a_scope(tenants):
    """The balance, chain and numbering triggers run as the tenant role: they see one company's
    rows and still keep its books right, for one entry and for a bulk (COPY) batch."""
    from accounting import selectors, services
    from tests.factories import journal_entry_for

    journal_entry_for(tenants.b)
    sale = [
        {"account_code": "1110", "debit": "40.00"},
        {"account_code": "4100", "credit": "40.00"},
    ]
    with rls.tenant_context(tenants.a.pk):
        journal_entry_for(tenants.a)
        day = tenants.a.today()
        posted = services.journal_entries_post_bulk(
            system_job="test",
            company=tenants.a,
            entries=[{"date": day, "lines": sale}, {"date": day, "lines": sale}],
        )
        assert len(posted) == 2
    for company in (tenants.a, tenants.b):
        assert selectors.stored_balances(company) == selectors.rebuild_expected_balances(company)
