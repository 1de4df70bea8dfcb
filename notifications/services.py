"""Email outbox services (placeholder signatures; the outbox implementation replaces this module)."""

from __future__ import annotations

from typing import Any


def notify_job_assigned(*, job: Any, previous_assignee: Any = None) -> None:
    """Queue job_assigned (new technician) or job_reassigned (old and new technician) in the caller's transaction."""


def notify_job_completed(*, job: Any) -> None:
    """Queue job_completed (to the job's creator) in the caller's transaction."""


def notify_job_overdue(*, job: Any) -> None:
    """Queue job_overdue (technician and creator), once per overdue episode, in the caller's transaction."""
