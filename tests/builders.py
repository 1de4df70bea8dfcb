"""Small builders for report tests: jobs and tasks in any status, with explicit timestamps (factories only)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils import timezone

from jobs.models import Job, JobTask
from tests.factories import JobFactory, JobTaskFactory

UTC = datetime.UTC
D = datetime.date


def at(text: str) -> datetime.datetime:
    """An aware UTC datetime from ``YYYY-MM-DD HH:MM[:SS]``."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_job(
    *,
    scheduled: datetime.date,
    technician: Any = None,
    status: str = Job.Status.PENDING,
    overdue: bool = False,
    priority: str = Job.Priority.MEDIUM,
    created_at: datetime.datetime | None = None,
    completed_at: datetime.datetime | None = None,
    **kwargs: Any,
) -> Job:
    if status == Job.Status.COMPLETED and completed_at is None:
        completed_at = timezone.now()
    job = JobFactory(
        scheduled_date=scheduled,
        assigned_to=technician,
        status=status,
        overdue=overdue,
        priority=priority,
        completed_at=completed_at,
        **kwargs,
    )
    if created_at is not None:
        # created_at is auto_now_add: set it afterwards, as history would have.
        Job.objects.filter(pk=job.pk).update(created_at=created_at)
        job.created_at = created_at
    return job


def make_task(
    job: Job,
    order: int,
    status: str = JobTask.Status.PENDING,
    *,
    started_at: datetime.datetime | None = None,
    completed_at: datetime.datetime | None = None,
    equipment: Iterable[Any] = (),
    **kwargs: Any,
) -> JobTask:
    now = timezone.now()
    if status in (JobTask.Status.IN_PROGRESS, JobTask.Status.COMPLETED) and started_at is None:
        started_at = now
    if status == JobTask.Status.COMPLETED and completed_at is None:
        completed_at = now
    task = JobTaskFactory(
        job=job, order=order, status=status, started_at=started_at, completed_at=completed_at, **kwargs
    )
    equipment = list(equipment)
    if equipment:
        task.required_equipment.set(equipment)
    return task


def make_tasks(job: Job, statuses: Sequence[str], **kwargs: Any) -> list[JobTask]:
    """Tasks ``order`` 1..n with the given statuses, created in reverse so ids do not follow ``order``."""
    created = [make_task(job, order, status, **kwargs) for order, status in reversed(list(enumerate(statuses, 1)))]
    return list(reversed(created))
