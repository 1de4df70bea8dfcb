"""Waking the live-stream consumers after a commit that recorded changes (``jobs.feed``).

Placeholder until the WebSocket stream lands (issue 13, second half): the REST feed needs no wake-up.
"""

from __future__ import annotations


def wake_listeners() -> None:
    """Tell every connected live-stream consumer to read the feed from its cursor. Never raises."""
