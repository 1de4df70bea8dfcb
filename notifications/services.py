"""The email outbox: every write to ``Notification``.

A change that asks for an email calls one of the ``notify_*`` functions *inside its own transaction*: the outbox row
commits with the change or not at all. ``transaction.on_commit`` then hands the row id to the broker (fast path);
a broker failure at that moment is logged, never raised to the caller, and ``notifications_requeue_unsent`` (beat,
every minute) re-enqueues rows still pending after ``NOTIFICATION_GRACE_SECONDS``. Delivery
(``notification_deliver``) locks the row, returns at once unless it is pending, sends, and marks it sent in the
same transaction, so a redelivered message sends nothing twice. A crash after the SMTP server accepted the message
but before the commit can still give one duplicate: at-least-once, the documented limit of any outbox.

Recipients without an email address get **no row** (there is nobody to send to, and a ``failed`` row could never
succeed on retry); the skip is logged. ``dedupe_key`` makes "one reminder per technician per day" and "one overdue
email per recipient per overdue episode" database facts (unique constraint).
"""

from __future__ import annotations

import datetime
import logging
import smtplib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from audit.services import audit_record
from jobops.exceptions import ApplicationError

from .models import Notification

logger = logging.getLogger(__name__)

Kind = Notification.Kind
Status = Notification.Status

#: Upper bound of Celery's exponential backoff (``retry_backoff_max`` on the delivery task).
RETRY_BACKOFF_MAX_SECONDS = 600
#: Rows created per INSERT statement.
INSERT_BATCH_SIZE = 1000


class NotificationNotFailed(ApplicationError):
    """Only a failed notification can be re-queued by hand (pending ones are on their way, sent ones are done)."""

    default_code = "not_failed"


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
    if not to.email:
        logger.info("notification skipped: recipient has no email address", extra={"kind": kind, "user": to.user_id})
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


def _store(rows: Iterable[Notification | None]) -> list[int]:
    """Insert outbox rows in the caller's transaction and enqueue them on commit; returns the new ids.

    Rows whose ``dedupe_key`` already exists are dropped: first by a lookup, then by ``ON CONFLICT DO NOTHING``
    for a concurrent writer of the same key (the ids of such rows are re-read by key).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications must be queued inside the transaction of the change that asks for them")
    pending = [row for row in rows if row is not None]
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
    from tasks.emails import deliver_notification  # the task module imports this one

    deliver_notification.apply_async(args=[notification_id])


def _publish_fanout(ids: list[int]) -> None:
    """Hand a chunk of outbox ids to a worker, which publishes one delivery task per id."""
    from tasks.emails import enqueue_notifications

    enqueue_notifications.apply_async(args=[ids])


#: Above this many ids, the committing process publishes chunks of ids (one message per chunk) and workers fan
#: them out, so a sweep that queued 100k emails does not spend minutes publishing after its commit.
FANOUT_CHUNK = 500


def enqueue_deliveries(ids: Sequence[int]) -> int:
    """Publish delivery tasks for ``ids``; returns how many ids were handed over. Never raises.

    Called after commit. When the broker is unreachable the first failure is logged and the rest are left alone
    (each publish would wait for the same retry policy): the rows stay pending and the requeue sweep sends them.
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
            break
        handed += len(unit)
    return handed


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


def _overdue_rows(facts: JobFacts, technician: Person | None, creator: Person | None, today: datetime.date) -> list:
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


@transaction.atomic
def notifications_send_daily_reminders(*, today: datetime.date) -> list[int]:
    """Queue one ``daily_reminder`` per technician with open tasks on open jobs scheduled ``today``.

    Never twice for the same technician and day (``dedupe_key = daily_reminder:<user>:<date>``), so a redelivered
    or repeated run queues nothing new. Returns the ids of the rows written. Three or four queries whatever the
    number of technicians.
    """
    from jobs.models import Job, JobTask  # jobs.services imports this module

    tasks = (
        JobTask.objects.filter(
            job__scheduled_date=today,
            job__status__in=Job.OPEN_STATUSES,
            job__assigned_to__isnull=False,
            job__assigned_to__is_active=True,
            status__in=(JobTask.Status.PENDING, JobTask.Status.IN_PROGRESS),
        )
        .order_by("job__assigned_to_id", "job_id", "order")
        .values(
            "job_id",
            "job__title",
            "job__client_name",
            "job__priority",
            "job__assigned_to_id",
            "job__assigned_to__email",
            "job__assigned_to__first_name",
            "job__assigned_to__last_name",
            "job__assigned_to__username",
            "order",
            "title",
            "status",
        )
    )
    per_tech: dict[int, dict[str, Any]] = {}
    for task in tasks:
        tech = per_tech.setdefault(
            task["job__assigned_to_id"],
            {
                "person": Person(
                    user_id=task["job__assigned_to_id"],
                    email=(task["job__assigned_to__email"] or "").strip(),
                    name=f"{task['job__assigned_to__first_name']} {task['job__assigned_to__last_name']}".strip()
                    or task["job__assigned_to__username"],
                ),
                "jobs": {},
            },
        )
        job = tech["jobs"].setdefault(
            task["job_id"],
            {
                "job_id": task["job_id"],
                "job_title": task["job__title"],
                "client_name": task["job__client_name"],
                "priority": task["job__priority"],
                "tasks": [],
            },
        )
        job["tasks"].append({"order": task["order"], "title": task["title"], "status": task["status"]})
    rows = [
        _row(
            kind=Kind.DAILY_REMINDER,
            to=tech["person"],
            subject=f"Your jobs for {today.isoformat()}: {len(tech['jobs'])} job(s)",
            context={"date": today.isoformat(), "jobs": list(tech["jobs"].values())},
            dedupe_key=f"daily_reminder:{user_id}:{today.isoformat()}",
        )
        for user_id, tech in per_tech.items()
    ]
    return _store(rows)


