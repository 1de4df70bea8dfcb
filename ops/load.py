"""The drill's simulated users: technicians, sales agents, admins, WebSocket listeners and feed readers.

Every request goes through ``Client.call``, which behaves like a careful mobile client behind a load balancer:
a write carries an ``Idempotency-Key`` and an ``X-Request-ID`` that stay the same on every retry of that write; a
connection error moves to the other web node; a 502/503/504 (or a 500, which must never happen) is retried after
``Retry-After``; a 409 ``idempotency_key_in_use`` is retried. Each logical request ends in one ``Outcome`` (what
the client finally saw), and each attempt is recorded for the timeline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

RETRYABLE = {500, 502, 503, 504}
#: A write is retried for this long (a phone keeps its queue much longer; the drill's faults last at most 20 s).
RETRY_DEADLINE = 90.0


@dataclass
class Attempt:
    at: float  # seconds since the drill's t0, when the answer (or the error) came
    kind: str
    status: int  # 0: connection error
    seconds: float


@dataclass
class Outcome:
    request_id: str
    method: str
    path: str
    kind: str
    write: bool
    status: int  # the final status; 0: gave up
    attempts: int
    started: float
    ended: float


@dataclass
class Recorder:
    t0: float
    attempts: list[Attempt] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    http_500: list[str] = field(default_factory=list)
    #: Error answers outside the contract: a 503 that is not JSON ``{"detail", "code"}`` with ``Retry-After``.
    malformed_errors: list[str] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0


@dataclass
class Stack:
    """Where the clients connect: the web nodes and the ASGI nodes (base URLs)."""

    web: list[str]
    ws: list[str]


class Client:
    def __init__(self, stack: Stack, rec: Recorder, username: str, password: str, rng: random.Random) -> None:
        self.stack = stack
        self.rec = rec
        self.username = username
        self.password = password
        self.rng = rng
        self.node = rng.randrange(len(stack.web))
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=3.0))
        self.token = ""
        self.user_id = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def login(self) -> None:
        response = await self.call(
            "POST", "/api/auth/token/", {"username": self.username, "password": self.password}, kind="login", auth=False
        )
        if response is None or response.status_code != 200:
            raise RuntimeError(f"login of {self.username} failed: {response and response.status_code}")
        self.token = response.json()["access"]
        me = await self.call("GET", "/api/auth/me/", kind="me")
        assert me is not None
        self.user_id = me.json()["id"]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        kind: str,
        auth: bool = True,
        keyed: bool | None = None,
        record: bool = True,
    ) -> httpx.Response | None:
        write = method != "GET"
        keyed = write and auth if keyed is None else keyed
        request_id = f"drill-{uuid.uuid4().hex[:20]}"
        headers = {"X-Request-ID": request_id, "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        if keyed:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        started = self.rec.now()
        attempts = 0
        response: httpx.Response | None = None
        while True:
            attempts += 1
            t = time.monotonic()
            base = self.stack.web[self.node % len(self.stack.web)]
            try:
                response = await self.http.request(method, base + path, json=body, headers=headers)
            except httpx.TransportError:
                self.rec.attempts.append(Attempt(self.rec.now(), kind, 0, time.monotonic() - t))
                self.node += 1  # the load balancer's move: the other node
                response = None
                wait = 0.3
            else:
                status = response.status_code
                self.rec.attempts.append(Attempt(self.rec.now(), kind, status, time.monotonic() - t))
                if status == 500:
                    self.rec.http_500.append(f"{method} {path}: {response.text[:200]}")
                elif status == 503 and not _contract_503(response):
                    self.rec.malformed_errors.append(f"{method} {path}: {response.headers} {response.text[:200]}")
                retry = status in RETRYABLE or status == 429
                if status == 409 and _code(response) == "idempotency_key_in_use":
                    retry = True
                if not retry:
                    break
                wait = min(5.0, _retry_after(response))
            if self.rec.now() - started > RETRY_DEADLINE:
                break
            await asyncio.sleep(wait * (0.5 + self.rng.random()))
        if record:
            self.rec.outcomes.append(
                Outcome(
                    request_id,
                    method,
                    path,
                    kind,
                    write,
                    response.status_code if response is not None and response.status_code not in RETRYABLE else 0,
                    attempts,
                    started,
                    self.rec.now(),
                )
            )
        return response

    async def get_json(self, path: str, *, kind: str) -> Any:
        response = await self.call("GET", path, kind=kind)
        if response is None or response.status_code != 200:
            return None
        return response.json()


def _contract_503(response: httpx.Response) -> bool:
    """A 503 as the contract has it: JSON ``{"detail", "code"}`` and a ``Retry-After`` in seconds."""
    try:
        body = response.json()
    except ValueError:
        return False
    retry_after = response.headers.get("retry-after", "")
    return isinstance(body, dict) and {"detail", "code"} <= body.keys() and retry_after.isdigit()


def _code(response: httpx.Response) -> str:
    with contextlib.suppress(Exception):
        return str(response.json().get("code", ""))
    return ""


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.2, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


# --- the people ----------------------------------------------------------------------------------------------------


async def technician(client: Client, stop: asyncio.Event, think: tuple[float, float]) -> None:
    """Works through the day: the first actionable task of a job is started, then completed; a job whose tasks are
    all completed is completed."""
    while not stop.is_set():
        day = await client.get_json("/api/dashboard/technician/?days=1", kind="day_view")
        actionable = [t for d in day or [] for t in d["tasks"] if t["actionable"]]
        if actionable:
            task = client.rng.choice(actionable)
            if task["status"] == "pending":
                await client.call("POST", f"/api/tasks/{task['id']}/start/", kind="task_start")
                await _sleep(stop, client.rng.uniform(*think) / 2)
            await client.call("POST", f"/api/tasks/{task['id']}/complete/", kind="task_complete")
        else:
            jobs = await client.get_json("/api/jobs/?status=in_progress&page_size=100", kind="job_list")
            for job in (jobs or {}).get("results", []):
                if job["tasks_total"] and job["tasks_completed"] == job["tasks_total"]:
                    await client.call("POST", f"/api/jobs/{job['id']}/complete/", kind="job_complete")
        await _sleep(stop, client.rng.uniform(*think))


async def sales_agent(
    client: Client, stop: asyncio.Event, think: tuple[float, float], technicians: list[int], equipment: list[int]
) -> None:
    """Creates jobs (three tasks, then the assignment), edits and reassigns its open ones."""
    own: list[int] = []
    n = 0
    while not stop.is_set():
        n += 1
        roll = client.rng.random()
        if roll < 0.55 or not own:
            await create_job(client, technicians, equipment, label=f"{client.username}-{n}", own=own)
        elif roll < 0.85:
            job = client.rng.choice(own)
            edit = {"description": f"edit {n} by {client.username}"}
            await client.call("PATCH", f"/api/jobs/{job}/", edit, kind="job_edit")
        else:
            job = client.rng.choice(own)
            response = await client.call(
                "PATCH", f"/api/jobs/{job}/", {"assigned_to": client.rng.choice(technicians)}, kind="job_reassign"
            )
            if response is not None and response.status_code == 409:
                own.remove(job)  # completed or cancelled meanwhile: frozen
        await _sleep(stop, client.rng.uniform(*think))


async def create_job(
    client: Client, technicians: list[int], equipment: list[int], *, label: str, own: list[int]
) -> None:
    today = datetime.datetime.now(datetime.UTC).date().isoformat()  # the drill's servers run with TIME_ZONE=UTC
    body = {
        "title": f"Job {label}",
        "client_name": f"Client {label}",
        "scheduled_date": today,
        "priority": client.rng.choice(["low", "medium", "high", "urgent"]),
    }
    response = await client.call("POST", "/api/jobs/", body, kind="job_create")
    if response is None or response.status_code != 201:
        return
    job = response.json()["id"]
    for i in range(3):
        task = {"title": f"Step {i + 1}", "required_equipment": [client.rng.choice(equipment)]}
        await client.call("POST", f"/api/jobs/{job}/tasks/", task, kind="task_create")
    await client.call("PATCH", f"/api/jobs/{job}/", {"assigned_to": client.rng.choice(technicians)}, kind="job_assign")
    own.append(job)


async def admin(client: Client, stop: asyncio.Event, equipment: list[int]) -> None:
    """Reads the reports: analytics, equipment usage, the audit trail."""
    while not stop.is_set():
        await client.call("GET", "/api/analytics/", kind="analytics")
        await client.call("GET", f"/api/equipment/{client.rng.choice(equipment)}/usage/", kind="equipment_usage")
        await client.call("GET", "/api/audit/?page_size=50", kind="audit_list")
        await _sleep(stop, client.rng.uniform(1.5, 3.0))


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


# --- the views kept from the change feed ---------------------------------------------------------------------------


@dataclass
class View:
    """A client's copy of its scope, kept from feed changes: ``{job id: (status, {task id: status})}``."""

    username: str
    user_id: int
    role: str
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    orphan_tasks: dict[int, tuple[int, str]] = field(default_factory=dict)
    changes: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    reconnects: int = 0
    disconnected_s: float = 0.0
    last_position: tuple[int, int] = (0, 0)
    seen: set[tuple[int, int]] = field(default_factory=set)

    def apply(self, change: dict[str, Any]) -> None:
        self.changes += 1
        position = _position(change["cursor"])
        if position in self.seen:
            self.duplicates += 1
        elif position < self.last_position:
            self.out_of_order += 1
        self.seen.add(position)
        self.last_position = max(self.last_position, position)
        kind, data = change["type"], change["data"]
        if change["object_type"] == "job":
            if kind == "job.removed":
                self.jobs.pop(change["object_id"], None)
            else:
                self.jobs[data["id"]] = {
                    "status": data["status"],
                    "tasks": {t["id"]: t["status"] for t in data.get("tasks", [])},
                }
        elif change["object_type"] == "task":
            job = self.jobs.get(change["job"])
            if kind == "task.removed":
                if job is not None:
                    job["tasks"].pop(change["object_id"], None)
            elif job is not None:
                job["tasks"][data["id"]] = data["status"]

    def state(self) -> dict[int, tuple[str, tuple[tuple[int, str], ...]]]:
        return {jid: (j["status"], tuple(sorted(j["tasks"].items()))) for jid, j in self.jobs.items()}


