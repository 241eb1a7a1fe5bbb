import zoneinfo

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from core.errors import DomainError
from core.models import Company


class DomainErrorMiddleware:
    """A domain error raised inside a page (the admin) becomes a readable message, never a
    stack trace. The admin view's transaction has already rolled back when it gets here, so
    nothing is half-written. A refused form (POST) shows its page again; a page that cannot be
    shown (GET) sends the user back where they came from, or to the dashboard."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DomainError) or request.path.startswith("/api/"):
            return None  # the API renders its own {"code", "message", "fields"}
        messages.error(request, exception.message)
        if request.method == "POST":
            return HttpResponseRedirect(request.get_full_path())
        here = request.build_absolute_uri()
        referer = request.headers.get("Referer", "")
        safe = url_has_allowed_host_and_scheme(
            referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        if referer and safe and referer != here:
            return HttpResponseRedirect(referer)
        dashboard = reverse("admin:index")
        if request.path == dashboard:
            return None  # the dashboard itself failed: nowhere safer to go
        return HttpResponseRedirect(dashboard)


class CompanyTimeZoneMiddleware:
    """Pages show times on the clock of the user's companies (Asia/Dhaka for a Dhaka firm).
    A user whose companies sit in different zones, or who has none, sees UTC."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = None
        if request.user.is_authenticated:
            zones = set(
                Company.objects.filter(memberships__user=request.user)
                .values_list("time_zone", flat=True)
                .distinct()[:2]
            )
            if len(zones) == 1:
                zone = zoneinfo.ZoneInfo(zones.pop())
        if zone is None:
            timezone.deactivate()
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)
