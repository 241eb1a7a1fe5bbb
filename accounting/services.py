"""Every write to the general ledger. The admin, the API, commands, tasks and the other modules
(payroll, invoicing, banking) call these; PostgreSQL re-checks the invariants underneath
(accounting/sql/ledger_invariants.sql), so the checks here exist to give a clear answer.

Posting locks the company's chain head (LedgerChain) first, then the fiscal year's counter: a
company's postings are taken one at a time, which makes entry numbers gapless and the hash chain
a single line.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django_guid import get_guid

from accounting.chain import GENESIS_HASH, HASHED_LINE_FIELDS, entry_hash
from accounting.chart import STANDARD_CHART
from accounting.models import (
    PROFIT_AND_LOSS_TYPES,
    Account,
    AccountBalance,
    AccountingPeriod,
    AccountRole,
    AccountRoleName,
    EntryCounter,
    EntryStatus,
    FiscalYear,
    JournalEntry,
    JournalLine,
    LedgerChain,
    PeriodStatus,
)
from core.errors import ConflictError, PermissionDeniedError, ValidationFailed
from core.models import Company, Membership
from core.roles import Role
from core.services import audit_record, model_snapshot

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
YEAR_END_CLOSE = "year_end_close"
MANAGE_ROLES = frozenset({Role.OWNER, Role.ACCOUNTANT})
OWNER_ONLY = frozenset({Role.OWNER})
MAX_LINES_PER_ENTRY = 10_000


# --- who may do what -------------------------------------------------------------------------


def _require_role(actor, company: Company, roles: frozenset[str], what: str) -> None:
    """System jobs (actor None) and platform administrators pass; members need one of `roles`."""
    if actor is None or getattr(actor, "is_superuser", False):
        return
    role = (
        Membership.objects.filter(user=actor, company=company)
        .values_list("role", flat=True)
        .first()
    )
    if role not in roles:
        allowed = " or ".join(sorted(Role(r).label.lower() for r in roles))
        raise PermissionDeniedError(f"Only an {allowed} may {what}.", code="role_required")


def _actor_label(actor, system_job: str) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor.get_username()
    return f"system:{system_job}" if system_job else "system"


# --- company set-up: chart, roles, fiscal year --------------------------------------------------


def fiscal_year_name(start: date, end: date) -> str:
    return str(start.year) if start.year == end.year else f"{start.year}-{str(end.year)[-2:]}"


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    return date(day.year + month0 // 12, month0 % 12 + 1, 1)


@transaction.atomic
def fiscal_year_create(*, actor, company: Company, containing: date) -> FiscalYear:
    """The fiscal year that contains `containing`, with its twelve monthly periods and its entry
    counter; an existing one is returned unchanged."""
    _require_role(actor, company, MANAGE_ROLES, "open a fiscal year")
    start = company.fiscal_year_start(_as_date(containing, ""))
    existing = FiscalYear.objects.filter(company=company, start_date=start).first()
    if existing is not None:
        return existing
    end = _add_months(start, 12) - timedelta(days=1)
    overlapping = FiscalYear.objects.filter(
        company=company, start_date__lte=end, end_date__gte=start
    ).first()
    if overlapping is not None:
        raise ConflictError(
            f"{overlapping} overlaps {start}..{end}: the fiscal year start month changed after "
            "years were opened.",
            code="fiscal_year_overlap",
        )
    year = FiscalYear.objects.create(
        company=company, name=fiscal_year_name(start, end), start_date=start, end_date=end
    )
    periods = []
    for number in range(1, 13):
        first = _add_months(start, number - 1)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        periods.append(
            AccountingPeriod(
                company=company, fiscal_year=year, number=number, start_date=first, end_date=last
            )
        )
    AccountingPeriod.objects.bulk_create(periods)
    EntryCounter.objects.create(company=company, fiscal_year=year)
    audit_record(
        action="fiscal_year.created",
        actor=actor,
        company=company,
        obj=year,
        after={"name": year.name, "start_date": start, "end_date": end},
    )
    return year


@transaction.atomic
def company_ledger_setup(*, actor=None, company: Company) -> None:
    """Give a company its standard chart of accounts with roles mapped, its hash-chain head and
    the current fiscal year. Safe to run again: it adds only what is missing."""
    existing = set(Account.objects.filter(company=company).values_list("code", flat=True))
    created: dict[str, Account] = {}
    for code, name, type_, parent_code, postable, _role in STANDARD_CHART:
        if code in existing:
            continue
        parent = created.get(parent_code) if parent_code else None
        if parent_code and parent is None:
            parent = Account.objects.get(company=company, code=parent_code)
        created[code] = Account.objects.create(
            company=company, code=code, name=name, type=type_, parent=parent, is_postable=postable
        )
    mapped = set(AccountRole.objects.filter(company=company).values_list("role", flat=True))
    by_code = {a.code: a for a in Account.objects.filter(company=company)}
    AccountRole.objects.bulk_create(
        AccountRole(company=company, role=role, account=by_code[code])
        for code, *_rest, role in STANDARD_CHART
        if role and role not in mapped and code in by_code
    )
    LedgerChain.objects.get_or_create(company=company)
    fiscal_year_create(actor=actor, company=company, containing=company.today())
    if created:
        audit_record(
            action="chart_of_accounts.created",
            actor=actor,
            company=company,
            after={"accounts": len(created)},
        )


def company_settings_guard(*, company: Company, changes: dict) -> None:
    """Called by core.services.company_update (through core.signals.company_changing) before a
    company's settings are saved. The base currency and the fiscal year start month are fixed
    once the ledger has entries; before that, a new start month re-cuts the empty years."""
    locked = {"base_currency", "fiscal_year_start_month"} & set(changes)
    if not locked:
        return
    if JournalEntry.objects.filter(company=company).exists():
        names = " and ".join(
            sorted(name.replace("_", " ").replace("fiscal year", "fiscal-year") for name in locked)
        )
        raise ConflictError(
            f"The {names} cannot change once the ledger has entries.",
            code="ledger_started",
            fields={name: ["Fixed once the ledger has entries."] for name in locked},
        )
    if "fiscal_year_start_month" in changes:
        if FiscalYear.objects.filter(company=company, status=FiscalYear.Status.CLOSED).exists():
            raise ConflictError(
                "A closed fiscal year exists; the fiscal-year start month cannot change.",
                code="ledger_started",
            )
        removed = list(FiscalYear.objects.filter(company=company).values_list("name", flat=True))
        AccountBalance.objects.filter(company=company).delete()
        EntryCounter.objects.filter(company=company).delete()
        AccountingPeriod.objects.filter(company=company).delete()
        FiscalYear.objects.filter(company=company).delete()
        year = fiscal_year_create(actor=None, company=company, containing=company.today())
        audit_record(
            action="fiscal_years.recut",
            company=company,
            obj=year,
            before={"fiscal_years": removed},
            after={"fiscal_year_start_month": company.fiscal_year_start_month},
        )


# --- accounts and dimensions -----------------------------------------------------------------


def _clean(obj) -> None:
    from django.core.exceptions import ValidationError

    try:
        obj.full_clean()
    except ValidationError as exc:
        raise ValidationFailed.from_django(exc) from None


def _check_parent(account: Account) -> None:
    parent = account.parent
    if parent is None:
        return
    if parent.company_id != account.company_id:
        raise ValidationFailed("The parent account belongs to another company.", code="invalid")
    if parent.type != account.type:
        raise ValidationFailed(
            f"The parent {parent} is {parent.get_type_display().lower()}; an account sits under "
            "a parent of its own type.",
            code="parent_type_mismatch",
            fields={"parent": ["Must be of the same type."]},
        )
    seen, node = set(), parent
    while node is not None:
        if node.pk == account.pk or node.pk in seen:
            raise ValidationFailed(
                "An account cannot sit under itself.",
                code="parent_cycle",
                fields={"parent": ["Would make a loop."]},
            )
        seen.add(node.pk)
        node = node.parent


ACCOUNT_FIELDS = ("code", "name", "type", "parent", "is_postable", "is_active", "description")


@transaction.atomic
def account_create(*, actor, company: Company, **fields) -> Account:
    _require_role(actor, company, MANAGE_ROLES, "change the chart of accounts")
    unknown = set(fields) - set(ACCOUNT_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown account field(s): {', '.join(sorted(unknown))}.")
    account = Account(company=company, **fields)
    _clean(account)
    _check_parent(account)
    account.save()
    audit_record(
        action="account.created",
        actor=actor,
        company=company,
        obj=account,
        after=model_snapshot(account, ACCOUNT_FIELDS[:-1]),
    )
    return account


@transaction.atomic
def account_update(*, actor, account: Account, **changes) -> Account:
    _require_role(actor, account.company, MANAGE_ROLES, "change the chart of accounts")
    unknown = set(changes) - set(ACCOUNT_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown account field(s): {', '.join(sorted(unknown))}.")
    account = Account.objects.select_for_update().get(pk=account.pk)
    fields = ACCOUNT_FIELDS
    before = model_snapshot(account, tuple(f if f != "parent" else "parent_id" for f in fields))
    used = JournalLine.objects.filter(account=account).exists()
    if used and "type" in changes and changes["type"] != account.type:
        raise ConflictError(
            f"{account} has postings; its type cannot change.", code="account_in_use"
        )
    if used and changes.get("is_postable") is False:
        raise ConflictError(
            f"{account} has postings; it cannot become a header account.", code="account_in_use"
        )
    if changes.get("is_active") is False or changes.get("is_postable") is False:
        _refuse_if_mapped(account)
    for name, value in changes.items():
        setattr(account, name, value)
    _clean(account)
    _check_parent(account)
    account.save()
    after = model_snapshot(account, tuple(f if f != "parent" else "parent_id" for f in fields))
    changed = [k for k in after if after[k] != before[k]]
    if changed:
        audit_record(
            action="account.updated",
            actor=actor,
            company=account.company,
            obj=account,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return account


def _refuse_if_mapped(account: Account) -> None:
    roles = list(AccountRole.objects.filter(account=account).values_list("role", flat=True))
    if roles:
        labels = ", ".join(AccountRoleName(r).label for r in roles)
        raise ConflictError(
            f"{account} is mapped to {labels}; map the role to another account first.",
            code="account_mapped",
        )


def account_deactivate(*, actor, account: Account) -> Account:
    return account_update(actor=actor, account=account, is_active=False)


@transaction.atomic
def account_delete(*, actor, account: Account) -> None:
    """Only an account nobody has used may go; a used one is deactivated instead."""
    _require_role(actor, account.company, MANAGE_ROLES, "change the chart of accounts")
    account = Account.objects.select_for_update().get(pk=account.pk)
    if JournalLine.objects.filter(account=account).exists():
        raise ConflictError(
            f"{account} has postings and cannot be deleted; deactivate it instead.",
            code="account_in_use",
        )
    if account.children.exists():
        raise ConflictError(
            f"{account} has sub-accounts; move or delete them first.", code="account_in_use"
        )
    _refuse_if_mapped(account)
    audit_record(
        action="account.deleted",
        actor=actor,
        company=account.company,
        obj=account,
        before=model_snapshot(account, ("code", "name", "type")),
    )
    AccountBalance.objects.filter(account=account).delete()
    account.delete()


@transaction.atomic
def account_role_set(*, actor, company: Company, role: str, account: Account) -> AccountRole:
    _require_role(actor, company, MANAGE_ROLES, "map account roles")
    if role not in AccountRoleName.values:
        raise ValidationFailed(f"'{role}' is not an account role.", code="invalid")
    if account.company_id != company.pk:
        raise ValidationFailed("The account belongs to another company.", code="invalid")
    if not (account.is_postable and account.is_active):
        raise ValidationFailed(
            f"{account} is not an active postable account.", code="account_not_postable"
        )
    mapping = AccountRole.objects.select_for_update().filter(company=company, role=role).first()
    before = {"account": str(mapping.account)} if mapping else None
    if mapping is None:
        mapping = AccountRole.objects.create(company=company, role=role, account=account)
    else:
        mapping.account = account
        mapping.save(update_fields=["account"])
    audit_record(
        action="account_role.set",
        actor=actor,
        company=company,
        obj=mapping,
        before=before,
        after={"role": role, "account": str(account)},
    )
    return mapping


def account_for_role(*, company: Company, role: str) -> Account:
    mapping = AccountRole.objects.select_related("account").filter(company=company, role=role)
    found = mapping.first()
    if found is None:
        raise ValidationFailed(
            f"No account is mapped to the role '{role}'; map one in Accounting > Account roles.",
            code="account_role_missing",
        )
    return found.account


DIMENSION_FIELDS = ("code", "name", "is_active")


@transaction.atomic
def dimension_create(*, actor, company: Company, model, **fields):
    _require_role(actor, company, MANAGE_ROLES, "change dimensions")
    obj = model(company=company, **{k: v for k, v in fields.items() if k in DIMENSION_FIELDS})
    _clean(obj)
    obj.save()
    audit_record(
        action=f"{model._meta.model_name}.created",
        actor=actor,
        company=company,
        obj=obj,
        after=model_snapshot(obj, DIMENSION_FIELDS),
    )
    return obj


@transaction.atomic
def dimension_update(*, actor, dimension, **changes):
    _require_role(actor, dimension.company, MANAGE_ROLES, "change dimensions")
    dimension = type(dimension).objects.select_for_update().get(pk=dimension.pk)
    before = model_snapshot(dimension, DIMENSION_FIELDS)
    for name, value in changes.items():
        if name in DIMENSION_FIELDS:
            setattr(dimension, name, value)
    _clean(dimension)
    dimension.save()
    after = model_snapshot(dimension, DIMENSION_FIELDS)
    if after != before:
        audit_record(
            action=f"{dimension._meta.model_name}.updated",
            actor=actor,
            company=dimension.company,
            obj=dimension,
            before=before,
            after=after,
        )
    return dimension


# --- periods ---------------------------------------------------------------------------------

# (from, to) -> roles allowed. Reopening a closed period is the owner's call.
PERIOD_TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (PeriodStatus.OPEN, PeriodStatus.LOCKED): MANAGE_ROLES,
    (PeriodStatus.OPEN, PeriodStatus.CLOSED): MANAGE_ROLES,
    (PeriodStatus.LOCKED, PeriodStatus.CLOSED): MANAGE_ROLES,
    (PeriodStatus.LOCKED, PeriodStatus.OPEN): MANAGE_ROLES,
    (PeriodStatus.CLOSED, PeriodStatus.OPEN): OWNER_ONLY,
}


@transaction.atomic
def _period_move(*, actor, period: AccountingPeriod, to: str) -> AccountingPeriod:
    # All the company's periods, in date order: "close in order" and "reopen latest first" look
    # at the neighbours, which a concurrent move must not change under us.
    list(
        AccountingPeriod.objects.filter(company_id=period.company_id)
        .order_by("start_date")
        .select_for_update()
    )
    period = (
        AccountingPeriod.objects.select_for_update()
        .select_related("fiscal_year", "company")
        .get(pk=period.pk)
    )
    if period.status == to:
        return period
    roles = PERIOD_TRANSITIONS.get((period.status, to))
    if roles is None:
        raise ConflictError(
            f"Period {period.label} is {period.status}; it cannot become {to}.",
            code="invalid_transition",
        )
    verb = {"locked": "lock", "closed": "close", "open": "reopen"}[to]
    _require_role(actor, period.company, roles, f"{verb} a {period.status} period")
    if period.fiscal_year.status == FiscalYear.Status.CLOSED:
        raise ConflictError(
            f"Fiscal year {period.fiscal_year.name} is closed; its periods stay closed.",
            code="fiscal_year_closed",
        )
    siblings = AccountingPeriod.objects.filter(company=period.company)
    if to == PeriodStatus.CLOSED:
        earlier = siblings.filter(start_date__lt=period.start_date).exclude(status="closed")
        first = earlier.order_by("start_date").first()
        if first is not None:
            raise ConflictError(
                f"Close {first.label} first: periods close in order.", code="close_in_order"
            )
    if period.status == PeriodStatus.CLOSED:
        later = siblings.filter(start_date__gt=period.start_date, status="closed")
        last = later.order_by("-start_date").first()
        if last is not None:
            raise ConflictError(
                f"Reopen {last.label} first: closed periods reopen from the latest back.",
                code="reopen_in_order",
            )
    before = period.status
    period.status = to
    period.status_changed_at = timezone.now()
    period.status_changed_by = actor if getattr(actor, "is_authenticated", False) else None
    period.save(update_fields=["status", "status_changed_at", "status_changed_by"])
    audit_record(
        action=f"period.{verb}ed" if verb != "close" else "period.closed",
        actor=actor,
        company=period.company,
        obj=period,
        before={"status": before},
        after={"status": to},
    )
    return period


def period_lock(*, actor, period: AccountingPeriod) -> AccountingPeriod:
    return _period_move(actor=actor, period=period, to=PeriodStatus.LOCKED)


def period_close(*, actor, period: AccountingPeriod) -> AccountingPeriod:
    return _period_move(actor=actor, period=period, to=PeriodStatus.CLOSED)


def period_reopen(*, actor, period: AccountingPeriod) -> AccountingPeriod:
    return _period_move(actor=actor, period=period, to=PeriodStatus.OPEN)


# --- posting ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    account: _Acct
    debit: Decimal
    credit: Decimal
    cost_center_id: int | None
    project_id: int | None
    department_id: int | None
    memo: str


@dataclass
class _Entry:
    index: int
    date: date
    period: _Period | None
    memo: str
    source_type: str
    source_id: str
    key: str
    lines: list[_Line]
    total: Decimal
    digest: str
    reversal_of_id: int | None = None
    reversal_reason: str = ""
    extra: dict = field(default_factory=dict)


def _where(index: int | None, bulk: bool) -> str:
    return f"Entry {index + 1}: " if bulk and index is not None else ""


_AMOUNT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# Money columns hold 18 digits with 2 decimals; the embedded SQLite keeps about 15 significant
# digits exactly, which still covers 9,999,999,999,999.99 (ten trillion less a cent).
MAX_AMOUNT = Decimal("1e13")
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2999, 12, 31)


def _amount(value, *, what: str, prefix: str) -> Decimal:
    if value is None or value == "":
        return ZERO
    if isinstance(value, float | bool):
        raise ValidationFailed(
            f"{prefix}{what} must be a decimal string, not a {type(value).__name__}.",
            code="invalid_amount",
        )
    text = str(value)
    if not _AMOUNT_TEXT.fullmatch(text):
        raise ValidationFailed(f"{prefix}{what} '{value}' is not a number.", code="invalid_amount")
    amount = Decimal(text)
    if amount < 0:
        raise ValidationFailed(
            f"{prefix}{what} {value} is negative; put it on the other side instead.",
            code="negative_amount",
        )
    if amount >= MAX_AMOUNT:
        raise ValidationFailed(
            f"{prefix}{what} {value} is too large (the limit is {MAX_AMOUNT - CENT:,}).",
            code="invalid_amount",
        )
    if amount != amount.quantize(CENT):
        raise ValidationFailed(
            f"{prefix}{what} {value} has more than 2 decimal places.", code="too_many_decimals"
        )
    return amount.quantize(CENT)


def _as_date(value, prefix: str) -> date:
    if not isinstance(value, date):
        try:
            value = date.fromisoformat(str(value))
        except ValueError:
            raise ValidationFailed(
                f"{prefix}'{value}' is not a date (YYYY-MM-DD).", code="invalid_date"
            ) from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValidationFailed(
            f"{prefix}{value} is outside the years {EARLIEST_DATE.year}-{LATEST_DATE.year}.",
            code="invalid_date",
        )
    return value


def _text(value, limit: int, what: str, prefix: str) -> str:
    text = "" if value is None else str(value)
    if len(text) > limit:
        raise ValidationFailed(
            f"{prefix}{what} is longer than {limit} characters.", code="text_too_long"
        )
    return text


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Acct(NamedTuple):
    pk: int
    code: str
    name: str
    is_postable: bool
    is_active: bool

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class _Period(NamedTuple):
    pk: int
    start_date: date
    end_date: date
    status: str
    fiscal_year_id: int
    year_name: str
    number: int

    @property
    def label(self) -> str:
        return f"{self.start_date:%Y-%m} ({self.year_name} P{self.number:02d})"


def _rows(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _in(values) -> tuple[str, list]:
    values = list(values)
    return ", ".join(["%s"] * len(values)) or "NULL", values


_ACCOUNT_COLUMNS = "a.id, a.code, a.name, a.is_postable, a.is_active"


def _batch(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Run SELECTs in order and return each one's rows. On PostgreSQL they go as one message,
    one round trip (the client binds the parameters); elsewhere one by one."""
    if connection.vendor != "postgresql" or len(statements) == 1:
        return [_rows(sql, params) for sql, params in statements]
    results = []
    with connection.cursor() as cursor:
        cursor.execute(
            ";\n".join(sql for sql, _ in statements),
            [value for _, params in statements for value in params],
        )
        for index in range(len(statements)):
            results.append(cursor.fetchall())
            if index < len(statements) - 1:
                cursor.nextset()
    return results


