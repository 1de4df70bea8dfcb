"""Benchmark (not a test): a burst of webhook events delivered by real workers through RabbitMQ.

Creates a scratch database (default ``jobops_bench_webhooks``, dropped and re-created), migrates it, bulk-loads
``--events`` jobs with one change-feed row each (a burst of ``job.upserted`` events), registers ``--endpoints``
endpoints on a local receiver that answers every request after ``--latency-ms`` (default 50 ms), then:

1. runs the relay (``jobs.webhooks.relay_webhooks``) as beat would: feed rows -> one outbox row per (endpoint, event),
   and the on-commit hand-off to RabbitMQ (chunks fanned out by the workers);
2. times until every delivery is ``sent``, with ``--workers`` worker processes (``celery worker -c N``);
3. prints deliveries per second, the receiver's count (each ``webhook-id`` once), and the EXPLAIN of the outbox
   queries per batch (the requeue sweep's claim and the delivery's row lock) and of the relay's feed read.

    .venv/bin/python bench/webhooks.py [--events 10000] [--endpoints 3] [--workers 2] [--latency-ms 50]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and RabbitMQ (``--broker``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class Receiver:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.ids: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                time.sleep(receiver.latency)
                with receiver.lock:
                    receiver.ids.append(self.headers.get("webhook-id", ""))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--database", default="jobops_bench_webhooks")
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--broker", default=os.environ.get("CELERY_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"
    )
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    args = parser.parse_args()

    import psycopg

    admin_url = f"{args.server_url}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}"')
        conn.execute(f'CREATE DATABASE "{args.database}"')

    queue = f"jobops-bench-webhooks-{uuid.uuid4().hex[:8]}"
    env = {
        "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
        "DJANGO_SECRET_KEY": "bench-only-" + "k" * 40,
        "DATABASE_URL": f"{args.server_url}/{args.database}",
        "CELERY_BROKER_URL": args.broker,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "TIME_ZONE": os.environ.get("TIME_ZONE", "UTC"),
    }
    os.environ.update(env)
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    import datetime as dt

    from django.core.management import call_command
    from django.db import connection

    from accounts.models import User
    from jobs import feed
    from jobs.models import Change, Job
    from jobs.webhooks import relay_webhooks
    from notifications import webhooks
    from notifications.models import Notification

    call_command("migrate", verbosity=0)
    receiver = Receiver(args.latency_ms / 1000)
    admin = User.objects.create(username="admin", email="admin@example.com", role=User.Role.ADMIN)
    for n in range(args.endpoints):
        webhooks.webhook_create(
            actor=admin, data={"url": f"http://127.0.0.1:{receiver.port}/hook/{n}", "events": ["job.upserted"]}
        )
    relay_webhooks()  # the relay's cursor starts before the burst
    jobs = Job.objects.bulk_create(
        (
            Job(title=f"Burst {i}", client_name="ACME", scheduled_date=dt.date(2031, 1, 1), created_by=admin)
            for i in range(args.events)
        ),
        batch_size=5000,
    )
    from django.db import transaction

    with transaction.atomic():
        feed.record(*(feed.Touch(job.pk, (admin.pk,)) for job in jobs))
    print(f"burst: {args.events} events x {args.endpoints} endpoints; receiver latency {args.latency_ms:.0f} ms")

    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{queue}.log"
    log = log_path.open("w")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "jobops", "worker", "-P", "prefork", "-c", str(args.workers),
         "-Q", queue, "-n", f"{queue}@localhost", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-l", "WARNING"],
        cwd=REPO, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(3)
        started = time.monotonic()
        queued = relay_webhooks(max_pages=10_000)
        relayed = time.monotonic() - started
        total = args.events * args.endpoints
        print(f"relay: {queued} outbox rows in {relayed:.2f} s ({queued / max(relayed, 1e-9):,.0f} rows/s)")
        last = -1
        while time.monotonic() - started < args.timeout:
            sent = Notification.objects.filter(channel="webhook", status="sent").count()
            if sent != last:
                last = sent
            if sent >= total:
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        sent = Notification.objects.filter(channel="webhook", status="sent").count()
        print(f"delivered: {sent}/{total} in {elapsed:.1f} s with {args.workers} worker processes")
        print(f"throughput: {sent / elapsed:,.1f} deliveries/s (ceiling at {args.latency_ms:.0f} ms each: "
              f"{args.workers * 1000 / args.latency_ms:,.1f}/s)")  # fmt: skip
        with receiver.lock:
            ids = list(receiver.ids)
        print(f"receiver: {len(ids)} requests, {len(set(ids))} distinct webhook-ids")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        log.close()

    from django.utils import timezone

    from notifications.delivery import _grace

    now = timezone.now()
    sweep = (
        Notification.objects.select_for_update(skip_locked=True)
        .filter(status="pending", created_at__lte=now - _grace())
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:500]
    )
    with transaction.atomic(), connection.cursor() as cursor:
        for title, sql, params in (
            ("requeue sweep claim (per batch of 500)", *sweep.query.sql_with_params()),
            ("delivery row lock", "SELECT * FROM notifications_notification WHERE id = %s FOR UPDATE", [1]),
            (
                "relay feed read (admins' copy, per page of 500)",
                *Change.objects.filter(audience__isnull=True, txid__gt=0)
                .order_by("txid", "id")
                .values_list("txid", "id")[:501]
                .query.sql_with_params(),
            ),
        ):
            cursor.execute(f"EXPLAIN {sql}", params)
            print(f"\nEXPLAIN {title}:")
            for (line,) in cursor.fetchall():
                print(f"  {line}")
    if not args.keep:
        connection.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    return 0 if sent >= args.endpoints * args.events else 1


if __name__ == "__main__":
    sys.exit(main())
