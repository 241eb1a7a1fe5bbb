"""The banking API (scope "banking": every role reads; owners, accountants and clerks write).

Each write is one banking service call; the services check roles, figures and states and answer
with stable codes. Transactions carry a `version`: send it back with a change (`expected_version`
in the body or an If-Match header) and a writer who changed it first makes yours answer 409
`version_conflict`. A posted transaction's figures never change (409 `already_posted`).

    /api/v1/banking/accounts/                 bank accounts (ledger account, IBAN, CSV mapping)
    /api/v1/banking/transactions/             deposits, withdrawals, transfers, fees, interest
        POST {id}/post-accounting/            one balanced journal entry; twice answers the same
    /api/v1/banking/transfers/                between own accounts through the transit account
        POST {id}/send/, {id}/receive/, {id}/cancel/
    /api/v1/banking/cash-submissions/         branch cash to the bank through cash in transit
        POST {id}/deposit/
    /api/v1/banking/float-allocations/        petty cash imprest
        GET/POST {id}/vouchers/, POST {id}/replenish/
    /api/v1/banking/imports/                  statement files (multipart `file`, optional `format`)
        DELETE {id}/                          undo an import none of whose lines is matched
    /api/v1/banking/statement-lines/          the imported lines
        POST {id}/ignore/, {id}/unignore/, {id}/settle-invoice/, {id}/create-transaction/
    /api/v1/banking/reconciliation-matches/   suggestions and matches
        POST (manual match), DELETE {id}/ (unmatch), POST {id}/accept/, {id}/reject/,
        POST auto-reconcile/
"""

from __future__ import annotations

import django_filters
from django.db.models import Count, Prefetch, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounting.api.filters import IdFilter
from accounting.api.views import DecimalJSONParser
from banking import imports, reconciliation, services
from banking.api import serializers as s
from banking.models import (
    BankAccount,
    BankTransaction,
    BankTransfer,
    BankTransferAllocation,
    CashSubmission,
    FloatAllocation,
    LineStatus,
    PettyCashVoucher,
    ReconciliationMatch,
    StatementImport,
    StatementLine,
)
from banking.periods import parse_month
from core.api.base import TenantViewSet
from core.api.views import COMPANY_HEADER_PARAMETER
from core.errors import ValidationFailed

JSON = [DecimalJSONParser]
CREATE_READ = ["get", "post", "head", "options"]
CREATE_CHANGE = ["get", "post", "patch", "head", "options"]
CREATE_CHANGE_DELETE = ["get", "post", "patch", "delete", "head", "options"]


def _version(request, data: dict) -> int | None:
    """The version the client last read: `expected_version` in the body, or If-Match."""
    version = data.pop("expected_version", None)
    if version is not None:
        return version
    header = (request.headers.get("If-Match") or "").strip()
    if header.startswith("W/"):
        header = header[2:]
    header = header.strip('"')
    if not header:
        return None
    try:
        return int(header)
    except ValueError:
        raise ValidationFailed(
            f"If-Match: {header[:20]!r} is not a transaction version (a whole number).",
            code="invalid_version",
            fields={"expected_version": ["A whole number."]},
        ) from None


def _period_from(text: str | None):
    if not text:
        return None
    try:
        return parse_month(text)
    except ValueError as exc:
        raise ValidationFailed(
            f"Period: {exc}", code="invalid_period", fields={"period": [str(exc)]}
        ) from None


class _BankingViewSet(TenantViewSet):
    scope = "banking"
    parser_classes = JSON

    def _input(self, serializer_class, request):
        payload = serializer_class(data=request.data, context=self.get_serializer_context())
        from core.tenancy import scope_serializer_relations

        scope_serializer_relations(payload, self.company)
        payload.is_valid(raise_exception=True)
        return dict(payload.validated_data)


