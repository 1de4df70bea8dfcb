"""Push, SMS and per-user preferences: the channels beside email, through the one outbox.

Web Push goes to a local push-service stand-in: the test holds the subscription's private key and auth secret,
decrypts the RFC 8291 ``aes128gcm`` body with ``http_ece`` and verifies the VAPID JWT (RFC 8292) with the server's
public key; a 410 removes the subscription. SMS goes to a local stand-in of Twilio's Messages endpoint (form fields,
basic auth), reached by pointing the twilio client's API base URL at it. A kind switched off on a channel sends
nothing there.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from audit.models import AuditEntry
from notifications.models import Notification, PushSubscription
from tasks.emails import deliver_notification
from tests.notifications.support import create_job

pytestmark = pytest.mark.django_db(transaction=True)

ME = "/api/auth/me/notifications/"
SUBS = "/api/push-subscriptions/"
Channel = Notification.Channel
Status = Notification.Status


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Stub:
    """A local HTTP server recording requests and answering ``status`` (then ``default``)."""

    answers: list[int] = field(default_factory=list)
    default: int = 201
    body: bytes = b""
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def serve(stub: Stub) -> Iterator[Stub]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            stub.requests.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": raw}
            )
            status = stub.answers.pop(0) if stub.answers else stub.default
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(stub.body)))
            self.end_headers()
            self.wfile.write(stub.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def push_service(settings) -> Iterator[Stub]:
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    yield from serve(Stub())


@pytest.fixture
def vapid(settings):
    key = ec.generate_private_key(ec.SECP256R1())
    settings.VAPID_PRIVATE_KEY = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    settings.VAPID_SUBJECT = "mailto:ops@example.com"
    return key.public_key()


@dataclass
class Browser:
    """A browser's side of a subscription: its P-256 key pair and auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Browser:
        return cls(ec.generate_private_key(ec.SECP256R1()), b"0123456789abcdef")

    def keys(self) -> dict[str, str]:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> Any:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


def subscribe(client, push_service, path="/push/abc") -> tuple[Browser, int]:
    browser = Browser.new()
    body = {"endpoint": push_service.url(path), "keys": browser.keys(), "expirationTime": None}
    response = client.post(SUBS, body, format="json")
    assert response.status_code == 201, response.content
    assert set(response.json()) == {"id", "endpoint", "created_at"}
    return browser, response.json()["id"]


def deliver_all(**filters) -> list[Notification]:
    rows = list(Notification.objects.filter(**filters).order_by("id"))
    for row in rows:
        deliver_notification.delay(row.pk).get()
    return [Notification.objects.get(pk=row.pk) for row in rows]


# --- preferences -----------------------------------------------------------------------------------------------------


def test_preferences_defaults_and_patch(api_client, technician):
    client = api_client(technician)
    body = client.get(ME).json()
    assert body["push"] == ["job_assigned", "daily_reminder"] and body["sms"] == []
    assert {"job_assigned", "job_reassigned", "job_overdue", "job_completed", "daily_reminder"} <= set(body["email"])
    response = client.patch(ME, {"sms": ["job_overdue", "job_assigned"]}, format="json")
    assert response.status_code == 200
    assert response.json()["sms"] == ["job_assigned", "job_overdue"]  # in the kinds' order
    assert response.json()["push"] == body["push"] and response.json()["email"] == body["email"]
    assert client.get(ME).json()["sms"] == ["job_assigned", "job_overdue"]
    assert AuditEntry.objects.filter(action="notifications.preferences_changed").count() == 1


@pytest.mark.parametrize("payload", [{"email": ["nope"]}, {"push": "job_assigned"}, {"sms": [None]}])
def test_preferences_bad_input_is_400(api_client, technician, payload):
    response = api_client(technician).patch(ME, payload, format="json")
    assert response.status_code == 400 and set(payload) <= set(response.json())


def test_preferences_need_a_login(api_client):
    assert api_client(None).get(ME).status_code == 401


def test_a_kind_switched_off_by_email_sends_no_email(api_client, sales_agent, technician, mailoutbox):
    api_client(technician).patch(ME, {"email": ["job_overdue"]}, format="json")
    create_job(sales_agent, technician)
    assert not Notification.objects.filter(recipient_user=technician).exists()


# --- Web Push --------------------------------------------------------------------------------------------------------


def test_push_is_encrypted_and_vapid_signed(api_client, sales_agent, technician, push_service, vapid):
    browser, _ = subscribe(api_client(technician), push_service)
    job = create_job(sales_agent, technician)
    [email, push_row] = Notification.objects.filter(recipient_user=technician).order_by("id")
    assert (email.channel, push_row.channel) == (Channel.EMAIL, Channel.PUSH)
    [row] = deliver_all(channel=Channel.PUSH)
    assert row.status == Status.SENT
    [request] = push_service.requests
    headers = request["headers"]
    assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) > 0
    message = browser.decrypt(request["body"])
    assert message == {"id": row.pk, "kind": "job_assigned", "title": row.subject, "job": job.pk}
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.split("=", 1) for part in params.split(","))
    public = vapid.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert unb64url(fields["k"]) == public
    claims = jwt.decode(fields["t"], vapid, algorithms=["ES256"], audience=f"http://127.0.0.1:{push_service.port}")
    assert claims["sub"] == "mailto:ops@example.com"


