"""Every write to banking's core: settings, bank accounts, book transactions and their posting,
transfers between own accounts, branch cash submissions, petty cash floats.

(Reconciliation lives in banking/reconciliation.py, statement import in banking/imports.py.)

Each service is keyword-only, runs in one transaction, validates, writes, and records an audit
event. Postings go through `accounting.services.journal_entry_post` as the system job `banking`
(clerks may post bank transactions; the ledger accepts only owners and accountants as user
actors), with the acting user on the audit trail; every journal line carries the cost centre,
project and department of what it posts. Idempotency keys:

    banking.txn:<transaction id>              a bank transaction's posting
    banking.cash.submit:<submission id>       Dr cash in transit / Cr branch cash
    banking.cash.deposit:<submission id>      Dr bank / Cr cash in transit (± cash over/short)
    banking.float.replenish:<replenishment>   Dr expenses (± over/short) / Cr bank

Accounts come from roles: fee → bank_fees, interest → interest_income, transfer →
internal_transfer (the transit account), cash_in_transit, petty_cash, cash_over_short.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from accounting.models import (
    Account,
    AccountRole,
    AccountRoleName,
    AccountType,
    CostCenter,
    Department,
    JournalEntry,
    Project,
)
from accounting.services import account_for_role, journal_entry_post
from banking.errors import AlreadyPosted, InvalidTransition, VersionConflict
from banking.models import (
    BankAccount,
    BankingSettings,
    BankTransaction,
    BankTransfer,
    BankTransferAllocation,
    CashSubmission,
    CashSubmissionStatus,
    Direction,
    FloatAllocation,
    FloatReplenishment,
    FloatStatus,
    MatchStatus,
    PettyCashVoucher,
    PostingStatus,
    TransactionKind,
    TransactionSource,
    TransferLeg,
    TransferStatus,
    VoucherStatus,
)
from core.errors import PermissionDeniedError, ValidationFailed
from core.models import Company, Membership
from core.money import ZERO, money
from core.roles import Role, roles_for
from core.services import audit_record, model_snapshot

SYSTEM_JOB = "banking"
# Days either side of a statement line's date for a match: the matcher's own default
# (banking.matching.MatchConfig) and BankingSettings.match_window_days' default.
MATCH_WINDOW_DAYS = 3
SOURCE_TYPE = "banking"

# --- who may do what -------------------------------------------------------------------------


def _require_write(actor, company: Company, *, doing: str = "change banking records") -> None:
    """System jobs (actor None) and platform administrators pass; members need a role that
    writes the `banking` scope (owner, accountant, clerk). A user of another company has no role
    here: refused, with "Only an … may {doing}."."""
    if actor is None or getattr(actor, "is_superuser", False):
        return
    allowed = roles_for("banking", write=True)
    role = (
        Membership.objects.filter(user=actor, company=company)
        .values_list("role", flat=True)
        .first()
    )
    if role not in allowed:
        names = ", ".join(sorted(Role(r).label.lower() for r in allowed))
        raise PermissionDeniedError(f"Only an {names} may {doing}.", code="role_required")


def _job(system_job: str) -> str:
    return system_job or SYSTEM_JOB


# --- input helpers ---------------------------------------------------------------------------


def _invalid(field: str, message: str, code: str = "invalid") -> ValidationFailed:
    return ValidationFailed(message, code=code, fields={field: [message]})


def _amount(value, field: str, *, positive: bool = True, allow_zero: bool = False) -> Decimal:
    if value in (None, ""):
        raise _invalid(field, f"{_label(field)}: an amount is required.")
    if isinstance(value, float | bool):
        raise _invalid(field, f"{_label(field)}: a decimal string, not {value!r}.")
    try:
        raw = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _invalid(field, f"{_label(field)}: {value!r} is not a number.") from None
    if not raw.is_finite():
        raise _invalid(field, f"{_label(field)}: {value!r} is not a number.")
    if raw != raw.quantize(Decimal("0.01")):
        raise _invalid(field, f"{_label(field)}: at most two decimal places.")
    amount = money(raw)
    if positive and (amount < 0 or (amount == 0 and not allow_zero)):
        more = "zero or more" if allow_zero else "more than zero"
        raise _invalid(field, f"{_label(field)}: must be {more}.")
    if abs(amount) >= Decimal("1e16"):
        raise _invalid(field, f"{_label(field)}: too large.")
    return amount


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


def _as_date(value, field: str, *, required: bool = True) -> date | None:
    if value in (None, ""):
        if required:
            raise _invalid(field, f"{_label(field)}: a date is required (YYYY-MM-DD).")
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _invalid(field, f"{_label(field)}: {value!r} is not a date (YYYY-MM-DD).") from None


def _text(value, field: str, limit: int) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > limit:
        raise _invalid(field, f"{_label(field)}: at most {limit} characters.")
    return text


def _pk(value):
    return getattr(value, "pk", value)


def _account(company: Company, value, field: str) -> Account:
    """A postable, active ledger account of the company (object or id)."""
    if value in (None, ""):
        raise _invalid(field, f"{_label(field)}: an account is required.")
    found = Account.objects.filter(company=company, pk=_pk(value)).first()
    if found is None:
        raise _invalid(field, f"{_label(field)}: no such account in this company.")
    if not found.is_postable or not found.is_active:
        raise _invalid(
            field, f"{_label(field)}: account {found.code} is not an active postable account."
        )
    return found


_DIMENSIONS = {"cost_center": CostCenter, "project": Project, "department": Department}


def _dimensions(company: Company, values: dict) -> dict:
    """`{"cost_center": id|obj|None, ...}` → ids checked to be the company's (None kept)."""
    out = {}
    for name, model in _DIMENSIONS.items():
        value = values.get(name)
        if value in (None, ""):
            out[f"{name}_id"] = None
            continue
        pk = _pk(value)
        if not model.objects.filter(company=company, pk=pk).exists():
            raise _invalid(name, f"{_label(name)}: no such {model._meta.verbose_name} here.")
        out[f"{name}_id"] = pk
    return out


def _dims_of(obj) -> dict:
    return {
        "cost_center": obj.cost_center_id,
        "project": obj.project_id,
        "department": obj.department_id,
    }


def _full_clean(obj, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_constraints=False)
    except ValidationError as exc:
        raise ValidationFailed.from_django(exc) from None


def _check_version(obj, expected_version) -> None:
    if expected_version in (None, ""):
        return
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise _invalid("expected_version", "Expected version: a whole number.") from None
    if expected != obj.version:
        raise VersionConflict(
            f"{obj._meta.verbose_name.capitalize()} {obj.pk} is at version {obj.version}, "
            f"not {expected}: it was changed meanwhile; reload it and try again.",
            fields={"expected_version": [f"The current version is {obj.version}."]},
        )


def _unknown_refuse(fields: dict, allowed) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}.",
            code="invalid",
            fields={name: ["Unknown field."] for name in unknown},
        )


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankingThresholds:
    """A company's effective banking settings (its BankingSettings row over the defaults)."""

    reconciliation_threshold: Decimal
    variance_alert_threshold: Decimal
    auto_accept_confidence: Decimal
    match_window_days: int
    alert_recipients: tuple[str, ...]

    def auto_accept_for(self, bank_account: BankAccount | None) -> Decimal:
        """The account's own auto-accept confidence where set, else the company's."""
        if bank_account is not None and bank_account.auto_accept_confidence is not None:
            return bank_account.auto_accept_confidence
        return self.auto_accept_confidence


def banking_settings_for(company: Company) -> BankingThresholds:
    row = BankingSettings.objects.filter(company=company).first()

    def pick(value, setting: str, default: str) -> Decimal:
        if value is not None:
            return value
        return Decimal(str(getattr(settings, setting, default)))

    return BankingThresholds(
        reconciliation_threshold=money(
            pick(
                row and row.reconciliation_threshold, "BANKING_RECONCILIATION_THRESHOLD", "1000.00"
            )
        ),
        variance_alert_threshold=money(
            pick(
                row and row.variance_alert_threshold, "BANKING_VARIANCE_ALERT_THRESHOLD", "5000.00"
            )
        ),
        auto_accept_confidence=pick(
            row and row.auto_accept_confidence, "BANKING_AUTO_ACCEPT_CONFIDENCE", "0.95"
        ),
        match_window_days=row.match_window_days if row else MATCH_WINDOW_DAYS,
        alert_recipients=tuple(
            address.strip()
            for address in (row.alert_recipients if row else "").replace(";", ",").split(",")
            if address.strip()
        ),
    )