def _position(cursor: str) -> tuple[int, int]:
    """The (txid, row id) of a feed cursor (``base64url("txid.id.issued")``): used only to spot repeats and order."""
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    txid, row, _issued = text.split(".")
    return int(txid), int(row)


async def ws_listener(client: Client, view: View, cursor: str, stop: asyncio.Event) -> None:
    """Follows ``/ws/changes/`` from ``cursor``; on any disconnect, reconnects (the other ASGI node) and resumes from
    the last cursor it saw."""
    node = client.rng.randrange(len(client.stack.ws))
    while not stop.is_set():
        url = client.stack.ws[node % len(client.stack.ws)].replace("http", "ws", 1) + "/ws/changes/"
        lost_at = time.monotonic()
        try:
            async with websockets.connect(url, open_timeout=5, ping_interval=None, max_size=None) as ws:
                await ws.send(json.dumps({"type": "auth", "token": client.token}))
                await ws.send(json.dumps({"type": "subscribe", "after": cursor}))
                pinger = asyncio.create_task(_ping(ws))
                try:
                    while not stop.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
                        except TimeoutError:
                            continue
                        message = json.loads(raw)
                        if message["type"] == "change":
                            view.apply(message["change"])
                            cursor = message["change"]["cursor"]
                        elif message["type"] == "ready":
                            cursor = message["cursor"]
                finally:
                    pinger.cancel()
            return
        except (OSError, websockets.WebSocketException, TimeoutError):
            view.reconnects += 1
            node += 1
            await asyncio.sleep(0.5)
            view.disconnected_s += time.monotonic() - lost_at


async def _ping(ws: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            await asyncio.sleep(20)
            await ws.send(json.dumps({"type": "ping"}))


async def feed_reader(client: Client, view: View, cursor: str, stop: asyncio.Event, interval: float = 1.0) -> None:
    """Polls ``GET /api/changes/`` from ``cursor`` (every page until ``has_more`` is false)."""
    while True:
        done = stop.is_set()
        while True:
            page = await client.get_json(f"/api/changes/?after={cursor}&limit=500", kind="feed")
            if page is None:
                break
            for change in page["changes"]:
                view.apply(change)
            cursor = page["cursor"]
            if not page["has_more"]:
                break
        if done:
            return
        await _sleep(stop, interval)
