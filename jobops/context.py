"""Per-request / per-task context used by the audit trail: the request id and where a change came from.

Context variables work for threads and for Celery tasks alike; the middleware, the admin, management commands and
Celery tasks set them, and ``audit.services.audit_record`` reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
source_var: ContextVar[str] = ContextVar("audit_source", default="api")
system_actor_var: ContextVar[str] = ContextVar("system_actor", default="")


@contextlib.contextmanager
def audit_context(*, source: str, system: str = "", request_id: str | None = None) -> Iterator[None]:
    """Run a block as ``source`` (api, admin, task, command); ``system`` names the task or command."""
    tokens = [(source_var, source_var.set(source)), (system_actor_var, system_actor_var.set(system))]
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
