from django.conf import settings
from django.db import models
from django.db.models import Q

from jobops.models import TimestampedModel


class Job(TimestampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    client_name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM, db_index=True)
    scheduled_date = models.DateField(db_index=True)
    overdue = models.BooleanField(default=False, db_index=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_jobs",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_jobs")
    completed_at = models.DateTimeField(null=True, blank=True)
    #: The row version behind the job's ETag: moved by ``jobs.services.touch_jobs`` (only), inside the locked
    #: transaction of every write to the job or to any of its tasks. A database default too, for rows written in
    #: bulk outside the ORM (bench/datagen.py COPY).
    version = models.PositiveBigIntegerField(default=1, db_default=1, editable=False)
    # Completing the job needs a signature attachment on one of its tasks (jobs.attachments.rules).
    requires_signature = models.BooleanField(default=False)

    class Meta:
        ordering = ["scheduled_date", "id"]
        indexes = [
            models.Index(fields=["assigned_to", "scheduled_date", "id"], name="job_assignee_sched_idx"),
            models.Index(fields=["created_by", "scheduled_date", "id"], name="job_creator_sched_idx"),
            models.Index(fields=["scheduled_date", "id"], name="job_sched_id_idx"),
            # The daily sweep and the day view look for open jobs by date (jobs.rules.JOB_OPEN_STATUSES: a migration
            # and a constraint need literal values).
            models.Index(
                fields=["scheduled_date"],
                name="job_open_sched_idx",
                condition=Q(status__in=["pending", "in_progress"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="completed") | Q(completed_at__isnull=False),
                name="job_completed_has_completed_at",
            ),
            models.CheckConstraint(
                condition=Q(overdue=False) | Q(status__in=["pending", "in_progress"]),
                name="job_overdue_only_when_open",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class JobTask(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks")
    order = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    required_equipment = models.ManyToManyField("equipment.Equipment", blank=True, related_name="tasks")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_id", "order"]
        constraints = [
            models.UniqueConstraint(fields=["job", "order"], name="task_order_unique_per_job"),
            models.CheckConstraint(
                condition=~Q(status="completed") | (Q(completed_at__isnull=False) & Q(started_at__isnull=False)),
                name="task_completed_has_timestamps",
            ),
            models.CheckConstraint(
                condition=~Q(status="in_progress") | Q(started_at__isnull=False),
                name="task_in_progress_has_started_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.title}"


class Attachment(models.Model):
    """A photo, signature or document on a task (``jobs.attachments``): the proof that the work was done.

    The bytes live in ``STORAGES["default"]`` (S3 or the file system) under ``key``, a random name that reveals
    nothing about the job or client; ``thumbnail_key`` is filled in by a background task (empty until then, and for
    documents). ``job`` is the task's job, kept on the row so a job's attachments are read (and scoped) without a
    join; a task never changes job. ``sha256`` and ``size`` describe the stored bytes (images are re-encoded
    without their metadata, so they differ from the upload's)."""

    class Kind(models.TextChoices):
        PHOTO = "photo", "Photo"
        SIGNATURE = "signature", "Signature"
        DOCUMENT = "document", "Document"

    task = models.ForeignKey(JobTask, on_delete=models.CASCADE, related_name="attachments")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PHOTO)
    caption = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=40)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    uploaded_at = models.DateTimeField()
    key = models.CharField(max_length=200, unique=True)
    thumbnail_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["uploaded_at", "id"]
        indexes = [
            models.Index(fields=["task", "uploaded_at", "id"], name="attachment_task_idx"),
            models.Index(fields=["job", "kind"], name="attachment_job_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class Change(models.Model):
    """One row of the change feed (``jobs.feed``): an object of a job changed, for one audience.

    Written by the services in the transaction of the change (so it commits with the change and its audit entry, or
    not at all), one row per object and audience: ``audience`` null is the admins' copy, otherwise a user who could
    see the object before or after the change (the job's creator, its assignee before and after). A reader reads
    its own audience's rows and renders each object as it is *now*, through its scope: upserted when in scope,
    removed when not (or gone). ``txid`` is the writing transaction's id on PostgreSQL (0 on SQLite, whose writers
    are serialised): rows are read in ``(txid, id)`` order, only below the oldest transaction still running, so a
    transaction that commits late cannot land behind a reader's cursor. Not a foreign key to the job: a deleted
    job's rows must outlive it."""

    class ObjectType(models.TextChoices):
        JOB = "job", "Job"
        TASK = "task", "Task"
        ATTACHMENT = "attachment", "Attachment"

    txid = models.BigIntegerField()
    at = models.DateTimeField()
    audience = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    object_type = models.CharField(max_length=10, choices=ObjectType.choices)
    object_id = models.BigIntegerField()
    job_id = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["audience", "txid", "id"], name="change_feed_idx"),
            models.Index(fields=["at"], name="change_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type} {self.object_id} @ {self.txid}.{self.pk}"
