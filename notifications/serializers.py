"""Shape of outbox rows in the API (read-only; the only write is the retry action, which takes no body)."""

from __future__ import annotations

from typing import Literal

from rest_framework import serializers

from jobops.fields import ReadModelSerializer, StrictBooleanField, StrictCharField, UTCDateTimeField

from . import preferences, push, webhooks
from .models import Notification, PushSubscription, WebhookEndpoint

#: The delivery log's words for the outbox statuses.
DELIVERY_STATUS: dict[str, Literal["pending", "delivered", "failed"]] = {
    Notification.Status.PENDING: "pending",
    Notification.Status.SENT: "delivered",
    Notification.Status.FAILED: "failed",
}


class NotificationReadSerializer(ReadModelSerializer):
    job = serializers.IntegerField(
        source="job_id", read_only=True, allow_null=True, help_text="The job the email is about, if any."
    )

    class Meta:
        model = Notification
        fields = (
            "id",
            "channel",
            "kind",
            "recipient",
            "job",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at",
        )
        read_only_fields = fields


# --- webhooks ------------------------------------------------------------------------------------------------------


class WebhookEndpointReadSerializer(ReadModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ("id", "url", "events", "is_active", "description", "created_at", "disabled_reason")
        read_only_fields = fields


class WebhookEndpointSecretSerializer(WebhookEndpointReadSerializer):
    """The endpoint with its signing secret: only in the answers to create and rotate-secret."""

    secret = serializers.CharField(read_only=True, help_text="`whsec_` + base64. Shown once: store it now.")

    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (*WebhookEndpointReadSerializer.Meta.fields, "secret")
        read_only_fields = fields


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000, validators=[webhooks.validate_url])
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(webhooks.SUBSCRIBABLE)),
        allow_empty=False,
        max_length=len(webhooks.SUBSCRIBABLE),
        help_text="Event types (`job.upserted`, `task.removed` ...), a whole object (`task.*`) or everything (`*`).",
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=200)
    is_active = StrictBooleanField(required=False)


class WebhookDeliveryReadSerializer(ReadModelSerializer):
    type = serializers.CharField(source="event_type", read_only=True)
    status = serializers.SerializerMethodField()
    delivered_at = UTCDateTimeField(source="sent_at", read_only=True, allow_null=True)

    class Meta:
        model = Notification
        fields = (
            "id",
            "event_id",
            "type",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
        )
        read_only_fields = fields

    def get_status(self, obj: Notification) -> Literal["pending", "delivered", "failed"]:
        return DELIVERY_STATUS[obj.status]


# --- preferences and push subscriptions ----------------------------------------------------------------------------


def _kinds_field(channel: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=list(preferences.KINDS)),
        required=False,
        max_length=len(preferences.KINDS),
        help_text=f"The kinds of message you get by {channel}.",
    )


class NotificationPreferencesSerializer(serializers.Serializer):
    """``{"email": [kinds], "push": [kinds], "sms": [kinds]}``; a PATCH may send any of the three."""

    email = _kinds_field("email")
    push = _kinds_field("Web Push")
    sms = _kinds_field("SMS")


class PushSubscriptionKeysSerializer(serializers.Serializer):
    p256dh = StrictCharField(max_length=200, help_text="The browser's P-256 public key, base64url.")
    auth = StrictCharField(max_length=100, help_text="The browser's auth secret, base64url.")


class PushSubscriptionWriteSerializer(serializers.Serializer):
    """The browser's ``PushSubscription.toJSON()`` (``expirationTime`` is accepted and ignored)."""

    endpoint = serializers.URLField(max_length=2000, validators=[push.validate_endpoint])
    keys = PushSubscriptionKeysSerializer()
    expirationTime = serializers.IntegerField(required=False, allow_null=True)  # noqa: N815 - the browser's name


class PushSubscriptionReadSerializer(ReadModelSerializer):
    class Meta:
        model = PushSubscription
        fields = ("id", "endpoint", "created_at")
        read_only_fields = fields
