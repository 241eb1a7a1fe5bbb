"""Statement import: one file into one bank account, whole or not at all.

`statement_import_create` parses the file (banking.parsers), keeps the statements that belong to
the bank account, refuses a statement of another account or currency, skips entries already
imported from an earlier (overlapping) file, and writes the import and its new lines in one
transaction with bulk inserts. The same file again returns the earlier import, marked
`replayed`, and writes nothing. Auto-reconciliation is queued after commit.
"""

from __future__ import annotations

import datetime
import hashlib
import re

from django.db import connection, transaction

from banking.errors import BankingValidationError
from banking.models import (
    BankAccount,
    LineStatus,
    MatchStatus,
    ReconciliationMatch,
    StatementFormat,
    StatementImport,
    StatementLine,
)
from banking.parsers import (
    CsvMapping,
    CsvMappingError,
    ParsedStatement,
    StatementParseError,
    content_hashes,
    parse_statement,
    sniff_format,
)
from banking.services import _require_write
from core.services import audit_record

# The refusal for a member whose role does not write the banking scope reads "Only an … may …".
IMPORTING = "import bank statements"
BATCH_SIZE = 2000  # rows per INSERT; also the chunk of ids looked up per query
_IBAN_RE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{8,30}$")
IBAN_MIN_VISIBLE = 8  # visible account-number characters that may stand for a missing IBAN


