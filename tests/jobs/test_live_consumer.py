"""The live stream's consumer and hub in this process (Channels' WebsocketCommunicator, the in-memory channel
layer), on SQLite or PostgreSQL: the protocol, the shared reads and the wake from a commit. The same behaviour
against real ASGI processes and Redis: test_live_stream.py."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from jobops.asgi import application
from jobs import stream
from tests.factories import UserFactory

from .test_live_stream import wait_until_readable

pytestmark = pytest.mark.django_db(transaction=True)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def in_memory_layer():
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, LIVE_USER_CHECK_SECONDS=0.2, LIVE_POLL_SECONDS=0.2):
        yield


def run(coroutine_function):
    return async_to_sync(coroutine_function)()


def token_for(user: User, seconds: int | None = None) -> str:
    token = AccessToken.for_user(user)
    if seconds is not None:
        token.set_exp(lifetime=datetime.timedelta(seconds=seconds))
    return str(token)


async def connected(user: User | None = None, **auth) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/changes/")
    accepted, _ = await communicator.connect()
    assert accepted
    if user is not None:
        await communicator.send_json_to({"type": "auth", "token": token_for(user, **auth)})
    return communicator


async def until_ready(communicator: WebsocketCommunicator) -> tuple[list[dict], str]:
    changes = []
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] == "ready":
            return changes, message["cursor"]
        changes.append(message["change"])


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 5) -> int:
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return output["code"]


def create_job(actor: User, title: str, **data) -> int:
    from jobs.services import job_create

    fields = {"title": title, "client_name": "ACME", "scheduled_date": datetime.date.today(), **data}
    return job_create(actor=actor, data=fields).pk


def test_backlog_ready_live_and_one_shared_read_for_many_admins():
    admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    other_admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    technician = UserFactory(role=User.Role.TECHNICIAN)
    from jobs.feed import current_cursor

    start = current_cursor()
    backlog = create_job(admin, "Backlog")
    wait_until_readable()

    async def scenario():
        first = await connected(admin)
        await first.send_json_to({"type": "subscribe", "after": start})
        changes, _ = await until_ready(first)
        assert [c["object_id"] for c in changes] == [backlog]
        others = [await connected(user) for user in (admin, other_admin, other_admin, technician)]
        for communicator in others:
            await communicator.send_json_to({"type": "subscribe"})
            assert await until_ready(communicator)
        hub = stream.get_hub()
        reads = hub.reads
        job = await sync_to_async(create_job)(admin, "Live")  # its commit wakes the hub (in-memory layer)
        for communicator in (first, *others[:3]):
            message = await communicator.receive_json_from(timeout=5)
            assert message["type"] == "change" and message["change"]["object_id"] == job
        # The technician's audience saw nothing of it; the admins at one place of the feed shared reads.
        assert await others[3].receive_nothing(timeout=0.3)
        assert hub.reads - reads <= 4, hub.reads - reads  # admins (at most two places) + the technician's
        await others[0].send_json_to({"type": "ping"})
        assert await others[0].receive_json_from() == {"type": "pong"}
        for communicator in (first, *others):
            await communicator.disconnect()

    run(scenario)


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"type": "subscribe"}], 4401),
        ([{"type": "auth", "token": "x.y.z"}], 4401),
        ([{"type": "auth", "token": ""}], 4401),
        (["{not json"], 4400),
        ([{"type": "teleport"}], 4400),
    ],
)
def test_close_codes_before_authentication(messages, code):
    async def scenario():
        communicator = await connected()
        for message in messages:
            if isinstance(message, str):
                await communicator.send_to(text_data=message)
            else:
                await communicator.send_json_to(message)
        assert await closed_with(communicator) == code

    run(scenario)


def test_close_codes_after_authentication():
    admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    other = UserFactory(role=User.Role.ADMIN, is_staff=True)

    async def scenario():
        bad_cursor = await connected(admin)
        await bad_cursor.send_json_to({"type": "subscribe", "after": "bm90IGEgY3Vyc29y"})
        assert await closed_with(bad_cursor) == 4400
        twice = await connected(admin)
        await twice.send_json_to({"type": "subscribe"})
        await until_ready(twice)
        await twice.send_json_to({"type": "subscribe"})
        assert await closed_with(twice) == 4400
        switch = await connected(admin)
        await switch.send_json_to({"type": "auth", "token": token_for(other)})
        assert await closed_with(switch) == 4401
        binary = await connected(admin)
        await binary.send_to(bytes_data=b"\x00")
        assert await closed_with(binary) == 4400

    run(scenario)


def test_expiry_deactivation_and_the_auth_timeout():
    admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    technician = UserFactory(role=User.Role.TECHNICIAN)

    async def scenario():
        with override_settings(LIVE_AUTH_TIMEOUT=0.5):
            silent = await connected()
            assert await closed_with(silent) == 4401
        expiring = await connected(admin, seconds=1)
        assert await closed_with(expiring) == 4401
        leaving = await connected(technician)
        await leaving.send_json_to({"type": "subscribe"})
        await until_ready(leaving)
        await sync_to_async(User.objects.filter(pk=technician.pk).update)(is_active=False)
        assert await closed_with(leaving) == 4403
        with override_settings(LIVE_IDLE_TIMEOUT=0.5):
            idle = await connected(admin)
            assert await closed_with(idle) == 4408

    run(scenario)


def test_a_role_change_moves_the_connection_to_its_new_audience():
    admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    demoted = UserFactory(role=User.Role.ADMIN, is_staff=True)

    async def scenario():
        communicator = await connected(demoted)
        await communicator.send_json_to({"type": "subscribe"})
        await until_ready(communicator)
        hub = stream.get_hub()
        await sync_to_async(User.objects.filter(pk=demoted.pk).update)(role=User.Role.TECHNICIAN)
        for _ in range(50):
            (subscriber,) = [s for s in hub.subscribers if s.user.pk == demoted.pk]
            if subscriber.audience != stream.audience_of(admin):
                break
            await asyncio.sleep(0.1)
        assert subscriber.audience == ("user", demoted.pk)
        await sync_to_async(create_job)(admin, "Not for technicians")
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    run(scenario)


def test_signing_out_everywhere_closes_the_connections_opened_with_older_tokens():
    from django.utils import timezone

    technician = UserFactory(role=User.Role.TECHNICIAN)

    async def scenario():
        communicator = await connected(technician)
        await communicator.send_json_to({"type": "subscribe"})
        await until_ready(communicator)
        later = timezone.now() + datetime.timedelta(seconds=5)  # after the token's iat (whole seconds)
        await sync_to_async(User.objects.filter(pk=technician.pk).update)(tokens_valid_after=later)
        assert await closed_with(communicator) == 4401

    run(scenario)
