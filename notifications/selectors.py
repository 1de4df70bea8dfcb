"""Reads of the email outbox, scoped by role: admins see every row, everyone else nothing."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobops.roles import is_admin

from .models import Notification


def notification_list_for(*, user: Any) -> QuerySet[Notification]:
    """The outbox, newest first, for admins (``jobops.roles.is_admin``); an empty queryset for anyone else (scoping
    fails closed).

    The API shape needs no joins (``job`` is rendered as its id), so a page is one query plus the paginator's
    count whatever the page size.
    """
    if not is_admin(user):
        return Notification.objects.none()
    return Notification.objects.order_by("-created_at", "-id")
