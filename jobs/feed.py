"""The change feed: what changed in a user's scope, in one order, with no change ever skipped.

Recording (``record``) is called by the services inside the transaction of the change, beside its audit entry: one
``Change`` row per changed object and audience. The audience is resolved there, from the state before and after
the change: the admins (one shared copy, ``audience`` null), the job's creator, and its assignee before and after.
Set-based writes (reorder, the overdue sweep) record in one bulk insert.

Reading (``read_changes``) takes the rows of the reader's audience after their cursor, keeps the newest change of
each object (coalescing), and renders each object as its detail endpoint renders it *now*, through the one scope
definition (``jobs.selectors``) and the one declared shape (``jobs.serializers``): an object in the reader's scope is
``<type>.upserted`` with its representation; one that is gone or no longer in scope is ``<type>.removed``.

Ordering and the cursor. Transactions take their ids in one order and commit in another, so an auto-increment id
is not a safe cursor: a reader that has seen id 11 (committed first) would never look back at id 10 (committed
later). On PostgreSQL each row carries its transaction's id (``pg_current_xact_id()``) and a reader only reads rows
whose transaction id is below ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest transaction still running:
every transaction below it has ended, so nothing can appear behind a cursor. Rows are ordered by ``(txid, id)``.
A long-running writing transaction delays the feed (never loses it) for as long as it runs. SQLite (the embedded
default) serialises writers, so there ids are in commit order and the watermark is the largest committed id.

A cursor is ``(txid, id, issued)``, opaque to clients: everything at or before ``(txid, id)`` was delivered, and
``issued`` (when the server handed it out) decides expiry: a cursor older than ``CHANGE_FEED_RETENTION_DAYS`` may
point into pruned rows, so it is refused (410 ``cursor_expired``) and the client reloads.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Expression, Max, Q
from django.utils import timezone
from rest_framework import serializers, status

from jobops.exceptions import ApplicationError
from jobops.fields import UTCDateTimeField
from jobops.jsonshape import render_each
from jobops.live import wake_listeners
from jobops.roles import ALL_ROLES, is_admin

from .attachments.selectors import attachment_scope
from .attachments.serializers import AttachmentReadSerializer
from .models import Change, Job, JobTask
from .selectors import job_scope, task_scope
from .serializers import JobDetailSerializer, JobTaskReadSerializer

JOB = Change.ObjectType.JOB
TASK = Change.ObjectType.TASK
ATTACHMENT = Change.ObjectType.ATTACHMENT


class CursorExpired(ApplicationError):
    status_code = status.HTTP_410_GONE
    default_code = "cursor_expired"


class InvalidCursor(serializers.ValidationError):
    def __init__(self) -> None:
        super().__init__({"after": ["Not a cursor of this feed: use the cursor of a previous answer."]}, "invalid")


class FeedPage(NamedTuple):
    changes: list[dict[str, Any]]
    cursor: str
    has_more: bool


# --- recording ---------------------------------------------------------------------------------------------------


class _CurrentTxid(Expression):
    """The writing transaction's id (PostgreSQL; assigns one if the transaction has none yet); 0 on SQLite."""

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        if connection.vendor == "postgresql":
            return "pg_current_xact_id()::text::bigint", ()
        return "0", ()


class Touch(NamedTuple):
    """What one write changed, for the feed: a job (always: its detail embeds its tasks), some of its tasks and
    attachments, and who could see them before or after besides the admins."""

    job_id: int
    audience: tuple[int | None, ...]
    task_ids: tuple[int, ...] = ()
    attachment_ids: tuple[int, ...] = ()


def touch(
    job: Job, *, tasks: Iterable[int] = (), attachments: Iterable[int] = (), also: Iterable[int | None] = ()
) -> Touch:
    """The ``Touch`` of ``job`` (its current creator and assignee; ``also``: users who could see it before the
    change, such as its previous assignee), its tasks ``tasks`` and its attachments ``attachments``."""
    return Touch(job.pk, (job.created_by_id, job.assigned_to_id, *also), tuple(tasks), tuple(attachments))


