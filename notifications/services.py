"""The outbox, write side: every ``Notification`` row (email, push, SMS, webhook) is created here (``_store``), and
handed to the broker from here.

A change that asks for an email calls one of the ``notify_*`` functions *inside its own transaction*: the outbox row
commits with the change or not at all. ``transaction.on_commit`` then hands the row id to the broker (fast path);
a broker failure at that moment is logged, never raised to the caller, and ``notifications_requeue_unsent`` (beat,
every minute) re-enqueues rows still pending after ``NOTIFICATION_GRACE_SECONDS``. Sending, retries and the
requeue sweep are in ``notifications.delivery``.

The callers pass plain data or duck-typed objects (``Person``, ``JobFacts``, ``OverdueJob``, ``DailyReminder``):
this app imports neither the jobs app that asks for emails nor the task adapters that deliver them (tasks are
published by name, see ``jobops.tasking``).

Each message to a user is fanned out (``_fan_out``) to the channels the user chose for its kind
(``notifications.preferences``): email, Web Push (when VAPID is configured and the user has a subscription), SMS
(when Twilio is configured and the user has a phone); one row per channel, all in the same transaction. Recipients
without an email address get **no email row** (there is nobody to send to, and a ``failed`` row could never succeed
on retry); the skip is logged. Webhook rows are written by ``notifications.webhooks`` through ``_store`` too.
``dedupe_key`` makes "one reminder per technician per day" and "one overdue email per recipient per overdue episode"
database facts (unique constraint).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from jobops.roles import ADMIN
from jobops.tasking import send_task_by_name

from . import preferences, push, sms
from .models import Notification, PushSubscription

logger = logging.getLogger(__name__)

Kind = Notification.Kind
Channel = Notification.Channel
Status = Notification.Status

#: Rows created per INSERT statement.
INSERT_BATCH_SIZE = 1000
#: Celery task names (registered by ``tasks.emails``), published by name: the task module imports this one.
DELIVER_TASK = "notifications.deliver"
ENQUEUE_TASK = "notifications.enqueue"


@dataclass(frozen=True)
class Person:
    """A recipient (or a person named in an email) as plain data, so set-based callers need no model instances."""

    user_id: int | None
    email: str
    name: str

    @classmethod
    def of(cls, user: Any) -> Person | None:
        if user is None:
            return None
        return cls(user_id=user.pk, email=(user.email or "").strip(), name=user.get_full_name() or user.username)


@dataclass(frozen=True)
class JobFacts:
    """What an email says about a job, frozen at the time of the change."""

    job_id: int
    title: str
    client_name: str
    scheduled_date: datetime.date
    priority: str
    status: str

    @classmethod
    def of(cls, job: Any) -> JobFacts:
        return cls(
            job_id=job.pk,
            title=job.title,
            client_name=job.client_name,
            scheduled_date=job.scheduled_date,
            priority=job.priority,
            status=job.status,
        )

    def context(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "job_title": self.title,
            "client_name": self.client_name,
            "scheduled_date": self.scheduled_date.isoformat(),
            "priority": self.priority,
            "status": self.status,
        }


def _subject(text: str) -> str:
    text = " ".join(text.split())  # no newlines in a header
    return text if len(text) <= 255 else text[:254] + "…"


def _row(
    *,
    kind: str,
    to: Person | None,
    subject: str,
    context: Mapping[str, Any],
    job_id: int | None = None,
    dedupe_key: str | None = None,
) -> Notification | None:
    if to is None:
        return None
    return Notification(
        kind=kind,
        recipient=to.email,
        recipient_user_id=to.user_id,
        job_id=job_id,
        subject=_subject(subject),
        context={**context, "recipient_name": to.name},
        dedupe_key=dedupe_key,
    )


def _channel_copy(row: Notification, channel: str, recipient: str) -> Notification:
    return Notification(
        channel=channel,
        kind=row.kind,
        recipient=recipient,
        recipient_user_id=row.recipient_user_id,
        job_id=row.job_id,
        subject=row.subject,
        context=row.context,
        dedupe_key=f"{channel}:{row.dedupe_key}" if row.dedupe_key else None,
    )


def _fan_out(rows: list[Notification]) -> list[Notification]:
    """Each message to a user, on the channels the user chose for its kind (``preferences``): the email row if
    email is chosen and the user has an address, a push row if push is chosen, configured and the user has a
    subscription, an SMS row if SMS is chosen, configured and the user has a phone. Three queries per call."""
    users = sorted({row.recipient_user_id for row in rows if row.channel == Channel.EMAIL and row.recipient_user_id})
    chosen = preferences.channels_for(users) if users else {}
    pushable: set[int] = set()
    phones: dict[int, str] = {}
    if users and push.enabled():
        pushable = set(PushSubscription.objects.filter(user_id__in=users).values_list("user_id", flat=True))
    if users and sms.enabled():
        phones = dict(User.objects.filter(pk__in=users).exclude(phone="").values_list("pk", "phone"))
    out: list[Notification] = []
    for row in rows:
        user_id = row.recipient_user_id
        if row.channel != Channel.EMAIL or user_id is None:
            if row.channel != Channel.EMAIL or row.recipient:
                out.append(row)
            continue
        kinds = chosen[user_id]
        if row.kind in kinds[Channel.EMAIL]:
            if row.recipient:
                out.append(row)
            else:
                logger.info(
                    "notification skipped: recipient has no email address", extra={"kind": row.kind, "user": user_id}
                )
        if row.kind in kinds[Channel.PUSH] and user_id in pushable:
            out.append(_channel_copy(row, Channel.PUSH, f"user:{user_id}"))
        if row.kind in kinds[Channel.SMS] and user_id in phones:
            out.append(_channel_copy(row, Channel.SMS, phones[user_id]))
    return out


def _store(rows: Iterable[Notification | None]) -> list[int]:
    """Insert outbox rows in the caller's transaction and enqueue them on commit; returns the new ids.

    Rows whose ``dedupe_key`` already exists are dropped: first by a lookup, then by ``ON CONFLICT DO NOTHING``
    for a concurrent writer of the same key (the ids of such rows are re-read by key).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications must be queued inside the transaction of the change that asks for them")
    pending = _fan_out([row for row in rows if row is not None])
    if not pending:
        return []
    keys = [row.dedupe_key for row in pending if row.dedupe_key]
    if keys:
        existing = set(Notification.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True))
        pending = [row for row in pending if not row.dedupe_key or row.dedupe_key not in existing]
    plain = [row for row in pending if not row.dedupe_key]
    keyed = {row.dedupe_key: row for row in pending if row.dedupe_key}  # one row per key, even within a call
    ids = [row.pk for row in Notification.objects.bulk_create(plain, batch_size=INSERT_BATCH_SIZE)]
    if keyed:
        Notification.objects.bulk_create(keyed.values(), batch_size=INSERT_BATCH_SIZE, ignore_conflicts=True)
        ids.extend(
            Notification.objects.filter(dedupe_key__in=list(keyed), status=Status.PENDING, attempts=0)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    if ids:
        transaction.on_commit(partial(enqueue_deliveries, ids))
    return ids


# --- publishing ----------------------------------------------------------------------------------------------------


def _publish(notification_id: int) -> None:
    """Hand one outbox id to the broker (in-process at once in the embedded default, where tasks run eagerly)."""
    send_task_by_name(DELIVER_TASK, args=[notification_id])


def _publish_fanout(ids: list[int]) -> None:
    """Hand a chunk of outbox ids to a worker, which publishes one delivery task per id."""
    send_task_by_name(ENQUEUE_TASK, args=[ids])


#: Above this many ids, the committing process publishes chunks of ids (one message per chunk) and workers fan
#: them out, so a sweep that queued 100k emails does not spend minutes publishing after its commit.
FANOUT_CHUNK = 500


def enqueue_deliveries(ids: Sequence[int]) -> int:
    """Publish delivery tasks for ``ids``; returns how many ids were handed over. Never raises.

    Called after commit. When the broker is unreachable the first failure is logged and the rest are left alone
    (each publish would wait for the same retry policy): the rows stay pending, marked due now
    (``next_attempt_at``), so the first requeue sweep after the broker returns sends them instead of waiting out
    the grace period that covers messages still on their way.
    """
    ids = list(ids)
    fanout = len(ids) > FANOUT_CHUNK
    units = [ids[i : i + FANOUT_CHUNK] for i in range(0, len(ids), FANOUT_CHUNK)] if fanout else [[i] for i in ids]
    handed = 0
    for unit in units:
        try:
            if fanout:
                _publish_fanout(unit)
            else:
                _publish(unit[0])
        except Exception:
            logger.exception(
                "could not enqueue notifications; the outbox sweep will retry them",
                extra={"notification_id": unit[0], "not_enqueued": len(ids) - handed},
            )
            _due_now(ids[handed:])
            break
        handed += len(unit)
    return handed


def _due_now(ids: Sequence[int]) -> None:
    """Mark rows the broker never got as due for the sweep at once (rows the sweep itself claimed keep their
    claim). Never raises: the database may be unreachable too, and then the grace period still covers them."""
    try:
        Notification.objects.filter(
            pk__in=list(ids), status=Notification.Status.PENDING, next_attempt_at__isnull=True
        ).update(next_attempt_at=timezone.now())
    except Exception:
        logger.warning("could not mark unsent notifications as due; the sweep takes them after the grace period")


# --- what asks for an email ----------------------------------------------------------------------------------------


def notify_job_assigned(*, job: Any, previous_assignee: Any = None) -> list[int]:
    """Queue the assignment emails for ``job`` in the caller's transaction.

    No previous assignee: ``job_assigned`` to the new technician. A previous one: ``job_reassigned`` to the old
    technician (it is no longer theirs) and to the new one, if any. Returns the ids of the rows written.
    """
    facts = JobFacts.of(job)
    new = Person.of(job.assigned_to) if job.assigned_to_id is not None else None
    old = Person.of(previous_assignee)
    if old is not None and new is not None and old.user_id == new.user_id:
        return []
    base = facts.context()
    rows: list[Notification | None] = []
    if old is None:
        rows.append(
            _row(
                kind=Kind.JOB_ASSIGNED,
                to=new,
                subject=f"Job #{facts.job_id} assigned to you: {facts.title}",
                context=base,
                job_id=facts.job_id,
            )
        )
    else:
        names = {"previous_technician": old.name, "new_technician": new.name if new else None}
        rows.append(
            _row(
                kind=Kind.JOB_REASSIGNED,
                to=old,
                subject=f"Job #{facts.job_id} is no longer assigned to you: {facts.title}",
                context={**base, **names, "assigned_to_recipient": False},
                job_id=facts.job_id,
            )
        )
        rows.append(
            _row(
                kind=Kind.JOB_REASSIGNED,
                to=new,
                subject=f"Job #{facts.job_id} reassigned to you: {facts.title}",
                context={**base, **names, "assigned_to_recipient": True},
                job_id=facts.job_id,
            )
        )
    return _store(rows)


def notify_job_completed(*, job: Any) -> list[int]:
    """Queue ``job_completed`` to the job's creator in the caller's transaction."""
    facts = JobFacts.of(job)
    technician = Person.of(job.assigned_to) if job.assigned_to_id is not None else None
    completed_at = job.completed_at or timezone.now()
    context = {
        **facts.context(),
        "completed_at": timezone.localtime(completed_at).strftime("%Y-%m-%d %H:%M %Z"),
        "technician": technician.name if technician else None,
    }
    return _store(
        [
            _row(
                kind=Kind.JOB_COMPLETED,
                to=Person.of(job.created_by),
                subject=f"Job #{facts.job_id} completed: {facts.title}",
                context=context,
                job_id=facts.job_id,
            )
        ]
    )


def overdue_dedupe_key(*, job_id: int, scheduled_date: datetime.date, flagged_on: datetime.date, user_id: Any) -> str:
    """One overdue email per recipient per *overdue episode*.

    An episode starts when the flag goes from false to true. It is identified by the job, the scheduled date that
    made it overdue and the day (in TIME_ZONE) it was flagged: rescheduling and becoming overdue again is a new
    episode (new date), and so is the same job flagged again on a later day after it was cleared (reopened). Two
    flags of the same job for the same date on the same day collapse into one email.
    """
    return f"job_overdue:{job_id}:{scheduled_date.isoformat()}:{flagged_on.isoformat()}:{user_id}"


def _overdue_rows(
    facts: JobFacts, technician: Person | None, creator: Person | None, today: datetime.date
) -> list[Notification | None]:
    rows: list[Notification | None] = []
    seen: set[int | None] = set()
    for person, role in ((technician, "technician"), (creator, "creator")):
        if person is None or person.user_id in seen:
            continue
        seen.add(person.user_id)
        rows.append(
            _row(
                kind=Kind.JOB_OVERDUE,
                to=person,
                subject=f"Job #{facts.job_id} is overdue: {facts.title}",
                context={**facts.context(), "recipient_role": role, "flagged_on": today.isoformat()},
                job_id=facts.job_id,
                dedupe_key=overdue_dedupe_key(
                    job_id=facts.job_id, scheduled_date=facts.scheduled_date, flagged_on=today, user_id=person.user_id
                ),
            )
        )
    return rows


def notify_job_overdue(*, job: Any, today: datetime.date | None = None) -> list[int]:
    """Queue ``job_overdue`` to the job's technician and creator (once per overdue episode, see
    ``overdue_dedupe_key``) in the caller's transaction; ``today`` defaults to today in TIME_ZONE."""
    today = today or timezone.localdate()
    technician = Person.of(job.assigned_to) if job.assigned_to_id is not None else None
    return _store(_overdue_rows(JobFacts.of(job), technician, Person.of(job.created_by), today))


@dataclass(frozen=True)
class OverdueJob:
    """A newly flagged job as the set-based sweep reads it (one ``values()`` row, no model instances)."""

    facts: JobFacts
    technician: Person | None
    creator: Person | None


def notify_jobs_overdue(*, jobs: Iterable[OverdueJob], today: datetime.date) -> list[int]:
    """Bulk ``notify_job_overdue`` for the overdue sweep: a fixed number of statements per call."""
    rows: list[Notification | None] = []
    for item in jobs:
        rows.extend(_overdue_rows(item.facts, item.technician, item.creator, today))
    return _store(rows)


@dataclass(frozen=True)
class DailyReminder:
    """One technician's open work for a day, as plain data: the jobs in the order to do them, each a mapping with
    ``job_id``, ``job_title``, ``client_name``, ``priority`` and ``tasks`` (mappings with ``order``, ``title`` and
    ``status``, in task order). This is the ``daily_reminder`` email's template context."""

    technician: Person
    jobs: Sequence[Mapping[str, Any]]


def daily_reminder_dedupe_key(*, user_id: Any, day: datetime.date) -> str:
    """One daily reminder per technician per day."""
    return f"daily_reminder:{user_id}:{day.isoformat()}"


def notify_daily_reminders(*, reminders: Iterable[DailyReminder], today: datetime.date) -> list[int]:
    """Queue one ``daily_reminder`` per technician for ``today`` in the caller's transaction; a reminder without
    jobs is skipped. Never twice for the same technician and day (``daily_reminder_dedupe_key``), so a repeated run
    queues nothing new. Returns the ids of the rows written; a fixed number of statements per call."""
    rows = [
        _row(
            kind=Kind.DAILY_REMINDER,
            to=reminder.technician,
            subject=f"Your jobs for {today.isoformat()}: {len(reminder.jobs)} job(s)",
            context={"date": today.isoformat(), "jobs": [dict(job) for job in reminder.jobs]},
            dedupe_key=daily_reminder_dedupe_key(user_id=reminder.technician.user_id, day=today),
        )
        for reminder in reminders
        if reminder.jobs
    ]
    return _store(rows)


def notify_webhook_disabled(*, endpoint_id: int, url: str, reason: str) -> list[int]:
    """Queue ``webhook_disabled`` to every active admin in the caller's transaction (the endpoint was disabled after
    failing for days); once per endpoint and day."""
    admins = User.objects.filter(role=ADMIN, is_active=True).order_by("pk")
    day = timezone.localdate().isoformat()
    return _store(
        _row(
            kind=Kind.WEBHOOK_DISABLED,
            to=Person.of(admin),
            subject=f"Webhook endpoint #{endpoint_id} disabled",
            context={"endpoint_id": endpoint_id, "url": url, "reason": reason},
            dedupe_key=f"webhook_disabled:{endpoint_id}:{day}:{admin.pk}",
        )
        for admin in admins
    )
