"""Reads of jobs and tasks. Who sees what is defined once, in ``job_scope_q``; every read of jobs or tasks (the API
views, the dashboard, analytics, a job's history, the coming change feed) starts from ``job_scope`` or
``task_scope``, which apply it."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from jobops.roles import ADMIN, SALES_AGENT, TECHNICIAN

from .models import Job, JobTask


def job_scope_q(*, user: Any, prefix: str = "") -> Q:
    """The jobs ``user`` may see, as a filter on jobs reached through ``prefix`` (``"job__"`` from a task): admin all,
    technician the jobs assigned to them, sales agent the jobs they created. Any other user (an anonymous one, an
    unknown role) sees nothing: scoping fails closed. The role is read from the user row, never from token claims."""
    role = getattr(user, "role", None) if getattr(user, "is_authenticated", False) else None
    if role == ADMIN:
        return Q()
    if role == TECHNICIAN:
        return Q(**{f"{prefix}assigned_to_id": user.pk})
    if role == SALES_AGENT:
        return Q(**{f"{prefix}created_by_id": user.pk})
    return Q(**{f"{prefix}pk__in": []})  # matches nothing; the database is not even asked


def job_scope(*, user: Any) -> QuerySet[Job]:
    """The jobs ``user`` may see (``job_scope_q``), in the default order (scheduled date, then id)."""
    return Job.objects.filter(job_scope_q(user=user))


def task_scope(*, user: Any) -> QuerySet[JobTask]:
    """The tasks ``user`` may see: those of the jobs in their scope (``job_scope_q``), by job then order."""
    return JobTask.objects.filter(job_scope_q(user=user, prefix="job__")).order_by("job_id", "order")
