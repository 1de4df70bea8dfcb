"""The scale-out drill (``make drill``): many nodes, real faults, figures.

Starts 2 gunicorn web nodes, 2 ASGI nodes (gunicorn + uvicorn workers: the live stream), 2 Celery workers and 1
beat, on one PostgreSQL (a primary with a streaming standby of the drill's own, ``ops/pgpair.py``), RabbitMQ and
Redis, each reached through a TCP fault proxy the drill controls (``ops/faultproxy.py``). It drives a bounded mixed
load (technicians working through their days with idempotency keys and retries, sales agents creating and editing
jobs, admins reading the reports, WebSocket listeners and feed readers following the change feed, sinks counting
every email, push, SMS and webhook), injects faults on a schedule, then checks:

- the task invariants on every job;
- one audit entry per change of each acknowledged write (matched by the clients' request ids), none for refused ones;
- every outbox row delivered exactly once (the sinks count them by the id each message carries);
- every WebSocket listener's and feed reader's view equals the database;
- no response 500, in the clients' logs or the servers' access logs.

It ends with a 300-technician login storm and writes ``REPORT.md`` and ``timeline.png`` into ``--out``; the last
line it prints is ``drill: invariant_violations=N lost=N duplicated=N feed_gaps=N http_500=N recovery_s=N``, and it
exits non-zero when any count is not 0 or the recovery took longer than the target.

    python ops/drill.py --duration 240              # what `make drill` runs (DURATION=...)
    python ops/drill.py --duration 100 --short      # the CI form (tests/ops/test_drill.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ops import load  # noqa: E402
from ops.faultproxy import Control, free_port  # noqa: E402
from ops.load import Client, Recorder, Stack, View  # noqa: E402
from ops.sinks import Sinks, b64url  # noqa: E402

PY = sys.executable
DB_NAME = "jobops_drill"
PASSWORD = "drill-Field-Pass-2026"
#: A throw-away RabbitMQ virtual host per drill (made and deleted with rabbitmqctl on this machine's RabbitMQ).
VHOST = f"jobops-drill-{os.getpid()}"
#: The file that marks a directory as a drill's output (``--out`` is emptied only when it carries it).
MARKER = ".jobops-drill"
#: Target: every request succeeds again within this many seconds after a fault ends.
RECOVERY_TARGET_S = 10.0
#: After a fault ends, failures within this window are counted as the fault's.
FAULT_TAIL_S = 30.0
#: The outbox has caught up when no pending row is older than this (seconds).
CAUGHT_UP_AGE_S = 10.0


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def port_of(url: str) -> int:
    return urlsplit(url).port or 5432


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- processes -------------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"\n--- start #{self.starts} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 90) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if not self.ready_url:
                return 0.0
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole node: its master and every worker process (a process group of its own)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


class FaultProxy:
    def __init__(self, out: Path, routes: dict[str, tuple[str, int]]) -> None:
        self.control = Control(free_port())
        self.ports = {name: free_port() for name in routes}
        command = [PY, str(REPO / "ops" / "faultproxy.py"), "--control", f"127.0.0.1:{self.control.port}"]
        for name, (host, port) in routes.items():
            command += ["--route", f"{name}={self.ports[name]}:{host}:{port}"]
        self.proc = Proc("faultproxy", command, dict(os.environ), out / "faultproxy.log")

    def start(self) -> None:
        self.proc.start()
        for _ in range(100):
            if "ready" in self.proc.log_path.read_text():
                return
            time.sleep(0.1)
        raise RuntimeError("the fault proxy did not start")

    def cut(self, route: str) -> None:
        self.control.cut(route)

    def restore(self, route: str) -> None:
        self.control.restore(route)


# --- the run ---------------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    start: float
    end: float = 0.0
    note: str = ""
    failed: int = 0
    recovery_s: float = 0.0


@dataclass
class Drill:
    args: argparse.Namespace
    out: Path
    rng: random.Random
    sinks: Sinks = field(default_factory=Sinks)
    procs: dict[str, Proc] = field(default_factory=dict)
    proxy: FaultProxy | None = None
    pair: Any = None  # ops.pgpair's pair when the drill runs its own primary and standby
    primary_url: str = ""  # direct (the drill's own checks and samples never go through the proxy)
    standby_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    outbox: list[tuple[float, int, float]] = field(default_factory=list)  # (t, pending rows, oldest pending age)
    figures: dict[str, Any] = field(default_factory=dict)

    # --- setup ---------------------------------------------------------------------------------------------------
    def database(self) -> None:
        if self.args.no_replica:
            base = self.args.pg.rstrip("/")
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            self.primary_url = f"{base}/{DB_NAME}"
            return
        from ops import pgpair

        started = time.monotonic()
        # The postgres user must be able to enter the pair's directory: a fresh one under the system's temp dir.
        pg_dir = Path(tempfile.mkdtemp(prefix="jobops-drill-pg-"))
        try:
            self.pair = pgpair.start(pg_dir, primary_port=free_port(), standby_port=free_port(), dbname=DB_NAME)
        except BaseException:
            shutil.rmtree(pg_dir, ignore_errors=True)
            raise
        self.primary_url = self.pair.primary_url
        self.standby_url = self.pair.standby_url
        self.figures["pair_start_s"] = round(time.monotonic() - started, 1)
        log(f"PostgreSQL pair up in {self.figures['pair_start_s']} s: {self.primary_url} -> {self.standby_url}")

    def app_env(self) -> dict[str, str]:
        assert self.proxy is not None
        ports = self.proxy.ports
        key = ec.generate_private_key(ec.SECP256R1())
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "CELERY_", "EMAIL_", "JWT_", "LOGIN_", "REDIS_", "CACHE_", "GUNICORN_"))
            and k not in ("DATABASE_URL", "DATABASE_REPLICA_URL", "LOG_LEVEL", "LOG_FORMAT", "PORT", "TIME_ZONE")
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": "drill-" + b64url(os.urandom(32)),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": with_port(self.primary_url, ports["pg"]),
                "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/12",
                "CACHE_KEY_PREFIX": f"jobops-drill-{os.getpid()}",
                "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{ports['amqp']}/{VHOST}",
                "CELERY_RESULT_BACKEND": f"redis://127.0.0.1:{ports['redis']}/11",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(self.sinks.smtp_port),
                "DEFAULT_FROM_EMAIL": "jobops@example.com",
                "VAPID_PRIVATE_KEY": b64url(key.private_numbers().private_value.to_bytes(32, "big")),
                "VAPID_SUBJECT": "mailto:ops@example.com",
                "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                "TWILIO_AUTH_TOKEN": "drill-token",
                "TWILIO_FROM": "+15005550006",
                "TWILIO_API_BASE_URL": self.sinks.twilio_base,
                "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
                # A shift starts behind one site address: the per-address login limit is raised, as such a site
                # must (README, "Reliability"); the per-account limits stay at their defaults.
                "LOGIN_RATE_PER_IP": "5000/min",
                "JWT_ACCESS_MINUTES": "240",
                "LOG_LEVEL": "INFO",
                "LOG_FORMAT": "json",
                "TIME_ZONE": "UTC",
                "JOBOPS_VAR_DIR": str(self.out / "var"),
                "JOBOPS_PLAIN_STATIC": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        if self.standby_url:
            env["DATABASE_REPLICA_URL"] = self.standby_url
        return env

    def manage(self, *command: str, direct: bool = True, stdin: str | None = None) -> str:
        env = dict(self.env)
        if direct:
            env["DATABASE_URL"] = self.primary_url
        result = subprocess.run(
            [PY, "manage.py", *command], cwd=REPO, env=env, input=stdin, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {command[0]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def seed(self) -> dict[str, Any]:
        """Users (the storm's technicians include the load's), equipment, phones for SMS; one hash for everyone."""
        script = f"""
