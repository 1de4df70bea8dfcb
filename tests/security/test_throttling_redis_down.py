"""Issue 19: with Redis unreachable, logins keep working and are still throttled, per process (jobops/throttles.py).

The shared cache is a real ``RedisCache`` on a port where nothing listens (connection refused, as during the drill's
Redis cut): no Redis server is needed, and none is touched."""

from __future__ import annotations

import logging
import time

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from rest_framework.test import APIClient

from jobops import throttles
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
    monkeypatch.setattr(throttles, "_shared_down_until", 0.0)
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
    # One warning: for SHARED_CACHE_RETRY_SECONDS the process does not try Redis again.
    warnings = [r.getMessage() for r in caplog.records if r.name == "jobops.throttles"]
    assert len(warnings) == 1 and "unreachable" in warnings[0], warnings
    assert _login(ip="10.0.0.2").status_code == 200


def test_redis_is_tried_again_after_the_pause_and_takes_over_when_back(redis_down, monkeypatch, caplog):
    UserFactory(username="tech1")
    calls = []

    class Counting(RedisCache):
        def add(self, *args, **kwargs):
            calls.append("add")
            return super().add(*args, **kwargs)

    counting = Counting(redis_down._servers[0], {"OPTIONS": {"socket_connect_timeout": 2}})
    monkeypatch.setattr(throttles, "cache", counting)
    monkeypatch.setattr(throttles, "SHARED_CACHE_RETRY_SECONDS", 0.3)
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
