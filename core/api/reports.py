"""The shape every report endpoint shares: a query serializer read from the query string, a
report built from it, answered as JSON or (`?format=csv`, Accept: text/csv) as a CSV file."""

from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.api.base import TenantAPIView
from core.api.renderers import CSVRenderer


class ReportAPIView(TenantAPIView):
    """Subclasses set `scope`, `query_class` and `response_class`, and define `build(query)`
    and `csv(report) -> (text, filename)`. The query serializer gets the company in its
    context."""

    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, CSVRenderer]
    query_class: type[serializers.Serializer]
    response_class: type[serializers.Serializer]

    def build(self, query: dict) -> dict:
        raise NotImplementedError

    def csv(self, report: dict) -> tuple[str, str]:
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        query = self.query_class(data=request.query_params, context={"company": self.company})
        query.is_valid(raise_exception=True)
        report = self.build(query.validated_data)
        if request.accepted_renderer.format == "csv":
            text, filename = self.csv(report)
            return Response(
                text,
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )
        return Response(self.response_class(report).data)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors answer JSON in the one error shape, even when CSV was asked for.
        renderer = getattr(request, "accepted_renderer", None)
        if getattr(response, "exception", False) and getattr(renderer, "format", "") == "csv":
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
