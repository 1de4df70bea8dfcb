#!/usr/bin/env python
"""WebSocket fan-out benchmark: N scripted clients on /ws/changes/, one change, how long until the last has it.

Part of ``make bench`` (``bench/run.py --ws-clients N``, 1,000 by default) and runnable alone on a migrated database
with at least one admin and one job::

    .venv/bin/python bench/ws_fanout.py --database-url postgres://postgres@127.0.0.1:5432/jobops_bench

1. Starts the ws role as deployed (``docker/entrypoint.sh ws``: gunicorn + uvicorn workers, ``--workers``, default
   the cores) on the database and Redis given.
2. Connects N clients (one asyncio process, in batches), each authenticating as an admin and subscribing from
   now; waits until every one got ``ready``. Measures the resident memory (VmRSS) of the server's processes before
   the clients and with all of them connected and idle: the difference per connection.
3. ``--rounds`` times: commits one change to a job (``jobs.services.job_update`` in this process, a third process
   as a REST worker is: the wake goes through Redis) and times, from just before the call, when each client
   receives it. Reports p50 / p99 / max over all clients and rounds, and the same counted from the moment the
   change became readable in the feed (the feed's watermark passed it: on a PostgreSQL shared with other
   applications any older transaction still running holds a change back; that wait is the feed's, not the
   fan-out's).

Everything is bounded in time (``--timeout`` per phase); the clients share the machine's cores with the server,
so the figures include the client's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def log(message: str) -> None:
    print(f"[ws-fanout {dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(child) for child in (task / "children").read_text().split()]
    return pids


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def start_server(env: dict[str, str], workers: int, log_dir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = log_dir / "ws-fanout-server.log"
    server_env = {
        **env,
        "PORT": str(port),
        "WS_WORKERS": str(workers),
        "GUNICORN_ACCESS_LOG": "0",
        "LOG_FORMAT": "plain",
        "JOBOPS_ROLE_FILE": str(log_dir / "ws-fanout.role"),
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', os.environ.get('PATH', '/usr/bin:/bin'))}",
    }
    with log_path.open("wb") as handle:
        process = subprocess.Popen(
            [str(REPO / "docker" / "entrypoint.sh"), "ws", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "3"],
            cwd=REPO,
            env=server_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port, log_path


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def visible_at(job_id: int, timeout: float) -> float:
    """When (perf_counter) the job's newest feed row became readable: the feed's watermark passed it. On a shared
    PostgreSQL any older transaction still running holds it back; the clients cannot get it before."""
    from django.db import connection

    from jobs import feed
    from jobs.models import Change

    try:
        row = Change.objects.filter(object_type="job", object_id=job_id).order_by("-id").values("txid", "id").first()
        assert row is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            upto = feed.decode_cursor(feed.current_cursor())
            if (row["txid"], row["id"]) <= tuple(upto) or (connection.vendor != "postgresql" and upto.id >= row["id"]):
                return time.perf_counter()
            time.sleep(0.005)
        raise TimeoutError("the change did not become readable")
    finally:
        connection.close()


class FanOutClient:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.ws: Any = None
        self.received: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, open_timeout=30, ping_interval=None, max_queue=None)
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        await self.ws.send(json.dumps({"type": "subscribe"}))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.received.put_nowait((time.perf_counter(), json.loads(raw)))

    async def next(self, timeout: float) -> tuple[float, dict[str, Any]]:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()


async def fan_out(args: argparse.Namespace, url: str, token: str, server_pids: Any) -> dict[str, Any]:
    from django.db import connection

    from accounts.models import User
    from jobs.models import Job
    from jobs.services import job_update

    admin = await asyncio.to_thread(lambda: User.objects.filter(role="admin", is_active=True).order_by("id").first())
    job_id = await asyncio.to_thread(
        lambda: Job.objects.filter(status="pending").order_by("id").values_list("id", flat=True).first()
    )
    if admin is None or job_id is None:
        raise SystemExit("the database needs an active admin and a pending job")

    # One client first, so the process's hub and its Redis connections exist before the baseline.
    probe = FanOutClient(url, token)
    await probe.open()
    await probe.next(args.ws_timeout)
    await asyncio.sleep(1.0)
    before_kb = rss_kb(server_pids())

    clients = [FanOutClient(url, token) for _ in range(args.ws_clients)]
    started = time.perf_counter()
    for batch in range(0, len(clients), args.ws_batch):
        await asyncio.gather(*(client.open() for client in clients[batch : batch + args.ws_batch]))
    ready = await asyncio.gather(*(client.next(args.ws_timeout) for client in clients))
    assert all(message["type"] == "ready" for _, message in ready), "a client did not get ready"
    connect_seconds = time.perf_counter() - started
    log(f"{len(clients)} clients connected and ready in {connect_seconds:.1f} s")
    await asyncio.sleep(2.0)  # idle: let allocations settle before reading the memory
    after_kb = rss_kb(server_pids())

    latencies: list[float] = []
    from_visible: list[float] = []
    last_per_round: list[float] = []
    for round_no in range(1, args.ws_rounds + 1):
        for client in (probe, *clients):  # anything left over (none expected) must not count as this round's change
            while not client.received.empty():
                client.received.get_nowait()
        title = f"fan-out round {round_no} {time.time():.0f}"

        def change(title: str = title) -> None:
            try:
                job_update(actor=admin, job_id=job_id, data={"title": title})
            finally:
                connection.close()

        t0 = time.perf_counter()
        await asyncio.to_thread(change)
        committed = time.perf_counter() - t0
        visible_task = asyncio.create_task(asyncio.to_thread(visible_at, job_id, args.ws_timeout))
        arrivals = await asyncio.gather(*(client.next(args.ws_timeout) for client in clients))
        visible = await visible_task - t0
        this_round, after_visible = [], []
        for at, message in arrivals:
            assert message["type"] == "change" and message["change"]["object_id"] == job_id, message
            assert message["change"]["data"]["title"] == title, "a client got another version of the job"
            this_round.append(at - t0)
            after_visible.append(max(0.0, at - t0 - visible))
        latencies += this_round
        from_visible += after_visible
        last_per_round.append(max(this_round))
        log(
            f"round {round_no}: commit {committed * 1000:.0f} ms, readable in the feed at {visible * 1000:.0f} ms; "
            f"clients p50 {percentile(this_round, 0.5) * 1000:.0f} ms, p99 {percentile(this_round, 0.99) * 1000:.0f} "
            f"ms, last {max(this_round) * 1000:.0f} ms (last {max(after_visible) * 1000:.0f} ms after readable)"
        )
        await asyncio.sleep(args.ws_pause)
    for client in (probe, *clients):
        await client.close()
    return {
        "clients": args.ws_clients,
        "workers": args.ws_workers,
        "rounds": args.ws_rounds,
        "connect_seconds": round(connect_seconds, 2),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "last_client_ms_per_round": [round(v * 1000, 1) for v in last_per_round],
        "after_readable_p50_ms": round(percentile(from_visible, 0.5) * 1000, 1),
        "after_readable_p99_ms": round(percentile(from_visible, 0.99) * 1000, 1),
        "after_readable_max_ms": round(max(from_visible) * 1000, 1),
        "server_rss_mb_before": round(before_kb / 1024, 1),
        "server_rss_mb_connected": round(after_kb / 1024, 1),
        "kb_per_idle_connection": round((after_kb - before_kb) / max(1, args.ws_clients), 1),
    }


def run(args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> dict[str, Any]:
    """Start the ws server on ``env``'s database and Redis, run the clients, stop the server; the figures."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.ws_clients + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(wanted, soft)), hard))
    for key, value in env.items():
        os.environ[key] = value
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    admin = User.objects.filter(role="admin", is_active=True).order_by("id").first()
    if admin is None:
        raise SystemExit("the database needs an active admin")
    token = str(AccessToken.for_user(admin))
    process, port, log_path = start_server(env, args.ws_workers, log_dir)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the ws server exited; see {log_path}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ws server did not listen within 60 s; see {log_path}")
            time.sleep(0.3)
        time.sleep(1.0)
        log(f"ws server up on {port} ({args.ws_workers} uvicorn workers); connecting {args.ws_clients} clients")
        result = asyncio.run(
            asyncio.wait_for(
                fan_out(args, f"ws://127.0.0.1:{port}/ws/changes/", token, lambda: process_tree(process.pid)),
                timeout=args.ws_timeout * (4 + args.ws_rounds) + 60,
            )
        )
    finally:
        stop_server(process)
    log(
        f"fan-out to {result['clients']} clients: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms; {result['kb_per_idle_connection']} kB per idle connection"
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ws-clients", dest="ws_clients", type=int, default=1000, help="WebSocket clients (0: skip)")
    parser.add_argument(
        "--ws-workers", dest="ws_workers", type=int, default=os.cpu_count() or 1, help="uvicorn workers (ws server)"
    )
    parser.add_argument("--ws-rounds", dest="ws_rounds", type=int, default=5, help="changes timed")
    parser.add_argument("--ws-batch", dest="ws_batch", type=int, default=100, help="clients connecting at once")
    parser.add_argument("--ws-timeout", dest="ws_timeout", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--ws-pause", dest="ws_pause", type=float, default=1.0, help="seconds between changes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--log-dir", type=Path, default=BENCH / "results")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CACHE_KEY_PREFIX": f"jobops-ws-bench-{os.getpid()}",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "jobops-ws-fanout-benchmark-only-secret-key-5d1c",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "JOBOPS_PLAIN_STATIC": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    print(json.dumps(run(args, env, args.log_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
