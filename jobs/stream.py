"""The live stream's per-process hub: one feed read per audience and wake, shared by every connection of it.

``/ws/changes/`` (API.md v2 "Live stream") pushes the change feed. The naive design, each connection reading the
feed on each wake, costs one database read per connection per change: 1,000 admin dashboards, 1,000 reads. Here
each ASGI process has one :class:`FeedHub` (per event loop) that

- holds the one channel of this process in the channel-layer group ``jobops.live.WAKE_GROUP``, so a commit that
  recorded changes costs one Redis message per process (``jobops.live.wake_listeners``);
- on a wake, marks every subscriber *dirty* and lets one pump per **audience** read the feed: one
  ``read_changes`` call for all the dirty subscribers of the audience, from the place of the one furthest behind,
  each change serialised to JSON once; each subscriber gets the changes past its own place. After that read they
  all stand at one place (its end), so the next wake costs one read again. An audience is the set of users whose
  feed is the same: all admins (they see every object, and the feed's ``data`` is the detail shape, which does
  not depend on the reader), or one user;
- serialises everything per connection: a subscriber is read for by its audience's pump only, and its messages
  leave in order through its outbox. The backlog, ``ready`` and the live changes are one sequence of pages read
  past its place, so there is no gap and no duplicate at the hand-over;
- runs the timers of all its connections in one tick: the first ``auth`` within ``LIVE_AUTH_TIMEOUT`` (4401), the
  token's ``exp`` (4401; a fresh ``auth`` extends it), silence longer than ``LIVE_IDLE_TIMEOUT`` (closed), and
  every ``LIVE_USER_CHECK_SECONDS`` one query for the rows of all connected users (deactivated: 4403; signed out
  everywhere or a new password since the token was issued: 4401; a role change moves the connection to its new
  audience);
- every ``LIVE_POLL_SECONDS`` (1 s) asks, in one indexed query, whether feed rows became readable past the
  place of the subscriber furthest behind, and if so reads for everyone: a lost wake (Redis blip) or a change the
  feed's watermark held back (an older transaction, anywhere on the PostgreSQL cluster, was still running when the
  wake came) is delivered within that period; for a few seconds after each wake it looks every 0.1 s, so a change
  held back briefly is pushed as soon as the watermark passes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Hashable
from types import SimpleNamespace
from typing import Any, Protocol

import orjson
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from accounts.selectors import user_states
from accounts.tokens import token_is_revoked
from jobops.live import WAKE_GROUP
from jobops.roles import ADMIN

from . import feed

logger = logging.getLogger(__name__)

#: Close codes of the contract (API.md v2 "Live stream").
CLOSE_BAD_MESSAGE = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_DEACTIVATED = 4403
CLOSE_CURSOR_EXPIRED = 4410
#: Not in the contract, which only says silent clients are dropped: "timed out", in the 4xxx range as the others.
CLOSE_IDLE = 4408
#: A client that does not read what it is sent (its outbox grew past LIVE_OUTBOX_LIMIT): "try again later".
CLOSE_TOO_SLOW = 1013

#: Changes per feed read (the feed's maximum page).
PAGE_SIZE = 500
#: After a wake, how often and for how long the hub looks for the announced change if the watermark held it back.
EAGER_POLL_SECONDS = 0.1
EAGER_POLL_WINDOW = 5.0
#: The hub's channel name starts with this; CHANNEL_LAYERS gives such channels room for a burst of wakes.
WAKE_CHANNEL_PREFIX = "jobops-live"
#: How often the group membership of this process's channel is renewed (the layer forgets it after group_expiry).
GROUP_RENEW_SECONDS = 15.0


class Connection(Protocol):
    """What the hub needs of a WebSocket connection (``jobs.consumers.ChangesConsumer``)."""

    def push(self, text: str) -> None: ...

    async def close_with(self, code: int) -> None: ...


class Subscriber:
    """One connection's state, owned by the hub; the consumer only reports messages and closes."""

    _ids = itertools.count(1)

    def __init__(self, connection: Connection) -> None:
        self.id = next(self._ids)
        self.connection = connection
        self.connected_at = time.monotonic()
        self.last_seen = self.connected_at
        self.user: Any = None  # set by authenticate()
        self.expires_at = 0.0  # the token's exp (epoch seconds)
        self.issued_at: Any = None  # the token's iat (checked against the user's tokens_valid_after)
        self.audience: Hashable | None = None
        self.subscribed = False
        self.cursor: str | None = None
        self.position: feed.Position | None = None  # where ``cursor`` points, once the feed has been read for it
        self.ready = False
        self.dirty = False
        self.closed = False

    @property
    def authenticated(self) -> bool:
        return self.user is not None


