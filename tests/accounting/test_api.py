"""The ledger's REST API, with figures an accountant can check by hand.

Company A ("alpha") keeps its books July to June in BDT; entries below are dated in its fiscal
year 2025-26, so the first one is JE/2025-26/000001.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounting import services
from accounting.models import (
    Account,
    AccountBalance,
    AccountingPeriod,
    AccountRole,
    CostCenter,
    FiscalYear,
    JournalEntry,
    PeriodStatus,
)
from tests.accounting.conftest import account, post

API = "/api/v1/accounting"
ENTRIES = f"{API}/journal-entries/"
REPORTS = f"{API}/reports"


def line(code, debit=None, credit=None, **extra) -> dict:
    found = {"account_code": code, **extra}
    if debit is not None:
        found["debit"] = debit
    if credit is not None:
        found["credit"] = credit
    return found


def cash_sale(day="2025-08-05", amount="1000.00", **extra) -> dict:
    return {
        "date": day,
        "memo": "Cash sale",
        "lines": [line("1110", debit=amount), line("4100", credit=amount)],
        **extra,
    }


def period_of(company, day: str) -> AccountingPeriod:
    return AccountingPeriod.objects.get(company=company, start_date__lte=day, end_date__gte=day)


@pytest.fixture
def accountant(books, api):
    return api(books.users_a["accountant"], books.a)


@pytest.fixture
def owner(books, api):
    return api(books.users_a["owner"], books.a)


# --- posting -----------------------------------------------------------------------------------


def test_posted_entry_reads_back_with_reference_and_lines(accountant):
    created = accountant.post(ENTRIES, cash_sale(), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["reference"] == "JE/2025-26/000001"
    assert (body["date"], body["total"], body["status"]) == ("2025-08-05", "1000.00", "posted")
    assert body["posted_by_label"] == "a-accountant"
    assert body["source_type"] == "manual"
    assert len(body["entry_hash"]) == 64

    detail = accountant.get(f"{ENTRIES}{body['id']}/").json()
    assert detail["reference"] == "JE/2025-26/000001"
    assert [
        (row["line_no"], row["account_code"], row["account_name"], row["debit"], row["credit"])
        for row in detail["lines"]
    ] == [
        (1, "1110", "Cash on hand", "1000.00", "0.00"),
        (2, "4100", "Sales revenue", "0.00", "1000.00"),
    ]
    listed = accountant.get(ENTRIES).json()
    assert [row["reference"] for row in listed["results"]] == ["JE/2025-26/000001"]


def test_lines_may_name_accounts_by_id_or_role_and_carry_dimensions(books, accountant):
    admin = services.dimension_create(
        actor=None, company=books.a, model=CostCenter, code="ADM", name="Administration"
    )
    body = {
        "date": "2025-08-10",
        "lines": [
            {"account": account(books.a, "6200").pk, "debit": "300.00", "cost_center": admin.pk},
            {"account_role": "bank", "credit": "300.00", "memo": "August rent"},
        ],
    }
    created = accountant.post(ENTRIES, body, format="json")
    assert created.status_code == 201, created.content
    lines = created.json()["lines"]
    assert [(row["account_code"], row["cost_center"]) for row in lines] == [
        ("6200", admin.pk),
        ("1131", None),
    ]
    assert lines[1]["memo"] == "August rent"


def test_json_numbers_are_read_exactly_never_rounded(books, accountant):
    raw = (
        '{"date": "2025-08-05", "lines": [{"account_code": "1110", "debit": 1000.1},'
        ' {"account_code": "4100", "credit": 1000.10}]}'
    )
    created = accountant.post(ENTRIES, raw, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["total"] == "1000.10"

    rounded = raw.replace("1000.1}", "1000.005}").replace("1000.10}", "1000.005}")
    refused = accountant.post(ENTRIES, rounded, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "too_many_decimals"
    assert JournalEntry.objects.filter(company=books.a).count() == 1


def test_an_idempotent_retry_returns_the_first_entry(books, accountant):
    first = accountant.post(ENTRIES, cash_sale(idempotency_key="pos-2025-08-05"), format="json")
    again = accountant.post(ENTRIES, cash_sale(idempotency_key="pos-2025-08-05"), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"

    changed = accountant.post(
        ENTRIES, cash_sale(amount="999.00", idempotency_key="pos-2025-08-05"), format="json"
    )
    assert changed.status_code == 409
    assert changed.json()["code"] == "idempotency_conflict"
    assert JournalEntry.objects.filter(company=books.a).count() == 1


def test_the_idempotency_key_header_is_used_when_the_body_has_none(books, accountant):
    first = accountant.post(ENTRIES, cash_sale(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = accountant.post(ENTRIES, cash_sale(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["idempotency_key"] == "k-1"
    assert again.json()["id"] == first.json()["id"]
    conflict = accountant.post(
        ENTRIES, cash_sale(day="2025-08-06"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"
    assert JournalEntry.objects.filter(company=books.a).count() == 1


def _lock_september(company):
    services.period_lock(actor=None, period=period_of(company, "2025-09-15"))


def _close_july(company):
    services.period_close(actor=None, period=period_of(company, "2025-07-15"))


def _deactivate_misc(company):
    services.account_deactivate(actor=None, account=account(company, "6900"))


REFUSALS = [
    # (case, lines or entry override, prepare, code)
    (
        "unbalanced",
        [line("1110", debit="100.00"), line("4100", credit="90.00")],
        None,
        "unbalanced",
    ),
    ("one line", [line("1110", debit="100.00")], None, "too_few_lines"),
    ("no lines", [], None, "too_few_lines"),
    (
        "three decimals",
        [line("1110", debit="100.005"), line("4100", credit="100.005")],
        None,
        "too_many_decimals",
    ),
    (
        "negative",
        [line("1110", debit="-100.00"), line("4100", debit="100.00")],
        None,
        "negative_amount",
    ),
    (
        "both sides",
        [line("1110", debit="100.00", credit="100.00"), line("4100", credit="100.00")],
        None,
        "both_sides",
    ),
    ("zero", [line("1110", debit="0.00"), line("4100", credit="0.00")], None, "zero_amount"),
    (
        "not a number",
        [line("1110", debit="1,000.00"), line("4100", credit="1000.00")],
        None,
        "invalid_amount",
    ),
    (
        "huge amount",
        [line("1110", debit="1e30"), line("4100", credit="1e30")],
        None,
        "invalid_amount",
    ),
    (
        "unknown account",
        [line("1110", debit="100.00"), line("9999", credit="100.00")],
        None,
        "unknown_account",
    ),
    (
        "unknown account id",
        [{"account": 987654, "debit": "100.00"}, line("4100", credit="100.00")],
        None,
        "unknown_account",
    ),
    (
        "header account",
        [line("1000", debit="100.00"), line("4100", credit="100.00")],
        None,
        "account_not_postable",
    ),
    (
        "inactive account",
        [line("6900", debit="100.00"), line("1110", credit="100.00")],
        _deactivate_misc,
        "account_inactive",
    ),
    (
        "unknown cost centre",
        [line("1110", debit="100.00", cost_center=987654), line("4100", credit="100.00")],
        None,
        "unknown_dimension",
    ),
    (
        "unknown line field",
        [line("1110", debit="100.00", tax="5"), line("4100", credit="100.00")],
        None,
        "invalid",
    ),
]


@pytest.mark.parametrize(
    ("lines", "prepare", "code"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_a_bad_entry_is_refused_with_its_code_and_writes_nothing(
    books, accountant, lines, prepare, code
):
    if prepare:
        prepare(books.a)
    response = accountant.post(ENTRIES, {"date": "2025-08-05", "lines": lines}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    if code == "unbalanced":
        assert body["fields"] == {"difference": ["10.00"]}
        assert "debits exceed credits by 10.00" in body["message"]
    assert not JournalEntry.objects.filter(company=books.a).exists()
    assert not AccountBalance.objects.filter(company=books.a).exists()


@pytest.mark.parametrize(
    ("day", "prepare", "code"),
    [
        ("2025-09-15", _lock_september, "period_locked"),
        ("2025-07-15", _close_july, "period_closed"),
        ("2020-01-15", None, "no_fiscal_year"),
    ],
    ids=["locked period", "closed period", "no fiscal year"],
)
def test_an_entry_outside_an_open_period_is_refused(books, accountant, day, prepare, code):
    if prepare:
        prepare(books.a)
    response = accountant.post(ENTRIES, cash_sale(day=day), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not JournalEntry.objects.filter(company=books.a).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"lines": [line("1110", debit="1.00")]}, "date", id="no date"),
        pytest.param({**cash_sale(), "date": "2025-02-30"}, "date", id="bad date"),
        pytest.param({**cash_sale(), "date": "0001-01-01"}, "date", id="ancient date"),
        pytest.param(
            {**cash_sale(), "source_type": "year_end_close"}, "source_type", id="reserved source"
        ),
        pytest.param({**cash_sale(), "reversal_of_id": 1}, "reversal_of_id", id="unknown field"),
        pytest.param({**cash_sale(), "lines": "1110 Dr 1000"}, "lines", id="lines not a list"),
        pytest.param({**cash_sale(), "memo": "m" * 501}, "memo", id="long memo"),
    ],
)
def test_a_malformed_request_is_refused_before_the_ledger(books, accountant, body, field):
    response = accountant.post(ENTRIES, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"]
    assert not JournalEntry.objects.filter(company=books.a).exists()


def test_a_boolean_is_not_an_amount_or_an_account(books, accountant):
    body = {"date": "2025-08-05", "lines": [{"account": True, "debit": True}, line("4100")]}
    response = accountant.post(ENTRIES, body, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]["lines"]["0"]) == {"account", "debit"}


def test_another_companys_account_is_unknown_here(books, accountant):
    theirs = account(books.b, "1131")
    body = {
        "date": "2025-08-05",
        "lines": [{"account": theirs.pk, "debit": "50.00"}, line("4100", credit="50.00")],
    }
    response = accountant.post(ENTRIES, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_account"
    assert not JournalEntry.objects.exists()


@pytest.mark.parametrize("role", ["clerk", "auditor", "payroll_manager"])
def test_only_owners_and_accountants_post(books, api, role):
    response = api(books.users_a[role], books.a).post(ENTRIES, cash_sale(), format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "role_forbidden"
    assert not JournalEntry.objects.exists()


def test_posted_entries_cannot_be_changed_or_deleted(books, accountant, owner):
    entry = accountant.post(ENTRIES, cash_sale(), format="json").json()
    url = f"{ENTRIES}{entry['id']}/"
    assert owner.patch(url, {"memo": "edited"}, format="json").status_code == 405
    assert owner.put(url, cash_sale(), format="json").status_code == 405
    assert owner.delete(url).status_code == 405
    assert JournalEntry.objects.get(pk=entry["id"]).memo == "Cash sale"


# --- reversal ----------------------------------------------------------------------------------


def test_reversal_mirrors_the_entry_and_marks_it_reversed(books, accountant):
    entry = accountant.post(ENTRIES, cash_sale(), format="json").json()
    url = f"{ENTRIES}{entry['id']}/reverse/"
    reversed_ = accountant.post(url, {"date": "2025-08-20", "reason": "Wrong till"}, format="json")
    assert reversed_.status_code == 201, reversed_.content
    reversal = reversed_.json()
    assert reversal["reference"] == "JE/2025-26/000002"
    assert reversal["reversal_of"] == entry["id"]
    assert reversal["reversal_of_reference"] == "JE/2025-26/000001"
    assert reversal["reversal_reason"] == "Wrong till"
    assert [(row["account_code"], row["debit"], row["credit"]) for row in reversal["lines"]] == [
        ("1110", "0.00", "1000.00"),
        ("4100", "1000.00", "0.00"),
    ]

    original = accountant.get(f"{ENTRIES}{entry['id']}/").json()
    assert original["status"] == "reversed"
    assert (original["reversed_by"], original["reversed_by_reference"]) == (
        reversal["id"],
        "JE/2025-26/000002",
    )

    twice = accountant.post(url, {"date": "2025-08-21", "reason": "Again"}, format="json")
    assert twice.status_code == 409
    assert twice.json()["code"] == "already_reversed"
    assert JournalEntry.objects.filter(company=books.a).count() == 2


def test_a_reversal_needs_a_reason_and_a_date_not_before_the_entry(books, accountant):
    entry = accountant.post(ENTRIES, cash_sale(), format="json").json()
    url = f"{ENTRIES}{entry['id']}/reverse/"
    no_reason = accountant.post(url, {"date": "2025-08-20"}, format="json")
    assert (no_reason.status_code, no_reason.json()["code"]) == (400, "invalid")
    too_early = accountant.post(url, {"date": "2025-08-01", "reason": "x"}, format="json")
    assert (too_early.status_code, too_early.json()["code"]) == (400, "invalid_date")
    assert JournalEntry.objects.get(pk=entry["id"]).status == "posted"


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_posts_a_batch_in_order_and_a_retry_posts_nothing(books, accountant):
    batch = {
        "entries": [
            cash_sale(day=f"2025-08-0{day}", amount=f"{day}00.00", idempotency_key=f"day-{day}")
            for day in (1, 2, 3)
        ]
    }
    first = accountant.post(f"{ENTRIES}bulk/", batch, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["posted"], body["replayed"]) == (3, 0)
    assert [(row["reference"], row["total"]) for row in body["entries"]] == [
        ("JE/2025-26/000001", "100.00"),
        ("JE/2025-26/000002", "200.00"),
        ("JE/2025-26/000003", "300.00"),
    ]
    again = accountant.post(f"{ENTRIES}bulk/", batch, format="json")
    assert again.status_code == 200
    assert (again.json()["posted"], again.json()["replayed"]) == (0, 3)
    assert [row["id"] for row in again.json()["entries"]] == [row["id"] for row in body["entries"]]
    assert JournalEntry.objects.filter(company=books.a).count() == 3


def test_bulk_is_all_or_nothing_and_names_the_bad_entry(books, accountant):
    bad = cash_sale()
    bad["lines"][1]["credit"] = "990.00"
    response = accountant.post(
        f"{ENTRIES}bulk/", {"entries": [cash_sale(), bad, cash_sale()]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "unbalanced"
    assert response.json()["message"].startswith("Entry 2: ")
    assert not JournalEntry.objects.exists()


def test_bulk_refuses_an_oversized_batch(books, accountant):
    response = accountant.post(f"{ENTRIES}bulk/", {"entries": [{}] * 5001}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    empty = accountant.post(f"{ENTRIES}bulk/", {"entries": []}, format="json")
    assert (empty.status_code, empty.json()["code"]) == (400, "invalid")


# --- listing -----------------------------------------------------------------------------------


def test_entry_list_filters_and_orders_newest_first(books, accountant):
    sale = post(books.a, "2025-08-05", ("1110", "1000.00", ""), ("4100", "", "1000.00"))
    rent = post(
        books.a, "2025-09-10", ("6200", "300.00", ""), ("1131", "", "300.00"), source_id="R-9"
    )
    wages = post(books.a, "2025-08-31", ("6100", "400.00", ""), ("2210", "", "400.00"))

    def refs(**params):
        response = accountant.get(ENTRIES, params)
        assert response.status_code == 200, response.content
        return [row["reference"] for row in response.json()["results"]]

    assert refs() == [rent.reference, wages.reference, sale.reference]
    assert refs(date_from="2025-08-06", date_to="2025-08-31") == [wages.reference]
    assert refs(account=account(books.a, "1131").pk) == [rent.reference]
    assert refs(period=period_of(books.a, "2025-08-01").pk) == [wages.reference, sale.reference]
    assert refs(source_id="R-9") == [rent.reference]
    assert len(refs(source_type="manual")) == 3
    assert refs(source_type="payroll_run") == []
    assert refs(fiscal_year=sale.fiscal_year_id, status="reversed") == []
    assert refs(ordering="date") == [sale.reference, wages.reference, rent.reference]
    bad = accountant.get(ENTRIES, {"date_from": "yesterday"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


def test_entry_list_takes_the_same_number_of_queries_for_many_entries(books, accountant):
    post(books.a, "2025-08-01", ("1110", "1.00", ""), ("4100", "", "1.00"))
    accountant.get(ENTRIES)  # warm the membership and content-type caches
    with CaptureQueriesContext(connection) as one:
        assert accountant.get(ENTRIES).status_code == 200
    for day in range(2, 12):
        post(books.a, f"2025-08-{day:02d}", ("1110", "1.00", ""), ("4100", "", "1.00"))
    entry = JournalEntry.objects.filter(company=books.a).first()
    services.journal_entry_reverse(actor=None, entry=entry, date=entry.date, reason="test")
    with CaptureQueriesContext(connection) as many:
        response = accountant.get(ENTRIES)
    assert response.json()["count"] == 12
    assert len(many) == len(one)


def test_company_b_sees_none_of_company_as_entries(books, api, accountant):
    entry = accountant.post(ENTRIES, cash_sale(), format="json").json()
    client_b = api(books.owner_b, books.b)
    assert client_b.get(ENTRIES).json()["count"] == 0
    assert client_b.get(f"{ENTRIES}{entry['id']}/").status_code == 404
    reverse = client_b.post(
        f"{ENTRIES}{entry['id']}/reverse/", {"date": "2026-01-05", "reason": "x"}, format="json"
    )
    assert reverse.status_code == 404
    assert JournalEntry.objects.get(pk=entry["id"]).status == "posted"


# --- chart of accounts -------------------------------------------------------------------------


def test_accounts_are_created_changed_and_deactivated(books, accountant):
    parent = account(books.a, "6000")
    created = accountant.post(
        f"{API}/accounts/",
        {"code": "6210", "name": "Warehouse rent", "type": "expense", "parent": parent.pk},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["parent_code"], body["is_postable"], body["is_active"]) == ("6000", True, True)
    url = f"{API}/accounts/{body['id']}/"
    renamed = accountant.patch(url, {"name": "Godown rent"}, format="json")
    assert (renamed.status_code, renamed.json()["name"]) == (200, "Godown rent")
    deactivated = accountant.post(f"{url}deactivate/")
    assert (deactivated.status_code, deactivated.json()["is_active"]) == (200, False)
    assert Account.objects.get(pk=body["id"]).is_active is False

    duplicate = accountant.post(
        f"{API}/accounts/", {"code": "6210", "name": "Again", "type": "expense"}, format="json"
    )
    assert duplicate.status_code == 400
    wrong_parent = accountant.post(
        f"{API}/accounts/",
        {"code": "6220", "name": "Odd", "type": "income", "parent": parent.pk},
        format="json",
    )
    assert (wrong_parent.status_code, wrong_parent.json()["code"]) == (400, "parent_type_mismatch")
    foreign_parent = accountant.post(
        f"{API}/accounts/",
        {"code": "6230", "name": "Odd", "type": "expense", "parent": account(books.b, "6000").pk},
        format="json",
    )
    assert foreign_parent.status_code == 400
    assert "parent" in foreign_parent.json()["fields"]


def test_account_list_filters_and_shows_roles(books, accountant):
    response = accountant.get(
        f"{API}/accounts/", {"type": "income", "is_postable": "true", "search": "revenue"}
    )
    assert [(row["code"], row["roles"]) for row in response.json()["results"]] == [
        ("4100", ["sales_revenue"]),
        ("4200", []),
    ]
    children = accountant.get(f"{API}/accounts/", {"parent": account(books.a, "1130").pk})
    assert [row["code"] for row in children.json()["results"]] == ["1131"]


def test_a_used_account_is_never_deleted_an_unused_one_is(books, accountant):
    post(books.a, "2025-08-10", ("6200", "300.00", ""), ("1131", "", "300.00"))
    rent = account(books.a, "6200")
    refused = accountant.delete(f"{API}/accounts/{rent.pk}/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "account_in_use"
    assert Account.objects.filter(pk=rent.pk).exists()

    retype = accountant.patch(f"{API}/accounts/{rent.pk}/", {"type": "asset"}, format="json")
    assert (retype.status_code, retype.json()["code"]) == (409, "account_in_use")

    unused = account(books.a, "6500")
    assert accountant.delete(f"{API}/accounts/{unused.pk}/").status_code == 204
    assert not Account.objects.filter(pk=unused.pk).exists()


def test_a_mapped_account_cannot_be_deactivated(books, accountant):
    bank = account(books.a, "1131")
    response = accountant.post(f"{API}/accounts/{bank.pk}/deactivate/")
    assert (response.status_code, response.json()["code"]) == (409, "account_mapped")
    assert Account.objects.get(pk=bank.pk).is_active


def test_the_auditor_reads_the_chart_but_cannot_change_it(books, api):
    auditor = api(books.users_a["auditor"], books.a)
    assert auditor.get(f"{API}/accounts/").status_code == 200
    rent = account(books.a, "6200")
    response = auditor.patch(f"{API}/accounts/{rent.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert account(books.a, "6200").name == "Rent"


# --- account roles -----------------------------------------------------------------------------


def test_account_roles_are_listed_and_remapped(books, accountant):
    listed = accountant.get(f"{API}/account-roles/", {"role": "bank"}).json()["results"]
    assert [(row["role"], row["account_code"]) for row in listed] == [("bank", "1131")]

    clearing = account(books.a, "1150")
    replaced = accountant.post(
        f"{API}/account-roles/", {"role": "bank", "account": clearing.pk}, format="json"
    )
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["account_code"] == "1150"
    assert AccountRole.objects.get(company=books.a, role="bank").account == clearing

    AccountRole.objects.filter(company=books.a, role="rounding").delete()
    created = accountant.post(
        f"{API}/account-roles/",
        {"role": "rounding", "account": account(books.a, "6900").pk},
        format="json",
    )
    assert created.status_code == 201

    header = accountant.post(
        f"{API}/account-roles/",
        {"role": "bank", "account": account(books.a, "1130").pk},
        format="json",
    )
    assert (header.status_code, header.json()["code"]) == (400, "account_not_postable")
    foreign = accountant.post(
        f"{API}/account-roles/",
        {"role": "bank", "account": account(books.b, "1131").pk},
        format="json",
    )
    assert foreign.status_code == 400
    assert AccountRole.objects.get(company=books.a, role="bank").account == clearing


# --- dimensions --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cost-centers", "projects", "departments"])
def test_dimensions_are_created_retired_and_never_deleted(books, accountant, kind):
    url = f"{API}/{kind}/"
    created = accountant.post(url, {"code": "ADM", "name": "Administration"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["is_active"] is True
    duplicate = accountant.post(url, {"code": "ADM", "name": "Again"}, format="json")
    assert duplicate.status_code == 400
    detail = f"{url}{created.json()['id']}/"
    retired = accountant.patch(detail, {"is_active": False}, format="json")
    assert (retired.status_code, retired.json()["is_active"]) == (200, False)
    assert accountant.delete(detail).status_code == 405
    assert [
        row["code"] for row in accountant.get(url, {"is_active": "false"}).json()["results"]
    ] == ["ADM"]


def test_an_inactive_dimension_takes_no_postings(books, accountant):
    cc = accountant.post(f"{API}/cost-centers/", {"code": "OLD", "name": "Old"}, format="json")
    accountant.patch(f"{API}/cost-centers/{cc.json()['id']}/", {"is_active": False}, format="json")
    body = cash_sale()
    body["lines"][0]["cost_center"] = cc.json()["id"]
    response = accountant.post(ENTRIES, body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "dimension_inactive")


# --- fiscal years and periods ------------------------------------------------------------------


def test_opening_a_fiscal_year_makes_twelve_periods(books, accountant):
    opened = accountant.post(f"{API}/fiscal-years/", {"containing": "2027-10-15"}, format="json")
    assert opened.status_code == 201, opened.content
    year = opened.json()
    assert (year["name"], year["start_date"], year["end_date"], year["status"]) == (
        "2027-28",
        "2027-07-01",
        "2028-06-30",
        "open",
    )
    periods = accountant.get(f"{API}/periods/", {"fiscal_year": year["id"]}).json()["results"]
    assert [p["number"] for p in periods] == list(range(1, 13))
    assert (periods[0]["start_date"], periods[-1]["end_date"]) == ("2027-07-01", "2028-06-30")

    again = accountant.post(f"{API}/fiscal-years/", {"containing": "2028-01-01"}, format="json")
    assert (again.status_code, again.json()["id"]) == (200, year["id"])
    bad = accountant.post(f"{API}/fiscal-years/", {"containing": "soon"}, format="json")
    assert bad.status_code == 400


def test_period_lock_close_and_reopen_follow_the_roles(books, api, accountant, owner):
    july = period_of(books.a, "2025-07-01")
    url = f"{API}/periods/{july.pk}/"
    locked = accountant.post(f"{url}lock/")
    assert locked.status_code == 200, locked.content
    assert (locked.json()["status"], locked.json()["status_changed_by"]) == (
        "locked",
        "a-accountant",
    )
    assert accountant.post(f"{url}close/").json()["status"] == "closed"

    refused = accountant.post(f"{url}reopen/")
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"
    assert AccountingPeriod.objects.get(pk=july.pk).status == PeriodStatus.CLOSED

    clerk = api(books.users_a["clerk"], books.a).post(f"{url}reopen/")
    assert (clerk.status_code, clerk.json()["code"]) == (403, "role_forbidden")

    reopened = owner.post(f"{url}reopen/")
    assert (reopened.status_code, reopened.json()["status"]) == (200, "open")
    closed = accountant.get(f"{API}/periods/", {"status": "closed"}).json()["results"]
    assert closed == []


def test_periods_close_in_order(books, accountant):
    august = period_of(books.a, "2025-08-01")
    response = accountant.post(f"{API}/periods/{august.pk}/close/")
    assert (response.status_code, response.json()["code"]) == (409, "close_in_order")


# --- reports -----------------------------------------------------------------------------------


@pytest.fixture
def round_books(books):
    """August 2025 at Alpha: capital 5,000.00 into the bank; cash sales 1,000.00; rent 300.00
    paid from the bank (cost centre ADM); salaries 400.00 owed (cost centre OPS)."""
    admin = services.dimension_create(
        actor=None, company=books.a, model=CostCenter, code="ADM", name="Administration"
    )
    ops = services.dimension_create(
        actor=None, company=books.a, model=CostCenter, code="OPS", name="Operations"
    )
    post(books.a, "2025-08-01", ("1131", "5000.00", ""), ("3100", "", "5000.00"))
    post(books.a, "2025-08-05", ("1110", "1000.00", ""), ("4100", "", "1000.00"))
    post(
        books.a,
        "2025-08-10",
        ("6200", "300.00", "", {"cost_center": admin.pk}),
        ("1131", "", "300.00"),
    )
    post(
        books.a,
        "2025-08-31",
        ("6100", "400.00", "", {"cost_center": ops.pk}),
        ("2210", "", "400.00"),
    )
    books.admin, books.ops = admin, ops
    return books


AUGUST = {"date_from": "2025-07-01", "date_to": "2025-08-31"}


def test_trial_balance_adds_up(round_books, accountant):
    response = accountant.get(f"{REPORTS}/trial-balance/", AUGUST)
    assert response.status_code == 200, response.content
    report = response.json()
    rows = {row["code"]: row for row in report["rows"]}
    assert list(rows) == ["1110", "1131", "2210", "3100", "4100", "6100", "6200"]
    bank = rows["1131"]
    assert (bank["debit"], bank["credit"], bank["closing_debit"], bank["closing_credit"]) == (
        "5000.00",
        "300.00",
        "4700.00",
        "0.00",
    )
    assert report["totals"] == {
        "opening_debit": "0.00",
        "opening_credit": "0.00",
        "debit": "6700.00",
        "credit": "6700.00",
        "closing_debit": "6400.00",
        "closing_credit": "6400.00",
    }
    assert report["balanced"] is True
    assert (report["date_from"], report["date_to"]) == ("2025-07-01", "2025-08-31")


def test_trial_balance_by_periods_carries_the_opening_balance(round_books, accountant):
    september = period_of(round_books.a, "2025-09-01")
    report = accountant.get(
        f"{REPORTS}/trial-balance/", {"period_from": september.pk, "period_to": september.pk}
    ).json()
    assert (report["date_from"], report["date_to"]) == ("2025-09-01", "2025-09-30")
    bank = next(row for row in report["rows"] if row["code"] == "1131")
    assert (bank["opening_debit"], bank["debit"], bank["closing_debit"]) == (
        "4700.00",
        "0.00",
        "4700.00",
    )
    assert report["totals"]["closing_debit"] == report["totals"]["closing_credit"] == "6400.00"


def test_profit_and_loss_shows_net_profit(round_books, accountant):
    report = accountant.get(f"{REPORTS}/profit-and-loss/", AUGUST).json()
    assert (report["total_income"], report["total_expenses"], report["net_profit"]) == (
        "1000.00",
        "700.00",
        "300.00",
    )
    income, expenses = report["sections"]
    assert [(row["code"], row["amount"]) for row in expenses["rows"]] == [
        ("6100", "400.00"),
        ("6200", "300.00"),
    ]
    assert income["total"] == "1000.00"


def test_a_dimension_filter_narrows_the_figures(round_books, accountant):
    admin_only = accountant.get(
        f"{REPORTS}/profit-and-loss/", {**AUGUST, "cost_center": round_books.admin.pk}
    ).json()
    assert (admin_only["total_income"], admin_only["total_expenses"]) == ("0.00", "300.00")
    assert admin_only["net_profit"] == "-300.00"
    assert admin_only["dimensions"]["cost_center"] == round_books.admin.pk

    ops_tb = accountant.get(
        f"{REPORTS}/trial-balance/", {**AUGUST, "cost_center": round_books.ops.pk}
    ).json()
    assert [(row["code"], row["debit"]) for row in ops_tb["rows"]] == [("6100", "400.00")]

    theirs = services.dimension_create(
        actor=None, company=round_books.b, model=CostCenter, code="ADM", name="Beta admin"
    )
    foreign = accountant.get(f"{REPORTS}/profit-and-loss/", {"cost_center": theirs.pk})
    assert foreign.status_code == 400
    assert foreign.json()["code"] == "unknown_dimension"


def test_balance_sheet_balances(round_books, accountant):
    report = accountant.get(f"{REPORTS}/balance-sheet/", {"as_of": "2025-08-31"}).json()
    assert report["as_of"] == "2025-08-31"
    assert (report["total_assets"], report["total_liabilities"], report["total_equity"]) == (
        "5700.00",
        "400.00",
        "5000.00",
    )
    assert report["current_year_earnings"] == "300.00"
    assert report["prior_years_unclosed_earnings"] == "0.00"
    assert report["total_liabilities_and_equity"] == "5700.00"
    assert report["balanced"] is True
    assets = report["sections"][0]
    assert [(row["code"], row["amount"]) for row in assets["rows"]] == [
        ("1110", "1000.00"),
        ("1131", "4700.00"),
    ]
    by_period = accountant.get(
        f"{REPORTS}/balance-sheet/", {"period_to": period_of(round_books.a, "2025-08-01").pk}
    ).json()
    assert (by_period["as_of"], by_period["total_assets"]) == ("2025-08-31", "5700.00")


def test_general_ledger_runs_the_bank_balance(round_books, accountant):
    bank = account(round_books.a, "1131")
    report = accountant.get(f"{REPORTS}/general-ledger/", {**AUGUST, "account": bank.pk}).json()
    assert report["account"] == {"id": bank.pk, "code": "1131", "name": bank.name}
    assert report["opening_balance"] == "0.00"
    assert [
        (row["date"], row["reference"], row["debit"], row["credit"], row["balance"])
        for row in report["rows"]
    ] == [
        ("2025-08-01", "JE/2025-26/000001", "5000.00", "0.00", "5000.00"),
        ("2025-08-10", "JE/2025-26/000003", "0.00", "300.00", "4700.00"),
    ]
    assert (report["total_debit"], report["total_credit"], report["closing_balance"]) == (
        "5000.00",
        "300.00",
        "4700.00",
    )
    later = accountant.get(
        f"{REPORTS}/general-ledger/",
        {"account": bank.pk, "date_from": "2025-08-05", "date_to": "2025-08-31"},
    ).json()
    assert later["opening_balance"] == "5000.00"
    assert [row["balance"] for row in later["rows"]] == ["4700.00"]


def test_reports_download_as_csv(round_books, accountant):
    response = accountant.get(f"{REPORTS}/trial-balance/", {**AUGUST, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="alpha-trial-balance-2025-08-31.csv"'
    )
    text = response.content.decode()
    assert "1131,Main operating bank account,asset,0.00,0.00,5000.00,300.00,4700.00,0.00" in text
    assert ",Total,,0.00,0.00,6700.00,6700.00,6400.00,6400.00" in text

    pnl = accountant.get(f"{REPORTS}/profit-and-loss/", {**AUGUST, "format": "csv"})
    assert ",,Net profit,300.00" in pnl.content.decode()
    sheet = accountant.get(
        f"{REPORTS}/balance-sheet/", {"as_of": "2025-08-31"}, HTTP_ACCEPT="text/csv"
    )
    assert sheet["Content-Type"] == "text/csv; charset=utf-8"
    assert "Total liabilities and equity,5700.00" in sheet.content.decode()


def test_a_bad_report_query_answers_json_with_a_code(round_books, accountant):
    cases = [
        ("trial-balance", {"date_from": "2025-13-01"}, "invalid"),
        ("trial-balance", {"date_from": "2025-09-01", "date_to": "2025-08-01"}, "invalid_range"),
        ("trial-balance", {"period_from": 987654}, "unknown_period"),
        (
            "trial-balance",
            {"period_to": AccountingPeriod.objects.filter(company=round_books.b).first().pk},
            "unknown_period",
        ),
        ("general-ledger", {}, "invalid"),
        ("general-ledger", {"account": str(10**30)}, "invalid"),
        ("balance-sheet", {"as_of": "0001-01-01"}, "invalid"),
        ("general-ledger", {"account": account(round_books.b, "1131").pk}, "unknown_account"),
        ("balance-sheet", {"as_of": "31/08/2025", "format": "csv"}, "invalid"),
    ]
    for report, params, code in cases:
        response = accountant.get(f"{REPORTS}/{report}/", params)
        assert response.status_code == 400, (report, params, response.content)
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert (body["code"], bool(body["message"])) == (code, True), (report, params)


@pytest.mark.parametrize("role", ["owner", "accountant", "payroll_manager", "clerk", "auditor"])
def test_every_role_reads_the_reports(round_books, api, role):
    client = api(round_books.users_a[role], round_books.a)
    response = client.get(f"{REPORTS}/profit-and-loss/", AUGUST)
    assert response.status_code == 200
    assert response.json()["net_profit"] == "300.00"


def test_company_b_reports_show_none_of_company_as_figures(round_books, api):
    client_b = api(round_books.owner_b, round_books.b)
    report = client_b.get(f"{REPORTS}/trial-balance/", {"date_to": "2026-12-31"}).json()
    assert report["rows"] == []
    anonymous = api().get(f"{REPORTS}/trial-balance/")
    assert anonymous.status_code == 401


# --- year-end close ----------------------------------------------------------------------------


def test_year_end_close_moves_the_profit_to_retained_earnings(round_books, accountant):
    year = FiscalYear.objects.get(company=round_books.a, name="2025-26")
    response = accountant.post(f"{API}/fiscal-years/{year.pk}/close/")
    assert response.status_code == 200, response.content
    closed = response.json()
    assert closed["status"] == "closed"
    assert closed["closing_entry_reference"] == "JE/2025-26/000005"
    assert closed["closed_by"] == "a-accountant"

    entry = accountant.get(f"{ENTRIES}{closed['closing_entry']}/").json()
    assert (entry["date"], entry["source_type"], entry["total"]) == (
        "2026-06-30",
        "year_end_close",
        "1000.00",
    )
    retained = next(row for row in entry["lines"] if row["account_code"] == "3200")
    assert (retained["debit"], retained["credit"]) == ("0.00", "300.00")

    sheet = accountant.get(f"{REPORTS}/balance-sheet/", {"as_of": "2026-06-30"}).json()
    equity = sheet["sections"][2]
    assert [(row["code"], row["amount"]) for row in equity["rows"]] == [
        ("3100", "5000.00"),
        ("3200", "300.00"),
    ]
    assert (sheet["current_year_earnings"], sheet["prior_years_unclosed_earnings"]) == (
        "0.00",
        "0.00",
    )
    assert (sheet["total_assets"], sheet["total_liabilities_and_equity"]) == ("5700.00", "5700.00")
    assert sheet["balanced"] is True

    # The year's profit and loss still shows what was earned; the close only moved it.
    pnl = accountant.get(
        f"{REPORTS}/profit-and-loss/", {"date_from": "2025-07-01", "date_to": "2026-06-30"}
    ).json()
    assert pnl["net_profit"] == "300.00"

    assert set(
        AccountingPeriod.objects.filter(fiscal_year=year).values_list("status", flat=True)
    ) == {"closed"}
    late = accountant.post(ENTRIES, cash_sale(day="2026-05-15"), format="json")
    assert (late.status_code, late.json()["code"]) == (400, "period_closed")
    again = accountant.post(f"{API}/fiscal-years/{year.pk}/close/")
    assert (again.status_code, again.json()["code"]) == (409, "fiscal_year_closed")


def test_json_bodies_with_nan_are_refused(books, accountant):
    raw = json.dumps(cash_sale()).replace('"1000.00"', "NaN", 1)
    response = accountant.post(ENTRIES, raw, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
