"""Banking's domain errors. Each carries a stable `code` the API returns with its HTTP status
(ValidationFailed 400 with `fields`, ConflictError 409); the admin shows the message."""

from core.errors import ConflictError, ValidationFailed


class BankingValidationError(ValidationFailed):
    """Bad input for a banking service (400)."""

    code = "invalid"


class AlreadyPosted(ConflictError):
    """The transaction was posted: its figures are fixed, and a posting of different figures
    is refused (409)."""

    code = "already_posted"
    default_message = "The transaction is already posted; its figures cannot change."


class VersionConflict(ConflictError):
    """The caller's `expected_version` is not the row's current version (409)."""

    code = "version_conflict"
    default_message = "The record was changed by someone else; reload it and try again."


class InvalidTransition(ConflictError):
    """A status move the record's state does not allow (409)."""

    code = "invalid_transition"
    default_message = "The record's status does not allow this."


class AllocationExceeded(ConflictError):
    """Accepted allocations would exceed a statement line's or a transaction's amount (409)."""

    code = "allocation_exceeded"
    default_message = "The allocations exceed the amount available."
