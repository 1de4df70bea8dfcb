#!/usr/bin/env python
"""JobOps benchmark: `make bench` (or `.venv/bin/python bench/run.py --help`). See bench/README.md.

1. Creates a dedicated PostgreSQL database (default ``jobops_bench``), migrates it with ``manage.py migrate`` and
   bulk-loads a reproducible data set (``bench/datagen.py``; 10k jobs, 50k tasks, 200 equipment items,
   50 technicians, 50k audit entries by default).
2. Starts JobOps under gunicorn (sync workers, 2 x cores + 1, the project's ``gunicorn.conf.py`` if present) and
   the reference "limit" server (``bench/limit_server.py``, same worker count), both on loopback.
3. Gets a real JWT per role from ``POST /api/auth/token/`` (or mints them with simplejwt if that endpoint is not
   there), checks that the limit's bodies equal JobOps' (parsed JSON, keys in order), captures the SQL of every
   read endpoint and EXPLAINs it.
4. Drives each endpoint with wrk for a warm-up and then a fixed duration, JobOps then the limit where there is one,
   and reports req/s, p50/p99, non-2xx counts, the ratio to the limit and the peak RSS of each gunicorn worker.
   Where the limit serves the endpoint, the *contract limit* too (``limit_server:contract_app``: the same bodies
   after verifying the JWT, reading the user row and computing the ETag), and the ratio to it.
4b. The polling fleet (job list p20 and the day view): req/s of JobOps' 304 path (every request sends the current
   ``If-None-Match``) next to its 200 path and to the contract limit answering the same 304, and a fleet mix of
   90% unchanged polls (304) and 10% changed ones (a stale tag: 200).
5. Prints a table and writes ``bench/results/`` (JSON, raw wrk output, chart), plus the committed summary
   ``bench/LATEST.md`` and ``bench/latest.png``. The targets are reported, not asserted; the exit status is
   non-zero only when the run itself is invalid (a server did not start, a limit body differs from JobOps').
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable
LUA = BENCH / "wrk_requests.lua"
BENCH_PASSWORD = "bench-Password-8-not-secret"
SECRET_KEY = "jobops-benchmark-only-secret-key-0f3c9a6e5b2d4781"  # a local, throwaway server
BIG_TABLES = ("jobs_job", "jobs_jobtask", "audit_auditentry")
MB = 1024 * 1024

sys.path.insert(0, str(BENCH))
import datagen  # noqa: E402
import ws_fanout  # noqa: E402


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", flush=True)


# --- arguments --------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_argument_group("data set")
    size.add_argument("--jobs", type=int, default=10_000)
    size.add_argument("--tasks", type=int, default=50_000)
    size.add_argument("--equipment", type=int, default=200)
    size.add_argument("--technicians", type=int, default=50)
    size.add_argument("--sales-agents", type=int, default=10)
    size.add_argument("--audit", type=int, default=50_000, help="audit entries")
    size.add_argument("--seed", type=int, default=8)
    size.add_argument("--db", default="jobops_bench", help="database name (dropped and re-created)")
    size.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    size.add_argument(
        "--reuse-data", action="store_true", help="keep the database after the run and reuse it if it has data"
    )
    size.add_argument("--keep-data", action="store_true", help="do not drop the database at the end")
    load = p.add_argument_group("load")
    load.add_argument("--duration", type=int, default=10, help="seconds measured per endpoint and server")
    load.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each measurement")
    load.add_argument("--connections", type=int, default=10)
    load.add_argument("--threads", type=int, default=2, help="wrk threads")
    load.add_argument("--workers", type=int, default=2 * cores + 1, help="gunicorn sync workers (both servers)")
    load.add_argument(
        "--asgi",
        action="store_true",
        help="serve JobOps' REST API from jobops.asgi under uvicorn workers (--workers of them) instead of sync WSGI "
        "workers: the measurement behind keeping the REST API on sync gunicorn (README, 'Processes')",
    )
    load.add_argument("--days", type=int, default=7, help="day view ?days=")
    load.add_argument(
        "--rounds", type=int, default=1, help="measure each read endpoint N times, alternating JobOps and the limit"
    )
    load.add_argument("--only", default="", help="comma-separated endpoint names to run (default: all)")
    load.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="cache for JobOps ('' = local memory)")
    ws = p.add_argument_group("WebSocket fan-out (bench/ws_fanout.py)")
    ws_fanout.add_arguments(ws)
    out = p.add_argument_group("output")
    out.add_argument("--results-dir", type=Path, default=BENCH / "results")
    out.add_argument("--no-latest", action="store_true", help="do not rewrite bench/LATEST.md and bench/latest.png")
    out.add_argument("--no-chart", action="store_true")
    out.add_argument(
        "--render", type=Path, metavar="RESULTS_JSON", help="measure nothing: re-print and re-write from a saved run"
    )
    return p.parse_args(argv)


# --- tools ------------------------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("wrk is not installed: `apt-get install -y wrk` (Debian) or put wrk on PATH.")
    log("installing wrk (apt-get install -y wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=True)
    return shutil.which("wrk") or sys.exit("wrk did not install")


def ensure_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("installing bench/requirements.txt (matplotlib) into this environment")
        result = subprocess.run([PY, "-m", "pip", "install", "--quiet", "-r", str(BENCH / "requirements.txt")])
        if result.returncode != 0:
            log("matplotlib could not be installed: no chart this time")
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_reachable(url: str) -> bool:
    host_port = url.split("//", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=1):
            return True
    except OSError:
        return False


# --- database -------------------------------------------------------------------------------------------------------


def database_has_data(pg: str, db: str) -> bool:
    try:
        with psycopg.connect(f"{pg}/{db}", connect_timeout=5) as conn:
            return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM jobs_job)").fetchone()[0])
    except psycopg.Error:
        return False


def recreate_database(pg: str, db: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{db}"')


def django_env(args: argparse.Namespace, database_url: str, var_dir: Path) -> dict[str, str]:
    """The environment of the JobOps server and of every manage.py / Django subprocess of the benchmark."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DJANGO_", "CELERY_", "EMAIL_", "JWT_", "LOGIN_RATE", "REDIS_URL", "CACHE_KEY", "GUNICORN_")
        )
        and k not in ("DATABASE_URL", "TIME_ZONE", "LOG_LEVEL", "LOG_FORMAT", "WEB_CONCURRENCY", "PORT")
    }
    redis_url = args.redis_url if args.redis_url and redis_reachable(args.redis_url) else ""
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
            "DATABASE_URL": database_url,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "REDIS_URL": redis_url,
            "CACHE_KEY_PREFIX": f"jobops-bench-{os.getpid()}",
            "LOGIN_RATE_PER_IP": "100000/min",
            "LOGIN_RATE_PER_USER": "100000/min",
            "LOGIN_FAILURES_PER_USER": "100000/min",
            "JWT_ACCESS_MINUTES": "240",
            "LOG_LEVEL": "WARNING",
            "TIME_ZONE": "UTC",
            "JOBOPS_VAR_DIR": str(var_dir),
            "JOBOPS_PLAIN_STATIC": "1",
            # No broker: background work (notifications) runs in-process as in the embedded default; mail goes nowhere.
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def django_side(env: dict[str, str], *command: str) -> str:
    result = subprocess.run(
        [PY, str(BENCH / "django_side.py"), *command], env=env, cwd=REPO, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"django_side {command[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


# --- servers ----------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited at start; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.base}/healthz/", timeout=2) as response:
                    if response.status == 200:
                        return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer /healthz/ within {timeout:.0f} s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        if children.exists():
            return [int(pid) for pid in children.read_text().split()]
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(stat.parent.name))
        return pids

    def worker_memory(self) -> list[dict[str, int]]:
        """Peak (VmHWM) and current (VmRSS) resident memory of each worker, in kB, from /proc/<pid>/status."""
        rows = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                fields = dict(
                    line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
                )
                rows.append(
                    {
                        "pid": pid,
                        "vm_hwm_kb": int(fields["VmHWM"].split()[0]),
                        "vm_rss_kb": int(fields["VmRSS"].split()[0]),
                    }
                )
        return rows

    def cpu_ticks(self) -> int:
        """User + system CPU ticks of the master and its workers so far (``/proc/<pid>/stat``)."""
        return sum(_process_ticks(pid) for pid in (self.process.pid, *self.worker_pids()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _process_ticks(pid: int, *, reaped_children: bool = False) -> int:
    """User + system CPU ticks of ``pid``, plus with ``reaped_children`` those of its children that exited."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped_children else 0)
    return 0


def postgres_ticks() -> int:
    """CPU ticks of the PostgreSQL processes on this machine (the benchmark's backends, and anything else's).

    A backend that exits (Django recycles connections after ``CONN_MAX_AGE``) is reaped by the postmaster, whose
    children's ticks count them: the difference of two snapshots covers every backend of the interval."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")].startswith("postgres"):
                total += _process_ticks(int(stat.parent.name), reaped_children=True)
    return total


def start_gunicorn(
    name: str,
    app: str,
    *,
    cwd: Path,
    env: dict[str, str],
    workers: int,
    log_dir: Path,
    config: Path | None,
    worker_class: str = "sync",
) -> Server:
    port = free_port()
    log_path = log_dir / f"{name}-gunicorn.log"
    command = [PY, "-m", "gunicorn"]
    if config is not None:
        command += ["--config", str(config)]
    # Explicit flags override the config file: the measured shape is fixed (N sync workers, no recycling, so each
    # worker's VmHWM covers the whole run).
    command += [
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--max-requests",
        "0",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        app,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(name=name, port=port, process=process, log_path=log_path)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def run_ws_fanout(
    args: argparse.Namespace, env: dict[str, str], database_url: str, run_dir: Path
) -> dict[str, Any] | None:
    """bench/ws_fanout.py in its own process (it sets Django up), on this run's database and Redis."""
    log(f"WebSocket fan-out: {args.ws_clients} clients, {args.ws_rounds} changes")
    command = [
        PY,
        str(BENCH / "ws_fanout.py"),
        "--database-url",
        database_url,
        "--redis-url",
        env["REDIS_URL"] or args.redis_url,
        "--log-dir",
        str(run_dir),
        "--ws-clients",
        str(args.ws_clients),
        "--ws-workers",
        str(args.ws_workers),
        "--ws-rounds",
        str(args.ws_rounds),
        "--ws-batch",
        str(args.ws_batch),
        "--ws-timeout",
        str(args.ws_timeout),
        "--ws-pause",
        str(args.ws_pause),
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    (run_dir / "ws-fanout.log").write_text(result.stdout + result.stderr)
    for line in result.stdout.splitlines():
        if line.startswith("[ws-fanout"):
            print(line, flush=True)
    if result.returncode != 0:
        log(f"WebSocket fan-out failed (see {run_dir / 'ws-fanout.log'}): {result.stderr[-500:]}")
        return None
    return json.loads(result.stdout[result.stdout.index("{") :])


# --- HTTP helpers -----------------------------------------------------------------------------------------------------


def http(
    method: str, url: str, *, token: str | None = None, host: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if host:
        headers["Host"] = host
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def etag_of(url: str, *, token: str, host: str) -> str | None:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "Authorization": f"Bearer {token}",
                                                   "Host": host})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers.get("ETag")


def ordered(body: bytes) -> Any:
    """Parsed JSON in which objects keep their key order (lists of pairs), so equality also checks the order."""
    return json.loads(body, object_pairs_hook=lambda pairs: [("<object>", None), *pairs])


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r:.80} != {type(b).__name__} {b!r:.80}"
    if isinstance(a, list) and isinstance(b, list):
        is_object = bool(a) and a[0] == ("<object>", None)
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if is_object and isinstance(x, tuple) and isinstance(y, tuple):
                if x[0] != y[0]:
                    return f"{path}: key #{i - 1} is {x[0]!r} in JobOps, {y[0]!r} in the limit"
                found = first_difference(x[1], y[1], f"{path}.{x[0]}")
            else:
                found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            what = "keys" if is_object else "items"
            return f"{path}: {len(a) - is_object} {what} in JobOps, {len(b) - is_object} in the limit"
        return None
    return None if a == b else f"{path}: {a!r:.80} != {b!r:.80}"


# --- tokens and fixtures ----------------------------------------------------------------------------------------------


@dataclass
class Fixtures:
    admin_id: int
    sales_id: int
    tech_id: int
    technician_ids: list[int]
    detail_job_ids: list[int]
    write_jobs: list[tuple[int, list[tuple[str, int]]]]  # (technician id, [(start|complete, task id)]) per job
    tokens: dict[int, str] = field(default_factory=dict)
    feed_cursor: str = ""  # a change-feed cursor followed by at least 100 changes (django_side feed-backlog)
    token_source: dict[str, str] = field(default_factory=dict)
    usernames: dict[int, str] = field(default_factory=dict)


def load_fixtures(database_url: str, seed: int) -> Fixtures:
    with psycopg.connect(database_url) as conn:
        users = conn.execute("SELECT id, username, role FROM accounts_user ORDER BY id").fetchall()
        by_name = {name: uid for uid, name, _role in users}
        technicians = [uid for uid, _name, role in users if role == "technician"]
        admin_id = by_name[datagen.ADMIN_USERNAME]
        sales_id = by_name.get("bench_sales_001") or next(uid for uid, _n, role in users if role == "sales_agent")
        tech_id = by_name.get("bench_tech_001") or technicians[0]
        detail = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM jobs_job WHERE assigned_to_id = %s ORDER BY scheduled_date, id", (tech_id,)
            )
        ]
        rows = conn.execute(
            """
            SELECT j.id, j.assigned_to_id, t.id, t.status
            FROM jobs_job j JOIN jobs_jobtask t ON t.job_id = j.id
            WHERE j.status IN ('pending', 'in_progress') AND j.assigned_to_id IS NOT NULL AND t.status <> 'completed'
            ORDER BY j.id, t."order"
            """
        ).fetchall()
    jobs: dict[int, tuple[int, list[tuple[str, int]]]] = {}
    for job_id, assignee, task_id, status in rows:
        steps = jobs.setdefault(job_id, (assignee, []))[1]
        if status == "pending":
            steps.append(("start", task_id))
        steps.append(("complete", task_id))
    write_jobs = list(jobs.values())
    random.Random(seed).shuffle(write_jobs)
    return Fixtures(
        admin_id=admin_id,
        sales_id=sales_id,
        tech_id=tech_id,
        technician_ids=technicians,
        detail_job_ids=detail,
        write_jobs=write_jobs,
    )


