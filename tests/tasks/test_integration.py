"""Failure drills with the real stack: a ``celery -A jobops worker`` subprocess on RabbitMQ (quorum queue, unique
per run, Redis result backend), the PostgreSQL test database shared with the worker, and an SMTP sink (aiosmtpd) on
loopback in this process.

The unit-test settings run Celery eagerly on the memory broker, so the test process publishes with its own Celery
app bound explicitly to RabbitMQ (``notifications.services._publish`` is pointed at it); an email can only reach the
sink through RabbitMQ and the worker process (the test process' own mail backend stays empty).

Drills: an assignment made through the service arrives by email; the worker's pool process, or the whole worker,
is SIGKILLed mid-delivery and the email still arrives exactly once; the broker is unreachable at commit (the change
still commits, the row stays pending) and the requeue sweep run by the worker delivers it later; the SMTP server is
down, then up, and the email is delivered once after retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from accounts.models import User
from jobs import services as job_services
from notifications import services as notification_services
from notifications.models import Notification
from tests.conftest import require_service
from tests.factories import UserFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
# The suite's rule for services (README "Tests"): used only when the environment names them, as CI's .ci/run does.
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
BROKER_NAMED = BROKER_URL.startswith("amqp")
REDIS_NAMED = os.environ.get("REDIS_URL", "").startswith("redis")
RESULT_BACKEND = "redis://127.0.0.1:6379/13"
QUEUE = f"jobops-it-{uuid.uuid4().hex[:10]}"


# --- helpers -------------------------------------------------------------------------------------------------------


def tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def redis_up() -> bool:
    import redis

    with contextlib.suppress(Exception):
        return bool(redis.Redis.from_url(RESULT_BACKEND, socket_timeout=1).ping())
    return False


class Sink:
    """An SMTP server on loopback that records what it accepted. ``stall_next_mail()`` holds the next client at
    MAIL FROM (before any data is accepted) until ``release()``, so a worker can be killed mid-delivery."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[Message] = []
        self.mail_commands = 0
        self._lock = threading.Lock()
        self._stall = threading.Event()
        self.stalled = threading.Event()
        self._release = threading.Event()
        self.controller: Any = None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list) -> str:
        self.mail_commands += 1
        if self._stall.is_set():
            self._stall.clear()
            self.stalled.set()
            for _ in range(400):  # at most 20 s
                if self._release.is_set():
                    break
                await asyncio.sleep(0.05)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def stall_next_mail(self) -> None:
        self.stalled.clear()
        self._release.clear()
        self._stall.set()

    def release(self) -> None:
        self._release.set()

    def for_notification(self, notification_id: int) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["X-JobOps-Notification"] == str(notification_id)]

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        if self.controller is None:
            self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
            self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self._release.set()
            self.controller.stop()
            self.controller = None


