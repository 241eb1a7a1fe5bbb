import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kontor")
# All Celery settings live in Django settings with the CELERY_ prefix.
app.config_from_object("django.conf:settings", namespace="CELERY")
# Use Django's logging configuration (JSON logs, request ids) in workers and beat.
app.conf.worker_hijack_root_logger = False
app.autodiscover_tasks()