def get_tokens(server: Server, env: dict[str, str], fx: Fixtures) -> None:
    """A real access token per user: minted with simplejwt for every technician (the write mix acts as each job's
    assignee), then replaced by a login through ``POST /api/auth/token/`` for the three role users when that works."""
    wanted = sorted({fx.admin_id, fx.sales_id, fx.tech_id, *fx.technician_ids})
    fx.tokens = {int(k): v for k, v in json.loads(django_side(env, "mint-tokens", *map(str, wanted))).items()}
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        names = dict(conn.execute("SELECT id, username FROM accounts_user").fetchall())
    fx.usernames = names
    for role, uid in (("admin", fx.admin_id), ("sales_agent", fx.sales_id), ("technician", fx.tech_id)):
        status, body = http(
            "POST",
            f"{server.base}/api/auth/token/",
            body={"username": names[uid], "password": BENCH_PASSWORD},
        )
        if status == 200 and "access" in json.loads(body):
            fx.tokens[uid] = json.loads(body)["access"]
            fx.token_source[role] = "login (POST /api/auth/token/)"
        else:
            fx.token_source[role] = f"minted (AccessToken.for_user; the login endpoint answered {status})"


# --- endpoints --------------------------------------------------------------------------------------------------------

Line = tuple[str, ...]  # wrk thread ("*" = all), method, path, token[, If-None-Match]


