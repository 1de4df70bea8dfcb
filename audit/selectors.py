"""Reads of the audit trail. Entries have no foreign keys, so every list is one query per page.

This app knows no other app's models: a reader that needs a scope (a job's history, for whoever may see the job)
decides it in its own app and asks here for the unscoped entries of the objects it already checked.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobops.roles import is_admin

from .models import AuditEntry


def audit_list_for(*, user: Any) -> QuerySet[AuditEntry]:
    """The whole trail, newest first (``-at``, then ``-id``), for admins (``jobops.roles.is_admin``); nothing for
    anyone else.

    Entries hold plain ids and snapshots (no joins), so a page is one query plus the paginator's count whatever
    the page size; the ``(-at, -id)`` index serves the order.
    """
    if not is_admin(user):
        return AuditEntry.objects.none()
    return AuditEntry.objects.order_by("-at", "-id")


HISTORY_OBJECT_TYPES = ("job", "jobtask")


def audit_history_of_job(*, job_id: int) -> QuerySet[AuditEntry]:
    """The history of one job: its own entries and its tasks' (task entries carry their job's id), newest first.

    **Unscoped**: the caller must first check that its user may see job ``job_id`` (``jobs`` does, through its
    job scope, and answers 404 outside it); a job that no longer exists still has its history here. Served by the
    ``(job_id, -at, -id)`` index; one query per page.
    """
    # Only the job's and its tasks' entries: outbox entries (e.g. ``notification.retried``) also carry the job id,
    # but name recipients' email addresses and SMTP errors that the job's sales agent must not see.
    return AuditEntry.objects.filter(job_id=job_id, object_type__in=HISTORY_OBJECT_TYPES).order_by("-at", "-id")