import json
from django.contrib.auth.hashers import make_password
from accounts.models import User
from equipment.models import Equipment
hashed = make_password({PASSWORD!r})
users = []
for i in range(1, {self.args.admins} + 1):
    users.append(User(username=f"admin{{i}}", email=f"admin{{i}}@example.com", role="admin", is_staff=True,
                      password=hashed))
for i in range(1, {self.args.sales} + 1):
    users.append(User(username=f"sales{{i}}", email=f"sales{{i}}@example.com", role="sales_agent", password=hashed))
for i in range(1, {max(self.args.storm_users, self.args.technicians)} + 1):
    users.append(User(username=f"tech{{i:03d}}", email=f"tech{{i:03d}}@example.com", role="technician",
                      phone=f"+1415555{{i:04d}}", password=hashed))
User.objects.bulk_create(users)
kinds = ["tool", "machine", "vehicle", "accessory", "other"]
Equipment.objects.bulk_create(
    Equipment(name=f"Drill kit {{i}}", type=kinds[i % 5], serial_number=f"DRILL-{{i:04d}}") for i in range(12)
)
print(json.dumps({{"equipment": list(Equipment.objects.values_list("id", flat=True))}}))
"""
        return json.loads(self.manage("shell", stdin=script).strip().splitlines()[-1])

    def rabbit_vhost(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True, check=False)
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], capture_output=True, check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
            capture_output=True,
            check=True,
        )

    def start_stack(self) -> Stack:
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        web, ws = [], []
        for i in (1, 2):
            port = free_port()
            env = {**self.env, "GUNICORN_WORKERS": str(self.args.web_workers)}
            self.procs[f"web{i}"] = Proc(
                f"web{i}",
                [PY, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
                env,
                logs / f"web{i}.log",
                f"http://127.0.0.1:{port}/healthz/",
            )
            web.append(f"http://127.0.0.1:{port}")
        for i in (1, 2):
            port = free_port()
            self.procs[f"ws{i}"] = Proc(
                f"ws{i}",
                [
                    PY,
                    "-m",
                    "gunicorn",
                    "--config",
                    "gunicorn.conf.py",
                    "--worker-class",
                    "uvicorn_worker.UvicornWorker",
                    "--workers",
                    "1",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "jobops.asgi:application",
                ],  # fmt: skip
                self.env,
                logs / f"ws{i}.log",
                f"http://127.0.0.1:{port}/healthz/",
            )
            ws.append(f"http://127.0.0.1:{port}")
        for i in (1, 2):
            self.procs[f"worker{i}"] = Proc(
                f"worker{i}",
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "jobops",
                    "worker",
                    "--loglevel=INFO",
                    f"--hostname=w{i}@drill",
                    "--concurrency=2",
                ],  # fmt: skip
                self.env,
                logs / f"worker{i}.log",
            )
        self.procs["beat"] = Proc(
            "beat",
            [PY, "-m", "celery", "-A", "jobops", "beat", "--loglevel=INFO", f"--schedule={self.out / 'beat-schedule'}"],
            self.env,
            logs / "beat.log",
        )
        for proc in self.procs.values():
            proc.start()
        for proc in self.procs.values():
            proc.wait_ready()
        # Ready means every dependency answers (database, cache, broker, channel layer).
        readyz = Proc("readyz", [], {}, logs / "readyz.log", f"{web[0]}/readyz/")
        readyz.wait_ready()
        return Stack(web=web, ws=ws)

    # --- faults ----------------------------------------------------------------------------------------------------
    async def run_faults(self, rec: Recorder, stop: asyncio.Event, duration: float) -> None:
        assert self.proxy is not None
        proxy = self.proxy

        async def at(fraction: float) -> bool:
            delay = fraction * duration - rec.now()
            if delay > 0:
                await load._sleep(stop, delay)
            return not stop.is_set()

        async def kill_restart(name: str, label: str, *, busy: bool = False) -> None:
            proc = self.procs[name]
            if busy:  # mid-batch: wait (up to 15 s) until the outbox has rows for the workers to deliver
                waited = time.monotonic()
                while time.monotonic() - waited < 15 and not await asyncio.to_thread(self.outbox_pending):
                    await asyncio.sleep(0.1)
            pending = await asyncio.to_thread(self.outbox_pending)
            fault = Fault(label, rec.now(), note=f"outbox rows pending at the kill: {pending}")
            self.faults.append(fault)
            log(f"fault: {label}")
            await asyncio.to_thread(proc.kill)
            await asyncio.sleep(self.args.restart_after)
            proc.start()
            await asyncio.to_thread(proc.wait_ready)
            fault.end = rec.now()

        async def cut(route: str, seconds: float, label: str) -> None:
            fault = Fault(label, rec.now())
            self.faults.append(fault)
            log(f"fault: {label}")
            await asyncio.to_thread(proxy.cut, route)
            await asyncio.sleep(seconds)
            await asyncio.to_thread(proxy.restore, route)
            fault.end = rec.now()

        async def standby_down(seconds: float) -> None:
            assert self.pair is not None
            fault = Fault(f"standby stopped {seconds:.0f} s", rec.now(), note="replica reads fall back to the primary")
            self.faults.append(fault)
            log(f"fault: {fault.name}")
            await asyncio.to_thread(self.pair.stop_standby)
            await asyncio.sleep(seconds)
            await asyncio.to_thread(self.pair.start_standby)
            fault.end = rec.now()

        schedule: list[tuple[float, Any]] = [
            (0.08, lambda: kill_restart("web1", "web node SIGKILL + restart")),
            (0.16, lambda: kill_restart("ws1", "ASGI node SIGKILL + restart (listeners resume elsewhere)")),
            (0.24, lambda: kill_restart("worker1", "worker SIGKILL mid-batch + restart", busy=True)),
            (0.34, lambda: cut("pg", 5, "PostgreSQL cut 5 s")),
            (0.46, lambda: cut("amqp", 20, "RabbitMQ cut 20 s")),
            (0.66, lambda: cut("redis", 10, "Redis cut 10 s")),
        ]
        if self.pair is not None:
            schedule.append((0.80, lambda: standby_down(10)))
        for fraction, action in schedule:
            if not await at(fraction):
                return
            await action()

    def outbox_pending(self) -> int:
        with psycopg.connect(self.primary_url, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM notifications_notification WHERE status = 'pending'").fetchone()
        return int(row[0]) if row else 0

    async def sample_outbox(self, rec: Recorder, stop: asyncio.Event) -> None:
        def read() -> tuple[int, float]:
            with psycopg.connect(self.primary_url, connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
                    "FROM notifications_notification WHERE status = 'pending'"
                ).fetchone()
            assert row is not None
            return int(row[0]), float(row[1])

        while not stop.is_set():
            with contextlib.suppress(psycopg.Error):
                pending, age = await asyncio.to_thread(read)
                self.outbox.append((rec.now(), pending, age))
            await load._sleep(stop, 1.0)


# --- checks -----------------------------------------------------------------------------------------------------------


def check_invariants(conn: psycopg.Connection[Any]) -> list[str]:
    jobs = dict(conn.execute("SELECT id, status FROM jobs_job").fetchall())
    tasks: dict[int, list[str]] = {}
    for job_id, status in conn.execute('SELECT job_id, status FROM jobs_jobtask ORDER BY job_id, "order"'):
        tasks.setdefault(job_id, []).append(status)
    problems = []
    for job_id, job_status in jobs.items():
        statuses = tasks.get(job_id, [])
        prefix = 0
        while prefix < len(statuses) and statuses[prefix] == "completed":
            prefix += 1
        rest = statuses[prefix:]
        if "completed" in rest:
            problems.append(f"job {job_id}: completed tasks are not a prefix: {statuses}")
        if rest.count("in_progress") > 1 or ("in_progress" in rest and rest[0] != "in_progress"):
            problems.append(f"job {job_id}: in-progress task not right after the completed prefix: {statuses}")
        if job_status == "completed" and rest:
            problems.append(f"job {job_id}: completed with open tasks: {statuses}")
        if job_status == "pending" and any(s != "pending" for s in statuses):
            problems.append(f"job {job_id}: pending with started tasks: {statuses}")
    return problems


def check_audit(conn: psycopg.Connection[Any], rec: Recorder) -> dict[str, Any]:
    writes = [o for o in rec.outcomes if o.write and o.kind != "login"]
    groups: dict[str, Counter[tuple[str, str, int]]] = {}
    for request_id, action, object_type, object_id, count in conn.execute(
        "SELECT request_id, action, object_type, object_id, count(*) FROM audit_auditentry "
        "WHERE request_id LIKE 'drill-%%' GROUP BY 1, 2, 3, 4"
    ):
        groups.setdefault(request_id, Counter())[(action, object_type, object_id)] += count
    acknowledged = [o for o in writes if 200 <= o.status < 300]
    refused = [o for o in writes if 400 <= o.status < 500]
    missing = [o for o in acknowledged if o.request_id not in groups]
    for_refused = [o for o in refused if o.request_id in groups]
    duplicates = sum(c - 1 for g in groups.values() for c in g.values() if c > 1)
    return {
        "writes": len(writes),
        "acknowledged": len(acknowledged),
        "refused": len(refused),
        "refused_by_status": dict(Counter(o.status for o in refused)),
        "unacknowledged": sum(1 for o in writes if o.status == 0),
        "entries": sum(sum(g.values()) for g in groups.values()),
        "missing": len(missing),
        "missing_examples": [f"{o.method} {o.path} ({o.kind})" for o in missing[:5]],
        "for_refused": len(for_refused),
        "duplicates": duplicates,
    }


def check_deliveries(conn: psycopg.Connection[Any], sinks: Sinks) -> dict[str, Any]:
    """Every outbox row against what the sinks received.

    The outbox is at-least-once: a worker killed after the receiver accepted a message but before its row was marked
    sent sends it again. Email (one ``Message-ID`` per row), push (the row id in the payload) and webhooks (one
    ``webhook-id`` per row, which Standard Webhooks receivers must deduplicate on) carry the same id on every copy,
    so a receiver drops the repeat: those are counted as ``redelivered``. A copy a receiver cannot recognise (an
    email under another ``Message-ID``, an SMS sent twice) is ``duplicated``.
    """
    rows = conn.execute("SELECT id, channel, status, recipient, subject FROM notifications_notification").fetchall()
    by_channel: dict[str, Counter[str]] = {}
    lost: list[str] = []
    duplicated = redelivered = 0
    sms_expected: Counter[tuple[str, str]] = Counter()
    webhook_ids = set()
    email_ids, push_ids = set(), set()
    for ident, channel, status, recipient, subject in rows:
        stats = by_channel.setdefault(channel, Counter())
        stats[status] += 1
        if status != "sent":
            lost.append(f"{channel} #{ident} is {status}")
            continue
        if channel == "email":
            email_ids.add(ident)
            got = sinks.emails.get(ident, 0)
            duplicated += max(0, len(sinks.email_message_ids.get(ident, set())) - 1)
        elif channel == "push":
            push_ids.add(ident)
            got = sinks.push.get(ident, 0)
        elif channel == "webhook":
            webhook_ids.add(f"msg_{ident}")  # Standard Webhooks' webhook-id (notifications.webhooks.message_id)
            got = sinks.webhooks.get(f"msg_{ident}", 0)
        else:
            text = f"JobOps: {subject}"
            sms_expected[(recipient, text if len(text) <= 160 else text[:159] + "…")] += 1
            continue
        stats["received"] += min(got, 1)
        if got == 0:
            lost.append(f"{channel} #{ident} marked sent, never received")
        redelivered += max(0, got - 1)
        stats["redelivered"] += max(0, got - 1)
    for key, expected in sms_expected.items():
        got = sinks.sms.get(key, 0)
        by_channel["sms"]["received"] += min(got, expected)
        if got < expected:
            lost.append(f"sms to {key[0]} marked sent, never received")
        duplicated += max(0, got - expected)
    unexpected = (
        sum(c for i, c in sinks.emails.items() if i not in email_ids)
        + sum(c for i, c in sinks.push.items() if i not in push_ids)
        + sum(c for i, c in sinks.webhooks.items() if i not in webhook_ids)
        + sum(c for k, c in sinks.sms.items() if k not in sms_expected)
    )
    return {
        "by_channel": {k: dict(v) for k, v in by_channel.items()},
        "lost": len(lost),
        "lost_examples": lost[:8],
        "duplicated": duplicated,
        "redelivered": redelivered,
        "unexpected": unexpected,
        "unverified_webhooks": sinks.unverified_webhooks,
        "undecodable": sinks.undecodable,
    }


def delivery_latency(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """From an outbox row's commit to its delivery, per channel: p50, p99, max (s) and the rows later than 30 s."""
    out: dict[str, Any] = {}
    for channel, p50, p99, worst, late in conn.execute(
        """
        SELECT channel,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)),
               max(extract(epoch FROM sent_at - created_at)),
               count(*) FILTER (WHERE sent_at - created_at > interval '30 seconds')
        FROM notifications_notification WHERE status = 'sent' GROUP BY channel ORDER BY channel
        """
    ):
        out[channel] = {"p50_s": round(p50, 1), "p99_s": round(p99, 1), "max_s": round(float(worst), 1), "late": late}
    return out


