"""The invoice event store on the Django ORM (PostgreSQL in production, SQLite embedded).

- `stream_load(stream_id)`: a stream's events in version order and the state they replay to.
- `events_append(...)`: one INSERT for all new events with `ON CONFLICT (stream_id, version)
  DO NOTHING RETURNING id`. Fewer ids back than events sent means another writer appended the
  same versions first: `ConflictError(code="stale_version")` (HTTP 409), and the caller's
  transaction rolls back (numbers, postings and all). No savepoint is needed, so a conflict
  never leaves the surrounding transaction broken.
- `events_read_after(...)`: the global log for asynchronous consumers, in an order in which
  nothing can later commit behind a checkpoint. Ids are drawn at insert but become visible at
  commit, so id 11 may be visible while id 10 is still in flight. On PostgreSQL every append
  holds a shared advisory lock until its transaction ends; a reader takes the same lock
  exclusively for an instant (waiting for appends in flight to commit or roll back), reads
  the highest id then, and releases it: every event up to that horizon is final. The wait is
  one append's length, and other databases on the server play no part. SQLite has a single
  writer, so ids commit in order there.
- `consumer_run(name, handle)`: the checkpoint pattern: lock the checkpoint row, read a batch,
  let `handle` write its own rows, move the checkpoint, all in one transaction (exactly once
  for database consumers).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django_guid import get_guid

from core.errors import ConflictError
from invoicing import domain
from invoicing.models import InvoiceEvent, ProjectionCheckpoint

# Advisory lock key shared by appenders (shared, per transaction) and log readers (exclusive,
# for an instant): "invoicing.events" as a number.
APPEND_LOCK = 0x1A7E_0E7E


def actor_metadata(actor, system_job: str = "") -> dict:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return {
            "actor_id": actor.pk,
            "actor": actor.get_username(),
            "request_id": get_guid() or "",
        }
    return {
        "actor_id": None,
        "actor": f"system:{system_job}" if system_job else "system",
        "request_id": get_guid() or "",
    }


def _meta(metadata: dict, recorded_at) -> dict:
    return {**(metadata or {}), "recorded_at": recorded_at}


def stream_load(stream_id) -> domain.InvoiceState:
    rows = (
        InvoiceEvent.objects.filter(stream_id=stream_id)
        .order_by("version")
        .values_list("type", "payload", "metadata", "recorded_at")
    )
    return domain.replay(((t, p, _meta(m, at)) for t, p, m, at in rows), stream_id=str(stream_id))


_LOCKED_STREAM_SQL = (
    "SELECT i.version, e.type, e.payload, e.metadata, e.recorded_at, "  # noqa: S608 - a constant
    f"pg_advisory_xact_lock_shared({APPEND_LOCK}) FROM invoicing_invoice i "
    "LEFT JOIN invoicing_invoiceevent e ON e.stream_id = i.stream_id "
    "WHERE i.id = %s ORDER BY e.version FOR UPDATE OF i"
)


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def stream_load_locked(invoice_id: int, stream_id) -> domain.InvoiceState | None:
    """Lock the invoice's read-model row for this transaction and replay its stream, in one
    round trip on PostgreSQL; the same statement takes the appenders' shared lock (see
    `events_append(lock_held=True)`). None when there is no such invoice."""
    if connection.vendor != "postgresql":
        from invoicing.models import Invoice

        if not Invoice.objects.select_for_update().filter(pk=invoice_id).values_list("pk"):
            return None
        return stream_load(stream_id)
    with connection.cursor() as cursor:
        cursor.execute(_LOCKED_STREAM_SQL, [invoice_id])
        rows = cursor.fetchall()
    if not rows:
        return None
    state = domain.replay(
        ((t, _json(p), _meta(_json(m), at)) for _v, t, p, m, at, _lock in rows if t is not None),
        stream_id=str(stream_id),
    )
    if state.version != rows[0][0]:
        # We waited for the lock behind another writer: PostgreSQL re-read the locked invoice
        # row but not the joined events, which are from before that writer's commit.
        state = stream_load(stream_id)
    return state


@dataclass
class Appended:
    ids: list[int]
    recorded_at: datetime


_FIELDS = ("company", "stream_id", "version", "type", "payload", "metadata", "recorded_at")


def _prep(name: str, value):
    return InvoiceEvent._meta.get_field(name).get_db_prep_save(value, connection)


def events_append(
    *,
    company_id: int,
    stream_id,
    expected_version: int,
    events: list[tuple[str, dict]],
    metadata: dict,
    recorded_at: datetime | None = None,
    lock_held: bool = False,
) -> Appended:
    """Append `events` as versions expected_version+1... of the stream, or raise 409.
    `lock_held`: this transaction already holds the appenders' shared lock (taken by
    `stream_load_locked`), so it is not asked for again."""
    if not events:
        return Appended(ids=[], recorded_at=recorded_at or timezone.now())
    recorded_at = recorded_at or timezone.now()
    stream = stream_id if isinstance(stream_id, uuid.UUID) else uuid.UUID(str(stream_id))
    rows, params = [], []
    meta_json = json.dumps(metadata, cls=DjangoJSONEncoder)
    for offset, (event_type, payload) in enumerate(events, start=1):
        rows.append("(%s, %s, %s, %s, %s, %s, %s)")
        params += [
            company_id,
            _prep("stream_id", stream),
            expected_version + offset,
            event_type,
            json.dumps(payload, cls=DjangoJSONEncoder),
            meta_json,
            _prep("recorded_at", recorded_at),
        ]
    table = InvoiceEvent._meta.db_table
    sql = (
        f"INSERT INTO {table} (company_id, stream_id, version, type, payload, metadata, "  # noqa: S608 - constant table name, %s placeholders
        f"recorded_at) VALUES {', '.join(rows)} "
        "ON CONFLICT (stream_id, version) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and not lock_held:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [APPEND_LOCK])
        cursor.execute(sql, params)
        ids = sorted(row[0] for row in cursor.fetchall())
    if len(ids) != len(events):
        raise ConflictError(
            "Someone else changed this invoice at the same moment; reload it and try again.",
            code="stale_version",
        )
    return Appended(ids=ids, recorded_at=recorded_at)


# --- the global log for asynchronous consumers ---------------------------------------------


@dataclass(frozen=True)
class LoggedEvent:
    id: int
    company_id: int
    stream_id: uuid.UUID
    version: int
    type: str
    payload: dict
    metadata: dict
    recorded_at: datetime


def log_horizon() -> int | None:
    """The highest event id below which every event is committed (PostgreSQL: see the module
    note); None on SQLite, where there is nothing to wait for."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [APPEND_LOCK])
        try:
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM invoicing_invoiceevent")
            return cursor.fetchone()[0]
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [APPEND_LOCK])