def record(*touches: Touch) -> None:
    """Record ``touches`` in the current transaction (one insert), and wake the live stream after the commit."""
    if not touches:
        return
    now = timezone.now()
    rows: list[Change] = []
    for item in touches:
        audience: dict[int | None, None] = dict.fromkeys((None, *(u for u in item.audience if u is not None)))
        objects = [
            (JOB, item.job_id),
            *((TASK, pk) for pk in dict.fromkeys(item.task_ids)),
            *((ATTACHMENT, pk) for pk in dict.fromkeys(item.attachment_ids)),
        ]
        rows.extend(
            Change(
                txid=_CurrentTxid(),
                at=now,
                audience_id=user_id,
                object_type=kind,
                object_id=pk,
                job_id=item.job_id,
            )
            for user_id in audience
            for kind, pk in objects
        )
    Change.objects.bulk_create(rows)
    transaction.on_commit(wake_listeners, robust=True)


def on_equipment_rendering_changed(*, equipment_id: int, **kwargs: Any) -> None:
    """Equipment that tasks list changed how it renders (``equipment.signals``): record the tasks that list it, and
    their jobs, in the transaction of that change."""
    by_job: dict[int, tuple[tuple[int | None, ...], list[int]]] = {}
    rows = JobTask.objects.filter(required_equipment=equipment_id).values_list(
        "pk", "job_id", "job__created_by_id", "job__assigned_to_id"
    )
    for task_id, job_id, creator, assignee in rows:
        by_job.setdefault(job_id, ((creator, assignee), []))[1].append(task_id)
    record(*(Touch(job_id, audience, tuple(tasks)) for job_id, (audience, tasks) in by_job.items()))


# --- the cursor --------------------------------------------------------------------------------------------------


class Position(NamedTuple):
    txid: int
    id: int


_CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})\.([0-9]{1,12})")
_MAX_BIGINT = 2**63 - 1


def encode_cursor(position: Position, *, issued: datetime.datetime | None = None) -> str:
    issued = issued or timezone.now()
    text = f"{position.txid}.{position.id}.{int(issued.timestamp())}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position of ``cursor``; ``InvalidCursor`` (400) when it is not one, ``CursorExpired`` (410) when it was
    handed out longer ago than the retention."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidCursor from None
    match = _CURSOR.fullmatch(text) if len(cursor) <= 80 and cursor.isascii() else None
    if match is None:
        raise InvalidCursor
    txid, pk, issued = (int(part) for part in match.groups())
    if txid > _MAX_BIGINT or pk > _MAX_BIGINT:
        raise InvalidCursor
    if issued < (timezone.now() - retention()).timestamp():
        raise CursorExpired(
            "This cursor is older than the feed's retention: reload the lists, then read the feed from a new cursor."
        )
    return Position(txid, pk)


def retention() -> datetime.timedelta:
    return datetime.timedelta(days=settings.CHANGE_FEED_RETENTION_DAYS)


