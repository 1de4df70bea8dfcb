"""Outbox API (admin only): list and read the outbox, re-queue a failed message; webhook endpoints and deliveries."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_user
from jobops.api import ScopedViewSet
from jobops.roles import ADMIN_ONLY, ALL_ROLES

from . import delivery, preferences, push, selectors, webhooks
from .filters import NotificationFilter
from .serializers import (
    NotificationPreferencesSerializer,
    NotificationReadSerializer,
    PushSubscriptionReadSerializer,
    PushSubscriptionWriteSerializer,
    WebhookDeliveryReadSerializer,
    WebhookEndpointReadSerializer,
    WebhookEndpointSecretSerializer,
    WebhookEndpointWriteSerializer,
)


@extend_schema_view(
    list=extend_schema(
        summary="List the email outbox, newest first (admin)",
        description="Every email JobOps queued, with its delivery status. Filters: `status`, `kind`, `job`.",
        tags=["notifications"],
    ),
    retrieve=extend_schema(summary="Get one outbox row (admin)", tags=["notifications"]),
)
class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The email outbox. Read-only except ``retry``; admins only (every other role gets 403)."""

    selector = selectors.notification_list_for
    filterset_class = NotificationFilter
    read_serializer_class = NotificationReadSerializer
    allowed_roles = {"list": ADMIN_ONLY, "retrieve": ADMIN_ONLY, "retry": ADMIN_ONLY}

    @extend_schema(
        summary="Re-queue a failed email (admin)",
        description=(
            "Puts a `failed` row back to `pending` with its attempts reset and enqueues it. Any other status is a "
            "409 (`not_failed`)."
        ),
        tags=["notifications"],
        request=None,
        responses={200: NotificationReadSerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        notification = self.get_object()
        notification = delivery.notification_retry(actor=request.user, notification_id=notification.pk)
        return self.render(notification)


@extend_schema_view(
    list=extend_schema(summary="List webhook endpoints (admin)", tags=["webhooks"]),
    retrieve=extend_schema(summary="Get a webhook endpoint (admin)", tags=["webhooks"]),
    destroy=extend_schema(summary="Delete a webhook endpoint and its delivery log (admin)", tags=["webhooks"]),
)
class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Webhook endpoints (admins only). The signing secret is in the answers to create and rotate-secret only."""

    selector = selectors.webhook_endpoint_list_for
    read_serializer_class = WebhookEndpointReadSerializer
    write_serializer_classes = {
        "create": WebhookEndpointWriteSerializer,
        "update": WebhookEndpointWriteSerializer,
        "partial_update": WebhookEndpointWriteSerializer,
    }
    allowed_roles = dict.fromkeys(
        (
            "list",
            "retrieve",
            "create",
            "update",
            "partial_update",
            "destroy",
            "rotate_secret",
            "ping",
            "deliveries",
        ),
        ADMIN_ONLY,
    )

    @extend_schema(
        summary="Create a webhook endpoint (admin)",
        description=(
            "The URL's host must resolve to public addresses only (unless it is in `WEBHOOK_ALLOWED_HOSTS`): a "
            "loopback, private, link-local, multicast or reserved address is a 400. The answer carries the signing "
            "`secret`, shown this once."
        ),
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointSecretSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = webhooks.webhook_create(actor=request.user, data=self.validate_input())
        return Response(WebhookEndpointSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a webhook endpoint (admin)",
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer,
        responses={200: WebhookEndpointReadSerializer},
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        data = self.validate_input(partial=kwargs.get("partial", False))
        endpoint = webhooks.webhook_update(actor=request.user, endpoint_id=endpoint.pk, data=data)
        return self.render(endpoint)

    @extend_schema(
        summary="Update a webhook endpoint (admin)",
        description="Setting `is_active` back to true after an automatic disable clears `disabled_reason`.",
        tags=["webhooks"],
        request=WebhookEndpointWriteSerializer,
        responses={200: WebhookEndpointReadSerializer},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        webhooks.webhook_delete(actor=request.user, endpoint_id=endpoint.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate the signing secret (admin)",
        description="A new secret, shown once; the previous one keeps signing too (a second signature) for 24 h.",
        tags=["webhooks"],
        request=None,
        responses={200: WebhookEndpointSecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = webhooks.webhook_rotate_secret(actor=request.user, endpoint_id=self.get_object().pk)
        return Response(WebhookEndpointSecretSerializer(endpoint).data)

    @extend_schema(
        summary="Send a webhook.ping (admin)",
        description="Queues a signed `webhook.ping` to the endpoint; its delivery shows in the delivery log.",
        tags=["webhooks"],
        request=None,
        responses={202: WebhookDeliveryReadSerializer},
    )
    @action(detail=True, methods=["post"])
    def ping(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delivery_row = webhooks.webhook_ping(actor=request.user, endpoint_id=self.get_object().pk)
        return Response(WebhookDeliveryReadSerializer(delivery_row).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The endpoint's delivery log, newest first (admin)",
        tags=["webhooks"],
        responses={200: WebhookDeliveryReadSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        queryset = selectors.webhook_delivery_list_for(user=request.user).filter(endpoint_id=endpoint.pk)
        page = self.paginate_queryset(queryset)
        data = WebhookDeliveryReadSerializer(page, many=True).data
        return self.get_paginated_response(data)


class WebhookDeliveryViewSet(ScopedViewSet):
    """One webhook delivery's manual retry (admins only)."""

    selector = selectors.webhook_delivery_list_for
    read_serializer_class = WebhookDeliveryReadSerializer
    allowed_roles = {"retry": ADMIN_ONLY}

    @extend_schema(
        summary="Re-queue a webhook delivery (admin)",
        description=(
            "A `failed` delivery goes back to `pending` with its attempts reset; a `pending` one is tried at once. "
            "The same `webhook-id` is sent again. A delivered one is a 409 (`not_failed`)."
        ),
        tags=["webhooks"],
        request=None,
        responses={200: WebhookDeliveryReadSerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        row = delivery.notification_retry(actor=request.user, notification_id=self.get_object().pk)
        return self.render(row)


class NotificationPreferencesView(APIView):
    """``/api/auth/me/notifications/``: the caller's kinds per channel."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Your notification channels per kind",
        description=(
            "Defaults: every kind by email, `job_assigned` and `daily_reminder` by push, none by SMS. SMS goes to "
            "your `phone` (E.164) when the server has Twilio configured; push to your registered browsers."
        ),
        tags=["auth"],
        responses={200: NotificationPreferencesSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(preferences.preferences_of(request_user(request).pk))

    @extend_schema(
        summary="Change your notification channels",
        description="Send any of `email`, `push`, `sms`: each replaces that channel's list; the others stay.",
        tags=["auth"],
        request=NotificationPreferencesSerializer,
        responses={200: NotificationPreferencesSerializer},
    )
    def patch(self, request: Request) -> Response:
        serializer = NotificationPreferencesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(preferences.preferences_update(user=request_user(request), data=serializer.validated_data))


@extend_schema_view(
    list=extend_schema(summary="Your Web Push subscriptions", tags=["notifications"]),
    destroy=extend_schema(summary="Remove a Web Push subscription", tags=["notifications"]),
)
class PushSubscriptionViewSet(mixins.ListModelMixin, ScopedViewSet):
    """The caller's own Web Push subscriptions (every role)."""

    selector = selectors.push_subscription_list_for
    read_serializer_class = PushSubscriptionReadSerializer
    write_serializer_classes = {"create": PushSubscriptionWriteSerializer}
    allowed_roles = dict.fromkeys(("list", "create", "destroy"), ALL_ROLES)

    @extend_schema(
        summary="Register this browser for Web Push",
        description="The body is the browser's `PushSubscription` JSON. The endpoint must be an https push service.",
        tags=["notifications"],
        request=PushSubscriptionWriteSerializer,
        responses={201: PushSubscriptionReadSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.validate_input()
        subscription = push.push_subscribe(
            user=request.user, endpoint=data["endpoint"], p256dh=data["keys"]["p256dh"], auth=data["keys"]["auth"]
        )
        return self.render(subscription, status_code=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        push.push_unsubscribe(user=request.user, subscription_id=self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