@dataclass
class Endpoint:
    name: str
    label: str
    role: str
    lines: list[Line]
    limit: bool = False  # also measured on the limit server (whose body must equal ours)
    warmup_lines: list[Line] | None = None  # the write mix warms up on other jobs than it measures
    probe: Line | None = None  # a request to see whether the endpoint exists (default: the first line)
    is_list: bool = True  # its SQL must stay on indexes (analytics aggregates whole tables by design)
    body: dict[str, Any] | None = None  # the JSON body of every request of a POST endpoint (the login's credentials)


def write_lines(
    jobs: list[tuple[int, list[tuple[str, int]]]], tokens: dict[int, str], threads: int, connections: int
) -> list[Line]:
    """Start/complete steps, one wrk thread per job, interleaved round-robin over the thread's jobs so that two
    steps of the same job are never in flight together (each step needs the previous one to have completed)."""
    lines: list[Line] = []
    min_active = 4 * max(1, connections // max(1, threads))
    for thread in range(threads):
        own = jobs[thread::threads]
        for step in range(max((len(steps) for _tech, steps in own), default=0)):
            active = [(tech, steps[step]) for tech, steps in own if step < len(steps)]
            if len(active) < min_active:
                break  # too few jobs left to keep one job's steps apart
            for tech, (action, task_id) in active:
                lines.append((str(thread), "POST", f"/api/tasks/{task_id}/{action}/", tokens[tech]))
    return lines


def build_endpoints(args: argparse.Namespace, fx: Fixtures) -> list[Endpoint]:
    admin, sales, tech = fx.tokens[fx.admin_id], fx.tokens[fx.sales_id], fx.tokens[fx.tech_id]
    # The write mix needs a step for every request: budget a generous rate for warm-up and measurement separately.
    budget_per_second = 600
    warm_jobs, main_jobs, probe_jobs = [], [], fx.write_jobs[:1]
    need_warm = budget_per_second * args.warmup
    count = 0
    for job in fx.write_jobs[1:]:
        if count < need_warm:
            warm_jobs.append(job)
            count += len(job[1])
        else:
            main_jobs.append(job)
    probe = None
    if probe_jobs:
        tech_id, steps = probe_jobs[0]
        probe = ("*", "POST", f"/api/tasks/{steps[0][1]}/{steps[0][0]}/", fx.tokens[tech_id])
    days = args.days
    return [
        Endpoint("jobs_p20", "job list, page 20", "admin", [("*", "GET", "/api/jobs/?page_size=20", admin)], True),
        Endpoint("jobs_p100", "job list, page 100", "admin", [("*", "GET", "/api/jobs/?page_size=100", admin)], True),
        Endpoint(
            "jobs_p20_technician", "job list, page 20", "technician", [("*", "GET", "/api/jobs/?page_size=20", tech)]
        ),
        Endpoint(
            "jobs_p20_sales", "job list, page 20", "sales_agent", [("*", "GET", "/api/jobs/?page_size=20", sales)]
        ),
        Endpoint(
            "job_detail",
            "job detail (rotating over own jobs)",
            "technician",
            [("*", "GET", f"/api/jobs/{job_id}/", tech) for job_id in fx.detail_job_ids],
        ),
        Endpoint("tasks_p20", "task list, page 20", "admin", [("*", "GET", "/api/tasks/?page_size=20", admin)]),
        Endpoint(
            "day_view",
            f"technician day view, days={days}",
            "technician",
            [("*", "GET", f"/api/dashboard/technician/?days={days}", tech)],
            True,
        ),
        Endpoint(
            "changes_p100",
            "change feed, 100 changes",
            "admin",
            [("*", "GET", f"/api/changes/?after={fx.feed_cursor}&limit=100", admin)],
        ),
        Endpoint("analytics", "analytics", "admin", [("*", "GET", "/api/analytics/", admin)], is_list=False),
        Endpoint("audit_p20", "audit list, page 20", "admin", [("*", "GET", "/api/audit/?page_size=20", admin)]),
        # A shift's morning: technicians logging in. Each login verifies a password hash (the hasher's cost is the
        # point) and writes its refresh token's row; the throttles are raised for the benchmark (django_env).
        Endpoint(
            "login",
            "log in (POST /api/auth/token/)",
            "technician",
            [("*", "POST", "/api/auth/token/", "")],
            is_list=False,
            body={"username": fx.usernames.get(fx.tech_id, ""), "password": BENCH_PASSWORD},
        ),
        Endpoint(
            "write_mix",
            "write mix: start/complete tasks",
            "technicians",
            write_lines(main_jobs, fx.tokens, args.threads, args.connections),
            warmup_lines=write_lines(warm_jobs, fx.tokens, args.threads, args.connections),
            probe=probe,
        ),
    ]


# --- wrk -------------------------------------------------------------------------------------------------------------


def run_wrk(
    wrk: str,
    server: Server,
    lines: list[Line],
    *,
    seconds: int,
    args: argparse.Namespace,
    raw_path: Path | None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    requests_path = (raw_path or args.results_dir / "warmup").with_suffix(".requests.tsv")
    requests_path.write_text("".join("\t".join(line) + "\n" for line in lines))
    command = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"{server.base}/",
    ]
    env = {**os.environ, "BENCH_REQUESTS": str(requests_path), "BENCH_HOST": server.host}
    if body is not None:
        env["BENCH_BODY"] = json.dumps(body)
    server_before, postgres_before = server.cpu_ticks(), postgres_ticks()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    server_cpu, postgres_cpu = server.cpu_ticks() - server_before, postgres_ticks() - postgres_before
    requests_path.unlink(missing_ok=True)
    if raw_path is not None:
        raw_path.write_text(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(seconds_run, 2),
        "rps": round(raw["requests"] / seconds_run, 1) if seconds_run else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p90_ms": round(raw["p90_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["latency_max_us"] / 1000, 2),
        "mean_ms": round(raw["latency_mean_us"] / 1000, 2),
        "non_2xx": raw["non_2xx_3xx"],
        "socket_errors": raw["errors_connect"] + raw["errors_read"] + raw["errors_write"] + raw["errors_timeout"],
        "bytes_per_response": round(raw["bytes"] / raw["requests"]) if raw["requests"] else 0,
        "wrapped": raw["wrapped"],
        # Where the machine's time went: CPU per request of the server's processes and of PostgreSQL's.
        "cpu_ms_per_request": {
            "server": round(server_cpu * 1000 / TICKS_PER_SECOND / raw["requests"], 3) if raw["requests"] else None,
            "postgres": round(postgres_cpu * 1000 / TICKS_PER_SECOND / raw["requests"], 3) if raw["requests"] else None,
        },
    }