def check_final_state_messages(conn: psycopg.Connection[Any], sinks: Sinks) -> list[str]:
    """What the final state calls for, received: each assigned job's technician was emailed the assignment, each
    completed job's creator was emailed its completion, and the newest webhook delivered for each job carries the
    job's final status."""
    missing: list[str] = []
    jobs = conn.execute(
        """
        SELECT j.id, j.status, j.assigned_to_id,
          (SELECT max(n.id) FROM notifications_notification n WHERE n.job_id = j.id AND n.channel = 'email'
             AND n.recipient_user_id = j.assigned_to_id AND n.kind IN ('job_assigned', 'job_reassigned')),
          (SELECT max(n.id) FROM notifications_notification n WHERE n.job_id = j.id AND n.channel = 'email'
             AND n.recipient_user_id = j.created_by_id AND n.kind = 'job_completed')
        FROM jobs_job j
        """
    ).fetchall()
    last_hook: dict[int, tuple[int, str]] = {}
    for ident, payload in conn.execute(
        "SELECT id, payload FROM notifications_notification "
        "WHERE channel = 'webhook' AND event_type LIKE 'job.%%' ORDER BY id"
    ):
        data = json.loads(payload).get("data")
        if data:
            last_hook[int(data["id"])] = (ident, data["status"])
    for job_id, status, assignee, assigned_msg, completed_msg in jobs:
        if assignee is not None and not sinks.emails.get(assigned_msg or 0):
            missing.append(f"job {job_id}: its technician never received the assignment email")
        if status == "completed" and not sinks.emails.get(completed_msg or 0):
            missing.append(f"job {job_id}: its creator never received the completion email")
        hook = last_hook.get(job_id)
        if hook is None or hook[1] != status or not sinks.webhooks.get(f"msg_{hook[0]}"):
            missing.append(f"job {job_id}: no delivered webhook carries its final status {status}")
    return missing


