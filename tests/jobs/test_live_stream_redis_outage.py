"""Issue 19: an ASGI process's live-stream hub (jobs/stream.py) survives a Redis outage. While its Redis is cut (a
TCP proxy closes its connections and refuses new ones) the clients still get every change, from the hub's database
poll; when Redis is back the hub joins the wake group again and the process keeps serving."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings

from accounts.models import User
from jobops.live import WAKE_GROUP
from tests.factories import UserFactory
from tests.faultproxy import FaultProxy

from .live_support import Client, require_live_services, start_server
from .test_live_stream import collect, new_job, token_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _clear_cache():
    """As in test_live_stream.py: clearing the Redis cache would drop the wake group's members."""
    yield


def _joined_since(client: redis.Redis, since: float) -> bool:
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    members = client.zrange(f"{prefix}:group:{WAKE_GROUP}", 0, -1, withscores=True)
    return any(score >= since for _member, score in members)


def test_the_hub_delivers_through_a_redis_cut_and_rejoins_the_wake_group(tmp_path, django_db_blocker):
    require_live_services()
    url = urlsplit(settings.REDIS_URL)
    proxy = FaultProxy(url.hostname or "127.0.0.1", url.port or 6379)
    server = start_server(
        "ws-redis-cut",
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{proxy.port}{url.path or '/0'}",
        LIVE_POLL_SECONDS="1",
    )
    real_redis = redis.Redis.from_url(settings.REDIS_URL)
    try:
        admin = UserFactory(username="cut-admin", role=User.Role.ADMIN, is_staff=True)
        client = Client(server.url).auth(token_for(admin)).subscribe()
        client.until_ready()
        before = new_job(admin, title="before the cut")
        collect(client, {before}, timeout=10)

        proxy.cut()
        time.sleep(2)  # the hub's receive fails; it must keep going
        during = new_job(admin, title="during the cut")  # its wake reaches the real Redis, not this hub
        started = time.monotonic()
        (change,) = collect(client, {during}, timeout=10)
        assert change["data"]["title"] == "during the cut"
        assert time.monotonic() - started < 5  # the 1 s database poll, not a wake
        client.send(type="ping")
        assert client.recv() == {"type": "pong"}

        restored_at = time.time()
        proxy.restore()
        deadline = time.monotonic() + 20
        while not _joined_since(real_redis, restored_at):
            assert time.monotonic() < deadline, "the hub did not join the wake group again:\n" + server.output()[-3000:]
            time.sleep(0.2)
        after = new_job(admin, title="after the cut")
        (change,) = collect(client, {after}, timeout=10)
        assert change["data"]["title"] == "after the cut"
        output = server.output()
        assert "channel layer receive failed" in output, output[-3000:]
        assert server.popen.poll() is None
        client.close()
    finally:
        server.stop()
        proxy.close()