SETTINGS_FIELDS = (
    "reconciliation_threshold",
    "variance_alert_threshold",
    "auto_accept_confidence",
    "match_window_days",
    "alert_recipients",
)


def _confidence(value, name: str) -> Decimal | None:
    """An auto accept confidence from 0 to 1; empty (None or "") means "use the default"."""
    if value in (None, ""):
        return None
    try:
        value = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _invalid(name, "Auto accept confidence: a number from 0 to 1.") from None
    if not (0 <= value <= 1):
        raise _invalid(name, "Auto accept confidence: a number from 0 to 1.")
    return value


@transaction.atomic
def banking_settings_update(*, actor, company: Company, **changes) -> BankingSettings:
    """Set a company's own thresholds; an empty value (None or "") falls back to the default."""
    _require_write(actor, company)
    _unknown_refuse(changes, SETTINGS_FIELDS)
    row, _ = BankingSettings.objects.select_for_update().get_or_create(company=company)
    before = model_snapshot(row)
    for name, value in changes.items():
        if name in ("reconciliation_threshold", "variance_alert_threshold"):
            value = None if value in (None, "") else _amount(value, name, allow_zero=True)
        elif name == "auto_accept_confidence":
            value = _confidence(value, name)
        elif name == "alert_recipients":
            value = _text(value, name, 2000)
        setattr(row, name, value)
    _full_clean(row, exclude=["company"])
    row.save()
    audit_record(
        action="banking.settings.update",
        actor=actor,
        company=company,
        obj=row,
        before=before,
        after=model_snapshot(row),
    )
    return row


# --- bank accounts ---------------------------------------------------------------------------

ACCOUNT_FIELDS = (
    "name",
    "ledger_account",
    "currency",
    "bank_name",
    "branch",
    "account_number_masked",
    "iban",
    "bic",
    "opening_balance",
    "opening_date",
    "is_active",
    "statement_mapping",
    "auto_accept_confidence",
)
# Accounts a bank account's postings run against: using one as the bank itself would post
# transfers and cash deposits against themselves.
_NOT_A_BANK = (AccountRoleName.INTERNAL_TRANSFER, AccountRoleName.CASH_IN_TRANSIT)


def iban_normalise(value) -> str:
    """`gb29 nwbk 6016 1331 9268 19` → `GB29NWBK60161331926819`; blank stays blank."""
    text = "".join(str(value or "").split()).replace("-", "").upper()
    if text and (not text.isalnum() or len(text) < 15 or len(text) > 34 or not text[:2].isalpha()):
        raise _invalid(
            "iban", f"IBAN {value!r} is not valid (2 letters, then up to 32 characters)."
        )
    if text:
        # ISO 13616 check digits: move the first four characters to the end, letters to
        # numbers (A=10), the number mod 97 must be 1.
        digits = "".join(str(int(ch, 36)) for ch in text[4:] + text[:4])
        if int(digits) % 97 != 1:
            raise _invalid("iban", f"IBAN {value!r}: the check digits do not match.")
    return text


def _validate_ledger_account(company: Company, value, *, exclude_pk=None) -> Account:
    account = _account(company, value, "ledger_account")
    if account.type != AccountType.ASSET:
        raise _invalid("ledger_account", f"Ledger account {account.code} is not an asset account.")
    taken = BankAccount.objects.filter(company=company, ledger_account=account)
    if exclude_pk:
        taken = taken.exclude(pk=exclude_pk)
    other = taken.first()
    if other is not None:
        raise _invalid(
            "ledger_account",
            f"Ledger account {account.code} is already used by bank account '{other.name}'.",
            code="ledger_account_taken",
        )
    role = (
        AccountRole.objects.filter(company=company, account=account, role__in=_NOT_A_BANK)
        .values_list("role", flat=True)
        .first()
    )
    if role:
        raise _invalid(
            "ledger_account",
            f"Ledger account {account.code} is the {AccountRoleName(role).label.lower()} "
            "account; a bank account needs its own.",
        )
    return account


def _apply_account_fields(company: Company, account: BankAccount, fields: dict) -> None:
    for name, value in fields.items():
        if name == "ledger_account":
            value = _validate_ledger_account(company, value, exclude_pk=account.pk)
        elif name == "name":
            value = _text(value, name, 100)
            if not value:
                raise _invalid("name", "Name: required.")
        elif name == "currency":
            value = _text(value, name, 3).upper() or company.base_currency
        elif name == "iban":
            value = iban_normalise(value)
            if value:
                clash = BankAccount.objects.filter(company=company, iban=value)
                if account.pk:
                    clash = clash.exclude(pk=account.pk)
                if clash.exists():
                    raise _invalid("iban", f"IBAN {value} belongs to another bank account.")
        elif name == "bic":
            value = _text(value, name, 11).replace(" ", "").upper()
        elif name in ("bank_name", "branch"):
            value = _text(value, name, 100)
        elif name == "account_number_masked":
            value = _text(value, name, 40)
        elif name == "opening_balance":
            value = _amount(value, name, positive=False)
        elif name == "opening_date":
            value = _as_date(value, name, required=False)
        elif name == "is_active":
            value = bool(value)
        elif name == "statement_mapping":
            value = _statement_mapping(value)
        elif name == "auto_accept_confidence":
            value = _confidence(value, name)
        setattr(account, name, value)


def _statement_mapping(value) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise _invalid("statement_mapping", "Statement mapping: an object of CSV column settings.")
    if not value:
        return {}
    try:  # bank-import's parser owns what a mapping may hold.
        from banking.parsers.csv import CsvMapping
    except ImportError:  # the parsers have not landed: keep the mapping as given.
        return value
    try:
        CsvMapping.from_dict(value)
    except ValueError as exc:  # CsvMappingError: `fields` maps each bad key to its messages
        details = getattr(exc, "fields", None) or {"mapping": [str(exc)]}
        messages = [f"{key}: {message}" for key, texts in details.items() for message in texts]
        raise ValidationFailed(
            f"Statement mapping: {messages[0]}",
            code="invalid_mapping",
            fields={"statement_mapping": messages},
        ) from None
    return value


@transaction.atomic
def bank_account_create(*, actor, company: Company, **fields) -> BankAccount:
    """A bank account on a ledger account (asset, postable, not another bank account's).
    Currency defaults to the company's base currency."""
    _require_write(actor, company)
    _unknown_refuse(fields, ACCOUNT_FIELDS)
    for required in ("name", "ledger_account"):
        if fields.get(required) in (None, ""):
            raise _invalid(required, f"{_label(required)}: required.")
    fields.setdefault("currency", company.base_currency)
    account = BankAccount(company=company)
    _apply_account_fields(company, account, fields)
    _full_clean(account, exclude=["company", "ledger_account"])
    account.save()
    audit_record(
        action="banking.account.create",
        actor=actor,
        company=company,
        obj=account,
        after=model_snapshot(account),
    )
    return account


