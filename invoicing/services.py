"""Every write to invoicing: parties, items, VAT rates, invoices and notes, recurring templates.

Invoice services follow one shape: load the stream's events, let the aggregate
(invoicing/domain.py) decide, draw numbers and post to the ledger where the command needs it,
append the new events with the expected version (a concurrent writer -> 409 `stale_version`),
project the read model and record the audit event, all in one transaction. Side effects
(reminder emails) run after commit.

Postings go through `accounting.services.journal_entry_post` as the system job
`invoicing` (clerks may issue invoices; the ledger itself accepts only owners and accountants
as user actors), with the acting user recorded on the invoice's events and audit trail.

Accounts (roles): approval debits `accounts_receivable` and credits `sales_revenue`,
`sd_payable`, `vat_payable`; a payment debits `bank` (or the account given) and
`vds_receivable` for VAT withheld at source, crediting `accounts_receivable`; a void reverses
the approval entry; a credit note debits revenue, SD and VAT and credits receivables; a debit
note posts like an invoice.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounting.models import Account, AccountRole, JournalEntry
from accounting.services import journal_entry_post, journal_entry_reverse
from core.errors import PermissionDeniedError, ValidationFailed
from core.models import Company, Membership
from core.roles import Role, roles_for
from core.services import audit_record, model_snapshot
from invoicing import domain, numbering, projection
from invoicing.events import actor_metadata, events_append, stream_load_locked
from invoicing.models import (
    Frequency,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    Item,
    Party,
    PartyKind,
    RecurringInvoice,
    VatKind,
    VatRate,
)
from invoicing.tax import DEFAULT_VAT_RATES

SYSTEM_JOB = "invoicing"
ZERO = Decimal("0.00")

# --- who may do what -------------------------------------------------------------------------


def _require_write(actor, company: Company) -> None:
    """System jobs (actor None) and platform administrators pass; members need a role that
    writes the `invoicing` scope (owner, accountant, clerk)."""
    if actor is None or getattr(actor, "is_superuser", False):
        return
    allowed = roles_for("invoicing", write=True)
    role = (
        Membership.objects.filter(user=actor, company=company)
        .values_list("role", flat=True)
        .first()
    )
    if role not in allowed:
        names = ", ".join(sorted(Role(r).label.lower() for r in allowed))
        raise PermissionDeniedError(f"Only an {names} may change invoices.", code="role_required")


def _system_job(system_job: str) -> str:
    return system_job or SYSTEM_JOB


# --- identifiers -----------------------------------------------------------------------------


def bin_normalise(value) -> str:
    """Digits of a BIN as typed (`001745707-0402`, `001745707 0402`); must be 13 digits."""
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    digits = re.sub(r"[\s\-]", "", text)
    if not re.fullmatch(r"[0-9]{13}", digits):
        raise ValidationFailed(
            f"BIN {text!r} is not valid: a BIN has 13 digits, shown as 9-4 (e.g. 001745707-0402).",
            code="invalid_bin",
            fields={"bin": ["13 digits, e.g. 001745707-0402."]},
        )
    return digits


def etin_normalise(value) -> str:
    """Digits of an e-TIN as typed (`1234-5678-9012`); must be 12 digits."""
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    digits = re.sub(r"[\s\-]", "", text)
    if not re.fullmatch(r"[0-9]{12}", digits):
        raise ValidationFailed(
            f"e-TIN {text!r} is not valid: an e-TIN has 12 digits (e.g. 1234-5678-9012).",
            code="invalid_etin",
            fields={"etin": ["12 digits, e.g. 1234-5678-9012."]},
        )
    return digits


def _full_clean(obj, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        raise ValidationFailed.from_django(exc) from None


def _unknown_refuse(fields, allowed) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.", code="invalid")


def _refuse_duplicate_code(obj, what: str) -> None:
    """Another row of the company with this code (a VAT rate, an item) is a field error."""
    others = type(obj).objects.filter(company=obj.company, code=obj.code).exclude(pk=obj.pk)
    if others.exists():
        raise ValidationFailed(
            f"The company already has {what} {obj.code!r}.",
            code="duplicate_code",
            fields={"code": ["Already in use."]},
        )


def _reference_save(*, actor, obj, check, names, action: str, before: dict | None = None):
    """The common tail of the catalogue services (VAT rates, parties, items): check, clean,
    save and audit one row. `before` is the snapshot taken under the row lock on update."""
    check(obj)
    _full_clean(obj, exclude=["company"])
    obj.save()
    audit_record(
        action=action,
        actor=actor,
        company=obj.company,
        obj=obj,
        before=before,
        after=model_snapshot(obj, names),
    )
    return obj


def _reference_update(*, actor, obj, changes: dict, check, names, action: str):
    """Lock the row, snapshot it, apply `changes` (already vetted) and save it as above."""
    locked = type(obj).objects.select_for_update().get(pk=obj.pk)
    before = model_snapshot(locked, names)
    for name, value in changes.items():
        setattr(locked, name, value)
    return _reference_save(
        actor=actor, obj=locked, check=check, names=names, action=action, before=before
    )


# --- VAT rates -------------------------------------------------------------------------------


def vat_rates_seed(*, company: Company) -> int:
    """Give a company the standard Bangladesh rates it lacks; returns how many were added."""
    with transaction.atomic():
        have = set(VatRate.objects.filter(company=company).values_list("code", flat=True))
        new = [
            VatRate(
                company=company,
                code=code,
                name=name,
                kind=kind,
                rate=Decimal(rate),
                specific_amount=Decimal(specific),
                sro_reference=sro,
            )
            for code, name, kind, rate, specific, sro in DEFAULT_VAT_RATES
            if code not in have
        ]
        VatRate.objects.bulk_create(new)
        return len(new)


VAT_RATE_FIELDS = ("code", "name", "kind", "rate", "specific_amount", "sro_reference", "is_active")


def _check_vat_rate(rate: VatRate) -> None:
    if rate.kind != VatKind.PERCENT and rate.rate:
        raise ValidationFailed(
            "Only a percentage rate has a rate; zero-rated, exempt and specific rates use 0.",
            code="invalid_rate",
            fields={"rate": ["Must be 0 for this kind."]},
        )
    if rate.kind == VatKind.SPECIFIC and not rate.specific_amount:
        raise ValidationFailed(
            "A specific VAT needs its amount per unit.",
            code="invalid_rate",
            fields={"specific_amount": ["Required for a specific rate."]},
        )
    _refuse_duplicate_code(rate, "a VAT rate")


@transaction.atomic
def vat_rate_create(*, actor, company: Company, **fields) -> VatRate:
    _require_write(actor, company)
    _unknown_refuse(fields, VAT_RATE_FIELDS)
    return _reference_save(
        actor=actor,
        obj=VatRate(company=company, **fields),
        check=_check_vat_rate,
        names=VAT_RATE_FIELDS,
        action="vat_rate.created",
    )


@transaction.atomic
def vat_rate_update(*, actor, vat_rate: VatRate, **changes) -> VatRate:
    _require_write(actor, vat_rate.company)
    _unknown_refuse(changes, VAT_RATE_FIELDS)
    return _reference_update(
        actor=actor,
        obj=vat_rate,
        changes=changes,
        check=_check_vat_rate,
        names=VAT_RATE_FIELDS,
        action="vat_rate.updated",
    )


def _company_rates(company: Company) -> dict[str, domain.RateInfo]:
    return {
        code: domain.RateInfo(code, kind, rate, specific, sro)
        for code, kind, rate, specific, sro in VatRate.objects.filter(
            company=company, is_active=True
        ).values_list("code", "kind", "rate", "specific_amount", "sro_reference")
    }


_RATES_AND_PARTY_SQL = (
    "SELECT code, kind, rate, specific_amount, sro_reference, NULL, NULL, NULL, NULL "
    "FROM invoicing_vatrate WHERE company_id = %s AND is_active "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, name, is_withholding_entity, bin, address "
    "FROM invoicing_party WHERE id = %s"
)


def _rates_and_party(company: Company, party_id) -> tuple[dict, dict]:
    """The company's active rates and the customer as it is now (name, BIN, address,
    withholding flag: the snapshot kept in the approval event), in one round trip (the
    approval path counts its queries)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_RATES_AND_PARTY_SQL, [company.pk, party_id])
        rows = cursor.fetchall()
    rates, buyer = {}, {"name": "", "bin": "", "address": "", "withholding": False}
    for code, kind, rate, specific, sro, party_name, flag, party_bin, address in rows:
        if code is None:
            buyer = {
                "name": party_name or "",
                "bin": party_bin or "",
                "address": address or "",
                "withholding": bool(flag),
            }
        else:
            rates[code] = domain.RateInfo(
                code, kind, Decimal(str(rate)), Decimal(str(specific)), sro
            )
    return rates, buyer


