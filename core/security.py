"""Login brute-force protection: django-axes hooks for the admin login and the API token endpoint.

Axes counts failed sign-ins per username and client address (AXES_* settings) and refuses
further attempts during the cool-off. The admin login page answers with its own form and a
readable message; the API answers 429 {"code": "locked_out"} with Retry-After.
"""

from datetime import timedelta

from axes.helpers import get_cool_off
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.timesince import timeuntil
from rest_framework import exceptions, status
from rest_framework.throttling import BaseThrottle
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer

LOCKED_OUT_CODE = "locked_out"
_TOO_MANY = "Too many failed sign-ins for this username from your address."


def client_ip(request) -> str:
    """The address axes counts failures against: the same one the API's anonymous throttle
    uses (REMOTE_ADDR, or X-Forwarded-For as far as NUM_PROXIES trusts it), so a forged header
    cannot reset the count."""
    return BaseThrottle().get_ident(request)


def _cool_off_seconds() -> int:
    cool_off = get_cool_off()
    return int(cool_off.total_seconds()) if cool_off else 0


def locked_out_message() -> str:
    seconds = _cool_off_seconds()
    if not seconds:
        return f"{_TOO_MANY} Ask an administrator to unlock it."
    now = timezone.now()
    return f"{_TOO_MANY} Try again in {timeuntil(now + timedelta(seconds=seconds), now)}."


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = LOCKED_OUT_CODE
    default_detail = "Too many failed sign-ins."

    def __init__(self):
        super().__init__(locked_out_message(), LOCKED_OUT_CODE)
        # DRF's exception handler turns `wait` into the Retry-After header.
        self.wait = _cool_off_seconds() or None


class LockoutAwareTokenObtainPairSerializer(TokenObtainPairSerializer):
    """simplejwt's token serializer, answering a locked-out username+address with LockedOut
    instead of the plain "no active account" 401. Axes flags the DRF request it was handed."""

    def validate(self, attrs):
        request = self.context.get("request")
        try:
            data = super().validate(attrs)
        except exceptions.AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise LockedOut() from None
            raise
        # A token is a sign-in: axes resets the failure count (AXES_RESET_ON_SUCCESS) and
        # Django updates last_login, as for the admin (so SIMPLE_JWT's UPDATE_LAST_LOGIN is off).
        user_logged_in.send(sender=type(self.user), request=request, user=self.user)
        return data


class _LockedOutLoginForm(AdminAuthenticationForm):
    """An empty admin login form whose error line is the lock-out message."""

    def __init__(self, request, *, message: str):
        super().__init__(request)
        self.message = message

    def non_field_errors(self):
        return self.error_class([self.message], error_class="nonfield")


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: what a locked-out sign-in gets back."""
    message = locked_out_message()
    seconds = _cool_off_seconds()
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"code": LOCKED_OUT_CODE, "message": message, "fields": {}},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    else:
        context = {
            **admin.site.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "form": _LockedOutLoginForm(request, message=message),
            "username": request.user.get_username(),
        }
        response = TemplateResponse(
            request, "admin/login.html", context, status=status.HTTP_429_TOO_MANY_REQUESTS
        )
        response.render()
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
