"""Reads of jobs and tasks, scoped by role. Views never touch ``Job.objects`` directly."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.models import User
from equipment.models import Equipment

from .models import Job, JobTask


def job_scope_for(*, user: Any) -> QuerySet[Job]:
    """The jobs ``user`` may see: admin all, technician the jobs assigned to them, sales agent the jobs they created.

    Any other user (or role) sees nothing: scoping fails closed.
    """
    qs = Job.objects.all()
    role = getattr(user, "role", None)
    if role == User.Role.ADMIN:
        return qs
    if role == User.Role.TECHNICIAN:
        return qs.filter(assigned_to_id=user.pk)
    if role == User.Role.SALES_AGENT:
        return qs.filter(created_by_id=user.pk)
    return qs.none()


def job_list_for(*, user: Any) -> QuerySet[Job]:
    """Jobs in ``user``'s scope, ready for the list shape (no per-row queries)."""
    return job_scope_for(user=user).order_by("scheduled_date", "id")


def job_get_for(*, user: Any, job_id: Any) -> Job:
    """One job in ``user``'s scope, or ``Http404`` (an out-of-scope job is indistinguishable from a missing one)."""
    try:
        return job_scope_for(user=user).get(pk=int(job_id))
    except (Job.DoesNotExist, TypeError, ValueError):
        raise Http404("No Job matches the given query.") from None


def task_queryset() -> QuerySet[JobTask]:
    return JobTask.objects.prefetch_related(
        Prefetch("required_equipment", queryset=Equipment.objects.order_by("id"))
    ).order_by("job_id", "order")


def task_scope_for(*, user: Any) -> QuerySet[JobTask]:
    """Tasks whose job is in ``user``'s scope."""
    return task_queryset().filter(job__in=job_scope_for(user=user).values("pk"))
