"""The read replica against a real streaming pair (ops/pgpair.py) and a real gunicorn web process.

The server runs with DATABASE_URL on the pair's primary and DATABASE_REPLICA_URL on its hot standby. Pausing the
standby's WAL replay proves where each endpoint reads: a write then shows on the primary-routed job API at once and
on the replica-routed reports (analytics, equipment usage, audit listing) only after replay resumes. Stopping the
standby proves the fallback: the reports answer 200 from the primary, and the breaker spares them the replica's
connect timeout until the retry interval is over.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops import pgpair
from tests.conftest import require_service
from tests.deploy.support import PYTHON, ROOT, free_port, hermetic_env

pytestmark = pytest.mark.services

ENTRYPOINT = str(ROOT / "docker" / "entrypoint.sh")
RETRY_SECONDS = 3.0


@dataclass
class Web:
    url: str
    popen: subprocess.Popen
    log: Path
    env: dict[str, str]
    token: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any, float]:
        """``(status, JSON body, seconds)`` of one request with the admin's token."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        began = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310 - our own loopback server
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        elapsed = time.monotonic() - began
        return status, (json.loads(raw) if raw else None), elapsed

    def get(self, path: str) -> Any:
        status, body, _ = self.request("GET", path)
        assert status == 200, (path, status, body, self.output()[-3000:])
        return body

    def post(self, path: str, body: Any) -> Any:
        status, answer, _ = self.request("POST", path, body)
        assert status == 201, (path, status, answer)
        return answer

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)


