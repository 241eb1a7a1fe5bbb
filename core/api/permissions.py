from rest_framework.permissions import SAFE_METHODS, BasePermission

from core.errors import PermissionDeniedError
from core.tenancy import membership_for_request


class CompanyRolePermission(BasePermission):
    """Allows a request when the caller's role in the request's company may read (safe methods)
    or write (the rest) the view's scope, per core.roles.ROLE_MATRIX."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        membership = membership_for_request(request)
        if not hasattr(view, request.method.lower()):
            return True  # let the view answer 405 for a method it does not have
        write = request.method not in SAFE_METHODS
        if membership.role in view.allowed_roles(write=write):
            return True
        verb = "change" if write else "see"
        raise PermissionDeniedError(
            f"The {membership.get_role_display().lower()} role cannot {verb} {view.scope} data"
            f" in {membership.company.slug}.",
            code="role_forbidden",
        )