def truth(conn: psycopg.Connection[Any], view: View) -> dict[int, tuple[str, tuple[tuple[int, str], ...]]]:
    where = {"admin": "TRUE", "technician": "j.assigned_to_id = %s", "sales_agent": "j.created_by_id = %s"}[view.role]
    params = () if view.role == "admin" else (view.user_id,)
    rows = conn.execute(f"SELECT j.id, j.status FROM jobs_job j WHERE {where}", params)
    jobs: dict[int, tuple[str, list[tuple[int, str]]]] = {jid: (status, []) for jid, status in rows}
    for task_id, job_id, status in conn.execute(
        f"SELECT t.id, t.job_id, t.status FROM jobs_jobtask t JOIN jobs_job j ON j.id = t.job_id WHERE {where}",
        params,
    ):
        jobs[job_id][1].append((task_id, status))
    return {jid: (status, tuple(sorted(tasks))) for jid, (status, tasks) in jobs.items()}


def view_gaps(conn: psycopg.Connection[Any], view: View) -> int:
    want, got = truth(conn, view), view.state()
    return sum(1 for jid in set(want) | set(got) if want.get(jid) != got.get(jid))


def access_log_500s(logs: Path) -> int:
    """Responses 500 in the servers' logs: the access log's and the application's request lines (the larger count:
    each response is logged by both)."""
    counts: Counter[str] = Counter()
    for path in logs.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if '"status": 500' in line:
                with contextlib.suppress(ValueError):
                    counts[json.loads(line).get("logger", "")] += 1
    return max(counts.values(), default=0)


# --- the whole drill -------------------------------------------------------------------------------------------------


async def login_all(clients: list[Client]) -> None:
    for chunk in range(0, len(clients), 10):
        await asyncio.gather(*(c.login() for c in clients[chunk : chunk + 10]))


