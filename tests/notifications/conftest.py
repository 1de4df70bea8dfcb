"""Helpers for outbox tests: an SMTP backend that fails on demand, and a publisher that fails on demand."""

from __future__ import annotations

import smtplib

import pytest
from django.core.mail.backends import locmem


class FlakySMTP:
    """Counts send attempts; the next ``failures`` sends raise ``error`` (a fresh instance each time)."""

    def __init__(self) -> None:
        self.failures = 0
        self.calls = 0
        self.error: type[Exception] = smtplib.SMTPServerDisconnected

    def fail(self, times: int, error: type[Exception] = smtplib.SMTPServerDisconnected) -> FlakySMTP:
        self.failures = times
        self.error = error
        return self


@pytest.fixture
def flaky_smtp(monkeypatch):
    state = FlakySMTP()
    original = locmem.EmailBackend.send_messages

    def send_messages(self, messages):
        state.calls += 1
        if state.failures > 0:
            state.failures -= 1
            if state.error is smtplib.SMTPRecipientsRefused:
                raise smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"no such user")})
            raise state.error("connection unexpectedly closed")
        return original(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    return state
