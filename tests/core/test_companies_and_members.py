import pytest

from core.models import AuditEvent, Membership, User


@pytest.mark.django_db
class TestCompanySettings:
    def test_owner_sees_the_company_with_its_settings(self, tenants, api):
        body = api(tenants.users_a["clerk"], tenants.a).get("/api/v1/companies/alpha/").json()
        assert body["slug"] == "alpha"
        assert (
            body["country"],
            body["base_currency"],
            body["time_zone"],
            body["fiscal_year_start_month"],
        ) == ("BD", "BDT", "Asia/Dhaka", 7)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("bin", "12345", "bin: A BIN has exactly 13 digits."),
            ("etin", "12AB", "etin: An e-TIN has exactly 12 digits."),
            ("base_currency", "XYZ", "base_currency: 'XYZ' is not an ISO 4217 currency code."),
            ("time_zone", "Mars/Olympus", "time_zone: 'Mars/Olympus' is not an IANA time zone."),
            ("fiscal_year_start_month", 13, None),
            ("country", "ZZ", "country: 'ZZ' is not an ISO 3166 country code."),
        ],
    )
    def test_bad_settings_are_refused_with_a_code_and_nothing_changes(
        self, tenants, api, field, value, message
    ):
        response = api(tenants.users_a["owner"], tenants.a).patch(
            "/api/v1/companies/alpha/", {field: value}, format="json"
        )
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid"
        assert field in body["fields"]
        if message:
            assert body["message"] == message
        tenants.a.refresh_from_db()
        assert getattr(tenants.a, field) != value
        assert not AuditEvent.objects.filter(action="company.updated").exists()

    def test_slug_is_read_only(self, tenants, api):
        response = api(tenants.users_a["owner"], tenants.a).patch(
            "/api/v1/companies/alpha/", {"slug": "hijack"}, format="json"
        )
        assert response.status_code == 200
        assert response.json()["slug"] == "alpha"

    def test_company_today_is_in_its_time_zone(self, tenants):
        import time_machine

        with time_machine.travel("2026-06-30T20:30:00Z", tick=False):
            assert str(tenants.a.today()) == "2026-07-01"  # Dhaka is UTC+6
            assert str(tenants.b.today()) == "2026-06-30"  # New York is UTC-4 in summer
        from datetime import date

        assert tenants.a.fiscal_year_start(date(2026, 6, 30)) == date(2025, 7, 1)
        assert tenants.a.fiscal_year_start(date(2026, 7, 1)) == date(2026, 7, 1)
        assert tenants.b.fiscal_year_start(date(2026, 6, 30)) == date(2026, 1, 1)


