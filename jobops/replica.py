"""Report reads on a PostgreSQL streaming replica (``DATABASE_REPLICA_URL``): the one place that decides.

**The rule.** A view action that is a report (analytics, equipment usage, the audit listing) opts in with
``@replica_reads``; every read its body makes goes to the ``replica`` alias. Everything else (every write, every
lock, authentication and token checks, which DRF runs before the action, and every read a client needs right after
its own write: the job and task APIs, the change feed, idempotency) stays on ``default``, the primary. The
selectors stay alias-agnostic: the same ``job_scope`` serves the primary-routed job API and the replica-routed
analytics, and the scope is still decided once.

**How.** ``ReplicaRouter`` (``DATABASE_ROUTERS``) sends a read to the replica only while ``replica_reads`` runs a
body (a context variable, so threads and ASGI tasks never see another request's choice); it never sends a write
there (``db_for_write`` is always ``default``, and ``select_for_update()`` counts as a write), and only
``default`` is migrated.

**When the standby is down.** A connection error on the replica (``OperationalError``/``InterfaceError``) trips a
per-process circuit breaker and the body runs again on the primary: the client gets its answer, a little fresher.
For ``DATABASE_REPLICA_RETRY_SECONDS`` (5 s) the reports go straight to the primary without trying the replica, so
an unreachable standby costs at most one connect timeout (2 s, ``DATABASE_REPLICA_CONNECT_TIMEOUT``) per process
per retry interval, not one per request; after it, the next report tries the replica again.

A query the standby cancels (a conflict with WAL replay: keep ``hot_standby_feedback = on`` there) is an
``OperationalError`` too, and is answered the same way: from the primary, with the breaker tripped.

A body must be a read that finishes inside the call (evaluate querysets, build the response data), since it may
run twice. Without ``DATABASE_REPLICA_URL`` there is no ``replica`` alias and nothing here changes anything.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

logger = logging.getLogger("jobops.replica")

REPLICA_ALIAS = "replica"

P = ParamSpec("P")
R = TypeVar("R")

#: True while a ``replica_reads`` body runs with the replica available (the router reads it).
_on_replica: ContextVar[bool] = ContextVar("jobops_replica_reads", default=False)


class CircuitBreaker:
    """Per process: after a failure the replica is not tried for ``retry_seconds`` (monotonic clock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0

    def available(self) -> bool:
        with self._lock:
            return self._clock() >= self._down_until

    def trip(self, retry_seconds: float) -> None:
        with self._lock:
            self._down_until = self._clock() + retry_seconds

    def reset(self) -> None:
        with self._lock:
            self._down_until = 0.0


breaker = CircuitBreaker()


def configured() -> bool:
    """Whether a replica is configured (``DATABASE_REPLICA_URL``)."""
    return REPLICA_ALIAS in settings.DATABASES


def report_alias() -> str:
    """The alias a report read would use now: the replica when configured and not tripped, else ``default``."""
    return REPLICA_ALIAS if configured() and breaker.available() else DEFAULT_DB_ALIAS


def current_alias() -> str:
    """The alias reads are routed to at this point of the code (``default`` outside a ``replica_reads`` body)."""
    return REPLICA_ALIAS if _on_replica.get() else DEFAULT_DB_ALIAS


def _discard_replica_connection() -> None:
    # The broken connection must not be reused by the next request of this thread.
    try:
        connections[REPLICA_ALIAS].close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways; it is gone either way
        logger.debug("closing the replica connection failed", exc_info=True)


def run_report(read: Callable[[], R]) -> R:
    """``read()`` with its reads on the replica when one is configured and available; on a connection error there,
    the breaker trips and ``read()`` runs again on the primary. ``read`` must have no side effects."""
    if report_alias() != REPLICA_ALIAS or _on_replica.get():
        return read()
    token = _on_replica.set(True)
    try:
        return read()
    except (OperationalError, InterfaceError) as exc:
        retry = float(getattr(settings, "DATABASE_REPLICA_RETRY_SECONDS", 5.0))
        breaker.trip(retry)
        logger.warning("replica read failed, reports read the primary for %.1f s: %s", retry, str(exc).strip())
        _discard_replica_connection()
    finally:
        _on_replica.reset(token)
    return read()


def replica_reads(action: Callable[P, R]) -> Callable[P, R]:
    """Decorate a read-only view action (a report) so that its reads go to the replica (``run_report``)."""

    @functools.wraps(action)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_report(lambda: action(*args, **kwargs))

    return wrapper


class ReplicaRouter:
    """Reads inside ``replica_reads`` go to the replica; writes, migrations and every other read to ``default``."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return REPLICA_ALIAS if _on_replica.get() else DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        # Also for an instance read from the replica: without a router Django would save it where it came from.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two copies

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # a standby is read-only and replays the primary's schema
