"""The read model (Invoice, InvoiceLine, InvoicePayment) as a function of the events.

`invoice_row`, `line_rows` and `payment_rows` turn an aggregate state into column values; the
live projection (`project`, called by the services in the append transaction) and the rebuild
(`projections_rebuild`, `manage.py rebuild_invoice_projections`) both use them, so a rebuilt row
is the live row. An invoice's primary key is the global position of its stream's first event,
which makes ids stable across rebuilds.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

from django.db import connection, transaction

from invoicing import domain
from invoicing.models import (
    MUSHAK_FORM,
    Invoice,
    InvoiceEvent,
    InvoiceLine,
    InvoicePayment,
)

LINE_EVENTS = {"InvoiceDrafted", "DraftEdited", "InvoiceApproved", "NoteIssued"}


def _time(value):
    if value in (None, ""):
        return None
    return value if isinstance(value, time) else time.fromisoformat(value)


def _dt(value):
    if value in (None, ""):
        return None
    from django.utils.dateparse import parse_datetime

    return value if not isinstance(value, str) else parse_datetime(value)


def invoice_row(
    state: domain.InvoiceState, *, company_id: int, invoice_id: int, original_id: int | None
) -> dict:
    return {
        "id": invoice_id,
        "company_id": company_id,
        "stream_id": uuid.UUID(str(state.stream_id)),
        "version": state.version,
        "kind": state.kind,
        "original_id": original_id,
        "number": state.number,
        "series": state.series,
        "sequence": state.sequence,
        "branch": state.branch or "",
        "place_of_supply": state.place_of_supply or "",
        "fiscal_year": state.fiscal_year,
        "mushak_form": MUSHAK_FORM.get(state.kind, "") if state.number else "",
        "mushak_number": state.number,
        "status": state.status,
        "customer_id": state.customer_id,
        "vendor_id": state.vendor_id,
        "issue_date": state.issue_date,
        "issue_time": _time(state.issue_time),
        "due_date": state.due_date,
        "currency": state.currency,
        "total_value": state.total_value,
        "total_sd": state.total_sd,
        "total_vat": state.total_vat,
        "total_amount": state.total_amount,
        "vds_amount": state.vds_amount,
        "credited_amount": state.credited_amount,
        "debited_amount": state.debited_amount,
        "amount_paid": state.amount_paid,
        "amount_due": state.amount_due,
        "buyer_name": state.buyer_name,
        "buyer_bin": state.buyer_bin,
        "buyer_address": state.buyer_address,
        "buyer_withholding": state.withholding_buyer,
        "seller_name": state.seller_name,
        "seller_bin": state.seller_bin,
        "seller_address": state.seller_address,
        "destination": state.destination or "",
        "vehicle_type": state.vehicle_type or "",
        "vehicle_number": state.vehicle_number or "",
        "reason": state.reason or "",
        "notes": state.notes or "",
        "created_by_id": state.created_by_id,
        "approved_by_id": state.approved_by_id,
        "approved_by_label": state.approved_by_label or "",
        "approved_at": _dt(state.approved_at),
        "voided_at": _dt(state.voided_at),
        "void_reason": state.void_reason,
        "journal_entry_id": state.journal_entry_id,
        "void_journal_entry_id": state.void_journal_entry_id,
        "recurring_id": state.recurring_id,
        "last_reminder_on": state.last_reminder_on,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
    }


def line_values(state: domain.InvoiceState, invoice_id: int) -> list[dict]:
    return [
        {
            "invoice_id": invoice_id,
            "serial": line.serial,
            "item_id": line.item_id,
            "description": line.description,
            "brand": line.brand,
            "unit": line.unit,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "value": line.value,
            "sd_rate": line.sd_rate,
            "sd_amount": line.sd_amount,
            "vat_rate_code": line.vat_rate_code,
            "vat_kind": line.vat_kind,
            "vat_rate": line.vat_rate,
            "vat_specific_amount": line.vat_specific_amount,
            "vat_label": line.vat_label,
            "sro_reference": line.sro_reference,
            "vat_amount": line.vat_amount,
            "total": line.total,
        }
        for line in state.lines
    ]


def payment_values(state, invoice_id: int, company_id: int, payments=None) -> list[dict]:
    return [
        {
            "invoice_id": invoice_id,
            "company_id": company_id,
            "event_version": p.version,
            "date": p.date,
            "amount": p.amount,
            "vds_withheld": p.vds_withheld,
            "method": p.method,
            "reference": p.reference,
            "account_code": p.account_code,
            "journal_entry_id": p.journal_entry_id,
            "recorded_at": p.recorded_at,
        }
        for p in (state.payments if payments is None else payments)
    ]


def line_rows(state: domain.InvoiceState, invoice_id: int) -> list[InvoiceLine]:
    return [InvoiceLine(**values) for values in line_values(state, invoice_id)]


def payment_rows(state, invoice_id: int, company_id: int, payments=None) -> list[InvoicePayment]:
    return [
        InvoicePayment(**values)
        for values in payment_values(state, invoice_id, company_id, payments)
    ]


# One precomputed UPDATE for the live projection (the ORM's per-call SQL compilation of ~50
# columns was a large share of an approval's time).
_FIELDS = {f.attname: f for f in Invoice._meta.concrete_fields}
_SET_COLUMNS = [name for name in _FIELDS if name not in ("id", "stream_id", "company_id")]
_UPDATE_SQL = (
    f"UPDATE {Invoice._meta.db_table} SET "  # noqa: S608 - constant names, %s placeholders
    + ", ".join(f'"{_FIELDS[name].column}" = %s' for name in _SET_COLUMNS)
    + " WHERE id = %s"
)


def _update_params(row: dict) -> list:
    if connection.vendor == "postgresql":  # psycopg adapts every column type natively
        return [row[name] for name in _SET_COLUMNS]
    return [_FIELDS[name].get_db_prep_save(row[name], connection) for name in _SET_COLUMNS]


_UPDATE_FIELDS = [
    f.attname for f in Invoice._meta.concrete_fields if f.attname not in ("id", "stream_id")
]


def project(
    state: domain.InvoiceState,
    new_types: list[str],
    *,
    company_id: int,
    invoice_id: int,
    original_id: int | None = None,
    lines_changed: bool | None = None,
) -> Invoice:
    """Bring the read model of one stream up to `state`, after appending `new_types`."""
    row = invoice_row(state, company_id=company_id, invoice_id=invoice_id, original_id=original_id)
    invoice = Invoice(**row)
    if state.version == len(new_types):  # a new stream
        invoice.save(force_insert=True)
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                _UPDATE_SQL,
                _update_params(row) + [invoice_id],
            )
    if lines_changed is None:
        lines_changed = bool(LINE_EVENTS.intersection(new_types))
    if lines_changed:
        if state.version != len(new_types):
            InvoiceLine.objects.filter(invoice_id=invoice_id).delete()
        InvoiceLine.objects.bulk_create(line_rows(state, invoice_id))
    paid = new_types.count("PaymentRecorded")
    if paid:
        InvoicePayment.objects.bulk_create(
            payment_rows(state, invoice_id, company_id, state.payments[-paid:])
        )
    return invoice


# --- rebuild ---------------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REPLAY_SQL = (
    "SELECT id, company_id, stream_id, type, payload::text, metadata::text, "
    "(EXTRACT(EPOCH FROM recorded_at) * 1000000)::bigint "
    "FROM invoicing_invoiceevent {where} ORDER BY stream_id, version"
)


def _event_rows(company_id: int | None):
    """(id, company, stream, type, payload, metadata, recorded_at) in stream order. On
    PostgreSQL through a server-side cursor, with timestamps as exact epoch microseconds and
    JSON as text (psycopg's per-row timestamp parsing was a third of the replay)."""
    if connection.vendor != "postgresql":
        qs = InvoiceEvent.objects.order_by("stream_id", "version")
        if company_id is not None:
            qs = qs.filter(company_id=company_id)
        yield from qs.values_list(
            "id", "company_id", "stream_id", "type", "payload", "metadata", "recorded_at"
        ).iterator(chunk_size=5000)
        return
    where, params = ("WHERE company_id = %s", [company_id]) if company_id is not None else ("", [])
    with transaction.atomic():  # a server-side cursor lives in a transaction
        yield from _event_rows_pg(where, params)


def _event_rows_pg(where: str, params: list):
    with connection.connection.cursor(name="invoicing_replay") as cursor:
        cursor.itersize = 5000
        cursor.execute(_REPLAY_SQL.format(where=where), params)
        loads = json.loads
        for event_id, company, stream_id, event_type, payload, metadata, micros in cursor:
            yield (
                event_id,
                company,
                stream_id,
                event_type,
                loads(payload),
                loads(metadata),
                _EPOCH + timedelta(microseconds=micros),
            )


def _replay_all(company_id: int | None):
    """Replay every stream (of one company): {stream_id: (first_id, company_id, state)}."""
    streams: dict[str, tuple[int, int, domain.InvoiceState]] = {}
    current_key = None
    current = None
    for event_id, company, stream_id, event_type, payload, metadata, recorded_at in _event_rows(
        company_id
    ):
        if stream_id != current_key:
            current_key = stream_id
            current = domain.InvoiceState(stream_id=str(stream_id))
            streams[str(stream_id)] = (event_id, company, current)
        metadata["recorded_at"] = recorded_at
        domain.apply(current, event_type, payload, metadata)
    return streams


def _columns(model, skip=("id",)) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.attname not in skip]


