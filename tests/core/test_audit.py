import pytest
from django.db import IntegrityError, connection, transaction
from django.test import TransactionTestCase

from core import services
from core.models import AuditEvent, Company
from tests.factories import CompanyFactory, UserFactory


@pytest.mark.django_db
def test_company_update_records_who_changed_what(tenants, api):
    owner = tenants.users_a["owner"]
    response = api(owner, tenants.a).patch(
        "/api/v1/companies/alpha/",
        {"bin": "0001234567891", "name": "Alpha Traders"},
        format="json",
        HTTP_X_REQUEST_ID="3f1c2b4a5d6e7f8091a2b3c4d5e6f708",
    )
    assert response.status_code == 200, response.content
    assert response.json()["bin_display"] == "000123456-7891"
    event = AuditEvent.objects.get(action="company.updated")
    assert event.actor == owner and event.actor_label == "a-owner"
    assert event.company == tenants.a
    assert (event.object_type, event.object_id) == ("core.company", str(tenants.a.pk))
    assert event.before == {"bin": ""} and event.after == {"bin": "0001234567891"}
    assert event.request_id == "3f1c2b4a5d6e7f8091a2b3c4d5e6f708"


@pytest.mark.django_db
def test_an_unchanged_update_records_nothing(tenants):
    services.company_update(actor=None, company=tenants.a, name=tenants.a.name)
    assert not AuditEvent.objects.filter(action="company.updated").exists()


@pytest.mark.django_db
def test_system_jobs_are_named(tenants):
    event = services.audit_record(
        action="job.ran", system_job="payroll.auto_run", company=tenants.a
    )
    assert event.actor is None and event.actor_label == "system:payroll.auto_run"


@pytest.mark.django_db
def test_audit_events_api_filters_and_reads_only(tenants, api):
    services.audit_record(action="alpha.one", company=tenants.a, system_job="t")
    services.audit_record(action="alpha.two", company=tenants.a, system_job="t")
    client = api(tenants.users_a["auditor"], tenants.a)
    rows = client.get("/api/v1/audit-events/", {"action": "alpha.two"}).json()["results"]
    assert [row["action"] for row in rows] == ["alpha.two"]
    event_id = rows[0]["id"]
    assert client.delete(f"/api/v1/audit-events/{event_id}/").status_code == 405
    assert client.patch(f"/api/v1/audit-events/{event_id}/", {}).status_code == 405


@pytest.mark.postgres
class AuditAppendOnlyInPostgres(TransactionTestCase):
    """The database itself refuses to rewrite history, whatever Python does."""

    def setUp(self):
        self.company = CompanyFactory()
        self.event = services.audit_record(
            action="x.created", company=self.company, actor=UserFactory(), after={"a": 1}
        )

    def test_raw_sql_update_is_refused(self):
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "UPDATE core_auditevent SET action = 'forged' WHERE id = %s", [self.event.pk]
            )
        assert AuditEvent.objects.get(pk=self.event.pk).action == "x.created"

    def test_queryset_update_is_refused(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            AuditEvent.objects.filter(pk=self.event.pk).update(after={"a": 2})
        assert AuditEvent.objects.get(pk=self.event.pk).after == {"a": 1}

    def test_delete_is_refused(self):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM core_auditevent WHERE id = %s", [self.event.pk])
        with pytest.raises(IntegrityError), transaction.atomic():
            AuditEvent.objects.filter(pk=self.event.pk).delete()
        assert AuditEvent.objects.filter(pk=self.event.pk).exists()

    def test_inserts_still_work(self):
        services.audit_record(action="x.more", company=self.company, system_job="t")
        assert AuditEvent.objects.count() == 2


@pytest.mark.postgres
class CompanyConstraintsInPostgres(TransactionTestCase):
    def test_database_refuses_a_malformed_bin_and_month(self):
        company = CompanyFactory()
        with pytest.raises(IntegrityError), transaction.atomic():
            Company.objects.filter(pk=company.pk).update(bin="12345")
        with pytest.raises(IntegrityError), transaction.atomic():
            Company.objects.filter(pk=company.pk).update(fiscal_year_start_month=13)
