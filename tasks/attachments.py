"""Attachment tasks: the thumbnail after an upload, the removal of stored objects after a delete, the daily sweep.

Thin adapters around ``jobs.attachments.services`` and ``jobs.attachments.cleanup``; each takes ids or keys and is
idempotent, so acks_late redelivery after a worker crash makes nothing twice. Storage errors (network, S3 5xx) are
retried here with backoff.
"""

from __future__ import annotations

from celery import shared_task

from jobops.context import audit_context
from jobs.attachments.cleanup import remove_objects
from jobs.attachments.services import attachment_make_thumbnail, attachments_requeue_thumbnails, attachments_sweep

try:  # botocore is there when django-storages' S3 backend is (S3_BUCKET); the file system raises OSError
    from botocore.exceptions import BotoCoreError, ClientError

    STORAGE_ERRORS: tuple[type[Exception], ...] = (OSError, BotoCoreError, ClientError)
except ImportError:  # pragma: no cover - boto3 is in requirements.txt
    STORAGE_ERRORS = (OSError,)


@shared_task(
    name="jobs.make_attachment_thumbnail",  # published by name from jobs.attachments.services (THUMBNAIL_TASK)
    acks_late=True,
    autoretry_for=STORAGE_ERRORS,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def make_attachment_thumbnail(attachment_id: int) -> str:
    """Make the 320 px thumbnail of the attachment ``attachment_id`` unless it has one (or is gone)."""
    with audit_context(source="task", system="jobs.make_attachment_thumbnail"):
        return attachment_make_thumbnail(attachment_id=attachment_id)


@shared_task(
    name="jobs.remove_attachment_objects",  # published by name from jobs.attachments.cleanup (REMOVE_TASK)
    acks_late=True,
    autoretry_for=STORAGE_ERRORS,
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=12,
)
def remove_attachment_objects(keys: list[str]) -> int:
    """Delete the stored objects ``keys`` of deleted attachments (a missing one is fine). After the last retry the
    daily sweep still finds them."""
    return remove_objects(keys)


@shared_task(name="jobs.sweep_attachment_objects", acks_late=True)
def sweep_attachment_objects() -> dict[str, int]:
    """Beat, daily: remove stored objects without a row (past the grace period) and report rows without an
    object (``jobs.attachments.services.attachments_sweep``)."""
    with audit_context(source="task", system="jobs.sweep_attachment_objects"):
        report = attachments_sweep()
    return {
        "objects": report.objects,
        "orphans_removed": len(report.orphans_removed),
        "orphans_kept": len(report.orphans_kept),
        "missing": len(report.missing),
    }


@shared_task(name="jobs.requeue_attachment_thumbnails", acks_late=True)
def requeue_attachment_thumbnails() -> int:
    """Beat, every 10 minutes: queue the thumbnails that were never made (the broker was down at the upload's
    commit). Returns how many were queued."""
    return len(attachments_requeue_thumbnails())