def median_by(items: list[dict[str, Any]], key: Any) -> dict[str, Any]:
    """The middle item by ``key`` (the lower middle for an even count, so the figure is one that was measured)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


# --- reporting --------------------------------------------------------------------------------------------------------

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
TARGET_RATIOS = {"jobs_p20": 0.5, "day_view": 0.5, "jobs_p100": 0.4}
#: Issue 14: every hot read at >= 0.5 of the contract limit; the 304 path >= 0.8 of the contract limit's 304 and
#: >= 3 x JobOps' own 200 path.
TARGET_CONTRACT_RATIO = 0.5
TARGET_304_TO_LIMIT = 0.8
TARGET_304_TO_200 = 3.0
P99_OVER_P50 = 4.0
FEED_TARGET = 0.5
RSS_LIMIT_MB = 150


def fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = [
        ["endpoint", "role", "req/s", "p50 ms", "p99 ms", "p99/p50", "non-2xx", "SQL", "limit req/s", "limit p50/p99",
         "ratio", "target", "contract limit req/s", "ratio to contract"]
    ]  # fmt: skip
    for r in results:
        ours, limit = r.get("ours"), r.get("limit")
        if ours is None:
            rows.append([r["name"], r["role"], r["status"], *[""] * 11])
            continue
        target = TARGET_RATIOS.get(r["name"])
        ratio = r.get("ratio")
        verdict = ""
        if target is not None:
            verdict = f">= {target}: " + ("n/a" if ratio is None else ("met" if ratio >= target else "MISSED"))
        rows.append(
            [
                r["name"],
                r["role"],
                fmt(ours["rps"], ".1f"),
                fmt(ours["p50_ms"], ".1f"),
                fmt(ours["p99_ms"], ".1f"),
                fmt(ours["p99_ms"] / ours["p50_ms"] if ours["p50_ms"] else None, ".1f"),
                str(ours["non_2xx"] + ours["socket_errors"]),
                fmt(r.get("queries")),
                fmt(limit and limit["rps"], ".1f"),
                f"{limit['p50_ms']:.1f} / {limit['p99_ms']:.1f}" if limit else "-",
                fmt(ratio, ".3f"),
                verdict,
                fmt(r.get("contract") and r["contract"]["rps"], ".1f"),
                fmt(r.get("ratio_contract"), ".3f"),
            ]
        )
    return rows


def render_text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows[1:]]
    return "\n".join(out)


def targets(report: dict[str, Any]) -> list[str]:
    lines = []
    by_name = {r["name"]: r for r in report["endpoints"]}
    for name, target in TARGET_RATIOS.items():
        r = by_name.get(name, {})
        ratio = r.get("ratio")
        state = (
            "n/a (" + r.get("status", "not run") + ")" if ratio is None else ("met" if ratio >= target else "MISSED")
        )
        lines.append(f"{name}: ratio to the limit {fmt(ratio, '.3f')} (target >= {target}): {state}")
    # The feed's page of 100 changes against the limit server's page of 100 jobs (json_agg): target >= 0.5.
    feed, jobs_limit = by_name.get("changes_p100", {}).get("ours"), by_name.get("jobs_p100", {}).get("limit")
    if feed and jobs_limit:
        ratio = feed["rps"] / jobs_limit["rps"]
        state = "met" if ratio >= FEED_TARGET else "MISSED"
        lines.append(
            f"changes_p100: ratio to the limit's page of 100 jobs {ratio:.3f} (target >= {FEED_TARGET}): {state}"
        )
    else:
        lines.append("changes_p100: ratio to the limit's page of 100 jobs: not measured")
    for r in report["endpoints"]:
        if r.get("ratio_contract") is not None:
            state = "met" if r["ratio_contract"] >= TARGET_CONTRACT_RATIO else "MISSED"
            lines.append(
                f"{r['name']}: ratio to the contract limit {r['ratio_contract']:.3f} "
                f"(target >= {TARGET_CONTRACT_RATIO}): {state}"
            )
    for name, p in report.get("polling", {}).items():
        if "error" in p:
            lines.append(f"polling {name}: {p['error']}")
            continue
        to_limit, to_200 = p.get("ratio_304_to_contract_304"), p.get("ratio_304_to_200")
        lines.append(
            f"polling {name}: 304 path {p['ours_304']['rps']:.0f} req/s = {fmt(to_limit, '.2f')} x the contract "
            f"limit's 304 (target >= {TARGET_304_TO_LIMIT}: "
            + ("n/a" if to_limit is None else "met" if to_limit >= TARGET_304_TO_LIMIT else "MISSED")
            + f") and {fmt(to_200, '.2f')} x JobOps' 200 path (target >= {TARGET_304_TO_200}: "
            + ("n/a" if to_200 is None else "met" if to_200 >= TARGET_304_TO_200 else "MISSED")
            + ")"
        )
    over = [
        f"{r['name']} ({r['ours']['p99_ms']:.0f} / {r['ours']['p50_ms']:.0f} ms)"
        for r in report["endpoints"]
        if r.get("ours") and r["ours"]["p50_ms"] and r["ours"]["p99_ms"] > P99_OVER_P50 * r["ours"]["p50_ms"]
    ]
    lines.append(
        f"p99 <= {P99_OVER_P50:.0f} x p50 at {report['settings']['connections']} connections: "
        + ("met on every endpoint" if not over else "MISSED on " + ", ".join(over))
    )
    seq = [
        f"{e['name']} ({', '.join(e['seq_scans_on_big_tables'])})"
        for e in report["explain"]
        if e["seq_scans_on_big_tables"] and e.get("is_list", True)
    ]
    lines.append(
        "no Seq Scan on jobs_job, jobs_jobtask, audit_auditentry in the list endpoints' SQL: "
        + ("met" if not seq else "MISSED on " + "; ".join(seq))
    )
    failed = [
        f"{r['name']} ({r['ours']['non_2xx']} non-2xx, {r['ours']['socket_errors']} socket errors)"
        for r in report["endpoints"]
        if r.get("ours") and (r["ours"]["non_2xx"] or r["ours"]["socket_errors"])
    ]
    lines.append("every measured response 2xx: " + ("yes" if not failed else "NO: " + ", ".join(failed)))
    peaks = [w["vm_hwm_kb"] / 1024 for w in report["memory"].get("jobops", [])]
    if peaks:
        peak = max(peaks)
        lines.append(
            f"peak RSS per JobOps worker {peak:.0f} MB (max of {len(peaks)} workers; target < {RSS_LIMIT_MB} MB): "
            + ("met" if peak < RSS_LIMIT_MB else "MISSED")
        )
    else:
        lines.append("peak RSS per JobOps worker: not measured")
    return lines


def machine_info() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0:1]
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / MB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version[0].split(" Copyright")[0] if wrk_version else "?",
        "load_average_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def draw_chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in report["endpoints"] if r.get("ours")]
    names = [r["name"] for r in measured]
    y = list(range(len(names)))
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(13, 0.55 * len(names) + 1.8), sharey=True)
    height = 0.4
    for ax, key, title in ((ax_rps, "rps", "requests/s (higher is better)"), (ax_p99, "p99_ms", "p99 latency, ms")):
        ours = [r["ours"][key] for r in measured]
        limit = [r["limit"][key] if r.get("limit") else 0 for r in measured]
        ax.barh([i - height / 2 for i in y], ours, height, label="JobOps", color="#3b6ea5")
        ax.barh([i + height / 2 for i in y], limit, height, label="limit (raw SQL -> JSON)", color="#e0a030")
        for i, value in enumerate(ours):
            ax.text(value, i - height / 2, f" {value:.0f}", va="center", fontsize=8)
        for i, value in enumerate(limit):
            if value:
                ratio = measured[i].get("ratio")
                note = f"  (JobOps = {ratio:.2f} x limit)" if key == "rps" and ratio is not None else ""
                ax.text(value, i + height / 2, f" {value:.0f}{note}", va="center", fontsize=8)
        ax.set_title(title)
        ax.set_xlim(0, max([*ours, *limit, 1]) * (1.45 if key == "rps" else 1.15))  # room for the labels
        ax.grid(axis="x", alpha=0.3)
    ax_rps.set_yticks(y, names)
    ax_rps.invert_yaxis()
    ax_rps.legend(loc="lower right", fontsize=8)
    s = report["settings"]
    fig.suptitle(
        f"JobOps benchmark {report['started_at'][:16]} | {s['workers']} sync workers | wrk -t{s['threads']} "
        f"-c{s['connections']} -d{s['duration']}s | {report['data']['counts'].get('jobs', '?')} jobs",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ws_fanout_line(w: dict[str, Any]) -> str:
    return (
        f"WebSocket fan-out, {w['clients']} admin clients on {w['workers']} uvicorn workers, one change x "
        f"{w['rounds']}: p50 {w['p50_ms']:.0f} ms, p99 {w['p99_ms']:.0f} ms, last {w['max_ms']:.0f} ms from the "
        f"commit (target p99 < 1000 ms); counted from when the change became readable in the feed: p50 "
        f"{w['after_readable_p50_ms']:.0f} ms, p99 {w['after_readable_p99_ms']:.0f} ms; "
        f"{w['kb_per_idle_connection']:.0f} kB per idle connection (server RSS {w['server_rss_mb_before']:.0f} -> "
        f"{w['server_rss_mb_connected']:.0f} MB)"
    )


def polling_md(report: dict[str, Any]) -> str:
    rows = ["| endpoint | JobOps 304 req/s | JobOps 200 req/s | contract limit 304 req/s | 304 / contract 304 | "
            "304 / 200 | fleet 90% 304 + 10% 200 req/s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, p in report.get("polling", {}).items():
        if "error" in p:
            rows.append(f"| {name} | {p['error']} | | | | | |")
            continue
        rows.append(
            f"| {name} | {p['ours_304']['rps']:.1f} | {fmt(p.get('ours_200_rps'), '.1f')} | "
            f"{fmt(p.get('contract_304', {}).get('rps'), '.1f')} | {fmt(p.get('ratio_304_to_contract_304'), '.3f')} | "
            f"{fmt(p.get('ratio_304_to_200'), '.2f')} | {p['fleet']['rps']:.1f} |"
        )
    return "\n".join(rows) if len(rows) > 2 else "not measured"


def write_latest_md(report: dict[str, Any], table: str, path: Path) -> None:
    m, s, d = report["machine"], report["settings"], report["data"]
    explain_lines = []
    for e in report["explain"]:
        scans = sorted({scan for st in e["statements"] for scan in st.get("scans", [])})
        sql_ms = sum(st.get("execution_ms") or 0 for st in e["statements"])
        flagged = ""
        if e["seq_scans_on_big_tables"]:
            flagged = "**Seq Scan on " + ", ".join(e["seq_scans_on_big_tables"]) + "**"
            flagged += "; " if e.get("is_list", True) else " (whole-table aggregates: not held to the target); "
        explain_lines.append(
            f"- `{e['name']}` ({e['queries']} statements, {sql_ms:.1f} ms of SQL execution, HTTP {e['status']}): "
            + flagged
            + "; ".join(scans)
        )
    cpu_lines = []
    for r in report["endpoints"]:
        for key, label in (("ours", "JobOps"), ("limit", "limit"), ("contract", "contract limit")):
            cpu = (r.get(key) or {}).get("cpu_ms_per_request")
            if cpu and cpu.get("server") is not None:
                cpu_lines.append(f"| {r['name']} | {label} | {cpu['server']:.2f} | {cpu['postgres']:.2f} |")
    memory = report["memory"]
    rss = ", ".join(f"{w['vm_hwm_kb'] / 1024:.0f}" for w in memory.get("jobops", []))
    rss_limit = ", ".join(f"{w['vm_hwm_kb'] / 1024:.0f}" for w in memory.get("limit", []))
    equal = "; ".join(f"{k}: {v}" for k, v in report["body_checks"].items())
    rounds = ""
    if s.get("rounds", 1) > 1:
        rounds = f", {s['rounds']} rounds alternating JobOps and the limit (median figures, median ratio)"
    sources = set(report["tokens"].values())
    tokens = (
        f"{', '.join(report['tokens'])}: {sources.pop()}"
        if len(sources) == 1
        else "; ".join(f"{k}: {v}" for k, v in report["tokens"].items())
    )
    fanout = report.get("ws_fanout")
    live_stream_md = f"## Live stream (bench/ws_fanout.py)\n\n{ws_fanout_line(fanout)}\n" if fanout else ""
    text = f"""# JobOps benchmark: latest run

