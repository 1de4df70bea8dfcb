"""Reads of the audit trail, scoped by role. Entries have no foreign keys, so every list is one query per page."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from jobs.selectors import job_get_for

from .models import AuditEntry


def audit_list_for(*, user: Any) -> QuerySet[AuditEntry]:
    """The whole trail, newest first (``-at``, then ``-id``), for admins; nothing for any other role.

    Entries hold plain ids and snapshots (no joins), so a page is one query plus the paginator's count whatever
    the page size; the ``(-at, -id)`` index serves the order.
    """
    if getattr(user, "role", None) != User.Role.ADMIN:
        return AuditEntry.objects.none()
    return AuditEntry.objects.order_by("-at", "-id")


HISTORY_OBJECT_TYPES = ("job", "jobtask")


def audit_job_history_for(*, user: Any, job_id: Any) -> QuerySet[AuditEntry]:
    """The history of one job: its own entries and its tasks' (task entries carry their job's id), newest first.

    Anyone who can see the job may read it: admins, its creator (sales agent) and its assigned technician, as
    decided by ``jobs.selectors.job_get_for``, which raises ``Http404`` for a job that is missing or outside the
    caller's scope (no enumeration). Served by the ``(job_id, -at, -id)`` index; one query per page.
    """
    job = job_get_for(user=user, job_id=job_id)
    # Only the job's and its tasks' entries: outbox entries (e.g. ``notification.retried``) also carry the job id,
    # but name recipients' email addresses and SMTP errors that the job's sales agent must not see.
    return AuditEntry.objects.filter(job_id=job.pk, object_type__in=HISTORY_OBJECT_TYPES).order_by("-at", "-id")