def _seller(company: Company) -> dict:
    """The company as seller, snapshotted into approval and note events."""
    return {
        "name": company.legal_name or company.name,
        "bin": company.bin or "",
        "address": company.address or "",
    }


def _check_not_future(company: Company, day: date, what: str) -> None:
    today = _today(company)
    if day > today:
        raise ValidationFailed(
            f"{what} cannot be issued with a date after today ({today}); it is dated {day}.",
            code="issue_date_in_future",
            fields={"issue_date": [f"On or before {today}."]},
        )


# --- parties ---------------------------------------------------------------------------------

PARTY_FIELDS = (
    "name",
    "kind",
    "address",
    "shipping_address",
    "bin",
    "etin",
    "is_withholding_entity",
    "email",
    "phone",
    "payment_terms_days",
    "is_active",
)


def _party_fields(fields: dict) -> dict:
    _unknown_refuse(fields, PARTY_FIELDS)
    out = dict(fields)
    if "bin" in out:
        out["bin"] = bin_normalise(out["bin"])
    if "etin" in out:
        out["etin"] = etin_normalise(out["etin"])
    if "name" in out:
        out["name"] = str(out["name"] or "").strip()
    return out


def _check_party(party: Party) -> None:
    if not party.name:
        raise ValidationFailed(
            "Name the party.", code="name_required", fields={"name": ["Required."]}
        )


@transaction.atomic
def party_create(*, actor, company: Company, **fields) -> Party:
    _require_write(actor, company)
    return _reference_save(
        actor=actor,
        obj=Party(company=company, **_party_fields(fields)),
        check=_check_party,
        names=PARTY_FIELDS,
        action="party.created",
    )


@transaction.atomic
def party_update(*, actor, party: Party, **changes) -> Party:
    _require_write(actor, party.company)
    return _reference_update(
        actor=actor,
        obj=party,
        changes=_party_fields(changes),
        check=_check_party,
        names=PARTY_FIELDS,
        action="party.updated",
    )


# --- items -----------------------------------------------------------------------------------

ITEM_FIELDS = (
    "code",
    "name",
    "description",
    "brand",
    "unit",
    "unit_price",
    "vat_rate",
    "specific_vat_amount",
    "sd_rate",
    "hs_code",
    "is_active",
)


# the audit snapshot names the VAT rate by id
_ITEM_AUDIT_NAMES = tuple(f if f != "vat_rate" else "vat_rate_id" for f in ITEM_FIELDS)


