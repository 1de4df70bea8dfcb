"""Web Push: one outbox row per (user, message) is sent to each of the user's subscriptions (browsers, devices).

The payload is encrypted for the subscription (RFC 8291 ``aes128gcm``) and the request signed with VAPID (RFC 8292)
by ``pywebpush``, with ``VAPID_PRIVATE_KEY`` and ``VAPID_SUBJECT``. A 404 or 410 from the push service means the
subscription is gone: it is deleted. Other failures (network, 429, 5xx) are transient and the row is retried as
an email is; a row whose user has no subscription left is done (nothing to send).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from pywebpush import WebPushException, webpush
from rest_framework import serializers

from . import netguard
from .models import Notification, PushSubscription

logger = logging.getLogger(__name__)

#: The push service's answers that retire a subscription.
GONE = {404, 410}
TIMEOUT_SECONDS = 10
TTL_SECONDS = 24 * 3600


class PushFailed(OSError):
    """Transient: at least one subscription could not be reached and none took the message (retried)."""


def validate_endpoint(url: str) -> None:
    """For write serializers: a push service is https on a public address (``WEBHOOK_ALLOWED_HOSTS`` lifts both, for
    a local stand-in): the server POSTs to this URL, so it gets the webhooks' SSRF check."""
    try:
        target = netguard.resolve(url)
    except netguard.UnsafeURL as exc:
        raise serializers.ValidationError(str(exc)) from None
    if target.scheme != "https" and target.host not in netguard.allowed_hosts():
        raise serializers.ValidationError("A push service endpoint is an https URL.")


def enabled() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY and settings.VAPID_SUBJECT)


def payload_of(notification: Notification) -> str:
    return json.dumps(
        {
            "id": notification.pk,
            "kind": notification.kind,
            "title": notification.subject,
            "job": notification.job_id,
        }
    )


@dataclass(frozen=True)
class PushResult:
    delivered: int
    removed: int


def push_send(notification: Notification) -> PushResult:
    """Send the row to every subscription of its user. Raises ``PushFailed`` when none took it and one failed
    transiently (the caller retries the row); subscriptions answered 404/410 are deleted."""
    user_id = notification.recipient_user_id
    subscriptions = list(PushSubscription.objects.filter(user_id=user_id).order_by("pk")) if user_id else []
    data = payload_of(notification)
    delivered, gone, errors = 0, [], []
    for subscription in subscriptions:
        try:  # checked again at send time, as webhooks are (the subscription's host may resolve elsewhere now)
            netguard.resolve(subscription.endpoint)
        except netguard.UnsafeURL as exc:
            logger.warning("push endpoint refused; subscription removed", extra={"reason": str(exc)})
            gone.append(subscription.pk)
            continue
        info = {"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}}
        try:
            webpush(
                subscription_info=info,
                data=data,
                vapid_private_key=settings.VAPID_PRIVATE_KEY,
                vapid_claims={"sub": settings.VAPID_SUBJECT},
                timeout=TIMEOUT_SECONDS,
                ttl=TTL_SECONDS,
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status_code", None)
            if status in GONE:
                gone.append(subscription.pk)
            else:
                errors.append(f"push service answered {status}: {exc}"[:500])
        except (requests.RequestException, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:500])
        else:
            delivered += 1
    if gone:
        PushSubscription.objects.filter(pk__in=gone).delete()
        logger.info("removed expired push subscriptions", extra={"count": len(gone)})
    if errors and not delivered:
        raise PushFailed("; ".join(errors)[:2000])
    return PushResult(delivered, len(gone))


@transaction.atomic
def push_subscribe(*, user: Any, endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    """Store the browser's subscription for ``user``; the same endpoint again (a browser re-subscribing, or a device
    passed to another user) replaces the keys and the owner."""
    subscription, _ = PushSubscription.objects.update_or_create(
        endpoint=endpoint, defaults={"user_id": user.pk, "p256dh": p256dh, "auth": auth}
    )
    return subscription


@transaction.atomic
def push_unsubscribe(*, user: Any, subscription_id: int) -> None:
    PushSubscription.objects.filter(pk=subscription_id, user_id=user.pk).delete()
