"""jobops.live.wake_listeners: the after-commit wake of the live stream never fails the write that triggers it."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.test import override_settings

from accounts.models import User
from jobops.live import wake_listeners
from tests.deploy.support import free_port
from tests.factories import UserFactory


def dead_redis_layer() -> dict:
    url = f"redis://127.0.0.1:{free_port()}/0"
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}}


def test_a_redis_outage_is_logged_not_raised(caplog):
    with override_settings(CHANNEL_LAYERS=dead_redis_layer()), caplog.at_level(logging.WARNING, "jobops.live"):
        wake_listeners()
    assert any("could not wake the live stream" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_a_write_commits_while_redis_is_down(caplog):
    from jobs.models import Job
    from jobs.services import job_create

    admin = UserFactory(role=User.Role.ADMIN, is_staff=True)
    with override_settings(CHANNEL_LAYERS=dead_redis_layer()), caplog.at_level(logging.WARNING, "jobops.live"):
        job = job_create(
            actor=admin, data={"title": "Written", "client_name": "C", "scheduled_date": datetime.date.today()}
        )
    assert Job.objects.filter(pk=job.pk, title="Written").exists()
    assert any("could not wake the live stream" in r.getMessage() for r in caplog.records)


def test_the_in_memory_layer_delivers_the_wake_to_the_group():
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from jobops.live import WAKE_GROUP

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        layer = get_channel_layer()

        async def scenario():
            channel = await layer.new_channel()
            await layer.group_add(WAKE_GROUP, channel)
            return channel

        channel = async_to_sync(scenario)()
        wake_listeners()
        assert async_to_sync(layer.receive)(channel) == {"type": "changes.wake"}