class _Resolver:
    """Reads what a batch of entries needs in one round trip on PostgreSQL, in this order: the
    accounts, roles and dimensions it names; the company's posting lock (its chain head row)
    with the periods of the batch's dates; and the idempotency keys already used. Keys and
    periods are read after the lock is held, so what they say is what counts. Plain SQL: on
    this path the ORM costs more than the database."""

    def __init__(self, company: Company, specs: list[dict], *, first: date, last: date):
        self.company = company
        ids, codes, roles = set(), set(), set()
        dims = {"cost_center": set(), "project": set(), "department": set()}
        keys = []
        for spec in specs:
            key = str(spec.get("idempotency_key") or "").strip()
            if key:
                keys.append(key)
            lines = spec.get("lines")
            for line in lines if isinstance(lines, list) else ():
                if not isinstance(line, dict):
                    continue  # _prepare says what is wrong with it
                account = line.get("account")
                if isinstance(account, Account):
                    ids.add(account.pk)
                elif _is_id(account):
                    ids.add(account)
                if line.get("account_code"):
                    codes.add(str(line["account_code"]))
                if line.get("account_role"):
                    roles.add(str(line["account_role"]))
                for name, found in dims.items():
                    value = getattr(line.get(name), "pk", line.get(name))
                    if _is_id(value):
                        found.add(value)
        statements: list[tuple[str, list]] = []
        id_marks, id_values = _in(ids)
        code_marks, code_values = _in(codes)
        statements.append(
            (
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounting_account a WHERE a.company_id = %s "  # noqa: S608 - only %s placeholders are formatted in
                f"AND (a.id IN ({id_marks}) OR a.code IN ({code_marks}))",
                [company.pk, *id_values, *code_values],
            )
        )
        role_marks, role_values = _in(roles)
        statements.append(
            (
                f"SELECT r.role, {_ACCOUNT_COLUMNS} FROM accounting_accountrole r "  # noqa: S608 - only %s placeholders are formatted in
                "JOIN accounting_account a ON a.id = r.account_id "
                f"WHERE r.company_id = %s AND r.role IN ({role_marks})",
                [company.pk, *role_values],
            )
        )
        dim_tables = (
            ("cost_center", "accounting_costcenter"),
            ("project", "accounting_project"),
            ("department", "accounting_department"),
        )
        for name, table in dim_tables:
            marks, values = _in(dims[name])
            statements.append(
                (
                    f"SELECT id, is_active FROM {table} WHERE company_id = %s AND id IN ({marks})",  # noqa: S608 - constant table names, %s placeholders
                    [company.pk, *values],
                )
            )
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        # The lock first, as a statement of its own: the periods and keys after it are read
        # with a snapshot taken once the lock is held (READ COMMITTED), so they are current.
        locked = [
            (
                f"SELECT last_hash FROM accounting_ledgerchain WHERE company_id = %s{lock}",  # noqa: S608 - a constant lock clause
                [company.pk],
            ),
            (
                "SELECT p.id, p.start_date, p.end_date, p.status, p.fiscal_year_id, y.name, "
                "p.number FROM accounting_accountingperiod p "
                "JOIN accounting_fiscalyear y ON y.id = p.fiscal_year_id "
                "WHERE p.company_id = %s AND p.end_date >= %s AND p.start_date <= %s "
                "ORDER BY p.start_date",
                [company.pk, first, last],
            ),
        ]
        for start in range(0, len(keys), 2000):
            marks, values = _in(keys[start : start + 2000])
            locked.append(
                (
                    "SELECT id FROM accounting_journalentry WHERE company_id = %s "  # noqa: S608 - only %s placeholders are formatted in
                    f"AND idempotency_key IN ({marks})",
                    [company.pk, *values],
                )
            )
        results = _batch(statements + locked)
        if not results[len(statements)]:  # no chain head yet: make it, then lock again
            LedgerChain.objects.get_or_create(company=company)
            results[len(statements) :] = _batch(locked)
        accounts, role_rows, *dim_rows = results[: len(statements)]
        self.by_id, self.by_code, self.by_role = {}, {}, {}
        for row in accounts:
            account = _Acct(row[0], row[1], row[2], bool(row[3]), bool(row[4]))
            self.by_id[account.pk] = account
            self.by_code[account.code] = account
        for row in role_rows:
            self.by_role[row[0]] = _Acct(row[1], row[2], row[3], bool(row[4]), bool(row[5]))
        self.dims = {
            name: {pk: bool(active) for pk, active in rows}
            for (name, _table), rows in zip(dim_tables, dim_rows, strict=True)
        }
        lock_rows, period_rows = results[len(statements)], results[len(statements) + 1]
        self.chain_hash = lock_rows[0][0] or GENESIS_HASH
        self.periods = [_Period(*row) for row in period_rows]
        if connection.vendor == "sqlite":  # dates come back as text there
            self.periods = [
                p._replace(start_date=_as_date(p.start_date, ""), end_date=_as_date(p.end_date, ""))
                for p in self.periods
            ]
        self.existing_ids = [row[0] for rows in results[len(statements) + 2 :] for row in rows]

    def account(self, line: dict, prefix: str) -> _Acct:
        if line.get("account") is not None:
            raw = line["account"]
            key = raw.pk if isinstance(raw, Account) else raw
            found = self.by_id.get(key) if _is_id(key) else None
            label = f"id {key}"
        elif line.get("account_code"):
            found = self.by_code.get(str(line["account_code"]))
            label = f"code {line['account_code']}"
        elif line.get("account_role"):
            found = self.by_role.get(str(line["account_role"]))
            if found is None:
                raise ValidationFailed(
                    f"{prefix}no account is mapped to the role '{line['account_role']}'.",
                    code="account_role_missing",
                )
            label = line["account_role"]
        else:
            raise ValidationFailed(f"{prefix}a line needs an account.", code="unknown_account")
        if found is None:
            raise ValidationFailed(
                f"{prefix}there is no account with {label} in this company.",
                code="unknown_account",
            )
        if not found.is_active:
            raise ValidationFailed(f"{prefix}account {found} is inactive.", code="account_inactive")
        if not found.is_postable:
            raise ValidationFailed(
                f"{prefix}account {found} is a header account and takes no postings.",
                code="account_not_postable",
            )
        return found

    def dimension(self, line: dict, name: str, prefix: str) -> int | None:
        value = line.get(name)
        if value is None:
            return None
        key = getattr(value, "pk", value)
        state = self.dims[name].get(key) if _is_id(key) else None
        label = name.replace("_", " ")
        if state is None:
            raise ValidationFailed(
                f"{prefix}there is no {label} with id {key} in this company.",
                code="unknown_dimension",
            )
        if not state:
            raise ValidationFailed(f"{prefix}{label} {key} is inactive.", code="dimension_inactive")
        return key

    def period(self, day: date, prefix: str) -> _Period:
        for period in self.periods:
            if period.start_date <= day <= period.end_date:
                if period.status != PeriodStatus.OPEN:
                    raise ValidationFailed(
                        f"{prefix}period {period.label} is {period.status}; nothing can be "
                        f"posted on {day}.",
                        code=f"period_{period.status}",
                    )
                return period
        start = self.company.fiscal_year_start(day)
        raise ValidationFailed(
            f"{prefix}no fiscal year covers {day}; open the fiscal year starting {start} first.",
            code="no_fiscal_year",
        )


