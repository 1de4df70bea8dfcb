"""The outbox's write side (notifications.services): rows written with the change (never on rollback), enqueued
on commit by task *name*, deduplicated per day/episode; a broker failure at commit is logged and left to the sweep.
Delivery, the sweep and retries by hand are in test_delivery.py."""

from __future__ import annotations

import datetime
import logging

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import User
from jobs import services as job_services
from jobs.models import Job
from notifications import services
from notifications.models import Notification
from tasks.emails import requeue_unsent
from tests.factories import JobFactory, UserFactory
from tests.notifications.support import create_job, rows

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
Status = Notification.Status


def enqueues(callbacks):
    """The outbox's on-commit publishes among ``callbacks`` (the change feed adds a live-stream wake-up of its own)."""
    return [c for c in callbacks if getattr(c, "func", None) is services.enqueue_deliveries]


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
    # The outbox's one enqueue (the change feed adds its own live-stream wake-up beside it).
    [enqueue] = enqueues(callbacks)
    assert mailoutbox == []  # nothing is sent before the commit

    enqueue()
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
    assert len(enqueues(callbacks)) == 1
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


# --- hand-over to the broker ---------------------------------------------------------------------------------------


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

    # The failed publish marked the row due: the first sweep after the broker is back sends it, without waiting
    # out the grace period (which covers messages still on their way).
    assert row.next_attempt_at == start
    monkeypatch.undo()
    with time_machine.travel(start + datetime.timedelta(seconds=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert requeue_unsent.delay().get() == 1
    row.refresh_from_db()
    assert row.status == Status.SENT and len(mailoutbox) == 1


def test_a_row_whose_publish_succeeded_waits_for_the_grace_period(
    sales_agent, technician, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFICATION_GRACE_SECONDS = 120
    monkeypatch.setattr(services, "_publish", lambda notification_id: None)  # handed over (then lost)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            create_job(sales_agent, technician)
    [row] = rows()
    assert row.next_attempt_at is None
    with time_machine.travel(start + datetime.timedelta(seconds=60), tick=False):
        assert requeue_unsent.delay().get() == 0  # maybe still on its way
    with time_machine.travel(start + datetime.timedelta(seconds=121), tick=False):
        assert requeue_unsent.delay().get() == 1


def test_publish_stops_at_the_first_broker_error(monkeypatch, caplog):
    published = []

    def publish(notification_id):
        if notification_id == 2:
            raise OperationalError("down")
        published.append(notification_id)

    monkeypatch.setattr(services, "_publish", publish)
    assert services.enqueue_deliveries([1, 2, 3]) == 1
    assert published == [1]


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


def test_publishing_is_by_task_name_and_runs_in_process_when_eager(
    monkeypatch, settings, sales_agent, technician, mailoutbox, django_capture_on_commit_callbacks
):
    """The outbox names its tasks (no import of tasks.emails); with the test settings' eager Celery the named
    task runs at once, in this process."""
    sent = []
    monkeypatch.setattr(services, "send_task_by_name", lambda name, args: sent.append((name, args)))
    services._publish(41)
    services._publish_fanout([1, 2])
    assert sent == [("notifications.deliver", [41]), ("notifications.enqueue", [[1, 2]])]
    monkeypatch.undo()

    assert settings.CELERY_TASK_ALWAYS_EAGER is True
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        job = JobFactory(created_by=sales_agent, assigned_to=technician)
        [row_id] = services.notify_job_assigned(job=job)
    assert len(enqueues(callbacks)) == 1
    row = Notification.objects.get(pk=row_id)
    # The on-commit publish ran the named task in-process (eager): the row is sent and the mail is here.
    assert row.status == Status.SENT and row.attempts == 1
    assert [m.to for m in mailoutbox] == [[technician.email]]


# --- daily reminder (plain data; the query is jobs.reminders, tested through its task in tests/tasks) ---------


def _reminder(user_id, email, name="Tara Tech", job_ids=(7,)):
    jobs = [
        {
            "job_id": job_id,
            "job_title": f"Job {job_id}",
            "client_name": "ACME",
            "priority": "high",
            "tasks": [{"order": 1, "title": "Inspect", "status": "pending"}],
        }
        for job_id in job_ids
    ]
    return services.DailyReminder(technician=services.Person(user_id=user_id, email=email, name=name), jobs=jobs)


def test_daily_reminders_from_plain_data_once_per_technician_per_day(technician, other_technician):
    today = datetime.date(2031, 6, 1)
    reminders = [
        _reminder(technician.pk, technician.email, job_ids=(7, 8)),
        _reminder(other_technician.pk, "", job_ids=(9,)),  # no address: no row
        _reminder(technician.pk + 1000, "x@example.com", job_ids=()),  # nothing to do: no row
    ]
    with transaction.atomic():
        [row_id] = services.notify_daily_reminders(reminders=reminders, today=today)
    row = Notification.objects.get(pk=row_id)
    assert (row.kind, row.recipient, row.recipient_user_id, row.job_id) == (
        Kind.DAILY_REMINDER,
        technician.email,
        technician.pk,
        None,
    )
    assert row.dedupe_key == f"daily_reminder:{technician.pk}:2031-06-01"
    assert row.subject == "Your jobs for 2031-06-01: 2 job(s)"
    assert row.context["date"] == "2031-06-01" and row.context["recipient_name"] == "Tara Tech"
    assert [job["job_id"] for job in row.context["jobs"]] == [7, 8]
    assert row.context["jobs"][0]["tasks"] == [{"order": 1, "title": "Inspect", "status": "pending"}]
    with transaction.atomic():  # the same technician and day again: nothing new
        assert services.notify_daily_reminders(reminders=reminders[:1], today=today) == []
    with transaction.atomic():
        assert len(services.notify_daily_reminders(reminders=reminders[:1], today=today + datetime.timedelta(1))) == 1
