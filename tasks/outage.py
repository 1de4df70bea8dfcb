"""What a task does while PostgreSQL cannot be reached (``jobops.unavailable``'s one rule decides what that is).

A beat task that runs again within seconds (the webhook relay, the outbox sweep) skips the run with one WARNING:
its next run catches up, and a traceback at ERROR every two seconds of an outage would bury the log. A task with
work that must happen (a delivery, the daily overdue sweep) retries later instead (``retry_later``). Any other
error propagates as before.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from jobops.unavailable import discard_broken_connections, unavailable_reason

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def database_unreachable(exc: BaseException) -> str | None:
    """The reason when ``exc`` means the database cannot be reached now (its broken connections are closed, so
    the next run opens fresh ones); ``None`` for any other error."""
    reason = unavailable_reason(exc)
    if reason is not None:
        discard_broken_connections()
    return reason


def skip_while_database_unreachable(task: Callable[P, R]) -> Callable[P, R | None]:
    """Decorate a frequent beat task's body: an unreachable database skips this run (``None``) with a WARNING."""

    @functools.wraps(task)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return task(*args, **kwargs)
        except Exception as exc:
            reason = database_unreachable(exc)
            if reason is None:
                raise
            logger.warning(
                "%s skipped: the database is unreachable (%s); its next run catches up", task.__name__, reason
            )
            return None

    return run