@transaction.atomic
def statement_import_create(
    *,
    actor,
    bank_account: BankAccount,
    content: bytes,
    filename: str = "",
    format: str | None = None,
    mapping: CsvMapping | dict | None = None,
) -> StatementImport:
    """Import a statement file (OFX, MT940, CAMT.053, or CSV through `mapping` or the bank
    account's saved `statement_mapping`) into `bank_account`.

    Returns the StatementImport with `.replayed` (True when this exact file was imported into
    this account before: nothing is written) and `.skipped_count` (entries already imported
    from another file). Raises BankingValidationError with code `invalid_statement` (the
    message names the line and the reason), `account_mismatch`, `currency_mismatch` or
    `invalid_format`; nothing is written then.
    """
    account = BankAccount.objects.select_related("company").get(pk=bank_account.pk)
    _require_write(actor, account.company, doing=IMPORTING)
    if isinstance(content, str):
        content = content.encode()
    content = bytes(content)
    check_statement_size(len(content))
    digest = hashlib.sha256(content).hexdigest()
    earlier = _earlier_import(account, digest)
    if earlier is not None:
        return earlier

    fmt, mapping = _format_and_mapping(account, content, format, mapping)
    try:
        statements = parse_statement(content, format=fmt, mapping=mapping)
    except StatementParseError as exc:
        raise BankingValidationError(
            f"The statement file cannot be imported: {exc}",
            code="invalid_statement",
            fields={"content": [str(exc)], **({"line": [str(exc.line)]} if exc.line else {})},
        ) from None
    mine = _statements_for(account, statements)
    fmt = fmt or mine[0].format

    parsed_lines = [line for statement in mine for line in statement.lines]
    for statement in mine:
        for line in statement.lines:
            line.currency = (line.currency or statement.currency or account.currency).upper()
            if line.currency != account.currency:
                raise BankingValidationError(
                    f"Entry {line.line_no} of statement {statement.statement_id or ''} "
                    f"(line {line.source_line}) is in {line.currency}, the bank account in "
                    f"{account.currency}.",
                    code="currency_mismatch",
                    fields={"content": ["Currency differs from the bank account's."]},
                )
    hashes = content_hashes(str(account.pk), parsed_lines)

    # The row lock serialises imports into one account (parsing, above, runs outside it): two
    # overlapping files uploaded at once would otherwise both see an entry as new, and the same
    # file twice would both pass the replay check.
    BankAccount.objects.select_for_update().filter(pk=account.pk).values_list("pk").get()
    earlier = _earlier_import(account, digest)
    if earlier is not None:
        return earlier
    known_ids, known_hashes = _already_imported(account, parsed_lines, hashes)

    first, last = mine[0], mine[-1]
    statement_ids = [s.statement_id for s in mine if s.statement_id]
    record = StatementImport.objects.create(
        company=account.company,
        bank_account=account,
        format=fmt,
        filename=(filename or "")[:255],
        sha256=digest,
        raw=content,
        statement_id=_joined(statement_ids, 100),
        currency=account.currency,
        opening_balance=first.opening_balance,
        opening_date=first.opening_date,
        closing_balance=last.closing_balance,
        closing_date=last.closing_date,
        line_count=len(parsed_lines),
        new_line_count=0,
        imported_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    rows = []
    for position, (line, content_hash) in enumerate(zip(parsed_lines, hashes, strict=True), 1):
        bank_id = _bank_id(line.bank_id)
        if (bank_id and bank_id in known_ids) or content_hash in known_hashes:
            continue
        rows.append(
            StatementLine(
                company_id=account.company_id,
                bank_account_id=account.pk,
                statement_import=record,
                line_no=position,
                date=line.date,
                value_date=line.value_date,
                amount=line.amount,
                currency=line.currency,
                bank_id=bank_id,
                content_hash=content_hash,
                reference=_clean(line.reference)[:200],
                counterparty=_clean(line.counterparty)[:200],
                counterparty_account=_clean(line.counterparty_account)[:64],
                description=_clean(line.description),
                raw=_clean(line.raw),
                # A zero entry (a notice, a reversed hold) moves no money: nothing to match.
                status=LineStatus.IGNORED if line.amount == 0 else LineStatus.UNMATCHED,
            )
        )
    _insert_lines(rows)
    record.new_line_count = len(rows)
    record.save(update_fields=["new_line_count"])
    record.replayed = False
    record.skipped_count = record.line_count - record.new_line_count
    record.ignored_count = sum(1 for row in rows if row.status == LineStatus.IGNORED)
    audit_record(
        action="banking.statement.import",
        actor=actor,
        company=account.company,
        obj=record,
        after={
            "bank_account": account.pk,
            "format": fmt,
            "filename": record.filename,
            "sha256": digest,
            "statements": len(mine),
            "lines": record.line_count,
            "new_lines": record.new_line_count,
            "skipped_lines": record.skipped_count,
            "ignored_lines": record.ignored_count,
            "opening_balance": str(record.opening_balance)
            if record.opening_balance is not None
            else None,
            "closing_balance": str(record.closing_balance)
            if record.closing_balance is not None
            else None,
        },
    )
    if rows:
        account_id = account.pk
        transaction.on_commit(lambda: _queue_reconcile(account_id), robust=True)
    return record


def _earlier_import(account: BankAccount, digest: str) -> StatementImport | None:
    earlier = StatementImport.objects.filter(bank_account=account, sha256=digest).first()
    if earlier is not None:
        earlier.replayed = True
        earlier.skipped_count = earlier.line_count - earlier.new_line_count
        earlier.ignored_count = earlier.lines.filter(status=LineStatus.IGNORED).count()
    return earlier


def _format_and_mapping(account, content, fmt, mapping):
    if fmt is not None and fmt not in StatementFormat.values:
        raise BankingValidationError(
            f"Unknown statement format {fmt!r}: one of {', '.join(StatementFormat.values)}.",
            code="invalid_format",
            fields={"format": ["Unknown format."]},
        )
    if fmt is None and sniff_format(content) is None:
        fmt = "csv"  # not OFX, MT940 nor CAMT: read it as CSV if a mapping says how
    if fmt == "csv":
        mapping = mapping if mapping not in (None, {}) else (account.statement_mapping or None)
        if mapping is None:
            raise BankingValidationError(
                "The file is not OFX, MT940 or CAMT.053, and the bank account has no CSV column "
                "mapping to read it with.",
                code="invalid_format",
                fields={"mapping": ["Required for a CSV file."]},
            )
        try:
            mapping = CsvMapping.from_dict(mapping)
        except CsvMappingError as exc:
            raise BankingValidationError(
                f"CSV mapping: {exc}",
                code="invalid_mapping",
                fields={f"mapping.{key}": messages for key, messages in exc.fields.items()},
            ) from None
    return fmt, mapping


def _normalise(identifier: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", identifier or "").upper()


def _account_matches(account: BankAccount, statement_account: str) -> bool:
    """Does the account id written in the statement name this bank account?

    An IBAN in the file must equal the account's IBAN. A domestic account number (MT940 :25:,
    OFX ACCTID) matches when the account's IBAN ends with it (the IBAN carries the domestic
    number) or when it ends with the visible digits of the masked number (****1234)."""
    theirs = _normalise(statement_account)
    if not theirs:
        return False
    iban = _normalise(account.iban)
    masked = account.account_number_masked or ""
    visible = _normalise(masked.rsplit("*", 1)[-1])
    if _IBAN_RE.match(theirs):
        if iban:
            return theirs == iban
        # A full IBAN against an account without one: four masked digits (****1234) fit any
        # IBAN ending in them, so at least IBAN_MIN_VISIBLE visible characters are needed.
        return len(visible) >= IBAN_MIN_VISIBLE and theirs.endswith(visible)
    if iban and (theirs == iban or (len(theirs) >= 6 and iban.endswith(theirs))):
        return True
    if len(visible) >= 4:
        return theirs.endswith(visible) if "*" in masked else theirs == visible
    return False


def _statements_for(account: BankAccount, statements: list[ParsedStatement]):
    if not statements:
        raise BankingValidationError(
            "The file holds no statement.",
            code="invalid_statement",
            fields={"content": ["No statement in the file."]},
        )
    unnamed = [s for s in statements if not s.account_id]  # CSV: the account is the one chosen
    named = [s for s in statements if s.account_id]
    matched = [s for s in named if _account_matches(account, s.account_id)]
    matched_ids = sorted({_normalise(s.account_id) for s in matched})
    if len(matched_ids) > 1:
        # Only a masked number's last digits matched, and they fit several accounts in the file.
        raise BankingValidationError(
            f"Several accounts in the file ({', '.join(matched_ids)}) fit bank account "
            f"'{account.name}'; set its IBAN or full account number to tell them apart.",
            code="account_mismatch",
            fields={"content": ["Several statement accounts match."]},
        )
    mine = unnamed + matched
    if not mine:
        found = ", ".join(sorted({s.account_id for s in named}))
        if not (account.iban or account.account_number_masked):
            hint = " The bank account has no IBAN or account number to compare with."
        elif not account.iban and any(_IBAN_RE.match(_normalise(s.account_id)) for s in named):
            hint = (
                " The file names an IBAN and the bank account has none: enter the account's "
                f"IBAN (or at least {IBAN_MIN_VISIBLE} visible characters of its number)."
            )
        else:
            hint = ""
        raise BankingValidationError(
            f"The file is a statement of {found}, not of bank account '{account.name}'.{hint}",
            code="account_mismatch",
            fields={"content": [f"Statement account {found} does not match."]},
        )
    for statement in mine:
        currency = (statement.currency or account.currency).upper()
        if currency != account.currency:
            raise BankingValidationError(
                f"The statement {statement.statement_id or statement.account_id} is in "
                f"{currency}; bank account '{account.name}' is in {account.currency}.",
                code="currency_mismatch",
                fields={"content": ["Currency differs from the bank account's."]},
            )
    # File order, except that an unordered multi-statement file is read oldest first.
    return sorted(mine, key=lambda s: s.opening_date or s.closing_date or datetime.date.min)


def _already_imported(account, lines, hashes) -> tuple[set[str], set[str]]:
    """Bank ids and content hashes of this file that the account already holds: two queries
    on PostgreSQL (one array parameter each), chunked IN lists elsewhere."""
    ids = sorted({_bank_id(line.bank_id) for line in lines if line.bank_id})
    if connection.vendor == "postgresql":
        table = StatementLine._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT bank_id FROM {table} "  # noqa: S608 (the model's own table name)
                "WHERE bank_account_id = %s AND bank_id <> '' AND bank_id = ANY(%s)",
                [account.pk, ids],
            )
            known_ids = {row[0] for row in cursor.fetchall()}
            cursor.execute(
                f"SELECT content_hash FROM {table} "  # noqa: S608
                "WHERE bank_account_id = %s AND content_hash = ANY(%s)",
                [account.pk, hashes],
            )
            known_hashes = {row[0] for row in cursor.fetchall()}
        return known_ids, known_hashes
    known_ids: set[str] = set()
    known_hashes: set[str] = set()
    for start in range(0, len(ids), BATCH_SIZE):
        known_ids.update(
            StatementLine.objects.filter(
                bank_account=account, bank_id__in=ids[start : start + BATCH_SIZE]
            ).values_list("bank_id", flat=True)
        )
    for start in range(0, len(hashes), BATCH_SIZE):
        known_hashes.update(
            StatementLine.objects.filter(
                bank_account=account, content_hash__in=hashes[start : start + BATCH_SIZE]
            ).values_list("content_hash", flat=True)
        )
    return known_ids, known_hashes


_COPY_COLUMNS = (
    "company_id",
    "bank_account_id",
    "statement_import_id",
    "line_no",
    "date",
    "value_date",
    "amount",
    "currency",
    "bank_id",
    "content_hash",
    "reference",
    "counterparty",
    "counterparty_account",
    "description",
    "raw",
    "reconciled_amount",
    "status",
)


def _insert_lines(rows: list[StatementLine]) -> None:
    """COPY on PostgreSQL (a 10,000-line file in well under a second; bulk INSERTs spend most
    of their time binding 17 parameters per row), batched bulk_create elsewhere. The database's
    unique constraints and checks apply to both."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        StatementLine.objects.bulk_create(rows, batch_size=BATCH_SIZE)
        return
    from core.rls import copy_from

    table = StatementLine._meta.db_table
    # RLS refuses COPY FROM inside a tenant scope (an API upload): copy_from then goes
    # through a temporary table and one INSERT ... SELECT.
    with connection.cursor() as cursor, copy_from(cursor, table, _COPY_COLUMNS) as copy:
        for row in rows:
            copy.write_row(
                (
                    row.company_id,
                    row.bank_account_id,
                    row.statement_import_id,
                    row.line_no,
                    row.date,
                    row.value_date,
                    row.amount,
                    row.currency,
                    row.bank_id,
                    row.content_hash,
                    row.reference,
                    row.counterparty,
                    row.counterparty_account,
                    row.description,
                    row.raw,
                    row.reconciled_amount,
                    row.status,
                )
            )


def _clean(text: str) -> str:
    return (text or "").replace("\x00", "")  # PostgreSQL text cannot hold NUL


def _bank_id(value: str) -> str:
    value = _clean(value).strip()
    if len(value) <= 100:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _joined(values: list[str], limit: int) -> str:
    if not values:
        return ""
    text = values[0] if len(values) == 1 else f"{values[0]} … {values[-1]}"
    return text[:limit]


def _queue_reconcile(bank_account_id: int) -> None:
    from banking.tasks import reconcile_account

    reconcile_account.delay(bank_account_id)


# --- undoing an import, ignoring a line --------------------------------------------------------


def max_statement_bytes() -> int:
    from django.conf import settings

    return int(getattr(settings, "BANKING_MAX_STATEMENT_BYTES", 20 * 1024 * 1024))


def check_statement_size(size: int) -> None:
    """Refuse a statement file over BANKING_MAX_STATEMENT_BYTES before anything reads it."""
    limit = max_statement_bytes()
    if size > limit:
        raise BankingValidationError(
            f"The file is {size:,} bytes; statements up to {limit:,} bytes are accepted "
            "(BANKING_MAX_STATEMENT_BYTES). Split it by month.",
            code="file_too_large",
            fields={"file": [f"At most {limit:,} bytes."]},
        )


def _locked_import(statement_import) -> StatementImport:
    record = StatementImport.objects.select_related("bank_account", "company").get(
        pk=getattr(statement_import, "pk", statement_import)
    )
    BankAccount.objects.select_for_update().filter(pk=record.bank_account_id).values_list(
        "pk"
    ).get()
    return record


@transaction.atomic
def statement_import_delete(*, actor, statement_import) -> dict:
    """Undo a wrong import: its lines and the import go, so the right file can be imported
    (the same file again would otherwise replay the earlier import). Refused (409
    `import_matched`) while any of its lines carries an accepted match or is partly or wholly
    reconciled: unmatch those first. Pending suggestions on its lines are deleted with them.
    Audited with the file's name, hash and line count."""
    from core.errors import ConflictError

    record = _locked_import(statement_import)
    _require_write(actor, record.company, doing=IMPORTING)
    lines = StatementLine.objects.filter(statement_import=record)
    matched = (
        lines.filter(reconciled_amount__gt=0).count()
        + ReconciliationMatch.objects.filter(
            statement_line__statement_import=record, status=MatchStatus.ACCEPTED
        ).count()
    )
    if matched:
        raise ConflictError(
            f"Import {record.pk} ({record.filename or record.format}) has matched lines: "
            "unmatch them before deleting the import.",
            code="import_matched",
        )
    before = {
        "bank_account": record.bank_account_id,
        "format": record.format,
        "filename": record.filename,
        "sha256": record.sha256,
        "lines": record.new_line_count,
        "closing_balance": None if record.closing_balance is None else str(record.closing_balance),
    }
    suggestions, _ = ReconciliationMatch.objects.filter(
        statement_line__statement_import=record
    ).delete()
    line_count, _ = lines.delete()
    audit_record(
        action="banking.statement.delete",
        actor=actor,
        company=record.company,
        obj=record,
        before=before,
        after={"deleted_lines": line_count, "deleted_suggestions": suggestions},
    )
    record.delete()
    return {"lines": line_count, "suggestions": suggestions}


def _line_for_change(statement_line) -> StatementLine:
    line = StatementLine.objects.select_related("bank_account", "company").get(
        pk=getattr(statement_line, "pk", statement_line)
    )
    BankAccount.objects.select_for_update().filter(pk=line.bank_account_id).values_list("pk").get()
    return StatementLine.objects.select_for_update().select_related("company").get(pk=line.pk)


@transaction.atomic
def statement_line_ignore(*, actor, statement_line) -> StatementLine:
    """Set a line aside (a bank's notice, a line booked elsewhere): it leaves review and the
    matcher. Only a line nothing is matched to (409 `line_matched`); its pending suggestions
    are deleted. Ignoring an ignored line changes nothing."""
    from core.errors import ConflictError

    line = _line_for_change(statement_line)
    _require_write(actor, line.company, doing=IMPORTING)
    if line.status == LineStatus.IGNORED:
        return line
    if line.reconciled_amount > 0:
        raise ConflictError(
            f"Statement line {line.pk} is matched: unmatch it before ignoring it.",
            code="line_matched",
        )
    ReconciliationMatch.objects.filter(statement_line=line, status=MatchStatus.SUGGESTED).delete()
    before = line.status
    line.status = LineStatus.IGNORED
    line.save(update_fields=["status"])
    audit_record(
        action="banking.statement_line.ignore",
        actor=actor,
        company=line.company,
        obj=line,
        before={"status": before},
        after={"status": line.status},
    )
    return line


@transaction.atomic
def statement_line_unignore(*, actor, statement_line) -> StatementLine:
    """Bring an ignored line back to review (unmatched); auto-reconcile may suggest for it
    again. A line that is not ignored is left as it is."""
    line = _line_for_change(statement_line)
    _require_write(actor, line.company, doing=IMPORTING)
    if line.status != LineStatus.IGNORED:
        return line
    line.status = LineStatus.UNMATCHED
    line.save(update_fields=["status"])
    audit_record(
        action="banking.statement_line.unignore",
        actor=actor,
        company=line.company,
        obj=line,
        before={"status": LineStatus.IGNORED},
        after={"status": line.status},
    )
    return line