def _digest(day: date, memo: str, source_type: str, source_id: str, lines: list[_Line]) -> str:
    content = [
        day.isoformat(),
        memo,
        source_type,
        source_id,
        [
            [
                line.account.pk,
                str(line.debit),
                str(line.credit),
                line.cost_center_id,
                line.project_id,
                line.department_id,
                line.memo,
            ]
            for line in lines
        ],
    ]
    return hashlib.sha256(json.dumps(content, separators=(",", ":")).encode()).hexdigest()


LINE_FIELDS = frozenset(
    {
        "account",
        "account_code",
        "account_role",
        "debit",
        "credit",
        "cost_center",
        "project",
        "department",
        "memo",
    }
)


def _prepare(resolver: _Resolver, spec: dict, index: int, bulk: bool) -> _Entry:
    prefix = _where(index, bulk)
    day = _as_date(spec.get("date"), prefix)
    raw_lines = spec.get("lines") or []
    if len(raw_lines) < 2:
        raise ValidationFailed(
            f"{prefix}an entry needs at least two lines; it has {len(raw_lines)}.",
            code="too_few_lines",
        )
    if len(raw_lines) > MAX_LINES_PER_ENTRY:
        raise ValidationFailed(
            f"{prefix}an entry takes at most {MAX_LINES_PER_ENTRY} lines.", code="too_many_lines"
        )
    lines, debits, credits = [], ZERO, ZERO
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{prefix}line {number}: "
        if not isinstance(raw, dict):
            raise ValidationFailed(f"{where}a line must be an object.", code="invalid")
        unknown = raw.keys() - LINE_FIELDS
        if unknown:
            raise ValidationFailed(
                f"{where}unknown field(s) {', '.join(sorted(unknown))}.", code="invalid"
            )
        debit = _amount(raw.get("debit"), what="debit", prefix=where)
        credit = _amount(raw.get("credit"), what="credit", prefix=where)
        if debit and credit:
            raise ValidationFailed(
                f"{where}a line has a debit or a credit, not both.", code="both_sides"
            )
        if not debit and not credit:
            raise ValidationFailed(f"{where}the amount is zero.", code="zero_amount")
        lines.append(
            _Line(
                account=resolver.account(raw, where),
                debit=debit,
                credit=credit,
                cost_center_id=resolver.dimension(raw, "cost_center", where),
                project_id=resolver.dimension(raw, "project", where),
                department_id=resolver.dimension(raw, "department", where),
                memo=_text(raw.get("memo"), 500, "the memo", where),
            )
        )
        debits += debit
        credits += credit
    if debits >= MAX_AMOUNT or credits >= MAX_AMOUNT:
        raise ValidationFailed(
            f"{prefix}the entry totals {max(debits, credits):,}; an entry stays under "
            f"{MAX_AMOUNT:,}. Split it.",
            code="invalid_amount",
        )
    if debits != credits:
        difference = debits - credits
        side = "debits exceed credits" if difference > 0 else "credits exceed debits"
        raise ValidationFailed(
            f"{prefix}the entry does not balance: debits {debits}, credits {credits}; "
            f"{side} by {abs(difference)}.",
            code="unbalanced",
            fields={"difference": [str(difference)]},
        )
    memo = _text(spec.get("memo"), 500, "the memo", prefix)
    source_type = _text(spec.get("source_type"), 50, "the source type", prefix) or "manual"
    source_id = _text(spec.get("source_id"), 64, "the source id", prefix)
    digest = _digest(day, memo, source_type, source_id, lines)
    key = str(spec.get("idempotency_key") or "").strip()
    if len(key) > 150:
        raise ValidationFailed(
            f"{prefix}the idempotency key is longer than 150 characters.", code="invalid"
        )
    return _Entry(
        index=index,
        date=day,
        period=None,  # set once the chain lock is held (_post)
        memo=memo,
        source_type=source_type,
        source_id=source_id,
        key=key or f"auto:{digest}:{timezone.now().timestamp()}:{index}",
        lines=lines,
        total=debits,
        digest=digest,
        reversal_of_id=spec.get("reversal_of_id"),
        reversal_reason=str(spec.get("reversal_reason") or "")[:500],
    )


