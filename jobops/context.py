"""Per-request / per-task context used by the audit trail and the logs: the request id and where a change came from.

Context variables work for threads and for Celery tasks alike; the request middleware sets the request id and the
source (``api`` or ``admin``), Celery tasks and management commands use ``audit_context``, and
``audit.services.audit_record`` and ``jobops.logging.RequestIDFilter`` read them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

#: The sources an audit entry may have (``audit.models.AuditEntry.Source``).
SOURCES = frozenset({"api", "admin", "task", "command"})

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
source_var: ContextVar[str] = ContextVar("audit_source", default="api")
system_actor_var: ContextVar[str] = ContextVar("system_actor", default="")


def current_request_id() -> str:
    """The id of the request (or task run) being served, or ``""`` outside one."""
    return request_id_var.get()


@contextlib.contextmanager
def audit_context(*, source: str, system: str = "", request_id: str | None = None) -> Iterator[None]:
    """Run a block as ``source`` (api, admin, task, command); ``system`` names the task or command.

    Entries written by the system (``actor=None``) inside the block are labelled ``system:<system>``. A Celery task
    may pass the ``request_id`` of the request that queued it, so its entries and log lines correlate with it.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown audit source {source!r}; expected one of {sorted(SOURCES)}.")
    tokens = [(source_var, source_var.set(source)), (system_actor_var, system_actor_var.set(system))]
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
