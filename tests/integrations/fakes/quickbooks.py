"""A fake QuickBooks Online (Accounting API v3) for the connector tests: real HTTP on loopback.

The wire format is Intuit's published one: `/v3/company/<realmId>/...` with `minorversion` on
every call (logged so a test can check it), `Authorization: Bearer <token>`, the query language
`GET .../query?query=SELECT * FROM Customer WHERE ... STARTPOSITION n MAXRESULTS m` answering
`{"QueryResponse": {"Customer": [...], "startPosition": n, "maxResults": k}, "time": ...}`,
create and update both as `POST .../<entity>` (an update carries `Id` and the current
`SyncToken`; a stale one answers Fault 5010 "Stale Object Error"), reads `GET .../<entity>/<id>`
(missing: Fault 610 "Object Not Found"), change data capture `GET .../cdc?entities=...&
changedSince=...` answering `{"CDCResponse": [{"QueryResponse": [{"Customer": [...]}, ...]}]}`
with deleted objects as `{"status": "Deleted", "Id": ...}`, Fault bodies
`{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}, "time"}` (and the
lower-case `{"fault": {"error": [...]}}` Intuit uses for authentication failures), and the
OAuth token endpoint `/oauth2/v1/tokens/bearer` (HTTP Basic client credentials) whose refresh
token rotates on every refresh: the previous one then answers 400 `invalid_grant`.

Failure switches (`fail`) answer chosen requests with 401, 429 (with or without `Retry-After`),
500, a slow reply or malformed JSON, a given number of times, optionally only for the query
page that starts at `start` (STARTPOSITION); kind "drop" processes the request (the record is
saved) and then cuts the reply off mid-body: the client never learns the outcome.

Writes honour `requestid` as Intuit documents it: a POST whose requestid was seen before is
answered with the original response and not performed again.

VAT: `add_tax_code(name, rate)` creates a TaxRate and the TaxCode that points at it. An invoice
line's `SalesItemLineDetail.TaxCodeRef` must name an existing TaxCode; the fake computes
`TxnTaxDetail.TotalTax` from the codes (per line, half up to the cent) and refuses a
`TxnTaxDetail.TotalTax` sent on an invoice whose lines carry no tax code.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qs, urlencode

from tests.integrations.fakes import Request, reply
from tests.integrations.fakes.tally import lost_reply

REALM_ID = "9130350000000001"
CLIENT_ID = "ABfakeQuickBooksClientId"
CLIENT_SECRET = "fake-qbo-client-secret"
REFRESH_TOKEN = "AB11fake-qbo-refresh-token-0"
PACIFIC = timezone(timedelta(hours=-8))
DEFAULT_MAX_RESULTS = 100
MAX_RESULTS = 1000

# resource path -> entity name as it appears in bodies and queries
ENTITIES = {
    "customer": "Customer",
    "account": "Account",
    "item": "Item",
    "invoice": "Invoice",
    "creditmemo": "CreditMemo",
    "payment": "Payment",
    "journalentry": "JournalEntry",
    "taxcode": "TaxCode",
    "taxrate": "TaxRate",
}

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<what>\*|COUNT\(\*\))\s+FROM\s+(?P<entity>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDERBY\s+(?P<order>[\w.]+)(?:\s+(?P<dir>ASC|DESC))?)?"
    r"(?:\s+STARTPOSITION\s+(?P<start>\d+))?"
    r"(?:\s+MAXRESULTS\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^\s*([\w.]+)\s*(>=|<=|=|>|<)\s*'((?:[^'\\]|\\.)*)'\s*$", re.DOTALL)


def qbo_time(moment: datetime) -> str:
    return moment.astimezone(PACIFIC).strftime("%Y-%m-%dT%H:%M:%S") + "-08:00"


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Fault:
    """One failure switch. `kind`: 401, 429, 500, slow, malformed. `path` matches the path after
    /v3/company/<realm> by prefix (e.g. "/query", "/invoice"); `start` one query page."""

    kind: str
    path: str = ""
    method: str = ""
    start: int | None = None
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, sub: str, query: dict) -> bool:
        if self.times <= 0:
            return False
        if self.method and method != self.method:
            return False
        if self.path and not sub.startswith(self.path):
            return False
        if self.start is not None:
            match = re.search(r"STARTPOSITION\s+(\d+)", query.get("query", ""), re.IGNORECASE)
            return int(match.group(1) if match else 1) == self.start
        return True


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
    refresh: str = REFRESH_TOKEN
    retired: set = field(default_factory=set)
    codes: set = field(default_factory=set)
    refreshes: int = 0


class FakeQuickBooks:
    """The WSGI app: API, token endpoint and authorisation redirect on one port."""

    def __init__(self, *, realm_id: str = REALM_ID):
        self.realm_id = realm_id
        self.lock = threading.RLock()
        self.store: dict[str, dict[str, dict]] = {name: {} for name in ENTITIES.values()}
        self.deleted: dict[str, dict[str, dict]] = {name: {} for name in ENTITIES.values()}
        self.requests: list[Logged] = []
        self.faults: list[Fault] = []
        self.tokens = _Tokens()
        self.answers_by_request_id: dict[str, tuple] = {}
        self._next_id = 0
        self._clock = datetime(2026, 1, 5, 9, 0, 0, tzinfo=PACIFIC)
        self.add("Item", {"Name": "Services", "Type": "Service", "Active": True})

    # --- setup helpers for tests -------------------------------------------------------------
    def issue_access_token(self) -> str:
        token = "eyJfake." + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.access.add(token)
        return token

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.tokens.access.clear()

    def revoke_refresh_token(self) -> None:
        with self.lock:
            self.tokens.retired.add(self.tokens.refresh)
            self.tokens.refresh = ""

    def fail(self, kind, **options) -> Fault:
        fault = Fault(kind=str(kind), **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def now(self) -> datetime:
        return self._clock

    def tick(self, seconds: int = 1) -> str:
        self._clock += timedelta(seconds=seconds)
        return qbo_time(self._clock)

    def add(self, entity: str, fields: dict) -> dict:
        """Create an object as QuickBooks would (Id, SyncToken "0", MetaData)."""
        with self.lock:
            self._next_id += 1
            stamp = self.tick()
            record = {
                **fields,
                "Id": str(self._next_id),
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
                "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
            }
            self.store[entity][record["Id"]] = record
            return record

    def add_customer(self, name: str, **fields) -> dict:
        return self.add(
            "Customer", {"DisplayName": name, "CompanyName": name, "Active": True, **fields}
        )

    def add_customers(self, count: int, *, prefix: str = "Customer") -> list[dict]:
        return [
            self.add_customer(
                f"{prefix} {n:05d}",
                PrimaryEmailAddr={"Address": f"{prefix.lower()}{n}@example.com"},
                PrimaryPhone={"FreeFormNumber": f"+880171{n:07d}"},
            )
            for n in range(1, count + 1)
        ]

    def add_account(self, number: str, name: str, account_type: str, **fields) -> dict:
        return self.add(
            "Account",
            {
                "Name": name,
                "AcctNum": number,
                "AccountType": account_type,
                "Active": True,
                "SubAccount": False,
                "FullyQualifiedName": name,
                **fields,
            },
        )

    def seed_chart(self) -> dict[str, dict]:
        return {
            row[0]: self.add_account(*row)
            for row in [
                ("1100", "Checking", "Bank"),
                ("1200", "Accounts Receivable (A/R)", "Accounts Receivable"),
                ("2100", "VAT Payable", "Other Current Liability"),
                ("3000", "Owner's Equity", "Equity"),
                ("4000", "Sales", "Income"),
                ("5000", "Office Supplies", "Expense"),
            ]
        }

    def edit(self, entity: str, object_id: str, **changes) -> dict:
        """Change an object on the QuickBooks side: SyncToken + 1, new LastUpdatedTime."""
        with self.lock:
            record = self.store[entity][object_id]
            record.update(changes)
            record["SyncToken"] = str(int(record["SyncToken"]) + 1)
            record["MetaData"] = {**record["MetaData"], "LastUpdatedTime": self.tick()}
            return record

    def remove(self, entity: str, object_id: str) -> None:
        with self.lock:
            record = self.store[entity].pop(object_id)
            self.deleted[entity][object_id] = {
                "domain": "QBO",
                "status": "Deleted",
                "Id": record["Id"],
                "MetaData": {"LastUpdatedTime": self.tick()},
            }

    def calls(self, path: str = "", method: str = "") -> list[Logged]:
        prefix = f"/v3/company/{self.realm_id}{path}"
        return [
            r
            for r in self.requests
            if r.path.startswith(prefix) and (not method or r.method == method)
        ]

    # --- WSGI --------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        query = {name: values[-1] for name, values in request.query.items()}
        logged = Logged(request.method, request.path, query, request.headers)
        with self.lock:
            self.requests.append(logged)
        status, headers, body = self._handle(request, query, logged)
        logged.status = status
        content_type = headers.pop("Content-Type", "application/json;charset=UTF-8")
        if logged.dropped:
            data = body if isinstance(body, bytes) else str(body).encode()
            return lost_reply(
                start_response,
                f"{status} OK",
                [("Content-Type", content_type), ("Content-Length", str(len(data)))],
                data,
            )
        return reply(start_response, status, body, content_type=content_type, headers=headers)

    def add_tax_code(self, name: str, rate) -> dict:
        """A TaxRate of `rate` percent and the TaxCode named `name` that applies it on sales
        (ids of their own, off the shared clock and id sequence, so seeding tax codes does not
        shift the other records' ids and stamps)."""
        with self.lock:
            number = len(self.store["TaxCode"]) + 1
            meta = {"CreateTime": qbo_time(self._clock), "LastUpdatedTime": qbo_time(self._clock)}
            tax_rate = {
                "Id": f"TR{number}",
                "Name": name,
                "RateValue": str(rate),
                "Active": True,
                "SyncToken": "0",
                "MetaData": meta,
            }
            code = {
                "Id": f"TC{number}",
                "Name": name,
                "Active": True,
                "Taxable": True,
                "SalesTaxRateList": {
                    "TaxRateDetail": [{"TaxRateRef": {"value": tax_rate["Id"], "name": name}}]
                },
                "SyncToken": "0",
                "MetaData": meta,
            }
            self.store["TaxRate"][tax_rate["Id"]] = tax_rate
            self.store["TaxCode"][code["Id"]] = code
            return code

    def _tax_rate(self, code_id: str) -> Decimal | None:
        code = self.store["TaxCode"].get(str(code_id))
        if code is None:
            return None
        details = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
        return sum(
            (
                Decimal(self.store["TaxRate"][d["TaxRateRef"]["value"]]["RateValue"])
                for d in details
            ),
            Decimal(0),
        )

    def _handle(self, request: Request, query: dict, logged: Logged):
        if request.path == "/oauth2/v1/tokens/bearer":
            return self._token(request)
        if request.path == "/connect/oauth2":
            return self._authorize(query)
        prefix = f"/v3/company/{self.realm_id}"
        if not request.path.startswith(prefix + "/"):
            return self._fault(
                403,
                "3100",
                "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                "",
                "SERVICE",
            )
        sub = request.path[len(prefix) :]

        with self.lock:
            fault = next((f for f in self.faults if f.matches(request.method, sub, query)), None)
            if fault:
                fault.times -= 1
                fault.hits += 1
        if fault and fault.kind == "drop":
            logged.dropped = True
        elif fault:
            answer = self._fault_reply(fault)
            if answer:
                return answer

        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens.access:
            return self._auth_fault()
        body = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                return self._fault(
                    400,
                    "2020",
                    "Required param missing, need to supply the required value",
                    "Request body is not valid JSON",
                    "ValidationFault",
                )
            logged.body = body
        request_id = query.get("requestid") if request.method == "POST" else None
        with self.lock:
            if request_id and request_id in self.answers_by_request_id:
                return self.answers_by_request_id[request_id]
            answer = self._route(request.method, sub, query, body)
            if request_id:
                self.answers_by_request_id[request_id] = answer
            return answer

    def _fault_reply(self, fault: Fault):
        if fault.kind == "401":
            return self._auth_fault()
        if fault.kind == "429":
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            status, headers, body = self._fault(
                429,
                "3001",
                "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                "The request limit was reached.",
                "SERVICE",
            )
            return status, {**headers, **extra}, body
        if fault.kind == "500":
            return self._fault(
                500,
                "10000",
                "An application error has occurred while processing your request",
                "System Failure Error: An unexpected error occurred while accessing or saving "
                "your data. Please wait a few minutes and try again.",
                "SystemFault",
            )
        if fault.kind == "malformed":
            return 200, {}, b'{"QueryResponse": {"Customer": [{"Id": "1", "DisplayName": '
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return None
        raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _stamp(self) -> str:
        # The reply's "time" on the fake clock, so a CDC cursor taken from it lines up with
        # the LastUpdatedTime of later edits.
        # Half a second after the last change, as a real server answers after it happened.
        return (self._clock + timedelta(milliseconds=500)).isoformat(timespec="milliseconds")

    def _fault(self, status, code, message, detail, fault_type):
        payload = {
            "Fault": {
                "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
                "type": fault_type,
            },
            "time": self._stamp(),
        }
        return status, {}, json.dumps(payload).encode()

    def _auth_fault(self):
        # Intuit answers authentication failures in lower-case keys.
        payload = {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "error": [
                    {
                        "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "detail": "Token expired: the access token has expired",
                        "code": "3200",
                        "element": None,
                    }
                ],
                "type": "AUTHENTICATION",
            },
            "time": int(time.time() * 1000),
        }
        return 401, {"WWW-Authenticate": 'Bearer realm="Intuit"'}, json.dumps(payload).encode()

    def _ok(self, payload: dict):
        return 200, {}, json.dumps({**payload, "time": self._stamp()}).encode()

    # --- OAuth -------------------------------------------------------------------------------
    def _authorize(self, query):
        code = "AB11" + secrets.token_hex(12)
        with self.lock:
            self.tokens.codes.add(code)
        target = (
            query.get("redirect_uri", "")
            + "?"
            + urlencode({"code": code, "state": query.get("state", ""), "realmId": self.realm_id})
        )
        return 302, {"Location": target, "Content-Type": "text/plain"}, b""

    def _token(self, request: Request):
        def error(name: str, status: int = 400):
            return status, {}, json.dumps({"error": name}).encode()

        if request.method != "POST":
            return error("invalid_request")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization", "") != f"Basic {expected}":
            return error("invalid_client", 401)
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                if form.get("code") not in self.tokens.codes:
                    return error("invalid_grant")
                self.tokens.codes.discard(form["code"])
            elif form.get("grant_type") == "refresh_token":
                if not self.tokens.refresh or form.get("refresh_token") != self.tokens.refresh:
                    return error("invalid_grant")
                self.tokens.refreshes += 1
            else:
                return error("unsupported_grant_type")
            # A new refresh token on every grant; the previous one stops working.
            self.tokens.retired.add(self.tokens.refresh)
            self.tokens.refresh = f"AB11fake-qbo-refresh-token-{self.tokens.refreshes}-" + (
                secrets.token_hex(6)
            )
            payload = {
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": self.tokens.refresh,
                "x_refresh_token_expires_in": 8726400,
                "access_token": self.issue_access_token(),
            }
        return 200, {}, json.dumps(payload).encode()

    # --- API ---------------------------------------------------------------------------------
    def _route(self, method, sub, query, body):
        parts = [p for p in sub.split("/") if p]
        if parts == ["query"] and method in ("GET", "POST"):
            return self._query(query.get("query") or (body if isinstance(body, str) else ""))
        if parts == ["cdc"] and method == "GET":
            return self._cdc(query)
        if parts[:1] == ["companyinfo"] and method == "GET":
            return self._ok(
                {
                    "CompanyInfo": {
                        "Id": "1",
                        "CompanyName": "Kontor Fake Company",
                        "Country": "US",
                        "SyncToken": "0",
                    }
                }
            )
        entity = ENTITIES.get(parts[0].lower()) if parts else None
        if entity is None:
            return self._fault(
                400, "4000", "Error parsing query", f"Unsupported resource {sub}", "ValidationFault"
            )
        if method == "GET" and len(parts) == 2:
            record = self.store[entity].get(parts[1])
            return self._ok({entity: record}) if record else self._not_found()
        if method == "POST" and len(parts) == 1:
            if query.get("operation") == "delete":
                return self._delete(entity, body or {})
            return self._save(entity, body or {})
        return self._fault(405, "4000", "Method not allowed", sub, "ValidationFault")

    def _not_found(self):
        return self._fault(
            400,
            "610",
            "Object Not Found",
            "Object Not Found : Something you're trying to use has been made inactive. Check the "
            "fields with accounts, customers, items, vendors or employees.",
            "ValidationFault",
        )

    def _query(self, text: str):
        match = _QUERY.match(text or "")
        if not match or match.group("entity") not in self.store:
            return self._fault(
                400,
                "4000",
                "Error parsing query",
                f"QueryParserError: Encountered an unexpected token in {text!r}",
                "ValidationFault",
            )
        entity = match.group("entity")
        rows = list(self.store[entity].values())
        if match.group("where"):
            for condition in re.split(r"\s+AND\s+", match.group("where"), flags=re.IGNORECASE):
                parsed = _CONDITION.match(condition)
                if not parsed:
                    return self._fault(
                        400,
                        "4000",
                        "Error parsing query",
                        f"QueryParserError: bad condition {condition!r}",
                        "ValidationFault",
                    )
                rows = [r for r in rows if _compare(r, *parsed.groups())]
        if match.group("what").upper() != "*":
            return self._ok({"QueryResponse": {"totalCount": len(rows)}})
        order = match.group("order") or "Id"
        rows.sort(
            key=lambda r: _sort_key(r, order), reverse=(match.group("dir") or "").upper() == "DESC"
        )
        start = int(match.group("start") or 1)
        limit = min(int(match.group("max") or DEFAULT_MAX_RESULTS), MAX_RESULTS)
        chunk = rows[start - 1 : start - 1 + limit]
        if not chunk:
            return self._ok({"QueryResponse": {}})
        return self._ok(
            {"QueryResponse": {entity: chunk, "startPosition": start, "maxResults": len(chunk)}}
        )

    def _cdc(self, query):
        names = [n.strip() for n in query.get("entities", "").split(",") if n.strip()]
        since_text = query.get("changedSince", "")
        try:
            since = _parse_time(since_text)
        except ValueError:
            return self._fault(
                400,
                "2010",
                "Request has invalid or unsupported property",
                f"changedSince {since_text!r}",
                "ValidationFault",
            )
        lookup = {name.lower(): name for name in self.store}
        groups = []
        for name in names:
            entity = lookup.get(name.lower())
            if entity is None:
                return self._fault(
                    400,
                    "2010",
                    "Request has invalid or unsupported property",
                    f"entities {name!r}",
                    "ValidationFault",
                )
            live = [
                r
                for r in self.store[entity].values()
                if _parse_time(r["MetaData"]["LastUpdatedTime"]) >= since
            ]
            live.sort(key=lambda r: r["MetaData"]["LastUpdatedTime"])
            gone = [
                r
                for r in self.deleted[entity].values()
                if _parse_time(r["MetaData"]["LastUpdatedTime"]) >= since
            ]
            objects = (live + gone)[:1000]
            group = {"startPosition": 1, "maxResults": len(objects), "totalCount": len(objects)}
            if objects:
                group[entity] = objects
            groups.append(group)
        return self._ok({"CDCResponse": [{"QueryResponse": groups}]})

    def _delete(self, entity, body):
        record = self.store[entity].get(str(body.get("Id", "")))
        if record is None:
            return self._not_found()
        if str(body.get("SyncToken")) != record["SyncToken"]:
            return self._stale()
        self.remove(entity, record["Id"])
        return self._ok({entity: {"domain": "QBO", "status": "Deleted", "Id": record["Id"]}})

    def _stale(self):
        return self._fault(
            400,
            "5010",
            "Stale Object Error",
            "Stale Object Error : You and another user were working on the same thing. "
            "The other user has already updated it.",
            "ValidationFault",
        )

    def _save(self, entity, body):
        problem = self._validate(entity, body)
        if problem:
            return problem
        object_id = body.get("Id")
        if object_id:
            record = self.store[entity].get(str(object_id))
            if record is None:
                return self._not_found()
            if str(body.get("SyncToken")) != record["SyncToken"]:
                return self._stale()
            if body.get("sparse"):
                updated = {**record, **body}
            else:
                keep = {k: record[k] for k in ("Id", "domain", "MetaData")}
                updated = {**body, **keep}
            updated["SyncToken"] = str(int(record["SyncToken"]) + 1)
            updated["sparse"] = False
            updated["MetaData"] = {**record["MetaData"], "LastUpdatedTime": self.tick()}
            self._totals(entity, updated)
            self.store[entity][record["Id"]] = updated
            return self._ok({entity: updated})
        duplicate = self._duplicate(entity, body)
        if duplicate:
            return duplicate
        fields = dict(body)
        self._totals(entity, fields)
        return self._ok({entity: self.add(entity, fields)})

    def _duplicate(self, entity, body):
        if entity == "Customer":
            name = body.get("DisplayName", "")
            if any(r.get("DisplayName") == name for r in self.store[entity].values()):
                return self._fault(
                    400,
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : {name}",
                    "ValidationFault",
                )
        if entity in ("Invoice", "CreditMemo", "JournalEntry") and body.get("DocNumber"):
            number = body["DocNumber"]
            if any(r.get("DocNumber") == number for r in self.store[entity].values()):
                return self._fault(
                    400,
                    "6140",
                    "Duplicate Document Number Error",
                    f"Duplicate Document Number Error : You must specify a different number. "
                    f"This number has already been used. DocNumber={number}",
                    "ValidationFault",
                )
        return None

    def _validate(self, entity, body):
        def invalid_ref(what):
            return self._fault(
                400,
                "2500",
                "Invalid Reference Id",
                f"Invalid Reference Id : {what} assigned to this transaction has been deleted or "
                "does not exist.",
                "ValidationFault",
            )

        customer = str((body.get("CustomerRef") or {}).get("value"))
        if (
            entity in ("Invoice", "CreditMemo", "Payment")
            and customer not in self.store["Customer"]
        ):
            return invalid_ref("Customer")
        for line in body.get("Line", []):
            detail = line.get("SalesItemLineDetail") or {}
            if (
                "ItemRef" in detail
                and str(detail["ItemRef"].get("value")) not in self.store["Item"]
            ):
                return invalid_ref("Item")
            journal = line.get("JournalEntryLineDetail") or {}
            if (
                journal
                and str((journal.get("AccountRef") or {}).get("value")) not in self.store["Account"]
            ):
                return invalid_ref("Account")
            tax_code = detail.get("TaxCodeRef")
            if tax_code is not None and str(tax_code.get("value")) not in self.store["TaxCode"]:
                return invalid_ref("TaxCode")
            for linked in line.get("LinkedTxn", []):
                if str(linked.get("TxnId")) not in self.store.get(linked.get("TxnType"), {}):
                    return invalid_ref(linked.get("TxnType", "Transaction"))
        coded = any(
            "TaxCodeRef" in (line.get("SalesItemLineDetail") or {}) for line in body.get("Line", [])
        )
        if (
            entity in ("Invoice", "CreditMemo")
            and "TotalTax" in (body.get("TxnTaxDetail") or {})
            and not coded
        ):
            return self._fault(
                400,
                "6000",
                "A business validation error has occurred while processing your request",
                "Business Validation Error: Make sure all your transactions have a GST/VAT rate "
                "before you save (TotalTax was sent without a tax code on any line).",
                "ValidationFault",
            )
        if entity == "JournalEntry":
            sides = {"Debit": Decimal(0), "Credit": Decimal(0)}
            for line in body.get("Line", []):
                posting = line["JournalEntryLineDetail"]["PostingType"]
                sides[posting] += Decimal(str(line["Amount"]))
            if sides["Debit"] != sides["Credit"]:
                return self._fault(
                    400,
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: Journal Entry must be balanced.",
                    "ValidationFault",
                )
        return None

    def _totals(self, entity, record):
        if entity in ("Invoice", "CreditMemo"):
            total = sum(
                Decimal(str(line.get("Amount", 0)))
                for line in record.get("Line", [])
                if line.get("DetailType") == "SalesItemLineDetail"
            )
            tax = Decimal(0)
            for line in record.get("Line", []):
                code = (line.get("SalesItemLineDetail") or {}).get("TaxCodeRef")
                if code:
                    rate = self._tax_rate(code["value"]) or Decimal(0)
                    amount = Decimal(str(line.get("Amount", 0)))
                    tax += (amount * rate / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
            record["TxnTaxDetail"] = {"TotalTax": float(tax)}
            record["TotalAmt"] = float(total + tax)
            record["Balance"] = record["TotalAmt"]


def _value(record: dict, path: str):
    value = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _compare(record: dict, path: str, op: str, literal: str) -> bool:
    literal = literal.replace("\\'", "'")
    value = _value(record, path)
    if value is None:
        return False
    if path.endswith("Time"):
        left, right = _parse_time(value), _parse_time(literal)
    elif path == "Id":
        left, right = int(value), int(literal)
    elif isinstance(value, bool):
        left, right = value, literal.lower() == "true"
    else:
        left, right = str(value), literal
    return {
        "=": left == right,
        ">=": left >= right,
        "<=": left <= right,
        ">": left > right,
        "<": left < right,
    }[op]


def _sort_key(record: dict, path: str):
    value = _value(record, path)
    if path == "Id":
        return int(value)
    return str(value or "")
