from django.conf import settings
from django.db import models


class Notification(models.Model):
    """The email outbox: a row is written in the same transaction as the change that asks for the email.

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

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
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
        indexes = [models.Index(fields=["status", "created_at"], name="notification_status_idx")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"