@pytest.mark.django_db
class TestMembers:
    NEW_MEMBER = {
        "username": "rahim",
        "email": "Rahim@Alpha.test",
        "password": "ledger-Lantern-42",
        "first_name": "Rahim",
        "role": "clerk",
    }

    def test_owner_adds_a_new_member_with_an_account(self, tenants, api):
        response = api(tenants.users_a["owner"], tenants.a).post(
            "/api/v1/memberships/", self.NEW_MEMBER, format="json"
        )
        assert response.status_code == 201, response.content
        assert response.json()["username"] == "rahim"
        assert "password" not in response.json()
        user = User.objects.get(username="rahim")
        assert user.check_password("ledger-Lantern-42") and user.is_staff
        assert user.email == "Rahim@alpha.test"  # the domain part is case-insensitive
        assert Membership.objects.get(user=user).company == tenants.a
        actions = AuditEvent.objects.filter(company=tenants.a).values_list("action", flat=True)
        assert {"user.created", "membership.created"} <= set(actions)

    @pytest.mark.parametrize(
        ("change", "code"),
        [
            ({"username": "A-Clerk"}, "username_taken"),
            ({"email": "A-CLERK@example.test"}, "email_taken"),
        ],
    )
    def test_taken_username_or_email_is_a_conflict(self, tenants, api, change, code):
        response = api(tenants.users_a["owner"], tenants.a).post(
            "/api/v1/memberships/", {**self.NEW_MEMBER, **change}, format="json"
        )
        assert response.status_code == 409
        assert response.json()["code"] == code
        assert not User.objects.filter(username="rahim").exists()

    def test_an_owner_cannot_pull_in_another_companys_user(self, tenants, api):
        response = api(tenants.owner_b, tenants.b).post(
            "/api/v1/memberships/",
            {**self.NEW_MEMBER, "username": "a-accountant", "email": "new@beta.test"},
            format="json",
        )
        assert response.status_code == 409
        assert list(
            Membership.objects.filter(user=tenants.users_a["accountant"]).values_list(
                "company__slug", flat=True
            )
        ) == ["alpha"]

    def test_weak_password_and_unknown_role(self, tenants, api):
        client = api(tenants.users_a["owner"], tenants.a)
        weak = client.post(
            "/api/v1/memberships/", {**self.NEW_MEMBER, "password": "12345678"}, format="json"
        )
        assert weak.status_code == 400
        assert weak.json()["code"] == "invalid" and "password" in weak.json()["fields"]
        bad_role = client.post(
            "/api/v1/memberships/", {**self.NEW_MEMBER, "role": "king"}, format="json"
        )
        assert bad_role.status_code == 400 and "role" in bad_role.json()["fields"]
        assert not User.objects.filter(username="rahim").exists()

    def test_adding_an_existing_member_again_is_a_conflict_not_a_crash(self, tenants):
        from core import services
        from core.errors import ConflictError

        with pytest.raises(ConflictError) as caught:
            services.membership_create(
                actor=None, company=tenants.a, user=tenants.users_a["clerk"], role="auditor"
            )
        assert caught.value.code == "already_member"
        assert Membership.objects.get(user=tenants.users_a["clerk"]).role == "clerk"

    def test_database_keeps_emails_unique_whatever_their_case(self, tenants):
        from django.db import IntegrityError, transaction

        with pytest.raises(IntegrityError), transaction.atomic():
            User.objects.filter(username="a-clerk").update(email="A-OWNER@EXAMPLE.TEST")

    def test_role_change_and_removal(self, tenants, api):
        client = api(tenants.users_a["owner"], tenants.a)
        clerk = Membership.objects.get(user=tenants.users_a["clerk"])
        response = client.patch(
            f"/api/v1/memberships/{clerk.pk}/", {"role": "accountant"}, format="json"
        )
        assert response.json()["role"] == "accountant"
        assert client.delete(f"/api/v1/memberships/{clerk.pk}/").status_code == 204
        assert not Membership.objects.filter(pk=clerk.pk).exists()
        assert list(
            AuditEvent.objects.filter(object_id=str(clerk.pk))
            .order_by("id")
            .values_list("action", flat=True)
        ) == ["membership.role_changed", "membership.deleted"]

    def test_the_last_owner_cannot_leave_or_be_demoted(self, tenants, api):
        client = api(tenants.users_a["owner"], tenants.a)
        owner = Membership.objects.get(user=tenants.users_a["owner"])
        demote = client.patch(f"/api/v1/memberships/{owner.pk}/", {"role": "clerk"}, format="json")
        assert demote.status_code == 409
        assert demote.json()["code"] == "last_owner"
        assert client.delete(f"/api/v1/memberships/{owner.pk}/").status_code == 409
        owner.refresh_from_db()
        assert owner.role == "owner"

        # With a second owner, the first may step down.
        accountant = Membership.objects.get(user=tenants.users_a["accountant"])
        client.patch(f"/api/v1/memberships/{accountant.pk}/", {"role": "owner"}, format="json")
        assert (
            client.patch(
                f"/api/v1/memberships/{owner.pk}/", {"role": "clerk"}, format="json"
            ).status_code
            == 200
        )


@pytest.mark.django_db
def test_owner_cannot_switch_the_company_off_and_codes_are_upper_cased(tenants, api):
    client = api(tenants.users_a["owner"], tenants.a)
    response = client.patch(
        "/api/v1/companies/alpha/",
        {"is_active": False, "country": "us", "base_currency": "usd"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["is_active"], body["country"], body["base_currency"]) == (True, "US", "USD")


@pytest.mark.django_db
def test_only_a_superuser_switches_a_company_off(tenants):
    from core import services
    from core.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        services.company_update(actor=tenants.users_a["owner"], company=tenants.a, is_active=False)
    root = User.objects.create_superuser("root", "root@example.test", "x")
    assert (
        services.company_update(actor=root, company=tenants.a, is_active=False).is_active is False
    )
