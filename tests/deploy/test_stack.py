"""The containers' commands, run directly on this machine against the local PostgreSQL, RabbitMQ and Redis.

There is no Docker engine on CI, so this runs exactly what the image runs (``docker/entrypoint.sh web|worker|beat``:
migrations under the advisory lock + gunicorn with gunicorn.conf.py, a celery worker, celery beat), with the
production settings (DEBUG off, static files collected the way the Dockerfile collects them), probes them with the
same ``docker/healthcheck.py`` the Compose healthchecks use, then stops them with SIGTERM as Docker would.
Each run uses its own database, queue, cache prefix and worker name, so it shares the services with anything else.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import require_service

from .support import (
    PYTHON,
    ROOT,
    broker_available,
    broker_url,
    free_port,
    hermetic_env,
    postgres_server_url,
    redis_available,
    redis_url,
)

pytestmark = pytest.mark.services

ENTRYPOINT = str(ROOT / "docker" / "entrypoint.sh")
HEALTHCHECK = str(ROOT / "docker" / "healthcheck.py")
_MIGRATE_SOURCE = (ROOT / "docker" / "migrate.py").read_text()
MIGRATION_LOCK_KEY = int(re.search(r"MIGRATION_LOCK_KEY = (0x[0-9A-Fa-f]+)", _MIGRATE_SOURCE)[1], 16)


def _database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _postgres_available(url: str) -> bool:
    if not url:
        return False
    try:
        with psycopg.connect(_database_url(url, "postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="module")
def services() -> dict[str, str]:
    urls = {"postgres": postgres_server_url(), "broker": broker_url(), "redis": redis_url()}
    require_service("PostgreSQL", _postgres_available(urls["postgres"]), "set DATABASE_URL to a PostgreSQL server")
    require_service("RabbitMQ", broker_available(urls["broker"]), "set CELERY_BROKER_URL to a RabbitMQ (amqp://)")
    require_service("Redis", redis_available(urls["redis"]), "set REDIS_URL to a Redis")
    return urls


@pytest.fixture(scope="module")
def make_database(services) -> Iterator:
    created: list[str] = []
    admin_url = _database_url(services["postgres"], "postgres")

    def make() -> str:
        name = f"jobops_deploy_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _database_url(services["postgres"], name)

    yield make
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    env: dict[str, str] = field(repr=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 45) -> int | None:
        """SIGTERM to the main process (what `docker stop` does), SIGKILL for anything left after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # its own session: stray children of this process only
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)
        return self.popen.returncode


