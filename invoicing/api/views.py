"""The invoicing API (scope "invoicing": every role reads; owners, accountants and clerks write).

Each write is one invoicing.services call; the services check roles, figures and versions and
answer with stable codes. Invoices are event-sourced: every answer carries the invoice's
`version`; send it back with a change and a writer who changed the invoice first makes yours
answer 409 `stale_version` with nothing written.

    /api/v1/invoicing/parties/            customers and vendors (BIN, e-TIN, withholding flag)
    /api/v1/invoicing/items/              the catalogue
    /api/v1/invoicing/vat-rates/          the company's VAT rates (data, not code)
    /api/v1/invoicing/invoices/           drafts, invoices and notes; filters and pagination
        POST   {id}/approve/              number, snapshot, post the receivable
        POST   {id}/payments/             partial payments; more than due is refused
        POST   {id}/void/                 void with a reason (number kept, entry reversed)
        POST   {id}/credit-notes/         Mushak-6.7
        POST   {id}/debit-notes/          Mushak-6.8
        GET    {id}/events/               the stream's history, read-only
        GET    {id}/mushak-6-3/           the form as HTML, or PDF (?format=pdf or
                                          Accept: application/pdf); mushak-6-7 and 6-8 for notes
    /api/v1/invoicing/recurring-invoices/ templates beat turns into invoices
"""

from __future__ import annotations

from contextlib import contextmanager

import django_filters
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from accounting.api.filters import IdFilter
from accounting.api.views import DecimalJSONParser
from core.api.base import TenantViewSet
from core.api.renderers import PDFRenderer
from core.api.views import COMPANY_HEADER_PARAMETER
from core.errors import DomainError, ValidationFailed
from invoicing import documents, services
from invoicing.api import serializers as s
from invoicing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    Item,
    Party,
    PartyKind,
    RecurringInvoice,
    VatRate,
)
from invoicing.selectors import OPEN_STATUSES, invoice_events

WRITE_METHODS = ["get", "post", "patch", "head", "options"]


def _required_version(request, company, data: dict):
    """The `version` the client last read, from the body or an If-Match header; required on
    every write to an invoice (a write without it could silently undo someone else's).
    The role is checked first, so a reader still gets 403."""
    services._require_write(request.user, company)
    version = data.pop("version", None)
    if version is None:
        header = (request.headers.get("If-Match") or "").strip()
        if header.startswith("W/"):
            header = header[2:]
        header = header.strip('"')
        if header:
            try:
                version = int(header)
            except ValueError:
                raise ValidationFailed(
                    f"If-Match: {header[:20]!r} is not an invoice version (a whole number).",
                    code="invalid_version",
                    fields={"version": ["A whole number."]},
                ) from None
    if version is None:
        raise ValidationFailed(
            "Send the invoice's `version` as you last read it (in the body, or as an If-Match "
            "header): it guards against overwriting a change someone else made meanwhile.",
            code="version_required",
            fields={"version": ["Required."]},
        )
    return version


@contextmanager
def _api_fields():
    """The services name the optimistic-concurrency field `expected_version`; the API calls it
    `version`."""
    try:
        yield
    except DomainError as error:
        if "expected_version" in error.fields:
            fields = dict(error.fields)
            fields["version"] = fields.pop("expected_version")
            error.fields = fields
        raise