def start_web(tmp: Path, name: str, *, database_url: str, replica_url: str) -> Web:
    port = free_port()
    env = hermetic_env(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.test",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            "DATABASE_REPLICA_URL": replica_url,
            "DATABASE_REPLICA_RETRY_SECONDS": str(RETRY_SECONDS),
            # One worker process: the breaker is per process, so every request sees the same one.
            "GUNICORN_WORKERS": "1",
            "GUNICORN_ACCESS_LOG": "0",
            "LOG_FORMAT": "plain",
            "JOBOPS_ROLE_FILE": str(tmp / f"{name}.role"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = tmp / f"{name}.log"
    with log.open("w") as handle:
        popen = subprocess.Popen(
            [ENTRYPOINT, "web", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "2"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    web = Web(url=f"http://127.0.0.1:{port}", popen=popen, log=log, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            pytest.fail(f"{name} exited with {popen.returncode}:\n{web.output()[-4000:]}")
        try:
            with urllib.request.urlopen(web.url + "/healthz/", timeout=2):  # noqa: S310
                break
        except (OSError, urllib.error.URLError):
            time.sleep(0.3)
    else:
        web.stop()
        pytest.fail(f"{name} did not answer within 90 s:\n{web.output()[-4000:]}")
    web.token = admin_token(env)
    return web


def admin_token(env: dict[str, str]) -> str:
    """An access token for an admin of the server's database (created on the primary if missing)."""
    script = (
        "import django; django.setup()\n"
        "from accounts.models import User\n"
        "from rest_framework_simplejwt.tokens import AccessToken\n"
        "user = User.objects.filter(username='drill-admin').first() or User.objects.create_user("
        "username='drill-admin', password='drill-admin-pass-1', role=User.Role.ADMIN, is_staff=True)\n"
        "print(AccessToken.for_user(user))\n"
    )
    result = subprocess.run(
        [str(PYTHON), "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def pair() -> Iterator[pgpair.Pair]:
    require_service("PostgreSQL server binaries", pgpair.available(), f"initdb/pg_basebackup under {pgpair.PG_ROOT}")
    # Not pytest's tmp_path: the postgres user cannot enter its 0700 parents of root's. pgpair hands this one over.
    directory = Path(tempfile.mkdtemp(prefix="jobops-pair-"))
    began = time.monotonic()
    started = pgpair.start(directory, primary_port=free_port(), standby_port=free_port(), dbname="jobops")
    print(f"pair started in {time.monotonic() - began:.2f} s")
    try:
        yield started
    finally:
        started.stop(remove=True)


@pytest.fixture(scope="module")
def web(pair, tmp_path_factory) -> Iterator[Web]:
    server = start_web(
        tmp_path_factory.mktemp("replica"), "web", database_url=pair.primary_url, replica_url=pair.standby_url
    )
    try:
        yield server
    finally:
        server.stop()


def snapshot(web: Web, equipment_id: int) -> dict[str, int]:
    """What the reports (replica-routed) and the job list (primary-routed) count right now."""
    return {
        "analytics_jobs": web.get("/api/analytics/")["jobs_total"],
        "usage_tasks": web.get(f"/api/equipment/{equipment_id}/usage/")["tasks_count"],
        "audit_entries": web.get("/api/audit/")["count"],
        "jobs": web.get("/api/jobs/")["count"],
    }


def add_job_with_task(web: Web, equipment_id: int, title: str) -> dict[str, Any]:
    job = web.post("/api/jobs/", {"title": title, "client_name": "Drill Ltd", "scheduled_date": "2031-01-01"})
    web.post(f"/api/jobs/{job['id']}/tasks/", {"title": f"{title} task", "required_equipment": [equipment_id]})
    return job


@pytest.fixture(scope="module")
def equipment(web, pair) -> int:
    item = web.post("/api/equipment/", {"name": "Replica drill", "type": "tool", "serial_number": "RD-1"})
    add_job_with_task(web, item["id"], "First")
    pair.wait_replayed()
    return int(item["id"])


def test_reports_read_the_standby_and_jobs_the_primary(web, pair, equipment):
    before = snapshot(web, equipment)
    assert before == {"analytics_jobs": 1, "usage_tasks": 1, "audit_entries": before["audit_entries"], "jobs": 1}
    assert before["audit_entries"] == int(pair.sql("SELECT count(*) FROM audit_auditentry"))

    pair.pause_replay()
    try:
        job = add_job_with_task(web, equipment, "Second")
        # The primary has it: the job API reads the client's own write at once...
        assert web.get(f"/api/jobs/{job['id']}/")["title"] == "Second"
        newest_entry = int(pair.sql("SELECT max(id) FROM audit_auditentry"))
        status, _, _ = web.request("GET", f"/api/audit/{newest_entry}/")
        assert status == 404  # ...the standby, paused, has not replayed it yet
        paused = snapshot(web, equipment)
        assert paused["jobs"] == 2
        assert {k: paused[k] for k in ("analytics_jobs", "usage_tasks", "audit_entries")} == {
            k: before[k] for k in ("analytics_jobs", "usage_tasks", "audit_entries")
        }
    finally:
        pair.resume_replay()
    lag = pair.wait_replayed()
    print(f"standby caught up {lag * 1000:.0f} ms after resume")
    after = snapshot(web, equipment)
    assert after["analytics_jobs"] == after["jobs"] == 2
    assert after["usage_tasks"] == 2
    assert after["audit_entries"] == int(pair.sql("SELECT count(*) FROM audit_auditentry")) > before["audit_entries"]
    assert web.get(f"/api/audit/{newest_entry}/")["id"] == newest_entry


def test_replication_lag_after_a_write_is_small(web, pair, equipment):
    job = add_job_with_task(web, equipment, "Lag probe")
    lag = pair.wait_replayed()
    print(f"replay lag after a write: {lag * 1000:.0f} ms")
    assert lag < 2.0
    assert web.get("/api/analytics/")["jobs_total"] == web.get("/api/jobs/")["count"]
    assert job["id"]


def test_standby_down_reports_fall_back_to_the_primary_then_return(web, pair, equipment):
    warnings_before = web.output().count("replica read failed")
    pair.stop_standby()
    try:
        # The primary answers, with its fresher figures: a job written now is counted at once.
        add_job_with_task(web, equipment, "While down")
        timings = []
        for _ in range(5):
            status, body, elapsed = web.request("GET", "/api/analytics/")
            assert status == 200, body
            assert body["jobs_total"] == web.get("/api/jobs/")["count"]
            timings.append(elapsed)
        for path in (f"/api/equipment/{equipment}/usage/", "/api/audit/"):
            status, _, elapsed = web.request("GET", path)
            assert status == 200
            timings.append(elapsed)
        print("report latencies with the standby down (ms): " + ", ".join(f"{t * 1000:.0f}" for t in timings))
        assert max(timings) < 1.0
        # One failure tripped the breaker: the other reports in the window did not try the standby.
        assert web.output().count("replica read failed") == warnings_before + 1
    finally:
        pair.start_standby()
    pair.wait_replayed()
    # After the retry interval the reports are back on the standby: pause it, write, and they no longer see it.
    time.sleep(RETRY_SECONDS + 0.2)
    web.get("/api/analytics/")  # the first report after the window reconnects to the standby
    pair.pause_replay()
    try:
        add_job_with_task(web, equipment, "Back on the standby")
        jobs = web.get("/api/jobs/")["count"]
        assert web.get("/api/analytics/")["jobs_total"] == jobs - 1
    finally:
        pair.resume_replay()
    pair.wait_replayed()
    assert web.get("/api/analytics/")["jobs_total"] == web.get("/api/jobs/")["count"]


@pytest.fixture
def silent_standby() -> Iterator[int]:
    """A port that completes the TCP handshake and then says nothing: a standby that hangs (a connect timeout)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def test_an_unreachable_standby_costs_one_connect_timeout_per_retry_interval(pair, silent_standby, tmp_path):
    web = start_web(
        tmp_path,
        "web-silent",
        database_url=pair.primary_url,
        replica_url=f"postgres://postgres@127.0.0.1:{silent_standby}/jobops",
    )
    try:
        status, _, first = web.request("GET", "/api/analytics/")
        assert status == 200
        others = []
        for path in ("/api/analytics/", "/api/audit/", "/api/analytics/", "/api/audit/"):
            status, _, elapsed = web.request("GET", path)
            assert status == 200
            others.append(elapsed)
        print(f"hung standby: first report {first:.2f} s, then (ms) " + ", ".join(f"{t * 1000:.0f}" for t in others))
        assert 1.5 <= first < 6  # connect_timeout=2 s, paid once
        assert max(others) < 1.0  # the breaker is open: straight to the primary
        assert len(re.findall("replica read failed", web.output())) == 1
    finally:
        web.stop()


def test_the_lag_measure_reads_zero_when_current_and_grows_while_replay_is_stalled(web, pair, equipment):
    from jobops.replica import LAG_SQL

    def lag() -> float:
        return float(pair.sql(LAG_SQL, standby=True))

    pair.wait_replayed()
    time.sleep(1.5)
    assert lag() == 0  # streaming and replayed all it received: current, however long the primary was idle
    pair.pause_replay()
    try:
        add_job_with_task(web, equipment, "Stalled")
        time.sleep(1.5)
        assert lag() >= 1.0  # the write is received but not replayed: its age counts
    finally:
        pair.resume_replay()
    pair.wait_replayed()
    assert lag() == 0
