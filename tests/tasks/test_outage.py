"""Tasks while PostgreSQL is unreachable (tasks/outage.py): the frequent beat tasks skip a run with a WARNING
instead of an ERROR traceback every few seconds; a delivery and the daily overdue sweep retry (the same row, the
same date) instead of waiting for the sweep's grace or the next day. Other errors propagate as before."""

from __future__ import annotations

import datetime
import logging

import psycopg
import pytest
from celery.exceptions import Retry
from django.db import OperationalError

from tasks import emails, overdue, webhooks


def unreachable() -> OperationalError:
    cause = psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", port 1 failed: '
                                     "Connection refused")  # fmt: skip
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


def test_a_beat_task_skips_its_run_with_a_warning(monkeypatch, caplog):
    def relay():
        raise unreachable()

    monkeypatch.setattr(webhooks, "relay_webhooks", relay)
    with caplog.at_level(logging.WARNING, logger="tasks.outage"):
        assert webhooks.relay_webhooks_task.run() is None
    assert "relay_webhooks_task skipped: the database is unreachable (connection_failure)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_beat_task_still_raises_any_other_error(monkeypatch):
    def relay():
        raise OperationalError("relation does not exist")  # not an outage: a bug

    monkeypatch.setattr(webhooks, "relay_webhooks", relay)
    with pytest.raises(OperationalError):
        webhooks.relay_webhooks_task.run()


def test_a_delivery_retries_soon_when_the_database_is_unreachable(monkeypatch, settings):
    settings.DB_UNAVAILABLE_RETRY_AFTER = 5
    retries = []

    def deliver(*, notification_id):
        raise unreachable()

    monkeypatch.setattr(emails, "notification_deliver", deliver)
    monkeypatch.setattr(
        emails.deliver_notification, "retry", lambda **kw: retries.append(kw) or Retry("later", when=kw["countdown"])
    )
    with pytest.raises(Retry):
        emails.deliver_notification.run(42)
    assert retries and retries[0]["countdown"] == 5 and isinstance(retries[0]["exc"], OperationalError)


def test_the_overdue_sweep_retries_with_the_same_date(monkeypatch, settings):
    calls, retries = [], []

    def sweep(*, today):
        calls.append(today)
        raise unreachable()

    monkeypatch.setattr(overdue, "jobs_flag_overdue", sweep)
    monkeypatch.setattr(
        overdue.flag_overdue_jobs, "retry", lambda **kw: retries.append(kw) or Retry("later", when=kw["countdown"])
    )
    with pytest.raises(Retry):
        overdue.flag_overdue_jobs.run()  # no date given: today is computed once and kept for the retry
    assert retries[0]["args"] == (calls[0].isoformat(),)
    assert isinstance(calls[0], datetime.date)
    assert retries[0]["countdown"] == overdue.UNREACHABLE_RETRY_SECONDS


def test_the_overdue_sweep_still_raises_a_bug(monkeypatch):
    def sweep(*, today):
        raise ValueError("a bug")

    monkeypatch.setattr(overdue, "jobs_flag_overdue", sweep)
    with pytest.raises(ValueError):
        overdue.flag_overdue_jobs.run("2030-01-01")
