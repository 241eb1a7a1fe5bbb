import io

import pytest
import yaml
from django.core.management import call_command

from core.models import AuditEvent, Company, Membership, User


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_credentials_locally(settings):
    settings.DEMO_SHOW_CREDENTIALS = True
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "user admin  password kontor-admin" in out.getvalue()
    counts = (
        Company.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        AuditEvent.objects.count(),
    )
    assert counts[:3] == (2, 11, 10)
    call_command("seed_demo", stdout=io.StringIO())
    assert (
        Company.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        AuditEvent.objects.count(),
    ) == counts
    assert User.objects.get(username="dhaka.owner").check_password("kontor-demo")
    assert Company.objects.get(slug="dhaka-textiles").bin_display == "000123456-7891"


@pytest.mark.django_db
def test_seed_demo_hides_credentials_outside_local(settings):
    settings.DEMO_SHOW_CREDENTIALS = False
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "kontor-admin" not in out.getvalue()
    assert not User.objects.get(username="admin").check_password("kontor-admin")


@pytest.mark.django_db
def test_openapi_schema_validates_and_documents_the_api(client):
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {
        "/api/v1/auth/token/",
        "/api/v1/auth/token/refresh/",
        "/api/v1/companies/",
        "/api/v1/memberships/{id}/",
        "/api/v1/audit-events/",
    } <= paths
    assert client.get("/api/v1/schema/").status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content


@pytest.mark.django_db
def test_seed_demo_does_not_print_a_password_that_was_changed(settings):
    settings.DEMO_SHOW_CREDENTIALS = True
    call_command("seed_demo", stdout=io.StringIO())
    admin = User.objects.get(username="admin")
    admin.set_password("my-own-secret-9")
    admin.save()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "kontor-admin" not in out.getvalue()
    assert "(password changed by you)" in out.getvalue()
    assert User.objects.get(username="admin").check_password("my-own-secret-9")
