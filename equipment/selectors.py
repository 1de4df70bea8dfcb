"""Reads of the equipment catalogue. Views never touch ``Equipment.objects`` directly."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User

from .models import Equipment


def equipment_list_for(*, user: Any) -> QuerySet[Equipment]:
    """The equipment ``user`` may see, by name then id: every role sees the whole catalogue (inactive items
    included, since they still appear on older tasks); a user without a known role sees nothing."""
    if getattr(user, "role", None) not in User.Role.values:
        return Equipment.objects.none()
    return Equipment.objects.order_by("name", "id")