_INVOICE_COLUMNS = _columns(Invoice, skip=())
_LINE_COLUMNS = _columns(InvoiceLine)
_PAYMENT_COLUMNS = _columns(InvoicePayment)


def _write_copy(invoices: list[dict], lines: list[dict], payments: list[dict]) -> None:
    """PostgreSQL: COPY the invoices into a temporary table and upsert them in one statement;
    COPY lines and payments straight in. Several times faster than ORM bulk inserts."""
    from core.rls import copy_from

    cols = ", ".join(f'"{c}"' for c in _INVOICE_COLUMNS)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in _INVOICE_COLUMNS if c != "id")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE invoicing_rebuild_tmp "
            "(LIKE invoicing_invoice INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        raw = cursor.cursor
        with raw.copy(f"COPY invoicing_rebuild_tmp ({cols}) FROM STDIN") as copy:
            for row in invoices:
                copy.write_row([row[c] for c in _INVOICE_COLUMNS])
        cursor.execute(
            f"INSERT INTO invoicing_invoice ({cols}) SELECT {cols} FROM invoicing_rebuild_tmp "  # noqa: S608 - constant names
            f"ON CONFLICT (id) DO UPDATE SET {updates}"
        )
        cursor.execute("DROP TABLE invoicing_rebuild_tmp")
        for table, columns, rows in (
            ("invoicing_invoiceline", _LINE_COLUMNS, lines),
            ("invoicing_invoicepayment", _PAYMENT_COLUMNS, payments),
        ):
            names = [f'"{c}"' for c in columns]
            with copy_from(cursor, table, names) as copy:  # RLS-aware (core.rls)
                for row in rows:
                    copy.write_row([row[c] for c in columns])


