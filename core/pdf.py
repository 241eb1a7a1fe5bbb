"""Printable documents (Mushak forms, payslips) as PDF: Django template -> HTML -> WeasyPrint.

    from core.pdf import render_html, render_pdf, pdf_from_html
    html = render_html("invoicing/mushak_6_3.html", context)   # the same page the browser shows
    pdf = render_pdf("invoicing/mushak_6_3.html", context)     # bytes starting with b"%PDF"

Templates extend "documents/base.html", which inlines the shared print stylesheet
(templates/documents/print.css: A4, margins, page numbers, the form table styles) and sets the
font families explicitly: "Noto Sans" for Latin text and "Noto Sans Bengali" for Bangla labels.
Those come from Debian's fonts-noto-core (`fc-list :lang=bn` lists them); without a font that
covers Bengali, Pango draws boxes, so `bengali_font_missing()` says so and the Makefile and
.ci/run install the package.

Rendering fetches nothing from the network: the URL fetcher answers data: URIs and files under
the project's templates/ and static/ folders only, so a URL slipped into a party's name or an
address can never make the server call out (the names are escaped by the templates anyway).
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string

from core.errors import DomainError

PDF_MAGIC = b"%PDF"

# WeasyPrint logs every layout step and fontTools every subsetting step at INFO, about a hundred
# lines per PDF in the project's INFO log. Their warnings and errors still come through.
for _name in ("weasyprint.progress", "fontTools"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class PdfRenderError(DomainError):
    """WeasyPrint could not produce a PDF (its system libraries, Pango and HarfBuzz, are
    missing). The API answers 503 {code: pdf_unavailable}; the HTML still works."""

    code = "pdf_unavailable"
    http_status = 503
    default_message = "PDF rendering is not available on this server; ask for the HTML."


def _allowed_roots() -> list[Path]:
    base = Path(settings.BASE_DIR)
    roots = [base / "templates", base / "static"]
    static_root = getattr(settings, "STATIC_ROOT", None)
    if static_root:
        roots.append(Path(static_root))
    return [root.resolve() for root in roots]


def _safe_fetcher():
    """WeasyPrint's fetcher restricted to data: URIs and local files under templates/ or static/."""
    from urllib.parse import unquote, urlsplit

    from weasyprint.urls import URLFetcher

    class SafeURLFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            scheme = url.split(":", 1)[0].lower()
            if scheme == "file":
                path = Path(unquote(urlsplit(url).path)).resolve()
                if not any(path.is_relative_to(root) for root in _allowed_roots()):
                    raise ValueError(f"documents may not load {url!r}")
            elif scheme != "data":
                raise ValueError(f"documents may not load {url!r}")
            return super().fetch(url, headers)

    return SafeURLFetcher(allowed_protocols={"data", "file"}, allow_redirects=False)


def default_base_url() -> str:
    return (Path(settings.BASE_DIR) / "templates").resolve().as_uri() + "/"


def pdf_from_html(html: str, *, base_url: str | None = None) -> bytes:
    """One PDF from finished HTML. `base_url` resolves relative links (default: templates/)."""
    try:
        from weasyprint import HTML
        from weasyprint.text.fonts import FontConfiguration
    except (ImportError, OSError) as exc:  # OSError: Pango/HarfBuzz shared libraries missing
        raise PdfRenderError(
            f"PDF rendering is not available on this server (WeasyPrint: {exc}); "
            "ask for the HTML instead."
        ) from exc
    fonts = FontConfiguration()
    document = HTML(
        string=html, base_url=base_url or default_base_url(), url_fetcher=_safe_fetcher()
    )
    pdf = document.write_pdf(font_config=fonts)
    if not pdf or not pdf.startswith(PDF_MAGIC):
        raise PdfRenderError("WeasyPrint returned no PDF.")
    return pdf


def render_html(template: str, context: dict, *, request=None) -> str:
    """The document's HTML (what the browser shows, and what becomes the PDF)."""
    return render_to_string(template, context, request=request)


def render_pdf(template: str, context: dict, *, request=None) -> bytes:
    """Render a document template to PDF bytes."""
    return pdf_from_html(render_html(template, context, request=request))


@functools.cache
def bengali_font_missing() -> str:
    """Empty when fontconfig knows a font that covers Bengali, else a one-line reason. Cached:
    fonts do not come and go while the process runs."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return "fc-list (fontconfig) is not installed"
    try:
        found = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            [fc_list, ":lang=bn", "family"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"fc-list failed: {exc}"
    if not found:
        return "no font covers Bengali: install Debian's fonts-noto-core"
    return ""
