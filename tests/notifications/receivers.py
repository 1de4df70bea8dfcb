"""Local HTTP receivers for the outbound tests: a webhook receiver that verifies every request with the official
Standard Webhooks library, with scripted answers (status codes, redirects, slow or huge bodies)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    verified: bool
    error: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``answers``: status codes to answer in order (then ``default``); ``secrets``: accepted secrets (any one
    verifying is enough, as a receiver does during a rotation)."""

    port: int = 0
    secrets: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    default: int = 204
    headers_out: dict[str, str] = field(default_factory=dict)
    body_out: bytes = b""
    received: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verify(self, headers: dict[str, str], body: str) -> tuple[bool, str]:
        error = "no secret"
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                error = str(exc)
            else:
                return True, ""
        return False, error

    @property
    def verified(self) -> list[Received]:
        return [r for r in self.received if r.verified]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok, error = receiver.verify(headers, body)
            item = Received(headers, body, ok, error)
            with receiver.lock:
                receiver.received.append(item)
                status = receiver.answers.pop(0) if receiver.answers else receiver.default
            if receiver.on_request:
                receiver.on_request(item)
            self.send_response(status)
            for name, value in receiver.headers_out.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(receiver.body_out)))
            self.end_headers()
            self.wfile.write(receiver.body_out)

    return Handler


def serve(receiver: Receiver) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
