"""Beat task: the daily overdue sweep (a thin adapter around ``jobs.sweep.jobs_flag_overdue``)."""

from __future__ import annotations

import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone

from jobops.context import audit_context
from jobs.sweep import SYSTEM_ACTOR, jobs_flag_overdue


def _today(value: str | None) -> datetime.date:
    return datetime.date.fromisoformat(value) if value else timezone.localdate()


@shared_task(name="jobs.flag_overdue_jobs", acks_late=True)
def flag_overdue_jobs(today: str | None = None) -> dict[str, Any]:
    """Flag open jobs scheduled before ``today`` (ISO date; default: today in TIME_ZONE) and clear stale flags.

    ``today`` is computed once here and passed to the service explicitly, so the whole sweep uses one date even
    across midnight. The service is idempotent: a redelivered message (acks_late, worker lost) or a second beat
    changes nothing. Audited as ``system:flag_overdue_jobs`` with source ``task``.
    """
    with audit_context(source="task", system=SYSTEM_ACTOR):
        return jobs_flag_overdue(today=_today(today)).as_dict()
