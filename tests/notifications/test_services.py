"""Email outbox: rows written with the change (never on rollback), enqueued on commit, delivered at most once,
retried with backoff, failed after the last attempt, re-enqueued by the sweep, deduplicated per day/episode."""

from __future__ import annotations

import datetime
import logging
import smtplib

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import User
from audit.models import AuditEntry
from jobs import services as job_services
from jobs.models import Job, JobTask
from notifications import services
from notifications.models import Notification
from tasks.emails import deliver_notification, requeue_unsent, send_daily_reminders
from tests.factories import JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
Status = Notification.Status
FUTURE = datetime.date(2031, 5, 1)


def create_job(actor, technician=None, **data):
    payload = {"title": "Boiler <service>", "client_name": "ACME & Sons", "scheduled_date": FUTURE, **data}
    if technician is not None:
        payload["assigned_to"] = technician
    return job_services.job_create(actor=actor, data=payload)


def rows(**filters):
    return list(Notification.objects.filter(**filters).order_by("id"))


# --- outbox rows commit with the change ------------------------------------------------------------------------


def test_assignment_writes_row_in_transaction_and_enqueues_once_on_commit(
    sales_agent, technician, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = create_job(sales_agent, technician)
    [row] = rows()
    assert (row.kind, row.recipient, row.recipient_user_id, row.job_id) == (
        Kind.JOB_ASSIGNED,
        technician.email,
        technician.pk,
        job.pk,
    )
    assert row.status == Status.PENDING and row.attempts == 0
    assert len(callbacks) == 1
    assert mailoutbox == []  # nothing is sent before the commit

    callbacks[0]()
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1 and row.sent_at is not None
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [technician.email]


def test_rollback_writes_no_row_and_enqueues_nothing(sales_agent, technician, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            create_job(sales_agent, technician)
            raise RuntimeError("the request failed after the service")
    assert Notification.objects.count() == 0
    assert Job.objects.count() == 0
    assert callbacks == []


@pytest.mark.django_db(transaction=True)
def test_queueing_outside_a_transaction_is_refused(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        services.notify_job_assigned(job=job)


def test_reassignment_emails_old_and_new_technician(
    sales_agent, technician, other_technician, mailoutbox, django_capture_on_commit_callbacks
):
    job = create_job(sales_agent, technician)
    Notification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job_services.job_update(actor=sales_agent, job_id=job.pk, data={"assigned_to": other_technician})
    assert len(callbacks) == 1
    sent = {m.to[0]: m for m in mailoutbox}
    assert set(sent) == {technician.email, other_technician.email}
    assert all(r.kind == Kind.JOB_REASSIGNED and r.status == Status.SENT for r in rows())
    assert "no longer assigned to you" in sent[technician.email].body
    assert other_technician.get_full_name() in sent[technician.email].body
    assert "reassigned to you" in sent[other_technician.email].body
    assert technician.get_full_name() in sent[other_technician.email].body


def test_unassignment_emails_only_the_old_technician(sales_agent, technician, django_capture_on_commit_callbacks):
    job = create_job(sales_agent, technician)
    Notification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        job_services.job_update(actor=sales_agent, job_id=job.pk, data={"assigned_to": None})
    [row] = rows()
    assert row.kind == Kind.JOB_REASSIGNED and row.recipient == technician.email
    assert row.context["assigned_to_recipient"] is False and row.context["new_technician"] is None


def test_completion_emails_the_creator(sales_agent, technician, mailoutbox, django_capture_on_commit_callbacks):
    job = create_job(sales_agent, technician)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job_services.job_complete(actor=technician, job_id=job.pk)
    [row] = rows(kind=Kind.JOB_COMPLETED)
    assert row.recipient == sales_agent.email and row.status == Status.SENT
    [mail] = mailoutbox
    assert mail.to == [sales_agent.email]
    assert f"Job #{job.pk} completed" in mail.subject
    assert technician.get_full_name() in mail.body


def test_overdue_at_creation_emails_technician_and_creator_once(sales_agent, technician):
    past = timezone.localdate() - datetime.timedelta(days=3)
    job = create_job(sales_agent, technician, scheduled_date=past)
    overdue = rows(kind=Kind.JOB_OVERDUE)
    assert {r.recipient for r in overdue} == {technician.email, sales_agent.email}
    assert {r.context["recipient_role"] for r in overdue} == {"technician", "creator"}
    assert all(r.dedupe_key.startswith(f"job_overdue:{job.pk}:{past.isoformat()}:") for r in overdue)
    # Asking again for the same episode (same job, date and day) queues nothing new.
    with transaction.atomic():
        assert services.notify_job_overdue(job=Job.objects.get(pk=job.pk)) == []
    assert len(rows(kind=Kind.JOB_OVERDUE)) == 2


def test_recipient_without_email_gets_no_row(sales_agent, caplog):
    silent = UserFactory(role=User.Role.TECHNICIAN, email="")
    with caplog.at_level(logging.INFO, logger="notifications.services"):
        create_job(sales_agent, silent)
    assert Notification.objects.count() == 0
    assert "no email address" in caplog.text


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
    # Plain text: not HTML-escaped.
    assert f'Job #{job.pk} "Boiler <service>" has been assigned to you.' in mail.body
    assert "ACME & Sons" in mail.body and FUTURE.isoformat() in mail.body
    assert f"Hello {technician.get_full_name()}," in mail.body
    [(html, mimetype)] = mail.alternatives
    assert mimetype == "text/html"
    # HTML: escaped (a job title cannot inject markup).
    assert "Boiler &lt;service&gt;" in html and "ACME &amp; Sons" in html and "<service>" not in html


@pytest.mark.parametrize("kind", [k for k, _ in Notification.Kind.choices])
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
    message = services.notification_render(row)
    assert "Hello Tara," in message.body
    assert message.alternatives[0][0].startswith("<!DOCTYPE html>")


# --- delivery: at most once, retries, failure ------------------------------------------------------------------


def pending_row(sales_agent, technician):
    create_job(sales_agent, technician)
    [row] = rows()
    return row


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
    result = services.notification_deliver(notification_id=row.pk, now=now)
    assert result.outcome == services.Outcome.RETRY
    assert isinstance(result.error, smtplib.SMTPServerDisconnected)
    row.refresh_from_db()
    assert row.status == Status.PENDING and row.attempts == 1
    assert "SMTPServerDisconnected" in row.last_error
    assert row.next_attempt_at == now + datetime.timedelta(seconds=2 + 60)


# --- broker down at commit; the requeue sweep --------------------------------------------------------------------


def test_broker_failure_at_commit_is_logged_and_the_sweep_delivers_later(
    sales_agent, technician, mailoutbox, monkeypatch, caplog, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFICATION_GRACE_SECONDS = 120
    calls = []

    def broker_down(notification_id):
        calls.append(notification_id)
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(services, "_publish", broker_down)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        with caplog.at_level(logging.ERROR, logger="notifications.services"):
            with django_capture_on_commit_callbacks(execute=True):
                job = create_job(sales_agent, technician)
                job_services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "Changed"})
    # The change is committed, the row waits, the error is logged (not raised to the caller).
    assert Job.objects.get(pk=job.pk).title == "Changed"
    [row] = rows()
    assert row.status == Status.PENDING and len(calls) == 1
    assert "could not enqueue notifications" in caplog.text
    assert mailoutbox == []

    monkeypatch.undo()
    with time_machine.travel(start + datetime.timedelta(seconds=60), tick=False):
        assert requeue_unsent.delay().get() == 0  # still within the grace period
    with time_machine.travel(start + datetime.timedelta(seconds=121), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert requeue_unsent.delay().get() == 1
    row.refresh_from_db()
    assert row.status == Status.SENT and len(mailoutbox) == 1


def test_publish_stops_at_the_first_broker_error(monkeypatch, caplog):
    published = []

    def publish(notification_id):
        if notification_id == 2:
            raise OperationalError("down")
        published.append(notification_id)

    monkeypatch.setattr(services, "_publish", publish)
    assert services.enqueue_deliveries([1, 2, 3]) == 1
    assert published == [1]


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
            assert services.notifications_requeue_unsent() == [stale.pk]
        assert services.notifications_requeue_unsent() == []  # claimed: not again within the grace period
    with time_machine.travel(start + datetime.timedelta(seconds=260), tick=False):
        # Still pending one grace period later (the message was lost again): both stale rows now.
        fresh_row = Notification.objects.get(job=fresh)
        assert sorted(services.notifications_requeue_unsent()) == sorted([stale.pk, fresh_row.pk])


def test_requeue_skips_rows_waiting_for_their_retry(sales_agent, technician, flaky_smtp, settings, monkeypatch):
    settings.NOTIFICATION_GRACE_SECONDS = 10
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        row = pending_row(sales_agent, technician)
    with time_machine.travel(start + datetime.timedelta(seconds=11), tick=False):
        flaky_smtp.fail(3)
        for _ in range(3):  # three failed attempts: Celery's next retry is due within 8 s
            services.notification_deliver(notification_id=row.pk)
        assert services.notifications_requeue_unsent() == []
    monkeypatch.setattr(services, "_publish", lambda pk: None)
    with time_machine.travel(start + datetime.timedelta(seconds=11 + 8 + 10 + 1), tick=False):
        assert services.notifications_requeue_unsent() == [row.pk]


# --- daily reminder ------------------------------------------------------------------------------------------------


def test_daily_reminder_once_per_technician_per_day(
    sales_agent, technician, other_technician, mailoutbox, django_capture_on_commit_callbacks
):
    today = datetime.date(2031, 6, 1)
    assert today != FUTURE
    job_a = JobFactory(created_by=sales_agent, assigned_to=technician, scheduled_date=today, title="Pump")
    job_b = JobFactory(created_by=sales_agent, assigned_to=technician, scheduled_date=today, title="Valve")
    JobTaskFactory(job=job_a, order=1, title="Inspect")
    JobTaskFactory(job=job_a, order=2, title="Replace seal")
    JobTaskFactory(job=job_b, order=1, title="Test pressure")
    # Nothing for: completed tasks, another day, a cancelled job, a job without technician.
    done = JobFactory(created_by=sales_agent, assigned_to=other_technician, scheduled_date=today)
    now = timezone.now()
    JobTaskFactory(job=done, order=1, status=JobTask.Status.COMPLETED, started_at=now, completed_at=now)
    JobTaskFactory(job=JobFactory(created_by=sales_agent, assigned_to=other_technician, scheduled_date=FUTURE), order=1)
    cancelled = JobFactory(
        created_by=sales_agent, assigned_to=other_technician, scheduled_date=today, status=Job.Status.CANCELLED
    )
    JobTaskFactory(job=cancelled, order=1)
    JobTaskFactory(job=JobFactory(created_by=sales_agent, scheduled_date=today), order=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert send_daily_reminders.delay(today.isoformat()).get() == 1
    [row] = rows(kind=Kind.DAILY_REMINDER)
    assert row.recipient == technician.email and row.dedupe_key == f"daily_reminder:{technician.pk}:2031-06-01"
    [mail] = mailoutbox
    assert "Pump" in mail.body and "Valve" in mail.body
    assert "1. Inspect" in mail.body and "2. Replace seal" in mail.body and "1. Test pressure" in mail.body

    with django_capture_on_commit_callbacks(execute=True):
        assert send_daily_reminders.delay(today.isoformat()).get() == 0  # same day: never twice
    assert len(mailoutbox) == 1 and Notification.objects.filter(kind=Kind.DAILY_REMINDER).count() == 1

    tomorrow = today + datetime.timedelta(days=1)
    job_a.scheduled_date = tomorrow
    job_a.save()
    assert send_daily_reminders.delay(tomorrow.isoformat()).get() == 1


def test_daily_reminder_defaults_to_today_in_time_zone(settings, sales_agent, technician):
    settings.TIME_ZONE = "Pacific/Auckland"  # UTC+12/13: already "tomorrow" in the evening UTC
    instant = datetime.datetime(2031, 5, 1, 20, 0, tzinfo=datetime.UTC)
    local_today = datetime.date(2031, 5, 2)
    JobTaskFactory(job=JobFactory(created_by=sales_agent, assigned_to=technician, scheduled_date=local_today), order=1)
    with time_machine.travel(instant, tick=False):
        assert send_daily_reminders.delay().get() == 1
    assert Notification.objects.get().dedupe_key.endswith(":2031-05-02")


# --- retry by hand -------------------------------------------------------------------------------------------------


def test_retry_puts_a_failed_row_back_and_audits(
    admin_user, sales_agent, technician, mailoutbox, django_capture_on_commit_callbacks
):
    row = pending_row(sales_agent, technician)
    Notification.objects.filter(pk=row.pk).update(status=Status.FAILED, attempts=6, last_error="SMTPError: x")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.notification_retry(actor=admin_user, notification_id=row.pk)
    assert len(callbacks) == 1
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1 and len(mailoutbox) == 1
    entry = AuditEntry.objects.get(action="notification.retried")
    assert entry.actor_id == admin_user.pk and entry.object_id == row.pk and entry.job_id == row.job_id
    assert entry.changes["status"] == ["failed", "pending"] and entry.changes["attempts"] == [6, 0]


@pytest.mark.parametrize("status", [Status.PENDING, Status.SENT])
def test_retry_refuses_rows_that_did_not_fail(admin_user, sales_agent, technician, status):
    row = pending_row(sales_agent, technician)
    Notification.objects.filter(pk=row.pk).update(status=status)
    with pytest.raises(services.NotificationNotFailed):
        services.notification_retry(actor=admin_user, notification_id=row.pk)
    assert not AuditEntry.objects.filter(action="notification.retried").exists()


# --- hand-over to the broker ---------------------------------------------------------------------------------------


def test_large_hand_over_is_fanned_out_in_chunks(monkeypatch):
    from tasks.emails import enqueue_notifications

    chunks, singles = [], []
    monkeypatch.setattr(services, "_publish_fanout", chunks.append)
    monkeypatch.setattr(services, "_publish", singles.append)
    ids = list(range(1, 1202))
    assert services.enqueue_deliveries(ids) == 1201
    assert [len(c) for c in chunks] == [500, 500, 201] and singles == []
    # A worker turns each chunk into one delivery task per id.
    assert enqueue_notifications.delay(chunks[2]).get() == 201
    assert singles == chunks[2]


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
