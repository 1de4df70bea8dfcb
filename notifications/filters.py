"""Query parameters of the outbox list; an unknown choice or a bad id is a 400, never silently ignored."""

from __future__ import annotations

import django_filters

from jobops.filters import IdFilter

from .models import Notification


class NotificationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Notification.Status.choices)
    channel = django_filters.ChoiceFilter(
        choices=[c for c in Notification.Channel.choices if c[0] != Notification.Channel.WEBHOOK]
    )
    kind = django_filters.ChoiceFilter(choices=Notification.Kind.choices)
    job = IdFilter(field_name="job_id")

    class Meta:
        model = Notification
        fields: list[str] = []