@transaction.atomic
def bank_account_update(*, actor, bank_account: BankAccount, **changes) -> BankAccount:
    """Change a bank account. Its ledger account, currency and opening balance are fixed once
    it has posted transactions (they would rewrite the books' history)."""
    company = bank_account.company
    _require_write(actor, company)
    _unknown_refuse(changes, ACCOUNT_FIELDS)
    account = BankAccount.objects.select_for_update().get(pk=bank_account.pk)
    before = model_snapshot(account)
    fixed = {
        name
        for name in ("ledger_account", "currency", "opening_balance", "opening_date")
        if name in changes
    }
    if fixed and account.transactions.filter(posting_status=PostingStatus.POSTED).exists():
        current = {
            "ledger_account": account.ledger_account_id,
            "currency": account.currency,
            "opening_balance": account.opening_balance,
            "opening_date": account.opening_date,
        }
        trial = BankAccount(pk=account.pk, company=company)
        _apply_account_fields(company, trial, {name: changes[name] for name in fixed})
        changed = [
            name
            for name in fixed
            if (getattr(trial, name + "_id") if name == "ledger_account" else getattr(trial, name))
            != current[name]
        ]
        if changed:
            raise InvalidTransition(
                f"Bank account '{account.name}' has posted transactions: "
                f"{', '.join(_label(n).lower() for n in sorted(changed))} can no longer change.",
                code="account_in_use",
                fields={name: ["Fixed once transactions are posted."] for name in changed},
            )
    _apply_account_fields(company, account, changes)
    _full_clean(account, exclude=["company", "ledger_account"])
    account.save()
    audit_record(
        action="banking.account.update",
        actor=actor,
        company=company,
        obj=account,
        before=before,
        after=model_snapshot(account),
    )
    return account


# --- book transactions -----------------------------------------------------------------------

DEFAULT_COUNTER_ROLE = {
    TransactionKind.FEE: AccountRoleName.BANK_FEES,
    TransactionKind.INTEREST: AccountRoleName.INTEREST_INCOME,
    TransactionKind.TRANSFER: AccountRoleName.INTERNAL_TRANSFER,
}
KIND_DIRECTION = {
    TransactionKind.DEPOSIT: Direction.IN,
    TransactionKind.INTEREST: Direction.IN,
    TransactionKind.WITHDRAWAL: Direction.OUT,
    TransactionKind.FEE: Direction.OUT,
}
TRANSACTION_FIELDS = (
    "kind",
    "direction",
    "amount",
    "date",
    "value_date",
    "reference",
    "counterparty",
    "memo",
    "branch",
    "cost_center",
    "project",
    "department",
    "counter_account",
    "source",
    "source_id",
    "invoice",
)
EDITABLE_FIELDS = tuple(f for f in TRANSACTION_FIELDS if f not in ("source", "source_id"))


def _transaction_apply(
    txn: BankTransaction, fields: dict, *, counter_required: bool = True
) -> None:
    """Validate `fields` and set them on `txn` (kind first: direction and the counter account
    default from it). `counter_required=False` for transactions whose entry is posted
    elsewhere (the counter side lives in that entry)."""
    company = txn.company
    if "kind" in fields:
        kind = fields["kind"]
        if kind not in TransactionKind.values:
            raise _invalid(
                "kind", f"Kind: one of {', '.join(TransactionKind.values)}, not {kind!r}."
            )
        txn.kind = kind
    for name, value in fields.items():
        if name == "kind":
            continue
        if name == "direction":
            if value in (None, ""):
                value = ""
            elif value not in Direction.values:
                raise _invalid("direction", "Direction: 'in' or 'out'.")
            txn.direction = value
        elif name == "amount":
            txn.amount = _amount(value, name)
        elif name == "date":
            txn.date = _as_date(value, name)
        elif name == "value_date":
            txn.value_date = _as_date(value, name, required=False)
        elif name in ("reference",):
            txn.reference = _text(value, name, 140)
        elif name in ("counterparty",):
            txn.counterparty = _text(value, name, 200)
        elif name == "memo":
            txn.memo = _text(value, name, 500)
        elif name == "branch":
            txn.branch = _text(value, name, 100)
        elif name in _DIMENSIONS:
            setattr(txn, f"{name}_id", _dimensions(company, {name: value})[f"{name}_id"])
        elif name == "counter_account":
            if value in (None, ""):
                txn.counter_account = None
            else:
                txn.counter_account = _account(company, value, "counter_account")
        elif name == "source":
            if value not in TransactionSource.values:
                raise _invalid("source", f"Source: one of {', '.join(TransactionSource.values)}.")
            txn.source = value
        elif name == "source_id":
            txn.source_id = _text(value, name, 64)
        elif name == "invoice":
            txn.invoice_id = _invoice_id(company, value)
    # Direction follows the kind; a transfer must say which way.
    expected = KIND_DIRECTION.get(txn.kind)
    if expected is not None:
        if txn.direction and txn.direction != expected and "direction" in fields:
            raise _invalid(
                "direction",
                f"Direction: a {TransactionKind(txn.kind).label.lower()} is money "
                f"{'in' if expected == Direction.IN else 'out'}.",
            )
        txn.direction = expected
    elif not txn.direction:
        raise _invalid("direction", "Direction: a transfer needs 'in' or 'out'.")
    # The other side of the posting: the kind's default role where it has one.
    if txn.counter_account_id is None and txn.kind in DEFAULT_COUNTER_ROLE:
        txn.counter_account = account_for_role(company=company, role=DEFAULT_COUNTER_ROLE[txn.kind])
    if (
        counter_required
        and txn.counter_account_id is None
        and txn.source != TransactionSource.INVOICE_PAYMENT
    ):
        raise _invalid(
            "counter_account",
            f"Counter account: a {TransactionKind(txn.kind).label.lower()} needs the account "
            "it is paid from or into.",
            code="counter_account_required",
        )
    if txn.counter_account_id is not None and (
        txn.counter_account_id == txn.bank_account.ledger_account_id
    ):
        raise _invalid(
            "counter_account", "Counter account: not the bank account's own ledger account."
        )


def _invoice_id(company: Company, value):
    if value in (None, ""):
        return None
    from invoicing.models import Invoice

    pk = _pk(value)
    if not Invoice.objects.filter(company=company, pk=pk).exists():
        raise _invalid("invoice", "Invoice: no such invoice in this company.")
    return pk


def _bank_account_of(company: Company | None, bank_account) -> BankAccount:
    if isinstance(bank_account, BankAccount):
        return bank_account
    found = BankAccount.objects.filter(pk=bank_account).first()
    if found is None or (company is not None and found.company_id != company.pk):
        raise _invalid("bank_account", "Bank account: no such bank account in this company.")
    return found


@transaction.atomic
def bank_transaction_create(
    *,
    actor,
    bank_account: BankAccount,
    kind: str,
    amount,
    date,
    direction: str = "",
    counter_account=None,
    cost_center=None,
    project=None,
    department=None,
    value_date=None,
    reference: str = "",
    counterparty: str = "",
    memo: str = "",
    branch: str = "",
    source: str = TransactionSource.MANUAL,
    source_id: str = "",
    invoice=None,
    system_job: str = "",
) -> BankTransaction:
    """A draft transaction. Direction follows the kind (deposit and interest in, withdrawal and
    fee out; a transfer says which); the counter account defaults by kind (fee → bank_fees,
    interest → interest_income, transfer → internal_transfer) and is required for deposits and
    withdrawals."""
    company = bank_account.company
    _require_write(actor, company)
    if not bank_account.is_active:
        raise _invalid("bank_account", f"Bank account '{bank_account.name}' is inactive.")
    txn = BankTransaction(company=company, bank_account=bank_account, direction="")
    _transaction_apply(
        txn,
        {
            "kind": kind,
            "direction": direction,
            "amount": amount,
            "date": date,
            "value_date": value_date,
            "reference": reference,
            "counterparty": counterparty,
            "memo": memo,
            "branch": branch,
            "cost_center": cost_center,
            "project": project,
            "department": department,
            "counter_account": counter_account,
            "source": source,
            "source_id": source_id,
            "invoice": invoice,
        },
    )
    txn.save()
    audit_record(
        action="banking.transaction.create",
        actor=actor,
        system_job=system_job,
        company=company,
        obj=txn,
        after=model_snapshot(txn),
    )
    return txn


def _locked(txn: BankTransaction) -> BankTransaction:
    return BankTransaction.objects.select_for_update().select_related("bank_account").get(pk=txn.pk)


