"""Webhook failure drills with the real stack (the pattern of ``test_integration``): a ``celery -A jobops worker``
subprocess on RabbitMQ, the PostgreSQL test database shared with it, and a receiver on loopback in this process that
verifies every request with the official Standard Webhooks library.

The test process relays the change feed (``jobs.webhooks.relay_webhooks``) and publishes through its own Celery app
bound to RabbitMQ; the worker delivers, and re-publishes short retries with a countdown. Drills: receiver down then
up (every event delivered, the same ``webhook-id`` on every retry, none twice as new); the worker's pool process
SIGKILLed mid-delivery (the row is delivered once, the redelivery carries the same id); the broker unreachable at
commit (the rows stay pending and the requeue sweep run by the worker delivers them).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import User
from jobs import services as job_services
from jobs.webhooks import relay_webhooks
from notifications import services as notification_services
from notifications import webhooks
from notifications.models import Notification, WebhookEndpoint
from tests.conftest import require_service
from tests.factories import UserFactory
from tests.notifications.receivers import Receiver, serve
from tests.tasks.test_integration import (
    BROKER_URL,
    QUEUE,
    RESULT_BACKEND,
    Worker,
    free_port,
    publisher_app,
    redis_up,
    tcp_open,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
Status = Notification.Status


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory) -> Iterator[dict[str, Any]]:
    require_service("PostgreSQL", connection.vendor == "postgresql", "set DATABASE_URL to a PostgreSQL database")
    require_service("RabbitMQ", tcp_open("127.0.0.1", 5672), "RabbitMQ on 127.0.0.1:5672")
    require_service("Redis", redis_up(), "Redis on 127.0.0.1:6379")
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    database_url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    var = tmp_path_factory.mktemp("webhook-worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_", "EMAIL_", "DATABASE_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
            "DJANGO_SECRET_KEY": "integration-only-" + uuid.uuid4().hex * 2,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_RESULT_BACKEND": RESULT_BACKEND,
            "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
            "NOTIFICATION_GRACE_SECONDS": "1",
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1",
            "JOBOPS_VAR_DIR": str(var),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "plain",
            "TIME_ZONE": settings.TIME_ZONE,
        }
    )
    worker = Worker(env, var / "worker.log")
    good = publisher_app(BROKER_URL)
    worker.start()
    try:
        yield {"worker": worker, "publisher": good}
    finally:
        worker.stop()
        with contextlib.suppress(Exception), good.connection_for_write() as conn:
            conn.default_channel.queue_delete(QUEUE)
        good.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


@pytest.fixture
def publish_via(monkeypatch, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]

    def use(app):
        def publish(pk: int) -> None:
            app.send_task("notifications.deliver", args=[pk])

        monkeypatch.setattr(notification_services, "_publish", publish)

    return use


def endpoint_for(receiver: Receiver) -> WebhookEndpoint:
    admin = UserFactory(role=User.Role.ADMIN)
    endpoint = webhooks.webhook_create(actor=admin, data={"url": receiver.url, "events": ["job.upserted"]})
    receiver.secrets.append(endpoint.secret)
    relay_webhooks()  # start the relay's cursor before the changes of the drill
    return endpoint


def make_jobs(count: int) -> None:
    creator = UserFactory(role=User.Role.SALES_AGENT)
    for n in range(count):
        job_services.job_create(
            actor=creator,
            data={"title": f"Drill {n}", "client_name": "ACME", "scheduled_date": datetime.date(2031, 1, 1)},
        )


def relay(expected: int) -> None:
    """Relay until ``expected`` rows were queued (another session's open transaction may hold the watermark)."""
    total = relay_webhooks()
    deadline = time.monotonic() + 30
    while total < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        total += relay_webhooks()
    assert total == expected


def settle(endpoint: WebhookEndpoint, count: int, *, timeout: float = 40) -> list[Notification]:
    wait_for(
        lambda: Notification.objects.filter(endpoint=endpoint, status=Status.SENT).count() == count,
        timeout,
        f"{count} webhook deliveries",
    )
    time.sleep(1.5)  # catch a late duplicate
    return list(Notification.objects.filter(endpoint=endpoint).order_by("id"))


def test_receiver_down_then_up_every_event_once_with_stable_ids(stack, receiver, publish_via):
    publish_via(stack["publisher"])
    endpoint = endpoint_for(receiver)
    receiver.answers = [503] * 7  # down for the first attempts of the burst
    make_jobs(5)
    relay(5)
    rows = settle(endpoint, 5)
    assert all(row.status == Status.SENT for row in rows)
    ok_ids = [r.headers["webhook-id"] for r in receiver.received[7:]]
    assert sorted(ok_ids) == sorted(f"msg_{row.pk}" for row in rows)  # each delivered once as new, none lost
    assert {r.headers["webhook-id"] for r in receiver.received} == set(ok_ids)  # retries reuse the ids
    assert all(r.verified for r in receiver.received), [r.error for r in receiver.received if not r.verified]
    assert sum(row.attempts for row in rows) == 5 + 7


def test_worker_child_sigkill_mid_delivery_delivers_once(stack, receiver, publish_via):
    publish_via(stack["publisher"])
    worker: Worker = stack["worker"]
    stalled, release = threading.Event(), threading.Event()

    def stall_first(_item: Any) -> None:
        if not stalled.is_set():
            stalled.set()
            release.wait(20)

    receiver.on_request = stall_first
    endpoint = endpoint_for(receiver)
    make_jobs(1)
    relay(1)
    assert stalled.wait(20), "the worker never reached the receiver"
    killed = worker.kill_child()
    release.set()
    [row] = settle(endpoint, 1)
    assert row.attempts == 1  # the killed attempt rolled back with its transaction
    assert f"pid:{killed} exited with 'signal 9 (SIGKILL)'" in worker.log()
    # The receiver saw the same message twice (the first answer never reached JobOps): one id, to dedupe on.
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"msg_{row.pk}"] * 2
    assert all(r.verified for r in receiver.received)


def test_broker_unreachable_at_commit_then_the_sweep_delivers(stack, receiver, publish_via, caplog):
    endpoint = endpoint_for(receiver)
    broken = publisher_app(f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    publish_via(broken)
    make_jobs(2)
    relay(2)  # the relay's commit stands; the on-commit publish fails, logged
    broken.close()
    assert "could not enqueue notifications" in caplog.text
    assert Notification.objects.filter(endpoint=endpoint, status=Status.PENDING, attempts=0).count() == 2
    time.sleep(1.5)  # past the grace period
    stack["publisher"].send_task("notifications.requeue_unsent")
    rows = settle(endpoint, 2)
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(f"msg_{row.pk}" for row in rows)
