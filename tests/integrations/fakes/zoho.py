"""A fake Zoho Books (API v3) server for the connector tests: real HTTP on loopback.

It speaks the wire format of Zoho's published documentation: `/books/v3/...` with
`organization_id` on every request, `Authorization: Zoho-oauthtoken <token>`, list replies with
`page_context.has_more_page`, bodies `{code, message, ...}` where `code` 0 is success and e.g.
1002 is "does not exist", and an accounts server at `/oauth/v2/token` (authorization code and
refresh grants; Zoho does not rotate refresh tokens). Stores live in memory. Failure switches
(`fail`) answer chosen requests with 401, 429 (with or without `Retry-After`), 500, a slow reply
or malformed JSON, a given number of times, optionally only for one page of a list; "drop"
processes the request (the record is saved) and cuts the reply off mid-body. Lists accept only
the searches Zoho documents for them (`_SEARCH_PARAMS`); any other query parameter answers code 2
"Invalid value passed for ...".
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlencode

from tests.integrations.fakes import Request, reply
from tests.integrations.fakes.tally import lost_reply

ORGANIZATION_ID = "10234695"
CLIENT_ID = "1000.FAKEZOHOCLIENT"
CLIENT_SECRET = "fake-zoho-client-secret"
REFRESH_TOKEN = "1000.fake-zoho-refresh-token"
API_PREFIX = "/books/v3"
MAX_PER_PAGE = 200
IST = timezone(timedelta(hours=5, minutes=30))

# Per-record kinds served under /books/v3/<path>: (path, singular key, id field, number field)
DOCUMENTS = {
    "invoices": ("invoice", "invoice_id", "invoice_number"),
    "creditnotes": ("creditnote", "creditnote_id", "creditnote_number"),
    "customerpayments": ("payment", "payment_id", "payment_number"),
    "journals": ("journal", "journal_id", "entry_number"),
}
NOUNS = {
    "invoices": "Invoice",
    "creditnotes": "Credit note",
    "customerpayments": "Payment",
    "journals": "Journal",
    "contacts": "Contact",
    "chartofaccounts": "Account",
}


def zoho_time(moment: datetime) -> str:
    """Zoho's timestamp: `2026-01-01T10:00:00+0530` (offset without a colon)."""
    return moment.astimezone(IST).strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Fault:
    """One failure switch. `kind`: 401, 429, 500, slow, malformed. Matches requests whose path
    (after /books/v3) starts with `path` and, for lists, whose `page` equals `page`."""

    kind: str
    path: str = ""
    method: str = ""
    page: int | None = None
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str, query: dict) -> bool:
        if self.times <= 0:
            return False
        if self.method and method != self.method:
            return False
        if self.path and not path.startswith(self.path):
            return False
        return self.page is None or int(query.get("page", "1")) == self.page


@dataclass
class Logged:
    method: str
    path: str
    query: dict
    headers: dict
    body: object = None
    status: int = 0
    dropped: bool = False


@dataclass
class _Tokens:
    access: set = field(default_factory=set)
    refresh: set = field(default_factory=lambda: {REFRESH_TOKEN})
    codes: set = field(default_factory=set)
    refreshes: int = 0


