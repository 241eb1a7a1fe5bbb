"""Domain errors: a stable machine `code`, a sentence for people, and optional per-field detail.

The API renders them as {"code", "message", "fields"} with `http_status`; the admin shows the
message. Each app derives its own errors from these.
"""

from django.core.exceptions import ValidationError as DjangoValidationError


class DomainError(Exception):
    code = "domain_error"
    http_status = 400
    default_message = "The request cannot be carried out."

    def __init__(self, message: str | None = None, *, code: str | None = None, fields=None):
        self.message = message or self.default_message
        if code:
            self.code = code
        self.fields = fields or {}
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class ValidationFailed(DomainError):
    code = "invalid"
    default_message = "Some fields are invalid."

    @classmethod
    def from_django(cls, exc: DjangoValidationError) -> "ValidationFailed":
        if not hasattr(exc, "error_dict"):
            return cls("; ".join(exc.messages))
        fields = {
            name: [message for error in errors for message in error.messages]
            for name, errors in exc.error_dict.items()
        }
        non_field = fields.pop("__all__", None)
        if non_field:
            fields["non_field_errors"] = non_field
            return cls(non_field[0], fields=fields)
        name, messages = next(iter(fields.items()))
        return cls(f"{name}: {messages[0]}", fields=fields)


class ConflictError(DomainError):
    """The request is well formed but clashes with the current state (HTTP 409)."""

    code = "conflict"
    http_status = 409
    default_message = "The request conflicts with the current state."


class PermissionDeniedError(DomainError):
    code = "permission_denied"
    http_status = 403
    default_message = "Your role does not allow this."


class ServiceUnavailable(DomainError):
    """A service the request needs (the database, Redis, the task broker) cannot be reached
    right now; the same request may succeed later (HTTP 503 with a Retry-After header)."""

    code = "service_unavailable"
    http_status = 503
    default_message = "A service Kontor needs is unavailable; try again shortly."
    retry_after_seconds = 5