def test_410_removes_the_subscription(api_client, sales_agent, technician, push_service, vapid):
    subscribe(api_client(technician), push_service, "/push/gone")
    push_service.default = 410
    create_job(sales_agent, technician)
    [row] = deliver_all(channel=Channel.PUSH)
    assert row.status == Status.SENT  # nothing left to send to: done, not retried forever
    assert not PushSubscription.objects.exists()


def test_push_service_down_is_retried(api_client, sales_agent, technician, push_service, vapid):
    subscribe(api_client(technician), push_service)
    push_service.answers = [503]
    create_job(sales_agent, technician)
    [row] = deliver_all(channel=Channel.PUSH)  # delivered at commit (eager): 503, then the retry
    assert row.status == Status.SENT and row.attempts == 2
    assert len(push_service.requests) == 2
    assert PushSubscription.objects.exists()


def test_push_switched_off_sends_nothing_there(api_client, sales_agent, technician, push_service, vapid):
    client = api_client(technician)
    subscribe(client, push_service)
    client.patch(ME, {"push": []}, format="json")
    create_job(sales_agent, technician)
    assert not Notification.objects.filter(channel=Channel.PUSH).exists()
    assert Notification.objects.filter(channel=Channel.EMAIL, recipient_user=technician).exists()


def test_push_subscriptions_are_private_and_checked(api_client, technician, other_technician, push_service, settings):
    _, sub_id = subscribe(api_client(technician), push_service)
    assert api_client(other_technician).get(SUBS).json()["count"] == 0
    assert api_client(other_technician).delete(f"{SUBS}{sub_id}/").status_code == 404
    settings.WEBHOOK_ALLOWED_HOSTS = []
    body = {"endpoint": push_service.url("/x"), "keys": Browser.new().keys()}
    response = api_client(technician).post(SUBS, body, format="json")
    assert response.status_code == 400 and "endpoint" in response.json()
    assert api_client(technician).delete(f"{SUBS}{sub_id}/").status_code == 204
    assert not PushSubscription.objects.exists()


# --- SMS -------------------------------------------------------------------------------------------------------------


@pytest.fixture
def twilio(settings) -> Iterator[Stub]:
    stub = Stub(body=json.dumps({"sid": "SM123", "status": "queued"}).encode())
    for running in serve(stub):
        settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
        settings.TWILIO_AUTH_TOKEN = "secret-token"
        settings.TWILIO_FROM = "+15005550006"
        settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{running.port}"
        yield running


def test_sms_goes_through_twilios_messages_endpoint(api_client, sales_agent, technician, twilio):
    client = api_client(technician)
    client.patch("/api/auth/me/", {"phone": "+1 415 555 2671"}, format="json")
    client.patch(ME, {"sms": ["job_assigned"]}, format="json")
    create_job(sales_agent, technician)
    [row] = deliver_all(channel=Channel.SMS)
    assert row.status == Status.SENT and row.recipient == "+14155552671"
    [request] = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{'AC' + '0' * 32}/Messages.json"
    form = {k: v[0] for k, v in parse_qs(request["body"].decode()).items()}
    assert form["To"] == "+14155552671" and form["From"] == "+15005550006"
    assert form["Body"].startswith("JobOps: Job #")
    expected = "Basic " + base64.b64encode(f"{'AC' + '0' * 32}:secret-token".encode()).decode()
    assert request["headers"]["authorization"] == expected


def test_sms_rejected_by_twilio_fails_at_once_and_5xx_is_retried(api_client, sales_agent, technician, twilio):
    client = api_client(technician)
    client.patch("/api/auth/me/", {"phone": "+14155552671"}, format="json")
    client.patch(ME, {"sms": ["job_assigned", "job_reassigned"]}, format="json")
    twilio.answers = [400]
    create_job(sales_agent, technician)
    [row] = deliver_all(channel=Channel.SMS)
    assert row.status == Status.FAILED and "400" in row.last_error
    assert len(twilio.requests) == 1
    twilio.answers = [503]
    Notification.objects.filter(pk=row.pk).update(status=Status.PENDING, attempts=0)
    [row] = deliver_all(channel=Channel.SMS)  # 503, then Celery's retry (eager: at once) is answered 201
    assert row.status == Status.SENT and row.attempts == 2 and len(twilio.requests) == 3


def test_no_sms_by_default_nor_without_a_phone(api_client, sales_agent, technician, twilio):
    create_job(sales_agent, technician)
    api_client(technician).patch(ME, {"sms": ["job_assigned"]}, format="json")
    create_job(sales_agent, technician)  # chosen, but no phone
    assert not Notification.objects.filter(channel=Channel.SMS).exists()
    assert twilio.requests == []