class Worker:
    """``celery -A jobops worker`` (prefork, one child) in its own session, so it can be SIGKILLed as a whole."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        self.starts += 1
        offset = len(self.log())
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "jobops",
                "worker",
                "-P",
                "prefork",
                "-c",
                "1",
                "-Q",
                QUEUE,
                "-n",
                f"{QUEUE}-{self.starts}@localhost",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: " ready." in self.log()[offset:] or self.proc.poll() is not None, 60, "the worker")
        assert self.proc.poll() is None, f"the worker exited:\n{self.log()[-3000:]}"

    def children(self) -> list[int]:
        assert self.proc is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    found.append(int(stat.parent.name))
        return found

    def kill_child(self) -> int:
        [child] = self.children()
        os.kill(child, signal.SIGKILL)
        return child

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def publisher_app(broker_url: str) -> Celery:
    """A producer bound explicitly to ``broker_url`` with the production publish settings (quorum queue,
    publisher confirms, bounded publish retry)."""
    app = Celery("jobops-it-publisher", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        # Celery prefers a CELERY_BROKER_URL environment variable (CI sets one) over broker_url; the write URL
        # is what publishing uses, so pin it too or a "broken" publisher would still reach the real broker.
        broker_write_url=broker_url,
        task_default_queue=QUEUE,
        task_default_queue_type="quorum",
        broker_transport_options={"confirm_publish": True},
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry=True,
        task_publish_retry_policy=settings.CELERY_TASK_PUBLISH_RETRY_POLICY,
        broker_connection_timeout=2,
    )
    return app


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory) -> Iterator[dict[str, Any]]:
    require_service("PostgreSQL", connection.vendor == "postgresql", "set DATABASE_URL to a PostgreSQL database")
    require_service("RabbitMQ", BROKER_NAMED and tcp_open("127.0.0.1", 5672), "set CELERY_BROKER_URL (amqp://)")
    require_service("Redis", REDIS_NAMED and redis_up(), "set REDIS_URL (the results go to its server's db 13)")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:  # pragma: no cover
        require_service("aiosmtpd", False, "pip install -r requirements-dev.txt")

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    database_url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    sink = Sink(free_port())
    var = tmp_path_factory.mktemp("worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_", "EMAIL_", "DATABASE_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
            "DJANGO_SECRET_KEY": "integration-only-" + uuid.uuid4().hex * 2,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_RESULT_BACKEND": RESULT_BACKEND,
            "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.port),
            "EMAIL_TIMEOUT": "30",
            "NOTIFICATION_GRACE_SECONDS": "1",
            "JOBOPS_VAR_DIR": str(var),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "plain",
            "TIME_ZONE": settings.TIME_ZONE,
        }
    )
    worker = Worker(env, var / "worker.log")
    good = publisher_app(BROKER_URL)
    sink.start()
    worker.start()
    try:
        yield {"sink": sink, "worker": worker, "publisher": good}
    finally:
        worker.stop()
        sink.stop()
        with contextlib.suppress(Exception), good.connection_for_write() as conn:
            conn.default_channel.queue_delete(QUEUE)
        good.close()


@pytest.fixture
def sink(stack) -> Sink:
    stack["sink"].start()
    return stack["sink"]


@pytest.fixture
def publish_via(monkeypatch) -> Callable[[Celery], list[str]]:
    """Point the outbox's on-commit publish at a given Celery app (the production code path otherwise); returns
    the list the published task ids are appended to."""

    def use(app: Celery) -> list[str]:
        task_ids: list[str] = []

        def publish(pk: int) -> None:
            task_ids.append(app.send_task("notifications.deliver", args=[pk]).id)

        monkeypatch.setattr(notification_services, "_publish", publish)
        return task_ids

    return use


def deliveries(worker: Worker, task_id: str) -> int:
    """How many times the worker received this message (a redelivery is a second receipt)."""
    return worker.log().count(f"notifications.deliver[{task_id}] received")


def assign_job() -> Notification:
    creator = UserFactory(role=User.Role.SALES_AGENT)
    tech = UserFactory(role=User.Role.TECHNICIAN)
    job_services.job_create(
        actor=creator,
        data={
            "title": "Integration",
            "client_name": "ACME",
            "scheduled_date": datetime.date(2031, 1, 1),
            "assigned_to": tech,
        },
    )
    return Notification.objects.get(recipient=tech.email)


def settle(notification: Notification, sink: Sink, *, timeout: float = 20) -> list[Message]:
    """Wait until the row is sent and its email arrived, then a little more to catch any duplicate."""
    wait_for(lambda: sink.for_notification(notification.pk), timeout, "the email")
    wait_for(
        lambda: Notification.objects.filter(pk=notification.pk, status=Notification.Status.SENT).exists(),
        timeout,
        "the row to be marked sent",
    )
    time.sleep(0.7)
    return sink.for_notification(notification.pk)


# --- drills --------------------------------------------------------------------------------------------------------


def test_assignment_arrives_by_email_through_rabbitmq(stack, sink, publish_via, mailoutbox):
    publish_via(stack["publisher"])
    row = assign_job()
    [message] = settle(row, sink)
    row.refresh_from_db()
    assert row.status == Notification.Status.SENT and row.attempts == 1
    assert message["To"] == row.recipient and "assigned to you" in message["Subject"]
    assert message.is_multipart()  # text + HTML alternative
    assert mailoutbox == []  # nothing was delivered in-process: it went through the broker and the worker
    assert "notifications.deliver[" in stack["worker"].log()


def test_worker_child_sigkill_mid_delivery_delivers_once(stack, sink, publish_via):
    task_ids = publish_via(stack["publisher"])
    worker = stack["worker"]
    sink.stall_next_mail()
    row = assign_job()
    assert sink.stalled.wait(20), "the worker never reached the SMTP server"
    killed = worker.kill_child()
    sink.release()
    [message] = settle(row, sink, timeout=30)
    row.refresh_from_db()
    # The killed attempt rolled back with its transaction: only the successful one counts.
    assert row.attempts == 1
    assert f"pid:{killed} exited with 'signal 9 (SIGKILL)'" in worker.log()
    [task_id] = task_ids
    assert deliveries(worker, task_id) == 2  # requeued (reject_on_worker_lost) and redelivered
    assert message["To"] == row.recipient


def test_whole_worker_sigkill_mid_delivery_delivers_once(stack, sink, publish_via):
    task_ids = publish_via(stack["publisher"])
    worker = stack["worker"]
    sink.stall_next_mail()
    row = assign_job()
    [task_id] = task_ids
    assert sink.stalled.wait(20), "the worker never reached the SMTP server"
    worker.kill()
    sink.release()
    assert Notification.objects.get(pk=row.pk).status == Notification.Status.PENDING
    worker.start()  # the unacked message is redelivered to the new worker
    assert len(settle(row, sink, timeout=30)) == 1
    assert Notification.objects.get(pk=row.pk).attempts == 1
    assert deliveries(worker, task_id) == 2  # once to the killed worker, once to the new one


def test_broker_unreachable_at_commit_then_requeue_sweep_delivers(stack, sink, publish_via, caplog):
    closed = free_port()
    broken = publisher_app(f"amqp://guest:guest@127.0.0.1:{closed}//")
    publish_via(broken)
    started = time.monotonic()
    row = assign_job()  # the on-commit publish fails: logged, not raised
    elapsed = time.monotonic() - started
    broken.close()
    assert "could not enqueue notifications" in caplog.text
    assert elapsed < 10
    time.sleep(1.5)
    row.refresh_from_db()
    assert row.status == Notification.Status.PENDING and row.attempts == 0
    assert sink.for_notification(row.pk) == []

    # The broker is back: beat's requeue task, run by the worker, re-enqueues the stale row.
    stack["publisher"].send_task("notifications.requeue_unsent")
    assert len(settle(row, sink, timeout=30)) == 1


def test_smtp_down_then_up_delivers_once(stack, publish_via):
    sink = stack["sink"]
    publish_via(stack["publisher"])
    sink.stop()
    try:
        row = assign_job()
        wait_for(
            lambda: Notification.objects.filter(pk=row.pk, attempts__gte=1).exclude(last_error="").first(),
            20,
            "a failed attempt",
        )
        failed = Notification.objects.get(pk=row.pk)
        assert failed.status == Notification.Status.PENDING
        assert "Connection" in failed.last_error or "Errno" in failed.last_error
    finally:
        sink.start()
    assert len(settle(row, sink, timeout=30)) == 1
    row.refresh_from_db()
    assert row.attempts >= 2 and row.last_error == ""
