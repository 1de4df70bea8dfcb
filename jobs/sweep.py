"""The daily overdue sweep: set-based, idempotent, audited.

A job is overdue exactly when it is pending or in progress and its ``scheduled_date`` is before ``today`` (a date
in TIME_ZONE, computed by the caller and passed in, so a redelivered task repeats the same sweep). The job services
keep the flag right at once when a job is created, rescheduled, completed, cancelled or reopened; this sweep moves
the flag when only the calendar changed, and repairs anything else.

Work is done in batches of ``OVERDUE_SWEEP_BATCH_SIZE`` jobs, one transaction each: claim the ids with
``SELECT ... FOR UPDATE SKIP LOCKED`` (jobs a service is changing right now are skipped, not waited for), flip the
flag with one ``UPDATE ... WHERE id IN (...)``, write one audit entry per job in bulk and queue the overdue emails in
bulk, all in that transaction. When nothing unlocked is left, one more pass *waits* for the skipped rows, so a job
that happened to be locked is still swept today. A statement count per batch that does not depend on the batch
size; a second run finds nothing to do and writes nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import audit_build, audit_record_many
from notifications.services import JobFacts, OverdueJob, Person, notify_jobs_overdue

from . import feed, rules
from .models import Job
from .services import touch_jobs

SYSTEM_ACTOR = "flag_overdue_jobs"
DEFAULT_BATCH_SIZE = 1000

_FLAG_VALUES = (
    "id",
    "title",
    "client_name",
    "scheduled_date",
    "priority",
    "status",
    "assigned_to_id",
    "assigned_to__email",
    "assigned_to__first_name",
    "assigned_to__last_name",
    "assigned_to__username",
    "created_by_id",
    "created_by__email",
    "created_by__first_name",
    "created_by__last_name",
    "created_by__username",
)


@dataclass(frozen=True)
class OverdueSweepResult:
    """What one sweep changed: jobs newly flagged, flags cleared, outbox rows queued."""

    today: datetime.date
    flagged: int = 0
    cleared: int = 0
    notifications: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["today"] = self.today.isoformat()
        return data


def jobs_to_flag(*, today: datetime.date) -> QuerySet[Job]:
    """Jobs the overdue rule (``jobs.rules``) holds for that are not flagged yet."""
    return Job.objects.filter(rules.overdue_q(today=today), overdue=False)


def jobs_to_clear(*, today: datetime.date) -> QuerySet[Job]:
    """Flagged jobs the overdue rule no longer holds for: closed, or (re)scheduled today or later."""
    return Job.objects.filter(overdue=True).exclude(rules.overdue_q(today=today))


def _person(row: dict[str, Any], prefix: str) -> Person | None:
    user_id = row[f"{prefix}_id"]
    if user_id is None:
        return None
    full = f"{row[f'{prefix}__first_name']} {row[f'{prefix}__last_name']}".strip()
    email = (row[f"{prefix}__email"] or "").strip()
    return Person(user_id=user_id, email=email, name=full or row[f"{prefix}__username"])


def _claim(qs: QuerySet[Job], *, skip_locked: bool, batch_size: int, values: tuple[str, ...]) -> list[dict[str, Any]]:
    # of=("self",): lock only the job rows, never the joined users (and PostgreSQL refuses FOR UPDATE on the
    # nullable side of the assignee's outer join).
    return list(qs.select_for_update(skip_locked=skip_locked, of=("self",)).order_by("pk").values(*values)[:batch_size])


def _record(rows: list[dict[str, Any]]) -> None:
    """The batch's jobs in the change feed, in one insert (their audience did not change)."""
    feed.record(*(feed.Touch(row["id"], (row["created_by_id"], row["assigned_to_id"])) for row in rows))


def _flag_batch(today: datetime.date, *, skip_locked: bool, batch_size: int) -> tuple[int, int]:
    with transaction.atomic():
        rows = _claim(jobs_to_flag(today=today), skip_locked=skip_locked, batch_size=batch_size, values=_FLAG_VALUES)
        if not rows:
            return 0, 0
        now = timezone.now()
        touch_jobs(Job.objects.filter(pk__in=[row["id"] for row in rows]), overdue=True, updated_at=now)
        audit_record_many(
            [
                audit_build(
                    actor=None,
                    action="job.flagged_overdue",
                    object_type="job",
                    object_id=row["id"],
                    object_repr=f"#{row['id']} {row['title']}",
                    job_id=row["id"],
                    changes={"overdue": [False, True]},
                    at=now,
                )
                for row in rows
            ]
        )
        _record(rows)
        queued = notify_jobs_overdue(
            jobs=[
                OverdueJob(
                    facts=JobFacts(
                        job_id=row["id"],
                        title=row["title"],
                        client_name=row["client_name"],
                        scheduled_date=row["scheduled_date"],
                        priority=row["priority"],
                        status=row["status"],
                    ),
                    technician=_person(row, "assigned_to"),
                    creator=_person(row, "created_by"),
                )
                for row in rows
            ],
            today=today,
        )
        return len(rows), len(queued)


def _clear_batch(today: datetime.date, *, skip_locked: bool, batch_size: int) -> tuple[int, int]:
    with transaction.atomic():
        rows = _claim(
            jobs_to_clear(today=today),
            skip_locked=skip_locked,
            batch_size=batch_size,
            values=("id", "title", "created_by_id", "assigned_to_id"),
        )
        if not rows:
            return 0, 0
        now = timezone.now()
        touch_jobs(Job.objects.filter(pk__in=[row["id"] for row in rows]), overdue=False, updated_at=now)
        audit_record_many(
            [
                audit_build(
                    actor=None,
                    action="job.overdue_cleared",
                    object_type="job",
                    object_id=row["id"],
                    object_repr=f"#{row['id']} {row['title']}",
                    job_id=row["id"],
                    changes={"overdue": [True, False]},
                    at=now,
                )
                for row in rows
            ]
        )
        _record(rows)
        return len(rows), 0


def _drain(step: Callable[..., tuple[int, int]], today: datetime.date, batch_size: int) -> tuple[int, int]:
    changed = queued = 0
    # Unlocked rows first, without waiting on anyone; then wait for whatever was locked by a service meanwhile.
    for skip_locked in (True, False):
        while True:
            n, q = step(today, skip_locked=skip_locked, batch_size=batch_size)
            changed += n
            queued += q
            if n < batch_size:
                break
    return changed, queued


def jobs_flag_overdue(*, today: datetime.date, batch_size: int | None = None) -> OverdueSweepResult:
    """Bring every job's ``overdue`` flag in line with ``today``; returns the counts of what changed.

    Flags open jobs scheduled before ``today`` (``job.flagged_overdue``, actor None, labelled with the current
    ``audit_context`` such as ``system:flag_overdue_jobs``) and queues one ``job_overdue`` email to the technician
    and the creator of each newly flagged job; clears the flag of jobs no longer overdue (``job.overdue_cleared``).
    Each batch commits its flag changes, audit entries and outbox rows together. Idempotent: a second run with the
    same ``today`` changes, audits and queues nothing.
    """
    size = batch_size or int(getattr(settings, "OVERDUE_SWEEP_BATCH_SIZE", DEFAULT_BATCH_SIZE))
    flagged, queued = _drain(_flag_batch, today, size)
    cleared, _ = _drain(_clear_batch, today, size)
    return OverdueSweepResult(today=today, flagged=flagged, cleared=cleared, notifications=queued)
