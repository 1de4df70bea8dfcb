"""SMS through Twilio's REST API (the ``twilio`` package): one outbox row per (user, message), to the user's phone
in E.164, from ``TWILIO_FROM``. Configured when ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and ``TWILIO_FROM`` are
set; ``TWILIO_API_BASE_URL`` points the client at another origin (a local stand-in in tests).

A 4xx answer (a bad number, an unverified recipient) is permanent and fails the row at once; 429, 5xx and network
errors are transient and retried like an email.
"""

from __future__ import annotations

from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from .models import Notification

TIMEOUT_SECONDS = 10
MAX_BODY = 480  # three SMS segments at most


class SmsTransient(OSError):
    """Twilio unreachable, throttling or failing: retried."""


class SmsRejected(Exception):
    """Twilio refused the message (4xx): permanent."""


def enabled() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_FROM)


def client() -> Client:
    twilio = Client(
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        http_client=TwilioHttpClient(timeout=TIMEOUT_SECONDS),
    )
    if settings.TWILIO_API_BASE_URL:
        twilio.api.base_url = settings.TWILIO_API_BASE_URL.rstrip("/")
    return twilio


def body_of(notification: Notification) -> str:
    text = f"JobOps: {notification.subject}"
    return text if len(text) <= MAX_BODY else text[: MAX_BODY - 1] + "…"


def sms_send(notification: Notification) -> str:
    """Send the row's text to its recipient (an E.164 number); returns Twilio's message SID."""
    try:
        message = client().messages.create(
            to=notification.recipient, from_=settings.TWILIO_FROM, body=body_of(notification)
        )
    except TwilioRestException as exc:
        if exc.status == 429 or exc.status >= 500:
            raise SmsTransient(f"Twilio answered {exc.status}: {exc.msg}") from exc
        raise SmsRejected(f"Twilio answered {exc.status}: {exc.msg}") from exc
    except Exception as exc:  # requests' connection errors and timeouts
        raise SmsTransient(f"{type(exc).__name__}: {exc}") from exc
    return str(message.sid)