@transaction.atomic
def bank_transaction_update(
    *, actor, transaction: BankTransaction, expected_version=None, **changes
) -> BankTransaction:
    """Change a draft transaction; its `version` goes up by one. A posted one answers 409
    `already_posted`; a stale `expected_version` 409 `version_conflict`."""
    company = transaction.company
    _require_write(actor, company)
    _unknown_refuse(changes, EDITABLE_FIELDS)
    txn = _locked(transaction)
    if txn.is_posted:
        raise AlreadyPosted(
            f"Bank transaction {txn.pk} is posted (entry {_entry_reference(txn)}); its figures "
            "cannot change. Post a correcting transaction instead."
        )
    _check_version(txn, expected_version)
    before = model_snapshot(txn)
    if "kind" in changes and "counter_account" not in changes:
        # The old kind's default counter account does not carry over to the new kind.
        old_default = DEFAULT_COUNTER_ROLE.get(txn.kind)
        if old_default and txn.counter_account_id == _role_account_id(company, old_default):
            txn.counter_account = None
    _transaction_apply(txn, changes)
    txn.version += 1
    txn.save()
    audit_record(
        action="banking.transaction.update",
        actor=actor,
        company=company,
        obj=txn,
        before=before,
        after=model_snapshot(txn),
    )
    return txn


def _role_account_id(company: Company, role: str):
    return (
        AccountRole.objects.filter(company=company, role=role)
        .values_list("account_id", flat=True)
        .first()
    )


def _entry_reference(txn: BankTransaction) -> str:
    entry = txn.journal_entry
    return entry.reference if entry is not None else ""


@transaction.atomic
def bank_transaction_delete(*, actor, transaction: BankTransaction, expected_version=None) -> None:
    """Delete a draft transaction that nothing refers to."""
    company = transaction.company
    _require_write(actor, company)
    txn = _locked(transaction)
    if txn.is_posted:
        raise AlreadyPosted(f"Bank transaction {txn.pk} is posted; it cannot be deleted.")
    _check_version(txn, expected_version)
    if txn.matches.exclude(status=MatchStatus.REJECTED).exists():
        raise InvalidTransition(
            f"Bank transaction {txn.pk} is matched to a statement line; unmatch it first.",
            code="has_matches",
        )
    before = model_snapshot(txn)
    audit_record(
        action="banking.transaction.delete",
        actor=actor,
        company=company,
        obj=txn,
        before=before,
    )
    txn.matches.all().delete()  # rejected suggestions only
    txn.delete()


def _posting_lines(txn: BankTransaction) -> list[dict]:
    """Bank against the counter account, the transaction's dimensions on both lines."""
    dims = _dims_of(txn)
    memo = (txn.reference or txn.counterparty or txn.memo)[:500]
    bank_side, other_side = (
        ("debit", "credit")
        if txn.direction == Direction.IN
        else (
            "credit",
            "debit",
        )
    )
    amount = str(txn.amount)
    return [
        {
            "account": txn.bank_account.ledger_account_id,
            bank_side: amount,
            **dims,
            "memo": memo,
        },
        {"account": txn.counter_account_id, other_side: amount, **dims, "memo": memo},
    ]


def _line_key(account, debit, credit, cost_center, project, department) -> tuple:
    return (
        int(account),
        money(debit or 0),
        money(credit or 0),
        cost_center,
        project,
        department,
    )


def _entry_matches(txn: BankTransaction, entry: JournalEntry) -> bool:
    """Does the posted entry say what the transaction says now (date, accounts, amounts,
    dimensions)?"""
    if entry.date != txn.date:
        return False
    expected = sorted(
        _line_key(
            line["account"],
            line.get("debit"),
            line.get("credit"),
            line["cost_center"],
            line["project"],
            line["department"],
        )
        for line in _posting_lines(txn)
    )
    actual = sorted(
        _line_key(*row)
        for row in entry.lines.values_list(
            "account_id", "debit", "credit", "cost_center_id", "project_id", "department_id"
        )
    )
    return expected == actual


def _require_base_currency(bank_account: BankAccount) -> None:
    if bank_account.currency != bank_account.company.base_currency:
        # The ledger keeps one currency per company and there are no exchange rates yet: a
        # foreign-currency amount would be booked as base currency.
        raise ValidationFailed(
            f"Bank account '{bank_account.name}' is in {bank_account.currency}; the books are in "
            f"{bank_account.company.base_currency} and foreign-currency posting is not supported.",
            code="foreign_currency",
            fields={"bank_account": ["Not in the company's base currency."]},
        )


def transaction_idempotency_key(txn: BankTransaction) -> str:
    return f"banking.txn:{txn.pk}"


def _post_locked(txn: BankTransaction, *, actor, system_job: str) -> JournalEntry:
    """Post a locked draft transaction (the caller has checked it is a draft)."""
    _require_base_currency(txn.bank_account)
    if txn.counter_account_id is None:
        raise _invalid(
            "counter_account",
            "Counter account: needed to post this transaction.",
            code="counter_account_required",
        )
    entry = journal_entry_post(
        actor=None,
        system_job=_job(system_job),
        company=txn.company,
        date=txn.date,
        lines=_posting_lines(txn),
        memo=f"{TransactionKind(txn.kind).label}: {txn.reference or txn.counterparty or txn.memo}"[
            :500
        ],
        source_type=SOURCE_TYPE,
        source_id=str(txn.pk),
        idempotency_key=transaction_idempotency_key(txn),
    )
    before = model_snapshot(txn, ("posting_status", "journal_entry_id", "posted_at"))
    txn.posting_status = PostingStatus.POSTED
    txn.journal_entry = entry
    txn.posted_at = timezone.now()
    txn.save(update_fields=["posting_status", "journal_entry", "posted_at", "updated_at"])
    audit_record(
        action="banking.transaction.post",
        actor=actor,
        system_job=system_job,
        company=txn.company,
        obj=txn,
        before=before,
        after={
            **model_snapshot(txn, ("posting_status", "journal_entry_id")),
            "entry": entry.reference,
        },
    )
    return entry


@transaction.atomic
def bank_transaction_post(
    *, actor, transaction: BankTransaction, expected_version=None, system_job: str = ""
) -> JournalEntry:
    """Post the transaction: one balanced journal entry, bank against the counter account,
    with the cost centre, project and department on every line (idempotency key
    `banking.txn:<id>`). Posting again returns the same entry (`replayed` True); a posted
    transaction whose figures no longer match its entry answers 409 `already_posted`; a stale
    `expected_version` 409 `version_conflict`."""
    company = transaction.company
    _require_write(actor, company)
    txn = _locked(transaction)
    _check_version(txn, expected_version)
    if txn.is_posted:
        entry = txn.journal_entry
        own = entry.idempotency_key == transaction_idempotency_key(txn)
        if own and not _entry_matches(txn, entry):
            raise AlreadyPosted(
                f"Bank transaction {txn.pk} was changed after it was posted as {entry.reference}; "
                "a posted transaction cannot be posted again with other figures."
            )
        entry.replayed = True
        return entry
    entry = _post_locked(txn, actor=actor, system_job=system_job)
    transaction.posting_status = txn.posting_status
    transaction.journal_entry = entry
    transaction.posted_at = txn.posted_at
    return entry