def _lock_chain(company: Company) -> str:
    """Take the company's posting lock (its chain head row) and return the last hash."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = f"SELECT last_hash FROM accounting_ledgerchain WHERE company_id = %s{lock}"  # noqa: S608 - only %s placeholders are formatted in
    row = _rows(sql, [company.pk])
    if not row:
        LedgerChain.objects.get_or_create(company=company)
        row = _rows(sql, [company.pk])
    return row[0][0] or GENESIS_HASH


def _next_numbers(fiscal_year_id: int, count: int) -> int:
    """Reserve `count` numbers from the year's counter row; returns the first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounting_entrycounter SET last_number = last_number + %s "
            "WHERE fiscal_year_id = %s RETURNING last_number",
            [count, fiscal_year_id],
        )
        row = cursor.fetchone()
    if row is None:
        EntryCounter.objects.create(
            company_id=FiscalYear.objects.get(pk=fiscal_year_id).company_id,
            fiscal_year_id=fiscal_year_id,
            last_number=count,
        )
        return 1
    return row[0] - count + 1


_BALANCE_UPSERT = """
INSERT INTO accounting_accountbalance
    (company_id, period_id, account_id, cost_center_key, project_key, department_key, closing,
     debit, credit)
SELECT l.company_id, e.period_id, l.account_id, COALESCE(l.cost_center_id, 0),
       COALESCE(l.project_id, 0), COALESCE(l.department_id, 0),
       e.source_type = %s, SUM(l.debit), SUM(l.credit)
  FROM accounting_journalline l
  JOIN accounting_journalentry e ON e.id = l.entry_id
 WHERE l.company_id = %s AND l.entry_id BETWEEN %s AND %s
 GROUP BY l.company_id, e.period_id, l.account_id, COALESCE(l.cost_center_id, 0),
          COALESCE(l.project_id, 0), COALESCE(l.department_id, 0), e.source_type = %s
ON CONFLICT (period_id, account_id, cost_center_key, project_key, department_key, closing)
DO UPDATE SET debit = accounting_accountbalance.debit + excluded.debit,
              credit = accounting_accountbalance.credit + excluded.credit
"""


