"""Webhooks: endpoints (write services), Standard Webhooks 1.0 signing, the SSRF guard and the one HTTP attempt.

Every webhook message is an outbox row (``Notification`` with ``channel="webhook"``): the change-feed relay
(``jobs.webhooks``) and ``webhook_ping`` write them through ``services._store`` (one row per endpoint and event,
``dedupe_key`` unique, enqueued on commit); ``notifications.delivery`` delivers them with the email path's lock,
skip-unless-pending and requeue sweep, calling ``webhook_attempt`` here for the HTTP part.

Standard Webhooks 1.0: headers ``webhook-id`` (the row's ``msg_<id>``, the same on every retry), ``webhook-timestamp``
(the attempt's Unix time) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per
valid secret, space separated: during a rotation the previous secret signs too); secrets are ``whsec_`` + base64.

SSRF: the host is resolved and every address checked (loopback, private, link-local, multicast, reserved,
unspecified, shared and other non-global addresses, also in their IPv4-mapped IPv6 form) when an endpoint is
written *and* on every attempt; the attempt connects to the checked address itself (TLS still verifies the host
name), so a DNS answer that changes between the check and the connection cannot redirect it. Hosts in
``WEBHOOK_ALLOWED_HOSTS`` skip the address check. Redirects are never followed (a 3xx is a failed attempt);
connect timeout 3 s, 10 s for the whole attempt, at most 64 KiB of the response body read.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from audit.services import audit_record

from .models import Notification, WebhookEndpoint
from .netguard import Target, UnsafeURL, resolve
from .services import _store

Channel = Notification.Channel
Kind = Notification.Kind

#: Every event type a webhook can subscribe to: the change feed's types, and the ping.
OBJECT_TYPES = ("job", "task", "attachment")
EVENT_TYPES = tuple(f"{obj}.{what}" for obj in OBJECT_TYPES for what in ("upserted", "removed"))
PING = "webhook.ping"
SUBSCRIBABLE = frozenset({*EVENT_TYPES, *(f"{obj}.*" for obj in OBJECT_TYPES), "*"})

CONNECT_TIMEOUT = 3.0
TOTAL_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
SECRET_OVERLAP = datetime.timedelta(hours=24)
USER_AGENT = "JobOps-Webhooks/1"


# --- secrets and signing -------------------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``msg_id.timestamp.body`` with the ``whsec_`` secret's key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime.datetime) -> list[str]:
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        keys.append(endpoint.previous_secret)
    return keys


def message_id(notification: Notification) -> str:
    return f"msg_{notification.pk}"


def signed_headers(endpoint: WebhookEndpoint, msg_id: str, body: str, now: datetime.datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    signatures = " ".join(sign(key, msg_id, timestamp, body) for key in signing_secrets(endpoint, now))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- the SSRF guard ------------------------------------------------------------------------------------------------


def validate_url(url: str) -> None:
    """For write serializers: a field error unless the URL passes the check made again at delivery time."""
    try:
        resolve(url)
    except UnsafeURL as exc:
        raise serializers.ValidationError(str(exc)) from None


# --- one HTTP attempt ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _pool(target: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)


def post(url: str, body: bytes, headers: dict[str, str]) -> Attempt:
    """POST ``body`` to ``url`` once, after the SSRF check, connecting to the checked address; never raises."""
    try:
        target = resolve(url)
    except UnsafeURL as exc:
        return Attempt(None, f"refused: {exc}")
    deadline = time.monotonic() + TOTAL_TIMEOUT
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:
        host_header = f"[{target.host}]" + ("" if target.port == default_port else f":{target.port}")
    last_error = ""
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = urllib3.Timeout(connect=min(CONNECT_TIMEOUT, remaining), read=remaining)
        pool = _pool(target, address, timeout)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "host": host_header},
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # try the next checked address
            last_error = f"connection failed: {exc}"[:2000]
            pool.close()
            continue
        except Exception as exc:  # timeouts, TLS, protocol errors: a failed attempt
            pool.close()
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:2000])
        try:
            read = 0
            while read < MAX_RESPONSE_BYTES and time.monotonic() < deadline:
                chunk = response.read(min(8192, MAX_RESPONSE_BYTES - read))
                if not chunk:
                    break
                read += len(chunk)
        except Exception as exc:
            return Attempt(None, f"reading the response failed: {type(exc).__name__}")
        finally:
            response.release_conn()
            pool.close()
        status = response.status
        if 200 <= status < 300:
            return Attempt(status, "")
        if 300 <= status < 400:
            return Attempt(status, f"HTTP {status}: redirects are not followed")
        return Attempt(status, f"HTTP {status}")
    return Attempt(None, last_error or "no address could be reached")


def webhook_attempt(notification: Notification, *, now: datetime.datetime) -> Attempt:
    """One signed delivery attempt of a webhook outbox row (its endpoint already loaded)."""
    endpoint = notification.endpoint
    assert endpoint is not None  # noqa: S101 - webhook rows always have one (CASCADE)
    msg_id = message_id(notification)
    headers = signed_headers(endpoint, msg_id, notification.payload, now)
    return post(endpoint.url, notification.payload.encode(), headers)


# --- queueing events -----------------------------------------------------------------------------------------------


def subscribed(endpoint_events: Iterable[str], event_type: str) -> bool:
    obj = event_type.split(".", 1)[0]
    events = set(endpoint_events)
    return bool({"*", event_type, f"{obj}.*"} & events)


@dataclass(frozen=True)
class Event:
    """One event for the webhooks: ``id`` (``evt_...``, unique per event), type, time and the ``data`` (a mapping,
    ``None``, or an ``orjson.Fragment`` rendered by the database)."""

    id: str
    type: str
    timestamp: str
    data: Any


def body_of(event: Event) -> str:
    return orjson.dumps({"type": event.type, "timestamp": event.timestamp, "data": event.data}).decode()


def _row(endpoint: WebhookEndpoint, event: Event, *, dedupe: bool = True) -> Notification:
    return Notification(
        channel=Channel.WEBHOOK,
        kind=Kind.WEBHOOK_EVENT,
        recipient=endpoint.url[:254],
        endpoint=endpoint,
        event_id=event.id,
        event_type=event.type,
        subject=event.type,
        payload=body_of(event),
        dedupe_key=f"webhook:{endpoint.pk}:{event.id}" if dedupe else None,
    )


def queue_webhook_events(events: Sequence[Event], *, endpoints: Sequence[WebhookEndpoint] | None = None) -> list[int]:
    """One outbox row per (active endpoint subscribed to it, event), in the caller's transaction; an (endpoint,
    event) pair already queued is not queued again (``dedupe_key``). Returns the new rows' ids."""
    if endpoints is None:
        endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
    rows = [
        _row(endpoint, event) for event in events for endpoint in endpoints if subscribed(endpoint.events, event.type)
    ]
    return _store(rows)