def events_read_after(*, position: int, limit: int = 1000, horizon: int | None = None):
    """Events after `position` (an InvoiceEvent id) up to the horizon, in id order."""
    qs = InvoiceEvent.objects.filter(id__gt=position).order_by("id")
    if horizon is not None:
        qs = qs.filter(id__lte=horizon)
    return [
        LoggedEvent(
            id=e.id,
            company_id=e.company_id,
            stream_id=e.stream_id,
            version=e.version,
            type=e.type,
            payload=e.payload,
            metadata=e.metadata,
            recorded_at=e.recorded_at,
        )
        for e in qs[:limit]
    ]


def consumer_run(name: str, handle, *, batch: int = 1000, max_batches: int = 100) -> int:
    """Feed the log to `handle(events)` batch by batch; each batch, the consumer's writes and
    its checkpoint commit together. Returns how many events were handled."""
    handled = 0
    # The horizon is taken outside the batch transactions: the reader's lock must not wait
    # inside a transaction that appends (it would wait for itself).
    horizon = log_horizon()
    for _ in range(max_batches):
        with transaction.atomic():
            ProjectionCheckpoint.objects.get_or_create(name=name)
            checkpoint = ProjectionCheckpoint.objects.select_for_update().get(name=name)
            events = events_read_after(position=checkpoint.position, limit=batch, horizon=horizon)
            if not events:
                return handled
            handle(events)
            checkpoint.position = events[-1].id
            checkpoint.save(update_fields=["position", "updated_at"])
            handled += len(events)
        if len(events) < batch:
            break
    return handled
