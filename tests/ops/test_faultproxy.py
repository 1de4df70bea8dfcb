"""The drill's TCP fault proxy (ops/faultproxy.py), run as the drill runs it: a process with a control port.

Bytes pass both ways; ``cut`` resets the open connections and refuses new ones at once; ``restore`` listens again on
the same port."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.drill import merged, percentile
from ops.faultproxy import Control
from tests.faultproxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[tuple[int, int]]:
    """``(control port, listening port)`` of the proxy in front of an echo server (the tests' FaultProxy)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = FaultProxy("127.0.0.1", server.server_address[1])
    try:
        yield running.control, running.port
    finally:
        running.close()
        server.shutdown()
        server.server_close()


def post(control: int, action: str) -> dict:
    return Control(control).cut("target") if action == "cut" else Control(control).restore("target")


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_bytes_pass_both_ways(proxy):
    _, listen = proxy
    with socket.create_connection(("127.0.0.1", listen), timeout=5) as sock:
        payload = bytes(range(256)) * 1000
        assert echo(sock, payload) == payload


def test_cut_resets_open_connections_and_refuses_new_ones_then_restore(proxy):
    control, listen = proxy
    sock = socket.create_connection(("127.0.0.1", listen), timeout=5)
    assert echo(sock, b"before") == b"before"
    status = post(control, "cut")
    assert status["up"] is False and status["open"] == 0
    with pytest.raises(ConnectionResetError):  # a reset (RST), as from a dead peer, not an orderly close
        sock.sendall(b"after")
        sock.recv(10)
    sock.close()
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listen), timeout=5)
    assert time.monotonic() - started < 1  # refused at once, not a timeout
    assert post(control, "restore")["up"] is True
    with socket.create_connection(("127.0.0.1", listen), timeout=5) as again:
        assert echo(again, b"again") == b"again"


def test_drill_arithmetic():
    assert merged([(5, 10), (0, 3), (8, 12), (20, 30)], 0, 25) == [(0, 3), (5, 12), (20, 25)]
    assert merged([(30, 40)], 0, 25) == []
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile([], 99) == 0.0


class FakeConnection:
    """Answers the two queries of ``check_invariants`` from lists."""

    def __init__(self, jobs: list[tuple[int, str]], tasks: list[tuple[int, str]]) -> None:
        self.jobs, self.tasks = jobs, tasks

    def execute(self, sql: str):
        rows = self.jobs if "FROM jobs_job" in sql and "jobtask" not in sql else self.tasks

        class Result(list):
            def fetchall(self):
                return list(self)

        return Result(rows)


@pytest.mark.parametrize(
    ("job_status", "statuses", "violations"),
    [
        ("in_progress", ["completed", "in_progress", "pending"], 0),
        ("completed", ["completed", "completed"], 0),
        ("pending", ["pending", "pending"], 0),
        ("in_progress", ["completed", "pending", "completed"], 1),  # not a prefix
        ("in_progress", ["pending", "in_progress"], 1),  # in progress before its predecessor
        ("in_progress", ["in_progress", "in_progress"], 1),
        ("completed", ["completed", "pending"], 1),
        ("pending", ["completed", "pending"], 1),
    ],
)
def test_the_drills_invariant_check_finds_each_broken_rule(job_status, statuses, violations):
    from ops.drill import check_invariants

    conn = FakeConnection([(1, job_status)], [(1, status) for status in statuses])
    assert len(check_invariants(conn)) == violations


def test_a_view_follows_upserts_and_removals():
    import base64

    from ops.load import View

    def cursor(n: int) -> str:
        return base64.urlsafe_b64encode(f"{n}.{n}.1700000000".encode()).decode().rstrip("=")

    view = View("tech001", 7, "technician")
    job = {"id": 1, "status": "pending", "tasks": [{"id": 10, "status": "pending"}]}
    view.apply(
        {"cursor": cursor(1), "type": "job.upserted", "object_type": "job", "object_id": 1, "job": 1, "data": job}
    )
    view.apply({"cursor": cursor(2), "type": "task.upserted", "object_type": "task", "object_id": 10, "job": 1,
                "data": {"id": 10, "status": "in_progress"}})  # fmt: skip
    assert view.state() == {1: ("pending", ((10, "in_progress"),))}
    view.apply({"cursor": cursor(2), "type": "task.upserted", "object_type": "task", "object_id": 10, "job": 1,
                "data": {"id": 10, "status": "in_progress"}})  # fmt: skip
    assert view.duplicates == 1
    view.apply(
        {"cursor": cursor(3), "type": "job.removed", "object_type": "job", "object_id": 1, "job": 1, "data": None}
    )
    assert view.state() == {}