def start(name: str, role: str, env: dict[str, str], tmp: Path) -> Process:
    log = tmp / f"{name}.log"
    env = {**env, "JOBOPS_ROLE_FILE": str(tmp / f"{name}.role")}
    with log.open("w") as handle:
        popen = subprocess.Popen(
            [ENTRYPOINT, role],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Process(name=name, popen=popen, log=log, env=env)


def healthcheck(env: dict[str, str], role: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(PYTHON), HEALTHCHECK] + ([role] if role else [])
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def wait_until(predicate, timeout: float, what: str, process: Process | None = None, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            code = process.popen.returncode
            pytest.fail(f"{process.name} exited with {code} while waiting for {what}:\n{process.output()[-4000:]}")
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    detail = f"\n{process.output()[-4000:]}" if process is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "localhost", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, b""


def collect_static(env: dict[str, str]) -> None:
    # The Dockerfile's build step: DEBUG off, so whitenoise's hashed + compressed storage runs.
    result = subprocess.run(
        [str(PYTHON), "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


@dataclass
class Stack:
    env: dict[str, str]
    port: int
    queue: str
    web: Process
    worker: Process
    beat: Process


@pytest.fixture(scope="module")
def stack(services, make_database, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    port = free_port()
    queue = f"jobops-deploy-{token}"
    env = hermetic_env(
        {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "DATABASE_URL": make_database(),
            "REDIS_URL": services["redis"],
            "CACHE_KEY_PREFIX": f"jobops-deploy-{token}",
            "CELERY_BROKER_URL": services["broker"],
            "CELERY_RESULT_BACKEND": services["redis"],
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "CELERY_WORKER_NAME": f"deploy-{token}@%h",
            "CELERY_WORKER_CONCURRENCY": "1",
            "CELERY_BEAT_SCHEDULE_FILE": str(tmp / "beat" / "celerybeat-schedule"),
            "JOBOPS_VAR_DIR": str(tmp / "var"),
            "PORT": str(port),
            "GUNICORN_WORKERS": "2",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    collect_static(env)
    web = start("web", "web", env, tmp)
    processes = [web]
    try:
        wait_until(lambda: get(port, "/readyz/")[0] == 200, 120, "web /readyz/ 200", web)
        worker = start("worker", "worker", env, tmp)
        beat = start("beat", "beat", env, tmp)
        processes += [worker, beat]
        yield Stack(env=env, port=port, queue=queue, web=web, worker=worker, beat=beat)
        # Stop only once both are up (as the tests leave them), so the stop below tests their shutdown, not boot.
        wait_until(lambda: healthcheck(env, "worker").returncode == 0, 90, "the worker ping", worker, 2)
        wait_until(lambda: healthcheck(env, "beat").returncode == 0, 60, "beat's schedule file", beat)
    finally:
        codes = {p.name: p.stop() for p in reversed(processes)}
        _delete_queue(services["broker"], queue)
    # Every process honours SIGTERM: gunicorn lets requests finish, the worker does a warm shutdown.
    assert all(code == 0 for code in codes.values()), f"unclean stop: {codes}"


def _delete_queue(url: str, queue: str) -> None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception:  # cleanup only: a queue left behind must not hide the test's own result
        pass


def test_web_migrates_then_serves_readyz_with_every_dependency(stack):
    status, headers, body = get(stack.port, "/readyz/")
    assert status == 200
    assert json.loads(body) == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok", "channel_layer": "ok"},
    }
    output = stack.web.output()
    assert "migration lock held" in output and "Applying accounts.0001_initial" in output
    result = healthcheck(stack.env, "web")
    assert result.returncode == 0, result.stdout
    # Without a role the check reads the role file the entrypoint wrote.
    assert healthcheck(stack.web.env).stdout.startswith("healthy: readyz ok")


def test_the_ws_role_serves_readyz_and_websockets_on_uvicorn_workers_without_migrating(stack, tmp_path):
    from websockets.sync.client import connect

    port = free_port()
    ws = start("ws", "ws", {**stack.env, "PORT": str(port), "WS_WORKERS": "1"}, tmp_path)
    try:
        wait_until(lambda: get(port, "/readyz/")[0] == 200, 60, "ws /readyz/ 200", ws)
        assert json.loads(get(port, "/readyz/")[2])["checks"]["channel_layer"] == "ok"
        assert healthcheck(ws.env, "ws").returncode == 0
        with connect(f"ws://127.0.0.1:{port}/ws/changes/", open_timeout=10) as client:
            client.send(json.dumps({"type": "auth", "token": "not-a-token"}))
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=10)
        assert closed.value.rcvd.code == 4401
        assert "uvicorn_worker.UvicornWorker" in ws.output()
        assert "Applying" not in ws.output() and "migration lock" not in ws.output()
    finally:
        assert ws.stop() == 0


def test_gunicorn_serves_the_collected_static_files(stack):
    status, _, body = get(stack.port, "/api/docs/")
    assert status == 200
    # With DEBUG off the page links hashed names from the manifest; whitenoise serves them compressed.
    match = re.search(rb"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle\.[0-9a-f]{12}\.js", body)
    assert match, body[:2000]
    status, headers, asset = get(stack.port, match[0].decode(), {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert "immutable" in headers.get("Cache-Control", "")
    assert len(asset) > 1000


def test_access_log_is_json_with_the_request_id(stack):
    request_id = f"deploy-test-{secrets.token_hex(4)}"
    assert get(stack.port, "/healthz/", {"X-Request-ID": request_id})[0] == 200

    def access_line():
        for line in stack.web.output().splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry["logger"] == "gunicorn.access":
                    return entry
        return None

    entry = wait_until(access_line, 10, "the access log line")
    assert entry["logger"] == "gunicorn.access"
    assert entry["request_id"] == request_id
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz/", 200)


def test_worker_answers_its_healthcheck_and_runs_tasks(stack):
    wait_until(lambda: healthcheck(stack.env, "worker").returncode == 0, 90, "the worker ping", stack.worker, 2)
    # A task published to the configured queue is consumed by this worker.
    from celery import Celery

    app = Celery("deploy-test")
    app.conf.update(
        broker_url=stack.env["CELERY_BROKER_URL"],
        task_default_queue=stack.queue,
        task_default_queue_type="quorum",
        broker_transport_options={"confirm_publish": True},
    )
    try:
        result = app.send_task("notifications.requeue_unsent")
    finally:
        app.close()
    wait_until(
        lambda: re.search(rf"{result.id}\]? succeeded", stack.worker.output()), 60, "the task to succeed", stack.worker
    )


def test_beat_keeps_its_schedule_fresh(stack):
    wait_until(lambda: healthcheck(stack.env, "beat").returncode == 0, 60, "beat's schedule file", stack.beat)
    stale = healthcheck({**stack.env, "JOBOPS_BEAT_MAX_AGE_SECONDS": "0"}, "beat")
    assert stale.returncode == 1 and "not written for" in stale.stdout
    assert "beat: Starting" in stack.beat.output()


def test_worker_and_beat_do_not_migrate(stack):
    for process in (stack.worker, stack.beat):
        assert "migrat" not in process.output().lower()


def test_readyz_and_the_healthcheck_name_an_unreachable_broker(stack, tmp_path):
    # A second web process whose broker URL points at a closed port: not ready, and the healthcheck says why.
    port = free_port()
    env = {
        **stack.env,
        "PORT": str(port),
        "GUNICORN_WORKERS": "1",
        "JOBOPS_MIGRATE_ON_START": "0",
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//",
    }
    web = start("web-no-broker", "web", env, tmp_path)
    try:
        status, _, body = wait_until(lambda: (r := get(port, "/readyz/"))[0] and r, 60, "the second web to answer", web)
        assert status == 503
        assert json.loads(body)["down"] == ["broker"]
        result = healthcheck(env, "web")
        assert result.returncode == 1
        assert "503" in result.stdout and "broker" in result.stdout
        assert "migration lock" not in web.output()
    finally:
        assert web.stop() == 0


def test_web_healthcheck_fails_when_nothing_listens(stack):
    result = healthcheck({**stack.env, "PORT": str(free_port())}, "web")
    assert result.returncode == 1 and result.stdout.startswith("unhealthy")


def test_concurrent_migrations_are_serialised_by_the_advisory_lock(make_database, tmp_path):
    url = make_database()
    env = hermetic_env({"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": url, "LOG_FORMAT": "plain"})
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as holder:
        # Hold the lock ourselves so both runs are certain to meet it, then let them go at once.
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        runs = [
            subprocess.Popen(
                [str(PYTHON), "docker/migrate.py"],
                cwd=ROOT,
                env=env,
                stdout=(tmp_path / f"migrate-{i}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            for i in range(2)
        ]
        try:

            def waiters() -> int:
                row = holder.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
                    [name],
                ).fetchone()
                return row[0] == 2

            wait_until(waiters, 60, "both migrate runs to wait for the lock")
            assert all(run.poll() is None for run in runs)
            tables = holder.execute("SELECT to_regclass('django_migrations')").fetchone()[0]
            assert tables is None, "a migrate run went ahead without the lock"
            holder.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
            codes = [run.wait(timeout=180) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
    logs = [(tmp_path / f"migrate-{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    assert all("waiting for it to finish" in log for log in logs)
    # One run applied everything; the other found nothing left to do.
    assert sorted("No migrations to apply" in log for log in logs) == [False, True], logs
