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


@pytest.fixture(autouse=True)
def _clear_cache():
    """Replaces tests/conftest.py's: clearing a Redis cache flushes its whole database, and with it the ASGI
    processes' membership of the wake group (they renew it only every few seconds). These tests use no cache."""
    yield


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


# --- changes: backlog, hand-over, fan-out across processes --------------------------------------------------------


def new_job(actor: User, **data) -> int:
    from jobs.services import job_create

    fields = {
        "title": "Live job",
        "client_name": "ACME",
        "scheduled_date": datetime.date.today() + datetime.timedelta(days=1),
        **data,
    }
    return job_create(actor=actor, data=fields).pk


def positions(changes: list[dict]) -> list:
    from jobs.feed import decode_cursor

    return [decode_cursor(change["cursor"]) for change in changes]


def wait_until_readable(timeout: float = 30) -> None:
    """Until every feed row committed so far is below the feed's watermark. On a PostgreSQL shared with other work
    an older transaction still running holds rows back (they then come after ``ready``, not in the backlog)."""
    from jobs.feed import current_cursor, decode_cursor
    from jobs.models import Change

    last = Change.objects.order_by("-txid", "-id").values_list("txid", "id").first()
    deadline = time.monotonic() + timeout
    while last is not None and tuple(decode_cursor(current_cursor())) < tuple(last):
        assert time.monotonic() < deadline, "the feed's watermark did not pass the rows committed so far"
        time.sleep(0.05)


def collect(client: Client, wanted: set[int], timeout: float = 15) -> list[dict]:
    """Changes received until every job id in ``wanted`` was seen (fails after ``timeout``)."""
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while not wanted <= {c["object_id"] for c in received if c["object_type"] == "job"}:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"missing jobs {wanted - {c['object_id'] for c in received}} after {timeout} s"
        try:
            message = client.recv(timeout=remaining)
        except TimeoutError:
            seen = {c["object_id"] for c in received if c["object_type"] == "job"}
            raise AssertionError(f"missing jobs {sorted(wanted - seen)} after {timeout} s") from None
        assert message["type"] == "change", message
        received.append(message["change"])
    return received


def test_backlog_then_ready_then_live_without_gap_or_duplicate_at_the_hand_over(ws_servers, admin):  # noqa: F811
    import threading

    from jobs.feed import current_cursor

    start = current_cursor()
    backlog = [new_job(admin, title=f"Backlog {i}") for i in range(5)]
    wait_until_readable()
    created: list[int] = []
    stop = threading.Event()

    def writer() -> None:  # keeps committing while the client catches up and is handed over to live changes
        from django.db import connection

        try:
            while not stop.is_set() and len(created) < 200:
                created.append(new_job(admin, title=f"During {len(created)}"))
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        client = Client(ws_servers[0].url).auth(token_for(admin)).subscribe(start)
        before_ready, ready_cursor = client.until_ready()
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    after = [new_job(admin, title=f"After {i}") for i in range(3)]
    expected = set(backlog) | set(created) | set(after)
    live = collect(client, expected - {c["object_id"] for c in before_ready})
    everything = before_ready + live
    job_ids = [c["object_id"] for c in everything if c["object_type"] == "job"]
    assert set(job_ids) == expected
    assert len(job_ids) == len(set(job_ids)), "a change was delivered twice"
    assert all(c["type"] == "job.upserted" and c["data"]["id"] == c["object_id"] for c in everything)
    assert positions(everything) == sorted(positions(everything)), "not in cursor order"
    assert set(backlog) <= {c["object_id"] for c in before_ready}
    assert positions(before_ready)[-1] <= positions([{"cursor": ready_cursor}])[0] if before_ready else True
    client.close()


def test_a_change_made_by_a_third_process_reaches_clients_of_two_asgi_processes(ws_servers, admin):  # noqa: F811
    clients = [Client(server.url).auth(token_for(admin)).subscribe() for server in ws_servers]
    for client in clients:
        client.until_ready()
    started = time.monotonic()
    job_id = new_job(admin, title="Seen by both")  # committed here: a plain Django process, as a REST worker is
    for client in clients:
        (change,) = collect(client, {job_id}, timeout=10)
        assert change["type"] == "job.upserted" and change["data"]["title"] == "Seen by both"
    # Delivered by the wake through Redis, not by the safety poll (LIVE_POLL_SECONDS, 30 s here).
    assert time.monotonic() - started < 5


def test_a_technician_gets_only_their_jobs_and_a_removal_when_one_is_reassigned(ws_servers, admin):  # noqa: F811
    from jobs.services import job_update

    mine, theirs = UserFactory(role=User.Role.TECHNICIAN), UserFactory(role=User.Role.TECHNICIAN)
    client = Client(ws_servers[1].url).auth(token_for(mine)).subscribe()
    client.until_ready()
    other_job = new_job(admin, title="Not mine", assigned_to=theirs)
    my_job = new_job(admin, title="Mine", assigned_to=mine)
    (change,) = collect(client, {my_job})
    assert change["type"] == "job.upserted" and change["object_id"] == my_job != other_job
    job_update(actor=admin, job_id=my_job, data={"assigned_to": theirs})
    message = client.recv()
    assert message["change"]["type"] == "job.removed" and message["change"]["object_id"] == my_job
    assert message["change"]["data"] is None


def test_an_expired_cursor_closes_4410(ws_servers, admin):  # noqa: F811
    from django.utils import timezone

    from jobs.feed import Position, encode_cursor

    old = encode_cursor(Position(1, 1), issued=timezone.now() - datetime.timedelta(days=400))
    client = Client(ws_servers[0].url).auth(token_for(admin)).subscribe(old)
    assert client.close_code() == 4410
