import pytest
from django.test import Client

from core.models import AuditEvent, Company, Membership, User
from tests.factories import UserFactory


@pytest.fixture
def staff(tenants):
    """Company A's accountant, allowed into the admin."""
    user = tenants.users_a["accountant"]
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser_client(db):
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db
def test_login_page_is_titled_kontor():
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert b"Kontor" in response.content


@pytest.mark.django_db
def test_dashboard_groups_apps_by_module_and_shows_panels(superuser_client, tenants):
    response = superuser_client.get("/admin/")
    assert response.status_code == 200
    names = [app["name"] for app in response.context["app_list"]]
    assert names[0] == "Company & access"
    assert "Operations" in names
    core = response.context["app_list"][0]
    assert {m["object_name"] for m in core["models"]} >= {
        "Company",
        "Membership",
        "AuditEvent",
        "User",
        "Group",
    }
    titles = [panel["title"] for panel in response.context["panels"]]
    assert titles[:3] == ["Your companies", "Recent activity", "Background jobs"]
    assert b"Alpha Traders" in response.content


@pytest.mark.django_db
def test_staff_see_only_their_companies(staff, tenants):
    response = staff.get("/admin/core/company/")
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [tenants.a]
    assert staff.get(f"/admin/core/company/{tenants.b.pk}/change/").status_code in (302, 404)
    memberships = staff.get("/admin/core/membership/").context["cl"].result_list
    assert {m.company_id for m in memberships} == {tenants.a.pk}


