"""Every API error has one shape: {"code", "message", "fields"}.

A request that fails because the database, Redis or the task broker cannot be reached answers
503 {"code": "service_unavailable"} with a Retry-After header, in the API and (from
handler500, which also sees errors raised in middleware) on pages. The client may retry: a
write either committed whole or not at all, and one sent with an idempotency key is not
carried out twice.
"""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError, ServiceUnavailable, ValidationFailed

log = logging.getLogger(__name__)


def _outage_errors() -> tuple[type[Exception], ...]:
    from django.db import InterfaceError, OperationalError

    errors: list[type[Exception]] = [OperationalError, InterfaceError]
    try:
        from django_redis.exceptions import ConnectionInterrupted
        from kombu.exceptions import OperationalError as BrokerUnreachable
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover
        pass
    else:
        errors += [
            ConnectionInterrupted,
            BrokerUnreachable,
            RedisConnectionError,
            RedisTimeoutError,
        ]
    return tuple(errors)


# SQLSTATE classes of PostgreSQL errors that are about the server's state, not the query:
# connection (08), transaction rollback: deadlock, serialization (40), insufficient resources
# (53), operator intervention: shutdown, cancelled (57), system error (58); and lock_timeout.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")
_TRANSIENT_SQLSTATES = ("55P03",)
# SQLite raises OperationalError for a busy database and for a bad query ("no such table") alike.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open", "disk i/o")


def _is_outage(exc: BaseException) -> bool:
    """Whether an error of an outage type really means the service is away (or transiently
    busy), so that retrying the same request can succeed: an OperationalError from a query
    PostgreSQL or SQLite refused as such (a program limit, a missing table) is a bug, a 500."""
    import sqlite3

    from django.db import OperationalError

    cause = exc.__cause__
    if isinstance(exc, OperationalError):
        sqlstate = getattr(cause, "sqlstate", None)
        if sqlstate:
            return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
        if isinstance(cause, sqlite3.OperationalError):
            return any(text in str(cause).lower() for text in _SQLITE_TRANSIENT)
        return True  # no answer from the server: the connection failed
    try:
        from django_redis.exceptions import ConnectionInterrupted
        from redis.exceptions import ReadOnlyError, ResponseError
    except ImportError:  # pragma: no cover
        return True
    if isinstance(exc, ConnectionInterrupted) and isinstance(cause, ResponseError):
        # Redis answered: a wrong command or type is a bug; a replica or full memory is not.
        return isinstance(cause, ReadOnlyError) or str(cause).startswith(("OOM", "LOADING"))
    return True


def service_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 error for an exception that means a backing service is away, else None."""
    if isinstance(exc, ServiceUnavailable):
        return exc
    if not isinstance(exc, _outage_errors()) or not _is_outage(exc):
        return None
    from django.db import Error as DatabaseError  # InterfaceError is not a DatabaseError

    what = "The database" if isinstance(exc, DatabaseError) else "Redis (cache and task queue)"
    # Django logs the 503 itself; this line says which service and why, for the operator.
    log.warning("service unavailable (answered 503): %s: %s", type(exc).__name__, exc)
    return ServiceUnavailable(
        f"{what} is unavailable right now; try again shortly (a write sent with an "
        "idempotency key is not carried out twice)."
    )


def _retry_after(error: ServiceUnavailable) -> dict:
    return {"Retry-After": str(error.retry_after_seconds)}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for name, value in detail.items():
            message = _first_message(value)
            return message if name in ("non_field_errors", "detail") else f"{name}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = ValidationFailed.from_django(exc)
    unavailable = service_unavailable(exc)
    if unavailable is not None:
        return Response(unavailable.as_dict(), status=503, headers=_retry_after(unavailable))
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)  # keeps headers: WWW-Authenticate, Retry-After
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "message": _first_message(exc.detail), "fields": fields}
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = {"code": code, "message": _first_message(exc.detail), "fields": {}}
    return response


def _json_or_html(request, status: int, code: str, message: str, html_view):
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"code": code, "message": message, "fields": {}}, status=status)
    return html_view(request)


def handler404(request, exception=None):
    """API paths answer JSON in the one error shape; pages keep Django's 404 page."""
    from django.views import defaults

    return _json_or_html(
        request,
        404,
        "not_found",
        "Not found.",
        lambda r: defaults.page_not_found(r, exception),
    )


def handler500(request):
    from django.http import HttpResponse, JsonResponse
    from django.views import defaults

    # Django calls this inside its `except` block: the exception is the current one.
    unavailable = service_unavailable(sys.exc_info()[1]) if sys.exc_info()[1] else None
    if unavailable is not None:
        headers = _retry_after(unavailable)
        if request.path.startswith("/api/"):
            return JsonResponse(unavailable.as_dict(), status=503, headers=headers)
        # A plain page: the admin's templates may need the database that is away.
        return HttpResponse(
            f"<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1>"
            f"<p>{unavailable.message}</p>",
            status=503,
            headers=headers,
        )
    return _json_or_html(
        request,
        500,
        "server_error",
        "Something went wrong on our side; it has been logged. Quote the X-Request-ID header.",
        defaults.server_error,
    )
