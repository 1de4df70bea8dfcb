"""Beat task: forget stored ``Idempotency-Key`` responses past their TTL (``jobops.idempotency.idempotency_purge``)."""

from __future__ import annotations

from celery import shared_task

from jobops.idempotency import idempotency_purge


@shared_task(name="jobops.purge_idempotency_keys", acks_late=True)
def purge_idempotency_keys() -> int:
    """Delete stored responses older than ``IDEMPOTENCY_TTL_HOURS``; returns how many. Idempotent: a redelivered or
    doubled run deletes nothing more than one run would. Keys are not audited data (no audit entry)."""
    return idempotency_purge()
