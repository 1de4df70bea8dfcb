from django.conf import settings
from django.db import models


class WebhookEndpoint(models.Model):
    """A URL that receives signed webhooks (Standard Webhooks 1.0) for the change-feed event types in ``events``.

    ``secret`` (``whsec_`` + base64) signs every delivery; after a rotation ``previous_secret`` signs too until
    ``previous_secret_expires_at``. ``failing_since`` is the start of the current run of failed attempts (cleared by
    a 2xx): an endpoint failing for ``WEBHOOK_DISABLE_AFTER_DAYS`` straight is disabled (``disabled_reason``)."""

    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} -> {self.url}"


class OutboxCursor(models.Model):
    """A durable position in the change feed for a relay that turns feed rows into outbox rows (``jobs.webhooks``):
    everything at or before ``(txid, last_id)`` was relayed. Advanced in the same transaction as the rows it wrote."""

    name = models.CharField(max_length=50, unique=True)
    txid = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.txid}.{self.last_id}"


class PushSubscription(models.Model):
    """A browser's Web Push subscription (its PushSubscription JSON), per user and device (endpoint)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    endpoint = models.URLField(max_length=2000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"push subscription {self.pk} of user {self.user_id}"


class NotificationPreference(models.Model):
    """A user's kinds per channel; no row means the defaults (``notifications.preferences.DEFAULTS``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    email = models.JSONField(default=list)
    push = models.JSONField(default=list)
    sms = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notification preferences of user {self.user_id}"


class Notification(models.Model):
    """The outbox of every channel (``channel``: email, push, SMS, webhook): a row is written in the same transaction
    as the change that asks for the message (webhook rows: in the relay's transaction that moves its feed cursor).

    Delivery (``notifications.delivery.notification_deliver``) locks the row, sends and marks it ``sent``, so a
    redelivered task sends nothing twice. ``dedupe_key`` makes "once per overdue episode" and "one reminder per
    technician per day" database facts rather than hopes.
    """

    class Kind(models.TextChoices):
        JOB_ASSIGNED = "job_assigned", "Job assigned"
        JOB_REASSIGNED = "job_reassigned", "Job reassigned"
        JOB_OVERDUE = "job_overdue", "Job overdue"
        JOB_COMPLETED = "job_completed", "Job completed"
        DAILY_REMINDER = "daily_reminder", "Daily reminder"
        WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint disabled"
        WEBHOOK_EVENT = "webhook_event", "Webhook event"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        PUSH = "push", "Web Push"
        SMS = "sms", "SMS"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    #: Webhook rows: the endpoint, the event (``evt_<feed row id>``, or ``evt_ping_<uuid>``), its type
    #: (``job.upserted`` ...) and the exact body signed and sent on every attempt.
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64, blank=True)
    event_type = models.CharField(max_length=40, blank=True)
    payload = models.TextField(blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    recipient = models.EmailField(max_length=254)
    recipient_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.CharField(max_length=255)
    context = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="notification_status_idx"),
            models.Index(fields=["endpoint", "-created_at", "-id"], name="notification_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"
