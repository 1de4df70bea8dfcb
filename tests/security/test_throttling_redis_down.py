"""Issue 19: with Redis unreachable, logins keep working and are still throttled, per process (jobops/throttles.py).

The shared cache is a real ``RedisCache`` on a port where nothing listens (connection refused, as during the drill's
Redis cut): no Redis server is needed, and none is touched."""

from __future__ import annotations

import logging
import time

import pytest
import redis.exceptions
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from rest_framework.test import APIClient

from jobops import throttles
from jobops.breaker import CircuitBreaker
from tests.deploy.support import free_port
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"


@pytest.fixture
def redis_down(monkeypatch, rates):
    rates(ip="5/min")
    down = RedisCache(
        f"redis://127.0.0.1:{free_port()}/0", {"OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2}}
    )
    monkeypatch.setattr(throttles, "cache", down)
    monkeypatch.setattr(throttles, "breaker", CircuitBreaker())
    throttles.fallback_cache.clear()
    yield down
    throttles.fallback_cache.clear()


def _login(ip: str = "10.0.0.1"):
    return APIClient().post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}, format="json", REMOTE_ADDR=ip)


def test_login_works_and_is_throttled_per_process_while_redis_is_down(redis_down, caplog):
    UserFactory(username="tech1")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="jobops.throttles"):
        statuses = [_login().status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]  # the local counters still hold the per-IP limit
    assert time.monotonic() - started < 2
    # One warning: for CACHE_RETRY_SECONDS the process does not try Redis again.
    warnings = [r.getMessage() for r in caplog.records if r.name == "jobops.throttles"]
    assert len(warnings) == 1 and "unreachable" in warnings[0], warnings
    assert _login(ip="10.0.0.2").status_code == 200


def test_redis_is_tried_again_after_the_pause_and_takes_over_when_back(redis_down, monkeypatch, caplog, settings):
    UserFactory(username="tech1")
    calls = []

    class Counting(RedisCache):
        def add(self, *args, **kwargs):
            calls.append("add")
            return super().add(*args, **kwargs)

    counting = Counting(redis_down._servers[0], {"OPTIONS": {"socket_connect_timeout": 2}})
    monkeypatch.setattr(throttles, "cache", counting)
    settings.CACHE_RETRY_SECONDS = 0.3
    with caplog.at_level(logging.WARNING, logger="jobops.throttles"):
        assert _login().status_code == 200
        assert _login().status_code == 200
        assert calls == ["add"]  # the second login did not try Redis
        time.sleep(0.35)
        assert _login().status_code == 200
        assert calls == ["add", "add"]
    # Back: a working shared cache counts again (a local-memory one stands in for Redis here).
    shared = LocMemCache("redis-back", {})
    monkeypatch.setattr(throttles, "cache", shared)
    time.sleep(0.35)
    assert _login().status_code == 200
    assert any(key.startswith(":1:throttle:login_ip:") for key in shared._cache)


class _Failing(LocMemCache):
    """A shared cache whose every call fails with ``error`` (what redis-py raises for that answer)."""

    def __init__(self, error: Exception) -> None:
        super().__init__("failing", {})
        self.error = error

    def add(self, *args, **kwargs):
        raise self.error

    def get(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.AuthenticationError("WRONGPASS invalid username-password pair or user is disabled."),
        redis.exceptions.AuthenticationError("Authentication required."),  # NOAUTH
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ],
)
def test_a_redis_that_answers_with_an_error_is_not_down(redis_down, monkeypatch, error):
    # Misconfigured (a wrong password), full or read-only: Redis answered. Counting per process would hide that and
    # quietly multiply the login budget by the number of processes; the login fails (a 500 with its traceback).
    UserFactory(username="tech1")
    monkeypatch.setattr(throttles, "cache", _Failing(error))
    with pytest.raises(type(error)):
        _login()
    assert throttles.breaker.available()


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.exceptions.TimeoutError("Timeout connecting to server"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_a_redis_that_cannot_answer_is_down(redis_down, monkeypatch, error):
    UserFactory(username="tech1")
    monkeypatch.setattr(throttles, "cache", _Failing(error))
    assert _login().status_code == 200
    assert not throttles.breaker.available()
