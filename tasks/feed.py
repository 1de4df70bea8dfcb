"""Beat task: prune the change feed (a thin adapter around ``jobs.feed.prune_changes``)."""

from __future__ import annotations

from celery import shared_task

from jobs.feed import prune_changes


@shared_task(name="jobs.prune_change_feed", acks_late=True)
def prune_change_feed() -> int:
    """Delete change-feed rows past ``CHANGE_FEED_RETENTION_DAYS``, in batches; idempotent. Returns the count."""
    return prune_changes()