def active_endpoints() -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(is_active=True).order_by("pk"))


# --- endpoint services (admin) -------------------------------------------------------------------------------------


def _repr(endpoint: WebhookEndpoint) -> str:
    return f"webhook {endpoint.pk} {endpoint.url}"[:200]


@transaction.atomic
def webhook_create(*, actor: Any, data: dict[str, Any]) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.create(
        url=data["url"],
        events=list(dict.fromkeys(data["events"])),
        description=data.get("description", ""),
        is_active=data.get("is_active", True),
        secret=new_secret(),
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="webhook.created",
        obj=endpoint,
        object_repr=_repr(endpoint),
        changes={"url": [None, endpoint.url], "events": [None, endpoint.events]},
    )
    return endpoint


@transaction.atomic
def webhook_update(*, actor: Any, endpoint_id: int, data: dict[str, Any]) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    changes: dict[str, list[Any]] = {}
    for field in ("url", "events", "description", "is_active"):
        if field in data:
            value = list(dict.fromkeys(data[field])) if field == "events" else data[field]
            if getattr(endpoint, field) != value:
                changes[field] = [getattr(endpoint, field), value]
                setattr(endpoint, field, value)
    if changes.get("is_active") == [False, True]:  # re-enabled by hand: a fresh start
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
    if changes:
        endpoint.save()
        audit_record(actor=actor, action="webhook.updated", obj=endpoint, object_repr=_repr(endpoint), changes=changes)
    return endpoint


@transaction.atomic
def webhook_delete(*, actor: Any, endpoint_id: int) -> None:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    audit_record(
        actor=actor,
        action="webhook.deleted",
        obj=endpoint,
        object_repr=_repr(endpoint),
        changes={"url": [endpoint.url, None]},
    )
    endpoint.delete()


@transaction.atomic
def webhook_rotate_secret(*, actor: Any, endpoint_id: int, now: datetime.datetime | None = None) -> WebhookEndpoint:
    """A new signing secret; the current one keeps signing too (a second signature) for 24 hours."""
    now = now or timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + SECRET_OVERLAP
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    audit_record(
        actor=actor,
        action="webhook.secret_rotated",
        obj=endpoint,
        object_repr=_repr(endpoint),
        changes={"previous_secret_expires_at": [None, endpoint.previous_secret_expires_at.isoformat()]},
    )
    return endpoint


@transaction.atomic
def webhook_ping(*, actor: Any, endpoint_id: int, now: datetime.datetime | None = None) -> Notification:
    """Queue a ``webhook.ping`` to the endpoint (also an inactive one: a ping tests it before it is enabled)."""
    now = now or timezone.now()
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    event = Event(
        id=f"evt_ping_{uuid.uuid4().hex}",
        type=PING,
        timestamp=now.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
        data={"endpoint": endpoint.pk, "description": endpoint.description},
    )
    [pk] = _store([_row(endpoint, event, dedupe=False)])
    audit_record(actor=actor, action="webhook.pinged", obj=endpoint, object_repr=_repr(endpoint), changes={})
    return Notification.objects.get(pk=pk)