def _existing_by_id(ids: list[int]) -> dict[str, JournalEntry]:
    if not ids:
        return {}
    entries = JournalEntry.objects.select_related("fiscal_year").in_bulk(ids)
    return {entry.idempotency_key: entry for entry in entries.values()}


def _post(
    *, actor, system_job: str, company: Company, specs: list[dict], bulk: bool
) -> list[JournalEntry]:
    if not specs:
        return []
    days = [_as_date(spec.get("date"), _where(index, bulk)) for index, spec in enumerate(specs)]
    resolver = _Resolver(company, specs, first=min(days), last=max(days))
    prepared = [_prepare(resolver, spec, index, bulk) for index, spec in enumerate(specs)]
    seen: dict[str, int] = {}
    for entry in prepared:
        if entry.key in seen:
            raise ValidationFailed(
                f"Entries {seen[entry.key] + 1} and {entry.index + 1} share the idempotency key "
                f"'{entry.key}'.",
                code="duplicate_idempotency_key",
            )
        seen[entry.key] = entry.index

    chain_hash = resolver.chain_hash
    for entry in prepared:
        entry.period = resolver.period(entry.date, _where(entry.index, bulk))
    existing = _existing_by_id(resolver.existing_ids)
    results: dict[int, JournalEntry] = {}
    fresh: list[_Entry] = []
    for entry in prepared:
        earlier = existing.get(entry.key)
        if earlier is None:
            fresh.append(entry)
        elif earlier.content_digest != entry.digest:
            raise ConflictError(
                f"{_where(entry.index, bulk)}the idempotency key '{entry.key}' was already used "
                "for a different entry.",
                code="idempotency_conflict",
            )
        else:
            earlier.replayed = True
            results[entry.index] = earlier
    audited = bool(fresh) and _insert(
        actor, system_job, company, chain_hash, fresh, results, bulk=bulk
    )
    ordered = [results[i] for i in range(len(prepared))]
    replayed = {e.pk for e in existing.values()}
    new = [e for e in ordered if e.pk not in replayed]
    if audited:
        pass  # written with the entry, in the same statement
    elif new and not bulk:
        entry = new[0]
        audit_record(
            action="journal_entry.posted",
            actor=actor,
            system_job=system_job,
            company=company,
            obj=entry,
            after={
                "number": entry.reference,
                "date": entry.date,
                "total": entry.total,
                "source": f"{entry.source_type}:{entry.source_id}".rstrip(":"),
            },
        )
    elif new:
        audit_record(
            action="journal_entries.bulk_posted",
            actor=actor,
            system_job=system_job,
            company=company,
            after={
                "entries": len(new),
                "lines": sum(len(p.lines) for p in fresh),
                "first": new[0].reference,
                "last": new[-1].reference,
                "total": sum((e.total for e in new), ZERO),
            },
        )
    return ordered


