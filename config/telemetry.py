"""OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans of Django requests, Celery tasks (published and run), psycopg queries and httpx calls are
exported over OTLP/HTTP (protobuf) to that endpoint; the exporter appends /v1/traces. The
standard OTEL_* variables apply (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER...). Without the endpoint nothing here imports
OpenTelemetry, so an untraced process pays nothing.

Called per process: config/wsgi.py (and gunicorn's post_fork, config/gunicorn.py) for web,
Celery's worker_process_init and beat_init for workers and beat (config/celery_app.py). The SDK's
batch processor restarts its export thread in a forked child.
"""

import os

_installed_for: str | None = None


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


def setup(process: str) -> bool:
    """Install the tracer provider and the instrumentations once per process; `process` (web,
    worker, beat) becomes the kontor.process resource attribute. Returns whether tracing is on."""
    global _installed_for
    if _installed_for is not None:
        return True
    if not enabled():
        return False

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or "kontor",
            "kontor.process": process,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    # Django: its middleware goes first in MIDDLEWARE, so this runs before the WSGI handler is
    # built. Health probes would drown the traces; they are left out.
    DjangoInstrumentor().instrument(excluded_urls=r"/health(/\w+)?/?$,/ready/?$,/metrics/?$")
    CeleryInstrumentor().instrument()
    # No SQL commenter: comments would make every statement text unique in pg_stat_statements.
    PsycopgInstrumentor().instrument(enable_commenter=False)
    HTTPXClientInstrumentor().instrument()
    _installed_for = process
    return True


def force_flush(timeout_millis: int = 5000) -> bool:
    """Export the spans still queued (tests; a process about to exit)."""
    if _installed_for is None:
        return True
    from opentelemetry import trace

    return trace.get_tracer_provider().force_flush(timeout_millis)
