"""`seed_demo`'s integrations part: a disabled Tally and a disabled Zoho Books connection with
runs and errors made by the sync engine (in-process demo connectors, no network), placeholder
credentials only; fast, and once only."""

import io
import time

import pytest

from accounting.integrations import demo
from accounting.integrations.connectors import connector_class
from accounting.integrations.connectors.tally import TallyConnector
from accounting.integrations.models import AccountMapping, IntegrationConnection, SyncError, SyncRun
from invoicing.models import Party

pytestmark = pytest.mark.django_db


def test_demo_seeds_connections_runs_and_errors_once(tenants):
    owner = tenants.users_a["owner"]
    started = time.monotonic()
    out = io.StringIO()
    created = demo.seed(company=tenants.a, actor=owner, stdout=out)
    assert time.monotonic() - started < 5
    assert created > 0 and "2 connections" in out.getvalue()

    tally = IntegrationConnection.objects.get(company=tenants.a, name=demo.TALLY_NAME)
    zoho = IntegrationConnection.objects.get(company=tenants.a, name=demo.ZOHO_NAME)
    assert (tally.enabled, zoho.enabled) == (False, False)
    assert tally.settings["port"] == 9000
    assert tally.last_test_success is True and zoho.last_test_success is False
    assert set(zoho.credentials.values()) == {demo.PLACEHOLDER, "4102444800"}

    runs = dict(
        SyncRun.objects.filter(company=tenants.a)
        .exclude(sync_type="test")
        .values_list("connection__name", "entity")
        .values_list("entity", "status")
        .filter(connection=tally)
    )
    assert runs == {"accounts": "succeeded", "contacts": "partial"}
    assert SyncRun.objects.get(connection=zoho, sync_type="import").status == "failed"
    assert AccountMapping.objects.filter(connection=tally).count() == len(demo.CHART)
    assert Party.objects.filter(company=tenants.a, name__endswith="(Tally demo)").count() == 3
    categories = sorted(
        SyncError.objects.filter(company=tenants.a).values_list("category", flat=True)
    )
    assert categories == ["auth", "server"]

    assert demo.seed(company=tenants.a, actor=owner, stdout=io.StringIO()) == 0
    assert IntegrationConnection.objects.filter(company=tenants.a).count() == 2
    # The real connectors are back after seeding.
    assert connector_class("tally") is TallyConnector
