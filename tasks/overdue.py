"""Beat task: the daily overdue sweep (a thin adapter around ``jobs.sweep.jobs_flag_overdue``)."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from celery import Task, shared_task
from django.utils import timezone

from jobops.context import audit_context
from jobs.sweep import SYSTEM_ACTOR, jobs_flag_overdue

from .outage import database_unreachable

logger = logging.getLogger(__name__)


def _today(value: str | None) -> datetime.date:
    return datetime.date.fromisoformat(value) if value else timezone.localdate()


#: The daily sweep retries this often, this many times (ten minutes), while the database is unreachable.
UNREACHABLE_RETRY_SECONDS = 30
UNREACHABLE_RETRIES = 20


@shared_task(bind=True, name="jobs.flag_overdue_jobs", acks_late=True, max_retries=UNREACHABLE_RETRIES)
def flag_overdue_jobs(self: Task[[str | None], dict[str, Any]], today: str | None = None) -> dict[str, Any]:
    """Flag open jobs scheduled before ``today`` (ISO date; default: today in TIME_ZONE) and clear stale flags.

    ``today`` is computed once here and passed to the service explicitly, so the whole sweep uses one date even
    across midnight. The service is idempotent: a redelivered message (acks_late, worker lost) or a second beat
    changes nothing. Audited as ``system:flag_overdue_jobs`` with source ``task``. While the database is
    unreachable it retries every ``UNREACHABLE_RETRY_SECONDS`` with the same date (a day is never skipped).
    """
    day = _today(today)
    try:
        with audit_context(source="task", system=SYSTEM_ACTOR):
            return jobs_flag_overdue(today=day).as_dict()
    except Exception as exc:
        reason = database_unreachable(exc)
        if reason is None:
            raise
        logger.warning("overdue sweep for %s deferred: the database is unreachable (%s)", day, reason)
        raise self.retry(args=(day.isoformat(),), exc=exc, countdown=UNREACHABLE_RETRY_SECONDS) from exc
