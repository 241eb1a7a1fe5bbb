"""Invoicing: approvals through the service, projection rebuild from the event store, and the
invoice list through the API.

Three companies in one throwaway database (workloads in bench/_invoicing_data.py):

1. Approvals: `approvals` drafts of 5 lines (clones of a draft made by the service) are
   approved one after the other through `invoicing.services.invoice_approve`, each in its own
   transaction, as the API's approve action does: stream replay, re-snapshot of rates, the
   number from the locked counter row, the receivable entry posted through the ledger service,
   the InvoiceApproved event appended, the read model projected, the audit event.
   `approvals_per_s`, with the median and p95 latency of one approval.
   `commit_flush_median_ms`: a one-row committed INSERT just before, the floor every durable
   commit pays on this disk. On PostgreSQL another count/2 approvals then run with
   synchronous_commit off for the session (`approvals_per_s_async_commit`): the same code path
   without waiting for the flush.
2. Rebuild: a company whose event store holds exactly `scale` events (100,000 by default:
   streams drafted, approved, paid in one or two parts, voided, left as drafts; about 2.5
   events a stream), its read model in place; `manage.py rebuild_invoice_projections
   --company ...` is timed: replay every stream, delete and rewrite invoices, lines, payments.
3. List: a company with `scale` invoices in the read model (rows only, spread over a fiscal
   year, 40 customers and every status); LIST_REQUESTS GETs of
   /api/v1/invoicing/invoices/ through Django's test client (the whole middleware, tenancy,
   role, filter, pagination and serializer path; no network): first pages and later pages,
   filtered by status, customer, dates, open, ordered by amount, an exact number search;
   later pages are reached by following `next` links, as a client does.
   `list_p95_ms` (nearest rank), with the median and the slowest filter's p95.

Run: `DATABASE_URL=postgres://... python -m bench invoicing --json`.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import time

from bench import _invoicing_data as data
from bench._bulk import commit_flush_ms, peak_rss_mb
from bench._django import bench_database
from bench._stats import percentile

DESCRIPTION = (
    "Invoicing: sequential approvals of 5-line invoices through the service (events, "
    "projection, number, journal entry), durable commits and again with synchronous_commit "
    "off, beside the disk's commit flush; rebuild_invoice_projections over `scale` events; "
    "the invoice list API with `scale` invoices in the table (p95 over 200 requests with "
    "filters, orderings and next pages)"
)
DEFAULT_SCALE = 100_000

APPROVALS_PER_SCALE = 1 / 50  # 2,000 approvals at the default scale
APPROVALS_MIN, APPROVALS_MAX = 10, 2_000
APPROVAL_WARMUP = 5
LIST_REQUESTS = 200
LIST_WARMUP = 10
LIST_PATH = "/api/v1/invoicing/invoices/"
SEED = 11

Figures = dict[str, float | int | str | None]


def run(*, scale: int) -> Figures:
    if scale < 10:
        raise ValueError(f"scale must be at least 10, not {scale}")
    approvals = max(APPROVALS_MIN, min(APPROVALS_MAX, round(scale * APPROVALS_PER_SCALE)))
    with bench_database():
        figures: Figures = {}
        started = time.perf_counter()
        figures.update(_approvals(approvals))
        figures.update(_rebuild(scale))
        figures.update(_listing(scale))
        figures["peak_rss_mb"] = peak_rss_mb()
        figures["total_seconds"] = round(time.perf_counter() - started, 1)
    return figures


def _ms(value: float) -> float:
    return round(value, 2)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------------
# 1. Approvals
# ---------------------------------------------------------------------------------------------
def _approve_each(owner, ids: list[int]) -> tuple[float, list[float]]:
    from invoicing import services

    samples = []
    started = time.perf_counter()
    for pk in ids:
        began = time.perf_counter()
        services.invoice_approve(actor=owner, invoice=pk)
        samples.append((time.perf_counter() - began) * 1000)
    return time.perf_counter() - started, samples


def _approvals(count: int) -> Figures:
    from django.db import connection

    from invoicing import services
    from invoicing.models import Invoice

    rng = random.Random(SEED)
    sales = data.company_make("bench-approvals", "Bench Approvals Ltd", "bench-approvals")
    template = data.draft(sales, rng)
    postgres = connection.vendor == "postgresql"
    relaxed = count // 2 if postgres else 0
    total = APPROVAL_WARMUP + count + relaxed
    data.clone_streams(
        sales, {"draft": template.pk}, mix=(("draft", 1),), streams=total, first_sequence=1
    )
    drafts = list(
        Invoice.objects.filter(company=sales.company, status="draft")
        .exclude(pk=template.pk)
        .order_by("issue_date", "pk")  # numbers follow issue dates
        .values_list("pk", flat=True)
    )
    for pk in drafts[:APPROVAL_WARMUP]:  # imports, caches and connections warm
        services.invoice_approve(actor=sales.owner, invoice=pk)
    commit_ms = commit_flush_ms()
    load = _load()
    seconds, samples = _approve_each(sales.owner, drafts[APPROVAL_WARMUP : APPROVAL_WARMUP + count])
    figures: Figures = {
        "approvals": count,
        "approvals_per_s": round(count / seconds),
        "approve_median_ms": _ms(statistics.median(samples)),
        "approve_p95_ms": _ms(percentile(samples, 95)),
        "approve_load_avg_1m": load,
        "commit_flush_median_ms": commit_ms,
    }
    if relaxed:
        # The same work without waiting for the disk's flush at each commit
        # (synchronous_commit off for this session: a crash may lose the last few commits,
        # never corrupt them): what the code path costs beside the flush.
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        try:
            seconds, samples = _approve_each(sales.owner, drafts[APPROVAL_WARMUP + count :])
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        figures["approvals_per_s_async_commit"] = round(relaxed / seconds)
        figures["approve_async_commit_median_ms"] = _ms(statistics.median(samples))
    numbers = list(
        Invoice.objects.filter(company=sales.company, status="approved")
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    if numbers != list(range(1, total + 1)):
        raise RuntimeError(f"approvals left {len(numbers)} numbers, not 1..{total}")
    return figures


# ---------------------------------------------------------------------------------------------
# 2. Rebuild
# ---------------------------------------------------------------------------------------------
def _rebuild(scale: int) -> Figures:
    from django.core.management import call_command

    from invoicing.models import Invoice, InvoiceEvent, InvoiceLine

    rng = random.Random(SEED + 1)
    sales = data.company_make("bench-rebuild", "Bench Rebuild Ltd", "bench-rebuild")
    templates = data.templates(sales, rng)
    made = InvoiceEvent.objects.filter(company=sales.company).count()
    setup = time.perf_counter()
    data.clone_streams(sales, templates, events=scale - made, first_sequence=100)
    setup = time.perf_counter() - setup
    events = InvoiceEvent.objects.filter(company=sales.company).count()
    streams = Invoice.objects.filter(company=sales.company).count()
    load = _load()
    out = io.StringIO()
    started = time.perf_counter()
    call_command("rebuild_invoice_projections", company=sales.company.slug, stdout=out)
    seconds = time.perf_counter() - started
    rebuilt = Invoice.objects.filter(company=sales.company).count()
    if rebuilt != streams:
        raise RuntimeError(f"the rebuild left {rebuilt} invoices for {streams} streams")
    return {
        "rebuild_events": events,
        "rebuild_invoices": rebuilt,
        "rebuild_lines": InvoiceLine.objects.filter(invoice__company=sales.company).count(),
        "rebuild_100k_events_s": round(seconds, 2),
        "rebuild_events_per_s": round(events / seconds),
        "rebuild_load_avg_1m": load,
        "rebuild_setup_s": round(setup, 1),
    }


# ---------------------------------------------------------------------------------------------
# 3. Listing through the API
# ---------------------------------------------------------------------------------------------
NEXT_PAGE = None  # parameters of a "page" request: follow the previous page's `next` link


def _list_queries(
    rng: random.Random, customers: list[int], number: str
) -> list[tuple[str, dict | None]]:
    """LIST_REQUESTS (name, query parameters), a realistic mix of what a screen asks. A
    "page" request follows the `next` link of the newest-first listing (keyset or numbered,
    whichever the API paginates by), so later pages are reached as a client reaches them."""
    kinds = [
        ("first_page", lambda: {}),
        ("page", lambda: NEXT_PAGE),
        ("page_size_200", lambda: {"page_size": 200}),
        ("status", lambda: {"status": rng.choice(["approved", "paid", "partially_paid"])}),
        ("status_two", lambda: {"status": ["approved", "partially_paid"]}),
        ("customer", lambda: {"customer": rng.choice(customers)}),
        (
            "date_range",
            lambda: {"date_from": "2025-10-01", "date_to": f"2025-10-{rng.randint(10, 31)}"},
        ),
        ("open", lambda: {"open": "true"}),
        ("by_amount", lambda: {"ordering": "-total_amount"}),
        ("customer_open", lambda: {"customer": rng.choice(customers), "open": "true"}),
        ("number", lambda: {"number": number}),
    ]
    return [(name, make()) for name, make in (kinds[n % len(kinds)] for n in range(LIST_REQUESTS))]


def _listing(scale: int) -> Figures:
    from rest_framework.test import APIClient

    from invoicing.models import Invoice

    rng = random.Random(SEED + 2)
    sales = data.company_make("bench-list", "Bench List Ltd", "bench-list")
    templates = data.templates(sales, rng)
    data.clone_streams(
        sales, templates, streams=scale - len(templates), with_events=False, first_sequence=100
    )
    in_table = Invoice.objects.filter(company=sales.company).count()
    number = (
        Invoice.objects.filter(company=sales.company)
        .exclude(number="")
        .order_by("?")
        .values_list("number", flat=True)
        .first()
    )
    api = APIClient()
    api.force_authenticate(sales.owner)
    headers = {"HTTP_X_COMPANY": sales.company.slug}
    requests = _list_queries(rng, sales.customers, number)
    chain = {"next": None}  # the newest-first listing, page after page

    def get(name, params):
        path = LIST_PATH
        if name == "page":
            path, params = chain["next"] or LIST_PATH, {}
        response = api.get(path, params, **headers)
        if response.status_code != 200:
            body = response.content[:300].decode(errors="replace")
            raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {body}")
        if name == "page" or (name == "first_page" and chain["next"] is None):
            chain["next"] = response.json().get("next")  # pages 2, 3, 4 ... in turn
        return response

    for name, params in requests[:LIST_WARMUP]:
        if name != "page":
            get(name, params)
    load = _load()
    samples: dict[str, list[float]] = {}
    every = []
    for name, params in requests:
        began = time.perf_counter()
        get(name, params)
        elapsed = (time.perf_counter() - began) * 1000
        samples.setdefault(name, []).append(elapsed)
        every.append(elapsed)
    slowest = max(samples, key=lambda name: percentile(samples[name], 95))
    return {
        "list_invoices_in_table": Invoice.objects.count(),
        "list_company_invoices": in_table,
        "list_requests": len(every),
        "list_p50_ms": _ms(percentile(every, 50)),
        "list_p95_ms": _ms(percentile(every, 95)),
        # The same without the requests ordered by amount (filters and pages only).
        "list_p95_ms_filters_pages": _ms(
            percentile([v for k, vs in samples.items() if k != "by_amount" for v in vs], 95)
        ),
        "list_max_ms": _ms(max(every)),
        "list_slowest_kind": slowest,
        "list_slowest_kind_p95_ms": _ms(percentile(samples[slowest], 95)),
        "list_load_avg_1m": load,
    }
