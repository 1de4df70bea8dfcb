"""Reads of attachments. Who sees one is who sees its task (``jobs.selectors.job_scope_q``): defined once."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobs.models import Attachment
from jobs.selectors import job_scope_q, task_scope


def attachment_scope(*, user: Any) -> QuerySet[Attachment]:
    """The attachments ``user`` may see: those of the jobs in their scope, oldest first."""
    return Attachment.objects.filter(job_scope_q(user=user, prefix="job__")).order_by("uploaded_at", "id")


def task_visible(*, user: Any, task_id: int) -> bool:
    """The task ``task_id`` is in ``user``'s scope (its attachments' list and uploads are 404 otherwise)."""
    return task_scope(user=user).filter(pk=task_id).exists()