def _write_orm(invoices: list[dict], lines: list[dict], payments: list[dict], batch_size):
    # Originals before the notes that point at them (SQLite checks foreign keys per row
    # when deferral is off).
    invoices.sort(key=lambda row: (row["original_id"] is not None, row["id"]))
    Invoice.objects.bulk_create(
        [Invoice(**row) for row in invoices],
        batch_size=batch_size,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=_UPDATE_FIELDS,
    )
    InvoiceLine.objects.bulk_create([InvoiceLine(**r) for r in lines], batch_size=batch_size)
    InvoicePayment.objects.bulk_create(
        [InvoicePayment(**r) for r in payments], batch_size=batch_size
    )


def _lock_out_appends() -> None:
    """Hold off every invoice write until this transaction ends, so the events replayed are
    all the events there are when the rows are written. PostgreSQL: the appenders' advisory
    lock, exclusively (appends take it shared); SQLite: the database's write lock, taken by a
    write that changes nothing."""
    from invoicing.events import APPEND_LOCK
    from invoicing.models import InvoiceCounter

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK])
        else:
            cursor.execute(f"UPDATE {InvoiceCounter._meta.db_table} SET last = last WHERE 0")  # noqa: S608 - constant


def projections_rebuild(*, company=None, batch_size: int = 2000) -> dict:
    """Recompute the read model from the events and write it set-based. Rows of streams that
    are gone are deleted; invoices are upserted by primary key; lines and payments are
    replaced. Replay and write are one transaction that holds appends off (a draft created
    meanwhile waits, then lands on the rebuilt rows). Returns counts."""
    with transaction.atomic():
        _lock_out_appends()
        return _rebuild(company, batch_size)


