"""``/ws/changes/``: the change feed pushed over a WebSocket (API.md v2 "Live stream").

The protocol, client side: within ``LIVE_AUTH_TIMEOUT`` (10 s) send ``{"type": "auth", "token": "<access JWT>"}``,
then ``{"type": "subscribe", "after": "<cursor>"}`` (``after`` optional: from now). The server sends every change
after the cursor, ``{"type": "ready", "cursor"}``, then the live changes, each as ``{"type": "change", "change":
{...}}``, in cursor order. ``{"type": "ping"}`` gets ``{"type": "pong"}``; a fresh ``auth`` (same user) extends
the token's expiry. Close codes: 4401 bad or expired token (or anything but ``auth`` first), 4403 deactivated
user, 4410 expired cursor, 4400 bad message; 4408 after ``LIVE_IDLE_TIMEOUT`` (60 s) of silence.

No token in the URL (it would land in access logs) and no session cookie: the token authenticates, so the
origin of the page does not matter (a cross-site page has no token to send) and no origin check is made.

The token is checked by the API's own authentication (``accounts.authentication.JWTAuthentication``: signature,
expiry, token type, the user row and ``is_active``). Everything after authentication - reading the feed, timers,
the user-row re-checks - is done by the process's :class:`jobs.stream.FeedHub`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts.authentication import JWTAuthentication

from .stream import (
    CLOSE_BAD_MESSAGE,
    CLOSE_DEACTIVATED,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHENTICATED,
    FeedHub,
    Subscriber,
    get_hub,
)

PONG = orjson.dumps({"type": "pong"}).decode()


class AuthRefused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def authenticate_token(token: str) -> tuple[Any, float, Any]:
    """The user an access token names, the token's ``exp`` and ``iat``; raises :class:`AuthRefused` with the close
    code.

    The API's authentication class decides, so the WebSocket accepts exactly the tokens the REST API accepts."""
    authentication = JWTAuthentication()
    try:
        validated = authentication.get_validated_token(token.encode())
        user = authentication.get_user(validated)
    except AuthenticationFailed as exc:
        # simplejwt puts its own code in the detail dict: {"detail": ..., "code": "user_inactive"}.
        detail = exc.detail
        inactive = isinstance(detail, dict) and str(detail.get("code", "")) == "user_inactive"
        raise AuthRefused(CLOSE_DEACTIVATED if inactive else CLOSE_UNAUTHENTICATED) from exc
    except (InvalidToken, TokenError) as exc:
        raise AuthRefused(CLOSE_UNAUTHENTICATED) from exc
    return user, float(validated["exp"]), validated.get("iat")


class ChangesConsumer(AsyncWebsocketConsumer):
    """One WebSocket client of the live stream: parses its messages; the hub does the rest."""

    hub: FeedHub
    subscriber: Subscriber
    #: No channel of its own per connection (Channels' default: one layer receive per connection). The process's
    #: hub holds the one channel that gets the wakes; see jobs.stream.
    channel_layer_alias = "jobops-live-no-per-connection-channel"

    async def connect(self) -> None:
        await self.accept()
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.hub = get_hub()
        self.subscriber = self.hub.connect(self)
        self.writer = asyncio.create_task(self._write())

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "subscriber"):
            self.hub.disconnect(self.subscriber)
            self.writer.cancel()

    # --- what the hub calls ------------------------------------------------------------------------------------

    def push(self, text: str) -> None:
        """Queue a message; it leaves after every message queued before it."""
        if self.outbox.qsize() >= settings.LIVE_OUTBOX_LIMIT:
            asyncio.ensure_future(self.hub.close(self.subscriber, CLOSE_TOO_SLOW))
            return
        self.outbox.put_nowait(text)

    async def close_with(self, code: int) -> None:
        self.writer.cancel()
        await self.close(code=code)

    async def _write(self) -> None:
        while True:
            text = await self.outbox.get()
            await self.send(text_data=text)

    # --- what the client sends ---------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        subscriber = self.subscriber
        if subscriber.closed:
            return
        subscriber.last_seen = time.monotonic()
        message = self._parse(text_data)
        kind = message.get("type") if message is not None else None
        if kind == "auth":
            await self._auth(message)  # type: ignore[arg-type]  # kind is set, so message is a dict
        elif kind not in ("subscribe", "ping"):
            await self.hub.close(subscriber, CLOSE_BAD_MESSAGE)
        elif not subscriber.authenticated:
            await self.hub.close(subscriber, CLOSE_UNAUTHENTICATED)
        elif kind == "ping":
            self.push(PONG)
        else:
            after = message.get("after")  # type: ignore[union-attr]  # as above
            if subscriber.subscribed or not (after is None or (isinstance(after, str) and 0 < len(after) <= 200)):
                await self.hub.close(subscriber, CLOSE_BAD_MESSAGE)
            else:
                await self.hub.subscribe(subscriber, after)

    @staticmethod
    def _parse(text_data: str | None) -> dict[str, Any] | None:
        if text_data is None or len(text_data) > 16_384:
            return None
        try:
            message = orjson.loads(text_data)
        except orjson.JSONDecodeError:
            return None
        return message if isinstance(message, dict) and isinstance(message.get("type"), str) else None

    async def _auth(self, message: dict[str, Any]) -> None:
        subscriber = self.subscriber
        token = message.get("token")
        if not isinstance(token, str) or not token or len(token) > 4096:
            await self.hub.close(subscriber, CLOSE_UNAUTHENTICATED)
            return
        try:
            user, expires_at, issued_at = await database_sync_to_async(authenticate_token)(token)
        except AuthRefused as refused:
            await self.hub.close(subscriber, refused.code)
            return
        if subscriber.authenticated and user.pk != subscriber.user.pk:
            await self.hub.close(subscriber, CLOSE_UNAUTHENTICATED)  # a connection belongs to one user
            return
        if subscriber.closed:
            return
        self.hub.authenticate(subscriber, user, expires_at, issued_at)