Generated by `make bench` (`bench/run.py`) on {report["started_at"][:19].replace("T", " ")} UTC;
chart: [latest.png](latest.png).
Raw results of every run are written to `bench/results/` (not committed). Compare ratios, not absolute figures:
the client (wrk), both servers and PostgreSQL share the same cores.

**Machine:** {m["cpu"]}, {m["cores"]} cores, {m["memory_gb"]} GB RAM, Linux {m["kernel"]}, Python {m["python"]},
{report["postgres"]}, {m["wrk"]}; load average {" ".join(m["load_average_at_start"])} at the start,
{" ".join(report.get("load_average_at_end", ["?"]))} at the end (other work on the machine skews absolute figures).
**Servers:** gunicorn, {s["workers"]} sync workers each (JobOps{" with gunicorn.conf.py" if s["gunicorn_conf"] else ""};
the limit server `bench/limit_server.py`), DEBUG off, Redis cache: {"yes" if s["redis"] else "no (local memory)"}.
**Load:** `wrk -t{s["threads"]} -c{s["connections"]} -d{s["duration"]}s --latency` after a {s["warmup"]} s warm-up, per
endpoint and server{rounds}. **Data:** {", ".join(f"{v} {k}" for k, v in d["counts"].items())} (seed {d["seed"]}).
**Tokens:** {tokens}.

