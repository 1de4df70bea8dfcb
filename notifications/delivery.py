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
import secrets
import smtplib
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.utils import DNS_NAME
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from audit.services import audit_record
from jobops.exceptions import ApplicationError

from . import push, sms, webhooks
from .models import Notification, WebhookEndpoint
from .services import enqueue_deliveries, notify_webhook_disabled

logger = logging.getLogger(__name__)

Status = Notification.Status
Channel = Notification.Channel

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
    #: Webhooks: seconds until the next attempt is due (the task re-publishes with a countdown when it is short,
    #: the requeue sweep picks up the long ones when ``next_attempt_at`` comes).
    retry_in: float | None = None


#: Errors worth another attempt: the SMTP server down, slow or answering 4xx. A refused recipient is permanent.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPRecipientsRefused,)


def _max_attempts() -> int:
    return max(1, int(settings.NOTIFICATION_MAX_ATTEMPTS))


def _grace() -> datetime.timedelta:
    return datetime.timedelta(seconds=int(settings.NOTIFICATION_GRACE_SECONDS))


def message_id(notification: Notification) -> str:
    """The email's ``Message-ID``, the same on every attempt: a copy re-sent after a crash between the SMTP
    server's acceptance and the commit (the outbox's at-least-once limit) is recognisably the same message, which
    mail systems drop as a duplicate."""
    return f"<jobops-notification-{notification.pk}@{DNS_NAME}>"


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
        headers={"X-JobOps-Notification": str(notification.pk), "Message-ID": message_id(notification)},
    )
    message.attach_alternative(html, "text/html")
    return message


def _send(notification: Notification) -> None:
    """Send one message on its channel (webhooks have their own path, ``_deliver_webhook``)."""
    if notification.channel == Channel.PUSH:
        push.push_send(notification)
    elif notification.channel == Channel.SMS:
        sms.sms_send(notification)
    else:
        notification_render(notification).send(fail_silently=False)


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
        notification = (
            Notification.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=notification_id)
            .first()
        )
        if notification is None or notification.status != Status.PENDING:
            return DeliveryResult(Outcome.SKIPPED)
        if notification.channel == Channel.WEBHOOK:
            return _deliver_webhook(notification, now or timezone.now())
        notification.attempts += 1
        error: BaseException | None = None
        try:
            _send(notification)
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


#: A webhook retry due within this many seconds is re-published with a countdown; later ones wait for the sweep.
WEBHOOK_COUNTDOWN_MAX_SECONDS = 600
_random = secrets.SystemRandom()


def webhook_retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones (``WEBHOOK_RETRY_SCHEDULE``, +-25 % jitter so
    a burst of failures does not come back at once), or ``None`` when the schedule (about 3 days) is used up."""
    schedule = list(settings.WEBHOOK_RETRY_SCHEDULE)
    if attempts > len(schedule):
        return None
    return float(schedule[attempts - 1]) * _random.uniform(0.75, 1.25)


def _endpoint_failed(endpoint: WebhookEndpoint, now: datetime.datetime) -> None:
    """Count a failed attempt against the endpoint: the first failure of a run starts ``failing_since``; failing for
    ``WEBHOOK_DISABLE_AFTER_DAYS`` straight disables it (exactly one caller wins) and emails the admins."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    cutoff = now - datetime.timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    days = settings.WEBHOOK_DISABLE_AFTER_DAYS
    reason = f"Disabled automatically on {now.date().isoformat()}: every delivery failed for {days} days."
    disabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, is_active=True, failing_since__lte=cutoff).update(
        is_active=False, disabled_reason=reason[:200]
    )
    if disabled:
        logger.error("webhook endpoint disabled after failing for days", extra={"endpoint_id": endpoint.pk})
        notify_webhook_disabled(endpoint_id=endpoint.pk, url=endpoint.url, reason=reason)


def _deliver_webhook(notification: Notification, now: datetime.datetime) -> DeliveryResult:
    """One attempt of a webhook row (locked by the caller): 2xx delivers it; anything else is retried on
    ``WEBHOOK_RETRY_SCHEDULE`` and then ``failed``. Pending rows of a disabled endpoint fail at once (a manual
    retry re-queues them); a ping is sent even to a disabled one."""
    endpoint = notification.endpoint
    assert endpoint is not None  # noqa: S101 - webhook rows always have one (CASCADE)
    fields = ["status", "attempts", "last_error", "last_status_code", "next_attempt_at", "sent_at"]
    if not endpoint.is_active and notification.event_type != webhooks.PING:
        notification.status = Status.FAILED
        notification.last_error = "endpoint disabled"
        notification.next_attempt_at = None
        notification.save(update_fields=fields)
        return DeliveryResult(Outcome.FAILED)
    notification.attempts += 1
    attempt = webhooks.webhook_attempt(notification, now=timezone.now())
    notification.last_status_code = attempt.status_code
    notification.last_error = attempt.error
    if attempt.ok:
        notification.status = Status.SENT
        notification.sent_at = now
        notification.next_attempt_at = None
        notification.save(update_fields=fields)
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
        return DeliveryResult(Outcome.SENT)
    _endpoint_failed(endpoint, now)
    delay = webhook_retry_delay(notification.attempts)
    if delay is None:
        notification.status = Status.FAILED
        notification.next_attempt_at = None
        notification.save(update_fields=fields)
        logger.warning("webhook delivery failed for good", extra={"notification_id": notification.pk})
        return DeliveryResult(Outcome.FAILED)
    # A short wait is a countdown on the broker; keep the sweep away until it is past. A long one is the sweep's.
    extra = _grace() if delay <= WEBHOOK_COUNTDOWN_MAX_SECONDS else datetime.timedelta(0)
    notification.next_attempt_at = now + datetime.timedelta(seconds=delay) + extra
    notification.save(update_fields=fields)
    return DeliveryResult(Outcome.RETRY, retry_in=delay)


def notifications_requeue_unsent(*, now: datetime.datetime | None = None, limit: int = 500) -> list[int]:
    """Re-enqueue outbox rows still pending after the grace period (a message was lost), or due now (their
    ``next_attempt_at`` has come: a retry, or a publish that failed at commit); returns their ids.

    Rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (a row being delivered is skipped) and their
    ``next_attempt_at`` pushed one grace period ahead, so concurrent or repeated sweeps do not pile up messages for
    the same row; delivery is idempotent anyway. At most ``limit`` rows per run, oldest first.
    """
    now = now or timezone.now()
    cutoff = now - _grace()
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=Status.PENDING)
            .filter(Q(next_attempt_at__isnull=True, created_at__lte=cutoff) | Q(next_attempt_at__lte=now))
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
    enqueued on commit. Anything but a failed row (or a pending webhook row, which is then tried at once) is a 409
    (``not_failed``). Audited as ``notification.retried``."""
    now = now or timezone.now()
    notification = Notification.objects.select_for_update().get(pk=notification_id)
    requeueable = notification.status == Status.FAILED or (
        notification.channel == Channel.WEBHOOK and notification.status == Status.PENDING
    )
    if not requeueable:
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
