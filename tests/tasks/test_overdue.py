"""The overdue sweep: exact rule, idempotent, day boundaries in TIME_ZONE, clearing, audit, outbox, bulk cost."""

from __future__ import annotations

import datetime
import io
import threading
import time

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEntry
from jobops.context import audit_context
from jobs.models import Job
from jobs.sweep import jobs_flag_overdue
from notifications.models import Notification
from tasks.overdue import flag_overdue_jobs
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2031, 5, 10)
Status = Job.Status


def day(offset: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=offset)


@pytest.fixture
def jobs(sales_agent, technician):
    def make(offset, status=Status.PENDING, **kwargs):
        extra = {"completed_at": timezone.now()} if status == Status.COMPLETED else {}
        return JobFactory(
            created_by=sales_agent,
            assigned_to=technician,
            scheduled_date=day(offset),
            status=status,
            **extra,
            **kwargs,
        )

    return {
        "past_pending": make(-1),
        "past_in_progress": make(-30, Status.IN_PROGRESS),
        "past_completed": make(-2, Status.COMPLETED),
        "past_cancelled": make(-2, Status.CANCELLED),
        "today": make(0),
        "future": make(3),
        "already_flagged": make(-5, overdue=True),
    }


def overdue_names(jobs):
    flags = dict(Job.objects.values_list("pk", "overdue"))
    return {name for name, job in jobs.items() if flags[job.pk]}


def test_flags_exactly_open_jobs_scheduled_before_today(jobs, technician, sales_agent):
    result = flag_overdue_jobs.delay(TODAY.isoformat()).get()
    assert result == {"today": "2031-05-10", "flagged": 2, "cleared": 0, "notifications": 4}
    assert overdue_names(jobs) == {"past_pending", "past_in_progress", "already_flagged"}

    entries = AuditEntry.objects.filter(action="job.flagged_overdue").order_by("object_id")
    assert [e.object_id for e in entries] == sorted([jobs["past_pending"].pk, jobs["past_in_progress"].pk])
    for entry in entries:
        assert entry.actor_id is None and entry.actor_label == "system:flag_overdue_jobs"
        assert entry.source == "task" and entry.object_type == "job" and entry.job_id == entry.object_id
        assert entry.changes == {"overdue": [False, True]}
        assert entry.object_repr == str(Job.objects.get(pk=entry.object_id))

    rows = Notification.objects.filter(kind=Notification.Kind.JOB_OVERDUE)
    assert sorted((r.job_id, r.recipient) for r in rows) == sorted(
        (jobs[name].pk, email)
        for name in ("past_pending", "past_in_progress")
        for email in (technician.email, sales_agent.email)
    )
    assert all(r.status == Notification.Status.PENDING and r.context["flagged_on"] == "2031-05-10" for r in rows)


def test_second_run_changes_nothing(jobs):
    first = jobs_flag_overdue(today=TODAY)
    audits, outbox = AuditEntry.objects.count(), Notification.objects.count()
    updated = dict(Job.objects.values_list("pk", "updated_at"))
    second = jobs_flag_overdue(today=TODAY)
    assert (first.flagged, second.flagged, second.cleared, second.notifications) == (2, 0, 0, 0)
    assert AuditEntry.objects.count() == audits and Notification.objects.count() == outbox
    assert dict(Job.objects.values_list("pk", "updated_at")) == updated


def test_next_day_flags_yesterdays_jobs(jobs):
    jobs_flag_overdue(today=TODAY)
    result = jobs_flag_overdue(today=day(1))
    assert result.flagged == 1  # the job scheduled "today" became overdue at midnight
    assert overdue_names(jobs) == {"past_pending", "past_in_progress", "already_flagged", "today"}


def test_clears_flags_of_jobs_no_longer_overdue(jobs):
    rescheduled = JobFactory(created_by=jobs["today"].created_by, scheduled_date=day(2), overdue=True)
    due_today = JobFactory(created_by=jobs["today"].created_by, scheduled_date=TODAY, overdue=True)
    with audit_context(source="command", system="flag_overdue_jobs"):
        result = jobs_flag_overdue(today=TODAY)
    assert result.cleared == 2
    assert not Job.objects.filter(pk__in=[rescheduled.pk, due_today.pk], overdue=True).exists()
    cleared = AuditEntry.objects.filter(action="job.overdue_cleared")
    assert sorted(cleared.values_list("object_id", flat=True)) == sorted([rescheduled.pk, due_today.pk])
    assert all(e.changes == {"overdue": [True, False]} and e.source == "command" for e in cleared)
    assert not Notification.objects.filter(job__in=[rescheduled, due_today]).exists()


