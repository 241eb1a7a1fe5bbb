"""Relations cannot cross companies: serializer fields and admin choices hold one company's rows."""

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from rest_framework import serializers

from core.models import Company, Membership
from core.tenancy import scope_serializer_relations


class Inner(serializers.Serializer):
    company = serializers.PrimaryKeyRelatedField(queryset=Company.objects.all())


class Links(serializers.Serializer):
    membership = serializers.PrimaryKeyRelatedField(queryset=Membership.objects.all())
    memberships = serializers.PrimaryKeyRelatedField(queryset=Membership.objects.all(), many=True)
    inner = Inner()


@pytest.mark.django_db
def test_serializer_relations_accept_only_the_companys_rows(tenants):
    mine = Membership.objects.get(user=tenants.users_a["clerk"])
    theirs = Membership.objects.get(user=tenants.owner_b)

    good = Links(
        data={"membership": mine.pk, "memberships": [mine.pk], "inner": {"company": tenants.a.pk}}
    )
    scope_serializer_relations(good, tenants.a)
    assert good.is_valid(), good.errors

    bad = Links(
        data={
            "membership": theirs.pk,
            "memberships": [mine.pk, theirs.pk],
            "inner": {"company": tenants.b.pk},
        }
    )
    scope_serializer_relations(bad, tenants.a)
    assert not bad.is_valid()
    assert bad.errors["membership"][0].code == "does_not_exist"
    assert bad.errors["memberships"][0].code == "does_not_exist"
    assert bad.errors["inner"]["company"][0].code == "does_not_exist"


@pytest.mark.django_db
def test_admin_choices_hold_only_companies_the_user_may_write(tenants):
    owner = tenants.users_a["owner"]
    owner.is_staff = True
    request = RequestFactory().get("/admin/")
    request.user = owner
    membership_admin = site._registry[Membership]
    field = membership_admin.formfield_for_foreignkey(
        Membership._meta.get_field("company"), request
    )
    assert list(field.queryset) == [tenants.a]
    request.user = tenants.users_a["accountant"]  # may not write members anywhere
    field = membership_admin.formfield_for_foreignkey(
        Membership._meta.get_field("company"), request
    )
    assert list(field.queryset) == []
