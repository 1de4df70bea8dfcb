"""/healthz/ (liveness, no dependencies) and /readyz/ (database, cache, broker, channel layer; 503 naming what is
down)."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError, connection
from django.test import Client, override_settings

from tests.conftest import require_service

from .support import broker_available, broker_url, free_port, redis_available, redis_url

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "readyz-test"}}
IN_MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def redis_layer(url: str) -> dict:
    return {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url], "prefix": "readyz"}}
    }


def embedded(**extra):
    """REDIS_URL unset: local-memory cache and the in-memory channel layer, as in the embedded default."""
    return override_settings(REDIS_URL="", CACHES=LOCMEM, CHANNEL_LAYERS=IN_MEMORY_LAYER, **extra)


def redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


def real_broker(url: str):
    return override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=url)


@pytest.fixture
def client() -> Client:
    return Client()


def test_healthz_needs_no_dependency(client):
    # No `db` fixture: pytest-django would raise on any database access. Broker and cache point at closed ports.
    closed = free_port()
    with (
        real_broker(f"amqp://guest:guest@127.0.0.1:{closed}//"),
        override_settings(
            REDIS_URL=f"redis://127.0.0.1:{closed}/0", CACHES=redis_cache(f"redis://127.0.0.1:{closed}/0")
        ),
    ):
        response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_on_the_embedded_default_reports_in_process(client):
    with embedded(CELERY_TASK_ALWAYS_EAGER=True, CELERY_BROKER_URL="memory://"):
        response = client.get("/readyz/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "in-process", "broker": "in-process", "channel_layer": "in-process"},
    }
    assert "no-cache" in response["Cache-Control"]
    assert response["X-Request-ID"]


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_readyz_503_names_the_broker_on_a_closed_port(client, caplog, scheme):
    port = free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}//" if scheme == "amqp" else f"redis://127.0.0.1:{port}/0"
    with embedded(), real_broker(url), caplog.at_level(logging.WARNING):
        response = client.get("/readyz/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["broker"]
    assert body["checks"] == {"database": "ok", "cache": "in-process", "broker": "down", "channel_layer": "in-process"}
    # The reason goes to the log, not to the public response.
    assert "refused" not in response.content.decode().lower()
    assert any("broker" in r.getMessage() and "refused" in r.getMessage().lower() for r in caplog.records)


@pytest.mark.django_db
def test_readyz_503_names_the_cache_and_the_channel_layer_when_redis_is_down(client):
    url = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(REDIS_URL=url, CACHES=redis_cache(url), CHANNEL_LAYERS=redis_layer(url)):
        response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["down"] == ["cache", "channel_layer"]
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_503_names_the_database(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    with embedded():
        response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["down"] == ["database"]
    assert response.json()["checks"]["cache"] == "in-process"


@pytest.mark.django_db
def test_readyz_lists_every_failing_dependency(client, monkeypatch):
    monkeypatch.setattr(connection, "cursor", lambda *a, **k: (_ for _ in ()).throw(OperationalError("down")))
    closed = free_port()
    url = f"redis://127.0.0.1:{closed}/0"
    with override_settings(REDIS_URL=url, CACHES=redis_cache(url), CHANNEL_LAYERS=redis_layer(url)), real_broker(url):
        response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["down"] == ["database", "cache", "broker", "channel_layer"]


@pytest.mark.django_db
def test_readyz_and_healthz_only_answer_get(client):
    assert client.post("/readyz/").status_code == 405
    assert client.post("/healthz/").status_code == 405


@pytest.mark.services
@pytest.mark.django_db
def test_readyz_with_the_real_broker_and_redis(client):
    amqp, redis = broker_url(), redis_url()
    require_service("RabbitMQ", broker_available(amqp), "set CELERY_BROKER_URL to a RabbitMQ (amqp://)")
    require_service("Redis", redis_available(redis), "set REDIS_URL to a Redis")
    with (
        override_settings(REDIS_URL=redis, CACHES=redis_cache(redis), CHANNEL_LAYERS=redis_layer(redis)),
        real_broker(amqp),
    ):
        response = client.get("/readyz/")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok", "channel_layer": "ok"}


@pytest.mark.services
@pytest.mark.django_db
def test_readyz_broker_check_logs_in(client):
    # A TCP probe would pass here: the port is open, but the broker refuses these credentials.
    amqp = broker_url()
    require_service("RabbitMQ", broker_available(amqp), "set CELERY_BROKER_URL to a RabbitMQ (amqp://)")
    host_part = amqp.split("@", 1)[-1]
    with embedded(), real_broker(f"amqp://nobody:wrong-password@{host_part}"):
        response = client.get("/readyz/")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker"]