@pytest.mark.parametrize(
    ("tz", "instant", "overdue"),
    [
        # Scheduled 2031-05-10. New York is UTC-4 in May; Auckland UTC+12.
        ("America/New_York", datetime.datetime(2031, 5, 11, 3, 59, tzinfo=datetime.UTC), False),  # 23:59 on the 10th
        ("America/New_York", datetime.datetime(2031, 5, 11, 4, 0, tzinfo=datetime.UTC), True),  # 00:00 on the 11th
        ("Pacific/Auckland", datetime.datetime(2031, 5, 10, 11, 59, tzinfo=datetime.UTC), False),  # 23:59 on the 10th
        ("Pacific/Auckland", datetime.datetime(2031, 5, 10, 12, 0, tzinfo=datetime.UTC), True),  # 00:00 on the 11th
        ("UTC", datetime.datetime(2031, 5, 10, 23, 59, 59, tzinfo=datetime.UTC), False),
        ("UTC", datetime.datetime(2031, 5, 11, 0, 0, tzinfo=datetime.UTC), True),
    ],
)
def test_day_boundary_in_time_zone(settings, sales_agent, tz, instant, overdue):
    settings.TIME_ZONE = tz
    job = JobFactory(created_by=sales_agent, scheduled_date=TODAY)
    with time_machine.travel(instant, tick=False):
        result = flag_overdue_jobs.delay().get()  # no date: the task computes today in TIME_ZONE
        again = flag_overdue_jobs.delay().get()
    job.refresh_from_db()
    assert job.overdue is overdue
    assert result["flagged"] == int(overdue) and again["flagged"] == 0
    assert AuditEntry.objects.filter(action="job.flagged_overdue").count() == int(overdue)


def test_one_email_per_recipient_per_episode(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician, scheduled_date=day(-1))
    lone = JobFactory(created_by=sales_agent, scheduled_date=day(-1))  # no technician: the creator only
    self_made = JobFactory(created_by=sales_agent, assigned_to=None, scheduled_date=day(-1))
    jobs_flag_overdue(today=TODAY)
    assert Notification.objects.filter(job=job).count() == 2
    assert Notification.objects.filter(job=lone).count() == 1
    assert Notification.objects.filter(job=self_made).count() == 1

    # Rescheduled into the future (cleared), then the date passes again: a new episode, new emails.
    Job.objects.filter(pk=job.pk).update(scheduled_date=day(1))
    assert jobs_flag_overdue(today=TODAY).cleared == 1
    result = jobs_flag_overdue(today=day(2))
    assert result.flagged == 1 and result.notifications == 2
    assert Notification.objects.filter(job=job).count() == 4

    # Cleared and flagged again on the same day for the same date (a reopen): the same episode, no new email.
    Job.objects.filter(pk=job.pk).update(overdue=False)
    again = jobs_flag_overdue(today=day(2))
    assert again.flagged == 1 and again.notifications == 0
    assert Notification.objects.filter(job=job).count() == 4


def test_recipients_without_email_are_skipped(sales_agent):
    tech = UserFactory(role=User.Role.TECHNICIAN, email="")
    JobFactory(created_by=sales_agent, assigned_to=tech, scheduled_date=day(-1))
    result = jobs_flag_overdue(today=TODAY)
    assert result.flagged == 1 and result.notifications == 1
    assert list(Notification.objects.values_list("recipient", flat=True)) == [sales_agent.email]


def test_batches_cover_every_job(sales_agent, technician):
    Job.objects.bulk_create(
        Job(title=f"J{i}", client_name="C", scheduled_date=day(-1), created_by=sales_agent, assigned_to=technician)
        for i in range(25)
    )
    result = jobs_flag_overdue(today=TODAY, batch_size=7)
    assert result.flagged == 25 and result.notifications == 50
    assert not Job.objects.filter(overdue=False).exists()
    assert AuditEntry.objects.filter(action="job.flagged_overdue").count() == 25


