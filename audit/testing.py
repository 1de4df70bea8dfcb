"""Test support for the append-only audit table (imported by ``tests/conftest.py`` only, never by the app).

On PostgreSQL the audit table rejects TRUNCATE unless the transaction set ``jobops.audit_prune = on`` (see
``audit/migrations/0002_append_only_trigger.py``). Django's ``flush`` command, which pytest-django runs after every
``transaction=True`` test to empty the database, is one ``TRUNCATE`` of every table in one transaction. While
``audit_flush_allowed()`` is active, the SQL that ``flush`` generates starts with the same ``set_config`` that
``prune_audit`` uses, scoped to the flush's own transaction; every other statement still meets the trigger.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .models import AuditEntry
from .services import PRUNE_FLAG_SQL


@contextlib.contextmanager
def audit_flush_allowed() -> Iterator[None]:
    """While active, Django's ``flush`` may TRUNCATE the audit table on PostgreSQL (test teardown only)."""
    try:
        from django.db.backends.postgresql.operations import DatabaseOperations
    except (ImportError, ImproperlyConfigured):  # no PostgreSQL driver: nothing to allow
        yield
        return
    original = DatabaseOperations.sql_flush
    table = AuditEntry._meta.db_table

    @functools.wraps(original)
    def sql_flush(self: Any, style: Any, tables: Any, **kwargs: Any) -> list[str]:
        statements = original(self, style, tables, **kwargs)
        if statements and table in tables:
            # Runs inside flush's transaction (execute_sql_flush wraps the list in atomic), before its TRUNCATE.
            return [f"{PRUNE_FLAG_SQL};", *statements]
        return statements

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]
    try:
        yield
    finally:
        DatabaseOperations.sql_flush = original  # type: ignore[method-assign]