async def login_storm(stack: Stack, users: int, seconds: float) -> dict[str, Any]:
    """``users`` technicians log in within ``seconds`` (evenly spread: a shift start)."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits) as http:

        async def one(i: int) -> None:
            await asyncio.sleep(i * seconds / users)
            started = time.monotonic()
            try:
                response = await http.post(
                    f"{stack.web[i % len(stack.web)]}/api/auth/token/",
                    json={"username": f"tech{i + 1:03d}", "password": PASSWORD},
                )
                if response.status_code == 200 and "access" in response.json():
                    latencies.append(time.monotonic() - started)
                else:
                    failures[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1

        began = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(users)))
        elapsed = time.monotonic() - began
    return {
        "users": users,
        "seconds": round(elapsed, 1),
        "ok": len(latencies),
        "failures": dict(failures),
        "p50_ms": round(percentile(latencies, 50) * 1000),
        "p95_ms": round(percentile(latencies, 95) * 1000),
        "p99_ms": round(percentile(latencies, 99) * 1000),
        "max_ms": round(max(latencies, default=0) * 1000),
    }


def pg_stat(url: str) -> dict[str, int]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_returned FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return {"xact_commit": int(row[0]), "tup_returned": int(row[1])}


async def run(drill: Drill) -> int:
    args = drill.args
    stack = drill.start_stack()
    log(f"stack up: web {stack.web}, ws {stack.ws}, workers, beat; proxy {drill.proxy and drill.proxy.ports}")
    rec = Recorder(time.monotonic())
    rng = drill.rng

    def client(name: str) -> Client:
        return Client(stack, rec, name, PASSWORD, random.Random(rng.random()))

    techs = [client(f"tech{i:03d}") for i in range(1, args.technicians + 1)]
    sales = [client(f"sales{i}") for i in range(1, args.sales + 1)]
    admins = [client(f"admin{i}") for i in range(1, args.admins + 1)]
    everyone = techs + sales + admins
    await login_all(everyone)
    tech_ids = [c.user_id for c in techs]
    log(f"{len(everyone)} users logged in")

    # Channels: push for every technician, SMS of assignments for the first ten, one webhook endpoint.
    keys = drill.sinks.push_keys()
    for c in techs:
        await c.call("POST", "/api/push-subscriptions/", {"endpoint": drill.sinks.push_endpoint(c.username),
                                                          "keys": keys}, kind="setup", record=False)  # fmt: skip
    for c in techs[:10]:
        await c.call("PATCH", "/api/auth/me/notifications/", {"sms": ["job_assigned"]}, kind="setup", record=False)
    hook = await admins[0].call(
        "POST", "/api/webhooks/", {"url": drill.sinks.webhook_url, "events": ["job.*"]}, kind="setup", record=False
    )
    assert hook is not None and hook.status_code == 201, hook and hook.text
    drill.sinks.webhook_secret = hook.json()["secret"]

    # Listeners and feed readers start from the cursor of an empty world: everything they know comes from the feed.
    views: list[tuple[str, View, asyncio.Task[None]]] = []
    stop_views = asyncio.Event()
    listener_clients = (admins + sales + techs)[: args.listeners]
    reader_clients = admins[:1] + sales[:1] + techs[-2:]
    for kind_, group in (("ws", listener_clients), ("feed", reader_clients)):
        for c in group:
            role = "admin" if c in admins else "sales_agent" if c in sales else "technician"
            view = View(c.username, c.user_id, role)
            page = await c.get_json("/api/changes/", kind="setup")
            follower = load.ws_listener if kind_ == "ws" else load.feed_reader
            views.append((kind_, view, asyncio.create_task(follower(c, view, page["cursor"], stop_views))))

    standby_before = pg_stat(drill.standby_url) if drill.standby_url else {}
    primary_before = pg_stat(drill.primary_url)
    stop = asyncio.Event()
    equipment = drill.figures["equipment"]
    think = (args.think_min, args.think_max)
    log(f"load for {args.duration:.0f} s: {len(techs)} technicians, {len(sales)} sales agents, {len(admins)} admins, "
        f"{len(listener_clients)} WebSocket listeners, {len(reader_clients)} feed readers")  # fmt: skip
    rec.t0 = time.monotonic()
    rec.attempts.clear()
    rec.outcomes.clear()
    workers = [asyncio.create_task(load.technician(c, stop, think)) for c in techs]
    workers += [asyncio.create_task(load.sales_agent(c, stop, think, tech_ids, equipment)) for c in sales]
    workers += [asyncio.create_task(load.admin(c, stop, equipment)) for c in admins]
    sampler = asyncio.create_task(drill.sample_outbox(rec, stop_views))
    faults = asyncio.create_task(drill.run_faults(rec, stop, args.duration))
    await asyncio.sleep(args.duration)
    stop.set()
    log("load stopped; waiting for in-flight requests and faults to finish")
    await faults
    await asyncio.gather(*workers)
    load_end = rec.now()
    standby_after = pg_stat(drill.standby_url) if drill.standby_url else {}
    primary_after = pg_stat(drill.primary_url)

    # Drain: every outbox row delivered (the requeue sweep runs every minute), the views caught up.
    drain_started = time.monotonic()
    while time.monotonic() - drain_started < args.drain_timeout:
        if await asyncio.to_thread(drill.outbox_pending) == 0:
            break
        await asyncio.sleep(1)
    await asyncio.sleep(5)  # the webhook relay's last rows (every 2 s) and their deliveries
    while time.monotonic() - drain_started < args.drain_timeout and await asyncio.to_thread(drill.outbox_pending):
        await asyncio.sleep(1)
    drain_s = time.monotonic() - drain_started
    log(f"outbox drained in {drain_s:.0f} s")
    with psycopg.connect(drill.primary_url) as conn:
        converge_started = time.monotonic()
        while time.monotonic() - converge_started < 30:
            if all(view_gaps(conn, view) == 0 for _, view, _ in views):
                break
            await asyncio.sleep(1)
        stop_views.set()
        await asyncio.gather(*(task for _, _, task in views), sampler)
        invariants = check_invariants(conn)
        audit = check_audit(conn, rec)
        deliveries = check_deliveries(conn, drill.sinks)
        final_state = check_final_state_messages(conn, drill.sinks)
        deliveries["latency"] = delivery_latency(conn)
        deliveries["final_state_missing"] = len(final_state)
        deliveries["final_state_examples"] = final_state[:5]
        gaps = {view.username + f" ({kind_})": view_gaps(conn, view) for kind_, view, _ in views}
        jobs_total = conn.execute("SELECT count(*) FROM jobs_job").fetchone()
    log("login storm")
    storm = await login_storm(stack, args.storm_users, args.storm_seconds)
    for c in everyone:
        await c.close()

    figures = summarize(drill, rec, load_end)
    http_500 = max(len(rec.http_500), access_log_500s(drill.out / "logs"))
    replica: dict[str, Any] = {}
    if drill.standby_url:
        analytics = [o for o in rec.outcomes if o.kind in ("analytics", "equipment_usage", "audit_list")]
        standby_fault = next((f for f in drill.faults if f.name.startswith("standby")), None)
        during = [o for o in analytics if standby_fault and standby_fault.start <= o.started <= standby_fault.end]
        replica = {
            "standby_xact": standby_after["xact_commit"] - standby_before["xact_commit"],
            "standby_tuples": standby_after["tup_returned"] - standby_before["tup_returned"],
            "primary_xact": primary_after["xact_commit"] - primary_before["xact_commit"],
            "report_reads": len(analytics),
            "report_reads_ok": sum(1 for o in analytics if o.status == 200),
            "during_standby_down": len(during),
            "during_standby_down_ok": sum(1 for o in during if o.status == 200),
        }
        # The standby must have served the reports: each report read there is at least one transaction (nothing else
        # reads it but the drill's two statistics queries), and every report read while it was down answered 200.
        served = [o for o in analytics if o.status == 200 and o not in during]
        replica["problems"] = [
            *(["the standby served almost no report reads"] if replica["standby_xact"] < len(served) // 2 else []),
            *(["a report read failed while the standby was down"] if len(during) != replica["during_standby_down_ok"]
              else []),
        ]  # fmt: skip
    result = {
        "invariant_violations": len(invariants)
        + audit["missing"]
        + audit["for_refused"]
        + audit["duplicates"]
        + len(replica.get("problems", []))
        + len(rec.malformed_errors),
        # A message a receiver cannot accept (bad signature, unreadable push) is as good as lost; one that no outbox
        # row explains is a duplicate.
        "lost": deliveries["lost"]
        + deliveries["final_state_missing"]
        + deliveries["unverified_webhooks"]
        + deliveries["undecodable"],
        "duplicated": deliveries["duplicated"] + deliveries["unexpected"],
        "feed_gaps": sum(gaps.values()) + sum(v.duplicates + v.out_of_order for _, v, _ in views),
        "http_500": http_500,
        "recovery_s": max((f.recovery_s for f in drill.faults), default=0.0),
    }
    report = {
        "args": vars(args),
        "result": result,
        "invariants": invariants[:10],
        "audit": audit,
        "deliveries": deliveries,
        "views": {
            "gaps": gaps,
            "reconnects": sum(v.reconnects for _, v, _ in views),
            "changes": sum(v.changes for _, v, _ in views),
            "duplicates": sum(v.duplicates for _, v, _ in views),
            "out_of_order": sum(v.out_of_order for _, v, _ in views),
        },
        "storm": storm,
        "replica": replica,
        "drain_s": round(drain_s, 1),
        "jobs": int(jobs_total[0]) if jobs_total else 0,
        "http_500_examples": rec.http_500[:5],
        "answers_503": sum(1 for a in rec.attempts if a.status == 503),
        "malformed_errors": len(rec.malformed_errors),
        "malformed_error_examples": rec.malformed_errors[:5],
        **figures,
        "setup": {k: v for k, v in drill.figures.items() if k != "equipment"},
    }
    (drill.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    write_report(drill, report, rec)
    ok = all(result[k] == 0 for k in ("invariant_violations", "lost", "duplicated", "feed_gaps", "http_500"))
    ok = ok and result["recovery_s"] <= RECOVERY_TARGET_S
    print(
        "drill: " + " ".join(f"{k}={round(v, 1) if isinstance(v, float) else v}" for k, v in result.items()),
        flush=True,
    )
    return 0 if ok else 1


def merged(intervals: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """The union of ``intervals`` clipped to ``[lo, hi]``, as disjoint sorted intervals."""
    out: list[tuple[float, float]] = []
    for start, end in sorted((max(lo, s), min(hi, e)) for s, e in intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def summarize(drill: Drill, rec: Recorder, load_end: float) -> dict[str, Any]:
    """Per fault: the failed attempts and the recovery; the load's throughput and p99 without and with faults."""
    failures = [a for a in rec.attempts if a.status == 0 or a.status >= 500]
    faults = sorted(drill.faults, key=lambda f: f.start)
    for i, fault in enumerate(faults):
        # A failure belongs to the latest fault that began before it, up to FAULT_TAIL_S after that fault ended.
        until = min([fault.end + FAULT_TAIL_S] + [f.start for f in faults[i + 1 :]])
        window = [a for a in failures if fault.start <= a.at < until]
        fault.failed = len(window)
        last = max((a.at for a in window), default=fault.end)
        fault.recovery_s = round(max(0.0, last - fault.end), 1)
        if fault.name.startswith("RabbitMQ"):
            fault.note = outbox_catch_up(drill, fault)
    windows = merged([(f.start, f.end + RECOVERY_TARGET_S) for f in faults], 0.0, load_end)

    def in_fault(t: float) -> bool:
        return any(s <= t <= e for s, e in windows)

    def stats(attempts: list[load.Attempt], seconds: float) -> dict[str, Any]:
        ok = [a for a in attempts if 0 < a.status < 500]
        return {
            "seconds": round(seconds),
            "requests": len(attempts),
            "rps": round(len(ok) / seconds, 1) if seconds > 0 else 0,
            "p50_ms": round(percentile([a.seconds for a in ok], 50) * 1000),
            "p99_ms": round(percentile([a.seconds for a in ok], 99) * 1000),
            "failed": len(attempts) - len(ok),
        }

    measured = [a for a in rec.attempts if a.at <= load_end]
    fault_seconds = sum(e - s for s, e in windows)
    quiet = [a for a in measured if not in_fault(a.at)]
    noisy = [a for a in measured if in_fault(a.at)]
    writes = [o for o in rec.outcomes if o.write]
    return {
        "faults": [vars(f) for f in faults],
        "without_faults": stats(quiet, load_end - fault_seconds),
        "with_faults": stats(noisy, fault_seconds),
        "writes_retried": sum(1 for o in writes if o.attempts > 1),
        "kinds": dict(Counter(a.kind for a in measured)),
    }


