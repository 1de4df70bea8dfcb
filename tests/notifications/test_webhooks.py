"""Webhooks end to end in-process (eager Celery, committed transactions, local HTTP receivers): the admin API, the
SSRF guard at create and at delivery time, Standard Webhooks signatures checked by the official library, the relay
from the change feed (exactly once), retries with the same ``webhook-id``, rotation, ping, the delivery log, manual
retry, giving up and auto-disabling. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import socket
import time

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from audit.models import AuditEntry
from jobs import services as job_services
from jobs.webhooks import relay_webhooks
from notifications import delivery, webhooks
from notifications.models import Notification, OutboxCursor, WebhookEndpoint
from tasks.emails import requeue_unsent
from tests.notifications.receivers import Receiver, serve

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/webhooks/"
Status = Notification.Status
FUTURE = datetime.date(2031, 5, 1)


@pytest.fixture
def receiver():
    yield from serve(Receiver())


@pytest.fixture
def allow_local(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.NOTIFICATION_GRACE_SECONDS = 0


def create_endpoint(api_client, admin_user, url, events=("*",), **extra):
    response = api_client(admin_user).post(URL, {"url": url, "events": list(events), **extra}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    return body, WebhookEndpoint.objects.get(pk=body["id"])


def subscribe(api_client, admin_user, receiver, events=("*",)):
    body, endpoint = create_endpoint(api_client, admin_user, receiver.url, events)
    receiver.secrets.append(body["secret"])
    relay_webhooks()  # the relay's cursor starts now: earlier changes are not replayed
    return endpoint


def create_job(actor, technician=None):
    data = {"title": "Boiler", "client_name": "ACME", "scheduled_date": FUTURE}
    if technician is not None:
        data["assigned_to"] = technician
    return job_services.job_create(actor=actor, data=data)


def relay(expected: int) -> int:
    """Run the relay until it has queued ``expected`` rows. On PostgreSQL the feed is read below the cluster's oldest
    running transaction, so another session's open transaction (another test run on the same server) can hold it
    back for a moment: wait, never assume."""
    total = relay_webhooks()
    deadline = time.monotonic() + 30
    while total < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        total += relay_webhooks()
    return total


def deliveries(endpoint):
    return list(Notification.objects.filter(endpoint=endpoint).order_by("id"))


# --- admin API -------------------------------------------------------------------------------------------------------


def test_create_returns_the_secret_once_and_lists_without_it(api_client, admin_user, allow_local, receiver):
    body, endpoint = create_endpoint(
        api_client, admin_user, receiver.url, ["job.upserted", "task.*"], description="CRM"
    )
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert set(body) == {"id", "url", "events", "is_active", "description", "created_at", "disabled_reason", "secret"}
    assert body["events"] == ["job.upserted", "task.*"] and body["is_active"] is True
    listed = api_client(admin_user).get(URL).json()
    items = listed["results"] if isinstance(listed, dict) else listed
    assert [item["id"] for item in items] == [endpoint.pk]
    assert "secret" not in items[0]
    detail = api_client(admin_user).get(f"{URL}{endpoint.pk}/").json()
    assert "secret" not in detail and detail["description"] == "CRM"
    assert AuditEntry.objects.filter(action="webhook.created", object_id=str(endpoint.pk)).exists()


def test_non_admins_get_403(api_client, technician, sales_agent):
    for user in (technician, sales_agent):
        assert api_client(user).get(URL).status_code == 403
        assert (
            api_client(user).post(URL, {"url": "https://example.com/", "events": ["*"]}, format="json").status_code
            == 403
        )


@pytest.mark.parametrize(
    "events", [[], ["job.created"], "job.upserted", [1]], ids=["empty", "unknown", "not-a-list", "not-a-string"]
)
def test_bad_events_are_400(api_client, admin_user, allow_local, events):
    response = api_client(admin_user).post(URL, {"url": "http://127.0.0.1:9/", "events": events}, format="json")
    assert response.status_code == 400 and "events" in response.json()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://localhost/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ],
)
def test_ssrf_refused_at_create(api_client, admin_user, url):
    response = api_client(admin_user).post(URL, {"url": url, "events": ["*"]}, format="json")
    assert response.status_code == 400, response.content
    assert "url" in response.json()
    assert not WebhookEndpoint.objects.exists()


def test_allowed_hosts_lift_the_address_check(api_client, admin_user, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    create_endpoint(api_client, admin_user, "http://localhost:9/hook")
    assert (
        api_client(admin_user).post(URL, {"url": "http://127.0.0.1:9/", "events": ["*"]}, format="json").status_code
        == 400
    )


def test_a_name_that_resolves_elsewhere_at_delivery_time_is_refused(
    api_client, admin_user, receiver, monkeypatch, settings
):
    """DNS rebinding: public at create time, loopback at delivery time -> refused, nothing reaches the receiver."""
    settings.NOTIFICATION_GRACE_SECONDS = 0
    real = socket.getaddrinfo
    answer = {"ip": "93.184.216.34"}

    def fake(host, port, *args, **kwargs):
        if host == "hooks.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["ip"], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    body, endpoint = create_endpoint(api_client, admin_user, f"http://hooks.example.test:{receiver.port}/hook")
    answer["ip"] = "127.0.0.1"
    response = api_client(admin_user).post(f"{URL}{endpoint.pk}/ping/")
    assert response.status_code == 202
    [row] = deliveries(endpoint)
    assert row.status == Status.PENDING and row.attempts == 1
    assert row.last_error.startswith("refused:") and "127.0.0.1" in row.last_error
    assert receiver.received == []


def test_redirects_are_not_followed(api_client, admin_user, allow_local, receiver):
    with_target = Receiver()
    for target in serve(with_target):
        receiver.default = 302
        receiver.headers_out = {"location": with_target.url}
        endpoint = subscribe(api_client, admin_user, receiver)
        api_client(admin_user).post(f"{URL}{endpoint.pk}/ping/")
        [row] = deliveries(endpoint)
        assert len(receiver.received) == 1 and target.received == []
        assert row.status == Status.PENDING and row.last_status_code == 302
        assert "redirects are not followed" in row.last_error


# --- delivery from the change feed ----------------------------------------------------------------------------------


def test_changes_are_delivered_signed_with_the_feed_types_and_representations(
    api_client, admin_user, allow_local, receiver, sales_agent, technician
):
    endpoint = subscribe(api_client, admin_user, receiver)
    job = create_job(sales_agent, technician)
    assert relay(1) == 1
    [row] = deliveries(endpoint)
    assert row.status == Status.SENT and row.attempts == 1 and row.last_status_code == 204
    [got] = receiver.received
    assert got.verified, got.error
    assert got.headers["webhook-id"] == f"msg_{row.pk}"
    event = got.json
    assert event["type"] == "job.upserted" and set(event) == {"type", "timestamp", "data"}
    assert event["data"] == api_client(admin_user).get(f"/api/jobs/{job.pk}/").json()
    # The official verifier rejects a wrong secret, a changed body and a timestamp 6 minutes old.
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secrets[0]).verify(got.body.replace("Boiler", "Boiled"), got.headers)
    old = int(got.headers["webhook-timestamp"]) - 360
    stale = {**got.headers, "webhook-timestamp": str(old)}
    stale["webhook-signature"] = webhooks.sign(receiver.secrets[0], got.headers["webhook-id"], old, got.body)
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver.secrets[0]).verify(got.body, stale)


def test_removed_objects_come_with_null_data(api_client, admin_user, allow_local, receiver, sales_agent):
    job = create_job(sales_agent)
    endpoint = subscribe(api_client, admin_user, receiver, ["job.removed"])
    job_services.job_delete(actor=admin_user, job_id=job.pk)
    relay(1)
    [got] = receiver.received
    assert got.verified and got.json["type"] == "job.removed" and got.json["data"] is None
    assert [r.event_type for r in deliveries(endpoint)] == ["job.removed"]


def test_an_endpoint_gets_only_the_types_it_subscribed_to(api_client, admin_user, allow_local, receiver, sales_agent):
    endpoint = subscribe(api_client, admin_user, receiver, ["task.*"])
    job = create_job(sales_agent)
    job_services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "Valve"})
    relay(1)
    types = [r.json["type"] for r in receiver.received]
    assert types == ["task.upserted"]
    assert all(r.verified for r in receiver.received)
    assert [r.event_type for r in deliveries(endpoint)] == ["task.upserted"]


def test_the_relay_queues_each_event_once_per_endpoint(api_client, admin_user, allow_local, receiver, sales_agent):
    first = subscribe(api_client, admin_user, receiver)
    second_receiver = Receiver()
    for second in serve(second_receiver):
        body, second_endpoint = create_endpoint(api_client, admin_user, second.url)
        second.secrets.append(body["secret"])
        for _ in range(3):
            create_job(sales_agent)
        assert relay(6) == 6
        assert relay_webhooks() == 0  # the cursor moved with the rows
        assert len(deliveries(first)) == 3 and len(deliveries(second_endpoint)) == 3
        assert len(second.verified) == 3
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 3
    # A relay that crashed after writing but before moving the cursor cannot duplicate: the key is unique.
    cursor = OutboxCursor.objects.get(name="webhooks")
    OutboxCursor.objects.filter(pk=cursor.pk).update(txid=0, last_id=0)
    assert relay_webhooks() == 0
    assert len(deliveries(first)) == 3


def test_nobody_listening_moves_the_cursor_without_queueing(sales_agent):
    create_job(sales_agent)
    assert relay_webhooks() == 0
    assert not Notification.objects.filter(channel="webhook").exists()
    assert OutboxCursor.objects.filter(name="webhooks").exists()


def test_receiver_down_then_up_same_webhook_id_delivered_once(
    api_client, admin_user, allow_local, receiver, sales_agent
):
    endpoint = subscribe(api_client, admin_user, receiver)
    receiver.answers = [500, 503]
    create_job(sales_agent)
    relay(1)
    [row] = deliveries(endpoint)
    assert row.status == Status.PENDING and row.attempts == 1 and row.last_status_code == 500
    # The sweep retries when the row is due (5 s +- 25 % after the first failure, then 60 s +- 25 %).
    for minutes in (1, 3):
        with time_machine.travel(timezone.now() + datetime.timedelta(minutes=minutes), tick=True):
            requeue_unsent()
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 3 and row.last_error == ""
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"msg_{row.pk}"] * 3
    assert all(r.verified for r in receiver.received)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_retry_schedule_spans_about_three_days_with_jitter(settings):
    delays = [delivery.webhook_retry_delay(n) for n in range(1, len(settings.WEBHOOK_RETRY_SCHEDULE) + 1)]
    base = sum(settings.WEBHOOK_RETRY_SCHEDULE)
    assert 2.5 * 86400 <= base <= 3.5 * 86400
    assert all(d is not None for d in delays)
    assert 0.75 * base <= sum(d for d in delays if d is not None) <= 1.25 * base
    assert delivery.webhook_retry_delay(len(settings.WEBHOOK_RETRY_SCHEDULE) + 1) is None
    assert len({delivery.webhook_retry_delay(3) for _ in range(5)}) > 1  # jittered


def test_gives_up_after_the_schedule_then_manual_retry_sends_the_same_id(
    api_client, admin_user, allow_local, receiver, settings
):
    settings.WEBHOOK_RETRY_SCHEDULE = [1, 1]
    receiver.default = 500
    endpoint = subscribe(api_client, admin_user, receiver)
    api_client(admin_user).post(f"{URL}{endpoint.pk}/ping/")
    [row] = deliveries(endpoint)
    for seconds in (5, 10):
        with time_machine.travel(timezone.now() + datetime.timedelta(seconds=seconds), tick=True):
            requeue_unsent()
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.attempts == 3
    log = api_client(admin_user).get(f"{URL}{endpoint.pk}/deliveries/").json()
    [item] = log["results"] if isinstance(log, dict) else log
    assert item["status"] == "failed" and item["attempts"] == 3 and item["last_status_code"] == 500
    assert item["type"] == "webhook.ping" and item["event_id"].startswith("evt_ping_")
    assert set(item) == {
        "id",
        "event_id",
        "type",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    }
    receiver.default = 200
    response = api_client(admin_user).post(f"/api/webhook-deliveries/{row.pk}/retry/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "delivered"
    assert {r.headers["webhook-id"] for r in receiver.received} == {f"msg_{row.pk}"}
    assert len(receiver.received) == 4
    assert api_client(admin_user).post(f"/api/webhook-deliveries/{row.pk}/retry/").status_code == 409
    assert AuditEntry.objects.filter(action="notification.retried").exists()


def test_rotation_signs_with_both_secrets_for_24_hours(api_client, admin_user, allow_local, receiver):
    endpoint = subscribe(api_client, admin_user, receiver)
    old = receiver.secrets[0]
    response = api_client(admin_user).post(f"{URL}{endpoint.pk}/rotate-secret/")
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new != old and new.startswith("whsec_")
    api_client(admin_user).post(f"{URL}{endpoint.pk}/ping/")
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)
    endpoint.refresh_from_db()
    later = timezone.now() + datetime.timedelta(hours=24, minutes=1)
    headers = webhooks.signed_headers(endpoint, "msg_x", got.body, later)
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert headers["webhook-signature"] == webhooks.sign(new, "msg_x", int(later.timestamp()), got.body)


def test_failing_for_five_days_disables_the_endpoint_and_emails_the_admins(
    api_client, admin_user, allow_local, receiver, settings
):
    settings.WEBHOOK_RETRY_SCHEDULE = [60]
    receiver.default = 500
    endpoint = subscribe(api_client, admin_user, receiver)
    start = timezone.now()
    api_client(admin_user).post(f"{URL}{endpoint.pk}/ping/")
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None and endpoint.is_active
    with time_machine.travel(start + datetime.timedelta(days=5, minutes=1), tick=True):
        api_client(admin_user).post(f"{URL}{endpoint.pk}/ping/")
    endpoint.refresh_from_db()
    assert not endpoint.is_active and "5 days" in endpoint.disabled_reason
    [email] = Notification.objects.filter(kind="webhook_disabled")
    assert email.recipient == admin_user.email and email.channel == "email"
    assert any(f"#{endpoint.pk}" in m.subject for m in mail.outbox)
    detail = api_client(admin_user).get(f"{URL}{endpoint.pk}/").json()
    assert detail["is_active"] is False and detail["disabled_reason"]
    # Enabling it again by hand clears the reason.
    response = api_client(admin_user).patch(f"{URL}{endpoint.pk}/", {"is_active": True}, format="json")
    assert response.status_code == 200 and response.json()["disabled_reason"] == ""


def test_outbox_list_shows_channel_and_not_webhooks(
    api_client, admin_user, allow_local, receiver, sales_agent, technician
):
    endpoint = subscribe(api_client, admin_user, receiver)
    create_job(sales_agent, technician)
    relay(1)
    assert deliveries(endpoint)
    body = api_client(admin_user).get("/api/notifications/").json()
    items = body["results"] if isinstance(body, dict) else body
    assert [item["channel"] for item in items] == ["email"]
    assert api_client(admin_user).get("/api/notifications/", {"channel": "webhook"}).status_code == 400


def test_delivery_log_uses_a_constant_number_of_queries(
    api_client, admin_user, allow_local, receiver, django_assert_max_num_queries
):
    endpoint = subscribe(api_client, admin_user, receiver)
    client = api_client(admin_user)
    client.post(f"{URL}{endpoint.pk}/ping/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert client.get(f"{URL}{endpoint.pk}/deliveries/").status_code == 200
    for _ in range(5):
        client.post(f"{URL}{endpoint.pk}/ping/")
    with CaptureQueriesContext(connection) as six:
        body = client.get(f"{URL}{endpoint.pk}/deliveries/").json()
    assert body["count"] == 6 if isinstance(body, dict) else len(body) == 6
    assert len(six.captured_queries) == len(one.captured_queries)


# --- the HTTP attempt's limits -------------------------------------------------------------------------------------


def _endless_server(delay_first_byte: float):
    """A raw socket server answering 200 with a body that never ends (after ``delay_first_byte`` seconds)."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    stop = threading.Event()

    def run():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(65536)
                    time.sleep(delay_first_byte)
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
                    while not stop.is_set():
                        conn.sendall(b"x" * 8192)
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server, stop