# --- bank accounts -----------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Open a bank account on one of the company's postable asset accounts "
        "(each ledger account backs one bank account). The IBAN is kept without spaces, upper "
        "case; a CSV `statement_mapping` is checked (400 invalid_mapping)."
    ),
)
class BankAccountViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    _BankingViewSet,
):
    """The company's bank accounts. Never deleted (transactions and statements point at them):
    PATCH `is_active` false retires one."""

    queryset = BankAccount.objects.select_related("ledger_account")
    serializer_class = s.BankAccountSerializer
    filterset_fields = ["is_active", "currency"]
    search_fields = ["name", "bank_name", "iban", "account_number_masked"]
    ordering_fields = ["name", "id"]
    ordering = ["name", "id"]
    http_method_names = CREATE_CHANGE

    def perform_create(self, serializer):
        serializer.instance = services.bank_account_create(
            actor=self.request.user, company=self.company, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.bank_account_update(
            actor=self.request.user,
            bank_account=serializer.instance,
            **serializer.validated_data,
        )


# --- transactions ------------------------------------------------------------------------------


class TransactionFilter(django_filters.FilterSet):
    bank_account = IdFilter(field_name="bank_account_id")
    cost_center = IdFilter(field_name="cost_center_id")
    project = IdFilter(field_name="project_id")
    department = IdFilter(field_name="department_id")
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    # Plain strings in the schema: enums named "kind"/"status" would clash with other modules'.
    kind = django_filters.CharFilter(help_text="deposit, withdrawal, transfer, fee or interest.")
    posting_status = django_filters.CharFilter(help_text="draft or posted.")
    unreconciled = django_filters.BooleanFilter(
        method="filter_unreconciled", label="Only transactions not fully matched to the bank."
    )

    class Meta:
        model = BankTransaction
        fields = [
            "bank_account",
            "kind",
            "posting_status",
            "date_from",
            "date_to",
            "cost_center",
            "project",
            "department",
            "branch",
            "unreconciled",
        ]

    def filter_unreconciled(self, queryset, name, value):
        from django.db.models import F

        if value:
            return queryset.filter(reconciled_amount__lt=F("amount"))
        return queryset.filter(reconciled_amount__gte=F("amount"))


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Record a transaction (draft). `direction` follows the kind (deposit and "
        "interest in, withdrawal and fee out) and is needed only for a transfer. "
        "`counter_account` defaults by kind (fee: bank fees, interest: interest income, "
        "transfer: internal transfer); deposits and withdrawals need one."
    ),
    partial_update=extend_schema(
        description="Change a transaction. Send `expected_version` (or If-Match): a stale one "
        "answers 409 version_conflict. A posted transaction never changes (409 "
        "already_posted): post a correcting transaction."
    ),
    destroy=extend_schema(description="Delete a draft; a posted one answers 409 already_posted."),
    post_accounting=extend_schema(
        request=s.PostAccountingInputSerializer,
        responses={200: s.PostAccountingSerializer},
        description="Post the transaction: one balanced journal entry through the ledger, "
        "the bank account's ledger account against the counter account, with the cost "
        "center, project and department on every line. Posting again answers the same entry "
        "(`replayed` true); a transaction changed after posting answers 409 already_posted.",
    ),
)
class BankTransactionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _BankingViewSet,
):
    """Book transactions of the company's bank accounts, with their dimensions."""

    queryset = BankTransaction.objects.select_related("bank_account", "journal_entry__fiscal_year")
    serializer_class = s.BankTransactionSerializer
    filterset_class = TransactionFilter
    search_fields = ["reference", "counterparty", "memo"]
    ordering_fields = ["date", "amount", "id"]
    ordering = ["-date", "-id"]
    http_method_names = CREATE_CHANGE_DELETE

    def get_serializer_class(self):
        if self.action == "post_accounting":
            return s.PostAccountingInputSerializer
        return s.BankTransactionSerializer

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("expected_version", None)
        serializer.instance = services.bank_transaction_create(actor=self.request.user, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        version = _version(self.request, data)
        serializer.instance = services.bank_transaction_update(
            actor=self.request.user,
            transaction=serializer.instance,
            expected_version=version,
            **data,
        )

    def perform_destroy(self, instance):
        services.bank_transaction_delete(
            actor=self.request.user,
            transaction=instance,
            expected_version=_version(self.request, {}),
        )

    @action(detail=True, methods=["post"], url_path="post-accounting")
    def post_accounting(self, request, pk=None):
        transaction = self.get_object()
        data = self._input(s.PostAccountingInputSerializer, request)
        was_posted = transaction.journal_entry_id is not None
        entry = services.bank_transaction_post(
            actor=request.user, transaction=transaction, expected_version=_version(request, data)
        )
        transaction.refresh_from_db()
        answer = {
            "transaction_id": transaction.pk,
            "posting_status": transaction.posting_status,
            "journal_entry_id": entry.pk,
            "journal_entry_reference": entry.reference,
            "replayed": was_posted or bool(getattr(entry, "replayed", False)),
            "version": transaction.version,
        }
        return Response(s.PostAccountingSerializer(answer).data)


# --- transfers ---------------------------------------------------------------------------------


def _transfer_action(description, request):
    return extend_schema(
        request=request, responses=s.BankTransferSerializer, description=description
    )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Start a transfer between two of the company's accounts in one currency "
        "(initiated; nothing posted yet)."
    ),
    send=_transfer_action(
        "Post the outgoing leg: credit the sending bank, debit the internal-transfer account "
        "(in transit).",
        s.TransferSendSerializer,
    ),
    receive=_transfer_action(
        "Post an incoming leg: debit the receiving bank, credit the internal-transfer account. "
        "Part of the amount is allowed; the transfer settles when all has arrived and both "
        "legs have cleared on the statements.",
        s.TransferReceiveSerializer,
    ),
    cancel=_transfer_action(
        "Cancel a transfer whose money has not left.", s.TransferCancelSerializer
    ),
)
class BankTransferViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    _BankingViewSet,
):
    """Transfers between the company's own accounts, with their legs."""

    queryset = BankTransfer.objects.select_related("from_account", "to_account").prefetch_related(
        Prefetch("legs", queryset=BankTransferAllocation.objects.order_by("date", "id"))
    )
    serializer_class = s.BankTransferSerializer
    filterset_fields = ["from_account", "to_account"]
    ordering_fields = ["date", "amount", "id"]
    ordering = ["-date", "-id"]
    http_method_names = CREATE_READ

    def get_serializer_class(self):
        return {
            "send": s.TransferSendSerializer,
            "receive": s.TransferReceiveSerializer,
            "cancel": s.TransferCancelSerializer,
        }.get(self.action, s.BankTransferSerializer)

    def perform_create(self, serializer):
        serializer.instance = services.bank_transfer_create(
            actor=self.request.user, **serializer.validated_data
        )

    def _answer(self, transfer, code=status.HTTP_200_OK):
        fresh = self.get_queryset().get(pk=transfer.pk)
        return Response(s.BankTransferSerializer(fresh).data, status=code)

    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        transfer = self.get_object()
        data = self._input(s.TransferSendSerializer, request)
        services.bank_transfer_send(actor=request.user, transfer=transfer, **data)
        return self._answer(transfer)

    @action(detail=True, methods=["post"])
    def receive(self, request, pk=None):
        transfer = self.get_object()
        data = self._input(s.TransferReceiveSerializer, request)
        services.bank_transfer_receive(actor=request.user, transfer=transfer, **data)
        return self._answer(transfer)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        transfer = self.get_object()
        self._input(s.TransferCancelSerializer, request)
        services.bank_transfer_cancel(actor=request.user, transfer=transfer)
        return self._answer(transfer)


