"""A fake Xero on loopback: the Accounting API 2.0 (`/api.xro/2.0/...`), the tenant list
(`/connections`) and the identity server's token endpoint (`/connect/token`) in one WSGI app,
with an in-memory store and switches for the failures a real Xero produces.

Wire format as Xero publishes it: JSON bodies keyed by the plural entity name (`{"Contacts":
[...]}`), `UpdatedDateUTC` as `/Date(<ms>+0000)/`, `page` paging of 100 contacts a page,
`If-Modified-Since` filtering, `xero-tenant-id` required on every API call, the rate-limit
headers `X-MinLimit-Remaining` / `X-DayLimit-Remaining` / `X-AppMinLimit-Remaining` on every
reply, 429 with `Retry-After` and `X-Rate-Limit-Problem`, 400 `ValidationException` with
`Elements[].ValidationErrors[].Message`, 401 problem details `TokenExpired: ...`, 403
`AuthenticationUnsuccessful` for a wrong tenant, 404 for an unknown id, and refresh tokens that
are single-use and rotate on every refresh (reusing an old one answers `invalid_grant`).

Writes (PUT/POST) honour `Idempotency-Key`: a repeated key is answered with the first reply and
not performed again. Failure kind "drop" processes the request and cuts its reply off mid-body
(saved, reply lost). Lists take `order=<Field> [ASC|DESC]`; contacts without it come in Name
order (not stable while names change), as a reminder that paging needs an explicit order.
Invoice and credit-note lines are checked as Xero checks them: UnitAmount is rounded to 2 places
unless `unitdp=4` is given (then 4), `round(Quantity x UnitAmount, 2)` (half up) must equal a
LineAmount that is sent, a line's TaxType must be one the organisation has (`tax_rates`: OUTPUT
15%, ZERORATEDOUTPUT and NONE 0%), a line without one takes its account's TaxType, and a
non-zero TaxAmount under a 0% TaxType is refused.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from tests.integrations.fakes import Request, reply
from tests.integrations.fakes.tally import lost_reply

API = "/api.xro/2.0"
_WHERE = re.compile(r'(\w+)\s*==\s*"((?:[^"\\]|\\.)*)"')
PAGE_SIZE = 100

_COLLECTIONS = {
    "Contacts": ("contacts", "ContactID"),
    "Accounts": ("accounts", "AccountID"),
    "Invoices": ("invoices", "InvoiceID"),
    "CreditNotes": ("credit_notes", "CreditNoteID"),
    "Payments": ("payments", "PaymentID"),
    "ManualJournals": ("journals", "ManualJournalID"),
}


def xero_date(moment: datetime) -> str:
    """Xero's JSON date: milliseconds since the epoch in the .NET `/Date(...)/` form."""
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def webhook_signature(key: str, body: bytes) -> str:
    """What Xero puts in `x-xero-signature`: base64 of HMAC-SHA256(webhook key, raw body)."""
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Failure:
    """One planned failure: `kind` is 401, 429, 500, 503, "timeout" or "malformed"; `path`
    limits it to requests whose path contains that text; `page` to one page of a paged list."""

    kind: object
    times: int = 1
    path: str = ""
    page: int | None = None
    retry_after: int | None = None
    delay: float = 0.0


