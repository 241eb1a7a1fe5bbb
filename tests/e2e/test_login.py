"""Logging in to the admin through its form, as a person does."""

import re

import pytest

from tests.e2e.conftest import expect, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_login_with_a_wrong_password_shows_the_error_then_the_right_one_lets_in(page, office):
    login(page, office.owner.username, "not-the-password")
    assert "/admin/login/" in page.url
    error = page.locator(".errornote").inner_text()
    assert "Please enter the correct username and password for a staff account" in error
    page.shots("wrong-password")

    login(page, office.owner.username, office.password)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME")
    assert "RAHIMA" in page.locator("#user-tools").inner_text().upper()
    assert page.title() == "Dashboard | Kontor back office"
    page.shots("dashboard")
