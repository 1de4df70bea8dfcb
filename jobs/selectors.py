"""Reads of jobs and tasks, scoped by role. Views never touch ``Job.objects`` directly."""

from __future__ import annotations

import functools
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
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


def _task_count(**conditions: Any) -> Coalesce:
    # A correlated subquery per returned row: cheap under LIMIT, unlike a JOIN + GROUP BY over every scoped job.
    counts = (
        JobTask.objects.filter(job=OuterRef("pk"), **conditions)
        .order_by()
        .values("job")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


@functools.cache
def _task_count_annotations() -> dict[str, Coalesce]:
    # Built once: constructing the subqueries costs more Python time than running them. annotate() resolves a copy,
    # so sharing the expressions between queries is safe.
    return {"tasks_total": _task_count(), "tasks_completed": _task_count(status=JobTask.Status.COMPLETED)}


def with_task_counts(qs: QuerySet[Job]) -> QuerySet[Job]:
    return qs.annotate(**_task_count_annotations())


#: The job list's default order: scheduled date, then id.
JOB_ORDER = ("scheduled_date", "id")


def job_list_for(*, user: Any) -> QuerySet[Job]:
    """Jobs in ``user``'s scope with their task counts, in the default order (``JOB_ORDER``).

    Rendering a page costs one query (plus the paginator's count), whatever the page size.
    """
    return with_task_counts(job_scope_for(user=user)).order_by(*JOB_ORDER)


def job_page_for(*, user: Any) -> QuerySet[Job]:
    """Jobs in ``user``'s scope in the default order, without task counts: for ``jobs.pgjson``, which counts them in
    the statement that renders the page."""
    return job_scope_for(user=user).order_by(*JOB_ORDER)


def job_detail_for(*, user: Any) -> QuerySet[Job]:
    """Like ``job_list_for``, with the ordered tasks and their equipment prefetched (three queries in all)."""
    return job_list_for(user=user).prefetch_related(Prefetch("tasks", queryset=task_queryset()))


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
    """Tasks whose job is in ``user``'s scope (same rules as ``job_scope_for``), equipment prefetched."""
    role = getattr(user, "role", None)
    qs = task_queryset()
    if role == User.Role.ADMIN:
        return qs
    if role == User.Role.TECHNICIAN:
        return qs.filter(job__assigned_to_id=user.pk)
    if role == User.Role.SALES_AGENT:
        return qs.filter(job__created_by_id=user.pk)
    return qs.none()


def job_tasks_for(*, job: Job) -> QuerySet[JobTask]:
    """The tasks of one (already scoped) job, in order, with their equipment."""
    return task_queryset().filter(job=job)
