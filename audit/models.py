from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditEntry(models.Model):
    """One recorded change. Append-only: written only by ``audit.services``, never updated or deleted.

    ``actor_id`` and ``job_id`` are plain ids without a database foreign key, so that deleting a user or a job
    never touches audit rows; ``actor_label`` keeps the actor's username at the time.
    """

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        TASK = "task", "Background task"
        COMMAND = "command", "Management command"

    at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=32)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["-at", "-id"], name="audit_at_id_idx"),
            models.Index(fields=["job_id", "-at", "-id"], name="audit_job_at_idx"),
            models.Index(fields=["object_type", "object_id", "-at"], name="audit_object_idx"),
            models.Index(fields=["action", "-at"], name="audit_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"