# --- cash submissions --------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Branch cash handed to the bank: debit cash in transit, credit the "
        "branch's cash account (`from_account`)."
    ),
    deposit=extend_schema(
        request=s.CashDepositSerializer,
        responses=s.CashSubmissionSerializer,
        description="The bank shows the deposit: debit bank, credit cash in transit; a "
        "difference from what was expected goes to cash over/short.",
    ),
)
class CashSubmissionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    _BankingViewSet,
):
    queryset = CashSubmission.objects.select_related("bank_account", "from_account")
    serializer_class = s.CashSubmissionSerializer
    filterset_fields = ["bank_account", "branch"]
    ordering_fields = ["submitted_on", "id"]
    ordering = ["-submitted_on", "-id"]
    http_method_names = CREATE_READ

    def get_serializer_class(self):
        return s.CashDepositSerializer if self.action == "deposit" else s.CashSubmissionSerializer

    def perform_create(self, serializer):
        serializer.instance = services.cash_submission_create(
            actor=self.request.user, **serializer.validated_data
        )

    @action(detail=True, methods=["post"])
    def deposit(self, request, pk=None):
        submission = self.get_object()
        data = self._input(s.CashDepositSerializer, request)
        services.cash_submission_deposit(actor=request.user, submission=submission, **data)
        fresh = self.get_queryset().get(pk=submission.pk)
        return Response(s.CashSubmissionSerializer(fresh).data)


