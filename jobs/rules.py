"""The business rules of jobs that more than one module reads: each is written here once.

- **Open**: a job is open while ``pending`` or ``in_progress``; a task is open while not ``completed``. Completed and
  cancelled jobs are *frozen* (no edits until an admin reopens them).
- **Overdue**: a job is overdue on ``today`` (a date in ``TIME_ZONE``) exactly when it is open and scheduled before
  ``today``. One meaning everywhere. The job's stored ``overdue`` flag (``/api/jobs/`` field and filter) is this rule
  persisted: the services set or clear it in the transaction that changes status or date, and the daily sweep
  (``jobs.sweep``) brings it up to date when the date moves on. Reports that must be right between midnight and the
  sweep (the dashboard, analytics) evaluate the rule itself (``overdue_q``); the flag can only lag behind it (a
  flag is never set on a job the rule does not hold for), so the two never disagree about a job the rule excludes.
- **Actionable**: a task is actionable when it is the first open task of its job (tasks are done in order).
"""

from __future__ import annotations

import datetime

from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import NegatedExpression

from .models import Job, JobTask

JOB_OPEN_STATUSES: tuple[str, ...] = (Job.Status.PENDING, Job.Status.IN_PROGRESS)
JOB_FROZEN_STATUSES: tuple[str, ...] = (Job.Status.COMPLETED, Job.Status.CANCELLED)
TASK_OPEN_STATUSES: tuple[str, ...] = (JobTask.Status.PENDING, JobTask.Status.IN_PROGRESS)
#: The order of priorities when sorting by priority: low < medium < high < urgent.
PRIORITY_RANK: dict[str, int] = {
    Job.Priority.LOW: 0,
    Job.Priority.MEDIUM: 1,
    Job.Priority.HIGH: 2,
    Job.Priority.URGENT: 3,
}


def is_frozen(job: Job) -> bool:
    """A completed or cancelled job is frozen: it and its tasks cannot be edited until an admin reopens it."""
    return job.status in JOB_FROZEN_STATUSES


def is_overdue(*, status: str, scheduled_date: datetime.date, today: datetime.date) -> bool:
    """The overdue rule for one job (see the module docstring)."""
    return status in JOB_OPEN_STATUSES and scheduled_date < today


def overdue_q(*, today: datetime.date, prefix: str = "") -> Q:
    """The overdue rule as a filter on jobs reached through ``prefix`` (``"job__"`` from a task)."""
    return Q(**{f"{prefix}status__in": JOB_OPEN_STATUSES, f"{prefix}scheduled_date__lt": today})


def actionable_task() -> NegatedExpression[Exists]:
    """True for a task (the outer row) that no open task of the same job precedes; meaningful for open tasks."""
    earlier_open = JobTask.objects.filter(
        job_id=OuterRef("job_id"), order__lt=OuterRef("order"), status__in=TASK_OPEN_STATUSES
    )
    return NegatedExpression(Exists(earlier_open))  # what ``~Exists(...)`` builds, with its precise type