def _item_fields(company: Company, fields: dict) -> dict:
    _unknown_refuse(fields, ITEM_FIELDS)
    out = dict(fields)
    rate = out.get("vat_rate")
    if rate is not None and not isinstance(rate, VatRate):
        found = (
            VatRate.objects.filter(company=company)
            .filter(**({"pk": rate} if isinstance(rate, int) else {"code": str(rate)}))
            .first()
        )
        if found is None:
            raise ValidationFailed(
                f"VAT rate {rate!r} is not in the company's list.",
                code="vat_rate_not_allowed",
                fields={"vat_rate": ["Not in the company's list."]},
            )
        out["vat_rate"] = found
    if "vat_rate" in out and out["vat_rate"].company_id != company.pk:
        raise ValidationFailed(
            "That VAT rate belongs to another company.",
            code="vat_rate_not_allowed",
            fields={"vat_rate": ["Not in the company's list."]},
        )
    return out


def _check_item(item: Item) -> None:
    if item.vat_rate_id is None:
        raise ValidationFailed(
            "Choose the item's VAT rate.",
            code="vat_rate_required",
            fields={"vat_rate": ["Required."]},
        )
    _refuse_duplicate_code(item, "an item")


@transaction.atomic
def item_create(*, actor, company: Company, **fields) -> Item:
    _require_write(actor, company)
    fields = _item_fields(company, fields)
    if "vat_rate" not in fields:
        fields["vat_rate"] = VatRate.objects.filter(company=company, code="VAT15").first()
    return _reference_save(
        actor=actor,
        obj=Item(company=company, **fields),
        check=_check_item,
        names=_ITEM_AUDIT_NAMES,
        action="item.created",
    )


@transaction.atomic
def item_update(*, actor, item: Item, **changes) -> Item:
    _require_write(actor, item.company)
    return _reference_update(
        actor=actor,
        obj=item,
        changes=_item_fields(item.company, changes),
        check=_check_item,
        names=_ITEM_AUDIT_NAMES,
        action="item.updated",
    )


# --- invoice helpers -------------------------------------------------------------------------


def _id(value):
    if value is None or value == "":
        return None
    if hasattr(value, "pk"):
        return value.pk
    if isinstance(value, bool):
        raise ValidationFailed("Give an id.", code="invalid")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{value!r} is not an id.", code="invalid") from None


def _customer(company: Company, value) -> Party:
    pk = _id(value)
    party = Party.objects.filter(company=company, pk=pk).first() if pk else None
    if party is None:
        raise ValidationFailed(
            "Choose a customer of this company.",
            code="customer_required" if not pk else "invalid_customer",
            fields={"customer": ["Not a customer of this company." if pk else "Required."]},
        )
    if not party.is_customer:
        raise ValidationFailed(
            f"{party.name} is a vendor, not a customer.",
            code="invalid_customer",
            fields={"customer": ["Not a customer."]},
        )
    if not party.is_active:
        raise ValidationFailed(
            f"{party.name} is inactive.",
            code="invalid_customer",
            fields={"customer": ["Inactive."]},
        )
    return party


def _merge_items(company: Company, raw_lines) -> list:
    """Fill line fields left out from the item catalogue (one query for all items)."""
    if not isinstance(raw_lines, list | tuple):
        raise ValidationFailed("Lines must be a list.", code="invalid_lines")
    wanted = {
        _id(r.get("item") if "item" in r else r.get("item_id"))
        for r in raw_lines
        if isinstance(r, dict) and (r.get("item") or r.get("item_id"))
    }
    items = (
        {
            i.pk: i
            for i in Item.objects.filter(company=company, pk__in=wanted).select_related("vat_rate")
        }
        if wanted
        else {}
    )
    merged = []
    for index, raw in enumerate(raw_lines, start=1):
        if not isinstance(raw, dict):
            raise ValidationFailed(f"Line {index}: expected an object.", code="invalid_lines")
        line = dict(raw)
        ref = line.pop("item", None) or line.pop("item_id", None)
        if ref:
            item = items.get(_id(ref))
            if item is None:
                raise ValidationFailed(
                    f"Line {index}: item {ref!r} is not in this company's catalogue.",
                    code="invalid_item",
                    fields={f"lines[{index - 1}].item": ["Unknown item."]},
                )
            line["item_id"] = item.pk
            line.setdefault("description", item.name)
            if not line.get("brand"):
                line["brand"] = item.brand
            line.setdefault("unit", item.unit)
            line.setdefault("unit_price", str(item.unit_price))
            line.setdefault("vat_rate", item.vat_rate.code)
            line.setdefault("sd_rate", str(item.sd_rate))
            if item.specific_vat_amount is not None:
                line["item_specific_vat"] = str(item.specific_vat_amount)
        else:
            line["item_id"] = None
        merged.append(line)
    return merged


def _lines(company: Company, raw_lines, rates=None):
    if raw_lines is None:
        return ()
    return domain.build_lines(_merge_items(company, raw_lines), rates or _company_rates(company))


def _load(invoice) -> tuple[Invoice, domain.InvoiceState]:
    """The invoice row locked for this transaction, and its stream replayed.

    The row lock makes writers of one invoice take turns before they draw numbers or post
    (a second approval waits, then finds version 2 and gets 409); the stream's
    unique(stream_id, version) stays the backstop for anything that skips the lock."""
    if not isinstance(invoice, Invoice):
        invoice = Invoice.objects.select_related("company").get(pk=_id(invoice))
    state = stream_load_locked(invoice.pk, invoice.stream_id)
    if state is None:
        raise domain.InvoiceError("No such invoice.", code="not_found")
    return invoice, state


