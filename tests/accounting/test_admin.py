"""The ledger's admin screens, as finance staff use them: every figure here can be checked by
hand (sales 1,000.00 into the bank, rent 300.00 out of it)."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounting import services
from accounting.models import (
    Account,
    AccountingPeriod,
    AccountRole,
    CostCenter,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
)
from core.models import AuditEvent
from tests.accounting.conftest import account, post

ENTRIES = "/admin/accounting/journalentry/"
ACCOUNTS = "/admin/accounting/account/"
PERIODS = "/admin/accounting/accountingperiod/"
YEARS = "/admin/accounting/fiscalyear/"
TRIAL_BALANCE = "/admin/accounting/account/reports/trial-balance/"
GENERAL_LEDGER = "/admin/accounting/account/reports/general-ledger/"
PROFIT_AND_LOSS = "/admin/accounting/account/reports/profit-and-loss/"
BALANCE_SHEET = "/admin/accounting/account/reports/balance-sheet/"


def login(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_role(books):
    """as_role("accountant") -> a test client logged in as that member of company A."""
    return lambda role: login(books.users_a[role])


@pytest.fixture
def sale_and_rent(books):
    """Company A, FY 2025-26: a 1,000.00 cash sale and 300.00 rent paid from the bank."""
    a = books.a
    sale = post(a, "2025-08-01", ("1131", "1000.00", ""), ("4100", "", "1000.00"), memo="Sale")
    rent = post(a, "2025-08-05", ("6200", "300.00", ""), ("1131", "", "300.00"), memo="Rent")
    return sale, rent


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def entry_form(company, lines, *, day="2025-08-10", memo="Office rent August", key="key-1"):
    data = {
        "date": day,
        "memo": memo,
        "source_id": "V-17",
        "key": key,
        "lines-TOTAL_FORMS": str(len(lines) + 1),  # plus one row left empty, as on the page
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "500",
    }
    for index, (code, debit, credit) in enumerate(lines):
        data[f"lines-{index}-account"] = str(account(company, code).pk)
        data[f"lines-{index}-debit"] = debit
        data[f"lines-{index}-credit"] = credit
    return data


def action(client, url, name, objects, **extra):
    data = {"action": name, "_selected_action": [str(obj.pk) for obj in objects], **extra}
    return client.post(url, data, follow=True)


# --- screens load, for every role that may read the books ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "accountant", "auditor", "clerk"])
def test_every_ledger_screen_loads_for_members(as_role, sale_and_rent, role):
    client = as_role(role)
    sale, _rent = sale_and_rent
    pages = [
        "/admin/",
        "/admin/accounting/",
        ACCOUNTS,
        "/admin/accounting/accountrole/",
        "/admin/accounting/costcenter/",
        "/admin/accounting/project/",
        "/admin/accounting/department/",
        YEARS,
        PERIODS,
        ENTRIES,
        f"{ENTRIES}{sale.pk}/change/",
        f"{ACCOUNTS}{account(sale.company, '1131').pk}/change/",
        f"{YEARS}{sale.fiscal_year_id}/change/",
        TRIAL_BALANCE,
        f"{GENERAL_LEDGER}?account={account(sale.company, '1131').pk}",
        PROFIT_AND_LOSS,
        BALANCE_SHEET,
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
    dashboard = client.get("/admin/")
    titles = [panel["title"] for panel in dashboard.context["panels"]]
    assert {"Ledger reports", "Accounting periods", "Latest journal entries"} <= set(titles)
    assert sale.reference in dashboard.content.decode()


@pytest.mark.django_db
def test_journal_entry_list_takes_the_same_few_queries_however_many_entries(
    as_role, books, django_assert_max_num_queries
):
    client = as_role("accountant")
    for day in range(1, 3):
        post(books.a, f"2025-08-{day:02d}", ("1131", "10.00", ""), ("4100", "", "10.00"))
    with CaptureQueriesContext(connection) as few:
        assert client.get(ENTRIES).status_code == 200
    for day in range(3, 28):
        post(books.a, f"2025-08-{day:02d}", ("1131", "10.00", ""), ("4100", "", "10.00"))
    with django_assert_max_num_queries(25):
        response = client.get(ENTRIES, {"status__exact": "posted"})
    assert len(response.context["cl"].result_list) == 27
    with CaptureQueriesContext(connection) as many:
        client.get(ENTRIES)
    assert len(many) == len(few)


@pytest.mark.django_db
def test_journal_entries_are_found_by_their_reference(as_role, sale_and_rent):
    sale, rent = sale_and_rent
    client = as_role("auditor")
    found = client.get(ENTRIES, {"q": rent.reference}).context["cl"].result_list
    assert list(found) == [rent]
    by_memo = client.get(ENTRIES, {"q": "sale"}).context["cl"].result_list
    assert list(by_memo) == [sale]


# --- posting a manual entry ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_manual_entry_is_posted_whole_from_the_add_page(as_role, books):
    client = as_role("accountant")
    page = client.get(f"{ENTRIES}add/")
    assert page.status_code == 200
    assert "Post entry" in page.content.decode()
    data = entry_form(books.a, [("6200", "300.00", ""), ("1131", "", "300.00")])
    response = client.post(f"{ENTRIES}add/", data, follow=True)
    entry = JournalEntry.objects.get(company=books.a)
    assert response.redirect_chain[-1][0] == f"{ENTRIES}{entry.pk}/change/"
    assert messages_of(response) == [f"Posted {entry.reference} on 2025-08-10: total 300.00."]
    assert entry.total == Decimal("300.00")
    assert (entry.memo, entry.source_type, entry.source_id) == (
        "Office rent August",
        "manual",
        "V-17",
    )
    assert entry.posted_by == books.users_a["accountant"]
    lines = [(line.account.code, line.debit, line.credit) for line in entry.lines.all()]
    assert lines == [
        ("6200", Decimal("300.00"), Decimal("0.00")),
        ("1131", Decimal("0.00"), Decimal("300.00")),
    ]
    # The same form sent twice (a double click) posts nothing more.
    client.post(f"{ENTRIES}add/", data)
    assert JournalEntry.objects.filter(company=books.a).count() == 1


@pytest.mark.django_db
def test_an_unbalanced_entry_shows_the_difference_and_posts_nothing(as_role, books):
    client = as_role("accountant")
    data = entry_form(books.a, [("6200", "300.00", ""), ("1131", "", "250.00")])
    response = client.post(f"{ENTRIES}add/", data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "debits exceed credits by 50.00" in page
    assert "Nothing was posted." in page
    assert 'value="300.00"' in page  # what was typed is still there
    assert not JournalEntry.objects.exists()
    assert not JournalLine.objects.exists()


@pytest.mark.django_db
def test_a_line_with_both_sides_is_refused_by_the_form(as_role, books):
    client = as_role("owner")
    data = entry_form(books.a, [("6200", "300.00", "300.00"), ("1131", "", "300.00")])
    response = client.post(f"{ENTRIES}add/", data)
    assert "Enter a debit or a credit, not both." in response.content.decode()
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db
def test_posting_into_a_locked_period_is_refused_with_the_ledgers_reason(as_role, books):
    period = AccountingPeriod.objects.get(company=books.a, start_date=date(2025, 8, 1))
    services.period_lock(actor=None, period=period)
    client = as_role("accountant")
    data = entry_form(books.a, [("6200", "300.00", ""), ("1131", "", "300.00")])
    response = client.post(f"{ENTRIES}add/", data)
    assert "is locked; nothing can be posted on 2025-08-10" in response.content.decode()
    assert not JournalEntry.objects.exists()


# --- posted entries are read-only; corrections are reversals ---------------------------------


@pytest.mark.django_db
def test_a_posted_entry_is_read_only_and_cannot_be_deleted(as_role, sale_and_rent):
    sale, _rent = sale_and_rent
    client = as_role("owner")
    page = client.get(f"{ENTRIES}{sale.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="_save"' not in html
    form = html.split('id="journalentry_form"')[1].split("</form>")[0]
    assert "<select" not in form and "<textarea" not in form and 'type="text"' not in form
    assert "1131 Main operating bank account" in html and "1,000.00" in html
    assert sale.entry_hash in html
    assert "Reverse…" in html
    assert client.post(f"{ENTRIES}{sale.pk}/change/", {"memo": "edited"}).status_code == 403
    assert client.post(f"{ENTRIES}{sale.pk}/delete/", {"post": "yes"}).status_code == 403
    sale.refresh_from_db()
    assert sale.memo == "Sale"
    listing = client.get(ENTRIES)
    assert (
        "delete_selected" not in listing.context["action_form"].fields["action"].choices.__repr__()
    )


@pytest.mark.django_db
def test_reversing_an_entry_asks_for_a_date_and_a_reason(as_role, sale_and_rent):
    sale, _rent = sale_and_rent
    client = as_role("accountant")
    url = f"{ENTRIES}{sale.pk}/reverse/"
    assert client.get(url).status_code == 200

    no_reason = client.post(url, {"date": "2025-08-20", "reason": "  "})
    assert "Say why the entry is reversed." in no_reason.content.decode()
    too_early = client.post(url, {"date": "2025-07-20", "reason": "Wrong customer"})
    assert "its reversal cannot be earlier" in too_early.content.decode()
    assert not JournalEntry.objects.filter(reversal_of=sale).exists()

    done = client.post(url, {"date": "2025-08-20", "reason": "Wrong customer"}, follow=True)
    reversal = JournalEntry.objects.get(reversal_of=sale)
    assert messages_of(done) == [
        f"{sale.reference} reversed by {reversal.reference} dated 2025-08-20."
    ]
    sale.refresh_from_db()
    assert sale.status == EntryStatus.REVERSED
    assert reversal.reversal_reason == "Wrong customer"
    assert reversal.total == Decimal("1000.00")
    detail = client.get(f"{ENTRIES}{sale.pk}/change/").content.decode()
    assert reversal.reference in detail and "Reverse…" not in detail


@pytest.mark.django_db
def test_the_reverse_action_reverses_each_selected_entry(as_role, sale_and_rent):
    sale, rent = sale_and_rent
    client = as_role("owner")
    ask = action(client, ENTRIES, "reverse_entries", [sale, rent])
    assert "Reversal date" in ask.content.decode()
    assert not JournalEntry.objects.filter(reversal_of__isnull=False).exists()

    done = action(
        client,
        ENTRIES,
        "reverse_entries",
        [sale, rent],
        apply="yes",
        date="2025-08-31",
        reason="Posted to the wrong company",
    )
    reversals = {
        e.reversal_of_id: e for e in JournalEntry.objects.filter(reversal_of__isnull=False)
    }
    assert set(reversals) == {sale.pk, rent.pk}
    assert messages_of(done) == [
        f"{sale.reference} reversed by {reversals[sale.pk].reference} dated 2025-08-31.",
        f"{rent.reference} reversed by {reversals[rent.pk].reference} dated 2025-08-31.",
    ]
    assert set(
        JournalEntry.objects.filter(pk__in=[sale.pk, rent.pk]).values_list("status", flat=True)
    ) == {EntryStatus.REVERSED}

    again = action(
        client, ENTRIES, "reverse_entries", [sale], apply="yes", date="2025-08-31", reason="x"
    )
    assert f"{sale.reference} is already reversed." in again.content.decode()
    assert JournalEntry.objects.filter(reversal_of__isnull=False).count() == 2


# --- periods and fiscal years ----------------------------------------------------------------


@pytest.mark.django_db
def test_period_actions_lock_close_and_reopen_and_say_what_they_refused(as_role, books):
    months = list(
        AccountingPeriod.objects.filter(company=books.a, fiscal_year__name="2025-26").order_by(
            "start_date"
        )[:3]
    )
    accountant = as_role("accountant")
    locked = action(accountant, PERIODS, "lock_periods", months)
    assert messages_of(locked) == ["3 periods locked."]
    assert {p.status for p in AccountingPeriod.objects.filter(pk__in=[m.pk for m in months])} == {
        "locked"
    }

    # August cannot close while July is open... but selected together they close in order.
    closed = action(accountant, PERIODS, "close_periods", months[:2])
    assert messages_of(closed) == ["2 periods closed."]
    refused = action(accountant, PERIODS, "close_periods", [months[2], months[0]])
    assert messages_of(refused) == ["1 period closed.", "1 period was already closed."]

    reopen = action(accountant, PERIODS, "reopen_periods", [months[2]])
    assert messages_of(reopen) == [
        "2025-09 (2025-26 P03): Only an owner may reopen a closed period."
    ]
    assert AccountingPeriod.objects.get(pk=months[2].pk).status == "closed"

    out_of_order = action(as_role("owner"), PERIODS, "reopen_periods", [months[0]])
    assert messages_of(out_of_order) == [
        "2025-07 (2025-26 P01): Reopen 2025-09 (2025-26 P03) first: closed periods reopen "
        "from the latest back."
    ]
    reopened = action(as_role("owner"), PERIODS, "reopen_periods", months)
    assert messages_of(reopened) == ["3 periods reopened."]
    assert {p.status for p in AccountingPeriod.objects.filter(pk__in=[m.pk for m in months])} == {
        "open"
    }


@pytest.mark.django_db
def test_periods_cannot_be_added_edited_or_deleted_by_hand(as_role, books):
    client = as_role("owner")
    period = AccountingPeriod.objects.filter(company=books.a).first()
    assert client.get(f"{PERIODS}add/").status_code == 403
    assert client.post(f"{PERIODS}{period.pk}/change/", {"status": "closed"}).status_code == 403
    assert client.post(f"{PERIODS}{period.pk}/delete/", {"post": "yes"}).status_code == 403
    auditor = as_role("auditor")
    page = auditor.get(PERIODS)
    assert page.status_code == 200
    assert "lock_periods" not in page.content.decode()
    refused = action(auditor, PERIODS, "lock_periods", [period])
    period.refresh_from_db()
    assert period.status == "open"
    assert messages_of(refused) == []  # an auditor is offered no actions at all


@pytest.mark.django_db
def test_closing_a_fiscal_year_confirms_then_reports_the_closing_entry(as_role, sale_and_rent):
    sale, _rent = sale_and_rent
    year = sale.fiscal_year
    client = as_role("owner")
    ask = action(client, YEARS, "close_fiscal_years", [year])
    page = ask.content.decode()
    assert "net profit 700.00" in page
    assert FiscalYear.objects.get(pk=year.pk).status == "open"

    done = action(client, YEARS, "close_fiscal_years", [year], confirm="yes")
    year.refresh_from_db()
    assert year.status == "closed"
    closing = JournalEntry.objects.get(pk=year.closing_entry_id)
    assert messages_of(done) == [
        f"FY 2025-26 closed: closing entry {closing.reference} moved the net profit of 700.00 "
        "to retained earnings; its periods are closed."
    ]
    assert not AccountingPeriod.objects.filter(fiscal_year=year).exclude(status="closed").exists()

    again = action(client, YEARS, "close_fiscal_years", [year], confirm="yes")
    assert messages_of(again) == ["FY 2025-26: FY 2025-26 is already closed."]


@pytest.mark.django_db
def test_fiscal_years_are_opened_from_a_date_or_from_the_year_before(as_role, books):
    client = as_role("accountant")
    existing = client.post(f"{YEARS}add/", {"company": books.a.pk, "containing": "2026-03-01"})
    assert "FY 2025-26 (2025-07-01 to 2026-06-30) is already open" in existing.content.decode()

    added = client.post(
        f"{YEARS}add/", {"company": books.a.pk, "containing": "2027-09-15"}, follow=True
    )
    year = FiscalYear.objects.get(company=books.a, name="2027-28")
    assert (year.start_date, year.end_date) == (date(2027, 7, 1), date(2028, 6, 30))
    assert year.periods.count() == 12
    assert any("2027-28" in message for message in messages_of(added))

    next_year = action(client, YEARS, "open_next_fiscal_years", [year])
    assert messages_of(next_year) == [
        "Opened FY 2028-29 (2028-07-01 to 2029-06-30) with its monthly periods."
    ]
    twice = action(client, YEARS, "open_next_fiscal_years", [year])
    assert messages_of(twice) == ["FY 2028-29 already follows FY 2027-28."]


# --- chart of accounts, roles and dimensions -------------------------------------------------


@pytest.mark.django_db
def test_the_chart_of_accounts_is_listed_as_a_tree(as_role, books):
    page = as_role("auditor").get(ACCOUNTS)
    rows = {a.code: a for a in page.context["cl"].result_list}
    assert (rows["1000"].depth, rows["1100"].depth, rows["1130"].depth, rows["1131"].depth) == (
        0,
        1,
        2,
        3,
    )
    html = page.content.decode()
    assert '<strong style="padding-left:0.0em">Assets</strong>' in html
    assert '<span style="padding-left:4.5em">Main operating bank account</span>' in html


def account_form(obj, **changes):
    data = {
        "code": obj.code,
        "name": obj.name,
        "type": obj.type,
        "parent": obj.parent_id or "",
        "is_postable": "on" if obj.is_postable else "",
        "is_active": "on" if obj.is_active else "",
        "description": obj.description,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
def test_accounts_are_added_and_changed_through_the_services(as_role, books):
    client = as_role("accountant")
    parent = account(books.a, "6000")
    added = client.post(
        f"{ACCOUNTS}add/",
        {
            "company": books.a.pk,
            "code": "6250",
            "name": "Warehouse rent",
            "type": "expense",
            "parent": parent.pk,
            "is_postable": "on",
            "is_active": "on",
        },
    )
    assert added.status_code == 302
    new = Account.objects.get(company=books.a, code="6250")
    assert AuditEvent.objects.filter(action="account.created", object_id=str(new.pk)).exists()

    renamed = client.post(f"{ACCOUNTS}{new.pk}/change/", account_form(new, name="Godown rent"))
    assert renamed.status_code == 302
    new.refresh_from_db()
    assert new.name == "Godown rent"


@pytest.mark.django_db
def test_a_change_the_ledger_refuses_comes_back_with_its_reason(as_role, sale_and_rent):
    bank = account(sale_and_rent[0].company, "1131")
    client = as_role("accountant")
    response = client.post(
        f"{ACCOUNTS}{bank.pk}/change/",
        account_form(bank, type="liability", parent="", name="Renamed too"),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "1131 Main operating bank account has postings; its type cannot change." in html
    assert 'value="Renamed too"' in html  # the form comes back as it was sent
    assert "was changed successfully" not in html
    bank.refresh_from_db()
    assert (bank.type, bank.name) == ("asset", "Main operating bank account")
    assert not AuditEvent.objects.filter(action="account.updated").exists()


@pytest.mark.django_db
def test_a_new_account_under_a_parent_of_another_type_is_refused_on_the_form(as_role, books):
    client = as_role("owner")
    response = client.post(
        f"{ACCOUNTS}add/",
        {
            "company": books.a.pk,
            "code": "1999",
            "name": "Suspense",
            "type": "asset",
            "parent": account(books.a, "6000").pk,
            "is_postable": "on",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["parent"] == ["Must be of the same type."]
    assert "an account sits under a parent of its own type" in form.non_field_errors()[0]
    assert not Account.objects.filter(company=books.a, code="1999").exists()


@pytest.mark.django_db(transaction=True)
def test_a_refusal_after_the_service_wrote_rolls_the_write_back(tenants, monkeypatch):
    """A service that writes, then refuses (a check that fails late): the form comes back with
    the message and the half-done write is gone."""
    from core.errors import ConflictError

    services.company_ledger_setup(company=tenants.a)
    real_update = services.account_update

    def update_then_refuse(**kwargs):
        real_update(**kwargs)
        raise ConflictError("The ledger changed meanwhile; try again.", code="conflict")

    monkeypatch.setattr(services, "account_update", update_then_refuse)
    rent = account(tenants.a, "6200")
    client = login(tenants.users_a["accountant"])
    response = client.post(f"{ACCOUNTS}{rent.pk}/change/", account_form(rent, name="Lease"))
    assert response.status_code == 200
    assert "The ledger changed meanwhile; try again." in response.content.decode()
    rent.refresh_from_db()
    assert rent.name == "Rent"
    assert not AuditEvent.objects.filter(action="account.updated").exists()


@pytest.mark.django_db
def test_only_unused_accounts_can_be_deleted(as_role, sale_and_rent):
    company = sale_and_rent[0].company
    client = as_role("owner")
    bank = account(company, "1131")
    confirm = client.get(f"{ACCOUNTS}{bank.pk}/delete/")
    assert confirm.status_code == 200
    refused = client.post(f"{ACCOUNTS}{bank.pk}/delete/", {"post": "yes"}, follow=True)
    assert messages_of(refused) == [
        "1131 Main operating bank account has postings and cannot be deleted; deactivate it "
        "instead."
    ]
    assert Account.objects.filter(pk=bank.pk).exists()

    unused = account(company, "6800")
    client.post(f"{ACCOUNTS}{unused.pk}/delete/", {"post": "yes"})
    assert not Account.objects.filter(pk=unused.pk).exists()
    assert AuditEvent.objects.filter(action="account.deleted").count() == 1


@pytest.mark.django_db
def test_deactivating_accounts_reports_what_it_did_and_refused(as_role, books):
    client = as_role("accountant")
    supplies, bank = account(books.a, "6400"), account(books.a, "1131")
    response = action(client, ACCOUNTS, "deactivate_accounts", [supplies, bank])
    assert messages_of(response) == [
        "1131 Main operating bank account: 1131 Main operating bank account is mapped to Main "
        "bank account; map the role to another account first.",
        "1 account deactivated.",
    ]
    supplies.refresh_from_db()
    bank.refresh_from_db()
    assert (supplies.is_active, bank.is_active) == (False, True)


@pytest.mark.django_db
def test_an_account_role_is_remapped_through_the_service(as_role, books):
    client = as_role("owner")
    mapping = AccountRole.objects.get(company=books.a, role="bank_fees")
    other = account(books.a, "6900")
    response = client.post(
        f"/admin/accounting/accountrole/{mapping.pk}/change/", {"account": other.pk}
    )
    assert response.status_code == 302
    mapping.refresh_from_db()
    assert mapping.account == other
    assert AuditEvent.objects.filter(action="account_role.set").exists()

    header = account(books.a, "6000")
    refused = client.post(
        f"/admin/accounting/accountrole/{mapping.pk}/change/", {"account": header.pk}
    )
    assert refused.status_code == 200  # a header account is not even offered
    mapping.refresh_from_db()
    assert mapping.account == other


@pytest.mark.django_db
def test_cost_centres_are_added_and_deactivated_never_deleted(as_role, books):
    client = as_role("accountant")
    url = "/admin/accounting/costcenter/"
    added = client.post(
        f"{url}add/", {"company": books.a.pk, "code": "DHK", "name": "Dhaka", "is_active": "on"}
    )
    assert added.status_code == 302
    centre = CostCenter.objects.get(company=books.a, code="DHK")
    duplicate = client.post(
        f"{url}add/", {"company": books.a.pk, "code": "DHK", "name": "Again", "is_active": "on"}
    )
    assert duplicate.status_code == 200
    assert CostCenter.objects.filter(company=books.a).count() == 1
    done = action(client, url, "deactivate_dimensions", [centre])
    assert messages_of(done) == ["1 cost center deactivated."]
    centre.refresh_from_db()
    assert not centre.is_active
    assert client.post(f"{url}{centre.pk}/delete/", {"post": "yes"}).status_code == 403


# --- reports ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_trial_balance_shows_the_figures_and_exports_them(as_role, sale_and_rent):
    client = as_role("accountant")
    params = {"date_from": "2025-07-01", "date_to": "2025-08-31"}
    page = client.get(TRIAL_BALANCE, params)
    assert page.status_code == 200
    rows = {row["code"]: row["amounts"] for row in page.context["layout"]["rows"]}
    # opening dr/cr, movement dr/cr, closing dr/cr
    assert rows["1131"] == ["", "", "1,000.00", "300.00", "700.00", ""]
    assert rows["4100"] == ["", "", "", "1,000.00", "", "1,000.00"]
    assert rows["6200"] == ["", "", "300.00", "", "300.00", ""]
    assert page.context["layout"]["totals"] == [
        "0.00",
        "0.00",
        "1,300.00",
        "1,300.00",
        "1,000.00",
        "1,000.00",
    ]
    assert "Balanced" in page.content.decode()

    export = client.get(TRIAL_BALANCE, {**params, "export": "csv"})
    assert export["Content-Type"].startswith("text/csv")
    assert export["Content-Disposition"] == (
        'attachment; filename="alpha-trial-balance-2025-08-31.csv"'
    )
    lines = list(csv.reader(io.StringIO(export.content.decode())))
    assert [
        "4100",
        "Sales revenue",
        "income",
        "0.00",
        "0.00",
        "0.00",
        "1000.00",
        "0.00",
        "1000.00",
    ] in lines
    assert ["6200", "Rent", "expense", "0.00", "0.00", "300.00", "0.00", "300.00", "0.00"] in lines
    assert lines[-1] == [
        "",
        "Total",
        "",
        "0.00",
        "0.00",
        "1300.00",
        "1300.00",
        "1000.00",
        "1000.00",
    ]


@pytest.mark.django_db
def test_trial_balance_by_periods_and_cost_centre(as_role, books):
    centre = services.dimension_create(
        actor=None, company=books.a, model=CostCenter, code="CTG", name="Chittagong"
    )
    post(
        books.a,
        "2025-08-01",
        ("6200", "300.00", "", {"cost_center": centre.pk}),
        ("1131", "", "300.00"),
    )
    post(books.a, "2025-09-01", ("6200", "50.00", ""), ("1131", "", "50.00"))
    august = AccountingPeriod.objects.get(company=books.a, start_date=date(2025, 8, 1))
    september = AccountingPeriod.objects.get(company=books.a, start_date=date(2025, 9, 1))
    client = as_role("auditor")
    by_period = client.get(TRIAL_BALANCE, {"period_from": august.pk, "period_to": september.pk})
    rows = {row["code"]: row["amounts"] for row in by_period.context["layout"]["rows"]}
    assert rows["6200"][2] == "350.00"
    by_centre = client.get(
        TRIAL_BALANCE, {"date_from": "", "date_to": "2025-09-30", "cost_center": centre.pk}
    )
    rows = {row["code"]: row["amounts"] for row in by_centre.context["layout"]["rows"]}
    assert set(rows) == {"6200"}
    assert rows["6200"][2] == "300.00"
    backwards = client.get(TRIAL_BALANCE, {"period_from": september.pk, "period_to": august.pk})
    assert "after it ends" in backwards.content.decode()
    assert backwards.context["report"] is None


@pytest.mark.django_db
def test_general_ledger_profit_and_loss_and_balance_sheet(as_role, sale_and_rent):
    company = sale_and_rent[0].company
    client = as_role("auditor")
    ledger = client.get(
        GENERAL_LEDGER,
        {
            "account": account(company, "1131").pk,
            "date_from": "2025-07-01",
            "date_to": "2025-08-31",
        },
    )
    balances = [row["balance"] for row in ledger.context["layout"]["rows"]]
    assert balances == ["1,000.00 Dr", "700.00 Dr"]
    assert ledger.context["layout"]["closing"] == "700.00 Dr"

    pnl = client.get(PROFIT_AND_LOSS, {"date_from": "2025-07-01", "date_to": "2026-06-30"})
    assert pnl.context["layout"]["total_income"] == "1,000.00"
    assert pnl.context["layout"]["total_expenses"] == "300.00"
    assert (pnl.context["layout"]["net_label"], pnl.context["layout"]["net"]) == (
        "Net profit",
        "700.00",
    )

    sheet = client.get(BALANCE_SHEET, {"as_of": "2025-08-31"})
    layout = sheet.context["layout"]
    assert (layout["total_assets"], layout["current_year_earnings"]) == ("700.00", "700.00")
    assert layout["prior_years_unclosed_earnings"] == "0.00"
    assert layout["total_liabilities_and_equity"] == "700.00"
    assert layout["balanced"] is True
    assert "Current year earnings" in sheet.content.decode()
    next_year = client.get(BALANCE_SHEET, {"as_of": "2026-08-31"}).context["layout"]
    assert next_year["prior_years_unclosed_earnings"] == "700.00"
    assert next_year["current_year_earnings"] == "0.00"
    assert client.get(BALANCE_SHEET, {"as_of": "2025-08-31", "export": "csv"})[
        "Content-Type"
    ].startswith("text/csv")


# --- roles and tenancy ---------------------------------------------------------------------


@pytest.mark.django_db
def test_auditor_reads_everything_but_posts_nothing(as_role, sale_and_rent):
    sale, _rent = sale_and_rent
    client = as_role("auditor")
    assert client.get(f"{ENTRIES}add/").status_code == 403
    data = entry_form(sale.company, [("6200", "1.00", ""), ("1131", "", "1.00")])
    assert client.post(f"{ENTRIES}add/", data).status_code == 403
    assert client.get(f"{ENTRIES}{sale.pk}/reverse/").status_code == 403
    detail = client.get(f"{ENTRIES}{sale.pk}/change/").content.decode()
    assert "Reverse…" not in detail
    listing = client.get(ENTRIES).content.decode()
    assert "Post manual entry" not in listing
    assert "reverse_entries" not in listing
    assert client.get(TRIAL_BALANCE).status_code == 200
    assert JournalEntry.objects.count() == 2


@pytest.mark.django_db
def test_another_companys_books_stay_invisible(books, sale_and_rent):
    sale, _rent = sale_and_rent
    post(books.b, "2026-02-01", ("1131", "5.00", ""), ("4100", "", "5.00"), memo="Beta sale")
    client = login(books.owner_b)
    entries = client.get(ENTRIES).context["cl"].result_list
    assert {entry.company_id for entry in entries} == {books.b.pk}
    assert client.get(f"{ENTRIES}{sale.pk}/change/").status_code in (302, 404)
    assert client.get(f"{ENTRIES}{sale.pk}/reverse/").status_code == 404
    accounts = client.get(ACCOUNTS).context["cl"].result_list
    assert {a.company_id for a in accounts} == {books.b.pk}
    assert client.get(TRIAL_BALANCE, {"company": books.a.pk}).status_code == 404
    own = client.get(TRIAL_BALANCE, {"date_from": "2026-01-01", "date_to": "2026-12-31"})
    assert own.context["company"] == books.b
    assert "Alpha Traders" not in own.content.decode()
    assert "Alpha Traders" not in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_a_member_of_two_companies_picks_one(books, sale_and_rent):
    from tests.factories import MembershipFactory

    owner = books.users_a["owner"]
    MembershipFactory(user=owner, company=books.b, role="auditor")
    client = login(owner)
    page = client.get(TRIAL_BALANCE, {"company": books.b.pk})
    assert page.context["company"] == books.b
    assert 'name="company"' in page.content.decode()
    listing = client.get(ENTRIES)
    assert "company" in listing.context["cl"].list_display
    post_page = client.get(f"{ENTRIES}add/")
    assert post_page.context["company"] == books.a  # only A may be posted to
    assert [c.pk for c in post_page.context["companies"]] == [books.a.pk]
