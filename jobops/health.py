"""Liveness and readiness probes for load balancers and the Compose/Docker healthchecks (no auth, no data).

``/healthz/`` says the process answers and touches nothing else, so an orchestrator never restarts a healthy web
container because PostgreSQL blinked. ``/readyz/`` says this process can serve traffic now: the database, the
cache, the broker and the channel layer (the live stream's wakes) each answer. A failing dependency turns it into
a 503 whose body names what is down; the reason itself only goes to the log, because the probe is public.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

logger = logging.getLogger(__name__)

# A probe must answer well within the healthcheck's own timeout (5 s in docker-compose.yml).
BROKER_CONNECT_TIMEOUT = 2.0

# What a check reports when the embedded default runs the dependency inside this process.
IN_PROCESS = "in-process"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks no dependency."""
    return JsonResponse({"status": "ok"})


def check_database() -> str:
    """Run a trivial query on the default database connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_cache() -> str:
    """Write and read back a key unique to this process, so replicas sharing Redis never read each other's."""
    key = f"jobops:readyz:{socket.gethostname()}:{os.getpid()}"
    value = uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)
    return "ok" if settings.REDIS_URL else IN_PROCESS


def check_broker() -> str:
    """Open (and close) a real connection to ``CELERY_BROKER_URL``: TCP, then the AMQP/Redis handshake and login.

    A plain TCP probe would call a broker "ready" that refuses our credentials or lacks our vhost. With tasks
    running in-process (the embedded default) there is no broker to check.
    """
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or not url or url.startswith("memory://"):
        return IN_PROCESS
    with Connection(
        url,
        connect_timeout=BROKER_CONNECT_TIMEOUT,
        ssl=getattr(settings, "CELERY_BROKER_USE_SSL", None) or False,
        transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {},
    ) as conn:
        # max_retries=0: one attempt, no back-off sleeps; the caller (a probe) retries on its own schedule.
        # kombu-stubs say ``int``; kombu adds it to ``time()`` (and takes a float ``connect_timeout`` above).
        conn.ensure_connection(max_retries=0, timeout=BROKER_CONNECT_TIMEOUT)  # type: ignore[arg-type]
    return "ok"


CHANNEL_LAYER_TIMEOUT = 2.0


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    # A plain (not process-specific) channel: the layer reads it with one blocking pop, no background reader.
    channel = f"jobops.readyz.{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "readyz", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout=CHANNEL_LAYER_TIMEOUT)
    if message.get("token") != token:
        raise RuntimeError("the channel layer did not return the message just sent")


def check_channel_layer() -> str:
    """Send a message through the channel layer (Redis: what wakes the live stream of every web node) and receive it
    back. The in-memory layer of the embedded default lives in this process."""
    async_to_sync(_channel_layer_round_trip)()
    return "ok" if settings.REDIS_URL else IN_PROCESS


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "channel_layer": check_channel_layer,
}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache, broker and channel layer answer. 503 names what is down."""
    results: dict[str, str] = {}
    down: list[str] = []
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure of a dependency means "not ready", whatever its type
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = "down"
            down.append(name)
    body: dict[str, object] = {"status": "ok" if not down else "unavailable", "checks": results}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)
