"""/ws/changes/ against real ASGI processes (the ws role: gunicorn + uvicorn workers) on PostgreSQL and Redis:
authentication and close codes, heartbeat, token expiry, deactivation, backlog then live with no gap at the
hand-over, and a change made by this (plain Django) process reaching two ASGI processes through Redis."""

from __future__ import annotations

import datetime
import time

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.services import user_update
from tests.factories import UserFactory

from .live_support import Client, start_server, ws_servers  # noqa: F401 - ws_servers is a fixture

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def token_for(user: User, seconds: int | None = None) -> str:
    token = AccessToken.for_user(user)
    if seconds is not None:
        token.set_exp(lifetime=datetime.timedelta(seconds=seconds))
    return str(token)


@pytest.fixture
def admin():
    return UserFactory(username="live-admin", role=User.Role.ADMIN, is_staff=True)


@pytest.fixture
def server(ws_servers):  # noqa: F811 - the fixture imported above
    return ws_servers[0]


def test_auth_then_subscribe_from_now_gets_ready_and_ping_gets_pong(server, admin):
    client = Client(server.url).auth(token_for(admin)).subscribe()
    changes, cursor = client.until_ready()
    assert changes == [] and isinstance(cursor, str) and cursor
    client.send(type="ping")
    assert client.recv() == {"type": "pong"}
    client.close()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "not-a-jwt"},
        {"type": "auth"},
        {"type": "auth", "token": 42},
        {"type": "subscribe"},
        {"type": "ping"},
    ],
)
def test_anything_but_a_valid_token_first_closes_4401(server, admin, first):
    client = Client(server.url)
    client.send(**first)
    assert client.close_code() == 4401


def test_a_refresh_token_or_a_tampered_one_is_refused(server, admin):
    from rest_framework_simplejwt.tokens import RefreshToken

    client = Client(server.url).auth(str(RefreshToken.for_user(admin)))
    assert client.close_code() == 4401
    good = token_for(admin)
    tampered = good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb")
    assert Client(server.url).auth(tampered).close_code() == 4401


def test_an_expired_token_is_refused(server, admin):
    token = AccessToken.for_user(admin)
    token.set_exp(lifetime=datetime.timedelta(seconds=-60))
    assert Client(server.url).auth(str(token)).close_code() == 4401


def test_a_deactivated_users_token_closes_4403(server, admin):
    other = UserFactory(role=User.Role.TECHNICIAN, is_active=False)
    assert Client(server.url).auth(token_for(other)).close_code() == 4403


@pytest.mark.parametrize(
    "raw",
    ["not json", "[1, 2]", '{"no": "type"}', '{"type": "dance"}', '{"type": "subscribe", "after": 5}'],
)
def test_a_bad_message_after_auth_closes_4400(server, admin, raw):
    client = Client(server.url).auth(token_for(admin))
    client.ws.send(raw)
    assert client.close_code() == 4400


def test_subscribing_twice_closes_4400(server, admin):
    client = Client(server.url).auth(token_for(admin)).subscribe()
    client.until_ready()
    client.subscribe()
    assert client.close_code() == 4400


def test_a_binary_frame_closes_4400(server, admin):
    client = Client(server.url).auth(token_for(admin))
    client.ws.send(b"\x00\x01")
    assert client.close_code() == 4400


def test_a_malformed_cursor_closes_4400(server, admin):
    client = Client(server.url).auth(token_for(admin)).subscribe("this is not a cursor")
    assert client.close_code() == 4400


def test_no_auth_within_the_timeout_closes_4401(tmp_path, ws_servers):  # noqa: F811
    quick = start_server("quick-auth", tmp_path, LIVE_AUTH_TIMEOUT="1.5", LIVE_IDLE_TIMEOUT="2")
    try:
        started = time.monotonic()
        assert Client(quick.url).close_code(timeout=10) == 4401
        assert 1.0 <= time.monotonic() - started < 5
    finally:
        quick.stop()


def test_a_silent_client_is_dropped_and_a_pinging_one_is_not(tmp_path, ws_servers, admin):  # noqa: F811
    quick = start_server("quick-idle", tmp_path, LIVE_IDLE_TIMEOUT="2")
    try:
        silent = Client(quick.url).auth(token_for(admin))
        chatty = Client(quick.url).auth(token_for(admin))
        for _ in range(5):  # 5 x 0.8 s: twice the idle timeout
            chatty.send(type="ping")
            assert chatty.recv() == {"type": "pong"}
            time.sleep(0.8)
        assert silent.close_code(timeout=1) == 4408
        chatty.send(type="ping")
        assert chatty.recv() == {"type": "pong"}
    finally:
        quick.stop()


def test_the_tokens_expiry_is_enforced_while_connected(server, admin):
    client = Client(server.url).auth(token_for(admin, seconds=2)).subscribe()
    client.until_ready()
    started = time.monotonic()
    assert client.close_code(timeout=10) == 4401
    assert time.monotonic() - started < 4


def test_a_fresh_auth_message_extends_the_connection(server, admin):
    client = Client(server.url).auth(token_for(admin, seconds=2)).subscribe()
    client.until_ready()
    client.auth(token_for(admin, seconds=60))
    time.sleep(3.5)
    client.send(type="ping")
    assert client.recv() == {"type": "pong"}
    client.close()


def test_a_fresh_auth_for_another_user_closes_4401(server, admin):
    other = UserFactory(role=User.Role.ADMIN)
    client = Client(server.url).auth(token_for(admin)).subscribe()
    client.until_ready()
    client.auth(token_for(other))
    assert client.close_code() == 4401


def test_a_deactivated_user_is_disconnected_within_seconds(ws_servers, admin):  # noqa: F811
    technician = UserFactory(role=User.Role.TECHNICIAN)
    clients = [Client(server.url).auth(token_for(technician)).subscribe() for server in ws_servers]
    bystander = Client(ws_servers[0].url).auth(token_for(admin)).subscribe()
    for client in (*clients, bystander):
        client.until_ready()
    user_update(actor=admin, user_id=technician.pk, data={"is_active": False})
    started = time.monotonic()
    assert [client.close_code(timeout=10) for client in clients] == [4403, 4403]
    assert time.monotonic() - started < 5
    bystander.send(type="ping")
    assert bystander.recv() == {"type": "pong"}
