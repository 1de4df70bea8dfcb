"""Reads of the outbox (messages to users; webhook deliveries) and of the webhook endpoints, scoped by role: admins
see every row, everyone else nothing."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobops.roles import is_admin

from .models import Notification, PushSubscription, WebhookEndpoint


def notification_list_for(*, user: Any) -> QuerySet[Notification]:
    """The outbox, newest first, for admins (``jobops.roles.is_admin``); an empty queryset for anyone else (scoping
    fails closed).

    The API shape needs no joins (``job`` is rendered as its id), so a page is one query plus the paginator's
    count whatever the page size.
    """
    if not is_admin(user):
        return Notification.objects.none()
    return Notification.objects.exclude(channel=Notification.Channel.WEBHOOK).order_by("-created_at", "-id")


def webhook_endpoint_list_for(*, user: Any) -> QuerySet[WebhookEndpoint]:
    """Webhook endpoints, oldest first, for admins; nothing for anyone else."""
    if not is_admin(user):
        return WebhookEndpoint.objects.none()
    return WebhookEndpoint.objects.order_by("id")


def webhook_delivery_list_for(*, user: Any) -> QuerySet[Notification]:
    """Webhook deliveries (outbox rows of the webhook channel), newest first, for admins; nothing for anyone else."""
    if not is_admin(user):
        return Notification.objects.none()
    return Notification.objects.filter(channel=Notification.Channel.WEBHOOK).order_by("-created_at", "-id")


def push_subscription_list_for(*, user: Any) -> QuerySet[PushSubscription]:
    """The caller's own push subscriptions (every role subscribes for itself; nobody sees another's)."""
    if not getattr(user, "is_authenticated", False):
        return PushSubscription.objects.none()
    return PushSubscription.objects.filter(user_id=user.pk).order_by("id")
