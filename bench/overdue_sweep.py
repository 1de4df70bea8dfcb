"""Benchmark (not a test): the overdue sweep over 100k jobs on PostgreSQL.

Creates a scratch database (default ``jobops_bench_sweep``, dropped and re-created each run), migrates it, bulk-loads
``--jobs`` jobs (80 % open and scheduled in the past, 10 % in the future, 5 % closed in the past, 5 % in the future
but wrongly flagged) and runs ``jobs.sweep.jobs_flag_overdue`` as the beat task would, reporting wall time, SQL
statement count, rows changed and outbox rows queued; then runs it again to show that the second run is free and
changes nothing. Publishing the outbox ids to a broker is not part of what is measured (the on-commit hand-off is
replaced by a counter; its cost is one publish per email on the worker, after the commit).

    .venv/bin/python bench/overdue_sweep.py [--jobs 100000] [--batch-size 1000] [--keep]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) unless ``--server-url`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--database", default="jobops_bench_sweep")
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print SQL time by statement kind")
    args = parser.parse_args()

    import psycopg

    admin_url = f"{args.server_url}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        conn.execute(f'CREATE DATABASE "{args.database}"')

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
            "DJANGO_SECRET_KEY": "bench-only-" + "k" * 40,
            "DATABASE_URL": f"{args.server_url}/{args.database}",
            "LOG_LEVEL": "WARNING",
            "TIME_ZONE": os.environ.get("TIME_ZONE", "UTC"),
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    import notifications.services as outbox
    from accounts.models import User
    from audit.models import AuditEntry
    from jobops.context import audit_context
    from jobs.models import Job
    from jobs.sweep import SYSTEM_ACTOR, jobs_flag_overdue
    from notifications.models import Notification

    try:
        call_command("migrate", verbosity=0)
        rng = random.Random(args.seed)
        today = timezone.localdate()
        technicians = User.objects.bulk_create(
            User(username=f"tech{i}", email=f"tech{i}@example.com", role=User.Role.TECHNICIAN) for i in range(50)
        )
        agents = User.objects.bulk_create(
            User(username=f"sales{i}", email=f"sales{i}@example.com", role=User.Role.SALES_AGENT) for i in range(10)
        )
        now = timezone.now()
        expected_flag = expected_clear = 0
        jobs = []
        for i in range(args.jobs):
            roll = rng.random()
            status, overdue, completed_at = Job.Status.PENDING, False, None
            if roll < 0.80:
                scheduled = today - dt.timedelta(days=rng.randint(1, 60))
                status = rng.choice([Job.Status.PENDING, Job.Status.IN_PROGRESS])
                expected_flag += 1
            elif roll < 0.90:
                scheduled = today + dt.timedelta(days=rng.randint(0, 60))
            elif roll < 0.95:
                scheduled = today - dt.timedelta(days=rng.randint(1, 60))
                status = rng.choice([Job.Status.COMPLETED, Job.Status.CANCELLED])
                completed_at = now if status == Job.Status.COMPLETED else None
            else:
                scheduled = today + dt.timedelta(days=rng.randint(0, 60))
                overdue = True
                expected_clear += 1
            jobs.append(
                Job(
                    title=f"Job {i}",
                    client_name=f"Client {i % 997}",
                    scheduled_date=scheduled,
                    status=status,
                    overdue=overdue,
                    completed_at=completed_at,
                    created_by=agents[i % len(agents)],
                    assigned_to=technicians[i % len(technicians)] if i % 10 else None,
                )
            )
        started = time.perf_counter()
        Job.objects.bulk_create(jobs, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"loaded {args.jobs:,} jobs in {time.perf_counter() - started:.1f} s")

        handed_over: list[int] = []
        outbox.enqueue_deliveries = lambda ids: handed_over.extend(ids) or len(ids)  # type: ignore[assignment]

        def run(label: str) -> None:
            handed_over.clear()
            with audit_context(source="task", system=SYSTEM_ACTOR), CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                result = jobs_flag_overdue(today=today, batch_size=args.batch_size)
                elapsed = time.perf_counter() - started
            sql_time = sum(float(q["time"]) for q in ctx.captured_queries)
            print(
                f"{label}: {elapsed:.2f} s wall, {len(ctx.captured_queries)} SQL statements ({sql_time:.2f} s in SQL); "
                f"flagged {result.flagged:,}, cleared {result.cleared:,}, outbox rows {result.notifications:,}, "
                f"ids handed to the broker after commit {len(handed_over):,}"
            )
            if args.profile:
                kinds: dict[str, list[float]] = {}
                for q in ctx.captured_queries:
                    sql = q["sql"]
                    key = sql[:60] + (" ... FOR UPDATE" if "FOR UPDATE" in sql else "")
                    kinds.setdefault(key, []).append(float(q["time"]))
                for key, times in sorted(kinds.items(), key=lambda kv: -sum(kv[1]))[:8]:
                    print(f"    {sum(times):8.2f} s  {len(times):4d} x  {key}")

        print(f"sweep of {args.jobs:,} jobs, batch size {args.batch_size}, today {today} ({os.environ['TIME_ZONE']})")
        run("first run ")
        run("second run")
        flagged = Job.objects.filter(overdue=True).count()
        should = Job.objects.filter(status__in=Job.OPEN_STATUSES, scheduled_date__lt=today).count()
        print(
            f"check: overdue={flagged:,} expected={should:,} (generated {expected_flag:,} to flag, "
            f"{expected_clear:,} to clear); audit entries={AuditEntry.objects.count():,}; "
            f"outbox rows={Notification.objects.count():,}"
        )
        return 0 if flagged == should == expected_flag else 1
    finally:
        connection.close()
        if not args.keep:
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')


if __name__ == "__main__":
    raise SystemExit(main())
