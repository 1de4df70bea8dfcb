"""Liveness and readiness probes for load balancers and Compose healthchecks (no auth, no data)."""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlparse

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks no dependency."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_cache() -> str:
    cache.set("jobops:readyz", "1", timeout=5)
    if cache.get("jobops:readyz") != "1":
        raise RuntimeError("cache did not return the value just written")
    return "ok" if settings.REDIS_URL else "in-process"


def _check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER or settings.CELERY_BROKER_URL.startswith("memory://"):
        return "in-process"
    url = urlparse(settings.CELERY_BROKER_URL)
    with socket.create_connection((url.hostname or "localhost", url.port or 5672), timeout=2):
        pass
    return "ok"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database, cache and broker answer. 503 names what is down."""
    checks = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
    results: dict[str, str] = {}
    down: list[str] = []
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure of a dependency means "not ready"
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = "down"
            down.append(name)
    body = {"status": "ok" if not down else "unavailable", "checks": results}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)
