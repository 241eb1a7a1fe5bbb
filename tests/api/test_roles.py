"""The role matrix, proven through the API for every router resource and every role."""

import re
from pathlib import Path

import pytest
from rest_framework import mixins

from config.api_router import router
from core.roles import ROLE_MATRIX, Role, role_can
from tests.factories import tenant_object

README = Path(__file__).resolve().parents[2] / "README.md"


def test_auditor_writes_nothing_anywhere():
    assert all(Role.AUDITOR not in entry["write"] for entry in ROLE_MATRIX.values())
    assert all(Role.AUDITOR in entry["read"] for entry in ROLE_MATRIX.values())


def test_every_writer_can_also_read():
    for scope, entry in ROLE_MATRIX.items():
        assert entry["write"] <= entry["read"], scope


def test_readme_role_table_matches_the_code():
    """The README's role matrix is what users read; it must say what the code does."""
    text = README.read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `(\w+)` \|(.+)\|\s*$", line)
        if match and match.group(1) in ROLE_MATRIX:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    assert set(rows) == set(ROLE_MATRIX), "README role table must list every scope"
    for scope, cells in rows.items():
        for role, cell in zip(Role.values, cells, strict=True):
            expected = (
                "read, write"
                if role_can(role, scope, write=True)
                else "read"
                if role_can(role, scope, write=False)
                else "-"
            )
            assert cell == expected, (
                f"README says {role} on {scope} is {cell!r}; code: {expected!r}"
            )


CASES = [(prefix, viewset, role) for prefix, viewset, _ in router.registry for role in Role.values]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prefix", "viewset", "role"), CASES, ids=[f"{p}-{r}" for p, _, r in CASES]
)
def test_role_matrix_through_the_api(prefix, viewset, role, tenants, api):
    client = api(tenants.users_a[role], tenants.a)
    can_read = role_can(role, viewset.scope, write=False)
    can_write = role_can(role, viewset.scope, write=True)

    listed = client.get(f"/api/v1/{prefix}/")
    assert listed.status_code == (200 if can_read else 403), listed.content
    if not can_read:
        assert listed.json()["code"] == "role_forbidden"

    if issubclass(viewset, mixins.UpdateModelMixin):
        row = tenant_object(viewset.queryset.model, tenants.a)
        lookup = getattr(row, viewset.lookup_field if viewset.lookup_field != "pk" else "pk")
        response = client.patch(f"/api/v1/{prefix}/{lookup}/", {}, format="json")
        assert response.status_code == (200 if can_write else 403), response.content
    elif issubclass(viewset, mixins.CreateModelMixin) or hasattr(viewset, "create"):
        # Created but never updated (journal entries, fiscal years): a writer's empty body is
        # refused as invalid (400), anyone else is refused by role (403).
        response = client.post(f"/api/v1/{prefix}/", {}, format="json")
        assert response.status_code == (400 if can_write else 403), response.content
    else:
        # A read-only resource has no write methods: 405 for everyone, whatever the role.
        assert client.post(f"/api/v1/{prefix}/", {}, format="json").status_code == 405


@pytest.mark.django_db
def test_auditor_cannot_add_a_member(tenants, api):
    response = api(tenants.users_a["auditor"], tenants.a).post(
        "/api/v1/memberships/", {"user": "outsider", "role": "clerk"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["message"] == "The auditor role cannot change members data in alpha."


@pytest.mark.django_db
@pytest.mark.parametrize("role", Role.values)
def test_only_owners_add_and_remove_members(role, tenants, api):
    from core.models import Membership

    client = api(tenants.users_a[role], tenants.a)
    owner_may = role_can(role, "members", write=True)
    created = client.post(
        "/api/v1/memberships/",
        {
            "username": f"new-{role}",
            "email": f"new-{role}@alpha.test",
            "password": "ledger-Lantern-42",
            "role": "clerk",
        },
        format="json",
    )
    assert created.status_code == (201 if owner_may else 403), created.content
    clerk = Membership.objects.get(user=tenants.users_a["clerk"])
    removed = client.delete(f"/api/v1/memberships/{clerk.pk}/")
    assert removed.status_code == (204 if owner_may else 403)
    assert Membership.objects.filter(pk=clerk.pk).exists() is not owner_may
