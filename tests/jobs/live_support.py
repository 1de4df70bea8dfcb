"""Real ASGI servers for the live-stream tests: the ``ws`` role of docker/entrypoint.sh (gunicorn + uvicorn
workers), on the test database and the test process's Redis channel layer, so a write made by the test process
(a plain Django process, like a gunicorn worker of the REST API) wakes them through Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import require_service
from tests.deploy.support import ROOT, free_port, hermetic_env, redis_available

ENTRYPOINT = str(ROOT / "docker" / "entrypoint.sh")


@dataclass
class WsServer:
    name: str
    port: int
    popen: subprocess.Popen
    log: Path
    env: dict[str, str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/changes/"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

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


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a ws process on the test database, with the test process's Redis and key prefix."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    if db.get("PASSWORD"):
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return hermetic_env(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.test",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL,
            "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", "jobops-test"),
            "CHANNEL_LAYER_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
            "GUNICORN_ACCESS_LOG": "0",
            "LOG_FORMAT": "plain",
            "LIVE_USER_CHECK_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )


def start_server(name: str, tmp: Path, **extra: str) -> WsServer:
    port = free_port()
    env = server_env(PORT=str(port), WS_WORKERS="1", JOBOPS_ROLE_FILE=str(tmp / f"{name}.role"), **extra)
    log = tmp / f"{name}.log"
    with log.open("w") as handle:
        popen = subprocess.Popen(
            [ENTRYPOINT, "ws", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "2"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = WsServer(name=name, port=port, popen=popen, log=log, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            pytest.fail(f"{name} exited with {popen.returncode}:\n{server.output()[-4000:]}")
        try:
            with connect(server.url, open_timeout=2):
                return server
        except (OSError, TimeoutError, ConnectionClosed):
            time.sleep(0.3)
        except Exception:  # an HTTP error while it boots
            time.sleep(0.3)
    server.stop()
    pytest.fail(f"{name} did not accept a WebSocket within 60 s:\n{server.output()[-4000:]}")


def require_live_services() -> None:
    require_service("PostgreSQL", connection.vendor == "postgresql", "set DATABASE_URL to a PostgreSQL database")
    require_service("Redis", bool(settings.REDIS_URL) and redis_available(settings.REDIS_URL), "set REDIS_URL")


@pytest.fixture(scope="module")
def ws_servers(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[list[WsServer]]:
    """Two ASGI processes on one Redis (module-scoped: started once per test module)."""
    require_live_services()
    tmp = tmp_path_factory.mktemp("ws")
    servers: list[WsServer] = []
    try:
        # A slow safety poll: a change that arrives within seconds came with its wake through Redis.
        servers.append(start_server("ws1", tmp, LIVE_POLL_SECONDS="30"))
        servers.append(start_server("ws2", tmp, LIVE_POLL_SECONDS="30"))
        yield servers
    finally:
        for server in servers:
            server.stop()


class Client:
    """A scripted WebSocket client of /ws/changes/ (synchronous, for tests)."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, open_timeout=10, legacy=True)

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout=timeout))

    def auth(self, token: str) -> Client:
        self.send(type="auth", token=token)
        return self

    def subscribe(self, after: str | None = None) -> Client:
        if after is None:
            self.send(type="subscribe")
        else:
            self.send(type="subscribe", after=after)
        return self

    def until_ready(self, timeout: float = 10) -> tuple[list[dict[str, Any]], str]:
        """The backlog's changes and the ``ready`` cursor."""
        changes = []
        while True:
            message = self.recv(timeout)
            if message["type"] == "ready":
                return changes, message["cursor"]
            assert message["type"] == "change", message
            changes.append(message["change"])

    def close_code(self, timeout: float = 10) -> int | None:
        """Read (and drop) messages until the server closes; its close code. Fails if it stays open."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            pass
        raise AssertionError(f"the server did not close within {timeout} s")

    def close(self) -> None:
        self.ws.close()