def _place(subscriber: Subscriber) -> feed.Position:
    assert subscriber.position is not None  # noqa: S101 - only called for subscribers with a place
    return subscriber.position


def audience_of(user: Any) -> Hashable:
    """Users whose feed is identical share an audience (and so one read): every admin sees everything, rendered in
    the same detail shape; anyone else has a scope of their own."""
    return ADMIN if getattr(user, "role", None) == ADMIN else ("user", user.pk)


def _message(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()


class FeedHub:
    """The hub of one event loop (one per ASGI process): see the module docstring."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.audiences: dict[Hashable, set[Subscriber]] = defaultdict(set)
        self.signals: dict[Hashable, asyncio.Event] = {}
        self.pumps: dict[Hashable, asyncio.Task[None]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.eager_until = 0.0  # poll every EAGER_POLL_SECONDS until then (set by a wake)
        self.reads = 0  # feed reads done (the fan-out benchmark and tests look at it)

    # --- connections -------------------------------------------------------------------------------------------

    def connect(self, connection: Connection) -> Subscriber:
        if not self.tasks:
            self.tasks = [
                asyncio.create_task(self._listen(), name="live-listen"),
                asyncio.create_task(self._tick(), name="live-tick"),
            ]
        subscriber = Subscriber(connection)
        self.subscribers.add(subscriber)
        return subscriber

    def disconnect(self, subscriber: Subscriber) -> None:
        subscriber.closed = True
        self.subscribers.discard(subscriber)
        if subscriber.audience is not None:
            self._leave(subscriber)

    def _leave(self, subscriber: Subscriber) -> None:
        members = self.audiences.get(subscriber.audience)
        if members is not None:
            members.discard(subscriber)
            if not members and subscriber.audience in self.signals:
                self.signals[subscriber.audience].set()  # its pump sees the audience empty and ends

    def authenticate(self, subscriber: Subscriber, user: Any, expires_at: float, issued_at: Any) -> None:
        subscriber.user = user
        subscriber.expires_at = expires_at
        subscriber.issued_at = issued_at
        self._move(subscriber, audience_of(user))

    async def subscribe(self, subscriber: Subscriber, after: str | None) -> None:
        """Start reading for ``subscriber`` from ``after`` (``None``: from now); a cursor that is not one of the feed
        closes with 4400, an expired one with 4410."""
        try:
            position = None if after is None else feed.decode_cursor(after)
        except feed.CursorExpired:
            await self.close(subscriber, CLOSE_CURSOR_EXPIRED)
            return
        except feed.InvalidCursor:
            await self.close(subscriber, CLOSE_BAD_MESSAGE)
            return
        subscriber.subscribed = True
        subscriber.cursor, subscriber.position = after, position
        subscriber.dirty = True
        self._signal(subscriber.audience)

    def _move(self, subscriber: Subscriber, audience: Hashable) -> None:
        if subscriber.audience == audience:
            return
        if subscriber.audience is not None:
            self._leave(subscriber)
        subscriber.audience = audience
        self.audiences[audience].add(subscriber)
        if subscriber.subscribed:
            subscriber.dirty = True
            self._signal(audience)

    async def close(self, subscriber: Subscriber, code: int) -> None:
        if subscriber.closed:
            return
        self.disconnect(subscriber)
        with contextlib.suppress(Exception):  # the client may be gone already
            await subscriber.connection.close_with(code)

    # --- reading the feed --------------------------------------------------------------------------------------

    def wake(self) -> None:
        """The feed may have grown: every subscriber reads from its cursor."""
        for audience, members in self.audiences.items():
            touched = False
            for subscriber in members:
                if subscriber.subscribed:
                    subscriber.dirty = True
                    touched = True
            if touched:
                self._signal(audience)

    def _signal(self, audience: Hashable | None) -> None:
        if audience is None:
            return
        event = self.signals.get(audience)
        if event is None:
            event = self.signals[audience] = asyncio.Event()
        event.set()
        pump = self.pumps.get(audience)
        if pump is None or pump.done():
            self.pumps[audience] = asyncio.create_task(self._pump(audience, event), name=f"live-pump-{audience}")

    async def _pump(self, audience: Hashable, event: asyncio.Event) -> None:
        """Read for the dirty subscribers of ``audience`` until none is left; exits when the audience is empty."""
        while self.audiences.get(audience):
            await event.wait()
            event.clear()
            while True:
                dirty = [s for s in self.audiences.get(audience, ()) if s.dirty and s.subscribed and not s.closed]
                if not dirty:
                    break
                # One read for everyone of the audience, from the place of the one furthest behind; each gets the
                # changes past its own place. Subscribers that came at different moments so end up at one place
                # (the watermark of that read) and keep sharing reads. "From now" needs no feed rows: its own read.
                fresh = [s for s in dirty if s.position is None]
                placed = [s for s in dirty if s.position is not None]
                if fresh:
                    await self._read_for(audience, fresh, after=None)
                if placed:
                    await self._read_for(audience, placed, after=min(placed, key=_place))
        self.pumps.pop(audience, None)
        self.signals.pop(audience, None)
        if not self.audiences.get(audience):
            self.audiences.pop(audience, None)

    async def _read_for(self, audience: Hashable, group: list[Subscriber], after: Subscriber | None) -> None:
        """One read of the feed for ``group`` (subscribers of ``audience``) from ``after``'s cursor; to each
        subscriber the changes past its own place, in cursor order."""
        cursor = None if after is None else after.cursor
        for subscriber in group:
            subscriber.dirty = False  # a wake during the read sets it again: read once more then
        try:
            page = await database_sync_to_async(feed.read_changes)(user=group[0].user, after=cursor, limit=PAGE_SIZE)
        except (feed.CursorExpired, feed.InvalidCursor) as refused:
            # Checked at subscribe: only a cursor that expired since can get here. Close its owner, not the others.
            assert after is not None  # noqa: S101 - "from now" has no cursor to refuse
            await self.close(
                after, CLOSE_CURSOR_EXPIRED if isinstance(refused, feed.CursorExpired) else CLOSE_BAD_MESSAGE
            )
            for subscriber in group:
                subscriber.dirty = True
            return
        except Exception:
            # The database is unreachable, say: keep the subscribers dirty and try again shortly.
            logger.exception("live stream: reading the change feed failed")
            for subscriber in group:
                subscriber.dirty = True
            await asyncio.sleep(1.0)
            return
        finally:
            self.reads += 1
        end = feed.decode_cursor(page.cursor)
        changes = [
            (feed.decode_cursor(change["cursor"]), _message({"type": "change", "change": change}))
            for change in page.changes
        ]
        ready = None if page.has_more else _message({"type": "ready", "cursor": page.cursor})
        for subscriber in group:
            if subscriber.closed or subscriber.audience != audience:
                continue
            place = subscriber.position
            if place is not None and place >= end:
                # Already past this page (it stopped short, has_more): read on from its own place next round.
                subscriber.dirty = page.has_more
                if not page.has_more and not subscriber.ready and ready is not None:
                    subscriber.connection.push(ready)
                    subscriber.ready = True
                continue
            for position, text in changes:
                if place is None or position > place:
                    subscriber.connection.push(text)
            subscriber.cursor, subscriber.position = page.cursor, end
            if page.has_more:
                subscriber.dirty = True
            elif not subscriber.ready and ready is not None:
                subscriber.connection.push(ready)
                subscriber.ready = True

    # --- wakes and timers --------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Receive the wakes of this process's channel in the group; renew the membership every few seconds (a
        Redis restart or flush loses it; the poll covers the gap)."""
        layer = get_channel_layer()
        assert layer is not None  # noqa: S101 - CHANNEL_LAYERS is always configured
        # Both layers take a prefix (the Redis one and the in-memory one); the stubs' base class does not say so.
        channel = await layer.new_channel(prefix=WAKE_CHANNEL_PREFIX)  # type: ignore[call-arg]
        renewed = 0.0
        while True:
            try:
                if time.monotonic() - renewed > GROUP_RENEW_SECONDS:
                    await layer.group_add(WAKE_GROUP, channel)
                    renewed = time.monotonic()
                message = await asyncio.wait_for(layer.receive(channel), timeout=GROUP_RENEW_SECONDS)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("live stream: channel layer receive failed: %s: %s", type(exc).__name__, exc)
                renewed = 0.0
                await asyncio.sleep(1.0)
                continue
            if message.get("type") == "changes.wake":
                self.eager_until = time.monotonic() + EAGER_POLL_WINDOW
                self.wake()

    async def _tick(self) -> None:
        last_timers = last_user_check = last_poll = time.monotonic()
        base = min(1.0, settings.LIVE_USER_CHECK_SECONDS, settings.LIVE_POLL_SECONDS)
        while True:
            # Just after a wake the change it announced may still be held back by the feed's watermark (an older
            # transaction has not ended yet): look again every EAGER_POLL_SECONDS for a while, not every second.
            eager = time.monotonic() < self.eager_until
            await asyncio.sleep(min(base, EAGER_POLL_SECONDS) if eager else base)
            try:
                now = time.monotonic()
                if now - last_timers >= base:
                    last_timers = now
                    await self._check_timers()
                if now - last_user_check >= settings.LIVE_USER_CHECK_SECONDS:
                    last_user_check = now
                    await self._check_users()
                if now - last_poll >= (EAGER_POLL_SECONDS if eager else settings.LIVE_POLL_SECONDS):
                    last_poll = now
                    await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("live stream: periodic check failed")

    async def _check_timers(self) -> None:
        now, wall = time.monotonic(), time.time()
        for subscriber in list(self.subscribers):
            if not subscriber.authenticated:
                if now - subscriber.connected_at >= settings.LIVE_AUTH_TIMEOUT:
                    await self.close(subscriber, CLOSE_UNAUTHENTICATED)
            elif wall >= subscriber.expires_at:
                await self.close(subscriber, CLOSE_UNAUTHENTICATED)
            elif now - subscriber.last_seen >= settings.LIVE_IDLE_TIMEOUT:
                await self.close(subscriber, CLOSE_IDLE)

    async def _check_users(self) -> None:
        connected = [s for s in self.subscribers if s.authenticated]
        if not connected:
            return
        states = await database_sync_to_async(user_states)(ids={s.user.pk for s in connected})
        for subscriber in connected:
            active, role, valid_after = states.get(subscriber.user.pk, (False, "", None))
            if not active:
                await self.close(subscriber, CLOSE_DEACTIVATED)
            elif token_is_revoked(SimpleNamespace(tokens_valid_after=valid_after), subscriber.issued_at):
                await self.close(subscriber, CLOSE_UNAUTHENTICATED)  # signed out everywhere, or a new password
            elif role != subscriber.user.role:
                subscriber.user.role = role
                self._move(subscriber, audience_of(subscriber.user))

    async def _poll(self) -> None:
        """Wake everyone if feed rows became readable past the place of the subscriber furthest behind.

        After a wake every subscriber's read ends at the watermark of its moment; rows that the watermark held back
        then (an older transaction was still running) or whose wake was lost lie past it, and are found here."""
        places = [s.position for s in self.subscribers if s.position is not None and not s.dirty]
        if places and await database_sync_to_async(feed.grew)(min(places)):
            self.wake()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedHub] = weakref.WeakKeyDictionary()


def get_hub() -> FeedHub:
    """The hub of the running event loop (one per ASGI process; tests may run several loops)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = FeedHub()
    return hub