@transaction.atomic
def bank_transaction_create_posted(
    *,
    actor,
    bank_account: BankAccount,
    kind: str,
    amount,
    date,
    journal_entry: JournalEntry,
    direction: str = "",
    source: str = TransactionSource.MANUAL,
    source_id: str = "",
    counter_account=None,
    cost_center=None,
    project=None,
    department=None,
    reference: str = "",
    counterparty: str = "",
    memo: str = "",
    branch: str = "",
    invoice=None,
    value_date=None,
    system_job: str = "",
) -> BankTransaction:
    """Record a bank movement whose journal entry was posted elsewhere (an invoice payment
    through invoicing's service, a cash deposit with a variance, a float replenishment): the
    transaction is created posted, bound to that entry, never posted a second time. The entry
    must belong to the company, carry the date, and move the bank's ledger account by the
    amount on the transaction's side."""
    company = bank_account.company
    _require_write(actor, company)
    _require_base_currency(bank_account)
    txn = BankTransaction(company=company, bank_account=bank_account, direction="")
    fields = {
        "kind": kind,
        "direction": direction,
        "amount": amount,
        "date": date,
        "value_date": value_date,
        "reference": reference,
        "counterparty": counterparty,
        "memo": memo,
        "branch": branch,
        "cost_center": cost_center,
        "project": project,
        "department": department,
        "source": source,
        "source_id": source_id,
        "invoice": invoice,
    }
    fields["counter_account"] = counter_account
    _transaction_apply(txn, fields, counter_required=False)
    if journal_entry.company_id != company.pk:
        raise _invalid("journal_entry", "Journal entry: not this company's.")
    if journal_entry.date != txn.date:
        raise _invalid("journal_entry", "Journal entry: dated differently from the transaction.")
    side = "debit" if txn.direction == Direction.IN else "credit"
    moved = journal_entry.lines.filter(account_id=bank_account.ledger_account_id).aggregate(
        debit=Sum("debit"), credit=Sum("credit")
    )
    net = (moved["debit"] or ZERO) - (moved["credit"] or ZERO)
    if (net if side == "debit" else -net) != txn.amount:
        raise _invalid(
            "journal_entry",
            f"Journal entry {journal_entry.reference} does not {side} the bank's ledger account "
            f"by {txn.amount}.",
        )
    txn.posting_status = PostingStatus.POSTED
    txn.journal_entry = journal_entry
    txn.posted_at = timezone.now()
    txn.save()
    audit_record(
        action="banking.transaction.create_posted",
        actor=actor,
        system_job=system_job,
        company=company,
        obj=txn,
        after=model_snapshot(txn),
    )
    return txn


def _create_and_post(
    *, actor, system_job: str, bank_account: BankAccount, **fields
) -> BankTransaction:
    """A transaction made and posted in one go by another banking flow (transfer leg, float
    issue)."""
    _require_base_currency(bank_account)
    txn = bank_transaction_create(
        actor=actor, system_job=system_job, bank_account=bank_account, **fields
    )
    txn = _locked(txn)
    _post_locked(txn, actor=actor, system_job=system_job)
    return txn


# --- transfers between own accounts ----------------------------------------------------------


def _locked_transfer(transfer: BankTransfer) -> BankTransfer:
    return (
        BankTransfer.objects.select_for_update()
        .select_related("from_account", "to_account")
        .get(pk=transfer.pk)
    )


@transaction.atomic
def bank_transfer_create(
    *,
    actor,
    from_account: BankAccount,
    to_account: BankAccount,
    amount,
    date,
    expected_settlement_date=None,
    reference: str = "",
    memo: str = "",
    cost_center=None,
    project=None,
    department=None,
) -> BankTransfer:
    """A transfer between two of the company's bank accounts (same currency), initiated: nothing
    is posted until it is sent."""
    company = from_account.company
    _require_write(actor, company)
    if to_account.company_id != company.pk:
        raise _invalid("to_account", "To account: no such bank account in this company.")
    if to_account.pk == from_account.pk:
        raise _invalid("to_account", "To account: a transfer needs two different accounts.")
    if to_account.currency != from_account.currency:
        raise _invalid(
            "to_account",
            f"To account: in {to_account.currency}, the sending account in "
            f"{from_account.currency}; a transfer moves one currency.",
        )
    for account, field in ((from_account, "from_account"), (to_account, "to_account")):
        if not account.is_active:
            raise _invalid(field, f"{_label(field)}: '{account.name}' is inactive.")
    day = _as_date(date, "date")
    expected = _as_date(expected_settlement_date, "expected_settlement_date", required=False)
    if expected is not None and expected < day:
        raise _invalid(
            "expected_settlement_date", "Expected settlement date: not before the transfer date."
        )
    transfer = BankTransfer(
        company=company,
        from_account=from_account,
        to_account=to_account,
        amount=_amount(amount, "amount"),
        currency=from_account.currency,
        date=day,
        expected_settlement_date=expected,
        reference=_text(reference, "reference", 140),
        memo=_text(memo, "memo", 500),
        **_dimensions(
            company, {"cost_center": cost_center, "project": project, "department": department}
        ),
    )
    transfer.save()
    audit_record(
        action="banking.transfer.create",
        actor=actor,
        company=company,
        obj=transfer,
        after=model_snapshot(transfer),
    )
    return transfer


def _transfer_leg(
    transfer: BankTransfer, *, actor, leg: str, amount: Decimal, day: date
) -> BankTransferAllocation:
    account = transfer.from_account if leg == TransferLeg.OUT else transfer.to_account
    txn = _create_and_post(
        actor=actor,
        system_job="",
        bank_account=account,
        kind=TransactionKind.TRANSFER,
        direction=Direction.OUT if leg == TransferLeg.OUT else Direction.IN,
        amount=amount,
        date=day,
        reference=transfer.reference,
        counterparty=(
            transfer.to_account if leg == TransferLeg.OUT else transfer.from_account
        ).name,
        memo=transfer.memo or f"Transfer {transfer.pk}",
        counter_account=account_for_role(
            company=transfer.company, role=AccountRoleName.INTERNAL_TRANSFER
        ),
        source=TransactionSource.TRANSFER,
        source_id=str(transfer.pk),
        **_dims_of(transfer),
    )
    return BankTransferAllocation.objects.create(
        company=transfer.company,
        transfer=transfer,
        leg=leg,
        bank_account=account,
        bank_transaction=txn,
        amount=amount,
        date=day,
    )


@transaction.atomic
def bank_transfer_send(*, actor, transfer: BankTransfer, date=None) -> BankTransfer:
    """Post the out leg (Cr sending bank / Dr internal transfer): initiated → in transit."""
    _require_write(actor, transfer.company)
    locked = _locked_transfer(transfer)
    if locked.status != TransferStatus.INITIATED:
        raise InvalidTransition(
            f"Transfer {locked.pk} is {locked.get_status_display().lower()}; only an initiated "
            "transfer can be sent."
        )
    day = _as_date(date, "date", required=False) or locked.date
    if day < locked.date:
        raise _invalid("date", "Date: not before the day the transfer was initiated.")
    before = model_snapshot(locked)
    _transfer_leg(locked, actor=actor, leg=TransferLeg.OUT, amount=locked.amount, day=day)
    locked.status = TransferStatus.IN_TRANSIT
    locked.version += 1
    locked.save()
    audit_record(
        action="banking.transfer.send",
        actor=actor,
        company=locked.company,
        obj=locked,
        before=before,
        after=model_snapshot(locked),
    )
    return locked


def transfer_received(transfer: BankTransfer) -> Decimal:
    return transfer.legs.filter(leg=TransferLeg.IN).aggregate(total=Sum("amount"))[
        "total"
    ] or Decimal("0.00")


@transaction.atomic
def bank_transfer_receive(
    *, actor, transfer: BankTransfer, amount=None, date=None
) -> BankTransferAllocation:
    """Post an in leg (Dr receiving bank / Cr internal transfer) for `amount` (default: what is
    still to come). When the in legs add up to the transfer the transit account is back where
    it started; the transfer is settled once every leg is also cleared by a statement line
    (see `transfer_legs_clear`), in transit until then."""
    _require_write(actor, transfer.company)
    locked = _locked_transfer(transfer)
    if locked.status != TransferStatus.IN_TRANSIT:
        raise InvalidTransition(
            f"Transfer {locked.pk} is {locked.get_status_display().lower()}; money can only be "
            "received on a transfer in transit (send it first)."
        )
    remaining = locked.amount - transfer_received(locked)
    if remaining <= 0:
        raise InvalidTransition(
            f"Transfer {locked.pk} is received in full; it settles when its legs clear.",
            code="received_in_full",
        )
    value = remaining if amount in (None, "") else _amount(amount, "amount")
    if value > remaining:
        raise _invalid(
            "amount",
            f"Amount: {value} is more than the {remaining} still in transit on transfer "
            f"{locked.pk}.",
            code="exceeds_in_transit",
        )
    out_day = locked.legs.get(leg=TransferLeg.OUT).date
    day = _as_date(date, "date", required=False) or locked.company.today()
    if day < out_day:
        raise _invalid("date", f"Date: not before the money left ({out_day}).")
    before = model_snapshot(locked)
    allocation = _transfer_leg(locked, actor=actor, leg=TransferLeg.IN, amount=value, day=day)
    locked.version += 1
    locked.save()
    _transfers_settle([locked.pk])
    locked.refresh_from_db()
    audit_record(
        action="banking.transfer.receive",
        actor=actor,
        company=locked.company,
        obj=locked,
        before=before,
        after={**model_snapshot(locked), "received": str(value)},
    )
    return allocation


