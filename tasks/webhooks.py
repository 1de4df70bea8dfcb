"""Beat task: relay change-feed rows to the webhook outbox (a thin adapter around ``jobs.webhooks.relay_webhooks``)."""

from __future__ import annotations

from celery import shared_task

from jobops.context import audit_context
from jobs.webhooks import relay_webhooks

from .outage import skip_while_database_unreachable


@shared_task(name="jobs.relay_webhooks", acks_late=True)
@skip_while_database_unreachable
def relay_webhooks_task() -> int:
    """Every ``WEBHOOK_RELAY_SECONDS``: queue one outbox row per (subscribed endpoint, new feed change); exactly once
    (the relay's cursor moves in the transaction that writes the rows). Returns the rows written; a run while the
    database is unreachable is skipped (``None``): the next one relays what it missed."""
    with audit_context(source="task", system="jobs.relay_webhooks"):
        return relay_webhooks()
