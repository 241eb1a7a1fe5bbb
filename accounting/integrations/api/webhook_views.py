"""The webhook endpoint: POST /api/v1/accounting/integrations/{system}/webhooks/{connection_id}.

No JWT or session: the signature (or Zoho's shared-secret header) is the authentication, checked
by accounting.integrations.webhooks. CSRF does not apply (APIView exempts it; there is no
session). Throttling comes after the signature: authentic deliveries are throttled per
connection (INTEGRATIONS_WEBHOOK_THROTTLE), rejected ones per client address
(INTEGRATIONS_WEBHOOK_REJECTED_THROTTLE), and an address over its rejected allowance is answered
429 before anything is checked. So forged posts never use up a connection's allowance and a
genuine sender is not locked out by someone else's flood. The answer is always an empty body
(Xero requires it): 200 once the events are stored and their processing queued, 401 for a wrong
signature or unknown connection, 400 for an authentic but unreadable body, 429 when throttled.
The view makes no outgoing call.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounting.integrations.webhooks import (
    WebhookMalformed,
    WebhookRejected,
    webhook_receive,
)

log = logging.getLogger(__name__)


class WebhookThrottle(SimpleRateThrottle):
    """Authentic deliveries per connection, not per address: QuickBooks and Xero deliver from
    many addresses. Rate from INTEGRATIONS_WEBHOOK_THROTTLE (default 600/min), read per
    request. Checked after the signature (see WebhookView.post)."""

    scope = "integrations_webhook"

    def get_rate(self):
        return getattr(settings, "INTEGRATIONS_WEBHOOK_THROTTLE", "600/min")

    def get_cache_key(self, request, view):
        kwargs = view.kwargs
        return self.cache_format % {
            "scope": self.scope,
            "ident": f"{kwargs.get('system')}:{kwargs.get('connection_id')}",
        }


class RejectedWebhookThrottle(SimpleRateThrottle):
    """Rejected deliveries (wrong signature, unknown connection) per client address. `over`
    only looks; `note` records one rejection."""

    scope = "integrations_webhook_rejected"

    def get_rate(self):
        return getattr(settings, "INTEGRATIONS_WEBHOOK_REJECTED_THROTTLE", "30/min")

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _history(self, request, view):
        self.key = self.get_cache_key(request, view)
        self.now = self.timer()
        history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return history

    def over(self, request, view) -> bool:
        return len(self._history(request, view)) >= self.num_requests

    def note(self, request, view) -> None:
        history = self._history(request, view)
        history.insert(0, self.now)
        self.cache.set(self.key, history, self.duration)


class _Throttled(Exception):
    pass


class WebhookView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []  # both throttles are applied in post(), around the signature
    parser_classes: list = []  # the raw body is what is signed: never parsed by DRF

    @extend_schema(
        operation_id="integrations_webhook_receive",
        tags=["integrations"],
        summary="Receive a webhook from QuickBooks Online, Xero or Zoho Books",
        description=(
            "Authenticated by the sender's signature, not by a token: QuickBooks "
            "`intuit-signature` and Xero `x-xero-signature` are base64(HMAC-SHA256(webhook key, "
            "raw body)); Zoho Books sends the shared secret in `X-Kontor-Webhook-Secret`. The key "
            "is the connection's `webhook_key` credential. Events are stored once per change and "
            "processed asynchronously; Xero's intent-to-receive request (no events) answers 200 "
            "when correctly signed. Every reply has an empty body."
        ),
        auth=[],
        parameters=[
            OpenApiParameter(
                "system",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="quickbooks, xero or zoho_books",
            ),
            OpenApiParameter("connection_id", OpenApiTypes.INT, OpenApiParameter.PATH),
        ],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: OpenApiResponse(description="Stored (or a repeat, or Xero's handshake)."),
            400: OpenApiResponse(description="Authentic but not in the sender's format."),
            401: OpenApiResponse(description="Wrong signature or secret, or unknown connection."),
            429: OpenApiResponse(
                description="Too many deliveries for this connection, or too many rejected "
                "ones from this address."
            ),
        },
    )
    def post(self, request, system: str, connection_id: int):
        rejected = RejectedWebhookThrottle()
        if rejected.over(request, self):
            return HttpResponse(status=429)

        def authentic(connection) -> None:
            if not WebhookThrottle().allow_request(request, self):
                raise _Throttled

        try:
            receipt = webhook_receive(
                system=system,
                connection_id=connection_id,
                headers=request.headers,
                body=request.body,
                authentic=authentic,
            )
        except _Throttled:
            return HttpResponse(status=429)
        except WebhookRejected as exc:
            rejected.note(request, self)
            log.warning(
                "webhook rejected",
                extra={"system": system, "connection_id": connection_id, "reason": str(exc)},
            )
            return HttpResponse(status=401)
        except WebhookMalformed as exc:
            log.warning(
                "webhook malformed",
                extra={"system": system, "connection_id": connection_id, "reason": str(exc)},
            )
            return HttpResponse(status=400)
        log.info(
            "webhook received",
            extra={
                "system": system,
                "connection_id": connection_id,
                "stored": len(receipt.stored),
                "duplicates": receipt.duplicates,
            },
        )
        return HttpResponse(status=200)
