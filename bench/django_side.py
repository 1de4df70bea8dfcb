"""The parts of the benchmark that need Django, run as a subprocess with the benchmark server's environment.

    python bench/django_side.py hash-password          # BENCH_PASSWORD from the environment -> a Django hash
    python bench/django_side.py mint-tokens ID [ID...]  # -> {"ID": "<access JWT>"} (simplejwt, same signing key)
    python bench/django_side.py explain SPEC.json       # -> the SQL each GET issues, with EXPLAIN (ANALYZE) plans
    python bench/django_side.py feed-backlog N          # -> a cursor followed by N jobs and one task of each changed

``explain`` sends each request through Django's test client (the same URL, token and middleware as the load
test), captures its statements with ``CaptureQueriesContext`` and runs ``EXPLAIN (ANALYZE, FORMAT JSON)`` on each
SELECT. It reports every sequential scan on the big tables, so "each list statement uses an index" is checked on
the benchmark data rather than assumed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobops.settings.base")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

BIG_TABLES = ("jobs_job", "jobs_jobtask", "audit_auditentry")


def hash_password() -> None:
    from django.contrib.auth.hashers import make_password

    print(make_password(os.environ["BENCH_PASSWORD"]))


def mint_tokens(user_ids: list[str]) -> None:
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    users = get_user_model().objects.in_bulk([int(uid) for uid in user_ids])
    print(json.dumps({str(uid): str(AccessToken.for_user(user)) for uid, user in users.items()}))


def _walk(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_walk(child))
    return nodes


def explain(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    client = Client(HTTP_HOST="127.0.0.1")
    report = []
    for item in spec:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(item["path"], HTTP_AUTHORIZATION=f"Bearer {item['token']}")
        statements = []
        for query in ctx.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                statements.append({"sql": sql, "plan": None, "seq_scans": [], "ms": float(query["time"]) * 1000})
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                raw = cursor.fetchone()[0]
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            nodes = _walk(plan["Plan"])
            statements.append(
                {
                    "sql": sql,
                    "seq_scans": sorted(
                        {n.get("Relation Name", "?") for n in nodes if n.get("Node Type") == "Seq Scan"}
                    ),
                    "scans": sorted(
                        {
                            n["Node Type"]
                            + (f" on {n['Relation Name']}" if n.get("Relation Name") else "")
                            + (f" using {n['Index Name']}" if n.get("Index Name") else "")
                            for n in nodes
                            if "Scan" in n.get("Node Type", "")
                        }
                    ),
                    "execution_ms": plan.get("Execution Time"),
                    "planning_ms": plan.get("Planning Time"),
                    "plan": plan,
                }
            )
        big_seq = sorted({t for s in statements for t in s["seq_scans"] if t in BIG_TABLES})
        report.append(
            {
                "name": item["name"],
                "path": item["path"],
                "is_list": item.get("is_list", True),
                "status": response.status_code,
                "queries": len(statements),
                "seq_scans_on_big_tables": big_seq,
                "statements": statements,
            }
        )
    print(json.dumps(report))


def feed_backlog(count: str) -> None:
    """Record a change to ``count`` open jobs and the first task of each (as the services do, in one transaction),
    after a cursor taken first: the feed endpoint's fixed window of changes."""
    from django.db import transaction

    from jobs import feed
    from jobs.models import Job

    cursor = feed.current_cursor()
    jobs = Job.objects.filter(tasks__isnull=False).distinct().order_by("id")[: int(count)]
    with transaction.atomic():
        feed.record(
            *(feed.touch(job, tasks=job.tasks.order_by("order").values_list("pk", flat=True)[:1]) for job in jobs)
        )
    print(cursor)


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else ""
    if command == "hash-password":
        hash_password()
    elif command == "mint-tokens":
        mint_tokens(argv[2:])
    elif command == "explain":
        explain(argv[2])
    elif command == "feed-backlog":
        feed_backlog(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
