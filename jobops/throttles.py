"""Login throttles: per client IP (scope ``login_ip``) and per username (scope ``login_user``).

The state lives in Django's default cache (Redis in production), so the limits hold across web processes. Rates
come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (env ``LOGIN_RATE_PER_IP``, ``LOGIN_RATE_PER_USER``) and are
read on every request rather than once at import, so a settings change (or a test override) takes effect at once.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    scope: str  # every subclass names its scope

    def get_rate(self) -> str | None:
        # Rate strings such as "5/min" (as SimpleRateThrottle.THROTTLE_RATES says); the stubs type the setting's
        # values as numbers.
        rates = cast("dict[str, str | None]", api_settings.DEFAULT_THROTTLE_RATES)
        try:
            return rates[self.scope]
        except (KeyError, TypeError):
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.") from None


class LoginIPThrottle(_SettingsRateThrottle):
    """Login attempts per client IP (``NUM_PROXIES`` decides which X-Forwarded-For entry is trusted)."""

    scope = "login_ip"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUserThrottle(_SettingsRateThrottle):
    """Password attempts per username, whatever the IP: slows a distributed guess at one account. The username is
    case-folded and hashed, so variants share one bucket and no raw input reaches a cache key."""

    scope = "login_user"

    def get_username(self, request: Request) -> str | None:
        data = request.data
        username = data.get("username") if isinstance(data, dict) else None
        return username if isinstance(username, str) and username.strip() else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        username = self.get_username(request)
        if username is None:
            return None  # a malformed body is refused with 400 by the view; the IP throttle still counts it
        ident = hashlib.sha256(username.strip().casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class PasswordChangeThrottle(LoginUserThrottle):
    """``POST /api/auth/me/password/`` checks the old password: it shares the username's login bucket, so a stolen
    access token cannot be used to guess the password faster than the login endpoint allows."""

    def get_username(self, request: Request) -> str | None:
        user = request.user
        return user.get_username() if user and user.is_authenticated else None