# --- float allocations -------------------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        description="Issue a petty-cash float: debit petty cash (the company's petty_cash role "
        "unless `petty_cash_account` says otherwise), credit the bank account."
    ),
    vouchers=extend_schema(
        methods=["GET"],
        responses=s.PettyCashVoucherSerializer(many=True),
        description="The float's vouchers, newest first.",
    ),
    replenish=extend_schema(
        request=s.ReplenishSerializer,
        responses=s.ReplenishmentResultSerializer,
        description="Top the float up: debit each open voucher's expense (with its dimensions), "
        "over or short (counted cash + vouchers - float) to cash over/short, credit the bank.",
    ),
)
@extend_schema_view(
    vouchers=extend_schema(
        methods=["POST"],
        request=s.PettyCashVoucherSerializer,
        responses={201: s.PettyCashVoucherSerializer},
        description="Add a voucher (an expense paid from the box), with its dimensions.",
    )
)
class FloatAllocationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    _BankingViewSet,
):
    queryset = FloatAllocation.objects.select_related("bank_account", "petty_cash_account")
    serializer_class = s.FloatAllocationSerializer
    filterset_fields = ["bank_account"]
    ordering = ["name", "id"]
    http_method_names = CREATE_READ

    def get_serializer_class(self):
        return {
            "vouchers": s.PettyCashVoucherSerializer,
            "replenish": s.ReplenishSerializer,
        }.get(self.action, s.FloatAllocationSerializer)

    def perform_create(self, serializer):
        serializer.instance = services.float_allocation_create(
            actor=self.request.user, **serializer.validated_data
        )

    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def vouchers(self, request, pk=None):
        allocation = self.get_object()
        if request.method == "GET":
            rows = PettyCashVoucher.objects.filter(float=allocation).order_by("-date", "-id")
            return Response(s.PettyCashVoucherSerializer(rows, many=True).data)
        data = self._input(s.PettyCashVoucherSerializer, request)
        voucher = services.petty_cash_voucher_create(
            actor=request.user, float_allocation=allocation, **data
        )
        return Response(s.PettyCashVoucherSerializer(voucher).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def replenish(self, request, pk=None):
        allocation = self.get_object()
        data = self._input(s.ReplenishSerializer, request)
        replenishment = services.float_replenish(
            actor=request.user, float_allocation=allocation, **data
        )
        return Response(s.ReplenishmentResultSerializer(replenishment).data)


# --- statement imports and lines ---------------------------------------------------------------


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        request={"multipart/form-data": s.StatementUploadSerializer},
        responses={
            201: s.StatementImportSerializer,
            200: OpenApiResponse(
                s.StatementImportSerializer,
                description="This very file was imported before: the earlier import, with "
                "`replayed` true; nothing added.",
            ),
        },
        description="Upload a statement (multipart: `bank_account`, `file`, optional `format`: "
        "ofx, mt940, camt053 or csv; sniffed when left out; a CSV is read with the account's "
        "saved mapping). The whole file or nothing: a broken file answers 400 "
        "invalid_statement naming the line and the reason; a statement of another account "
        "(IBAN) or currency is refused. Lines already imported are skipped; lines of zero "
        "amount are imported as ignored (`ignored_line_count`). A file over "
        "BANKING_MAX_STATEMENT_BYTES answers 400 file_too_large.",
    ),
    destroy=extend_schema(
        description="Undo a wrong import: its lines and the import are deleted (audited), so "
        "the right file can be imported. Refused with 409 import_matched while any of its "
        "lines is matched (unmatch first)."
    ),
)
class StatementImportViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    _BankingViewSet,
):
    queryset = StatementImport.objects.select_related("bank_account").annotate(
        ignored_line_count=Count("lines", filter=Q(lines__status=LineStatus.IGNORED))
    )
    serializer_class = s.StatementImportSerializer
    parser_classes = [MultiPartParser, FormParser, DecimalJSONParser]
    filterset_fields = ["bank_account", "format"]
    ordering = ["-created_at", "-id"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def perform_destroy(self, instance):
        imports.statement_import_delete(actor=self.request.user, statement_import=instance)

    def get_serializer_class(self):
        return (
            s.StatementUploadSerializer if self.action == "create" else s.StatementImportSerializer
        )

    def create(self, request, *args, **kwargs):
        upload = request.FILES.get("file")
        if upload is not None:
            imports.check_statement_size(upload.size)  # before anything reads it
        data = self._input(s.StatementUploadSerializer, request)
        upload = data["file"]
        result = imports.statement_import_create(
            actor=request.user,
            bank_account=data["bank_account"],
            content=upload.read(),
            filename=upload.name or "",
            format=data.get("format"),
        )
        replayed = bool(getattr(result, "replayed", False))
        result.ignored_line_count = getattr(result, "ignored_count", 0)
        body = s.StatementImportSerializer(result).data
        body["replayed"] = replayed
        return Response(body, status=status.HTTP_200_OK if replayed else status.HTTP_201_CREATED)


class StatementLineFilter(django_filters.FilterSet):
    bank_account = IdFilter(field_name="bank_account_id")
    statement_import = IdFilter(field_name="statement_import_id")
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    status = django_filters.CharFilter(
        help_text="unmatched, partially_matched, matched or ignored."
    )

    class Meta:
        model = StatementLine
        fields = ["bank_account", "statement_import", "date_from", "date_to", "status"]


def _company_refs(company, data: dict) -> dict:
    """Ledger account and dimension ids of a request, looked up in the company only (another
    company's id answers 400 as if it did not exist)."""
    from accounting.models import Account, CostCenter, Department, Project

    refs = {}
    for key, model in (
        ("counter_account", Account),
        ("cost_center", CostCenter),
        ("project", Project),
        ("department", Department),
    ):
        pk = data.pop(key, None)
        if pk is None:
            continue
        row = model.objects.filter(company=company, pk=pk).first()
        if row is None:
            raise ValidationFailed(
                f"{key}: no such row in this company.", code="invalid", fields={key: ["Unknown."]}
            )
        refs[key] = row
    return refs


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    ignore=extend_schema(
        request=None,
        responses=s.StatementLineSerializer,
        description="Set the line aside (status ignored): it leaves review and auto-reconcile. "
        "A matched line answers 409 line_matched (unmatch first).",
    ),
    unignore=extend_schema(
        request=None,
        responses=s.StatementLineSerializer,
        description="Bring an ignored line back to review (unmatched).",
    ),
    settle_invoice=extend_schema(
        request=s.SettleInvoicesSerializer,
        responses={201: s.BankTransactionSerializer(many=True)},
        description="A receipt settles one or more open invoices of the company, each with an "
        "amount (what it has due, at most what the line has left, when left out): each is "
        "paid through invoicing (Dr bank / Cr receivable), recorded as a posted deposit bound "
        "to the payment's entry, and matched to the line. Overpaying an invoice or the line "
        "answers 400.",
    ),
    create_transaction=extend_schema(
        request=s.CreateFromLineSerializer,
        responses={201: s.BankTransactionSerializer},
        description="Book what the bank did and the books lack: a transaction of the line's "
        "open amount, date and sign is created, posted and matched to the line (fee: bank "
        "fees, interest: interest income unless `counter_account` says otherwise).",
    ),
)
class StatementLineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _BankingViewSet):
    """Imported statement lines (amount signed: + in, - out): read, ignore or un-ignore, settle
    invoices from a receipt, or book a transaction from a line."""

    queryset = StatementLine.objects.all()
    serializer_class = s.StatementLineSerializer
    filterset_class = StatementLineFilter
    search_fields = ["reference", "counterparty", "description", "bank_id"]
    ordering_fields = ["date", "amount", "id"]
    ordering = ["-date", "-id"]
    http_method_names = ["get", "post", "head", "options"]

    def get_serializer_class(self):
        return {
            "settle_invoice": s.SettleInvoicesSerializer,
            "create_transaction": s.CreateFromLineSerializer,
        }.get(self.action, s.StatementLineSerializer)

    def _line_answer(self, line, code=status.HTTP_200_OK):
        fresh = StatementLine.objects.get(pk=line.pk)
        return Response(s.StatementLineSerializer(fresh).data, status=code)

    @action(detail=True, methods=["post"])
    def ignore(self, request, pk=None):
        line = self.get_object()
        imports.statement_line_ignore(actor=request.user, statement_line=line)
        return self._line_answer(line)

    @action(detail=True, methods=["post"])
    def unignore(self, request, pk=None):
        line = self.get_object()
        imports.statement_line_unignore(actor=request.user, statement_line=line)
        return self._line_answer(line)

    @action(detail=True, methods=["post"], url_path="settle-invoice")
    def settle_invoice(self, request, pk=None):
        line = self.get_object()
        data = self._input(s.SettleInvoicesSerializer, request)
        created = reconciliation.statement_line_settle_invoices(
            actor=request.user,
            statement_line=line,
            settlements=[(row["invoice"], row.get("amount")) for row in data["settlements"]],
        )
        return Response(
            s.BankTransactionSerializer(created, many=True).data, status=status.HTTP_201_CREATED
        )

    @action(detail=True, methods=["post"], url_path="create-transaction")
    def create_transaction(self, request, pk=None):
        line = self.get_object()
        data = self._input(s.CreateFromLineSerializer, request)
        refs = _company_refs(self.company, data)
        created = reconciliation.statement_line_create_transaction(
            actor=request.user, statement_line=line, **data, **refs
        )
        fresh = BankTransaction.objects.select_related("journal_entry__fiscal_year").get(
            pk=created.pk
        )
        return Response(s.BankTransactionSerializer(fresh).data, status=status.HTTP_201_CREATED)


