"""Connection credentials are stored encrypted and never shown by str/repr."""

import pytest
from django.db import IntegrityError

from accounting.integrations.models import ExternalRef, IntegrationConnection
from tests.integrations.conftest import PLANTED_SECRET, connection_make

pytestmark = pytest.mark.django_db


def test_credentials_are_encrypted_at_rest_and_read_back(connection):
    stored = IntegrationConnection.objects.values_list("credentials_encrypted", flat=True).get(
        pk=connection.pk
    )
    assert PLANTED_SECRET not in stored
    fresh = IntegrationConnection.objects.get(pk=connection.pk)
    assert fresh.credentials["client_secret"] == PLANTED_SECRET
    assert fresh.credential_keys == ["access_token", "client_id", "client_secret", "refresh_token"]


def test_str_and_repr_never_show_secrets(connection):
    assert PLANTED_SECRET not in str(connection)
    assert PLANTED_SECRET not in repr(connection)
    assert str(connection) == "Zoho Books: Books"


def test_empty_credentials_store_nothing(tenants):
    connection = connection_make(tenants.a, system="tally", name="Tally", credentials={})
    assert connection.credentials_encrypted == ""
    assert connection.credentials == {}


def test_names_are_unique_per_company_and_system(tenants, connection):
    connection_make(tenants.b, settings={})  # same name, another company: fine
    with pytest.raises(IntegrityError):
        connection_make(tenants.a)


def test_a_local_row_has_one_external_ref_per_connection(connection):
    common = {"company": connection.company, "connection": connection, "entity": "invoice"}
    ExternalRef.objects.create(
        **common, local_type="invoicing.invoice", local_id="7", external_id="X1"
    )
    with pytest.raises(IntegrityError):
        ExternalRef.objects.create(
            **common, local_type="invoicing.invoice", local_id="7", external_id="X2"
        )


# --- the database as backstop: tenancy triggers and checks, around Python ---------------------


def _rows_for(connection, company):
    """One row of each connection-owned table, claiming `company`."""
    from django.utils import timezone

    from accounting.integrations.models import (
        AccountMapping,
        SyncError,
        SyncRun,
        WebhookEvent,
    )

    common = {"company": company, "connection": connection}
    return {
        "run": lambda: SyncRun.objects.create(
            **common, sync_type="import", entity="contacts", started_at=timezone.now()
        ),
        "error": lambda: SyncError.objects.create(
            **common, entity="contacts", category="network", message="x"
        ),
        "ref": lambda: ExternalRef.objects.create(
            **common, entity="contact", local_type="invoicing.party", local_id="1", external_id="C"
        ),
        "event": lambda: WebhookEvent.objects.create(
            **common, system="zoho_books", event_id="e1", entity="contact", external_id="C"
        ),
        "mapping": lambda: AccountMapping.objects.create(
            **common, external_id="A1", external_name="Cash"
        ),
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["run", "error", "ref", "event", "mapping"])
def test_a_row_of_another_company_than_its_connection_is_refused(tenants, kind):
    from django.db import transaction

    connection = connection_make(tenants.a)
    with pytest.raises(IntegrityError), transaction.atomic():
        _rows_for(connection, tenants.b)[kind]()  # straight through the ORM: no service
    row = _rows_for(connection, tenants.a)[kind]()  # its own company: fine
    model = type(row)
    # ... and moved afterwards with QuerySet.update (no save(), no signal)
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(company=tenants.b)
    other = connection_make(tenants.b, name="Other")
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(connection=other)


@pytest.mark.django_db(transaction=True)
def test_a_mapping_to_another_companys_account_is_refused(tenants):
    from django.db import transaction

    from accounting.integrations.models import AccountMapping
    from accounting.models import Account
    from accounting.services import company_ledger_setup

    company_ledger_setup(company=tenants.a)
    company_ledger_setup(company=tenants.b)
    connection = connection_make(tenants.a)
    theirs = Account.objects.filter(company=tenants.b).first()
    ours = Account.objects.filter(company=tenants.a).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountMapping.objects.create(
            company=tenants.a,
            connection=connection,
            external_id="A1",
            external_name="Cash",
            account=theirs,
        )
    mapping = AccountMapping.objects.create(
        company=tenants.a,
        connection=connection,
        external_id="A1",
        external_name="Cash",
        account=ours,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountMapping.objects.filter(pk=mapping.pk).update(account=theirs)


@pytest.mark.django_db(transaction=True)
def test_a_connection_cannot_move_to_another_company(tenants):
    from django.db import transaction

    connection = connection_make(tenants.a)
    with pytest.raises(IntegrityError), transaction.atomic():
        IntegrationConnection.objects.filter(pk=connection.pk).update(company=tenants.b)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("model_name", "field", "value"),
    [
        ("IntegrationConnection", "frequency", "weekly"),
        ("SyncRun", "sync_type", "bulk"),
        ("SyncRun", "entity", "widgets"),
        ("SyncRun", "records_processed", 3),  # succeeded 1 + failed 1 is 2
        ("SyncError", "severity", "fatal"),
        ("SyncError", "entity", "widgets"),
        ("ExternalRef", "entity", "widget"),
    ],
)
def test_checks_refuse_values_outside_their_choices(tenants, model_name, field, value):
    from django.db import transaction
    from django.utils import timezone

    from accounting.integrations import models

    connection = connection_make(tenants.a)
    common = {"company": tenants.a, "connection": connection}
    rows = {
        "IntegrationConnection": lambda: connection,
        "SyncRun": lambda: models.SyncRun.objects.create(
            **common,
            sync_type="import",
            entity="contacts",
            started_at=timezone.now(),
            records_processed=2,
            records_succeeded=1,
            records_failed=1,
        ),
        "SyncError": lambda: models.SyncError.objects.create(
            **common, entity="contacts", category="network", message="x"
        ),
        "ExternalRef": lambda: ExternalRef.objects.create(
            **common, entity="contact", local_type="invoicing.party", local_id="1", external_id="C"
        ),
    }
    row = rows[model_name]()
    model = type(row)
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(**{field: value})