@transaction.atomic
def bank_transfer_cancel(*, actor, transfer: BankTransfer) -> BankTransfer:
    """Cancel a transfer nothing has been posted for yet."""
    _require_write(actor, transfer.company)
    locked = _locked_transfer(transfer)
    if locked.status != TransferStatus.INITIATED or locked.legs.exists():
        raise InvalidTransition(
            f"Transfer {locked.pk} is {locked.get_status_display().lower()}; only a transfer "
            "with nothing posted can be cancelled (reverse the posted legs with new "
            "transactions instead)."
        )
    before = model_snapshot(locked)
    locked.status = TransferStatus.CANCELLED
    locked.version += 1
    locked.save()
    audit_record(
        action="banking.transfer.cancel",
        actor=actor,
        company=locked.company,
        obj=locked,
        before=before,
        after=model_snapshot(locked),
    )
    return locked


@transaction.atomic
def transfer_legs_clear(*, transactions) -> int:
    """Mark the transfer legs of these transactions cleared where the transaction is fully
    reconciled (called by reconciliation after it writes allocations). Returns legs changed."""
    ids = [_pk(t) for t in transactions]
    if not ids:
        return 0
    from django.db.models import F

    cleared = BankTransferAllocation.objects.filter(
        bank_transaction_id__in=ids,
        cleared=False,
        bank_transaction__reconciled_amount=F("bank_transaction__amount"),
    ).update(cleared=True)
    uncleared = (
        BankTransferAllocation.objects.filter(bank_transaction_id__in=ids, cleared=True)
        .exclude(bank_transaction__reconciled_amount=F("bank_transaction__amount"))
        .update(cleared=False)
    )
    if cleared or uncleared:
        _transfers_settle(
            BankTransferAllocation.objects.filter(bank_transaction_id__in=ids)
            .values_list("transfer_id", flat=True)
            .distinct()
        )
    return cleared + uncleared


def _transfers_settle(transfer_ids) -> None:
    """A transfer is settled when its in legs add up to it and every leg (out and in) is
    cleared by a statement line, on the day the last of them cleared; in transit otherwise
    (a leg unmatched again takes it back). Few rows: the transfers of the legs just touched."""
    from banking.models import ReconciliationMatch

    transfers = list(
        BankTransfer.objects.select_for_update()
        .filter(
            pk__in=list(transfer_ids),
            status__in=[TransferStatus.IN_TRANSIT, TransferStatus.SETTLED],
        )
        .order_by("pk")
    )
    if not transfers:
        return
    legs = defaultdict(list)
    for leg in BankTransferAllocation.objects.filter(transfer__in=transfers):
        legs[leg.transfer_id].append(leg)
    cleared_on = dict(
        ReconciliationMatch.objects.filter(
            status=MatchStatus.ACCEPTED,
            bank_transaction_id__in=[leg.bank_transaction_id for ls in legs.values() for leg in ls],
        )
        .order_by()
        .values("bank_transaction_id")
        .annotate(last=Max("cleared_on"))
        .values_list("bank_transaction_id", "last")
    )
    for transfer in transfers:
        mine = legs[transfer.pk]
        received = sum((leg.amount for leg in mine if leg.leg == TransferLeg.IN), ZERO)
        done = received >= transfer.amount and bool(mine) and all(leg.cleared for leg in mine)
        status = TransferStatus.SETTLED if done else TransferStatus.IN_TRANSIT
        if status == transfer.status:
            continue
        before = model_snapshot(transfer)
        transfer.status = status
        transfer.settled_on = (
            max((cleared_on.get(leg.bank_transaction_id) or leg.date) for leg in mine)
            if done
            else None
        )
        transfer.version += 1
        transfer.save(update_fields=["status", "settled_on", "version", "updated_at"])
        audit_record(
            action="banking.transfer.settle" if done else "banking.transfer.unsettle",
            system_job=SYSTEM_JOB,
            company=transfer.company,
            obj=transfer,
            before=before,
            after=model_snapshot(transfer),
        )


# --- cash submissions (branch cash → bank through cash in transit) ---------------------------


def _cash_account(company: Company, value, field: str) -> Account:
    account = _account(company, value, field)
    if account.type != AccountType.ASSET:
        raise _invalid(field, f"{_label(field)}: {account.code} is not an asset account.")
    if account.pk == _role_account_id(company, AccountRoleName.CASH_IN_TRANSIT):
        raise _invalid(field, f"{_label(field)}: not the cash in transit account itself.")
    if BankAccount.objects.filter(company=company, ledger_account=account).exists():
        raise _invalid(field, f"{_label(field)}: {account.code} is a bank account, not cash.")
    return account


@transaction.atomic
def cash_submission_create(
    *,
    actor,
    bank_account: BankAccount,
    branch: str,
    expected_amount,
    submitted_on,
    from_account,
    reference: str = "",
    memo: str = "",
    cost_center=None,
    project=None,
    department=None,
) -> CashSubmission:
    """A branch sends cash to the bank: posts Dr cash in transit / Cr the branch's cash
    account (`from_account`, e.g. 1110 Cash on hand) for the expected amount."""
    company = bank_account.company
    _require_write(actor, company)
    _require_base_currency(bank_account)
    branch = _text(branch, "branch", 100)
    if not branch:
        raise _invalid("branch", "Branch: required.")
    submission = CashSubmission(
        company=company,
        branch=branch,
        from_account=_cash_account(company, from_account, "from_account"),
        bank_account=bank_account,
        expected_amount=_amount(expected_amount, "expected_amount"),
        submitted_on=_as_date(submitted_on, "submitted_on"),
        reference=_text(reference, "reference", 140),
        memo=_text(memo, "memo", 500),
        **_dimensions(
            company, {"cost_center": cost_center, "project": project, "department": department}
        ),
    )
    submission.save()
    dims = _dims_of(submission)
    text = f"Cash from {branch} to {bank_account.name}" + (f" ({reference})" if reference else "")
    amount = str(submission.expected_amount)
    submission.submission_entry = journal_entry_post(
        actor=None,
        system_job=SYSTEM_JOB,
        company=company,
        date=submission.submitted_on,
        lines=[
            {"account_role": AccountRoleName.CASH_IN_TRANSIT, "debit": amount, **dims},
            {"account": submission.from_account_id, "credit": amount, **dims},
        ],
        memo=text[:500],
        source_type="banking.cash_submission",
        source_id=str(submission.pk),
        idempotency_key=f"banking.cash.submit:{submission.pk}",
    )
    submission.save(update_fields=["submission_entry"])
    audit_record(
        action="banking.cash_submission.create",
        actor=actor,
        company=company,
        obj=submission,
        after=model_snapshot(submission),
    )
    return submission


