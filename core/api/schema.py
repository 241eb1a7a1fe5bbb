"""The OpenAPI schema documents the error answers every operation can give, in the one error
shape of core.api.exceptions, so clients (and the contract fuzz in tests/api/test_fuzz.py) know
them: drf-spectacular on its own lists only the success status."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework_simplejwt.views import TokenViewBase

from core.api.base import TenantScopedMixin

ERROR_MEDIA_TYPES = ["application/json"]


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. not_found, invalid.")
    message = serializers.CharField()
    fields = serializers.DictField(help_text="Per-field messages; empty when not about a field.")


ERRORS = {
    "400": "Invalid input, or several memberships and no X-Company header.",
    "401": "Missing, invalid or expired credentials.",
    "403": "Your role in the company may not do this, or you have no membership.",
    "404": "Not found in this company, or no such company among your memberships.",
    "409": "Conflicts with the current state (posted, locked, already done...).",
    "429": "Too many requests; Retry-After says when to try again.",
    "503": "The database, Redis or the task broker is unavailable; Retry-After says when to "
    "try again (service_unavailable).",
}


class KontorAutoSchema(AutoSchema):
    def _error_codes(self) -> set[str]:
        view, write = self.view, self.method not in ("GET", "HEAD", "OPTIONS")
        codes = {"503"}  # any request may meet a backing service that is away
        if isinstance(view, TenantScopedMixin):
            codes |= {"400", "403", "404"} | ({"409"} if write else set())
        if self._get_request_body() or self._get_parameters():
            codes.add("400")
        if "{" in self.path:
            codes.add("404")
        if view.get_authenticators() or isinstance(view, TokenViewBase):
            codes.add("401")  # a bad token (or password) is refused even where no login is needed
        if view.get_throttles():
            codes.add("429")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in sorted(self._error_codes() - responses.keys()):  # a view's own entry wins
            responses[code] = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, ERRORS[code]), code, ERROR_MEDIA_TYPES, direction
            )
        return responses
