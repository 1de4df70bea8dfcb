"""Outbox tasks (every channel): deliver one row by id (retry with backoff here), re-enqueue stale rows, daily
reminders.

Every task takes ids or dates, never model instances, and calls one service. Delivery is idempotent (the service
locks the row and skips anything not pending), so acks_late redelivery after a worker crash sends nothing twice.
"""

from __future__ import annotations

import datetime
import logging
import smtplib

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from jobops.context import audit_context
from jobs.reminders import jobs_send_daily_reminders
from notifications.delivery import (
    RETRY_BACKOFF_MAX_SECONDS,
    WEBHOOK_COUNTDOWN_MAX_SECONDS,
    Outcome,
    notification_deliver,
    notifications_requeue_unsent,
)
from notifications.services import enqueue_deliveries

from .outage import database_unreachable, skip_while_database_unreachable

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="notifications.deliver",  # published by this name from notifications.services (DELIVER_TASK)
    acks_late=True,
    # SMTP refusals and network errors are expected: retry with exponential backoff (1, 2, 4 ... s, capped,
    # with full jitter). The row's attempt counter decides when to give up (it is marked failed then), so this
    # cap only matters if the row was re-enqueued meanwhile.
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=max(0, settings.NOTIFICATION_MAX_ATTEMPTS - 1),
)
def deliver_notification(self: Task[[int], str], notification_id: int) -> str:
    """Send the outbox row ``notification_id`` unless it was already sent or failed; re-raise a transient SMTP
    error so that Celery retries it with backoff."""
    try:
        with audit_context(source="task", system="notifications.deliver"):
            result = notification_deliver(notification_id=notification_id)
    except Exception as exc:
        reason = database_unreachable(exc)
        if reason is None:
            raise
        # The row stays pending (its lock and mark roll back with the connection): retry in seconds rather than
        # after the sweep's grace. Had the message gone out before the connection died, the retry sends it again
        # under the same id (the outbox's at-least-once limit).
        logger.warning("delivery of %s deferred: the database is unreachable (%s)", notification_id, reason)
        raise self.retry(exc=exc, countdown=settings.DB_UNAVAILABLE_RETRY_AFTER) from exc
    if result.outcome == Outcome.RETRY and result.retry_in is not None:
        # A webhook's own schedule (minutes to hours, with jitter): a short wait is a countdown on the broker, a
        # long one is left to the requeue sweep (the row's next_attempt_at). A failed publish is the sweep's too.
        # Eager mode (the embedded default) ignores countdowns: there the sweep alone retries.
        if result.retry_in <= WEBHOOK_COUNTDOWN_MAX_SECONDS and not self.app.conf.task_always_eager:
            try:
                self.apply_async(args=(notification_id,), countdown=result.retry_in)
            except Exception:
                logger.exception("could not schedule a webhook retry; the sweep will", extra={"id": notification_id})
        return str(result.outcome)
    if result.outcome == Outcome.RETRY and result.error is not None:
        raise result.error
    return str(result.outcome)


@shared_task(name="notifications.enqueue", acks_late=True)  # published by name (ENQUEUE_TASK)
def enqueue_notifications(ids: list[int]) -> int:
    """Fan out a chunk of outbox ids (published by a large sweep) into one delivery task each. Publishing twice
    after a redelivery is harmless: delivery skips rows that are no longer pending."""
    return enqueue_deliveries(ids)


#: Rows claimed per requeue statement, and at most this many claims per run (beat runs it every minute).
REQUEUE_BATCH = 500
REQUEUE_MAX_BATCHES = 20


@shared_task(name="notifications.requeue_unsent", acks_late=True)
@skip_while_database_unreachable
def requeue_unsent() -> int:
    """Beat, every ``NOTIFICATION_SWEEP_SECONDS``: re-enqueue outbox rows that are due (a publish that failed, a
    retry) or still pending after the grace period; up to ``REQUEUE_BATCH * REQUEUE_MAX_BATCHES`` rows per run,
    oldest first. Skipped (``None``) while the database is unreachable."""
    total = 0
    with audit_context(source="task", system="notifications.requeue_unsent"):
        for _ in range(REQUEUE_MAX_BATCHES):
            claimed = len(notifications_requeue_unsent(limit=REQUEUE_BATCH))
            total += claimed
            if claimed < REQUEUE_BATCH:
                break
    return total


@shared_task(name="notifications.send_daily_reminders", acks_late=True)
def send_daily_reminders(today: str | None = None) -> int:
    """Beat, daily at 07:00 in TIME_ZONE: one reminder per technician with open tasks on jobs scheduled ``today``
    (ISO date; default today in TIME_ZONE), through ``jobs.reminders.jobs_send_daily_reminders``. Never twice for
    the same technician and day."""
    day = datetime.date.fromisoformat(today) if today else timezone.localdate()
    with audit_context(source="task", system="notifications.send_daily_reminders"):
        return len(jobs_send_daily_reminders(today=day))
