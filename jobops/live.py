"""Waking the live stream: after a commit that recorded changes, every ASGI process re-reads the change feed.

The feed (``jobs.feed``) is the one source of truth; this wake carries no data, only "the feed grew". It goes
through the channel layer (``CHANNEL_LAYERS``: Redis, so every web node hears it; in-memory in the embedded
default) to the group :data:`WAKE_GROUP`, which holds one channel per ASGI process (``jobs.stream.FeedHub``),
not one per connection: a change costs one Redis message per process, whatever the number of clients.

A write must never fail because Redis is down: :func:`wake_listeners` logs and returns. The connected clients
still get the change from the hub's periodic re-read (``LIVE_POLL_SECONDS``).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

#: The channel-layer group of the processes that serve the live stream.
WAKE_GROUP = "jobops.changes"
#: The message they get; ``type`` names the handler (``changes.wake`` -> ``changes_wake``).
WAKE_MESSAGE = {"type": "changes.wake"}


def wake_listeners() -> None:
    """Tell every process serving ``/ws/changes/`` to read the feed now. Never raises (logs instead)."""
    try:
        layer = get_channel_layer()
        if layer is None:  # pragma: no cover - CHANNEL_LAYERS is always set in settings
            return
        async_to_sync(layer.group_send)(WAKE_GROUP, dict(WAKE_MESSAGE))
    except Exception as exc:  # a wake is best-effort: the write already committed
        logger.warning("could not wake the live stream listeners: %s: %s", type(exc).__name__, exc)
