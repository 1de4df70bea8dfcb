"""The drill's delivery sinks: they count every email, push, SMS and webhook JobOps sends, by the id it carries.

- SMTP (aiosmtpd): an email's ``X-JobOps-Notification`` header is its outbox row.
- Web Push: one HTTP path per subscription; the drill holds the subscription's private key and auth secret, so it
  decrypts the RFC 8291 body and reads the row id in the payload.
- SMS: a stand-in of Twilio's Messages endpoint (form fields ``To`` and ``Body``); counted by (recipient, text).
- Webhooks: counted by ``webhook-id`` (the same on every retry of one event), each verified with the official
  Standard Webhooks library against the endpoint's secret.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections import Counter
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import http_ece
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Sinks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.emails: Counter[int] = Counter()
        self.email_message_ids: dict[int, set[str]] = {}
        self.push: Counter[int] = Counter()
        self.sms: Counter[tuple[str, str]] = Counter()
        self.webhooks: Counter[str] = Counter()
        self.unverified_webhooks = 0
        self.undecodable = 0
        self.webhook_secret = ""
        # One browser key for every subscription (each has its own endpoint path).
        self.browser_key = ec.generate_private_key(ec.SECP256R1())
        self.browser_auth = b"drill-auth-16byt"
        self.smtp: Controller | None = None
        self.http: ThreadingHTTPServer | None = None
        self.smtp_port = 0
        self.http_port = 0

    # --- what the drill gives JobOps ----------------------------------------------------------------------------
    def push_keys(self) -> dict[str, str]:
        public = self.browser_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.browser_auth)}

    def push_endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/push/{name}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/hook"

    @property
    def twilio_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # --- servers ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        sinks = self

        class SmtpHandler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                message = message_from_bytes(envelope.content)
                ident = message.get("X-JobOps-Notification", "")
                with sinks.lock:
                    if ident.isdigit():
                        sinks.emails[int(ident)] += len(envelope.rcpt_tos)
                        sinks.email_message_ids.setdefault(int(ident), set()).add(message.get("Message-ID", ""))
                    else:
                        sinks.undecodable += 1
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd needs a real port to check its own server
            probe.bind(("127.0.0.1", 0))
            self.smtp_port = probe.getsockname()[1]
        self.smtp = Controller(SmtpHandler(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path == "/hook":
                    sinks.on_webhook(headers, raw)
                    self.answer(204)
                elif self.path.startswith("/push/"):
                    sinks.on_push(raw)
                    self.answer(201)
                elif self.path.endswith("/Messages.json"):
                    form = parse_qs(raw.decode())
                    with sinks.lock:
                        sinks.sms[(form.get("To", [""])[0], form.get("Body", [""])[0])] += 1
                    sid = "SM" + uuid.uuid4().hex
                    self.answer(201, json.dumps({"sid": sid, "status": "queued"}).encode())
                else:
                    self.answer(404)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.http_port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.smtp is not None:
            self.smtp.stop()
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()

    # --- counting -----------------------------------------------------------------------------------------------
    def on_webhook(self, headers: dict[str, str], raw: bytes) -> None:
        verified = False
        if self.webhook_secret:
            try:
                Webhook(self.webhook_secret).verify(raw.decode(), headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self.lock:
            self.webhooks[headers.get("webhook-id", "")] += 1
            if not verified:
                self.unverified_webhooks += 1

    def on_push(self, raw: bytes) -> None:
        try:
            payload = json.loads(
                http_ece.decrypt(raw, private_key=self.browser_key, auth_secret=self.browser_auth, version="aes128gcm")
            )
            ident = int(payload["id"])
        except Exception:  # counted: a push the drill cannot read is a finding
            with self.lock:
                self.undecodable += 1
            return
        with self.lock:
            self.push[ident] += 1
