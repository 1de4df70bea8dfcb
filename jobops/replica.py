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

**When the standby is down.** The standby unreachable (``jobops.unavailable``'s one rule: refused, dropped,
shutting down or starting up, a connect timeout) trips a per-process circuit breaker (``jobops.breaker``) and the
body runs again on the primary: the client gets its answer, a little fresher. For
``DATABASE_REPLICA_RETRY_SECONDS`` (5 s) the reports go straight to the primary without trying the replica, so an
unreachable standby costs at most one connect timeout (2 s, ``DATABASE_REPLICA_CONNECT_TIMEOUT``) per process per
retry interval, not one per request; after it, one report of the process tries the replica again.

**When the standby falls behind.** Replication that stalls (replay paused or too slow, the stream broken) would
serve ever older reports. Each process measures the standby's replay lag (``LAG_SQL``, one query on it) at most
every ``DATABASE_REPLICA_RETRY_SECONDS``; while it is above ``DATABASE_REPLICA_MAX_LAG_SECONDS`` (30 s; 0 turns the
check off) the reports read the primary, and they go back to the standby once a later measure finds it caught up.

A query the standby cancels to replay WAL (SQLSTATE 40001 "conflict with recovery": keep ``hot_standby_feedback =
on`` there) is answered the same way: from the primary, with the breaker tripped. Any other error propagates as it
would on the primary: a statement timeout (57014) of a heavy report, bad credentials, a bug. Running those again on
the primary would only double their cost, and tripping the breaker would move every report there.

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

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from . import unavailable
from .breaker import CircuitBreaker

logger = logging.getLogger("jobops.replica")

REPLICA_ALIAS = "replica"

P = ParamSpec("P")
R = TypeVar("R")

#: True while a ``replica_reads`` body runs with the replica available (the router reads it).
_on_replica: ContextVar[bool] = ContextVar("jobops_replica_reads", default=False)


#: Per process: after the standby failed, reports read the primary for ``DATABASE_REPLICA_RETRY_SECONDS``.
breaker = CircuitBreaker()


def configured() -> bool:
    """Whether a replica is configured (``DATABASE_REPLICA_URL``)."""
    return REPLICA_ALIAS in settings.DATABASES


def report_alias() -> str:
    """The alias a report read would use now: the replica when configured and not tripped, else ``default``."""
    return REPLICA_ALIAS if configured() and breaker.available() else DEFAULT_DB_ALIAS


def standby_failure(exc: BaseException) -> str | None:
    """Why the standby could not answer ``exc``'s query, or ``None`` when the error is the query's own (a statement
    timeout, a bug) and must propagate: the database unreachable (``jobops.unavailable``'s one rule) or the
    standby cancelling the query to replay WAL (SQLSTATE 40001, "conflict with recovery")."""
    reason = unavailable.unavailable_reason(exc)
    if reason is not None and reason != unavailable.TRANSIENT_SQLSTATES["40001"]:
        return reason
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, psycopg.Error):
            if exc.sqlstate == "40001" and "conflict with recovery" in str(exc):
                return "recovery_conflict"
            return None
        exc = exc.__cause__  # type: ignore[assignment]
    return None


#: The standby's replay lag in seconds: 0 while its WAL receiver runs and it has replayed all it received (an idle
#: primary sends nothing, and the standby is then current however old its last replayed transaction); otherwise the
#: age of the last transaction it replayed (replay paused or slow, or the stream broken). ``pg_stat_wal_receiver``
#: has a row only while the receiver process runs, and shows it to every role (its other columns need
#: ``pg_read_all_stats``), so the app's own unprivileged role can measure.
LAG_SQL = """
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver)
         AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
END
"""


def measure_lag() -> float:
    """The standby's replay lag in seconds (``LAG_SQL`` on the replica connection; its errors propagate)."""
    with connections[REPLICA_ALIAS].cursor() as cursor:
        cursor.execute(LAG_SQL)
        row = cursor.fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


class LagGuard:
    """Per process: whether the standby is further behind than ``DATABASE_REPLICA_MAX_LAG_SECONDS``, measured on
    the standby by one caller at most every ``DATABASE_REPLICA_RETRY_SECONDS`` (the others use the last answer)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, measure: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._measure = measure or measure_lag
        self._lock = threading.Lock()
        self._measured_at: float | None = None
        self.behind = False
        self.lag = 0.0

    def too_far_behind(self) -> bool:
        """Call on the standby's connection (inside a report's replica read): a connection error propagates."""
        limit = float(settings.DATABASE_REPLICA_MAX_LAG_SECONDS)
        if limit <= 0:
            return False
        now = self._clock()
        with self._lock:
            interval = float(settings.DATABASE_REPLICA_RETRY_SECONDS)
            if self._measured_at is not None and now - self._measured_at < interval:
                return self.behind
            self._measured_at = now
        self.lag = self._measure()
        behind = self.lag > limit
        if behind != self.behind:
            if behind:
                logger.warning("replica %.1f s behind (limit %.1f s): reports read the primary", self.lag, limit)
            else:
                logger.info("replica caught up (%.1f s behind): reports read it again", self.lag)
        self.behind = behind
        return behind

    def reset(self) -> None:
        with self._lock:
            self._measured_at = None
            self.behind = False


lag_guard = LagGuard()


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
    """``read()`` with its reads on the replica when one is configured, available and not too far behind; on a
    connection error there, the breaker trips and ``read()`` runs again on the primary. ``read`` must have no side
    effects."""
    if _on_replica.get() or not configured() or not breaker.allow():
        return read()
    token = _on_replica.set(True)
    try:
        if not lag_guard.too_far_behind():
            result = read()
            breaker.succeeded()
            return result
        breaker.succeeded()  # it answered; it is only too far behind: the primary reads this one
    except Exception as exc:
        reason = standby_failure(exc)
        if reason is None:
            raise
        retry = float(getattr(settings, "DATABASE_REPLICA_RETRY_SECONDS", 5.0))
        breaker.trip(retry)
        logger.warning(
            "replica read failed (%s), reports read the primary for %.1f s: %s", reason, retry, str(exc).strip()
        )
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
