"""The email outbox, delivery side: render and send one row at most once, retry, re-enqueue, retry by hand.

Delivery (``notification_deliver``, called by the ``notifications.deliver`` task) locks the row, returns at once
unless it is pending, sends, and marks it sent in the same transaction, so a redelivered message sends nothing
twice. A crash after the SMTP server accepted the message but before the commit can still give one duplicate:
at-least-once, the documented limit of any outbox. Rows are written, and handed to the broker, by
``notifications.services``.
"""

from __future__ import annotations

import datetime
import logging
import smtplib
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
from .services import enqueue_deliveries

logger = logging.getLogger(__name__)

Status = Notification.Status

#: Upper bound of Celery's exponential backoff (``retry_backoff_max`` on the delivery task).
RETRY_BACKOFF_MAX_SECONDS = 600


class NotificationNotFailed(ApplicationError):
    """Only a failed notification can be re-queued by hand (pending ones are on their way, sent ones are done)."""

    default_code = "not_failed"


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