def test_an_endless_response_body_is_cut_at_the_cap(settings, monkeypatch):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    server, stop = _endless_server(0)
    reads = []
    real_read = __import__("urllib3").response.HTTPResponse.read

    def counting_read(self, amt=None, *args, **kwargs):
        data = real_read(self, amt, *args, **kwargs)
        reads.append(len(data))
        return data

    monkeypatch.setattr("urllib3.response.HTTPResponse.read", counting_read)
    try:
        attempt = webhooks.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {})
    finally:
        stop.set()
        server.close()
    assert attempt.ok and attempt.status_code == 200
    assert sum(reads) == webhooks.MAX_RESPONSE_BYTES


def test_a_receiver_that_never_answers_times_out(settings, monkeypatch):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(webhooks, "TOTAL_TIMEOUT", 0.5)
    server, stop = _endless_server(5)
    try:
        attempt = webhooks.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {})
    finally:
        stop.set()
        server.close()
    assert not attempt.ok and attempt.status_code is None
    assert "Timeout" in attempt.error or "timed out" in attempt.error


@pytest.mark.postgres
def test_concurrent_relays_queue_each_event_once(
    require_postgres, api_client, admin_user, allow_local, receiver, sales_agent
):
    """Four relays at once over the same 20 changes: the cursor row lock serialises them, each event is queued once."""
    import threading

    from django.db import connection as default_connection

    endpoint = subscribe(api_client, admin_user, receiver)
    for _ in range(20):
        create_job(sales_agent)
    counts: list[int] = []
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        try:
            counts.append(relay(0))
        finally:
            default_connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    relay(20 - sum(counts))
    rows = deliveries(endpoint)
    assert len(rows) == 20 and len({row.event_id for row in rows}) == 20
    assert len(receiver.verified) == 20