@transaction.atomic
def cash_submission_deposit(
    *, actor, submission: CashSubmission, deposited_amount, deposited_on=None, reference: str = ""
) -> CashSubmission:
    """The bank credited the cash: Dr bank (deposited) / Cr cash in transit (expected), the
    difference to cash over and short (short: Dr, over: Cr). Creates the posted deposit
    transaction on the bank account, bound to that entry."""
    company = submission.company
    _require_write(actor, company)
    locked = (
        CashSubmission.objects.select_for_update()
        .select_related("bank_account")
        .get(pk=submission.pk)
    )
    if locked.status != CashSubmissionStatus.SUBMITTED:
        raise InvalidTransition(
            f"Cash submission {locked.pk} is {locked.get_status_display().lower()}; it was "
            "already deposited."
        )
    deposited = _amount(deposited_amount, "deposited_amount")
    day = _as_date(deposited_on, "deposited_on", required=False) or company.today()
    if day < locked.submitted_on:
        raise _invalid("deposited_on", "Deposited on: not before the cash was submitted.")
    before = model_snapshot(locked)
    variance = deposited - locked.expected_amount
    dims = _dims_of(locked)
    lines = [
        {"account": locked.bank_account.ledger_account_id, "debit": str(deposited), **dims},
        {
            "account_role": AccountRoleName.CASH_IN_TRANSIT,
            "credit": str(locked.expected_amount),
            **dims,
        },
    ]
    if variance < 0:
        lines.append(
            {"account_role": AccountRoleName.CASH_OVER_SHORT, "debit": str(-variance), **dims}
        )
    elif variance > 0:
        lines.append(
            {"account_role": AccountRoleName.CASH_OVER_SHORT, "credit": str(variance), **dims}
        )
    entry = journal_entry_post(
        actor=None,
        system_job=SYSTEM_JOB,
        company=company,
        date=day,
        lines=lines,
        memo=f"Cash deposit from {locked.branch} ({locked.reference or locked.pk})"[:500],
        source_type="banking.cash_submission",
        source_id=str(locked.pk),
        idempotency_key=f"banking.cash.deposit:{locked.pk}",
    )
    txn = bank_transaction_create_posted(
        actor=actor,
        bank_account=locked.bank_account,
        kind=TransactionKind.DEPOSIT,
        amount=deposited,
        date=day,
        journal_entry=entry,
        counter_account=_role_account_id(company, AccountRoleName.CASH_IN_TRANSIT),
        source=TransactionSource.CASH_SUBMISSION,
        source_id=str(locked.pk),
        reference=_text(reference, "reference", 140) or locked.reference,
        counterparty=locked.branch,
        memo=f"Cash deposit from {locked.branch}",
        branch=locked.branch,
        **dims,
    )
    locked.deposited_amount = deposited
    locked.deposited_on = day
    locked.variance = variance
    locked.deposit_transaction = txn
    locked.status = CashSubmissionStatus.DEPOSITED
    locked.save()
    audit_record(
        action="banking.cash_submission.deposit",
        actor=actor,
        company=company,
        obj=locked,
        before=before,
        after=model_snapshot(locked),
    )
    return locked


@transaction.atomic
def cash_submission_close(*, actor, submission: CashSubmission) -> CashSubmission:
    """Close a deposited submission (its deposit seen on the statement and checked)."""
    _require_write(actor, submission.company)
    locked = CashSubmission.objects.select_for_update().get(pk=submission.pk)
    if locked.status != CashSubmissionStatus.DEPOSITED:
        raise InvalidTransition(
            f"Cash submission {locked.pk} is {locked.get_status_display().lower()}; only a "
            "deposited submission can be closed."
        )
    before = model_snapshot(locked)
    locked.status = CashSubmissionStatus.CLOSED
    locked.save()
    audit_record(
        action="banking.cash_submission.close",
        actor=actor,
        company=locked.company,
        obj=locked,
        before=before,
        after=model_snapshot(locked),
    )
    return locked


# --- petty cash floats (imprest) -------------------------------------------------------------


@transaction.atomic
def float_allocation_create(
    *,
    actor,
    bank_account: BankAccount,
    name: str,
    custodian: str,
    float_amount,
    issued_on,
    petty_cash_account=None,
    cost_center=None,
    project=None,
    department=None,
) -> FloatAllocation:
    """Set up an imprest and issue the float from the bank: Dr petty cash / Cr bank (a posted
    withdrawal on the bank account)."""
    company = bank_account.company
    _require_write(actor, company)
    name = _text(name, "name", 100)
    custodian = _text(custodian, "custodian", 200)
    if not name:
        raise _invalid("name", "Name: required.")
    if not custodian:
        raise _invalid("custodian", "Custodian: required.")
    if petty_cash_account in (None, ""):
        petty = account_for_role(company=company, role=AccountRoleName.PETTY_CASH)
    else:
        petty = _cash_account(company, petty_cash_account, "petty_cash_account")
    allocation = FloatAllocation(
        company=company,
        name=name,
        custodian=custodian,
        petty_cash_account=petty,
        bank_account=bank_account,
        float_amount=_amount(float_amount, "float_amount"),
        issued_on=_as_date(issued_on, "issued_on"),
        **_dimensions(
            company, {"cost_center": cost_center, "project": project, "department": department}
        ),
    )
    allocation.save()
    allocation.issue_transaction = _create_and_post(
        actor=actor,
        system_job="",
        bank_account=bank_account,
        kind=TransactionKind.WITHDRAWAL,
        amount=allocation.float_amount,
        date=allocation.issued_on,
        counter_account=petty,
        counterparty=custodian,
        memo=f"Petty cash float {name}",
        source=TransactionSource.FLOAT,
        source_id=str(allocation.pk),
        **_dims_of(allocation),
    )
    allocation.save(update_fields=["issue_transaction"])
    audit_record(
        action="banking.float.create",
        actor=actor,
        company=company,
        obj=allocation,
        after=model_snapshot(allocation),
    )
    return allocation


def _open_vouchers_total(allocation: FloatAllocation) -> Decimal:
    return allocation.vouchers.filter(status=VoucherStatus.OPEN).aggregate(total=Sum("amount"))[
        "total"
    ] or Decimal("0.00")


@transaction.atomic
def petty_cash_voucher_create(
    *,
    actor,
    float_allocation: FloatAllocation,
    date,
    amount,
    expense_account,
    description: str,
    reference: str = "",
    cost_center=None,
    project=None,
    department=None,
) -> PettyCashVoucher:
    """A payment out of the float, with its expense account and dimensions. Nothing posts
    until the float is replenished; open vouchers may not exceed the float."""
    company = float_allocation.company
    _require_write(actor, company)
    locked = FloatAllocation.objects.select_for_update().get(pk=float_allocation.pk)
    if locked.status != FloatStatus.ACTIVE:
        raise InvalidTransition(f"Float '{locked.name}' is closed.")
    value = _amount(amount, "amount")
    open_total = _open_vouchers_total(locked)
    if open_total + value > locked.float_amount:
        raise _invalid(
            "amount",
            f"Amount: vouchers would total {open_total + value}, more than the float of "
            f"{locked.float_amount}; replenish first.",
            code="exceeds_float",
        )
    account = _account(company, expense_account, "expense_account")
    description = _text(description, "description", 500)
    if not description:
        raise _invalid("description", "Description: required.")
    day = _as_date(date, "date")
    if day < locked.issued_on:
        raise _invalid("date", "Date: not before the float was issued.")
    voucher = PettyCashVoucher.objects.create(
        company=company,
        float=locked,
        date=day,
        amount=value,
        expense_account=account,
        description=description,
        reference=_text(reference, "reference", 60),
        **_dimensions(
            company, {"cost_center": cost_center, "project": project, "department": department}
        ),
    )
    audit_record(
        action="banking.voucher.create",
        actor=actor,
        company=company,
        obj=voucher,
        after=model_snapshot(voucher),
    )
    return voucher