@pytest.mark.django_db
def test_accountant_cannot_change_company_settings_but_owner_can(staff, tenants):
    response = staff.post(f"/admin/core/company/{tenants.a.pk}/change/", {"name": "Renamed"})
    assert response.status_code == 403
    owner = tenants.users_a["owner"]
    owner.is_staff = True
    owner.save()
    client = Client()
    client.force_login(owner)
    data = {
        "name": "Alpha Renamed",
        "legal_name": "Alpha Traders Ltd",
        "is_active": "on",
        "country": "BD",
        "base_currency": "BDT",
        "time_zone": "Asia/Dhaka",
        "fiscal_year_start_month": "7",
        "bin": "",
        "etin": "",
        "address": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/core/company/{tenants.a.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Company.objects.get(pk=tenants.a.pk).name == "Alpha Renamed"
    assert AuditEvent.objects.filter(action="company.updated", actor=owner).exists()

    bad = client.post(f"/admin/core/company/{tenants.a.pk}/change/", {**data, "bin": "123"})
    assert bad.status_code == 200  # the form is shown again with the error, nothing saved
    assert "A BIN has exactly 13 digits." in bad.content.decode()


@pytest.mark.django_db
def test_superuser_creates_a_company_through_the_service(superuser_client):
    data = {
        "name": "Gamma Steel",
        "slug": "gamma",
        "legal_name": "",
        "is_active": "on",
        "country": "BD",
        "base_currency": "BDT",
        "time_zone": "Asia/Dhaka",
        "fiscal_year_start_month": "7",
        "bin": "1234567890123",
        "etin": "",
        "address": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = superuser_client.post("/admin/core/company/add/", data)
    assert response.status_code == 302
    gamma = Company.objects.get(slug="gamma")
    assert AuditEvent.objects.filter(action="company.created", object_id=str(gamma.pk)).exists()


@pytest.mark.django_db
def test_last_owner_cannot_be_deleted_in_the_admin(superuser_client, tenants):
    owner = Membership.objects.get(user=tenants.owner_b)
    page = superuser_client.get(f"/admin/core/membership/{owner.pk}/delete/")
    assert "the last owner of Beta Foods" in page.content.decode()
    superuser_client.post(f"/admin/core/membership/{owner.pk}/delete/", {"post": "yes"})
    assert Membership.objects.filter(pk=owner.pk).exists()


@pytest.mark.django_db
def test_last_owner_cannot_be_demoted_in_the_admin(superuser_client, tenants):
    owner = Membership.objects.get(user=tenants.owner_b)
    response = superuser_client.post(
        f"/admin/core/membership/{owner.pk}/change/", {"role": "clerk"}
    )
    assert response.status_code == 200
    assert "at least one owner" in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == "owner"


@pytest.mark.django_db
def test_audit_events_are_read_only_and_searchable(superuser_client, tenants):
    from core import services

    event = services.audit_record(action="invoice.approved", company=tenants.a, system_job="t")
    listing = superuser_client.get("/admin/core/auditevent/", {"q": "invoice.approved"})
    assert list(listing.context["cl"].result_list) == [event]
    assert superuser_client.get("/admin/core/auditevent/add/").status_code == 403
    detail = superuser_client.get(f"/admin/core/auditevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content


@pytest.mark.django_db(transaction=True)
def test_a_domain_error_in_the_admin_is_a_message_and_writes_nothing(tenants, monkeypatch):
    """The service writes, then refuses (as a check that fails late would): the admin shows the
    message instead of a stack trace, and the transaction takes the half-done write back."""
    from core import services
    from core.errors import ConflictError

    real_change_role = services.membership_change_role

    def change_then_refuse(**kwargs):
        real_change_role(**kwargs)
        raise ConflictError("A company must keep at least one owner.", code="last_owner")

    monkeypatch.setattr(services, "membership_change_role", change_then_refuse)
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    clerk = Membership.objects.get(user=tenants.users_a["clerk"])
    url = f"/admin/core/membership/{clerk.pk}/change/"
    response = client.post(url, {"role": "accountant"}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "A company must keep at least one owner."
    ]
    clerk.refresh_from_db()
    assert clerk.role == "clerk"
    assert not AuditEvent.objects.filter(action="membership.role_changed").exists()


@pytest.mark.django_db
def test_a_domain_error_on_a_page_goes_back_without_looping(superuser_client, monkeypatch):
    from core.admin import CompanyAdmin
    from core.errors import DomainError

    def refuse(self, request):
        raise DomainError("Pick a period first.", code="period_required")

    monkeypatch.setattr(CompanyAdmin, "get_queryset", refuse)
    page = "/admin/core/company/"
    came_from = superuser_client.get(page, HTTP_REFERER="http://testserver/admin/core/user/")
    assert (came_from.status_code, came_from.url) == (302, "http://testserver/admin/core/user/")
    assert superuser_client.get(page).url == "/admin/"
    same_page = superuser_client.get(page, HTTP_REFERER=f"http://testserver{page}")
    assert same_page.url == "/admin/", "a page must not send the user back to itself"
    landed = superuser_client.get(page, follow=True)
    assert "Pick a period first." in [str(m) for m in landed.context["messages"]]


@pytest.mark.django_db
def test_list_filters_do_not_name_other_companies(staff, tenants):
    from core import services

    services.audit_record(action="a.thing", company=tenants.a, system_job="t")
    services.audit_record(action="b.thing", company=tenants.b, system_job="t")
    for url in ("/admin/core/auditevent/", "/admin/core/membership/"):
        page = staff.get(url).content.decode()
        assert "Alpha Traders" in page
        assert "Beta Foods" not in page, url
        assert "b.thing" not in page


@pytest.mark.django_db
def test_admin_shows_times_on_the_companys_clock(staff, tenants):
    from datetime import UTC, datetime

    from core.models import AuditEvent

    AuditEvent.objects.create(
        company=tenants.a,
        actor_label="system:t",
        action="clock.check",
        created_at=datetime(2026, 7, 1, 18, 30, tzinfo=UTC),
    )
    page = staff.get("/admin/core/auditevent/", {"q": "clock.check"}).content.decode()
    assert "July 2, 2026, 12:30 a.m." in page  # Asia/Dhaka is UTC+6


@pytest.mark.django_db
def test_owners_see_their_members_but_only_superusers_attach_accounts(tenants, superuser_client):
    owner = tenants.users_a["owner"]
    owner.is_staff = True
    owner.save()
    client = Client()
    client.force_login(owner)
    company_page = client.get(f"/admin/core/company/{tenants.a.pk}/change/").content.decode()
    assert "a-payroll_manager" in company_page  # the member list on the company's page
    assert client.get("/admin/core/membership/add/").status_code == 403
    assert superuser_client.get("/admin/core/membership/add/").status_code == 200
    assert (
        superuser_client.get(
            "/admin/autocomplete/",
            {"app_label": "core", "model_name": "membership", "field_name": "user", "term": "outs"},
        ).json()["results"][0]["text"]
        == "outsider"
    )


@pytest.mark.django_db
def test_account_changes_in_the_admin_are_audited(superuser_client, tenants):
    created = superuser_client.post(
        "/admin/core/user/add/",
        {
            "username": "karim",
            "password1": "ledger-Lantern-42",
            "password2": "ledger-Lantern-42",
            "usable_password": "true",
        },
    )
    assert created.status_code == 302
    karim = User.objects.get(username="karim")
    event = AuditEvent.objects.get(action="user.created", object_id=str(karim.pk))
    assert event.actor.username == "root"

    changed = superuser_client.post(
        f"/admin/core/user/{karim.pk}/password/",
        {"password1": "another-Lantern-43", "password2": "another-Lantern-43"},
    )
    assert changed.status_code == 302
    event = AuditEvent.objects.get(action="user.changed", object_id=str(karim.pk))
    assert "password" in str(event.after).lower()
    assert "another-Lantern-43" not in str(event.after)