class FakeZohoBooks:
    """The WSGI app. `base_url` (API) and `accounts_url` are set once the server is started."""

    def __init__(self, *, organization_id: str = ORGANIZATION_ID):
        self.organization_id = organization_id
        self.lock = threading.RLock()
        self.contacts: dict[str, dict] = {}
        self.accounts: dict[str, dict] = {}
        self.documents: dict[str, dict[str, dict]] = {kind: {} for kind in DOCUMENTS}
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.tokens = _Tokens()
        self.refresh_error: str | None = None
        self._next_id = 460000000026049
        self._clock = datetime(2026, 1, 5, 9, 0, 0, tzinfo=IST)
        self.server_url = ""

    # --- setup helpers for tests -------------------------------------------------------------
    def issue_access_token(self) -> str:
        token = "1000." + secrets.token_hex(16)
        with self.lock:
            self.tokens.access.add(token)
        return token

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far stops working (answers 401 until refreshed)."""
        with self.lock:
            self.tokens.access.clear()

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.tokens.refresh.clear()

    def fail(self, kind: str, **options) -> Fault:
        fault = Fault(kind=str(kind), **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def tick(self) -> str:
        """Advance the fake clock by one second and return the new time in Zoho's format."""
        self._clock += timedelta(seconds=1)
        return zoho_time(self._clock)

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def add_contact(self, name: str, *, contact_type: str = "customer", **extra) -> dict:
        with self.lock:
            contact_id = self.new_id()
            stamp = self.tick()
            contact = {
                "contact_id": contact_id,
                "contact_name": name,
                "company_name": name,
                "contact_type": contact_type,
                "customer_sub_type": "business",
                "status": "active",
                "email": "",
                "phone": "",
                "currency_code": "BDT",
                "created_time": stamp,
                "last_modified_time": stamp,
                **extra,
            }
            self.contacts[contact_id] = contact
            return contact

    def add_contacts(self, count: int, *, prefix: str = "Customer") -> list[dict]:
        return [
            self.add_contact(
                f"{prefix} {n:05d}",
                email=f"{prefix.lower()}{n}@example.com",
                phone=f"+880171{n:07d}",
            )
            for n in range(1, count + 1)
        ]

    def add_account(self, code: str, name: str, account_type: str, **extra) -> dict:
        with self.lock:
            account_id = self.new_id()
            account = {
                "account_id": account_id,
                "account_name": name,
                "account_code": code,
                "account_type": account_type,
                "is_active": True,
                "is_user_created": True,
                "parent_account_id": "",
                "last_modified_time": self.tick(),
                **extra,
            }
            self.accounts[account_id] = account
            return account

    def seed_chart(self) -> dict[str, dict]:
        """A small chart of accounts keyed by code, the way a new Zoho organisation has one."""
        return {
            row[0]: self.add_account(*row)
            for row in [
                ("1000", "Petty Cash", "cash"),
                ("1010", "Undeposited Funds", "cash"),
                ("1100", "Bank Account", "bank"),
                ("1200", "Accounts Receivable", "accounts_receivable"),
                ("2100", "VAT Payable", "other_current_liability"),
                ("3000", "Owner's Equity", "equity"),
                ("4000", "Sales", "income"),
                ("5000", "Office Supplies", "expense"),
            ]
        }

    def accounts_by_code(self, code: str) -> dict:
        return next(a for a in self.accounts.values() if a["account_code"] == code)

    def touch(self, kind: str, record_id: str, **changes) -> dict:
        """Edit a record on the Zoho side (as a user there would): new last_modified_time."""
        with self.lock:
            store = self._store(kind)
            record = store[record_id]
            record.update(changes)
            record["last_modified_time"] = self.tick()
            return record

    def calls(self, path: str = "", method: str = "") -> list[Logged]:
        return [
            r
            for r in self.requests
            if r.path.startswith(path) and (not method or r.method == method)
        ]

    # --- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        query = {name: values[-1] for name, values in request.query.items()}
        logged = Logged(request.method, request.path, query, request.headers)
        with self.lock:
            self.requests.append(logged)
        status, headers, body = self._handle(
            request.method, request.path, query, request.headers, request.body, logged
        )
        logged.status = status
        content_type = headers.pop("Content-Type", "application/json;charset=UTF-8")
        if logged.dropped:
            return lost_reply(
                start_response,
                f"{status} OK",
                [("Content-Type", content_type), ("Content-Length", str(len(body)))],
                body,
            )
        return reply(start_response, status, body, content_type=content_type, headers=headers)

    def _handle(self, method, path, query, headers, raw, logged):
        if path == "/oauth/v2/token":
            return self._token(method, query, raw)
        if path == "/oauth/v2/auth":
            return self._authorize(query)
        if not path.startswith(API_PREFIX):
            return _json(404, {"code": 5, "message": "Invalid URL Passed"})
        sub = path[len(API_PREFIX) :] or "/"

        with self.lock:
            fault = next((f for f in self.faults if f.matches(method, sub, query)), None)
            if fault:
                fault.times -= 1
                fault.hits += 1
        if fault and fault.kind == "drop":
            logged.dropped = True  # processed below, then the reply is cut off
        elif fault:
            reply = self._fault_reply(fault)
            if reply:
                return reply

        auth = headers.get("authorization", "")
        token = auth.removeprefix("Zoho-oauthtoken ").strip()
        if not auth.startswith("Zoho-oauthtoken ") or token not in self.tokens.access:
            return _json(
                401, {"code": 57, "message": "You are not authorized to perform this operation"}
            )
        if query.get("organization_id") != self.organization_id:
            return _json(
                400, {"code": 6041, "message": "This user is not associated with the organization."}
            )
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return _json(400, {"code": 4, "message": "Invalid value passed for JSONString"})
            logged.body = body
        with self.lock:
            return self._route(method, sub, query, body)

    def _fault_reply(self, fault: Fault):
        if fault.kind == "401":
            return _json(
                401, {"code": 57, "message": "You are not authorized to perform this operation"}
            )
        if fault.kind == "429":
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return _json(
                429,
                {
                    "code": 45,
                    "message": "You have made too many requests continuously. "
                    "Please try again after some time.",
                },
                extra,
            )
        if fault.kind == "500":
            return _json(500, {"code": 1000, "message": "Internal error"})
        if fault.kind == "malformed":
            body = b'{"code": 0, "message": "success", "contacts": [{"contact_id": "46'
            return 200, {}, body
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return None  # then answer normally (the client has usually given up by now)
        raise ValueError(f"unknown fault kind {fault.kind!r}")

    # --- OAuth (accounts server) -------------------------------------------------------------
    def _authorize(self, query):
        code = "1000." + secrets.token_hex(12)
        with self.lock:
            self.tokens.codes.add(code)
        target = (
            query.get("redirect_uri", "")
            + "?"
            + urlencode(
                {
                    "code": code,
                    "state": query.get("state", ""),
                    "location": "in",
                    "accounts-server": self.server_url,
                }
            )
        )
        return 302, {"Location": target, "Content-Type": "text/plain"}, b""

    def _token(self, method, query, raw):
        # Zoho takes the parameters in the query string or as a form body.
        params = dict(query)
        params.update({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
        if method != "POST":
            return _json(405, {"error": "invalid_request"})
        if params.get("client_id") != CLIENT_ID or params.get("client_secret") != CLIENT_SECRET:
            return _json(200, {"error": "invalid_client"})
        grant = params.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                if params.get("code") not in self.tokens.codes:
                    return _json(200, {"error": "invalid_code"})
                self.tokens.codes.discard(params["code"])
                refresh = "1000." + secrets.token_hex(16)
                self.tokens.refresh.add(refresh)
                access = self.issue_access_token()
                return _json(
                    200,
                    {
                        "access_token": access,
                        "refresh_token": refresh,
                        "api_domain": self.server_url,
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    },
                )
            if grant == "refresh_token":
                if self.refresh_error or params.get("refresh_token") not in self.tokens.refresh:
                    # Zoho answers a revoked or unknown refresh token with HTTP 200 and an error.
                    return _json(200, {"error": self.refresh_error or "invalid_code"})
                self.tokens.refreshes += 1
                return _json(
                    200,
                    {
                        "access_token": self.issue_access_token(),
                        "api_domain": self.server_url,
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    },
                )
        return _json(200, {"error": "unsupported_grant_type"})

    # --- Books API ---------------------------------------------------------------------------
    def _store(self, kind: str) -> dict:
        if kind == "contacts":
            return self.contacts
        if kind == "chartofaccounts":
            return self.accounts
        return self.documents[kind]

    def _route(self, method, sub, query, body):
        parts = [p for p in sub.split("/") if p]
        if parts[:1] == ["organizations"]:
            return self._organization(parts)
        if not parts or parts[0] not in NOUNS:
            return _json(404, {"code": 5, "message": "Invalid URL Passed"})
        kind = parts[0]
        if len(parts) == 1 and method == "GET":
            return self._list(kind, query)
        if len(parts) == 2 and method == "GET":
            return self._get(kind, parts[1])
        if kind == "contacts" and len(parts) == 1 and method == "POST":
            return self._create_contact(body)
        if kind in DOCUMENTS and len(parts) == 1 and method == "POST":
            return self._save(kind, None, query, body)
        if kind in DOCUMENTS and len(parts) == 2 and method == "PUT":
            return self._save(kind, parts[1], query, body)
        return _json(405, {"code": 37, "message": "The HTTP method is not allowed"})

    def _organization(self, parts):
        org = {
            "organization_id": self.organization_id,
            "name": "Kontor Fake Org",
            "currency_code": "BDT",
            "time_zone": "Asia/Dhaka",
            "version": "global",
            "is_default_org": True,
        }
        if len(parts) == 1:
            return _json(200, {"code": 0, "message": "success", "organizations": [org]})
        if parts[1] != self.organization_id:
            return _json(404, {"code": 1002, "message": "Organization does not exist."})
        return _json(200, {"code": 0, "message": "success", "organization": org})

    def _list(self, kind, query):
        try:
            page = int(query.get("page", "1"))
            per_page = min(int(query.get("per_page", str(MAX_PER_PAGE))), MAX_PER_PAGE)
        except ValueError:
            return _json(400, {"code": 2, "message": "Invalid value passed for page"})
        records = list(self._store(kind).values())
        since = query.get("last_modified_time")
        if since:
            records = [r for r in records if _parse(r["last_modified_time"]) >= _parse(since)]
        for name, value in query.items():
            if name in _LIST_PARAMS:
                continue
            if name not in _SEARCH_PARAMS.get(kind, ()):
                # Only the documented searches of each list: a connector that filters by
                # anything else must not pass because the fake obliged.
                return _json(400, {"code": 2, "message": f"Invalid value passed for {name}"})
            records = [r for r in records if str(r.get(name, "")) == value]
        column = query.get("sort_column", "created_time")
        if column in ("created_time", "last_modified_time"):
            records.sort(
                key=lambda r: (_parse(r.get(column) or r["last_modified_time"]), r[_id_field(kind)])
            )
        chunk = records[(page - 1) * per_page : page * per_page]
        key = kind  # the list is named after its path: "contacts", "chartofaccounts", ...
        return _json(
            200,
            {
                "code": 0,
                "message": "success",
                key: chunk,
                "page_context": {
                    "page": page,
                    "per_page": per_page,
                    "has_more_page": page * per_page < len(records),
                    "sort_column": query.get("sort_column", "created_time"),
                    "sort_order": "A",
                },
            },
        )

    def _get(self, kind, record_id):
        record = self._store(kind).get(record_id)
        if record is None:
            return _json(404, {"code": 1002, "message": f"{NOUNS[kind]} does not exist."})
        key = (
            DOCUMENTS[kind][0]
            if kind in DOCUMENTS
            else {"contacts": "contact"}.get(kind, "account")
        )
        return _json(200, {"code": 0, "message": "success", key: record})

    def _create_contact(self, body):
        if not isinstance(body, dict) or not body.get("contact_name"):
            return _json(400, {"code": 4, "message": "Invalid value passed for contact_name"})
        if any(c["contact_name"] == body["contact_name"] for c in self.contacts.values()):
            return _json(
                400,
                {
                    "code": 3062,
                    "message": f'The contact "{body["contact_name"]}" already exists.',
                },
            )
        contact = self.add_contact(body.pop("contact_name"), **body)
        return _json(201, {"code": 0, "message": "The contact has been added.", "contact": contact})

    def _save(self, kind, record_id, query, body):
        key, id_field, number_field = DOCUMENTS[kind]
        store = self.documents[kind]
        if not isinstance(body, dict):
            return _json(400, {"code": 4, "message": "Invalid value passed for JSONString"})
        if record_id is not None and record_id not in store:
            return _json(404, {"code": 1002, "message": f"{NOUNS[kind]} does not exist."})
        problem = self._validate(kind, body)
        if problem:
            return _json(400, problem)
        number = body.get(number_field) or body.get("reference_number", "")
        if record_id is None and kind in ("invoices", "creditnotes"):
            if query.get("ignore_auto_number_generation") != "true":
                number = f"AUTO-{len(store) + 1:05d}"
            if any(r.get(number_field) == number for r in store.values()):
                return _json(
                    400,
                    {"code": 1001, "message": f'{NOUNS[kind]} "{number}" already exists.'},
                )
        record = dict(store.get(record_id, {}))
        record.update(body)
        record[id_field] = record_id or self.new_id()
        record[number_field] = number
        record["last_modified_time"] = self.tick()
        record.setdefault("created_time", record["last_modified_time"])
        if kind in ("invoices", "creditnotes"):
            record["total"] = float(
                sum(
                    Decimal(str(li.get("rate", 0))) * Decimal(str(li.get("quantity", 1)))
                    for li in body.get("line_items", [])
                )
            )
            record.setdefault("status", "draft")
        store[record[id_field]] = record
        verb = "updated" if record_id else "created"
        status = 200 if record_id else 201
        return _json(
            status,
            {"code": 0, "message": f"The {NOUNS[kind].lower()} has been {verb}.", key: record},
        )

    def _validate(self, kind, body) -> dict | None:
        needs_customer = kind in ("invoices", "creditnotes", "customerpayments")
        if needs_customer and body.get("customer_id") not in self.contacts:
            return {"code": 1002, "message": "Contact does not exist."}
        if kind == "customerpayments":
            for applied in body.get("invoices", []):
                if applied.get("invoice_id") not in self.documents["invoices"]:
                    return {"code": 1002, "message": "Invoice does not exist."}
        for line in body.get("line_items", []):
            if line.get("account_id") and line["account_id"] not in self.accounts:
                return {"code": 1002, "message": "Account does not exist."}
        if kind == "journals":
            debit = sum(
                Decimal(str(li["amount"]))
                for li in body.get("line_items", [])
                if li.get("debit_or_credit") == "debit"
            )
            credit = sum(
                Decimal(str(li["amount"]))
                for li in body.get("line_items", [])
                if li.get("debit_or_credit") == "credit"
            )
            if debit != credit or not debit:
                return {"code": 13011, "message": "The journal entry is not balanced."}
        return None


_LIST_PARAMS = {
    "organization_id",
    "page",
    "per_page",
    "sort_column",
    "sort_order",
    "last_modified_time",
    "filter_by",
}


# The searches Zoho Books documents for each list (exact match; this fake needs no more).
_SEARCH_PARAMS = {
    "contacts": ("contact_name", "email", "contact_type"),
    "chartofaccounts": ("account_type",),
    "invoices": ("invoice_number", "reference_number", "customer_id"),
    "creditnotes": ("creditnote_number", "reference_number", "customer_id"),
    "customerpayments": ("reference_number", "customer_id"),
    "journals": ("reference_number", "entry_number"),
}


def _id_field(kind: str) -> str:
    if kind == "contacts":
        return "contact_id"
    if kind == "chartofaccounts":
        return "account_id"
    return DOCUMENTS[kind][1]


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")


def _json(status: int, payload: dict, extra_headers: dict | None = None):
    return status, dict(extra_headers or {}), json.dumps(payload).encode()
