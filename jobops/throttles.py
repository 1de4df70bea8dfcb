"""Login throttles: brute-force protection that a stranger cannot turn into a lockout.

Three limits, each in Django's default cache (Redis in production, so they hold across web processes), with rates
from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` read on every request (a settings change or a test override takes
effect at once):

- ``login_ip`` (env ``LOGIN_RATE_PER_IP``, default 30/min): every login attempt from one client address, whatever
  the username (password spraying);
- ``login_user`` (env ``LOGIN_RATE_PER_USER``, default 10/min): attempts at one username *from one client address*
  (guessing one account). Keyed on the pair, so a stranger's guesses never use up the owner's allowance;
- ``login_failures`` (env ``LOGIN_FAILURES_PER_USER``, default 100/hour): *failed* attempts at one username from
  anywhere (a distributed guess). A correct password does not consume it. Once it is spent, clients are refused
  before their password is checked, except a client that logged in as that user within ``LOGIN_KNOWN_CLIENT_DAYS``
  (default 30): the owner keeps getting in from their usual device while a botnet is held back.

Every username is reduced to the identity that authentication resolves (``login_identity``: Unicode NFKC, as
Django's ``AbstractBaseUser.normalize_username`` and the admin form's ``UsernameField`` do, then stripped and
case-folded), so look-alike spellings of one account (``ａｄｍｉｎ``, ``𝐚𝐝𝐦𝐢𝐧``, `` Admin``) share its buckets.

Counters are fixed windows updated with the cache's atomic ``add`` and ``incr`` (never a read followed by a write),
so concurrent requests cannot slip extra attempts through. ``Retry-After`` is the time to the end of the window.

**Redis unreachable** (issue 19): logins keep working. Throttling degrades to per-process limits while Redis is
unreachable: the counters move to a local-memory cache of this process (each web process then allows the full
rate, and the budgets counted in Redis are not seen), with one WARNING per failure. After a failure Redis is not
tried again for ``CACHE_RETRY_SECONDS`` (env, default 3 s; ``jobops.breaker``), so a down Redis costs one failed
connect per process every few seconds, not one per request (a refused connect fails at once; a silent host costs up
to the cache's 2 s ``socket_connect_timeout``). When Redis answers again the shared counters take over; what was
counted locally in between is forgotten. Only an unreachable Redis degrades: one that answers with an error (a wrong
password, out of memory, read-only) is a configuration to fix, and the login answers 500.
"""

from __future__ import annotations

import hashlib
import logging
import time
import unicodedata
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from .breaker import CircuitBreaker

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: The per-process counters used while the shared cache is unreachable.
fallback_cache = LocMemCache("jobops-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
#: Per process: after the shared cache could not be reached, count locally for ``CACHE_RETRY_SECONDS``.
breaker = CircuitBreaker()


def _unreachable(exc: Exception) -> bool:
    """A failure to reach the cache server: no connection, a timeout, a Redis still loading its dataset, a socket
    error. Not an answer Redis gave: a wrong password (``AuthenticationError``, although redis-py makes it a
    ``ConnectionError``), out of memory, a read-only replica, nor a cache answer such as ``incr``'s ``ValueError``
    on a missing key. Those propagate (a 500 with its traceback): counting per process would hide a misconfigured
    Redis and multiply the login budget by the number of processes."""
    from redis import exceptions as redis_errors

    if isinstance(
        exc,
        redis_errors.AuthenticationError | redis_errors.AuthorizationError | redis_errors.ExternalAuthProviderError,
    ):
        return False
    return isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError)


def _cache_call(method: str, *args: Any) -> Any:
    """``cache.<method>(*args)`` on the shared cache, or on this process's fallback while it is unreachable."""
    if breaker.allow():
        try:
            result = getattr(cache, method)(*args)
        except Exception as exc:
            if not _unreachable(exc):
                raise
            retry = float(settings.CACHE_RETRY_SECONDS)
            breaker.trip(retry)
            logger.warning(
                "login throttles: the shared cache is unreachable (%s: %s); counting in this process for %.0f s",
                type(exc).__name__,
                exc,
                retry,
            )
        else:
            breaker.succeeded()
            return result
    return getattr(fallback_cache, method)(*args)


def login_identity(username: str) -> str:
    """The account a login names, as authentication resolves it, case-folded: one bucket per account."""
    normalized = unicodedata.normalize("NFKC", username).strip().casefold()
    return unicodedata.normalize("NFKC", normalized)


