"""Settings for the django-hordak side of `python -m bench ledger`: the test settings plus the
two apps hordak needs. Used only by the subprocess that bench/_hordak.py starts, so hordak never
reaches the test suite's or the application's settings. Needs `pip install -r
requirements/bench.txt`."""

from config.settings.test import *  # noqa: F403
from config.settings.test import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "mptt", "hordak"]
HORDAK_INTERNAL_CURRENCY = "EUR"
DEFAULT_CURRENCY = "EUR"
