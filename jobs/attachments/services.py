"""Every write to attachments: upload, delete, the thumbnail, and the daily sweep of stored objects.

An upload is checked and cleaned first (``content.prepare``, outside any lock: decoding a photo can take a moment),
its bytes are stored next (before the row exists), then the row is created in one transaction that locks the job,
re-checks the rules under the lock, writes the audit entry and the change-feed entry, and queues the thumbnail after
the commit. If that transaction fails or is refused, the object is removed at once; if the process dies between
the store and the commit, the daily sweep removes the object. Deleting an attachment (or its task, or its job)
removes its objects after the commit (``cleanup``). So an object can briefly outlive its row, a row never outlives
its object.

Who may: upload, the admins, the job's assigned technician and its creator, while the job is open (409
``job_frozen`` otherwise); delete, an admin at any time, or the uploader within 24 hours while the job is open.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from accounts.models import User
from audit.services import audit_record, audit_snapshot
from jobops.roles import SALES_AGENT, TECHNICIAN, is_admin
from jobops.tasking import send_task_by_name
from jobs.models import Attachment, Job
from jobs.services import _changed, _ensure_not_frozen, _lock_job, _lock_task

from . import cleanup, content, storage
from .rules import within_uploader_window

logger = logging.getLogger(__name__)

THUMBNAIL_TASK = "jobs.make_attachment_thumbnail"
AUDIT_FIELDS = ("task", "kind", "caption", "content_type", "size", "sha256", "width", "height", "uploaded_by", "key")


#: What each kind of attachment may be (decided from the bytes): a photo is an image, a signature a PNG (drawn on a
#: canvas), a document any accepted type.
ACCEPTED: dict[str, tuple[frozenset[str], str]] = {
    Attachment.Kind.PHOTO: (content.IMAGE_TYPES, "A photo must be a JPEG, PNG or WebP image."),
    Attachment.Kind.SIGNATURE: (frozenset({content.PNG}), "A signature must be a PNG image."),
    Attachment.Kind.DOCUMENT: (content.ALL_TYPES, "A document must be a PDF or a JPEG, PNG or WebP image."),
}


def _ensure_may_attach(actor: Any, job: Job) -> None:
    if is_admin(actor):
        return
    role = getattr(actor, "role", None)
    if role == TECHNICIAN and job.assigned_to_id == actor.pk:
        return
    if role == SALES_AGENT and job.created_by_id == actor.pk:
        return
    raise PermissionDenied("Only an admin, the job's assigned technician or its creator may attach files to it.")


def _repr(attachment: Attachment) -> str:
    return f"{attachment.kind} {attachment.content_type} on task {attachment.task_id}"


def attachment_upload(
    *,
    actor: User,
    task_id: int,
    upload: IO[bytes],
    size: int,
    kind: str = Attachment.Kind.PHOTO,
    caption: str = "",
    now: datetime.datetime | None = None,
) -> Attachment:
    """Attach the file ``upload`` (``size`` bytes) to the task ``task_id`` as ``actor``.

    413 over ``ATTACHMENT_MAX_BYTES``, 415 for a type other than JPEG/PNG/WebP/PDF or not accepted for ``kind``
    (``ACCEPTED``: a photo is an image, a signature a PNG), 400 for
    an image that does not decode or has too many pixels; 403 for someone who may not attach to this job, 409 for a
    completed or cancelled job. The rules are checked before the bytes are stored (so a refused request stores
    nothing) and again under the job lock. Writes ``attachment.uploaded``.
    """
    now = now or timezone.now()
    job = Job.objects.filter(tasks=task_id).first()
    if job is None:
        raise Http404("No JobTask matches the given query.")
    _ensure_may_attach(actor, job)
    _ensure_not_frozen(job)
    allowed, refusal = ACCEPTED[kind]
    prepared = content.prepare(upload, size=size, allowed=allowed, refusal=refusal)
    try:
        key = storage.put(storage.new_key(prepared.extension), prepared.file)
    finally:
        prepared.file.close()
    try:
        return _attachment_create(
            actor=actor, task_id=task_id, key=key, prepared=prepared, kind=kind, caption=caption, now=now
        )
    except BaseException:
        cleanup.remove_now([key])  # the row never committed: its object must not stay
        raise


@transaction.atomic
def _attachment_create(
    *,
    actor: User,
    task_id: int,
    key: str,
    prepared: content.Prepared,
    kind: str,
    caption: str,
    now: datetime.datetime,
) -> Attachment:
    job, task = _lock_task(task_id)
    _ensure_may_attach(actor, job)
    _ensure_not_frozen(job)
    attachment = Attachment(
        task=task,
        job=job,
        kind=kind,
        caption=caption,
        content_type=prepared.content_type,
        size=prepared.size,
        sha256=prepared.sha256,
        width=prepared.width,
        height=prepared.height,
        uploaded_by=actor,
        uploaded_at=now,
        key=key,
    )
    attachment.full_clean(exclude=["task", "job", "uploaded_by"], validate_unique=False, validate_constraints=False)
    attachment.save(force_insert=True)
    audit_record(
        actor=actor,
        action="attachment.uploaded",
        obj=attachment,
        object_repr=_repr(attachment),
        job_id=job.pk,
        changes={
            name: [None, value]
            for name, value in audit_snapshot(attachment, AUDIT_FIELDS).items()
            if value not in (None, "")
        },
    )
    _changed(job, attachments=[attachment.pk])
    if prepared.content_type in content.IMAGE_TYPES:
        attachment_id = attachment.pk
        transaction.on_commit(lambda: send_task_by_name(THUMBNAIL_TASK, [attachment_id]), robust=True)
    return attachment


@transaction.atomic
def attachment_delete(*, actor: User, attachment_id: int, now: datetime.datetime | None = None) -> None:
    """Delete an attachment: an admin at any time; its uploader within 24 hours of the upload while the job is open
    (409 ``job_frozen`` on a completed or cancelled job, 403 after 24 hours); anyone else 403. The row goes now,
    its objects after the commit. Writes ``attachment.deleted``."""
    now = now or timezone.now()
    job_id = Attachment.objects.filter(pk=attachment_id).values_list("job_id", flat=True).first()
    if job_id is None:
        raise Http404("No Attachment matches the given query.")
    job = _lock_job(job_id)
    attachment = Attachment.objects.select_for_update(no_key=True).filter(pk=attachment_id, job_id=job.pk).first()
    if attachment is None:  # deleted meanwhile
        raise Http404("No Attachment matches the given query.")
    if not is_admin(actor):
        if attachment.uploaded_by_id != actor.pk:
            raise PermissionDenied("Only its uploader or an admin may delete an attachment.")
        _ensure_not_frozen(job)
        if not within_uploader_window(attachment, now=now):
            raise PermissionDenied("The uploader may delete an attachment only within 24 hours; ask an admin.")
    audit_record(
        actor=actor,
        action="attachment.deleted",
        obj=attachment,
        object_repr=_repr(attachment),
        job_id=job.pk,
        changes={name: [value, None] for name, value in audit_snapshot(attachment, AUDIT_FIELDS).items()},
    )
    _changed(job, attachments=[attachment.pk])
    keys = [attachment.key, attachment.thumbnail_key]
    attachment.delete()
    cleanup.remove_after_commit(keys)


def attachment_make_thumbnail(*, attachment_id: int) -> str:
    """Make the thumbnail of an image attachment (the background task; idempotent). Its key is derived from the
    attachment's, so a redelivered task finds the object already stored and makes nothing twice; the row is updated
    under the job lock, and a thumbnail whose attachment was deleted meanwhile is removed. Returns what happened."""
    row = Attachment.objects.filter(pk=attachment_id).values_list("job_id", "key", "content_type").first()
    if row is None:
        return "gone"
    job_id, key, content_type = row
    if content_type not in content.IMAGE_TYPES:
        return "not an image"
    if Attachment.objects.filter(pk=attachment_id).exclude(thumbnail_key="").exists():
        return "exists"
    with storage.open_object(key) as original:
        data, thumb_type = content.thumbnail(original, content_type)
    thumb_key = storage.thumbnail_key(key, content.EXTENSIONS[thumb_type])
    try:
        if not storage.exists(thumb_key):
            thumb_key = storage.put(thumb_key, data)
    finally:
        data.close()
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
        attachment = Attachment.objects.select_for_update(no_key=True).filter(pk=attachment_id).first()
        if job is None or attachment is None:
            cleanup.remove_after_commit([thumb_key])
            return "gone"
        if attachment.thumbnail_key:
            return "exists"
        attachment.thumbnail_key = thumb_key
        attachment.save(update_fields=["thumbnail_key"])
        _changed(job, attachments=[attachment.pk])
    return "made"


def attachments_requeue_thumbnails(*, now: datetime.datetime | None = None, limit: int = 500) -> list[int]:
    """Queue the thumbnail task again for images still without one a few minutes after their upload (the broker was
    down at the commit, or the task failed for good); beat runs it every 10 minutes. Harmless when a task is already
    queued: making a thumbnail is idempotent. Returns the ids queued (at most ``limit``, oldest first)."""
    cutoff = (now or timezone.now()) - datetime.timedelta(minutes=5)
    ids = list(
        Attachment.objects.filter(thumbnail_key="", content_type__in=content.IMAGE_TYPES, uploaded_at__lt=cutoff)
        .order_by("uploaded_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for attachment_id in ids:
        send_task_by_name(THUMBNAIL_TASK, [attachment_id])
    return ids


@dataclass(frozen=True)
class SweepReport:
    objects: int
    orphans_removed: list[str]
    orphans_kept: list[str]  # too recent: an upload may still be committing
    missing: list[int]  # rows whose object is not in storage


def attachments_sweep(*, now: datetime.datetime | None = None) -> SweepReport:
    """The daily check of storage against the rows (beat): every object under the attachments prefix that no row
    names is an orphan, removed once older than ``ATTACHMENT_ORPHAN_GRACE_HOURS`` (a younger one may be an upload
    still committing); every row whose object is missing is reported (logged as an error, never deleted: the row is
    the record of the proof). Safe to run twice or concurrently."""
    now = now or timezone.now()
    started = timezone.now()
    keys = storage.list_objects()
    known: set[str] = set()
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        known.update(Attachment.objects.filter(key__in=chunk).values_list("key", flat=True))
        known.update(Attachment.objects.filter(thumbnail_key__in=chunk).values_list("thumbnail_key", flat=True))
    cutoff = now - datetime.timedelta(hours=int(settings.ATTACHMENT_ORPHAN_GRACE_HOURS))
    removed: list[str] = []
    kept: list[str] = []
    for key in keys:
        if key in known:
            continue
        if storage.modified_at(key) < cutoff:
            removed.append(key)
        else:
            kept.append(key)
    # Re-check under the list of rows now: an upload may have committed its row since the listing.
    if removed:
        named = set(Attachment.objects.filter(key__in=removed).values_list("key", flat=True))
        named |= set(Attachment.objects.filter(thumbnail_key__in=removed).values_list("thumbnail_key", flat=True))
        removed = [key for key in removed if key not in named]
        storage.remove(removed)
    present = set(keys)
    missing = [
        pk
        for pk, key in Attachment.objects.filter(uploaded_at__lt=started).values_list("pk", "key").iterator()
        if key not in present
    ]
    if removed:
        logger.warning("attachment sweep removed %d orphaned object(s): %s", len(removed), removed[:50])
    if missing:
        logger.error("attachment sweep: %d attachment row(s) without their object: %s", len(missing), missing[:50])
    return SweepReport(objects=len(keys), orphans_removed=removed, orphans_kept=kept, missing=missing)