# --- delivery ------------------------------------------------------------------------------------------------------


class Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # missing, already sent or failed: a redelivery
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    error: BaseException | None = None


#: Errors worth another attempt: the SMTP server down, slow or answering 4xx. A refused recipient is permanent.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPRecipientsRefused,)


def _max_attempts() -> int:
    return max(1, int(settings.NOTIFICATION_MAX_ATTEMPTS))


def _grace() -> datetime.timedelta:
    return datetime.timedelta(seconds=int(settings.NOTIFICATION_GRACE_SECONDS))


def notification_render(notification: Notification) -> EmailMultiAlternatives:
    """The email for an outbox row: plain text body plus an HTML alternative, from the row's stored context."""
    context = {**notification.context, "subject": notification.subject, "kind": notification.kind}
    text = render_to_string(f"notifications/email/{notification.kind}.txt", context)
    html = render_to_string(f"notifications/email/{notification.kind}.html", context)
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient],
        headers={"X-JobOps-Notification": str(notification.pk)},
    )
    message.attach_alternative(html, "text/html")
    return message


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def notification_deliver(*, notification_id: int, now: datetime.datetime | None = None) -> DeliveryResult:
    """Send one outbox row, at most once.

    Under a row lock: a row that is missing, sent or failed is left alone (a redelivered message does nothing).
    Otherwise the attempt is counted and the email sent through Django's email backend. Success marks the row
    ``sent``. A transient error (SMTP/socket) is recorded in ``last_error`` and returned as ``RETRY`` (the task
    re-raises it so Celery retries with backoff) until ``NOTIFICATION_MAX_ATTEMPTS`` attempts were made, then the
    row is ``failed``; any other error fails the row at once. The lock is held while sending, so two workers never
    send the same row; a worker killed mid-send rolls back and its attempt does not count.
    """
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status != Status.PENDING:
            return DeliveryResult(Outcome.SKIPPED)
        notification.attempts += 1
        error: BaseException | None = None
        try:
            notification_render(notification).send(fail_silently=False)
        except Exception as exc:  # classified below; never lost
            error = exc
        now = now or timezone.now()
        if error is None:
            notification.status = Status.SENT
            notification.sent_at = now
            notification.last_error = ""
            notification.next_attempt_at = None
            notification.save(update_fields=["status", "sent_at", "attempts", "last_error", "next_attempt_at"])
            return DeliveryResult(Outcome.SENT)
        notification.last_error = _describe(error)
        transient = isinstance(error, TRANSIENT_ERRORS) and not isinstance(error, PERMANENT_ERRORS)
        if transient and notification.attempts < _max_attempts():
            # Keep the requeue sweep away while Celery's own delayed retry is due (backoff <= 2**attempts s).
            backoff = min(RETRY_BACKOFF_MAX_SECONDS, 2**notification.attempts)
            notification.next_attempt_at = now + datetime.timedelta(seconds=backoff) + _grace()
            notification.save(update_fields=["attempts", "last_error", "next_attempt_at"])
            logger.warning(
                "notification delivery failed; will retry",
                extra={"notification_id": notification.pk, "attempts": notification.attempts},
            )
            return DeliveryResult(Outcome.RETRY, error)
        notification.status = Status.FAILED
        notification.next_attempt_at = None
        notification.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
        logger.error(
            "notification delivery failed for good",
            extra={"notification_id": notification.pk, "attempts": notification.attempts},
        )
        return DeliveryResult(Outcome.FAILED, error)


def notifications_requeue_unsent(*, now: datetime.datetime | None = None, limit: int = 500) -> list[int]:
    """Re-enqueue outbox rows still pending after the grace period (the broker was down at commit, or a message
    was lost); returns their ids.

    Rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (a row being delivered is skipped) and their
    ``next_attempt_at`` pushed one grace period ahead, so concurrent or repeated sweeps do not pile up messages for
    the same row; delivery is idempotent anyway. At most ``limit`` rows per run, oldest first.
    """
    now = now or timezone.now()
    cutoff = now - _grace()
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING, created_at__lte=cutoff)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("created_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            Notification.objects.filter(pk__in=ids).update(next_attempt_at=now + _grace())
            transaction.on_commit(partial(enqueue_deliveries, ids))
    if ids:
        logger.info("re-enqueued unsent notifications", extra={"count": len(ids)})
    return ids


@transaction.atomic
def notification_retry(*, actor: Any, notification_id: int, now: datetime.datetime | None = None) -> Notification:
    """Put a failed notification back in the outbox (admin): status ``pending``, attempts reset, error cleared,
    enqueued on commit. Anything but a failed row is a 409 (``not_failed``). Audited as ``notification.retried``."""
    now = now or timezone.now()
    notification = Notification.objects.select_for_update().get(pk=notification_id)
    if notification.status != Status.FAILED:
        raise NotificationNotFailed(
            f"Notification {notification.pk} is {notification.status}; only a failed notification can be retried."
        )
    changes = {
        "status": [notification.status, Status.PENDING],
        "attempts": [notification.attempts, 0],
        "last_error": [notification.last_error, ""],
    }
    notification.status = Status.PENDING
    notification.attempts = 0
    notification.last_error = ""
    notification.next_attempt_at = now + _grace()
    notification.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
    audit_record(
        actor=actor,
        action="notification.retried",
        obj=notification,
        object_repr=f"{notification.kind} to {notification.recipient}",
        job_id=notification.job_id,
        changes=changes,
    )
    transaction.on_commit(partial(enqueue_deliveries, [notification.pk]))
    return notification