def _digest(*parts: str) -> str:
    # No raw input reaches a cache key; lone surrogates (a body decoded with the wrong charset) hash as well.
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _rate(scope: str) -> tuple[int, int]:
    """``(requests, seconds)`` of a scope's rate string such as ``"10/min"`` (DRF's format)."""
    # The stubs type the setting's values as numbers; they are rate strings.
    rates = cast("dict[str, str | None]", api_settings.DEFAULT_THROTTLE_RATES)
    rate = (rates or {}).get(scope)
    if not rate:
        raise ImproperlyConfigured(f"No throttle rate set for scope {scope!r}.")
    num, period = rate.split("/")
    return int(num), _PERIODS[period.strip()[0]]


def _window(seconds: int) -> tuple[int, float]:
    """The current fixed window's index and the seconds left in it."""
    now = time.time()
    return int(now // seconds), seconds - (now % seconds)


def _count(key: str, seconds: int) -> int:
    """Add one to ``key`` atomically and return the new value (the key lives for the window)."""
    _cache_call("add", key, 0, seconds + 1)
    try:
        return int(_cache_call("incr", key))
    except ValueError:  # expired between add and incr (or Redis failed in between: the local copy has no key)
        _cache_call("add", key, 1, seconds + 1)
        return 1


def client_ident(request: HttpRequest | Request) -> str:
    """The client's address (DRF's rule: ``NUM_PROXIES`` decides which X-Forwarded-For entry is trusted)."""
    return str(BaseThrottle().get_ident(cast(Request, request)))


def username_from(request: Request) -> str | None:
    """The ``username`` of a login body, or ``None`` when the body has none or cannot be parsed (the view answers
    that with a 400; the IP bucket still counts it). Never raises."""
    try:
        data = request.data
    except Exception:  # noqa: BLE001 - any unparsable body: no username, and the view reports the error
        return None
    username = data.get("username") if isinstance(data, dict) else None
    return username if isinstance(username, str) and username.strip() else None


class _AtomicRateThrottle(BaseThrottle):
    """A fixed-window counter per key: ``get_key`` names the bucket (``None``: not counted)."""

    scope: str

    def get_key(self, request: Request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        key = self.get_key(request)
        if key is None:
            return True
        num, seconds = _rate(self.scope)
        window, self._wait = _window(seconds)
        return _count(f"throttle:{self.scope}:{key}:{window}", seconds) <= num

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class LoginIPThrottle(_AtomicRateThrottle):
    """Login attempts per client address."""

    scope = "login_ip"

    def get_key(self, request: Request) -> str | None:
        return _digest(client_ident(request))


class LoginUserThrottle(_AtomicRateThrottle):
    """Attempts at one username (its ``login_identity``) from one client address."""

    scope = "login_user"

    def get_username(self, request: Request) -> str | None:
        return username_from(request)

    def get_key(self, request: Request) -> str | None:
        username = self.get_username(request)
        if username is None:
            return None
        return _digest(login_identity(username), client_ident(request))


class PasswordChangeThrottle(LoginUserThrottle):
    """``POST /api/auth/me/password/`` checks the old password: it shares the (username, client) login bucket, so a
    stolen access token cannot be used to guess the password faster than the login endpoint allows."""

    def get_username(self, request: Request) -> str | None:
        user = request.user
        return user.get_username() if user and user.is_authenticated else None


def _failures_key(identity: str) -> tuple[str, int, int, float]:
    num, seconds = _rate("login_failures")
    window, left = _window(seconds)
    return f"throttle:login_failures:{_digest(identity)}:{window}", num, seconds, left


def _known_key(identity: str, client: str) -> str:
    return f"throttle:login_known:{_digest(identity, client)}"


class LoginFailureThrottle(_AtomicRateThrottle):
    """Refuses a username whose budget of failed logins is spent, except from a client it logged in from before.
    Only checks: ``login_failed`` spends the budget and ``login_succeeded`` remembers the client."""

    scope = "login_failures"

    def allow_request(self, request: Request, view: Any) -> bool:
        username = username_from(request)
        if username is None:
            return True
        identity = login_identity(username)
        key, num, _seconds, self._wait = _failures_key(identity)
        if (_cache_call("get", key) or 0) < num:
            return True
        return bool(_cache_call("get", _known_key(identity, client_ident(request))))


def login_failed(request: HttpRequest | Request, username: str) -> None:
    """A wrong password (or unknown or inactive account) for ``username``: spend one of its failure budget."""
    key, _num, seconds, _left = _failures_key(login_identity(username))
    _count(key, seconds)


def login_succeeded(request: HttpRequest | Request, username: str) -> None:
    """A successful login: remember the client as one the account's owner uses."""
    days = getattr(settings, "LOGIN_KNOWN_CLIENT_DAYS", 30)
    _cache_call("set", _known_key(login_identity(username), client_ident(request)), 1, days * 86400)


#: The login endpoints' throttles, in the order they are checked (the API view and the admin login form).
LOGIN_THROTTLES: tuple[type[BaseThrottle], ...] = (LoginIPThrottle, LoginUserThrottle, LoginFailureThrottle)
