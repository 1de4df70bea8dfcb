"""Removing stored objects once their rows are gone (after the commit, by a Celery task with retries).

Rows and objects are kept in step in one direction only: an object may outlive its row for a while (a removal still
queued or retrying, a broker that was down at the commit, a crash between an upload and its commit), never the
reverse. The daily sweep (``services.attachments_sweep``) removes what is left over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

from jobops.tasking import send_task_by_name
from jobs.models import Attachment

from . import storage

logger = logging.getLogger(__name__)

#: Published by name (``tasks.attachments``), so this module never imports the task layer.
REMOVE_TASK = "jobs.remove_attachment_objects"


def attachments_of(*, job_id: int | None = None, task_id: int | None = None) -> tuple[list[int], list[str]]:
    """The ids and stored keys (objects and thumbnails) of a job's or a task's attachments, read before they are
    deleted with it."""
    rows = Attachment.objects.all()
    if job_id is not None:
        rows = rows.filter(job_id=job_id)
    if task_id is not None:
        rows = rows.filter(task_id=task_id)
    ids: list[int] = []
    keys: list[str] = []
    for pk, key, thumb in rows.values_list("pk", "key", "thumbnail_key"):
        ids.append(pk)
        keys.extend(k for k in (key, thumb) if k)
    return ids, keys


def remove_after_commit(keys: Iterable[str]) -> None:
    """Queue the removal of ``keys`` once the current transaction commits (nothing if it rolls back). A publish
    that fails is logged, not raised (the change is committed already): the sweep removes the objects later."""
    wanted = [key for key in keys if key]
    if wanted:
        transaction.on_commit(lambda: send_task_by_name(REMOVE_TASK, [wanted]), robust=True)


def remove_now(keys: Iterable[str]) -> None:
    """Remove ``keys`` at once (an upload whose transaction rolled back); a failure is logged for the sweep."""
    wanted = [key for key in keys if key]
    try:
        storage.remove(wanted)
    except Exception as error:  # any storage failure: the sweep finds the orphan later
        logger.warning("attachment objects not removed after a rollback: %s (%s)", wanted, error)


def remove_objects(keys: list[str]) -> int:
    """Delete the objects ``keys`` (the removal task's work; idempotent). Returns how many keys it was given."""
    storage.remove(keys)
    return len(keys)