def visible_upto() -> Position:
    """A position at or below which every row is committed and no row can still appear; every later row will be
    above it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            (xmin,) = cursor.fetchone()
            return Position(xmin, 0)  # rows of transactions below xmin; xmin itself (and above) may still be running
    return Position(0, Change.objects.aggregate(last=Max("id"))["last"] or 0)


def current_cursor() -> str:
    """The cursor of "now": a client takes it, then loads the lists, then reads the feed from it."""
    return encode_cursor(visible_upto())


# --- reading -----------------------------------------------------------------------------------------------------


def _audience_q(user: Any) -> Q | None:
    if is_admin(user):
        return Q(audience__isnull=True)
    if getattr(user, "is_authenticated", False) and getattr(user, "role", None) in ALL_ROLES:
        return Q(audience_id=user.pk)
    return None  # no role, no feed: scoping fails closed


def _between_q(after: Position, upto: Position) -> Q:
    later = Q(txid__gt=after.txid) | Q(txid=after.txid, id__gt=after.id)
    not_later = Q(txid__lt=upto.txid) | Q(txid=upto.txid, id__lte=upto.id)
    return later & not_later


def grew(after: Position) -> bool:
    """Whether feed rows are readable past ``after``: one indexed query on the admins' copy, which every change has
    (so it may say yes for a change a given reader will not get: that costs one empty read)."""
    upto = visible_upto()
    if upto <= after:
        return False
    return Change.objects.filter(_between_q(after, upto), audience__isnull=True).exists()


def read_changes(*, user: Any, after: str | None, limit: int = 100) -> FeedPage:
    """The changes in ``user``'s scope after the cursor ``after`` (at most ``limit`` rows of the feed, coalesced:
    the newest change of each object), each with the object as it is now, and the cursor to read on from.
    Without ``after``: no changes, the current cursor. A constant number of queries, whatever ``limit``."""
    upto = visible_upto()
    if not after:
        return FeedPage([], encode_cursor(upto), False)
    position = decode_cursor(after)
    audience = _audience_q(user)
    if audience is None:
        return FeedPage([], encode_cursor(max(position, upto)), False)
    rows = list(
        Change.objects.filter(audience, _between_q(position, upto))
        .order_by("txid", "id")
        .values_list("txid", "id", "at", "object_type", "object_id", "job_id")[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    newest: dict[tuple[str, int], tuple[Any, ...]] = {}
    for row in rows:
        key = (row[3], row[4])
        newest.pop(key, None)  # coalesced: the object moves to its newest change's place
        newest[key] = row
    jobs = _render(job_scope(user=user), JobDetailSerializer, [pk for kind, pk in newest if kind == JOB])
    tasks = _render(task_scope(user=user), JobTaskReadSerializer, [pk for kind, pk in newest if kind == TASK])
    attachments = _render_attachments(user, [pk for kind, pk in newest if kind == ATTACHMENT])
    rendered = {JOB: jobs, TASK: tasks, ATTACHMENT: attachments}
    at_field = UTCDateTimeField()
    changes = []
    for txid, pk, at, kind, object_id, job_id in newest.values():
        data = rendered[kind].get(object_id)
        changes.append(
            {
                "cursor": encode_cursor(Position(txid, pk)),
                "at": at_field.to_representation(at),
                "type": f"{kind}.{'upserted' if data is not None else 'removed'}",
                "object_type": kind,
                "object_id": object_id,
                "job": job_id,
                "data": data,
            }
        )
    end = Position(*rows[-1][:2]) if has_more else max(position, upto)
    return FeedPage(changes, encode_cursor(end), has_more)


def _render(scope: Any, serializer_class: Any, ids: list[int]) -> dict[int, Any]:
    return render_each(scope.filter(pk__in=ids), serializer_class) if ids else {}


def _render_attachments(user: Any, ids: list[int]) -> dict[int, Any]:
    """Attachments as their detail endpoint renders them (their signed links are made per rendering, so the
    serializer renders them, not the database), through the attachment scope (the task's): one query."""
    if not ids:
        return {}
    rows = attachment_scope(user=user).filter(pk__in=ids)
    return {row.pk: AttachmentReadSerializer(row).data for row in rows}


# --- retention ---------------------------------------------------------------------------------------------------

#: Rows are kept this much longer than cursors live, so a transaction that ran long across the boundary cannot lose
#: a row that a still-valid cursor has not passed.
PRUNE_MARGIN = datetime.timedelta(hours=1)


def prune_changes(*, now: datetime.datetime | None = None, batch_size: int = 5000) -> int:
    """Delete feed rows older than the retention (plus a margin), in batches of ``batch_size`` (each its own
    transaction, so the table is never locked long). Returns how many were deleted."""
    cutoff = (now or timezone.now()) - retention() - PRUNE_MARGIN
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(Change.objects.filter(at__lt=cutoff).order_by("at").values_list("id", flat=True)[:batch_size])
            if not ids:
                return deleted
            deleted += Change.objects.filter(id__in=ids).delete()[0]