_ENTRY_FIELDS = [f.attname for f in JournalEntry._meta.concrete_fields]
_LINE_COLUMNS = ("entry_id", "company_id", *HASHED_LINE_FIELDS)


def _insert(actor, system_job, company, chain_hash, fresh, results, *, bulk: bool) -> bool:
    """Write `fresh` entries; returns True when the audit event was written with them."""
    posted_at = timezone.now()
    label = _actor_label(actor, system_job)
    posted_by_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    by_year: dict[int, list[_Entry]] = defaultdict(list)
    for entry in fresh:
        by_year[entry.period.fiscal_year_id].append(entry)
    numbers: dict[int, int] = {}
    for year_id in sorted(by_year):
        first = _next_numbers(year_id, len(by_year[year_id]))
        for offset, entry in enumerate(by_year[year_id]):
            numbers[entry.index] = first + offset

    prev_hash = chain_hash
    values, line_rows = [], []
    for entry in fresh:
        line_tuples = [
            (
                n,
                line.account.pk,
                line.debit,
                line.credit,
                line.cost_center_id,
                line.project_id,
                line.department_id,
                line.memo,
            )
            for n, line in enumerate(entry.lines, start=1)
        ]
        digest = entry_hash(
            prev_hash=prev_hash,
            company_id=company.pk,
            fiscal_year=entry.period.year_name,
            period_id=entry.period.pk,
            number=numbers[entry.index],
            entry_date=entry.date,
            memo=entry.memo,
            source_type=entry.source_type,
            source_id=entry.source_id,
            idempotency_key=entry.key,
            total=entry.total,
            posted_at=posted_at,
            posted_by_label=label,
            reversal_of_id=entry.reversal_of_id,
            lines=line_tuples,
        )
        values.append(
            {
                "id": None,
                "company_id": company.pk,
                "fiscal_year_id": entry.period.fiscal_year_id,
                "period_id": entry.period.pk,
                "number": numbers[entry.index],
                "date": entry.date,
                "memo": entry.memo,
                "source_type": entry.source_type,
                "source_id": entry.source_id,
                "idempotency_key": entry.key,
                "content_digest": entry.digest,
                "total": entry.total,
                "status": EntryStatus.POSTED.value,
                "reversal_of_id": entry.reversal_of_id,
                "reversal_reason": entry.reversal_reason,
                "posted_by_id": posted_by_id,
                "posted_by_label": label,
                "posted_at": posted_at,
                "prev_hash": prev_hash,
                "entry_hash": digest,
            }
        )
        line_rows.append(line_tuples)
        prev_hash = digest
    audited = False
    if connection.vendor == "postgresql" and not bulk:
        row = values[0]
        reference = f"JE/{fresh[0].period.year_name}/{row['number']:06d}"
        audit = {
            "repr": reference,
            "after": {
                "number": reference,
                "date": row["date"],
                "total": row["total"],
                "source": f"{row['source_type']}:{row['source_id']}".rstrip(":"),
            },
        }
        ids = _insert_one_pg(company, row, line_rows[0], audit)
        audited = True
    else:
        if connection.vendor == "postgresql":
            ids = _copy_in(company, values, line_rows)
        else:
            ids = _bulk_create(values, line_rows, company)
        with connection.cursor() as cursor:
            cursor.execute(
                _BALANCE_UPSERT, [YEAR_END_CLOSE, company.pk, min(ids), max(ids), YEAR_END_CLOSE]
            )
            cursor.execute(
                "UPDATE accounting_ledgerchain SET last_entry_id = %s, last_hash = %s "
                "WHERE company_id = %s",
                [ids[-1], prev_hash, company.pk],
            )
    years = {}
    for entry, row, pk in zip(fresh, values, ids, strict=True):
        row["id"] = pk
        # Positional arguments in field order: Django's fast path for building instances.
        instance = JournalEntry(*(row[name] for name in _ENTRY_FIELDS))
        instance._state.adding = False
        year_id = row["fiscal_year_id"]
        if year_id not in years:
            years[year_id] = FiscalYear(
                pk=year_id, company_id=company.pk, name=entry.period.year_name
            )
        instance.fiscal_year = years[year_id]
        instance.replayed = False
        results[entry.index] = instance
    return audited


_ONE_ENTRY_SQL = """
WITH e AS (
    INSERT INTO accounting_journalentry ({entry_columns}) VALUES ({entry_marks})
    RETURNING id, period_id
), l AS (
    INSERT INTO accounting_journalline ({line_columns})
    SELECT e.id, %s, v.line_no, v.account_id, v.debit, v.credit, v.cost_center_id,
           v.project_id, v.department_id, v.memo
      FROM e, (VALUES {line_values})
        AS v (line_no, account_id, debit, credit, cost_center_id, project_id, department_id, memo)
    RETURNING account_id, debit, credit, cost_center_id, project_id, department_id
), b AS (
    INSERT INTO accounting_accountbalance
        (company_id, period_id, account_id, cost_center_key, project_key, department_key,
         closing, debit, credit)
    SELECT %s, (SELECT period_id FROM e), account_id, COALESCE(cost_center_id, 0),
           COALESCE(project_id, 0), COALESCE(department_id, 0), %s, SUM(debit), SUM(credit)
      FROM l
     GROUP BY account_id, COALESCE(cost_center_id, 0), COALESCE(project_id, 0),
              COALESCE(department_id, 0)
    ON CONFLICT (period_id, account_id, cost_center_key, project_key, department_key, closing)
    DO UPDATE SET debit = accounting_accountbalance.debit + excluded.debit,
                  credit = accounting_accountbalance.credit + excluded.credit
), c AS (
    UPDATE accounting_ledgerchain SET last_entry_id = (SELECT id FROM e), last_hash = %s
     WHERE company_id = %s
), a AS (
    INSERT INTO core_auditevent
        (company_id, actor_id, actor_label, action, object_type, object_id, object_repr,
         after, request_id, created_at)
    SELECT %s, %s, %s, 'journal_entry.posted', 'accounting.journalentry', e.id::text, %s,
           %s::jsonb, %s, %s
      FROM e
)
SELECT id FROM e
"""
_ONE_LINE_MARKS = (
    "(%s::int, %s::bigint, %s::numeric, %s::numeric, %s::bigint, %s::bigint, %s::bigint, %s::text)"
)


