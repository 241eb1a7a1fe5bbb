import os

from celery import Celery
from celery.signals import beat_init, worker_process_init

from config import telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kontor")
# All Celery settings live in Django settings with the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
# Use Django's logging configuration (JSON logs, request ids) in workers and beat.
app.conf.worker_hijack_root_logger = False
app.autodiscover_tasks()


@worker_process_init.connect(weak=False)
def _trace_worker_process(**kwargs):
    telemetry.setup("worker")  # a no-op without OTEL_EXPORTER_OTLP_ENDPOINT


@beat_init.connect(weak=False)
def _trace_beat(**kwargs):
    telemetry.setup("beat")