def _append_and_project(
    *,
    company,
    invoice_id,
    stream_id,
    state,
    events,
    metadata,
    original_id=None,
    lines_changed=None,
    lock_held=None,
) -> tuple[Invoice, domain.InvoiceState, list[int]]:
    # A stream loaded by _load holds the appenders' lock already (same statement as the row
    # lock); a note's new stream is appended after its original was loaded.
    lock_held = bool(invoice_id) if lock_held is None else lock_held
    expected = state.version
    appended = events_append(
        company_id=company.pk,
        stream_id=stream_id,
        expected_version=expected,
        events=events,
        metadata=metadata,
        lock_held=lock_held,
    )
    meta = {**metadata, "recorded_at": appended.recorded_at}
    for event_type, payload in events:
        domain.apply(state, event_type, payload, meta)
    invoice_id = invoice_id or appended.ids[0]
    invoice = projection.project(
        state,
        [t for t, _p in events],
        company_id=company.pk,
        invoice_id=invoice_id,
        original_id=original_id,
        lines_changed=lines_changed,
    )
    invoice.company = company
    return invoice, state, appended.ids


def _append_to(invoice: Invoice, state, events, *, metadata, **options):
    """Append `events` to an existing invoice's stream and project it (every command but drafting
    and a note's own new stream)."""
    return _append_and_project(
        company=invoice.company,
        invoice_id=invoice.pk,
        stream_id=invoice.stream_id,
        state=state,
        events=events,
        metadata=metadata,
        original_id=invoice.original_id,
        **options,
    )


def _today(company: Company) -> date:
    return company.today()