class _DocumentFormatsMixin:
    def finalize_response(self, request, response, *args, **kwargs):
        # Errors answer JSON in the one error shape, even when HTML or PDF was asked for.
        renderer = getattr(request, "accepted_renderer", None)
        if getattr(response, "exception", False) and getattr(renderer, "format", "") in (
            "html",
            "pdf",
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class HTMLDocumentRenderer(BaseRenderer):
    """A printable document the view has already rendered to HTML."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, str) else ""


# --- parties, VAT rates, items -----------------------------------------------------------------


class _ReferenceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSet,
):
    scope = "invoicing"
    # Never deleted (invoices point at them): PATCH is_active=false retires one.
    http_method_names = WRITE_METHODS
    parser_classes = [DecimalJSONParser]
    create_service = None
    update_service = None
    update_kwarg = ""

    def perform_create(self, serializer):
        serializer.instance = type(self).create_service(
            actor=self.request.user, company=self.company, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = type(self).update_service(
            actor=self.request.user,
            **{self.update_kwarg: serializer.instance},
            **serializer.validated_data,
        )


class PartyFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=PartyKind.choices)
    customers = django_filters.BooleanFilter(
        method="filter_customers", label="Only parties that are customers (or both)."
    )
    bin = django_filters.CharFilter(method="filter_bin", label="BIN, with or without the dash.")

    class Meta:
        model = Party
        fields = ["kind", "is_active", "is_withholding_entity", "customers", "bin"]

    def filter_customers(self, queryset, name, value):
        kinds = [PartyKind.CUSTOMER, PartyKind.BOTH]
        return queryset.filter(kind__in=kinds) if value else queryset.exclude(kind__in=kinds)

    def filter_bin(self, queryset, name, value):
        return queryset.filter(bin=value.replace("-", "").replace(" ", ""))


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Add a customer or vendor. A BIN must have 13 digits (400 invalid_bin), "
        "an e-TIN 12 (400 invalid_etin); both may be typed with dashes."
    )
)
class PartyViewSet(_ReferenceViewSet):
    """Customers and vendors. BIN and e-TIN are kept as digits; `bin_display` shows 9-4."""

    queryset = Party.objects.all()
    serializer_class = s.PartySerializer
    filterset_class = PartyFilter
    search_fields = ["name", "email"]
    ordering_fields = ["name", "id", "created_at"]
    ordering = ["name", "id"]
    create_service = services.party_create
    update_service = services.party_update
    update_kwarg = "party"


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class VatRateViewSet(_ReferenceViewSet):
    """The VAT rates a line may carry: 15 % standard, reduced rates, zero-rated, exempt (with
    the SRO reference) and specific (taka per unit). A line with a code not in this list is
    refused with vat_rate_not_allowed."""

    queryset = VatRate.objects.all()
    serializer_class = s.VatRateSerializer
    filterset_fields = ["kind", "is_active"]
    search_fields = ["code", "name"]
    ordering = ["-rate", "code"]
    create_service = services.vat_rate_create
    update_service = services.vat_rate_update
    update_kwarg = "vat_rate"


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
class ItemViewSet(_ReferenceViewSet):
    """The catalogue: a line that names an item takes its description, unit, price, VAT rate
    and SD rate unless the line says otherwise."""

    queryset = Item.objects.select_related("vat_rate")
    serializer_class = s.ItemSerializer
    filterset_fields = ["is_active"]
    search_fields = ["code", "name", "hs_code"]
    ordering_fields = ["code", "name", "unit_price"]
    ordering = ["code"]
    create_service = services.item_create
    update_service = services.item_update
    update_kwarg = "item"


# --- invoices ----------------------------------------------------------------------------------


class InvoiceFilter(django_filters.FilterSet):
    # distinct=False: a filter on the invoice's own column cannot repeat a row, and DISTINCT
    # over every column (and the page COUNT over it) costs ~10x at 100,000 invoices.
    status = django_filters.MultipleChoiceFilter(
        choices=InvoiceStatus.choices,
        label="One or more statuses (repeat the parameter).",
        distinct=False,
    )
    kind = django_filters.ChoiceFilter(choices=InvoiceKind.choices)
    customer = IdFilter(field_name="customer_id")
    date_from = django_filters.DateFilter(field_name="issue_date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="issue_date", lookup_expr="lte")
    due_before = django_filters.DateFilter(field_name="due_date", lookup_expr="lt")
    fiscal_year = django_filters.CharFilter(label="Fiscal year of the number, e.g. 2025-26.")
    number = django_filters.CharFilter(label="The exact number, e.g. INV/2025-26/000123.")
    open = django_filters.BooleanFilter(
        method="filter_open", label="Approved invoices with an amount still due."
    )

    class Meta:
        model = Invoice
        fields = [
            "status",
            "kind",
            "customer",
            "date_from",
            "date_to",
            "due_before",
            "fiscal_year",
            "number",
            "open",
        ]

    def filter_open(self, queryset, name, value):
        return (
            queryset.filter(status__in=OPEN_STATUSES)
            if value
            else queryset.exclude(status__in=OPEN_STATUSES)
        )


class InvoicePagination(CursorPagination):
    """Keyset pages: each page is one index range scan (company, issue date, id) however many
    invoices the company has, and no COUNT over the whole table. Follow `next` / `previous`;
    narrow with the filters rather than jumping to page 2,000."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("-issue_date", "-id")


DOCUMENT_RESPONSES = {
    (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The form as HTML."),
    (200, "application/pdf"): OpenApiResponse(
        OpenApiTypes.BINARY, description="With ?format=pdf or Accept: application/pdf."
    ),
}
FORMAT_PARAMETER = OpenApiParameter(
    "format", str, enum=["html", "pdf"], description="html (default) or pdf."
)


def _document_schema(form: str):
    return extend_schema(
        parameters=[FORMAT_PARAMETER],
        responses=DOCUMENT_RESPONSES,
        description=f"Mushak-{form} with every field the form requires, as HTML (default) or "
        "PDF. A draft prints stamped DRAFT, a void invoice VOID. Another kind of document "
        "answers 400 wrong_form naming the right path.",
    )


def _note_schema(form: str, kind: str):
    return extend_schema(
        request=s.NoteInputSerializer,
        responses={201: s.InvoiceSerializer},
        description=f"Issue a {kind} (Mushak-{form}) against this approved invoice, numbered in "
        "its own series and posted to the ledger; answers the note.",
    )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    list=extend_schema(
        description="Invoices and notes, newest first (ordering=issue_date, due_date, number, "
        "total_amount or amount_due, '-' for descending), filtered by status, kind, customer, "
        "date range, fiscal year, number or open. Pages are keyset (cursor) pages: follow "
        "`next` and `previous`; there is no total count, so a page costs the same with a "
        "hundred invoices or a million.",
    ),
    create=extend_schema(
        request=s.InvoiceWriteSerializer,
        responses={201: s.InvoiceSerializer},
        description="Draft a tax invoice. A line names an `item` and/or gives description, "
        "unit, quantity, unit_price, vat_rate (a code of the company's list: otherwise 400 "
        "vat_rate_not_allowed) and sd_rate.",
    ),
    partial_update=extend_schema(
        request=s.InvoiceWriteSerializer,
        responses={200: s.InvoiceSerializer},
        description="Change a draft: header fields sent are changed; `lines`, when sent, "
        "replace all lines. An approved invoice answers 400 not_draft (issue a note instead); "
        "a stale `version` answers 409 stale_version.",
    ),
    approve=extend_schema(
        request=s.VersionSerializer,
        responses=s.InvoiceSerializer,
        description="Number the draft (gapless per company, branch and fiscal year), "
        "snapshot its rates and post the receivable: AR debit; revenue, SD and VAT credits. "
        "A draft without lines answers 400 no_lines.",
    ),
    payments=extend_schema(
        request=s.PaymentInputSerializer,
        responses={201: s.InvoiceSerializer},
        description="Record money received (partial payments allowed): bank (or the account "
        "given) and VDS receivable debited, AR credited. More than is due answers 400 "
        "overpayment.",
    ),
    void=extend_schema(
        request=s.VoidInputSerializer,
        responses=s.InvoiceSerializer,
        description="Void a draft, or an approved invoice without payments or notes: the "
        "number stays, marked void, and the receivable entry is reversed.",
    ),
    credit_notes=_note_schema("6.7", "credit note"),
    debit_notes=_note_schema("6.8", "debit note"),
    events=extend_schema(
        responses=s.InvoiceEventSerializer(many=True),
        description="The invoice's event stream, oldest first: what happened, when, by whom.",
    ),
    mushak_6_3=_document_schema("6.3"),
    mushak_6_7=_document_schema("6.7"),
    mushak_6_8=_document_schema("6.8"),
)
class InvoiceViewSet(
    _DocumentFormatsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSet,
):
    """Tax invoices (Mushak-6.3), credit notes (6.7) and debit notes (6.8). Every row is the
    projection of an event stream; change it only through the actions below."""

    scope = "invoicing"
    queryset = Invoice.objects.select_related("customer", "original")
    serializer_class = s.InvoiceSerializer
    filterset_class = InvoiceFilter
    search_fields = ["=number", "customer__name"]
    ordering_fields = ["issue_date", "due_date", "number", "total_amount", "amount_due", "id"]
    ordering = ["-issue_date", "-id"]
    pagination_class = InvoicePagination
    http_method_names = WRITE_METHODS
    parser_classes = [DecimalJSONParser]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            return queryset
        return queryset.select_related("journal_entry__fiscal_year").prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("serial")),
            "payments",
            Prefetch("adjustments", queryset=Invoice.objects.order_by("issue_date", "id")),
        )

    def get_serializer_class(self):
        return {
            "list": s.InvoiceListSerializer,
            "create": s.InvoiceWriteSerializer,
            "partial_update": s.InvoiceWriteSerializer,
            "update": s.InvoiceWriteSerializer,
            "approve": s.VersionSerializer,
            "payments": s.PaymentInputSerializer,
            "void": s.VoidInputSerializer,
            "credit_notes": s.NoteInputSerializer,
            "debit_notes": s.NoteInputSerializer,
            "events": s.InvoiceEventSerializer,
        }.get(self.action, s.InvoiceSerializer)

    def _answer(self, invoice: Invoice, code=status.HTTP_200_OK) -> Response:
        fresh = (
            Invoice.objects.select_related("customer", "original", "journal_entry__fiscal_year")
            .prefetch_related(
                Prefetch("lines", queryset=InvoiceLine.objects.order_by("serial")),
                "payments",
                Prefetch("adjustments", queryset=Invoice.objects.order_by("issue_date", "id")),
            )
            .get(pk=invoice.pk)
        )
        return Response(s.InvoiceSerializer(fresh).data, status=code)

    def _payload(self, request, *, partial: bool = False) -> dict:
        payload = self.get_serializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        return dict(payload.validated_data)

    def create(self, request, *args, **kwargs):
        data = self._payload(request)
        data.pop("version", None)
        lines = data.pop("lines", [])
        invoice = services.invoice_create_draft(
            actor=request.user,
            company=self.company,
            customer=data.pop("customer"),
            lines=[dict(line) for line in lines],
            **data,
        )
        return self._answer(invoice, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        invoice = self.get_object()
        data = self._payload(request, partial=True)
        changes = {k: v for k, v in data.items() if k != "version"}
        version = _required_version(request, self.company, data) if changes else None
        lines = data.pop("lines", None)
        with _api_fields():
            invoice = services.invoice_edit_draft(
                actor=request.user,
                invoice=invoice,
                expected_version=version,
                lines=[dict(line) for line in lines] if lines is not None else None,
                **data,
            )
        return self._answer(invoice)

    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        invoice = self.get_object()
        data = self._payload(request)
        version = _required_version(request, self.company, data)
        with _api_fields():
            invoice = services.invoice_approve(
                actor=request.user, invoice=invoice, expected_version=version
            )
        return self._answer(invoice)

    @action(detail=True, methods=["post"])
    def payments(self, request, pk=None):
        invoice = self.get_object()
        data = self._payload(request)
        version = _required_version(request, self.company, data)
        account = data.pop("account", None) or None  # an account code; the bank role if none
        with _api_fields():
            invoice = services.invoice_payment_record(
                actor=request.user,
                invoice=invoice,
                expected_version=version,
                account=account,
                **data,
            )
        return self._answer(invoice, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        invoice = self.get_object()
        data = self._payload(request)
        version = _required_version(request, self.company, data)
        with _api_fields():
            invoice = services.invoice_void(
                actor=request.user,
                invoice=invoice,
                reason=data["reason"],
                expected_version=version,
            )
        return self._answer(invoice)

    def _note(self, request, service) -> Response:
        invoice = self.get_object()
        data = self._payload(request)
        version = _required_version(request, self.company, data)
        with _api_fields():
            note = service(
                actor=request.user,
                invoice=invoice,
                reason=data["reason"],
                lines=[dict(line) for line in data["lines"]],
                issue_date=data.get("issue_date"),
                expected_version=version,
            )
        return self._answer(note, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"], url_path="credit-notes")
    def credit_notes(self, request, pk=None):
        return self._note(request, services.credit_note_issue)

    @action(detail=True, methods=["post"], url_path="debit-notes")
    def debit_notes(self, request, pk=None):
        return self._note(request, services.debit_note_issue)

    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def events(self, request, pk=None):
        invoice = self.get_object()
        events = invoice_events(invoice)
        return Response(s.InvoiceEventSerializer(events, many=True).data)

    def _document(self, request, form: str) -> Response:
        invoice = self.get_object()
        actual = documents.mushak_form(invoice)
        if actual != form:
            kind = invoice.get_kind_display().split(" (")[0].lower()
            raise ValidationFailed(
                f"{invoice} is a {kind}: its form is Mushak-{actual}, at "
                f"invoices/{invoice.pk}/mushak-{actual.replace('.', '-')}/.",
                code="wrong_form",
            )
        if request.accepted_renderer.format == "pdf":
            body = documents.mushak_pdf(invoice)
            filename = documents.mushak_filename(invoice, "pdf")
        else:
            body = documents.mushak_html(invoice)
            filename = documents.mushak_filename(invoice, "html")
        return Response(body, headers={"Content-Disposition": f'inline; filename="{filename}"'})

    _document_options = {
        "detail": True,
        "methods": ["get"],
        "renderer_classes": [HTMLDocumentRenderer, PDFRenderer],
        "filter_backends": [],
        "pagination_class": None,
    }

    @action(url_path="mushak-6-3", **_document_options)
    def mushak_6_3(self, request, pk=None):
        return self._document(request, "6.3")

    @action(url_path="mushak-6-7", **_document_options)
    def mushak_6_7(self, request, pk=None):
        return self._document(request, "6.7")

    @action(url_path="mushak-6-8", **_document_options)
    def mushak_6_8(self, request, pk=None):
        return self._document(request, "6.8")


# --- recurring invoices ------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    generate=extend_schema(
        request=s.RecurringGenerateSerializer,
        responses=s.RecurringGenerateResultSerializer,
        description="Issue now every occurrence due by `today` (what the daily beat job does): "
        "a draft each, approved too when the template says so. A retry issues nothing twice.",
    )
)
class RecurringInvoiceViewSet(_ReferenceViewSet):
    """Templates the daily beat job turns into invoices on each `next_date`."""

    queryset = RecurringInvoice.objects.select_related("customer")
    serializer_class = s.RecurringInvoiceSerializer
    filterset_fields = ["is_active", "frequency", "auto_approve"]
    search_fields = ["name", "customer__name"]
    ordering_fields = ["next_date", "name", "id"]
    ordering = ["next_date", "id"]
    create_service = services.recurring_invoice_create
    update_service = services.recurring_invoice_update
    update_kwarg = "recurring"

    def get_serializer_class(self):
        if self.action == "generate":
            return s.RecurringGenerateSerializer
        return s.RecurringInvoiceSerializer

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        if "lines" in data:
            data["lines"] = [dict(line) for line in data["lines"]]
        serializer.instance = services.recurring_invoice_create(
            actor=self.request.user, company=self.company, **data
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        if "lines" in data:
            data["lines"] = [dict(line) for line in data["lines"]]
        serializer.instance = services.recurring_invoice_update(
            actor=self.request.user, recurring=serializer.instance, **data
        )

    @action(detail=True, methods=["post"])
    def generate(self, request, pk=None):
        template = self.get_object()
        payload = self.get_serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services._require_write(request.user, self.company)
        made = services.recurring_invoice_generate(
            actor=request.user,
            recurring=template,
            today=payload.validated_data.get("today"),
            system_job=f"invoicing.recurring:{request.user.get_username()}",
        )
        template.refresh_from_db()
        rows = Invoice.objects.filter(pk__in=[i.pk for i in made]).select_related(
            "customer", "original"
        )
        result = {"issued": len(made), "invoices": list(rows), "next_date": template.next_date}
        return Response(s.RecurringGenerateResultSerializer(result).data)


__all__ = [
    "InvoiceViewSet",
    "ItemViewSet",
    "PartyViewSet",
    "RecurringInvoiceViewSet",
    "VatRateViewSet",
]
