"""End-to-end tests: Debian's Chromium, driven by Playwright, against pytest-django's live server.

Every test is `e2e`: without Chromium (or the playwright package) it skips locally and fails
under CI=true, like the `postgres` and `redis` markers in tests/conftest.py. The browser is the
system's (E2E_CHROMIUM, default /usr/bin/chromium); `playwright install` is never needed.

Screenshots land in $E2E_ARTIFACTS_DIR (default var/e2e-artifacts/): each test saves its steps
as `<test>-<nn>-<step>.png` and a last `<test>-zz-end.png` (`-zz-FAILED.png` when it failed),
so a failure keeps the page it stopped on.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from core.roles import Role
from tests.conftest import IN_CI
from tests.factories import CompanyFactory, MembershipFactory, UserFactory, ledger_ready

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pass-Word-123"  # tests.factories.UserFactory's
TIMEOUT_MS = 20_000


def artifacts_dir() -> Path:
    return Path(os.environ.get("E2E_ARTIFACTS_DIR") or settings.BASE_DIR / "var" / "e2e-artifacts")


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package (requirements/local.txt)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("e2e") is None:
        return
    missing = _missing()
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but this browser test needs {missing}", pytrace=False)
        pytest.skip(f"needs {missing}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.e2e_failed = report.failed
    return report


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the e2e tests (they run one after the other: pytest-django puts the
    transactional tests last, in file order)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django refuses ORM calls while
    # one exists unless told that this (test) process knows what it does. Only while the
    # browser is up, so that later tests and the processes they start do not inherit it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:  # even when Chromium fails to start or to close
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _celery_eager():
    """The admin's Run now queues the payroll with .delay(): in these tests the live server's
    thread runs it on the spot (after the request's commit), as a worker would."""
    from config.celery_app import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


class Shots:
    """Numbered screenshots of one test's steps."""

    def __init__(self, page, test_name: str):
        self.page = page
        self.prefix = re.sub(r"[^\w.-]+", "_", test_name)
        self.count = 0
        self.folder = artifacts_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(f"{self.prefix}-*.png"):
            old.unlink()

    def __call__(self, step: str, page=None) -> Path:
        self.count += 1
        path = self.folder / f"{self.prefix}-{self.count:02d}-{step}.png"
        (page or self.page).screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1400, "height": 900},
        timezone_id="Asia/Dhaka",  # where the `office` company's people sit (its time zone)
    )
    context.set_default_timeout(TIMEOUT_MS)
    # the admin's navigation sidebar folded, so screenshots show the page's own content
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    tab = context.new_page()
    tab.shots = Shots(tab, request.node.name)
    yield tab
    failed = getattr(request.node, "e2e_failed", True)
    try:
        for n, open_page in enumerate(context.pages):
            suffix = "" if n == 0 else f"-tab{n}"
            open_page.screenshot(
                path=str(
                    tab.shots.folder
                    / f"{tab.shots.prefix}-zz-{'FAILED' if failed else 'end'}{suffix}.png"
                ),
                full_page=True,
            )
    finally:
        context.close()


@dataclass
class Office:
    company: object
    owner: object
    password: str = PASSWORD


@pytest.fixture
def office(transactional_db) -> Office:
    """One company (Bangladesh, fiscal year July-June) with its chart, the current fiscal year
    and VAT rates, and its owner: a staff user who logs in to the admin with `PASSWORD`.

    Transactional tests flush the database after themselves, migrations' seed data included,
    so the statutory payroll tables are loaded again (idempotent)."""
    from django.apps import apps

    from invoicing import services as invoicing_services
    from payroll.reference_data import reference_data_load

    reference_data_load(apps)
    company = CompanyFactory(name="Padma Traders", slug="padma")
    owner = UserFactory(username="e2e-owner", first_name="Rahima", is_staff=True)
    MembershipFactory(user=owner, company=company, role=Role.OWNER)
    ledger_ready(company)
    invoicing_services.vat_rates_seed(company=company)
    return Office(company=company, owner=owner)


def expect(target):
    """playwright's expect() (auto-waiting assertions), imported late: without the playwright
    package these modules must still import, so that their tests skip (or fail under CI)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def login(page, username: str, password: str = PASSWORD) -> None:
    """Through the admin's login form, as a person would."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def messages_text(page, containing: str) -> str:
    """The admin's success/error messages on the page, as one string, once they contain
    `containing`: expect() retries until the page after the click shows it, so the previous
    page's messages are never the ones read (and a missing message fails with what was shown)."""
    expect(page.locator("ul.messagelist")).to_contain_text(containing)
    return " ".join(page.locator("ul.messagelist li").all_inner_texts())
