"""Renderers shared by the apps' API views."""

from rest_framework.renderers import BaseRenderer


class PDFRenderer(BaseRenderer):
    """`Accept: application/pdf` (or ?format=pdf) on an action that answers a PDF's bytes."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else b""


class CSVRenderer(BaseRenderer):
    """`?format=csv` (or Accept: text/csv) on a report. The view hands it finished text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, str) else ""