def outbox_catch_up(drill: Drill, fault: Fault) -> str:
    """How the outbox fared: the rows pending when the broker came back, and how long until no row was older than
    ``CAUGHT_UP_AGE_S`` (every message of the outage on its way)."""
    after = [(t, pending, age) for t, pending, age in drill.outbox if t >= fault.end]
    if not after:
        return ""
    caught_up = next((t for t, _, age in after if age < CAUGHT_UP_AGE_S), None)
    peak = max((pending for t, pending, _ in drill.outbox if fault.start <= t <= fault.end + 5), default=0)
    if caught_up is None:
        return f"outbox peak {peak} rows pending; not caught up before the load ended"
    return f"outbox peak {peak} rows pending; caught up {caught_up - fault.end:.0f} s after the broker returned"


# --- report ----------------------------------------------------------------------------------------------------------


def write_report(drill: Drill, report: dict[str, Any], rec: Recorder) -> None:
    chart = drill.out / "timeline.png"
    if not drill.args.no_chart:
        try:
            draw_timeline(drill, rec, chart)
        except ImportError:
            log("matplotlib is missing (pip install -r bench/requirements.txt): no timeline chart")
    r, a, d, s = report["result"], report["audit"], report["deliveries"], report["storm"]
    lines = [
        "# Scale-out drill",
        "",
        f"`python ops/drill.py --duration {drill.args.duration:.0f}` on {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. 2 gunicorn web nodes ({drill.args.web_workers} sync "
        "workers each), 2 ASGI nodes (uvicorn), 2 Celery workers (concurrency 2), 1 beat; PostgreSQL "
        + ("primary + streaming standby" if drill.standby_url else "(no standby)")
        + ", RabbitMQ and Redis each behind the drill's TCP fault proxy.",
        "",
        f"Load: {drill.args.technicians} technicians, {drill.args.sales} sales agents, {drill.args.admins} admins, "
        f"{drill.args.listeners} WebSocket listeners, {len(report['views']['gaps']) - drill.args.listeners} feed "
        f"readers, sinks for email, push, SMS and one webhook endpoint. Jobs at the end: {report['jobs']}.",
        "",
        "```",
        "drill: " + " ".join(f"{k}={v}" for k, v in r.items()),
        "```",
        "",
        "## Faults",
        "",
        "| at (s) | fault | lasted (s) | failed attempts | recovery (s) | note |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for f in report["faults"]:
        lines.append(
            f"| {f['start']:.0f} | {f['name']} | {f['end'] - f['start']:.1f} | {f['failed']} | {f['recovery_s']} "
            f"| {f['note']} |"
        )
    wo, wi = report["without_faults"], report["with_faults"]
    lines += [
        "",
        "Failed attempts: a connection error or a 5xx the client then retried (with the same idempotency key); "
        f"recovery: the last failed attempt after the fault ended (target < {RECOVERY_TARGET_S:.0f} s).",
        "",
        "## Throughput and latency",
        "",
        "| | seconds | attempts | ok req/s | p50 ms | p99 ms | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| without faults | {wo['seconds']} | {wo['requests']} | {wo['rps']} | {wo['p50_ms']} | {wo['p99_ms']} "
        f"| {wo['failed']} |",
        f"| during faults (+{RECOVERY_TARGET_S:.0f} s) | {wi['seconds']} | {wi['requests']} | {wi['rps']} "
        f"| {wi['p50_ms']} | {wi['p99_ms']} | {wi['failed']} |",
        "",
        f"Writes retried at least once: {report['writes_retried']}.",
        "",
        "![timeline](timeline.png)",
        "",
        "## Checks",
        "",
        f"- Task invariants: {len(report['invariants'])} violations.",
        f"- Audit: {a['writes']} writes ({a['acknowledged']} acknowledged, {a['refused']} refused "
        f"{a['refused_by_status']}, {a['unacknowledged']} never answered); {a['entries']} audit entries; "
        f"acknowledged writes without an entry: {a['missing']}; refused writes with an entry: {a['for_refused']}; "
        f"duplicated entries: {a['duplicates']}.",
        f"- Deliveries: {d['by_channel']}; lost {d['lost']}, duplicated {d['duplicated']}, redelivered under the "
        f"same id (a receiver drops the copy) {d['redelivered']}, unexpected "
        f"{d['unexpected']}, webhooks failing verification {d['unverified_webhooks']}; messages the final state "
        f"calls for (each assignment emailed to the job's technician, each completion to its creator, each job's "
        f"final status in its newest webhook) missing: {d['final_state_missing']}.",
        "- Delivery time, from the outbox row's commit (seconds; late: over 30 s): "
        + ", ".join(
            f"{channel} p50 {v['p50_s']} / p99 {v['p99_s']} / max {v['max_s']} ({v['late']} late)"
            for channel, v in d.get("latency", {}).items()
        )
        + ".",
        f"- Views: {len(report['views']['gaps'])} views, {report['views']['changes']} changes applied, "
        f"{sum(report['views']['gaps'].values())} jobs differing from the database, "
        f"{report['views']['duplicates']} duplicates, {report['views']['out_of_order']} out of order, "
        f"{report['views']['reconnects']} reconnects.",
        f"- Responses 500: {r['http_500']} (clients and access logs). Responses 503: {report['answers_503']}, of "
        f"which not JSON with `Retry-After`: {report['malformed_errors']}. Outbox drained {report['drain_s']} s "
        "after the load stopped.",
        "",
        "## Login storm",
        "",
        f"{s['users']} technicians logging in within {drill.args.storm_seconds:.0f} s (Argon2id): {s['ok']} ok, "
        f"failures {s['failures'] or 0}; p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, p99 {s['p99_ms']} ms, "
        f"max {s['max_ms']} ms.",
    ]
    if report["replica"]:
        rp = report["replica"]
        lines += [
            "",
            "## Read replica",
            "",
            f"Report reads (analytics, equipment usage, audit list): {rp['report_reads']}, {rp['report_reads_ok']} "
            f"answered 200. Transactions on the standby during the load: {rp['standby_xact']} "
            f"({rp['standby_tuples']} rows read); on the primary: {rp['primary_xact']}. While the standby was "
            f"stopped: {rp['during_standby_down']} report reads, {rp['during_standby_down_ok']} answered 200 "
            f"(from the primary). Problems: {', '.join(rp['problems']) or 'none'}.",
        ]
    (drill.out / "REPORT.md").write_text("\n".join(lines) + "\n")
    log(f"report: {drill.out / 'REPORT.md'}")


def draw_timeline(drill: Drill, rec: Recorder, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = int(max((a.at for a in rec.attempts), default=0)) + 1
    ok, bad = [0] * end, [0] * end
    lat: dict[int, list[float]] = {}
    for a in rec.attempts:
        second = min(end - 1, max(0, int(a.at)))
        if 0 < a.status < 500:
            ok[second] += 1
            lat.setdefault(second // 5, []).append(a.seconds)
        else:
            bad[second] += 1
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True)
    top.plot(range(end), ok, label="answered req/s", color="tab:blue", linewidth=1)
    top.plot(range(end), bad, label="failed attempts/s", color="tab:red", linewidth=1)
    buckets = sorted(lat)
    ax2 = bottom.twinx()
    bottom.plot([b * 5 + 2.5 for b in buckets], [percentile(lat[b], 99) * 1000 for b in buckets], color="tab:purple",
                label="p99 ms (5 s)")  # fmt: skip
    ax2.plot([t for t, _, _ in drill.outbox], [p for _, p, _ in drill.outbox], color="tab:green", linewidth=1,
             label="outbox rows pending")  # fmt: skip
    for axis in (top, bottom):
        for f in drill.faults:
            axis.axvspan(f.start, f.end, color="orange", alpha=0.25)
    for f in drill.faults:
        label = f.name.split(" (")[0].replace(" + restart", "")
        top.text(f.start, 0.97, label, transform=top.get_xaxis_transform(), fontsize=7, rotation=90, va="top")
    top.set_ylabel("per second")
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("p99 latency, ms")
    ax2.set_ylabel("outbox pending")
    bottom.set_xlabel("seconds into the load (orange: fault windows)")
    bottom.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    fig.suptitle("JobOps scale-out drill: throughput, errors, latency, outbox and faults")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- entry point ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="JobOps scale-out drill (see the module docstring)")
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or 240))
    parser.add_argument("--short", action="store_true", help="the CI form: fewer users, a shorter storm")
    parser.add_argument("--technicians", type=int, default=50)
    parser.add_argument("--sales", type=int, default=5)
    parser.add_argument("--admins", type=int, default=2)
    parser.add_argument("--listeners", type=int, default=20)
    parser.add_argument("--storm-users", type=int, default=300)
    parser.add_argument("--storm-seconds", type=float, default=60)
    parser.add_argument("--think-min", type=float, default=3.0)
    parser.add_argument("--think-max", type=float, default=7.0)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--restart-after", type=float, default=2.0, help="seconds a killed node stays down")
    parser.add_argument("--drain-timeout", type=float, default=180)
    parser.add_argument("--no-replica", action="store_true", help="no PostgreSQL pair: use --pg")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server for --no-replica")
    parser.add_argument("--amqp", default="127.0.0.1:5672", help="RabbitMQ host:port (rabbitmqctl must manage it)")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="Redis host:port (the drill uses databases 11, 12)")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "drill")
    parser.add_argument("--publish", type=Path, help="copy REPORT.md and timeline.png here (docs/drill)")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DRILL_SEED") or 19))
    args = parser.parse_args(argv)
    if args.short:
        args.technicians, args.sales, args.listeners = min(args.technicians, 20), min(args.sales, 3), 10
        args.storm_users, args.storm_seconds = min(args.storm_users, 60), min(args.storm_seconds, 15)
    return args


