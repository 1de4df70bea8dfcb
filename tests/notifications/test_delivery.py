"""The outbox's delivery side (notifications.delivery, through the tasks.emails adapters): rendered with text and
HTML parts, delivered at most once, retried with backoff, failed after the last attempt, re-enqueued by the sweep,
retried by hand (audited)."""

from __future__ import annotations

import datetime
import smtplib

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEntry
from notifications import delivery, services
from notifications.models import Notification
from tasks.emails import deliver_notification, requeue_unsent
from tests.factories import UserFactory
from tests.notifications.support import FUTURE, create_job, deliveries, pending_row, rows

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
Status = Notification.Status


# --- email content ---------------------------------------------------------------------------------------------


def test_email_has_text_and_html_parts_with_job_details(sales_agent, technician, mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "JobOps <ops@example.com>"
    job = create_job(sales_agent, technician)
    [row] = rows()
    assert deliver_notification.delay(row.pk).get() == "sent"
    [mail] = mailoutbox
    assert mail.subject == f"Job #{job.pk} assigned to you: Boiler <service>"
    assert mail.from_email == "JobOps <ops@example.com>"
    assert mail.extra_headers["X-JobOps-Notification"] == str(row.pk)
    # The same Message-ID on every attempt: a copy re-sent after a crash is recognisably the same message.
    sent_id = mail.message()["Message-ID"]
    assert sent_id == delivery.notification_render(row).message()["Message-ID"]
    assert sent_id.startswith(f"<jobops-notification-{row.pk}@")
    # Plain text: not HTML-escaped.
    assert f'Job #{job.pk} "Boiler <service>" has been assigned to you.' in mail.body
    assert "ACME & Sons" in mail.body and FUTURE.isoformat() in mail.body
    assert f"Hello {technician.get_full_name()}," in mail.body
    [(html, mimetype)] = mail.alternatives
    assert mimetype == "text/html"
    # HTML: escaped (a job title cannot inject markup).
    assert "Boiler &lt;service&gt;" in html and "ACME &amp; Sons" in html and "<service>" not in html


@pytest.mark.parametrize("kind", [k for k, _ in Notification.Kind.choices if k != Notification.Kind.WEBHOOK_EVENT])
def test_every_kind_renders(kind, technician):
    row = Notification(
        pk=1,
        kind=kind,
        recipient=technician.email,
        subject="S",
        context={
            "job_id": 7,
            "job_title": "T",
            "client_name": "C",
            "scheduled_date": "2031-05-01",
            "priority": "high",
            "recipient_name": "Tara",
            "date": "2031-05-01",
            "jobs": [{"job_id": 7, "job_title": "T", "client_name": "C", "priority": "high", "tasks": []}],
        },
    )
    message = delivery.notification_render(row)
    assert "Hello Tara," in message.body
    assert message.alternatives[0][0].startswith("<!DOCTYPE html>")


# --- delivery: at most once, retries, failure ------------------------------------------------------------------


def test_redelivered_message_sends_nothing_twice(sales_agent, technician, mailoutbox):
    row = pending_row(sales_agent, technician)
    assert deliver_notification.delay(row.pk).get() == "sent"
    assert deliver_notification.delay(row.pk).get() == "skipped"
    assert deliver_notification.delay(row.pk + 999).get() == "skipped"  # deleted/unknown row: nothing to do
    assert len(mailoutbox) == 1
    row.refresh_from_db()
    assert row.attempts == 1


def test_smtp_errors_retry_then_succeed(sales_agent, technician, mailoutbox, flaky_smtp):
    row = pending_row(sales_agent, technician)
    flaky_smtp.fail(2)
    result = deliver_notification.delay(row.pk)
    assert result.get() == "sent"
    row.refresh_from_db()
    assert flaky_smtp.calls == 3
    assert row.status == Status.SENT and row.attempts == 3
    assert row.last_error == ""
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("error", [smtplib.SMTPServerDisconnected, ConnectionRefusedError, TimeoutError])
def test_failed_after_max_attempts(sales_agent, technician, mailoutbox, flaky_smtp, settings, error):
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    row = pending_row(sales_agent, technician)
    flaky_smtp.fail(100, error)
    deliver_notification.delay(row.pk)
    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert row.attempts == 3 and flaky_smtp.calls == 3
    assert row.last_error.startswith(error.__name__)
    assert row.sent_at is None and mailoutbox == []
    # A failed row is final: redelivery does not try again.
    assert deliver_notification.delay(row.pk).get() == "skipped"
    assert flaky_smtp.calls == 3


def test_refused_recipient_fails_at_once(sales_agent, technician, flaky_smtp):
    row = pending_row(sales_agent, technician)
    flaky_smtp.fail(1, smtplib.SMTPRecipientsRefused)
    deliver_notification.delay(row.pk)
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.attempts == 1 and flaky_smtp.calls == 1


def test_transient_failure_records_attempt_and_holds_off_the_sweep(sales_agent, technician, flaky_smtp, settings):
    settings.NOTIFICATION_GRACE_SECONDS = 60
    row = pending_row(sales_agent, technician)
    flaky_smtp.fail(1)
    now = timezone.now()
    result = delivery.notification_deliver(notification_id=row.pk, now=now)
    assert result.outcome == delivery.Outcome.RETRY
    assert isinstance(result.error, smtplib.SMTPServerDisconnected)
    row.refresh_from_db()
    assert row.status == Status.PENDING and row.attempts == 1
    assert "SMTPServerDisconnected" in row.last_error
    assert row.next_attempt_at == now + datetime.timedelta(seconds=2 + 60)


# --- the requeue sweep ------------------------------------------------------------------------------------------


def test_requeue_claims_each_stale_row_once_per_grace_period(sales_agent, technician, monkeypatch, settings):
    settings.NOTIFICATION_GRACE_SECONDS = 120
    published = []
    monkeypatch.setattr(services, "_publish", published.append)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        create_job(sales_agent, technician)
        job_b = create_job(sales_agent, UserFactory(role=User.Role.TECHNICIAN))
    sent = Notification.objects.get(job=job_b)
    sent.status = Status.SENT
    sent.save()
    with time_machine.travel(start + datetime.timedelta(seconds=30), tick=False):
        fresh = create_job(sales_agent, UserFactory(role=User.Role.TECHNICIAN))
    [stale] = rows(status=Status.PENDING, created_at=start)

    with time_machine.travel(start + datetime.timedelta(seconds=121), tick=False):
        with transaction.atomic():
            assert delivery.notifications_requeue_unsent() == [stale.pk]
        assert delivery.notifications_requeue_unsent() == []  # claimed: not again within the grace period
    with time_machine.travel(start + datetime.timedelta(seconds=260), tick=False):
        # Still pending one grace period later (the message was lost again): both stale rows now.
        fresh_row = Notification.objects.get(job=fresh)
        assert sorted(delivery.notifications_requeue_unsent()) == sorted([stale.pk, fresh_row.pk])


def test_requeue_skips_rows_waiting_for_their_retry(sales_agent, technician, flaky_smtp, settings, monkeypatch):
    settings.NOTIFICATION_GRACE_SECONDS = 10
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        row = pending_row(sales_agent, technician)
    with time_machine.travel(start + datetime.timedelta(seconds=11), tick=False):
        flaky_smtp.fail(3)
        for _ in range(3):  # three failed attempts: Celery's next retry is due within 8 s
            delivery.notification_deliver(notification_id=row.pk)
        assert delivery.notifications_requeue_unsent() == []
    monkeypatch.setattr(services, "_publish", lambda pk: None)
    with time_machine.travel(start + datetime.timedelta(seconds=11 + 8 + 10 + 1), tick=False):
        assert delivery.notifications_requeue_unsent() == [row.pk]


def test_requeue_task_claims_in_batches(monkeypatch, sales_agent, settings):
    import tasks.emails

    settings.NOTIFICATION_GRACE_SECONDS = 10
    monkeypatch.setattr(tasks.emails, "REQUEUE_BATCH", 3)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(7):
            create_job(sales_agent, UserFactory(role=User.Role.TECHNICIAN))
    with time_machine.travel(start + datetime.timedelta(seconds=11), tick=False):
        assert requeue_unsent.delay().get() == 7
        assert requeue_unsent.delay().get() == 0
    assert Notification.objects.filter(next_attempt_at__isnull=False).count() == 7


# --- retry by hand -------------------------------------------------------------------------------------------------


def test_retry_puts_a_failed_row_back_and_audits(
    admin_user, sales_agent, technician, mailoutbox, django_capture_on_commit_callbacks
):
    row = pending_row(sales_agent, technician)
    Notification.objects.filter(pk=row.pk).update(status=Status.FAILED, attempts=6, last_error="SMTPError: x")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        delivery.notification_retry(actor=admin_user, notification_id=row.pk)
    assert len(deliveries(callbacks)) == 1
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1 and len(mailoutbox) == 1
    entry = AuditEntry.objects.get(action="notification.retried")
    assert entry.actor_id == admin_user.pk and entry.object_id == row.pk and entry.job_id == row.job_id
    assert entry.changes["status"] == ["failed", "pending"] and entry.changes["attempts"] == [6, 0]


@pytest.mark.parametrize("status", [Status.PENDING, Status.SENT])
def test_retry_refuses_rows_that_did_not_fail(admin_user, sales_agent, technician, status):
    row = pending_row(sales_agent, technician)
    Notification.objects.filter(pk=row.pk).update(status=status)
    with pytest.raises(delivery.NotificationNotFailed):
        delivery.notification_retry(actor=admin_user, notification_id=row.pk)
    assert not AuditEntry.objects.filter(action="notification.retried").exists()
