"""DRF's throttles read their rates once at import; these read them per request, so the rate
follows settings (and test overrides). Counts live in the default cache: Redis in production,
shared by every web process."""

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class _SettingsRate:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserThrottle(_SettingsRate, UserRateThrottle):
    pass


class AnonThrottle(_SettingsRate, AnonRateThrottle):
    pass