def prepare_out(out: Path) -> None:
    """Empty ``out`` for this run: only a missing or empty directory, or one an earlier drill wrote (its marker)."""
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise SystemExit(f"{out} is not empty and not a drill's output: choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by ops/drill.py; emptied by the next drill\n")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # runs the cleanup in main's finally


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.duration < 60:
        raise SystemExit("--duration must be at least 60 s: the faults need room")
    out: Path = args.out
    prepare_out(out)
    signal.signal(signal.SIGTERM, _terminate)
    drill = Drill(args, out, random.Random(args.seed))
    try:
        drill.sinks.start()
        drill.database()
        amqp_host, _, amqp_port = args.amqp.rpartition(":")
        redis_host, _, redis_port = args.redis.rpartition(":")
        drill.proxy = FaultProxy(
            out,
            {
                "pg": ("127.0.0.1", port_of(drill.primary_url)),
                "amqp": (amqp_host, int(amqp_port)),
                "redis": (redis_host, int(redis_port)),
            },
        )
        drill.proxy.start()
        drill.env = drill.app_env()
        drill.rabbit_vhost()
        drill.manage("migrate", "--noinput", "-v", "0")
        drill.figures.update(drill.seed())
        log("database migrated and seeded")
        code = asyncio.run(run(drill))
        if args.publish:
            args.publish.mkdir(parents=True, exist_ok=True)
            for name in ("REPORT.md", "timeline.png"):
                if (out / name).exists():
                    shutil.copy(out / name, args.publish / name)
        return code
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one cleanup, even if asked twice
        cleanup(drill)


def cleanup(drill: Drill) -> None:
    """Stop everything the drill started; each step runs even if another fails."""
    steps: list[Any] = [lambda p=proc: p.kill(signal.SIGTERM) for proc in drill.procs.values()]
    if drill.proxy is not None:
        proxy = drill.proxy
        steps.append(lambda: proxy.proc.kill(signal.SIGTERM))
    steps.append(drill.sinks.stop)
    if drill.pair is not None:
        pair = drill.pair
        steps.append(lambda: pair.stop(remove=True))
    steps.append(lambda: subprocess.run(["rabbitmqctl", "-q", "delete_vhost", VHOST], capture_output=True, check=False))
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - keep stopping the rest
            log(f"cleanup step failed: {exc!r}")


if __name__ == "__main__":
    sys.exit(main())
