"""The invoicing benchmark's workloads, loaded set-based (COPY on PostgreSQL).

Each company gets customers and items through the services, then a few template invoices made
through the real services (drafted; approved; paid; partly paid; paid in two parts; voided),
each with 5 lines. Larger volumes are clones of the templates' event streams, written straight
into the event store: every clone is a new stream (new stream id) whose events are the
template's events with the customer, the issue date and the number changed, so every stream
replays to a valid invoice with its own gapless-looking number. With `projection=True` the
clones' read-model rows (invoice, lines, payments) are written beside them too, as the live
projection would have left them.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from bench._bulk import analyze, table_insert

SEED = 5
CUSTOMERS = 40
ITEMS = 8
LINES = 5
FIRST_DAY = date(2025, 7, 1)  # fiscal year 2025-26 (July to June)
DAYS = 365
FISCAL_YEAR = "2025-26"

# Template kind -> share of the clones.
MIX = (
    ("approved", 35),
    ("paid", 25),
    ("partly_paid", 15),
    ("paid_twice", 10),
    ("draft", 10),
    ("void", 5),
)


@dataclass
class Sales:
    company: object
    owner: object
    customers: list[int]
    items: list[int]


def company_make(slug: str, name: str, username: str) -> Sales:
    from accounting import services as ledger
    from core.models import User
    from core.services import company_create
    from invoicing import services

    owner = User.objects.create_user(username=username, password=None)
    company = company_create(
        actor=None,
        name=name,
        slug=slug,
        owner=owner,
        fiscal_year_start_month=7,
        base_currency="BDT",
        time_zone="Asia/Dhaka",
        country="BD",
    )
    for day in (FIRST_DAY, FIRST_DAY + timedelta(days=DAYS)):
        ledger.fiscal_year_create(actor=None, company=company, containing=day)
    if not company_vat_codes(company):  # seeded when the company is created
        services.vat_rates_seed(company=company)
    customers = [
        services.party_create(
            actor=owner,
            company=company,
            name=f"Customer {n} Ltd",
            bin=f"{n:09d}-0101",
            address=f"{n} Motijheel C/A, Dhaka",
            email=f"ap{n}@customer.example",
            payment_terms_days=30,
            is_withholding_entity=n % 10 == 0,
        ).pk
        for n in range(1, CUSTOMERS + 1)
    ]
    rates = ("VAT15", "VAT15", "VAT15", "VAT10", "VAT7_5", "VAT5", "VAT15", "VAT15")
    available = set(company_vat_codes(company))
    items = []
    for n in range(1, ITEMS + 1):
        rate = rates[(n - 1) % len(rates)]
        items.append(
            services.item_create(
                actor=owner,
                company=company,
                code=f"IT-{n}",
                name=f"Item {n}",
                unit="pcs",
                unit_price=f"{100 + 37 * n}.{n:02d}",
                vat_rate=rate if rate in available else "VAT15",
            ).pk
        )
    return Sales(company=company, owner=owner, customers=customers, items=items)


def company_vat_codes(company) -> list[str]:
    from invoicing.models import VatRate

    return list(VatRate.objects.filter(company=company).values_list("code", flat=True))


def draft_lines(sales: Sales, rng: random.Random) -> list[dict]:
    return [
        {"item": item, "quantity": str(rng.randint(1, 40))}
        for item in rng.sample(sales.items, LINES)
    ]


def draft(sales: Sales, rng: random.Random, *, customer=None, issue_date=None):
    from invoicing import services

    return services.invoice_create_draft(
        actor=sales.owner,
        company=sales.company,
        customer=customer or rng.choice(sales.customers),
        lines=draft_lines(sales, rng),
        issue_date=issue_date or FIRST_DAY + timedelta(days=40),
    )


def templates(sales: Sales, rng: random.Random) -> dict[str, int]:
    """One invoice of each kind in MIX, through the services; {kind: invoice id}."""
    from invoicing import services

    made = {}
    for kind, _share in MIX:
        invoice = draft(sales, rng)
        if kind != "draft":
            invoice = services.invoice_approve(actor=sales.owner, invoice=invoice)
        cent = Decimal("0.01")
        if kind == "paid":
            invoice = services.invoice_payment_record(
                actor=sales.owner, invoice=invoice, amount=str(invoice.amount_due)
            )
        elif kind == "partly_paid":
            invoice = services.invoice_payment_record(
                actor=sales.owner,
                invoice=invoice,
                amount=str((invoice.amount_due / 3).quantize(cent)),
            )
        elif kind == "paid_twice":
            half = (invoice.amount_due / 2).quantize(cent)
            invoice = services.invoice_payment_record(
                actor=sales.owner, invoice=invoice, amount=str(half)
            )
            invoice = services.invoice_payment_record(
                actor=sales.owner, invoice=invoice, amount=str(invoice.amount_due)
            )
        elif kind == "void":
            invoice = services.invoice_void(
                actor=sales.owner, invoice=invoice, reason="Entered twice"
            )
        made[kind] = invoice.pk
    return made


@dataclass
class Template:
    kind: str
    events: list[tuple]  # (type, payload, metadata, recorded_at)
    row: dict
    lines: list[dict]
    payments: list[dict]


def _template(invoice_id: int, kind: str) -> Template:
    from invoicing.models import Invoice, InvoiceEvent, InvoiceLine, InvoicePayment

    row = Invoice.objects.filter(pk=invoice_id).values().get()
    events = list(
        InvoiceEvent.objects.filter(stream_id=row["stream_id"])
        .order_by("version")
        .values_list("type", "payload", "metadata", "recorded_at")
    )
    lines = list(InvoiceLine.objects.filter(invoice_id=invoice_id).order_by("serial").values())
    payments = list(InvoicePayment.objects.filter(invoice_id=invoice_id).values())
    return Template(kind=kind, events=events, row=row, lines=lines, payments=payments)


def _model_columns(model) -> list[tuple[str, str]]:
    """(attname, column) of the concrete fields except the auto primary key."""
    return [
        (f.attname, f.column)
        for f in model._meta.concrete_fields
        if not (f.primary_key and f.get_internal_type() in ("AutoField", "BigAutoField"))
    ]


def _json_columns(model) -> list[str]:
    from django.db.models import JSONField

    return [f.column for f in model._meta.concrete_fields if isinstance(f, JSONField)]


def clone_streams(
    sales: Sales,
    template_ids: dict[str, int],
    *,
    mix=MIX,
    events: int | None = None,
    streams: int | None = None,
    with_events: bool = True,
    projection: bool = True,
    first_sequence: int,
) -> dict:
    """Clone the templates (kinds drawn by `mix` weights) into `streams` new streams, or into
    streams of exactly `events` events in all (the last stream is the template whose size
    fits). `with_events=False` writes only the read-model rows (the invoice only, no lines or
    payments: a listing workload). Returns counts."""
    from django.db import connection, transaction

    from invoicing.models import Invoice, InvoiceEvent, InvoiceLine, InvoicePayment

    rng = random.Random(SEED)
    tmpl = {kind: _template(pk, kind) for kind, pk in template_ids.items()}
    weights = [share for _kind, share in mix]
    kinds = [kind for kind, _share in mix]
    by_size = {len(t.events): t.kind for t in tmpl.values()}
    plan: list[str] = []
    total_events = 0
    while True:
        if streams is not None and len(plan) >= streams:
            break
        kind = rng.choices(kinds, weights)[0]
        size = len(tmpl[kind].events)
        if events is not None:
            left = events - total_events
            if left <= 0:
                break
            if size > left:
                kind = by_size.get(left) or by_size[1]
                size = len(tmpl[kind].events)
        plan.append(kind)
        total_events += size

    clones = []  # (kind, stream_id, customer, issue_date, sequence or None)
    sequence = first_sequence
    # Numbers follow issue dates, as the numbering requires (a later number is never dated
    # earlier).
    dated = sorted((FIRST_DAY + timedelta(days=rng.randrange(DAYS)), kind) for kind in plan)
    for issue, kind in dated:
        numbered = kind != "draft"
        clones.append(
            (kind, uuid.uuid4(), rng.choice(sales.customers), issue, sequence if numbered else None)
        )
        if numbered:
            sequence += 1

    def number_of(row, seq):
        series = row["series"] or "INV"
        return f"{series}/{FISCAL_YEAR}/{seq:06d}"

    def event_rows():
        for kind, stream, customer, issue, seq in clones:
            t = tmpl[kind]
            due = issue + timedelta(days=30)
            for version, (etype, payload, metadata, recorded_at) in enumerate(t.events, 1):
                payload = copy.deepcopy(payload)
                if etype == "InvoiceDrafted":
                    payload["customer_id"] = customer
                    payload["issue_date"] = issue.isoformat()
                    payload["due_date"] = due.isoformat()
                elif etype == "InvoiceApproved":
                    payload["number"] = number_of(t.row, seq)
                    payload["sequence"] = seq
                    payload["issue_date"] = issue.isoformat()
                    payload["due_date"] = due.isoformat()
                # Columns the model has beyond these (a trigger-set transaction id) get 0.
                yield {
                    "company_id": sales.company.pk,
                    "stream_id": stream,
                    "version": version,
                    "type": etype,
                    "payload": payload,
                    "metadata": metadata,
                    "recorded_at": recorded_at,
                }

    with transaction.atomic():
        if not with_events:
            first_id = _next_invoice_id()
            ids = {c[1]: first_id + n for n, c in enumerate(clones)}
            counts = {"events": 0, "streams": len(clones)}
            counts.update(_project_clones(sales, tmpl, clones, ids, number_of, rows_only=True))
        else:
            columns = [c for _a, c in _model_columns(InvoiceEvent)]
            written = table_insert(
                InvoiceEvent._meta.db_table,
                columns,
                (tuple(row.get(c, 0) for c in columns) for row in event_rows()),
                json_columns=("payload", "metadata"),
            )
            counts = {"events": written, "streams": len(clones)}
        if with_events and projection:
            ids = dict(
                InvoiceEvent.objects.filter(
                    company=sales.company, version=1, stream_id__in=[c[1] for c in clones]
                ).values_list("stream_id", "id")
            )
            counts.update(_project_clones(sales, tmpl, clones, ids, number_of))
    if connection.vendor == "postgresql":
        analyze(
            InvoiceEvent._meta.db_table,
            Invoice._meta.db_table,
            InvoiceLine._meta.db_table,
            InvoicePayment._meta.db_table,
        )
    return counts


def _next_invoice_id() -> int:
    """Invoice ids are event positions; rows without events take ids far above them."""
    from invoicing.models import Invoice

    last = Invoice.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    return max(last, 1) + 10_000_000


def _project_clones(sales, tmpl, clones, ids, number_of, rows_only: bool = False) -> dict:
    from invoicing.models import Invoice, InvoiceLine, InvoicePayment

    inv_cols = [(a, c) for a, c in _model_columns(Invoice)]
    inv_cols = [("id", "id"), *inv_cols] if ("id", "id") not in inv_cols else inv_cols
    line_cols = _model_columns(InvoiceLine)
    pay_cols = _model_columns(InvoicePayment)

    def invoices():
        for kind, stream, customer, issue, seq in clones:
            row = dict(tmpl[kind].row)
            row.update(
                id=ids[stream],
                stream_id=stream,
                customer_id=customer,
                issue_date=issue,
                due_date=issue + timedelta(days=30),
            )
            if seq is not None:
                row.update(
                    number=number_of(row, seq),
                    mushak_number=number_of(row, seq),
                    sequence=seq,
                    fiscal_year=FISCAL_YEAR,
                )
            yield tuple(row[a] for a, _c in inv_cols)

    def lines():
        for kind, stream, *_rest in clones:
            for line in tmpl[kind].lines:
                yield tuple(ids[stream] if a == "invoice_id" else line[a] for a, _c in line_cols)

    def payments():
        for kind, stream, *_rest in clones:
            for payment in tmpl[kind].payments:
                yield tuple(ids[stream] if a == "invoice_id" else payment[a] for a, _c in pay_cols)

    counts = {
        "invoices": table_insert(
            Invoice._meta.db_table,
            [c for _a, c in inv_cols],
            invoices(),
            json_columns=_json_columns(Invoice),
        )
    }
    if rows_only:
        return counts
    return {
        **counts,
        "lines": table_insert(InvoiceLine._meta.db_table, [c for _a, c in line_cols], lines()),
        "payments": table_insert(
            InvoicePayment._meta.db_table, [c for _a, c in pay_cols], payments()
        ),
    }