@dataclass
class FakeXero:
    client_id: str = "xero-client-id"
    client_secret: str = "xero-client-secret"
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tenant_name: str = "Kontor Demo (BD)"
    access_token_ttl: int = 1800
    min_limit: int = 60
    day_limit: int = 5000

    def __post_init__(self):
        self.lock = threading.RLock()
        self.contacts: dict[str, dict] = {}
        self.accounts: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.credit_notes: dict[str, dict] = {}
        self.payments: dict[str, dict] = {}
        self.journals: dict[str, dict] = {}
        self.access_tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.refresh_token = ""
        self.used_refresh_tokens: set[str] = set()
        self.auth_codes: set[str] = set()
        self.failures: list[Failure] = []
        self.requests: list[dict] = []
        self.token_requests = 0
        self.min_remaining = self.min_limit
        self.day_remaining = self.day_limit
        self._minute = int(time.time() // 60)
        self._last_ms = 0
        self.answers_by_key: dict[str, tuple] = {}
        self.tax_rates = {"OUTPUT": Decimal(15), "ZERORATEDOUTPUT": Decimal(0), "NONE": Decimal(0)}

    # ----------------------------------------------------------------- test-side helpers
    def issue_tokens(self) -> dict:
        """Tokens as after the user consented: {"access_token", "refresh_token", "expires_in"}."""
        with self.lock:
            return self._new_token_pair()

    def issue_auth_code(self) -> str:
        code = uuid.uuid4().hex
        self.auth_codes.add(code)
        return code

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0

    def fail(self, kind, *, times=1, path="", page=None, retry_after=None, delay=0.0) -> None:
        with self.lock:
            self.failures.append(Failure(kind, times, path, page, retry_after, delay))

    def add_contact(self, name: str, **fields) -> dict:
        contact = {
            "ContactID": fields.pop("ContactID", str(uuid.uuid4())),
            "ContactStatus": "ACTIVE",
            "Name": name,
            "EmailAddress": fields.pop("EmailAddress", ""),
            "TaxNumber": fields.pop("TaxNumber", ""),
            "IsCustomer": fields.pop("IsCustomer", True),
            "IsSupplier": fields.pop("IsSupplier", False),
            "Phones": [
                {"PhoneType": "DEFAULT", "PhoneNumber": fields.pop("phone", "")},
            ],
            "Addresses": [
                {"AddressType": "POBOX", "AddressLine1": fields.pop("address", ""), "City": ""},
            ],
            **fields,
        }
        with self.lock:
            contact["UpdatedDateUTC"] = self._stamp()
            self.contacts[contact["ContactID"]] = contact
        return contact

    def update_contact(self, contact_id: str, **fields) -> dict:
        with self.lock:
            contact = self.contacts[contact_id]
            contact.update(fields)
            contact["UpdatedDateUTC"] = self._stamp()
            return contact

    def add_account(self, code: str, name: str, type_: str = "REVENUE", **fields) -> dict:
        account = {
            "AccountID": str(uuid.uuid4()),
            "Code": code,
            "Name": name,
            "Type": type_,
            "Status": "ACTIVE",
            "Class": fields.pop("Class", "REVENUE"),
            # Xero's default tax rate of the account, used by a line that names none.
            "TaxType": fields.pop("TaxType", "OUTPUT" if type_ == "REVENUE" else "NONE"),
            **fields,
        }
        with self.lock:
            account["UpdatedDateUTC"] = self._stamp()
            self.accounts[account["AccountID"]] = account
        return account

    def touch(self, collection: str, object_id: str, **fields) -> dict:
        """Someone edits the record in Xero: new fields and a new UpdatedDateUTC."""
        with self.lock:
            row = getattr(self, collection)[object_id]
            row.update(fields)
            row["UpdatedDateUTC"] = self._stamp()
            return row

    def api_requests(self, path_part: str = "") -> list[dict]:
        return [r for r in self.requests if r["path"].startswith(API) and path_part in r["path"]]

    # ----------------------------------------------------------------- WSGI
    def __call__(self, environ, start_response):
        request = Request.from_environ(environ)
        query = {name: values[0] for name, values in request.query.items()}
        with self.lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": query,
                    "headers": request.headers,
                    "body": request.body,
                }
            )
        status, headers, payload = self._handle(
            request.method, request.path, query, request.headers, request.body
        )
        content_type = headers.pop("Content-Type", "text/plain; charset=utf-8")
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
            content_type = "application/json; charset=utf-8"
        if headers.pop("X-Fake-Drop", None):
            data = payload.encode() if isinstance(payload, str) else payload
            return lost_reply(
                start_response,
                f"{status} OK",
                [("Content-Type", content_type), ("Content-Length", str(len(data)))],
                data,
            )
        return reply(start_response, status, payload, content_type=content_type, headers=headers)

    def _handle(self, method, path, query, headers, body):
        if path == "/connect/token" and method == "POST":
            return self._token(headers, body)
        if path == "/connections":
            denied = self._check_token(headers)
            if denied:
                return denied
            return 200, {}, self._connections()
        if not path.startswith(API):
            return 404, {}, "The resource you're looking for cannot be found"
        failure = self._take_failure(path, query)
        drop = failure is not None and failure.kind == "drop"
        if failure is not None and not drop:
            reply = self._fail(failure)
            if reply is not None:
                return reply
        denied = self._check_token(headers)
        if denied:
            return denied
        if headers.get("xero-tenant-id") != self.tenant_id:
            return 403, {}, _problem(403, "Forbidden", "AuthenticationUnsuccessful")
        limited = self._count_call()
        if limited:
            return limited
        key = headers.get("idempotency-key") if method in ("PUT", "POST") else None
        with self.lock:
            if key and key in self.answers_by_key:
                status, payload = self.answers_by_key[key]
            else:
                status, payload = self._api(
                    method, path[len(API) :].strip("/"), query, headers, body
                )
                if key:
                    self.answers_by_key[key] = (status, payload)
        extra = {"X-Fake-Drop": "1"} if drop else {}
        return status, {**self._limit_headers(), **extra}, payload

    # ----------------------------------------------------------------- identity server
    def _token(self, headers, body):
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self.lock:
            self.token_requests += 1
            if not self._client_ok(headers, form):
                return 400, {}, {"error": "invalid_client"}
            grant = form.get("grant_type")
            if grant == "authorization_code":
                if form.get("code") not in self.auth_codes:
                    return 400, {}, {"error": "invalid_grant"}
                self.auth_codes.discard(form["code"])
                return 200, {}, self._new_token_pair()
            if grant == "refresh_token":
                token = form.get("refresh_token", "")
                if token != self.refresh_token or token in self.used_refresh_tokens:
                    return 400, {}, {"error": "invalid_grant"}
                self.used_refresh_tokens.add(token)
                return 200, {}, self._new_token_pair()
            return 400, {}, {"error": "unsupported_grant_type"}

    def _client_ok(self, headers, form) -> bool:
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id == self.client_id and secret == self.client_secret

    def _new_token_pair(self) -> dict:
        access, refresh = f"xat-{uuid.uuid4().hex}", f"xrt-{uuid.uuid4().hex}"
        self.access_tokens[access] = time.time() + self.access_token_ttl
        self.refresh_token = refresh
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.access_token_ttl,
            "token_type": "Bearer",
            "scope": "offline_access accounting.transactions accounting.contacts "
            "accounting.settings",
        }

    def _check_token(self, headers):
        token = headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            expiry = self.access_tokens.get(token)
        if expiry is None:
            return 401, {}, _problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if expiry < time.time():
            stamp = datetime.fromtimestamp(expiry or time.time(), UTC).strftime("%m/%d/%Y %H:%M:%S")
            return 401, {}, _problem(401, "Unauthorized", f"TokenExpired: token expired at {stamp}")
        return None

    def _connections(self):
        return [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.tenant_id)),
                "authEventId": str(uuid.uuid4()),
                "tenantId": self.tenant_id,
                "tenantType": "ORGANISATION",
                "tenantName": self.tenant_name,
                "createdDateUtc": "2026-01-05T08:00:00.0000000",
                "updatedDateUtc": "2026-01-05T08:00:00.0000000",
            }
        ]

    # ----------------------------------------------------------------- failures and limits
    def _take_failure(self, path, query):
        with self.lock:
            for failure in self.failures:
                if failure.times <= 0 or failure.path not in path:
                    continue
                if failure.page is not None and str(failure.page) != query.get("page", "1"):
                    continue
                failure.times -= 1
                return failure
        return None

    def _fail(self, failure: Failure):
        kind = failure.kind
        if kind == 401:
            self.expire_access_tokens()
            return None  # the token check below answers TokenExpired
        if kind == "timeout":
            time.sleep(failure.delay or 2.0)
            return 200, self._limit_headers(), {"Status": "OK"}
        if kind == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"Id": "1", "Contacts": [{"Cont'
        if kind == 429:
            headers = {"X-Rate-Limit-Problem": "minute", **self._limit_headers()}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            return 429, headers, ""
        return int(kind), {}, {"Title": "An error occurred", "Status": int(kind), "Detail": ""}

    def _count_call(self):
        with self.lock:
            minute = int(time.time() // 60)
            if minute != self._minute:
                self._minute, self.min_remaining = minute, self.min_limit
            if self.min_remaining <= 0 or self.day_remaining <= 0:
                problem = "minute" if self.min_remaining <= 0 else "day"
                return (
                    429,
                    {"Retry-After": "60", "X-Rate-Limit-Problem": problem, **self._limit_headers()},
                    "",
                )
            self.min_remaining -= 1
            self.day_remaining -= 1
        return None

    def _limit_headers(self) -> dict:
        return {
            "X-MinLimit-Remaining": str(max(self.min_remaining, 0)),
            "X-DayLimit-Remaining": str(max(self.day_remaining, 0)),
            "X-AppMinLimit-Remaining": "9999",
        }

    # ----------------------------------------------------------------- Accounting API
    def _api(self, method, route, query, headers, body):
        name, _, object_id = route.partition("/")
        if name == "Organisation" and method == "GET":
            return 200, _envelope(
                "Organisations",
                [{"OrganisationID": self.tenant_id, "Name": self.tenant_name, "Version": "GLOBAL"}],
            )
        if name not in _COLLECTIONS:
            return 404, "The resource you're looking for cannot be found"
        attr, id_field = _COLLECTIONS[name]
        store = getattr(self, attr)
        if method == "GET":
            if object_id:
                row = store.get(object_id)
                if row is None:
                    return 404, "The resource you're looking for cannot be found"
                return 200, _envelope(name, [row])
            return 200, _envelope(name, self._listing(name, store, query, headers))
        if method in ("POST", "PUT"):
            try:
                items = json.loads(body or b"{}")[name]
            except (ValueError, KeyError, TypeError):
                return 400, _validation([{"ValidationErrors": [{"Message": "Invalid JSON"}]}])
            if object_id:
                items = [{**items[0], id_field: object_id}]
            saved, errors = [], []
            exact = json.loads(body or b"{}", parse_float=Decimal)[name]
            if object_id:
                exact = [{**exact[0], id_field: object_id}]
            with self.lock:
                for item, exact_item in zip(items, exact, strict=True):
                    problems = self._validate(name, item, store, id_field, method)
                    problems += self._check_lines(name, exact_item, query)
                    if problems:
                        errors.append({**item, "ValidationErrors": problems})
                        continue
                    saved.append(self._save(store, id_field, item))
            if errors:
                return 400, _validation(errors)
            return 200, _envelope(name, saved)
        return 405, ""

    def _listing(self, name, store, query, headers):
        order = query.get("order", "")
        with self.lock:
            if order:
                field_name, _, direction = order.partition(" ")
                rows = sorted(
                    store.values(),
                    key=lambda row: str(row.get(field_name, "")),
                    reverse=direction.strip().upper() == "DESC",
                )
            elif name == "Contacts":
                rows = sorted(store.values(), key=lambda row: row.get("Name", ""))
            else:
                rows = sorted(store.values(), key=lambda row: _ms(row["UpdatedDateUTC"]))
        since = headers.get("if-modified-since")
        if since:
            cutoff = _parse_since(since)
            rows = [row for row in rows if _ms(row["UpdatedDateUTC"]) > cutoff]
        # `where` as Xero filters: `Field=="value"` clauses joined by AND (all this fake needs).
        for field_name, value in _WHERE.findall(query.get("where", "")):
            rows = [row for row in rows if str(row.get(field_name, "")) == value]
        if "page" in query and name in ("Contacts", "Invoices", "CreditNotes", "Payments"):
            page = max(int(query["page"]), 1)
            rows = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        return rows

    def _validate(self, name, item, store, id_field, method) -> list[dict]:
        problems = []
        existing = item.get(id_field)
        if existing and existing not in store:
            return [{"Message": f"{id_field[:-2]} could not be found"}]
        if existing and method == "PUT":
            problems.append({"Message": "PUT cannot update an existing object; use POST"})
        if name in ("Invoices", "CreditNotes"):
            contact = (item.get("Contact") or {}).get("ContactID")
            if contact not in self.contacts:
                problems.append(
                    {"Message": "A Contact must be specified with this type of transaction"}
                )
            problems += self._check_codes(
                line.get("AccountCode") for line in item.get("LineItems", [])
            )
            if not item.get("LineItems"):
                problems.append({"Message": "At least one line item is required"})
        elif name == "Payments":
            invoice = (item.get("Invoice") or {}).get("InvoiceID")
            if invoice not in self.invoices:
                problems.append({"Message": "Invoice could not be found"})
            problems += self._check_codes([(item.get("Account") or {}).get("Code")])
        elif name == "ManualJournals":
            lines = item.get("JournalLines", [])
            problems += self._check_codes(line.get("AccountCode") for line in lines)
            if round(sum(float(line.get("LineAmount", 0)) for line in lines), 2) != 0:
                problems.append({"Message": "The total debits must equal the total credits"})
        return problems

    def _check_lines(self, name, item, query) -> list[dict]:
        if name not in ("Invoices", "CreditNotes"):
            return []
        places = Decimal("0.0001") if query.get("unitdp") == "4" else Decimal("0.01")
        problems = []
        for line in item.get("LineItems", []):
            quantity = Decimal(str(line.get("Quantity", 1)))
            unit = Decimal(str(line.get("UnitAmount", 0))).quantize(places, ROUND_HALF_UP)
            computed = (quantity * unit).quantize(Decimal("0.01"), ROUND_HALF_UP)
            if "LineAmount" in line and Decimal(str(line["LineAmount"])) != computed:
                problems.append(
                    {
                        "Message": f"The line total {line['LineAmount']} does not match the "
                        f"expected line total {computed}"
                    }
                )
            tax_type = line.get("TaxType")
            if tax_type is None:
                account = next(
                    (a for a in self.accounts.values() if a["Code"] == line.get("AccountCode")),
                    {},
                )
                tax_type = account.get("TaxType", "NONE")
            if tax_type not in self.tax_rates:
                problems.append({"Message": f"The TaxType code '{tax_type}' does not exist"})
            elif Decimal(str(line.get("TaxAmount", 0))) and not self.tax_rates[tax_type]:
                problems.append(
                    {"Message": f"A TaxAmount cannot be given for the 0% TaxType '{tax_type}'"}
                )
        return problems

    def _check_codes(self, codes) -> list[dict]:
        known = {account["Code"] for account in self.accounts.values()}
        return [
            {"Message": f"Account code '{code}' is not a valid code for this document."}
            for code in codes
            if code not in known
        ]

    def _save(self, store, id_field, item) -> dict:
        object_id = item.get(id_field) or str(uuid.uuid4())
        row = {**store.get(object_id, {}), **item, id_field: object_id}
        row["UpdatedDateUTC"] = self._stamp()
        if "LineItems" in row:
            subtotal = sum(float(line.get("LineAmount", 0)) for line in row["LineItems"])
            tax = sum(float(line.get("TaxAmount", 0)) for line in row["LineItems"])
            row.update(
                SubTotal=round(subtotal, 2), TotalTax=round(tax, 2), Total=round(subtotal + tax, 2)
            )
        if id_field == "InvoiceID" and not row.get("InvoiceNumber"):
            row["InvoiceNumber"] = f"INV-{len(store) + 1:04d}"
        store[object_id] = row
        return row

    def _stamp(self) -> str:
        """A new UpdatedDateUTC, strictly later than the previous one (even within a
        millisecond), so "changed since" and "changed on the other side" are unambiguous."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return f"/Date({self._last_ms}+0000)/"


def _ms(stamp: str) -> int:
    digits = stamp.split("(", 1)[1].split("+", 1)[0].split(")", 1)[0]
    return int(digits)


def _parse_since(value: str) -> int:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = parsedate_to_datetime(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _envelope(name: str, rows: list[dict]) -> dict:
    return {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": "Kontor",
        "DateTimeUTC": xero_date(datetime.now(UTC)),
        name: rows,
    }


def _validation(elements: list[dict]) -> dict:
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": elements,
    }


def _problem(status: int, title: str, detail: str) -> dict:
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