def _as_date(value, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed(
            f"{name.replace('_', ' ').capitalize()}: {value!r} is not a date (YYYY-MM-DD).",
            code="invalid_date",
            fields={name: ["A date, YYYY-MM-DD."]},
        ) from None


def _issue_time(company: Company) -> str:
    return timezone.localtime(timezone.now(), company.tz).strftime("%H:%M:%S")


def _post(
    company: Company,
    *,
    day: date,
    lines: list[dict],
    memo: str,
    source_id,
    key: str,
    system_job: str,
) -> JournalEntry:
    return journal_entry_post(
        actor=None,
        system_job=system_job,
        company=company,
        date=day,
        lines=[line for line in lines if Decimal(line.get("debit") or line.get("credit") or 0)],
        memo=memo[:500],
        source_type="invoice",
        source_id=str(source_id),
        idempotency_key=key,
    )


def _sales_lines(state_totals, *, reverse: bool = False) -> list[dict]:
    """AR against revenue, SD and VAT; `reverse` swaps sides (credit notes)."""
    value, sd, vat, total = state_totals
    dr, cr = ("credit", "debit") if reverse else ("debit", "credit")
    return [
        {"account_role": "accounts_receivable", dr: str(total)},
        {"account_role": "sales_revenue", cr: str(value)},
        {"account_role": "sd_payable", cr: str(sd)},
        {"account_role": "vat_payable", cr: str(vat)},
    ]


# --- invoice commands ------------------------------------------------------------------------

HEADER_INPUTS = {
    "customer": "customer_id",
    "issue_date": "issue_date",
    "due_date": "due_date",
    "currency": "currency",
    "branch": "branch",
    "place_of_supply": "place_of_supply",
    "destination": "destination",
    "vehicle_type": "vehicle_type",
    "vehicle_number": "vehicle_number",
    "notes": "notes",
}


def _header_from(company: Company, fields: dict) -> dict:
    _unknown_refuse(fields, HEADER_INPUTS)
    header = {}
    for name, value in fields.items():
        key = HEADER_INPUTS[name]
        if name == "customer":
            value = _customer(company, value).pk
        elif name in ("issue_date", "due_date"):
            value = _as_date(value, name)
        elif name == "currency":
            value = str(value or "").strip().upper() or company.base_currency
            if not re.fullmatch(r"[A-Z]{3}", value):
                raise ValidationFailed(
                    "Currency: a 3-letter ISO code.",
                    code="invalid_currency",
                    fields={"currency": ["ISO 4217 code."]},
                )
            if value != company.base_currency:
                # The ledger keeps one currency per company and there are no exchange rates
                # yet: a foreign-currency invoice would post its figures as base currency.
                raise ValidationFailed(
                    f"Invoices are issued in the company's base currency "
                    f"({company.base_currency}); {value} is not supported yet.",
                    code="currency_not_supported",
                    fields={"currency": [f"Use {company.base_currency}."]},
                )
        header[key] = value
    return header


def invoice_create_draft(
    *,
    actor,
    company: Company,
    customer,
    lines=(),
    system_job: str = "",
    recurring: RecurringInvoice | None = None,
    **fields,
) -> Invoice:
    """A new draft tax invoice. `lines`: dicts with `item` (id, fills the rest from the
    catalogue) and/or description, unit, quantity, unit_price, vat_rate (code), sd_rate,
    specific_vat_amount, brand. Header fields: issue_date (default today), due_date (default
    issue date + the customer's payment terms), currency, branch, place_of_supply,
    destination, vehicle_type, vehicle_number, notes."""
    with transaction.atomic():
        _require_write(actor, company)
        party = _customer(company, customer)
        header = _header_from(company, fields)
        header["customer_id"] = party.pk
        header.setdefault("issue_date", _today(company))
        if header.get("due_date") is None:
            header["due_date"] = header["issue_date"] + timedelta(days=party.payment_terms_days)
        header.setdefault("currency", company.base_currency)
        header.setdefault("destination", party.shipping_address or party.address)
        if recurring is not None:
            header["recurring_id"] = recurring.pk
        built = _lines(company, list(lines or []))
        stream_id = uuid.uuid4()
        state = domain.InvoiceState(stream_id=str(stream_id))
        events = domain.decide_create_draft(state, header=header, lines=built)
        metadata = actor_metadata(actor, _system_job(system_job))
        invoice, state, _ids = _append_and_project(
            company=company,
            invoice_id=None,
            stream_id=stream_id,
            state=state,
            events=events,
            metadata=metadata,
        )
        audit_record(
            action="invoice.drafted",
            actor=actor,
            system_job=_system_job(system_job),
            company=company,
            obj=invoice,
            after={"customer": party.pk, "lines": len(built), "total": str(state.total_amount)},
        )
        return invoice


def invoice_edit_draft(
    *, actor, invoice, expected_version=None, lines=None, system_job: str = "", **fields
) -> Invoice:
    """Change a draft's header fields and/or replace its lines (`lines=None` keeps them)."""
    with transaction.atomic():
        invoice, state = _load(invoice)
        company = invoice.company
        _require_write(actor, company)
        domain.check_version(state, expected_version)
        if state.exists and state.status != domain.DRAFT:
            domain.decide_edit_draft(state, header={})  # raises not_draft
        header = _header_from(company, fields)
        built = _lines(company, list(lines)) if lines is not None else None
        events = domain.decide_edit_draft(state, header=header, lines=built)
        if not events:
            return invoice
        before = {"version": state.version, "total": str(state.total_amount)}
        invoice, state, _ids = _append_to(
            invoice,
            state,
            events,
            metadata=actor_metadata(actor, _system_job(system_job)),
        )
        audit_record(
            action="invoice.edited",
            actor=actor,
            system_job=_system_job(system_job),
            company=company,
            obj=invoice,
            before=before,
            after={
                "version": state.version,
                "total": str(state.total_amount),
                "fields": sorted(fields) + (["lines"] if lines is not None else []),
            },
        )
        return invoice


def invoice_approve(*, actor, invoice, expected_version=None, system_job: str = "") -> Invoice:
    """Number, snapshot and post a draft: the number is drawn from the counter row of the
    company, series, branch and fiscal year of the issue date; the receivable entry is
    posted in the same transaction."""
    job = _system_job(system_job)
    with transaction.atomic():
        invoice, state = _load(invoice)
        company = invoice.company
        _require_write(actor, company)
        domain.check_version(state, expected_version)
        domain.check_approvable(state)
        rates, buyer = _rates_and_party(company, state.customer_id)
        party_name, withholding = buyer["name"], buyer["withholding"]
        lines = domain.resnapshot(state.lines, rates)
        domain.check_approvable(state, lines)
        issue_date = state.issue_date or _today(company)
        _check_not_future(company, issue_date, f"{state.label.capitalize()}")
        due_date = state.due_date
        allocated = numbering.number_next(
            company=company, kind=state.kind, branch=state.branch, day=issue_date
        )
        totals = domain.tax.totals(lines)
        entry = _post(
            company,
            day=issue_date,
            lines=_sales_lines((totals.value, totals.sd, totals.vat, totals.total)),
            memo=f"{allocated.number} {party_name}",
            source_id=invoice.pk,
            key=f"invoice:{invoice.stream_id}:approve",
            system_job=job,
        )
        events = domain.decide_approve(
            state,
            lines=lines,
            number=allocated.number,
            series=allocated.series,
            sequence=allocated.sequence,
            fiscal_year=allocated.fiscal_year,
            issue_date=issue_date,
            issue_time=_issue_time(company),
            due_date=due_date,
            withholding_buyer=withholding,
            journal_entry_id=entry.pk,
            approved_at=timezone.now().isoformat(),
            buyer=buyer,
            seller=_seller(company),
        )
        lines_changed = lines != state.lines
        invoice, state, _ids = _append_to(
            invoice,
            state,
            events,
            metadata=actor_metadata(actor, job),
            lines_changed=lines_changed,
        )
        audit_record(
            action="invoice.approved",
            actor=actor,
            system_job=job,
            company=company,
            obj=invoice,
            before={"status": domain.DRAFT},
            after={
                "status": state.status,
                "number": state.number,
                "total": str(state.total_amount),
                "journal_entry": entry.pk,
            },
        )
        return invoice


# Money received lands in cash or at the bank; receivables, revenue, VAT and the rest are not
# receipts accounts.
PAYMENT_ACCOUNT_ROLES = ("bank", "petty_cash", "cash_in_transit", "bank_clearing")


def _payment_account(company: Company, account, *, vouched: bool = False) -> tuple[dict, str]:
    if account in (None, ""):
        from accounting.services import account_for_role

        found = account_for_role(company=company, role="bank")
        return {"account": found.pk}, found.code
    if isinstance(account, Account):
        found = account if account.company_id == company.pk else None
    else:
        qs = Account.objects.filter(company=company)
        found = (
            qs.filter(pk=account).first()
            if isinstance(account, int)
            else qs.filter(code=str(account)).first()
        )
    if found is None:
        raise ValidationFailed(
            f"Account {account!r} is not in this company's chart.",
            code="invalid_account",
            fields={"account": ["Unknown account."]},
        )
    if (
        not vouched
        and not AccountRole.objects.filter(
            company=company, account=found, role__in=PAYMENT_ACCOUNT_ROLES
        ).exists()
    ):
        raise ValidationFailed(
            f"Account {found.code} {found.name} is not a bank or cash account; money received "
            "is booked to an account mapped to the role bank, petty cash, cash in transit or "
            "bank clearing.",
            code="invalid_account",
            fields={"account": ["Not a bank or cash account."]},
        )
    return {"account": found.pk}, found.code


def invoice_payment_record(
    *,
    actor,
    invoice,
    amount,
    date=None,
    vds_withheld="0",
    account=None,
    method: str = "",
    reference: str = "",
    expected_version=None,
    system_job: str = "",
    account_vouched: bool = False,
) -> Invoice:
    """Record money received (partial allowed; more than due is refused). `vds_withheld` is
    VAT the withholding buyer deducted at source (it settles the receivable against the VDS
    receivable). The bank side is the company's `bank` role unless `account` (id, code or
    Account) is given; that account must hold a bank, petty cash, cash in transit or bank
    clearing role, unless the caller passes `account_vouched=True` because it knows the account
    is a money account by other means (banking settles invoices to the ledger account of one
    of the company's bank accounts, which need not hold a role). A vouched account must still
    be in the company's chart; invoicing does not import banking to check it."""
    job = _system_job(system_job)
    with transaction.atomic():
        invoice, state = _load(invoice)
        company = invoice.company
        _require_write(actor, company)
        domain.check_version(state, expected_version)
        paid, withheld = domain.check_payment(state, amount=amount, vds_withheld=vds_withheld)
        day = _as_date(date, "date") or _today(company)
        if state.issue_date and day < state.issue_date:
            raise ValidationFailed(
                f"A payment cannot be dated before the invoice ({state.issue_date}).",
                code="invalid_date",
                fields={"date": [f"On or after {state.issue_date}."]},
            )
        bank_line, account_code = (
            _payment_account(company, account, vouched=account_vouched) if paid else ({}, "")
        )
        lines = []
        if paid:
            lines.append({**bank_line, "debit": str(paid)})
        if withheld:
            lines.append({"account_role": "vds_receivable", "debit": str(withheld)})
        lines.append({"account_role": "accounts_receivable", "credit": str(paid + withheld)})
        entry = _post(
            company,
            day=day,
            lines=lines,
            memo=f"Payment {state.number} {reference}".strip(),
            source_id=invoice.pk,
            key=f"invoice:{invoice.stream_id}:v{state.version + 1}:payment",
            system_job=job,
        )
        events = domain.decide_payment(
            state,
            amount=paid,
            vds_withheld=withheld,
            day=day,
            method=method,
            reference=reference,
            account_code=account_code,
            journal_entry_id=entry.pk,
        )
        before = {"status": state.status, "amount_paid": str(state.amount_paid)}
        invoice, state, _ids = _append_to(
            invoice,
            state,
            events,
            metadata=actor_metadata(actor, job),
        )
        audit_record(
            action="invoice.payment_recorded",
            actor=actor,
            system_job=job,
            company=company,
            obj=invoice,
            before=before,
            after={
                "status": state.status,
                "amount_paid": str(state.amount_paid),
                "amount": str(paid),
                "vds_withheld": str(withheld),
            },
        )
        return invoice


def invoice_void(
    *, actor, invoice, reason: str, expected_version=None, system_job: str = ""
) -> Invoice:
    """Void a draft, or an approved invoice without payments or notes: its number stays,
    marked void, and its receivable entry is reversed."""
    job = _system_job(system_job)
    with transaction.atomic():
        invoice, state = _load(invoice)
        company = invoice.company
        _require_write(actor, company)
        domain.check_version(state, expected_version)
        reason = domain.check_void(state, reason)
        day = _today(company)
        reversal_id = None
        if state.approved and state.journal_entry_id:
            entry = JournalEntry.objects.get(pk=state.journal_entry_id)
            reversal = journal_entry_reverse(
                actor=None,
                system_job=job,
                entry=entry,
                date=max(day, entry.date),
                reason=f"{state.number} voided: {reason}",
            )
            reversal_id = reversal.pk
        events = domain.decide_void(
            state,
            reason=reason,
            day=day,
            voided_at=timezone.now().isoformat(),
            journal_entry_id=reversal_id,
        )
        events[0][1]["reversed_amount"] = str(state.amount_due)
        before = {"status": state.status}
        invoice, state, _ids = _append_to(
            invoice,
            state,
            events,
            metadata=actor_metadata(actor, job),
        )
        audit_record(
            action="invoice.voided",
            actor=actor,
            system_job=job,
            company=company,
            obj=invoice,
            before=before,
            after={"status": state.status, "reason": reason},
        )
        return invoice


def _note_issue(
    *,
    kind: str,
    actor,
    invoice,
    reason: str,
    lines,
    issue_date=None,
    expected_version=None,
    system_job: str = "",
) -> Invoice:
    job = _system_job(system_job)
    with transaction.atomic():
        original, state = _load(invoice)
        company = original.company
        _require_write(actor, company)
        domain.check_version(state, expected_version)
        built = _lines(company, list(lines or []))
        domain.check_note(state, kind=kind, lines=built, reason=reason)
        day = _as_date(issue_date, "issue_date") or _today(company)
        if state.issue_date and day < state.issue_date:
            raise ValidationFailed(
                f"A note cannot be dated before the invoice it adjusts ({state.issue_date}).",
                code="invalid_date",
                fields={"issue_date": [f"On or after {state.issue_date}."]},
            )
        _check_not_future(company, day, "A note")
        _rates, buyer = _rates_and_party(company, state.customer_id)
        allocated = numbering.number_next(company=company, kind=kind, branch=state.branch, day=day)
        totals = domain.tax.totals(built)
        note_stream = uuid.uuid4()
        note_state = domain.InvoiceState(stream_id=str(note_stream))
        entry = _post(
            company,
            day=day,
            lines=_sales_lines(
                (totals.value, totals.sd, totals.vat, totals.total),
                reverse=kind == domain.CREDIT_NOTE,
            ),
            memo=f"{allocated.number} on {state.number}: {reason}",
            source_id=original.pk,
            key=f"invoice:{note_stream}:note",
            system_job=job,
        )
        note_events, original_events = domain.decide_note(
            state,
            note_state,
            kind=kind,
            lines=built,
            reason=reason,
            number=allocated.number,
            series=allocated.series,
            sequence=allocated.sequence,
            fiscal_year=allocated.fiscal_year,
            issue_date=day,
            issue_time=_issue_time(company),
            journal_entry_id=entry.pk,
            approved_at=timezone.now().isoformat(),
            buyer=buyer,
            seller=_seller(company),
        )
        metadata = actor_metadata(actor, job)
        before = {"status": state.status, "amount_due": str(state.amount_due)}
        original, state, _ids = _append_to(
            original,
            state,
            original_events,
            metadata=metadata,
        )
        note, note_state, _ids = _append_and_project(
            company=company,
            lock_held=True,
            invoice_id=None,
            stream_id=note_stream,
            state=note_state,
            events=note_events,
            metadata=metadata,
            original_id=original.pk,
        )
        audit_record(
            action=f"invoice.{kind}_issued",
            actor=actor,
            system_job=job,
            company=company,
            obj=original,
            before=before,
            after={
                "note": note.number,
                "total": str(note_state.total_amount),
                "amount_due": str(state.amount_due),
                "reason": note_state.reason,
            },
        )
        return note


def credit_note_issue(
    *,
    actor,
    invoice,
    reason: str,
    lines,
    issue_date=None,
    expected_version=None,
    system_job: str = "",
) -> Invoice:
    """Mushak-6.7: a decreasing adjustment to an approved invoice, in the credit-note series;
    posts revenue, SD and VAT back against receivables. At most what was charged (invoice plus
    debit notes less earlier credit notes, paid or not), and per VAT code at most the value,
    SD and VAT still open at that rate (`credit_exceeds_invoice`). Credit beyond the amount
    still due leaves the customer in credit: receivables go negative by that much and the
    invoice shows a negative amount due (status paid) until it is refunded or used."""
    return _note_issue(
        kind=domain.CREDIT_NOTE,
        actor=actor,
        invoice=invoice,
        reason=reason,
        lines=lines,
        issue_date=issue_date,
        expected_version=expected_version,
        system_job=system_job,
    )


def debit_note_issue(
    *,
    actor,
    invoice,
    reason: str,
    lines,
    issue_date=None,
    expected_version=None,
    system_job: str = "",
) -> Invoice:
    """Mushak-6.8: an increasing adjustment to an approved invoice, in the debit-note series."""
    return _note_issue(
        kind=domain.DEBIT_NOTE,
        actor=actor,
        invoice=invoice,
        reason=reason,
        lines=lines,
        issue_date=issue_date,
        expected_version=expected_version,
        system_job=system_job,
    )


def invoice_mark_overdue(
    *, actor=None, invoice, today=None, system_job: str = "invoicing.overdue"
) -> Invoice:
    """Mark an open invoice past its due date overdue (once) and queue a reminder email to the
    customer after commit; for an invoice already overdue, send a reminder every
    INVOICING_REMINDER_EVERY_DAYS days. Does nothing when neither applies. `ReminderSent` is
    recorded only once the email has really gone (`invoice_reminder_record`, after the send);
    a failed send records nothing, so the next run tries again. The returned invoice has
    `reminder_queued` set when an email was queued."""
    with transaction.atomic():
        invoice, state = _load(invoice)
        company = invoice.company
        _require_write(actor, company)
        today = _as_date(today, "today") or _today(company)
        party = Party.objects.filter(pk=state.customer_id).only("email", "name").first()
        email = party.email if party else ""
        events = domain.decide_mark_overdue(state, today=today, remind=False)
        remind = bool(email) and bool(
            events
            or domain.decide_reminder(
                state,
                today=today,
                every_days=getattr(settings, "INVOICING_REMINDER_EVERY_DAYS", 7),
                to=email,
            )
        )
        if remind:
            invoice_id = invoice.pk
            transaction.on_commit(lambda: _send_reminder(invoice_id, email, today))
        invoice.reminder_queued = remind
        if not events:
            return invoice
        before = {"status": state.status}
        invoice, state, _ids = _append_to(
            invoice,
            state,
            events,
            metadata=actor_metadata(actor, system_job),
        )
        if events[0][0] == "MarkedOverdue":
            audit_record(
                action="invoice.marked_overdue",
                actor=actor,
                system_job=system_job,
                company=company,
                obj=invoice,
                before=before,
                after={"status": state.status},
            )
        invoice.reminder_queued = remind
        return invoice


def _send_reminder(invoice_id: int, to: str, today: date) -> None:
    from invoicing.tasks import reminder_send

    if reminder_send(invoice_id, to):
        invoice_reminder_record(invoice=invoice_id, to=to, today=today)


def invoice_reminder_record(
    *, invoice, to: str, today: date, system_job: str = "invoicing.overdue"
) -> Invoice:
    """Record that a payment reminder went to `to` on `today` (called after the email was
    sent); nothing when one is already recorded for that day."""
    with transaction.atomic():
        invoice, state = _load(invoice)
        if state.last_reminder_on == today:
            return invoice
        invoice, state, _ids = _append_to(
            invoice,
            state,
            [("ReminderSent", {"date": today.isoformat(), "to": to})],
            metadata=actor_metadata(None, system_job),
        )
        return invoice


# --- recurring invoices ----------------------------------------------------------------------

RECURRING_FIELDS = (
    "name",
    "customer",
    "lines",
    "currency",
    "branch",
    "destination",
    "notes",
    "frequency",
    "interval",
    "next_date",
    "anchor_day",
    "end_date",
    "due_days",
    "auto_approve",
    "is_active",
)


def _add_months(day: date, months: int) -> date:
    import calendar

    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_occurrence(day: date, frequency: str, interval: int = 1, anchor_day=None) -> date:
    """The next date of a schedule; monthly schedules keep `anchor_day` (Jan 31 -> Feb 28 ->
    Mar 31), clamped to the month's length."""
    import calendar

    if frequency == Frequency.WEEKLY:
        return day + timedelta(weeks=interval)
    months = {Frequency.MONTHLY: 1, Frequency.QUARTERLY: 3, Frequency.YEARLY: 12}[frequency]
    moved = _add_months(day, months * interval)
    if anchor_day:
        last = calendar.monthrange(moved.year, moved.month)[1]
        moved = moved.replace(day=min(anchor_day, last))
    return moved


def _recurring_fields(company: Company, fields: dict) -> dict:
    _unknown_refuse(fields, RECURRING_FIELDS)
    out = dict(fields)
    if "customer" in out:
        out["customer"] = _customer(company, out["customer"])
    if "lines" in out:
        lines = list(out["lines"] or [])
        _lines(company, lines)  # validates now: codes, items and figures
        out["lines"] = lines
    for name in ("next_date", "end_date"):
        if name in out:
            out[name] = _as_date(out[name], name)
    return out


@transaction.atomic
def recurring_invoice_create(*, actor, company: Company, **fields) -> RecurringInvoice:
    _require_write(actor, company)
    fields = _recurring_fields(company, fields)
    fields.setdefault("next_date", _today(company))
    template = RecurringInvoice(
        company=company, created_by=actor if actor and actor.pk else None, **fields
    )
    if not template.lines:
        raise ValidationFailed("A recurring invoice needs at least one line.", code="no_lines")
    template.anchor_day = template.anchor_day or template.next_date.day
    _full_clean(template, exclude=["company", "created_by", "customer"])
    template.save()
    audit_record(
        action="recurring_invoice.created",
        actor=actor,
        company=company,
        obj=template,
        after={
            "customer": template.customer_id,
            "frequency": template.frequency,
            "next_date": template.next_date.isoformat(),
        },
    )
    return template


@transaction.atomic
def recurring_invoice_update(*, actor, recurring: RecurringInvoice, **changes) -> RecurringInvoice:
    _require_write(actor, recurring.company)
    changes = _recurring_fields(recurring.company, changes)
    template = RecurringInvoice.objects.select_for_update().get(pk=recurring.pk)
    before = {"next_date": template.next_date.isoformat(), "is_active": template.is_active}
    for name, value in changes.items():
        setattr(template, name, value)
    if "next_date" in changes and "anchor_day" not in changes:
        template.anchor_day = template.next_date.day
    if not template.lines:
        raise ValidationFailed("A recurring invoice needs at least one line.", code="no_lines")
    _full_clean(template, exclude=["company", "created_by", "customer"])
    template.save()
    audit_record(
        action="recurring_invoice.updated",
        actor=actor,
        company=template.company,
        obj=template,
        before=before,
        after={"next_date": template.next_date.isoformat(), "is_active": template.is_active},
    )
    return template


def recurring_invoice_generate(
    *, actor, recurring: RecurringInvoice, today=None, system_job: str = "invoicing.recurring"
) -> list[Invoice]:
    """Issue every occurrence of a template due by `today` (company time zone; a later date
    is capped at the company's today, so nothing is issued ahead of time): a draft each,
    approved too when the template says so (or INVOICING_RECURRING_AUTO_APPROVE is on). The
    template's next date moves in the same transaction, so a retry issues nothing twice.
    `actor`: the user asking (needs write on the template's company), None for beat."""
    made = []
    with transaction.atomic():
        template = (
            RecurringInvoice.objects.select_for_update()
            .select_related("company")
            .get(pk=recurring.pk)
        )
        company = template.company
        _require_write(actor, company)
        today = min(_as_date(today, "today") or _today(company), _today(company))
        approve = template.auto_approve or getattr(
            settings, "INVOICING_RECURRING_AUTO_APPROVE", False
        )
        for _ in range(36):  # catch up at most three years of monthly runs at once
            if not template.is_active or template.next_date > today:
                break
            if template.end_date and template.next_date > template.end_date:
                template.is_active = False
                break
            invoice = invoice_create_draft(
                actor=None,
                system_job=system_job,
                company=company,
                customer=template.customer_id,
                lines=template.lines,
                recurring=template,
                issue_date=template.next_date,
                due_date=template.next_date + timedelta(days=template.due_days),
                currency=template.currency or company.base_currency,
                branch=template.branch,
                destination=template.destination,
                notes=template.notes,
            )
            if approve:
                invoice = invoice_approve(actor=None, system_job=system_job, invoice=invoice)
            made.append(invoice)
            template.last_run_on = template.next_date
            template.next_date = next_occurrence(
                template.next_date, template.frequency, template.interval, template.anchor_day
            )
        template.last_error = ""
        template.save(
            update_fields=["next_date", "last_run_on", "is_active", "last_error", "updated_at"]
        )
        if made:
            audit_record(
                action="recurring_invoice.issued",
                system_job=system_job,
                company=company,
                obj=template,
                after={
                    "invoices": [i.pk for i in made],
                    "next_date": template.next_date.isoformat(),
                },
            )
    return made


def recurring_invoice_failed(*, recurring: RecurringInvoice, error: str) -> None:
    RecurringInvoice.objects.filter(pk=recurring.pk).update(last_error=error[:500])


__all__ = [
    "InvoiceKind",
    "InvoiceStatus",
    "PartyKind",
    "bin_normalise",
    "credit_note_issue",
    "debit_note_issue",
    "etin_normalise",
    "invoice_approve",
    "invoice_create_draft",
    "invoice_edit_draft",
    "invoice_mark_overdue",
    "invoice_payment_record",
    "invoice_void",
    "item_create",
    "item_update",
    "party_create",
    "party_update",
    "recurring_invoice_create",
    "recurring_invoice_generate",
    "recurring_invoice_update",
    "vat_rate_create",
    "vat_rate_update",
    "vat_rates_seed",
]