def _rebuild(company, batch_size: int) -> dict:
    company_id = company.pk if company is not None else None
    streams = _replay_all(company_id)
    first_ids = {sid: first for sid, (first, _c, _s) in streams.items()}
    invoices, lines, payments = [], [], []
    for _sid, (first_id, comp, state) in streams.items():
        original_id = first_ids.get(state.original_stream_id) if state.original_stream_id else None
        invoices.append(
            invoice_row(state, company_id=comp, invoice_id=first_id, original_id=original_id)
        )
        lines.extend(line_values(state, first_id))
        payments.extend(payment_values(state, first_id, comp))
    scope = (
        Invoice.objects.all()
        if company_id is None
        else Invoice.objects.filter(company_id=company_id)
    )
    with transaction.atomic():
        InvoiceLine.objects.filter(invoice__in=scope.values("pk")).delete()
        InvoicePayment.objects.filter(invoice__in=scope.values("pk")).delete()
        keep = set(first_ids.values())
        stale = [pk for pk in scope.values_list("pk", flat=True) if pk not in keep]
        for i in range(0, len(stale), batch_size):
            Invoice.objects.filter(pk__in=stale[i : i + batch_size]).delete()
        if connection.vendor == "postgresql":
            _write_copy(invoices, lines, payments)
        else:
            _write_orm(invoices, lines, payments, batch_size)
    return {"streams": len(invoices), "lines": len(lines), "payments": len(payments)}


def invoice_snapshot(qs) -> list[tuple]:
    """Comparable content of the read model (what a rebuild must reproduce)."""
    inv_fields = [f.attname for f in Invoice._meta.concrete_fields]
    line_fields = [f.attname for f in InvoiceLine._meta.concrete_fields if f.attname != "id"]
    pay_fields = [f.attname for f in InvoicePayment._meta.concrete_fields if f.attname != "id"]
    ids = list(qs.values_list("pk", flat=True))
    out = defaultdict(list)
    out["invoices"] = sorted(qs.values_list(*inv_fields))
    out["lines"] = sorted(InvoiceLine.objects.filter(invoice_id__in=ids).values_list(*line_fields))
    out["payments"] = sorted(
        InvoicePayment.objects.filter(invoice_id__in=ids).values_list(*pay_fields)
    )
    return dict(out)


def projections_match(*, company) -> bool:
    """True when a rebuild would change nothing (the rebuild runs and is rolled back)."""
    scope = Invoice.objects.filter(company=company)
    before = invoice_snapshot(scope)
    with transaction.atomic():
        projections_rebuild(company=company)
        after = invoice_snapshot(Invoice.objects.filter(company=company))
        transaction.set_rollback(True)
    return before == after
