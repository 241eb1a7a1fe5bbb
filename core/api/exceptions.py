"""Every API error has one shape: {"code", "message", "fields"}."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError, ValidationFailed


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
    from django.views import defaults

    return _json_or_html(
        request,
        500,
        "server_error",
        "Something went wrong on our side; it has been logged. Quote the X-Request-ID header.",
        defaults.server_error,
    )
