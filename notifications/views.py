"""Outbox API (admin only): list and read the email outbox, re-queue a failed email."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobops.api import ScopedViewSet
from jobops.roles import ADMIN_ONLY

from . import delivery, selectors
from .filters import NotificationFilter
from .serializers import NotificationReadSerializer


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
