"""The webhook relay: turns committed change-feed rows into webhook outbox rows, exactly once, from a durable cursor.

Why a relay and not a row per endpoint written by ``feed.record``: the feed already holds, committed with every
change, the fact that an object changed; its reading side (``feed.read_changes``) already gives those facts in a
safe order (below PostgreSQL's transaction watermark, so a late commit never lands behind a cursor), coalesced and
rendered as the detail endpoints render them. The relay reads the admins' copy of the feed from its own cursor
(``OutboxCursor`` "webhooks") and, in **one transaction**, locks the cursor row, writes one outbox row per
(subscribed active endpoint, change) and moves the cursor past them: either both commit or neither does, and a
relay that crashes or runs twice at once (the row lock serialises them; ``dedupe_key`` is unique per endpoint and
event besides) neither loses nor duplicates an event. The writes of the services pay nothing for webhooks (no
rendering, no endpoint lookup inside their transactions), and set-based writes (the overdue sweep, reorders) are
covered because they record to the feed. The cost is latency: up to ``WEBHOOK_RELAY_SECONDS`` (beat) before a
change is queued.

A webhook event is one feed row (``evt_<feed row id>``): its type is the feed's ``<object>.upserted|removed`` and its
``data`` the object as rendered when the relay read it (``null`` when removed). Several changes to one object
within one relay page come as one (the newest), as in the feed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.db import transaction

from jobops.roles import ADMIN
from notifications.models import OutboxCursor
from notifications.webhooks import Event, active_endpoints, queue_webhook_events

from .feed import Position, decode_cursor, encode_cursor, read_changes, visible_upto

RELAY = "webhooks"
#: Feed rows read per page, and pages per run.
PAGE = 500
MAX_PAGES = 20

#: Webhooks see what admins see: every job, task and attachment.
_READER: Any = SimpleNamespace(pk=None, role=ADMIN, is_authenticated=True, is_active=True)


def _cursor() -> OutboxCursor:
    """The relay's cursor row, locked; created at the current watermark (a new install does not replay the past)."""
    row = OutboxCursor.objects.select_for_update().filter(name=RELAY).first()
    if row is None:
        upto = visible_upto()
        OutboxCursor.objects.bulk_create(
            [OutboxCursor(name=RELAY, txid=upto.txid, last_id=upto.id)], ignore_conflicts=True
        )
        row = OutboxCursor.objects.select_for_update().get(name=RELAY)
    return row


def relay_page(*, limit: int = PAGE) -> tuple[int, bool]:
    """Relay one page of the feed: returns (outbox rows written, whether more feed rows are waiting)."""
    with transaction.atomic():
        cursor = _cursor()
        endpoints = active_endpoints()
        if not endpoints:  # nobody listens: move on without rendering anything
            upto = visible_upto()
            if upto > Position(cursor.txid, cursor.last_id):
                cursor.txid, cursor.last_id = upto
                cursor.save(update_fields=["txid", "last_id", "updated_at"])
            return 0, False
        page = read_changes(user=_READER, after=encode_cursor(Position(cursor.txid, cursor.last_id)), limit=limit)
        events = [
            Event(
                id=f"evt_{decode_cursor(change['cursor']).id}",
                type=change["type"],
                timestamp=change["at"],
                data=change["data"],
            )
            for change in page.changes
        ]
        written = queue_webhook_events(events, endpoints=endpoints) if events else []
        cursor.txid, cursor.last_id = decode_cursor(page.cursor)
        cursor.save(update_fields=["txid", "last_id", "updated_at"])
    return len(written), page.has_more


def relay_webhooks(*, limit: int = PAGE, max_pages: int = MAX_PAGES) -> int:
    """Relay what the feed holds past the cursor (up to ``max_pages`` pages); returns the outbox rows written."""
    total = 0
    for _ in range(max_pages):
        written, more = relay_page(limit=limit)
        total += written
        if not more:
            break
    return total
