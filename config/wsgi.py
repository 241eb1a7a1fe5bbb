import os

from django.core.wsgi import get_wsgi_application

from config import telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

telemetry.setup("web")  # before the application: it adds Django's tracing middleware
application = get_wsgi_application()