def statements(ctx: CaptureQueriesContext) -> int:
    """Queries, not counting the savepoints of the test's own transaction."""
    return sum(1 for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"])


def test_ten_thousand_jobs_in_bounded_queries(sales_agent):
    technicians = [UserFactory(role=User.Role.TECHNICIAN) for _ in range(5)]
    n = 10_000
    Job.objects.bulk_create(
        (
            Job(
                title=f"Job {i}",
                client_name="Client",
                scheduled_date=day(-1 - i % 20),
                created_by=sales_agent,
                assigned_to=technicians[i % 5],
            )
            for i in range(n)
        ),
        batch_size=2000,
    )
    with CaptureQueriesContext(connection) as ctx:
        result = jobs_flag_overdue(today=TODAY, batch_size=1000)
    assert result.flagged == n and result.notifications == 2 * n
    assert Job.objects.filter(overdue=True).count() == n
    assert AuditEntry.objects.filter(action="job.flagged_overdue").count() == n
    # Per batch of 1000 jobs: claim, update, the audit, change-feed and outbox inserts (one statement each on
    # PostgreSQL; SQLite's 999-variable limit splits them) and two outbox lookups: never a query per job.
    per_batch_limit = 80 if connection.vendor == "sqlite" else 9
    assert statements(ctx) <= (n // 1000) * per_batch_limit + 10, statements(ctx)
    with CaptureQueriesContext(connection) as ctx:
        assert jobs_flag_overdue(today=TODAY).flagged == 0
    assert statements(ctx) == 4  # the idempotent run: two claims for each of flag and clear


def test_command_prints_counts(jobs):
    out = io.StringIO()
    call_command("flag_overdue_jobs", "--date", TODAY.isoformat(), stdout=out)
    assert out.getvalue().strip() == ("Overdue sweep for 2031-05-10: flagged 2, cleared 0, notifications queued 4.")
    entry = AuditEntry.objects.filter(action="job.flagged_overdue").first()
    assert entry.source == "command" and entry.actor_label == "system:flag_overdue_jobs"
    out = io.StringIO()
    call_command("flag_overdue_jobs", "--date", TODAY.isoformat(), stdout=out)
    assert "flagged 0, cleared 0, notifications queued 0" in out.getvalue()


def test_command_defaults_to_today_and_rejects_bad_dates(sales_agent):
    JobFactory(created_by=sales_agent, scheduled_date=timezone.localdate() - datetime.timedelta(days=1))
    out = io.StringIO()
    call_command("flag_overdue_jobs", stdout=out)
    assert f"for {timezone.localdate().isoformat()}: flagged 1" in out.getvalue()
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("flag_overdue_jobs", "--date", "10/05/2031")


@pytest.mark.django_db(transaction=True)
def test_job_locked_by_a_service_is_still_swept(require_postgres, sales_agent):
    """PostgreSQL: the SKIP LOCKED pass leaves a locked job alone, the final pass waits for it and flags it."""
    locked = JobFactory(created_by=sales_agent, scheduled_date=day(-1))
    free = JobFactory(created_by=sales_agent, scheduled_date=day(-1))
    holding, errors, seen_free_flagged = threading.Event(), [], []

    def hold_lock():
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                # Keep the lock until the sweep has committed the free job (it must not wait for this one first).
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if Job.objects.filter(pk=free.pk, overdue=True).exists():
                        seen_free_flagged.append(True)
                        break
                    time.sleep(0.05)
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    assert holding.wait(10)
    result = jobs_flag_overdue(today=TODAY)
    thread.join(10)
    assert not thread.is_alive() and errors == []
    assert seen_free_flagged == [True]  # flagged while the other job was still locked
    assert result.flagged == 2
    assert set(Job.objects.filter(overdue=True).values_list("pk", flat=True)) == {locked.pk, free.pk}
    assert AuditEntry.objects.filter(action="job.flagged_overdue").count() == 2


def test_sweep_emails_are_delivered_after_commit(
    sales_agent, technician, mailoutbox, django_capture_on_commit_callbacks
):
    """End to end in the embedded mode (eager tasks): 260 newly overdue jobs -> 520 emails, handed over in chunks."""
    Job.objects.bulk_create(
        Job(title=f"J{i}", client_name="C", scheduled_date=day(-1), created_by=sales_agent, assigned_to=technician)
        for i in range(260)
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = jobs_flag_overdue(today=TODAY)
    assert result.notifications == 520  # more than one fan-out chunk
    assert len(mailoutbox) == 520
    assert not Notification.objects.exclude(status=Notification.Status.SENT).exists()
    assert sum(1 for m in mailoutbox if m.to == [technician.email]) == 260
