"""The daily reminder beat task: tasks.emails.send_daily_reminders -> jobs.reminders.jobs_send_daily_reminders ->
notifications.services.notify_daily_reminders. One reminder per technician with open tasks on open jobs scheduled
that day, never twice for the same technician and day, "today" taken in TIME_ZONE."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.utils import timezone

from jobs.models import Job, JobTask
from notifications.models import Notification
from tasks.emails import send_daily_reminders
from tests.factories import JobFactory, JobTaskFactory

pytestmark = pytest.mark.django_db

Kind = Notification.Kind
FUTURE = datetime.date(2031, 5, 1)


def rows(**filters):
    return list(Notification.objects.filter(**filters).order_by("id"))


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