# --- reconciliation matches --------------------------------------------------------------------


class MatchFilter(django_filters.FilterSet):
    statement_line = IdFilter(field_name="statement_line_id")
    bank_transaction = IdFilter(field_name="bank_transaction_id")
    bank_account = IdFilter(field_name="statement_line__bank_account_id")
    status = django_filters.CharFilter(help_text="suggested, accepted or rejected.")
    method = django_filters.CharFilter(
        help_text="reference, amount_date, similarity, many_to_one, manual, created_from_line "
        "or invoice."
    )

    class Meta:
        model = ReconciliationMatch
        fields = ["statement_line", "bank_transaction", "bank_account", "status", "method"]


def _match_action(description):
    return extend_schema(
        request=None, responses=s.ReconciliationMatchSerializer, description=description
    )


@extend_schema(parameters=[COMPANY_HEADER_PARAMETER])
@extend_schema_view(
    create=extend_schema(
        request=s.ManualMatchSerializer,
        responses={201: s.ReconciliationMatchSerializer(many=True)},
        description="Match a statement line to one or more book transactions by hand (partial "
        "amounts allowed). More than the line or a transaction has left is refused.",
    ),
    destroy=extend_schema(description="Unmatch: the allocation is undone (204)."),
    accept=_match_action("Accept a suggestion: the allocation counts from now on."),
    reject=_match_action("Reject a suggestion: it is not offered again."),
    auto_reconcile=extend_schema(
        request=s.AutoReconcileInputSerializer,
        responses=s.AutoReconcileResultSerializer,
        description="Run the matcher over the account's unmatched lines (of a month, when "
        "`period` is given): suggestions above the company's confidence are accepted.",
    ),
)
class ReconciliationMatchViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    _BankingViewSet,
):
    queryset = ReconciliationMatch.objects.select_related("statement_line", "bank_transaction")
    serializer_class = s.ReconciliationMatchSerializer
    filterset_class = MatchFilter
    ordering = ["-created_at", "-id"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_serializer_class(self):
        return {
            "create": s.ManualMatchSerializer,
            "auto_reconcile": s.AutoReconcileInputSerializer,
        }.get(self.action, s.ReconciliationMatchSerializer)

    def create(self, request, *args, **kwargs):
        data = self._input(s.ManualMatchSerializer, request)
        allocations = [(row["bank_transaction"], row.get("amount")) for row in data["allocations"]]
        matches = reconciliation.reconciliation_match(
            actor=request.user, statement_line=data["statement_line"], allocations=allocations
        )
        return Response(
            s.ReconciliationMatchSerializer(matches, many=True).data,
            status=status.HTTP_201_CREATED,
        )

    def perform_destroy(self, instance):
        reconciliation.reconciliation_unmatch(actor=self.request.user, match=instance)

    def _answer(self, match):
        fresh = self.get_queryset().get(pk=match.pk)
        return Response(s.ReconciliationMatchSerializer(fresh).data)

    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        match = self.get_object()
        reconciliation.reconciliation_accept(actor=request.user, match=match)
        return self._answer(match)

    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        match = self.get_object()
        reconciliation.reconciliation_reject(actor=request.user, match=match)
        return self._answer(match)

    @action(detail=False, methods=["post"], url_path="auto-reconcile")
    def auto_reconcile(self, request):
        data = self._input(s.AutoReconcileInputSerializer, request)
        summary = reconciliation.reconciliation_auto(
            company=self.company,
            bank_account=data["bank_account"],
            period=_period_from(data.get("period")),
            actor=request.user,
        )
        return Response(s.AutoReconcileResultSerializer(summary).data)


__all__ = [
    "BankAccountViewSet",
    "BankTransactionViewSet",
    "BankTransferViewSet",
    "CashSubmissionViewSet",
    "FloatAllocationViewSet",
    "ReconciliationMatchViewSet",
    "StatementImportViewSet",
    "StatementLineViewSet",
]