@transaction.atomic
def float_replenish(
    *, actor, float_allocation: FloatAllocation, counted_cash, date=None
) -> FloatReplenishment:
    """Replenish the float back to its fixed amount (standard imprest). The bank pays what
    the custodian lacks, float − counted cash; one entry: Dr each voucher's expense account
    with its dimensions, Dr cash over and short for a shortage (Cr for an overage:
    counted cash + vouchers − float), Cr bank for the payment. The petty cash account is not
    touched: it stays at the float (a shortage is booked once, at the count that found it).
    The payment is a posted withdrawal bound to the entry; a custodian holding more than the
    float (an overage larger than the vouchers) pays the surplus into the bank instead (a
    posted deposit)."""
    company = float_allocation.company
    _require_write(actor, company)
    locked = (
        FloatAllocation.objects.select_for_update()
        .select_related("bank_account")
        .get(pk=float_allocation.pk)
    )
    if locked.status != FloatStatus.ACTIVE:
        raise InvalidTransition(f"Float '{locked.name}' is closed.")
    _require_base_currency(locked.bank_account)
    counted = _amount(counted_cash, "counted_cash", allow_zero=True)
    day = _as_date(date, "date", required=False) or company.today()
    vouchers = list(
        locked.vouchers.select_for_update().filter(status=VoucherStatus.OPEN).order_by("date", "id")
    )
    total = sum((v.amount for v in vouchers), Decimal("0.00"))
    over_short = counted + total - locked.float_amount
    payment = locked.float_amount - counted  # what the bank pays the custodian (< 0: receives)
    if total == 0 and over_short == 0:
        raise InvalidTransition(
            f"Float '{locked.name}' has no open vouchers and no difference: nothing to replenish.",
            code="nothing_to_replenish",
        )
    if vouchers and day < vouchers[-1].date:
        raise _invalid("date", f"Date: not before the last voucher ({vouchers[-1].date}).")
    replenishment = FloatReplenishment.objects.create(
        company=company,
        float=locked,
        date=day,
        vouchers_total=total,
        counted_cash=counted,
        over_short=over_short,
    )
    float_dims = _dims_of(locked)
    lines = [
        {
            "account": v.expense_account_id,
            "debit": str(v.amount),
            **_dims_of(v),
            "memo": v.description[:500],
        }
        for v in vouchers
    ]
    bank_ledger = locked.bank_account.ledger_account_id
    if payment > 0:
        lines.append({"account": bank_ledger, "credit": str(payment), **float_dims})
    elif payment < 0:
        lines.append({"account": bank_ledger, "debit": str(-payment), **float_dims})
    if over_short < 0:
        lines.append(
            {
                "account_role": AccountRoleName.CASH_OVER_SHORT,
                "debit": str(-over_short),
                **float_dims,
            }
        )
    elif over_short > 0:
        lines.append(
            {
                "account_role": AccountRoleName.CASH_OVER_SHORT,
                "credit": str(over_short),
                **float_dims,
            }
        )
    entry = journal_entry_post(
        actor=None,
        system_job=SYSTEM_JOB,
        company=company,
        date=day,
        lines=lines,
        memo=f"Petty cash replenishment {locked.name}"[:500],
        source_type="banking.float",
        source_id=str(replenishment.pk),
        idempotency_key=f"banking.float.replenish:{replenishment.pk}",
    )
    replenishment.journal_entry = entry
    if payment:
        replenishment.bank_transaction = bank_transaction_create_posted(
            actor=actor,
            bank_account=locked.bank_account,
            kind=TransactionKind.WITHDRAWAL if payment > 0 else TransactionKind.DEPOSIT,
            amount=abs(payment),
            date=day,
            journal_entry=entry,
            source=TransactionSource.FLOAT,
            source_id=str(locked.pk),
            counterparty=locked.custodian,
            memo=f"Petty cash replenishment {locked.name}",
            **float_dims,
        )
    replenishment.save(update_fields=["journal_entry", "bank_transaction"])
    PettyCashVoucher.objects.filter(pk__in=[v.pk for v in vouchers]).update(
        status=VoucherStatus.REPLENISHED, replenishment=replenishment
    )
    audit_record(
        action="banking.float.replenish",
        actor=actor,
        company=company,
        obj=replenishment,
        after={**model_snapshot(replenishment), "vouchers": [v.pk for v in vouchers]},
    )
    return replenishment


# --- the ledger as the book side ------------------------------------------------------------

ADOPT_JOB = "banking.ledger_adopt"


@transaction.atomic
def bank_ledger_adopt(*, bank_account, actor=None, system_job: str = ADOPT_JOB) -> dict:
    """Make the bank account's book side the ledger: every journal entry that moves the bank's
    ledger account (from the opening date) and that no transaction of this bank account
    carries (an invoice payment recorded in invoicing, payroll's net pay, a manual entry, a
    reversal) becomes a posted BankTransaction (source `ledger`, bound to that entry, never
    posted again): a deposit for a net debit, a withdrawal for a net credit. They can then be
    matched to statement lines like any other book item.

    Transactions whose entry was reversed, and those recording the reversal, are marked
    `is_reversed`: they stay in the balance (where they cancel out) but are neither matched
    nor outstanding.

    Set-based: one anti-join over the account's journal lines, one read of the entries, one
    bulk insert, one update. Idempotent (an adopted entry is carried by its transaction).
    Run by auto-reconcile, the reconciliation refresh and close (under the account lock)."""
    from accounting.models import JournalLine

    account = (
        BankAccount.objects.select_for_update().select_related("company").get(pk=_pk(bank_account))
    )
    company = account.company
    carried = BankTransaction.objects.filter(
        bank_account=account, journal_entry__isnull=False
    ).values("journal_entry_id")
    lines = JournalLine.objects.filter(company=company, account_id=account.ledger_account_id)
    if account.opening_date:
        lines = lines.filter(entry__date__gte=account.opening_date)
    nets = list(
        lines.exclude(entry_id__in=carried)
        .order_by()
        .values("entry_id")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .values_list("entry_id", "debit", "credit")
    )
    nets = [(entry_id, debit - credit) for entry_id, debit, credit in nets if debit != credit]
    created = []
    if nets:
        entries = JournalEntry.objects.select_related("fiscal_year").in_bulk(
            [entry_id for entry_id, _net in nets]
        )
        now = timezone.now()
        for entry_id, net in sorted(nets):
            entry = entries[entry_id]
            reversal = entry.reversal_of_id is not None or entry.status == "reversed"
            created.append(
                BankTransaction(
                    company=company,
                    bank_account=account,
                    kind=TransactionKind.DEPOSIT if net > 0 else TransactionKind.WITHDRAWAL,
                    direction=Direction.IN if net > 0 else Direction.OUT,
                    amount=abs(net),
                    date=entry.date,
                    reference=entry.reference[:140],
                    memo=(entry.memo or entry.source_type)[:500],
                    posting_status=PostingStatus.POSTED,
                    journal_entry_id=entry_id,
                    posted_at=now,
                    source=TransactionSource.LEDGER,
                    source_id=str(entry_id),
                    is_reversed=reversal,
                )
            )
        BankTransaction.objects.bulk_create(created, batch_size=1000)
    # entries reversed since their transaction was made, and transactions of reversals
    reversed_entries = JournalEntry.objects.filter(company=company).filter(
        Q(status="reversed") | Q(reversal_of__isnull=False)
    )
    newly_reversed = BankTransaction.objects.filter(
        bank_account=account,
        is_reversed=False,
        posting_status=PostingStatus.POSTED,
        journal_entry_id__in=reversed_entries.values("pk"),
    ).update(is_reversed=True)
    summary = {"adopted": len(created), "reversed": newly_reversed}
    if created or newly_reversed:
        audit_record(
            action="banking.ledger.adopt",
            actor=actor,
            system_job=system_job,
            company=company,
            obj=account,
            after={**summary, "entries": [t.journal_entry_id for t in created][:200]},
        )
    return summary


# --- daily balances --------------------------------------------------------------------------


@transaction.atomic
def bank_daily_balances_rebuild(*, company: Company, bank_account=None) -> int:
    """Recompute the daily balances from the posted transactions (the triggers keep them; this
    is for an operator after a load that bypassed them, e.g. COPY with triggers disabled).
    Set-based: one delete, one aggregate read, one bulk insert. Returns the day rows made."""
    from banking.models import BankDailyBalance

    accounts = BankAccount.objects.filter(company=company)
    if bank_account is not None:
        accounts = accounts.filter(pk=_pk(bank_account))
    ids = list(accounts.values_list("pk", flat=True))
    BankDailyBalance.objects.filter(bank_account_id__in=ids).delete()
    sums = (
        BankTransaction.objects.filter(bank_account_id__in=ids, posting_status=PostingStatus.POSTED)
        .values("company_id", "bank_account_id", "date")
        .annotate(
            inflow=Sum("amount", filter=Q(direction=Direction.IN), default=ZERO),
            outflow=Sum("amount", filter=Q(direction=Direction.OUT), default=ZERO),
            count=Count("id"),
        )
        .order_by()
    )
    rows = [BankDailyBalance(**row) for row in sums]
    BankDailyBalance.objects.bulk_create(rows, batch_size=5000)
    audit_record(
        action="banking.daily_balances.rebuild",
        system_job=SYSTEM_JOB,
        company=company,
        after={"bank_accounts": ids, "days": len(rows)},
    )
    return len(rows)
