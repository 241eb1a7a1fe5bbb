"""An in-memory connector for engine tests: the remote system is a `Remote` object the test
arranges (records, page size, failures) and inspects (what was created, how often)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from accounting.integrations.connectors.base import (
    ACCOUNTS,
    CONTACTS,
    CREDIT_NOTES,
    INVOICES,
    JOURNALS,
    PAYMENTS,
    ConflictFailure,
    Connector,
    ExternalAccount,
    ExternalContact,
    NetworkFailure,
    Page,
    PushResult,
    SyncFailure,
)


@dataclass
class Remote:
    accounts: list[ExternalAccount] = field(default_factory=list)
    contacts: list[ExternalContact] = field(default_factory=list)
    page_size: int = 2
    # page number (1-based) -> failure raised when that page is fetched
    page_failures: dict[int, SyncFailure] = field(default_factory=dict)
    # local_id -> failure raised by the next push of it (popped when raised)
    push_failures: dict[str, SyncFailure] = field(default_factory=dict)
    # local ids whose next push is carried out remotely but whose reply is "lost"
    lose_reply: set[str] = field(default_factory=set)
    # external ids the remote changed since we last saw them (updates conflict)
    changed_remotely: set[str] = field(default_factory=set)
    fail_everything: SyncFailure | None = None
    created: dict[str, dict] = field(default_factory=dict)  # external id -> payload and kind
    pushes: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, local_id, mode)
    lookups: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def by_local(self, kind: str, local_id: str) -> list[str]:
        return [
            ext
            for ext, rec in self.created.items()
            if rec["kind"] == kind and rec["local_id"] == local_id
        ]


class MemoryConnector(Connector):
    system = "zoho_books"
    supports = frozenset({ACCOUNTS, CONTACTS, INVOICES, CREDIT_NOTES, PAYMENTS, JOURNALS})
    remote: Remote = Remote()

    def _check(self):
        if self.remote.fail_everything is not None:
            raise self.remote.fail_everything

    def test_connection(self) -> dict:
        self._check()
        return {"success": True, "latency_ms": 12, "version": "memory-1", "message": "OK"}

    def _page(self, items, cursor):
        self._check()
        number = int(cursor or 1)
        failure = self.remote.page_failures.get(number)
        if failure is not None:
            raise failure
        size = self.remote.page_size
        chunk = items[(number - 1) * size : number * size]
        more = number * size < len(items)
        return Page(items=list(chunk), next_cursor=str(number + 1) if more else None)

    def fetch_accounts(self, *, cursor=None, since=None):
        return self._page(self.remote.accounts, cursor)

    def fetch_contacts(self, *, cursor=None, since=None):
        return self._page(self.remote.contacts, cursor)

    def fetch_contact(self, external_id):
        return next(c for c in self.remote.contacts if c.external_id == external_id)

    def fetch_changes(self, *, since):
        return [], since or ""

    def find_by_reference(self, entity, local_id, number=""):
        self.remote.lookups.append(local_id)
        found = self.remote.by_local(entity, local_id)
        return PushResult(found[0], "1") if found else None

    def _push(self, kind, payload, ref):
        self._check()
        local_id = payload.local_id
        failure = self.remote.push_failures.pop(local_id, None)
        if failure is not None:
            raise failure
        if ref is not None:
            if ref.external_id in self.remote.changed_remotely:
                raise ConflictFailure(
                    "Stale object error: you and someone else edited it (5010).",
                    external_id=ref.external_id,
                )
            self.remote.pushes.append((kind, local_id, "update"))
            record = self.remote.created[ref.external_id]
            record["payload"] = payload
            record["version"] = str(int(record["version"]) + 1)
            return PushResult(ref.external_id, record["version"])
        external_id = f"EXT-{next(self.remote._ids)}"
        self.remote.created[external_id] = {
            "kind": kind,
            "local_id": local_id,
            "payload": payload,
            "version": "0",
        }
        self.remote.pushes.append((kind, local_id, "create"))
        if local_id in self.remote.lose_reply:
            self.remote.lose_reply.discard(local_id)
            raise NetworkFailure("Read timed out", retryable=True)
        return PushResult(external_id, "0")

    def push_invoice(self, invoice, *, ref):
        return self._push(invoice.kind, invoice, ref)

    def push_payment(self, payment, *, ref):
        return self._push("payment", payment, ref)

    def push_journal(self, journal, *, ref):
        return self._push("journal", journal, ref)