def _insert_one_pg(company, row: dict, lines: list[tuple], audit: dict) -> list[int]:
    """PostgreSQL, one entry: the entry, its lines, its balances, the chain head and the audit
    event in a single statement (data-modifying CTEs), one round trip instead of seven. The
    triggers fire at the end of the statement as for separate INSERTs."""
    import psycopg

    entry_columns = [name for name in _ENTRY_FIELDS if name != "id"]
    sql = _ONE_ENTRY_SQL.format(
        entry_columns=", ".join(entry_columns),
        entry_marks=", ".join(["%s"] * len(entry_columns)),
        line_columns=", ".join(_LINE_COLUMNS),
        line_values=", ".join([_ONE_LINE_MARKS] * len(lines)),
    )
    params = [row[name] for name in entry_columns]
    params.append(company.pk)
    for line in lines:
        params.extend(line)
    params += [company.pk, row["source_type"] == YEAR_END_CLOSE, row["entry_hash"], company.pk]
    params += [
        company.pk,
        row["posted_by_id"],
        row["posted_by_label"],
        audit["repr"],
        json.dumps(audit["after"], cls=DjangoJSONEncoder),
        get_guid() or "",
        row["posted_at"],
    ]
    try:
        with connection.cursor() as cursor:  # the caller's transaction rolls back on error
            cursor.execute(sql, params)
            return [cursor.fetchone()[0]]
    except IntegrityError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.CheckViolation):
            raise
        reason = str(exc).splitlines()[0]
        raise ConflictError(
            f"The ledger refused the posting: {reason}. Nothing was posted.",
            code="ledger_refused",
        ) from None


def _copy_in(company, values, line_rows) -> list[int]:
    """PostgreSQL: reserve the ids, then COPY entries and lines. COPY fires the same INSERT
    triggers as INSERT (the statement-level checks and the deferred balance check), and is
    several times faster than multi-row INSERTs built by the ORM."""
    import psycopg

    try:
        return _copy_rows(company, values, line_rows)
    except psycopg.IntegrityError as exc:
        # A rule the checks above could not see yet, e.g. a period locked by another
        # transaction while this one waited for it: the database refused; say why.
        reason = str(exc).splitlines()[0]
        raise ConflictError(
            f"The ledger refused the posting: {reason}. Nothing was posted.",
            code="ledger_refused",
        ) from None


