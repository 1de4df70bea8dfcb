"""The rules of attachments that more than one module reads, each written once."""

from __future__ import annotations

import datetime

from jobs.models import Attachment, Job

#: The uploader may delete their own attachment this long after uploading it (while the job is open).
UPLOADER_DELETE_WINDOW = datetime.timedelta(hours=24)


def has_signature(job: Job) -> bool:
    """The job has a signature attachment on one of its tasks (what ``requires_signature`` asks for). A photo is not
    a signature, whatever it shows."""
    return Attachment.objects.filter(job_id=job.pk, kind=Attachment.Kind.SIGNATURE).exists()


def within_uploader_window(attachment: Attachment, *, now: datetime.datetime) -> bool:
    return now - attachment.uploaded_at <= UPLOADER_DELETE_WINDOW
