"""Reads of users, scoped by role. Views never touch ``User.objects`` directly."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from jobops.roles import Role, is_admin

from .models import User

#: What a sales agent may see of a technician (for assignment): nothing personal beyond the name.
PUBLIC_FIELDS = ("id", "username", "first_name", "last_name")


def user_list_for(*, user: Any) -> QuerySet[User]:
    """The users ``user`` may see, ordered by id: an admin sees everyone; a sales agent sees only active technicians,
    and only their public fields are loaded; any other role (technicians included) sees nothing, so scoping fails
    closed even if a view forgot its role map."""
    if is_admin(user):
        return User.objects.order_by("id")
    if getattr(user, "role", None) == Role.SALES_AGENT:
        return User.objects.filter(role=Role.TECHNICIAN, is_active=True).only(*PUBLIC_FIELDS).order_by("id")
    return User.objects.none()


def user_get_self(*, user: Any) -> User:
    """A fresh copy of the caller's own row (the profile at ``/api/auth/me/``)."""
    return User.objects.get(pk=user.pk)


def technician_exists(*, technician_id: int) -> bool:
    """Whether ``technician_id`` names a user with the technician role (active or not: an admin may look back at a
    former technician's dashboard). For admins only: the caller checks the role first."""
    return User.objects.filter(pk=technician_id, role=Role.TECHNICIAN).exists()


def user_states(*, ids: Iterable[int]) -> dict[int, tuple[bool, str, datetime.datetime | None]]:
    """``{id: (is_active, role, tokens_valid_after)}`` of the users in ``ids`` (a missing id: the row is gone), in one
    query: the live stream re-reads the rows of its connected users with it, so a deactivation, a role change or a
    "sign out everywhere" takes effect while a WebSocket stays open."""
    rows = User.objects.filter(pk__in=list(ids)).values_list("id", "is_active", "role", "tokens_valid_after")
    return {pk: (active, role, valid_after) for pk, active, role, valid_after in rows}