def _copy_rows(company, values, line_rows) -> list[int]:
    from core.rls import copy_from

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('accounting_journalentry', 'id')) "
            "FROM generate_series(1, %s)",
            [len(values)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        # A plain COPY, or inside a tenant scope (RLS refuses COPY FROM) a COPY into a
        # temporary table and one INSERT ... SELECT: the same triggers either way.
        with copy_from(cursor, "accounting_journalentry", _ENTRY_FIELDS) as copy:
            for pk, row in zip(ids, values, strict=True):
                row["id"] = pk
                copy.write_row([row[name] for name in _ENTRY_FIELDS])
        with copy_from(cursor, "accounting_journalline", _LINE_COLUMNS) as copy:
            for pk, lines in zip(ids, line_rows, strict=True):
                for line in lines:
                    copy.write_row((pk, company.pk, *line))
    return ids


def _bulk_create(values, line_rows, company) -> list[int]:
    """Other databases (the embedded SQLite): the ORM's bulk INSERTs."""
    entries = [JournalEntry(**{k: v for k, v in row.items() if k != "id"}) for row in values]
    JournalEntry.objects.bulk_create(entries, batch_size=2000)
    JournalLine.objects.bulk_create(
        (
            JournalLine(
                entry_id=entry.pk,
                company_id=company.pk,
                **dict(zip(_LINE_COLUMNS[2:], line, strict=True)),
            )
            for entry, lines in zip(entries, line_rows, strict=True)
            for line in lines
        ),
        batch_size=5000,
    )
    return [entry.pk for entry in entries]


RESERVED_KEY_PREFIXES = ("reversal:", "year-end-close:", "auto:")
PUBLIC_ENTRY_FIELDS = frozenset(
    {"date", "lines", "memo", "source_type", "source_id", "idempotency_key"}
)


def _check_public_spec(spec: dict, prefix: str) -> None:
    """What callers may send. Reversal links and closing entries are made by this module's own
    services only (a `year_end_close` entry would be left out of profit and loss)."""
    if not isinstance(spec, dict):
        raise ValidationFailed(f"{prefix}an entry must be an object.", code="invalid")
    unknown = set(spec) - PUBLIC_ENTRY_FIELDS
    if unknown:
        raise ValidationFailed(
            f"{prefix}unknown field(s) {', '.join(sorted(unknown))}.", code="invalid"
        )
    key = str(spec.get("idempotency_key") or "")
    if key.startswith(RESERVED_KEY_PREFIXES):
        raise ValidationFailed(
            f"{prefix}idempotency keys starting with "
            f"{', '.join(RESERVED_KEY_PREFIXES)} are reserved for the ledger's own entries.",
            code="reserved_idempotency_key",
        )
    if spec.get("source_type") == YEAR_END_CLOSE:
        raise ValidationFailed(
            f"{prefix}the source type '{YEAR_END_CLOSE}' is reserved for the year-end close.",
            code="reserved_source_type",
        )


def journal_entry_post(
    *,
    actor=None,
    system_job: str = "",
    company: Company,
    date,
    lines: list[dict],
    memo: str = "",
    source_type: str = "manual",
    source_id: str = "",
    idempotency_key: str = "",
) -> JournalEntry:
    """Post one balanced entry. Each line is a dict with one of `account` (Account or id),
    `account_code` or `account_role`; `debit` or `credit` as a decimal string or Decimal; and
    optionally `cost_center`, `project`, `department` (object or id) and `memo`.

    The same idempotency key with the same content returns the entry posted first; with
    different content it raises ConflictError (409). The entry returned has `replayed` set
    to True when it was posted before."""
    _require_role(actor, company, MANAGE_ROLES, "post journal entries")
    spec = {
        "date": date,
        "lines": lines,
        "memo": memo,
        "source_type": source_type,
        "source_id": source_id,
        "idempotency_key": idempotency_key,
    }
    _check_public_spec(spec, "")
    with transaction.atomic():
        return _post(actor=actor, system_job=system_job, company=company, specs=[spec], bulk=False)[
            0
        ]


def journal_entries_post_bulk(
    *, actor=None, system_job: str = "", company: Company, entries: list[dict]
) -> list[JournalEntry]:
    """Post many entries in one transaction, all or nothing: each a dict with the keyword
    arguments of journal_entry_post. Validation, numbering, hashing and balances are done for
    the whole batch at once; the database sees a few multi-row INSERTs. Entries whose key was
    posted before with the same content come back as they were (a retried batch posts
    nothing twice)."""
    _require_role(actor, company, MANAGE_ROLES, "post journal entries")
    for index, spec in enumerate(entries):
        _check_public_spec(spec, f"Entry {index + 1}: ")
    with transaction.atomic():
        return _post(actor=actor, system_job=system_job, company=company, specs=entries, bulk=True)


@transaction.atomic
def journal_entry_reverse(
    *, actor=None, system_job: str = "", entry: JournalEntry, date, reason: str
) -> JournalEntry:
    """Post the mirror image of `entry` on `date` and mark `entry` reversed. An entry is
    reversed once (409 `already_reversed` after that)."""
    company = entry.company
    _require_role(actor, company, MANAGE_ROLES, "reverse journal entries")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why the entry is reversed.", code="reason_required")
    day = _as_date(date, "")
    _lock_chain(company)
    entry = JournalEntry.objects.select_related("fiscal_year").get(pk=entry.pk)
    if entry.status == EntryStatus.REVERSED:
        reversal = JournalEntry.objects.filter(reversal_of=entry).first()
        raise ConflictError(
            f"{entry.reference} is already reversed by {reversal.reference if reversal else '?'}.",
            code="already_reversed",
        )
    if entry.source_type == YEAR_END_CLOSE:
        raise ConflictError(
            f"{entry.reference} is a year-end closing entry; it cannot be reversed.",
            code="closing_entry",
        )
    if entry.reversal_of_id is not None:
        raise ConflictError(
            f"{entry.reference} is itself a reversal; post a new entry instead.",
            code="reversal_of_reversal",
        )
    if day < entry.date:
        raise ValidationFailed(
            f"A reversal cannot be dated before the entry it reverses ({entry.date}).",
            code="invalid_date",
        )
    lines = [
        {
            "account": line.account_id,
            "debit": line.credit,
            "credit": line.debit,
            "cost_center": line.cost_center_id,
            "project": line.project_id,
            "department": line.department_id,
            "memo": line.memo,
        }
        for line in entry.lines.order_by("line_no")
    ]
    spec = {
        "date": day,
        "lines": lines,
        "memo": f"Reversal of {entry.reference}: {reason}"[:500],
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "idempotency_key": f"reversal:{entry.pk}",
        "reversal_of_id": entry.pk,
        "reversal_reason": reason,
    }
    # An account deactivated since must be reactivated first: the database refuses postings
    # to inactive accounts, reversals included, and the resolver says so by name.
    reversal = _post(actor=actor, system_job=system_job, company=company, specs=[spec], bulk=False)[
        0
    ]
    updated = JournalEntry.objects.filter(pk=entry.pk, status=EntryStatus.POSTED).update(
        status=EntryStatus.REVERSED
    )
    if updated != 1:
        raise ConflictError(f"{entry.reference} changed meanwhile.", code="already_reversed")
    audit_record(
        action="journal_entry.reversed",
        actor=actor,
        system_job=system_job,
        company=company,
        obj=entry,
        before={"status": EntryStatus.POSTED},
        after={"status": EntryStatus.REVERSED, "reversal": reversal.reference, "reason": reason},
    )
    return reversal


# --- year-end closing ------------------------------------------------------------------------


@transaction.atomic
def fiscal_year_close(*, actor=None, system_job: str = "", fiscal_year: FiscalYear) -> FiscalYear:
    """Move the year's profit or loss to retained earnings and close the year.

    The closing entry is dated the year's last day, in its last period, and zeroes every income
    and expense account per dimension combination against the retained-earnings role account.
    Then every period of the year and the year itself are closed, in the same transaction."""
    company = fiscal_year.company
    _require_role(actor, company, MANAGE_ROLES, "close a fiscal year")
    _lock_chain(company)  # the posting lock order: chain, then year and periods
    year = FiscalYear.objects.select_for_update().get(pk=fiscal_year.pk)
    if year.status == FiscalYear.Status.CLOSED:
        raise ConflictError(f"{year} is already closed.", code="fiscal_year_closed")
    earlier_open = FiscalYear.objects.filter(
        company=company, start_date__lt=year.start_date, status=FiscalYear.Status.OPEN
    ).first()
    if earlier_open is not None:
        raise ConflictError(f"Close {earlier_open} first.", code="close_in_order")
    retained = account_for_role(company=company, role=AccountRoleName.RETAINED_EARNINGS)
    periods = list(
        AccountingPeriod.objects.select_for_update().filter(fiscal_year=year).order_by("number")
    )
    sums = (
        AccountBalance.objects.filter(
            period__fiscal_year=year, account__type__in=PROFIT_AND_LOSS_TYPES
        )
        .values("account_id", "cost_center_key", "project_key", "department_key")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .order_by("account__code", "cost_center_key", "project_key", "department_key")
    )
    lines, net_profit = [], ZERO
    for row in sums:
        # A debit balance is a loss, a credit one a profit. (Quantized: SQLite sums in floats.)
        net = (row["debit"] - row["credit"]).quantize(CENT)
        if not net:
            continue
        net_profit -= net
        lines.append(
            {
                "account": row["account_id"],
                "debit": -net if net < 0 else ZERO,
                "credit": net if net > 0 else ZERO,
                "cost_center": row["cost_center_key"] or None,
                "project": row["project_key"] or None,
                "department": row["department_key"] or None,
            }
        )
    last = periods[-1]
    entry = None
    if lines:
        if net_profit:
            lines.append(
                {
                    "account": retained.pk,
                    "credit": net_profit if net_profit > 0 else ZERO,
                    "debit": -net_profit if net_profit < 0 else ZERO,
                    "memo": "Profit for the year" if net_profit > 0 else "Loss for the year",
                }
            )
        # The closing entry belongs to the year's last day even when that period was already
        # locked or closed: open it for this one posting, all inside this transaction.
        AccountingPeriod.objects.filter(pk=last.pk).update(status=PeriodStatus.OPEN)
        last.status = PeriodStatus.OPEN
        resolver_lines = _reactivate_for_closing(company, lines)
        entry = _post(
            actor=actor,
            system_job=system_job,
            company=company,
            specs=[
                {
                    "date": year.end_date,
                    "lines": resolver_lines,
                    "memo": f"Year-end close {year.name}: profit and loss to retained earnings",
                    "source_type": YEAR_END_CLOSE,
                    "source_id": str(year.pk),
                    "idempotency_key": f"year-end-close:{year.pk}",
                }
            ],
            bulk=False,
        )[0]
    now = timezone.now()
    by = actor if getattr(actor, "is_authenticated", False) else None
    AccountingPeriod.objects.filter(fiscal_year=year).update(
        status=PeriodStatus.CLOSED, status_changed_at=now, status_changed_by=by
    )
    year.status = FiscalYear.Status.CLOSED
    year.closed_at = now
    year.closed_by = by
    year.closing_entry = entry
    year.save(update_fields=["status", "closed_at", "closed_by", "closing_entry"])
    audit_record(
        action="fiscal_year.closed",
        actor=actor,
        system_job=system_job,
        company=company,
        obj=year,
        after={
            "net_profit": net_profit,
            "closing_entry": entry.reference if entry else None,
        },
    )
    return year


def _reactivate_for_closing(company: Company, lines: list[dict]) -> list[dict]:
    """Income and expense accounts deactivated during the year still carry a balance that must
    be closed; refuse with a clear message rather than leave it behind."""
    ids = {line["account"] for line in lines}
    inactive = list(
        Account.objects.filter(company=company, pk__in=ids)
        .filter(Q(is_active=False) | Q(is_postable=False))
        .order_by("code")
    )
    if inactive:
        names = ", ".join(str(a) for a in inactive)
        raise ConflictError(
            f"These accounts carry a balance for the year but are inactive or headers: {names}. "
            "Reactivate them to close the year.",
            code="account_inactive",
        )
    return lines


# --- maintenance -----------------------------------------------------------------------------


@transaction.atomic
def balances_rebuild(*, company: Company) -> int:
    """Recompute a company's per-period balances from its journal lines, set-based, while
    its postings wait on the chain lock. Returns the number of balance rows."""
    _lock_chain(company)
    AccountBalance.objects.filter(company=company).delete()
    last = JournalEntry.objects.filter(company=company).order_by("-pk").values_list("pk").first()
    if last is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                _BALANCE_UPSERT, [YEAR_END_CLOSE, company.pk, 0, last[0], YEAR_END_CLOSE]
            )
    return AccountBalance.objects.filter(company=company).count()
