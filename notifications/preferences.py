"""Per-user channel preferences: which kinds of message a user gets by email, Web Push and SMS.

No row means the contract's defaults (every kind by email; ``job_assigned`` and ``daily_reminder`` by push; none by
SMS). ``channels_for`` reads the preferences of many users in one query; the outbox (``services._store``) asks it
which channels each message goes to. ``/api/auth/me/notifications/`` reads and writes them (``preferences_update``,
audited).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction

from audit.services import audit_record

from .models import Notification, NotificationPreference

Kind = Notification.Kind
Channel = Notification.Channel

#: The kinds a user can choose per channel (the webhook events are not messages to users).
KINDS: tuple[str, ...] = tuple(k for k in Kind.values if k != Kind.WEBHOOK_EVENT)
USER_CHANNELS: tuple[str, ...] = (Channel.EMAIL, Channel.PUSH, Channel.SMS)
DEFAULTS: dict[str, list[str]] = {
    Channel.EMAIL: list(KINDS),
    Channel.PUSH: [Kind.JOB_ASSIGNED, Kind.DAILY_REMINDER],
    Channel.SMS: [],
}


def _ordered(kinds: Iterable[str]) -> list[str]:
    chosen = set(kinds)
    return [k for k in KINDS if k in chosen]


def preferences_of(user_id: int) -> dict[str, list[str]]:
    row = NotificationPreference.objects.filter(user_id=user_id).first()
    if row is None:
        return {channel: list(kinds) for channel, kinds in DEFAULTS.items()}
    return {channel: _ordered(getattr(row, channel)) for channel in USER_CHANNELS}


def channels_for(user_ids: Sequence[int]) -> dict[int, dict[str, frozenset[str]]]:
    """Each user's kinds per channel (defaults for users without a row); one query."""
    stored = {row.user_id: row for row in NotificationPreference.objects.filter(user_id__in=list(set(user_ids)))}
    result: dict[int, dict[str, frozenset[str]]] = {}
    for user_id in user_ids:
        row = stored.get(user_id)
        result[user_id] = {
            channel: frozenset(getattr(row, channel) if row is not None else DEFAULTS[channel])
            for channel in USER_CHANNELS
        }
    return result


@transaction.atomic
def preferences_update(*, user: Any, data: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Set the given channels' kinds for ``user`` (the others keep their current value); audited as
    ``notifications.preferences_changed`` with the before and after of each changed channel."""
    before = preferences_of(user.pk)
    after = {channel: _ordered(data[channel]) if channel in data else before[channel] for channel in USER_CHANNELS}
    changes = {
        channel: [before[channel], after[channel]] for channel in USER_CHANNELS if before[channel] != after[channel]
    }
    if changes:
        NotificationPreference.objects.update_or_create(user_id=user.pk, defaults=after)
        audit_record(
            actor=user,
            action="notifications.preferences_changed",
            obj=user,
            changes=changes,
        )
    return after
