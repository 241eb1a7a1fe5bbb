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