{table}

`ratio` = JobOps req/s / limit req/s, measured in the same run. `non-2xx` counts non-2xx/3xx responses and socket
errors (must be 0 for a valid figure). `SQL` = statements per request (from the EXPLAIN capture).
Limit bodies equal to JobOps' (parsed JSON, key order included): {equal}.

`contract limit` = the same limit server after the contract's per-request work (JWT verified, user row read, the
list's ETag computed: `limit_server:contract_app`); `ratio to contract` = JobOps req/s / contract limit req/s.

## Polling fleet (If-None-Match)

{polling_md(report)}

## Targets (reported, not asserted)

{chr(10).join("- " + line for line in targets(report))}

Peak RSS (VmHWM) per gunicorn worker, MB: JobOps {rss or "-"}; limit {rss_limit or "-"}.

{live_stream_md}

## Where the time goes: CPU per request (ms, under the same load)

User + system CPU of the server's gunicorn processes and of all PostgreSQL processes during the measured run,
divided by the requests served (wrk's own share is not counted).

| endpoint | server | server CPU ms | PostgreSQL CPU ms |
|---|---|---|---|
{chr(10).join(cpu_lines) or "| - | - | - | - |"}

## SQL of the read endpoints (EXPLAIN ANALYZE on the benchmark data)

{chr(10).join(explain_lines) or "- not captured"}
"""
    path.write_text(text)


# --- main -------------------------------------------------------------------------------------------------------------


def output(report: dict[str, Any], args: argparse.Namespace, run_dir: Path, *, chart: bool) -> None:
    rows = table_rows(report["endpoints"])
    print()
    print(render_text_table(rows))
    print()
    for line in targets(report):
        print(f"  {line}")
    hwm = ", ".join(f"{w['vm_hwm_kb'] / 1024:.0f}" for w in report["memory"]["jobops"])
    print(f"  JobOps workers VmHWM (MB): {hwm}")
    if report.get("ws_fanout"):
        print(f"  {ws_fanout_line(report['ws_fanout'])}")
    if chart:
        draw_chart(report, run_dir / "chart.png")
    if not args.no_latest:
        write_latest_md(report, render_markdown_table(rows), BENCH / "LATEST.md")
        if chart:
            shutil.copyfile(run_dir / "chart.png", BENCH / "latest.png")


def measure_polling(
    wrk: str,
    args: argparse.Namespace,
    ep: Endpoint,
    entry: dict[str, Any],
    jobops: Server,
    contract: Server,
    run_dir: Path,
) -> dict[str, Any]:
    """JobOps' 304 path (every poll sends the current tag), the contract limit's 304 path, and a fleet of 90% unchanged
    polls and 10% changed ones (a stale tag gets the 200 and the body)."""
    _thread, _method, path, token = ep.lines[0][:4]
    ours_tag = etag_of(jobops.base + path, token=token, host=jobops.host)
    contract_tag = etag_of(contract.base + path, token=token, host=contract.host)  # wrk sends its own Host
    if not ours_tag:
        return {"error": "JobOps sent no ETag"}
    result: dict[str, Any] = {"path": path, "ours_200_rps": (entry.get("ours") or {}).get("rps")}
    plans: list[tuple[str, Server, list[Line]]] = [("ours_304", jobops, [("*", "GET", path, token, ours_tag)])]
    if contract_tag and entry.get("contract_body_equal"):
        plans.append(("contract_304", contract, [("*", "GET", path, token, contract_tag)]))
    fleet = [("*", "GET", path, token, ours_tag)] * 9 + [("*", "GET", path, token, '"stale"')]
    plans.append(("fleet", jobops, fleet))
    for key, server, lines in plans:
        if args.warmup > 0:
            run_wrk(wrk, server, lines, seconds=args.warmup, args=args, raw_path=None)
        measured = run_wrk(
            wrk, server, lines, seconds=args.duration, args=args, raw_path=run_dir / f"wrk-poll-{ep.name}-{key}.txt"
        )
        result[key] = measured
        log(f"polling {ep.name} [{key}]: {measured['rps']:.1f} req/s, p50 {measured['p50_ms']:.1f} ms, "
            f"{measured['bytes_per_response']} bytes/response, non-2xx {measured['non_2xx']}")  # fmt: skip
    if result.get("contract_304", {}).get("rps"):
        result["ratio_304_to_contract_304"] = round(result["ours_304"]["rps"] / result["contract_304"]["rps"], 3)
    if result["ours_200_rps"]:
        result["ratio_304_to_200"] = round(result["ours_304"]["rps"] / result["ours_200_rps"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        output(json.loads(args.render.read_text()), args, args.render.parent, chart=not args.no_chart)
        return 0
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    run_dir = args.results_dir / stamp
    run_dir.mkdir()
    wrk = ensure_wrk()
    chart_ok = not args.no_chart and ensure_matplotlib()
    database_url = f"{args.pg}/{args.db}"
    env = django_env(args, database_url, run_dir / "var")
    servers: list[Server] = []
    exit_code = 0
    sizes = datagen.Sizes(args.jobs, args.tasks, args.equipment, args.technicians, args.sales_agents, args.audit)
    report: dict[str, Any] = {"started_at": started.isoformat(), "machine": machine_info()}
    try:
        # --- data ---
        if args.reuse_data and database_has_data(args.pg, args.db):
            log(f"reusing database {args.db}")
            subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO, check=True)
            generated = None
        else:
            log(f"creating database {args.db}")
            recreate_database(args.pg, args.db)
            t0 = time.monotonic()
            subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO, check=True)
            log(f"migrated in {time.monotonic() - t0:.1f} s; generating data ({sizes})")
            password_hash = django_side({**env, "BENCH_PASSWORD": BENCH_PASSWORD}, "hash-password")
            generated = datagen.generate(database_url, sizes=sizes, seed=args.seed, password_hash=password_hash)
            log(f"data loaded in {generated.seconds:.1f} s: {generated.counts}")
        with psycopg.connect(database_url) as conn:
            counts = {
                label: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for label, table in (
                    ("users", "accounts_user"),
                    ("equipment", "equipment_equipment"),
                    ("jobs", "jobs_job"),
                    ("tasks", "jobs_jobtask"),
                    ("audit entries", "audit_auditentry"),
                )
            }
            report["postgres"] = conn.execute("SHOW server_version").fetchone()[0].split(" ")[0]
            report["postgres"] = f"PostgreSQL {report['postgres']}"
        report["data"] = {
            "database": args.db,
            "seed": args.seed,
            "generated": generated is not None,
            "generation_seconds": generated and round(generated.seconds, 1),
            "counts": counts,
        }

        # --- servers ---
        config = REPO / "gunicorn.conf.py"
        has_config = config.exists()
        log(f"starting JobOps and the limit server ({args.workers} sync workers each)")
        jobops = start_gunicorn(
            "jobops",
            "jobops.asgi:application" if args.asgi else "jobops.wsgi:application",
            cwd=REPO,
            env=env,
            workers=args.workers,
            log_dir=run_dir,
            config=config if has_config else None,
            worker_class="uvicorn_worker.UvicornWorker" if args.asgi else "sync",
        )
        servers.append(jobops)
        limit_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GUNICORN")},
            "LIMIT_DATABASE_URL": database_url,
        }
        limit = start_gunicorn(
            "limit", "limit_server:app", cwd=BENCH, env=limit_env, workers=args.workers, log_dir=run_dir, config=None
        )
        servers.append(limit)
        contract = start_gunicorn(
            "contract",
            "limit_server:contract_app",
            cwd=BENCH,
            env={**limit_env, "LIMIT_JWT_KEY": SECRET_KEY},
            workers=args.workers,
            log_dir=run_dir,
            config=None,
        )
        servers.append(contract)
        report["settings"] = {
            "workers": args.workers,
            "threads": args.threads,
            "connections": args.connections,
            "duration": args.duration,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "days": args.days,
            "gunicorn_conf": has_config,
            "jobops_server": "asgi (uvicorn workers)" if args.asgi else "wsgi (sync workers)",
            "redis": bool(env["REDIS_URL"]),
        }

        # --- tokens, fixtures, endpoints ---
        fx = load_fixtures(database_url, args.seed)
        get_tokens(jobops, env, fx)
        fx.feed_cursor = django_side(env, "feed-backlog", "100").strip()
        report["tokens"] = fx.token_source
        endpoints = build_endpoints(args, fx)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            endpoints = [e for e in endpoints if e.name in wanted]

        # --- availability and body equality ---
        results: list[dict[str, Any]] = []
        report["body_checks"] = {}
        for ep in endpoints:
            _thread, method, path, token = ep.probe or ep.lines[0]
            status, body = http(method, jobops.base + path, token=token, host=jobops.host, body=ep.body)
            entry: dict[str, Any] = {"name": ep.name, "label": ep.label, "role": ep.role, "path": path}
            if status == 404:
                entry["status"] = "missing (404)"
            elif not 200 <= status < 300:
                entry["status"] = f"error: HTTP {status} {body[:200]!r}"
            elif not ep.lines:
                entry["status"] = "no requests (no open tasks left for the write mix)"
            else:
                entry["status"] = "ok"
            if entry["status"] == "ok" and ep.limit:
                limit_status, limit_body = http(method, limit.base + path, token=token, host=jobops.host)
                difference = (
                    f"limit answered HTTP {limit_status}"
                    if limit_status != 200
                    else first_difference(ordered(body), ordered(limit_body))
                )
                entry["body_equal"] = difference is None
                entry["body_bytes"] = {"jobops": len(body), "limit": len(limit_body)}
                report["body_checks"][ep.name] = (
                    f"equal ({len(json.loads(body)) if ep.name == 'day_view' else 'page'} items, "
                    f"{len(body)} / {len(limit_body)} bytes)"
                    if difference is None
                    else f"DIFFERENT: {difference}"
                )
                if difference is not None:
                    log(f"{ep.name}: limit body differs from JobOps': {difference}")
                    exit_code = 2
                contract_status, contract_body = http(method, contract.base + path, token=token, host=jobops.host)
                contract_difference = (
                    f"contract limit answered HTTP {contract_status}"
                    if contract_status != 200
                    else first_difference(ordered(body), ordered(contract_body))
                )
                entry["contract_body_equal"] = contract_difference is None
                if contract_difference is not None:
                    log(f"{ep.name}: contract limit body differs from JobOps': {contract_difference}")
                    exit_code = 2
            results.append(entry)
            log(
                f"{ep.name}: {entry['status']}"
                + (f", body check: {report['body_checks'][ep.name]}" if ep.limit and entry["status"] == "ok" else "")
            )

        # --- EXPLAIN of the read endpoints' SQL ---
        spec = [
            {"name": ep.name, "path": ep.lines[0][2], "token": ep.lines[0][3], "is_list": ep.is_list}
            for ep, entry in zip(endpoints, results, strict=True)
            if entry["status"] == "ok" and ep.lines[0][1] == "GET"
        ]
        spec_path = run_dir / "explain-spec.json"
        spec_path.write_text(json.dumps(spec))
        log("capturing and explaining the SQL of the read endpoints")
        report["explain"] = json.loads(django_side(env, "explain", str(spec_path)))
        spec_path.unlink()
        queries = {e["name"]: e["queries"] for e in report["explain"]}
        for e in report["explain"]:
            if e["seq_scans_on_big_tables"]:
                log(f"  {e['name']}: Seq Scan on {', '.join(e['seq_scans_on_big_tables'])}")

        # --- load ---
        for ep, entry in zip(endpoints, results, strict=True):
            if entry["status"] != "ok":
                continue
            entry["queries"] = queries.get(ep.name)
            targets_to_run = [("ours", jobops)]
            if ep.limit and entry.get("body_equal"):
                targets_to_run.append(("limit", limit))
            if ep.limit and entry.get("contract_body_equal"):
                targets_to_run.append(("contract", contract))
            # The write mix consumes its steps, so it is measured once; reads alternate ours/limit per round.
            rounds = 1 if ep.warmup_lines is not None else max(1, args.rounds)
            entry["rounds"] = []
            for round_no in range(1, rounds + 1):
                this_round: dict[str, Any] = {}
                for key, server in targets_to_run:
                    if args.warmup > 0:
                        lines = ep.warmup_lines or ep.lines
                        run_wrk(wrk, server, lines, seconds=args.warmup, args=args, raw_path=None, body=ep.body)
                    suffix = f"-round{round_no}" if rounds > 1 else ""
                    measured = run_wrk(
                        wrk,
                        server,
                        ep.lines,
                        seconds=args.duration,
                        args=args,
                        raw_path=run_dir / f"wrk-{ep.name}-{key}{suffix}.txt",
                        body=ep.body,
                    )
                    this_round[key] = measured
                    log(
                        f"{ep.name} [{server.name}]: {measured['rps']:.1f} req/s, p50 {measured['p50_ms']:.1f} ms, "
                        f"p99 {measured['p99_ms']:.1f} ms, non-2xx {measured['non_2xx']}, "
                        f"errors {measured['socket_errors']}"
                        + (
                            f", WRAPPED {measured['wrapped']}x (ran out of distinct requests)"
                            if ep.warmup_lines and measured["wrapped"]
                            else ""
                        )
                    )
                if this_round.get("limit", {}).get("rps"):
                    this_round["ratio"] = round(this_round["ours"]["rps"] / this_round["limit"]["rps"], 3)
                if this_round.get("contract", {}).get("rps"):
                    this_round["ratio_contract"] = round(this_round["ours"]["rps"] / this_round["contract"]["rps"], 3)
                entry["rounds"].append(this_round)
            # Several rounds: report the median-throughput measurement of each server and the median ratio.
            for key, _server in targets_to_run:
                entry[key] = median_by(entry["rounds"], lambda r, key=key: r[key]["rps"])[key]
            ratios = [r["ratio"] for r in entry["rounds"] if "ratio" in r]
            if ratios:
                entry["ratio"] = sorted(ratios)[(len(ratios) - 1) // 2]
            contract_ratios = [r["ratio_contract"] for r in entry["rounds"] if "ratio_contract" in r]
            if contract_ratios:
                entry["ratio_contract"] = sorted(contract_ratios)[(len(contract_ratios) - 1) // 2]
        report["endpoints"] = results

        # --- the polling fleet: If-None-Match on the job list and the day view ---
        report["polling"] = {}
        by_name = {ep.name: (ep, entry) for ep, entry in zip(endpoints, results, strict=True)}
        for name in ("jobs_p20", "day_view"):
            if name not in by_name or by_name[name][1]["status"] != "ok":
                continue
            ep, entry = by_name[name]
            report["polling"][name] = measure_polling(wrk, args, ep, entry, jobops, contract, run_dir)
        report["memory"] = {
            "jobops": jobops.worker_memory(),
            "limit": limit.worker_memory(),
            "contract": contract.worker_memory(),
        }
        report["load_average_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        if args.ws_clients > 0:
            report["ws_fanout"] = run_ws_fanout(args, env, database_url, run_dir)
    finally:
        for server in servers:
            server.stop()
        if not (args.reuse_data or args.keep_data):
            with contextlib.suppress(psycopg.Error):
                recreate_database(args.pg, args.db, drop_only=True)

    # --- output ---
    (run_dir / "results.json").write_text(json.dumps(report, indent=2, default=str))
    shutil.copyfile(run_dir / "results.json", args.results_dir / "latest.json")
    output(report, args, run_dir, chart=chart_ok)
    log(f"results: {run_dir}" + ("" if args.no_latest else "; summary: bench/LATEST.md, bench/latest.png"))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
