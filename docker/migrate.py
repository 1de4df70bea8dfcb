"""Apply migrations exactly once, however many web containers start at the same time.

On PostgreSQL the ``migrate`` runs while this process holds a session-level advisory lock: a second web replica
starting alongside waits for the first, then finds nothing left to apply. The lock is held on a connection of its
own, so whatever ``migrate`` does with the default connection cannot release it early; if this process dies, the
server drops its session and the lock with it. Before anything, the database gets ``JOBOPS_DB_WAIT_SECONDS``
(default 60) to accept connections, for orchestrators that start web before the database is up.
On SQLite (the embedded default) there is one process by definition, so ``migrate`` just runs.

Usage: ``python docker/migrate.py`` (the web entrypoint runs it; tests/deploy runs it against PostgreSQL).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobops.settings.base")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import OperationalError, connections  # noqa: E402
from django.db.backends.base.base import BaseDatabaseWrapper  # noqa: E402

#: Key of the advisory lock (any bigint; this is "JobOpsMi" read as ASCII). Shared by every JobOps process.
MIGRATION_LOCK_KEY = 0x4A6F624F70734D69


def log(message: str) -> None:
    print(f"migrate: {message}", file=sys.stderr, flush=True)


def wait_for_database(wrapper: BaseDatabaseWrapper, seconds: int) -> None:
    """Connect ``wrapper``, retrying once a second for up to ``seconds``; raise the last error after that."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            wrapper.ensure_connection()
            return
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                raise
            log(f"database not reachable yet ({str(exc).strip().splitlines()[0]}); retrying")
            time.sleep(1)


def main() -> int:
    default = connections["default"]
    wait_for_database(default, int(os.environ.get("JOBOPS_DB_WAIT_SECONDS", "60")))
    if default.vendor != "postgresql":
        call_command("migrate", interactive=False, verbosity=1)
        return 0

    lock_connection = connections.create_connection("default")
    try:
        with lock_connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
            (acquired,) = cursor.fetchone()
            if not acquired:
                log("another process is applying migrations; waiting for it to finish")
                cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        log("migration lock held")
        call_command("migrate", interactive=False, verbosity=1)
    finally:
        # Closing the session releases the lock even if migrate failed.
        lock_connection.close()
        log("migration lock released")
    return 0


if __name__ == "__main__":
    sys.exit(main())
