"""Makers of the integration hub's rows for tests/factories.py::tenant_object (the router-driven
tenant-isolation and role tests): one dict per company, spread there by one line."""

from __future__ import annotations

import itertools

_names = itertools.count(1)


def connection_for(company, *, system="tally", **kw):
    from accounting.integrations import services

    settings = {"tally": {"host": "127.0.0.1", "port": 9}}.get(system, {})
    return services.connection_create(
        actor=None,
        company=company,
        system=system,
        name=f"Maker {next(_names)}",
        settings=kw.pop("settings", settings),
        **kw,
    )


def _integration_makers(company) -> dict:
    from django.utils import timezone

    from accounting.integrations.models import (
        AccountMapping,
        IntegrationConnection,
        SyncError,
        SyncRun,
    )

    def run():
        connection = connection_for(company)
        return SyncRun.objects.create(
            company=company,
            connection=connection,
            sync_type="import",
            entity="contacts",
            status="succeeded",
            started_at=timezone.now(),
            completed_at=timezone.now(),
        )

    def error():
        connection = connection_for(company)
        return SyncError.objects.create(
            company=company,
            connection=connection,
            entity="contacts",
            external_id="X-1",
            category="validation",
            message="Name is required.",
        )

    def mapping():
        connection = connection_for(company)
        return AccountMapping.objects.create(
            company=company,
            connection=connection,
            external_id=f"acc-{next(_names)}",
            external_code="4000",
            external_name="Sales",
        )

    return {
        IntegrationConnection: lambda: connection_for(company),
        SyncRun: run,
        SyncError: error,
        AccountMapping: mapping,
    }
