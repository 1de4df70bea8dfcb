"""Shape of outbox rows in the API (read-only; the only write is the retry action, which takes no body)."""

from __future__ import annotations

from rest_framework import serializers

from jobops.fields import ReadModelSerializer

from .models import Notification


class NotificationReadSerializer(ReadModelSerializer):
    job = serializers.IntegerField(
        source="job_id", read_only=True, allow_null=True, help_text="The job the email is about, if any."
    )

    class Meta:
        model = Notification
        fields = ("id", "kind", "recipient", "job", "status", "attempts", "last_error", "created_at", "sent_at")
        read_only_fields = fields
