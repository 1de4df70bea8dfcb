from django.db import models


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class IdempotencyKey(models.Model):
    """A write's stored response, kept for its ``Idempotency-Key`` (``jobops.idempotency``).

    Written in the same transaction as the write it answers, so a response is stored exactly when its change
    committed. ``user_id`` is a plain id (no foreign key: the platform layer knows no app's models, and the row is
    purged after ``IDEMPOTENCY_TTL_HOURS`` anyway).
    """

    user_id = models.BigIntegerField()
    key = models.CharField(max_length=255)
    #: sha256 of the method, the path with its query string and the body, as hex.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.BinaryField()
    #: The response headers a replay repeats (Content-Type, ETag, Location).
    headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_id", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
