"""What the ETags of jobs and tasks are made of: one cheap query each, run *before* the body is rendered.

A job's row version (``Job.version``) moves, under the job's lock, with every write to the job or to any of its tasks
(``jobs.services.touch_jobs``). So:

- a job's tag (its detail, and its task list: one value, so ``If-Match`` on the job's actions and on adding or
  reordering its tasks takes either) is (id, version, newest ``updated_at`` of the equipment its tasks need, since
  the body shows that equipment);
- a task's tag is (task id, its job's version, its equipment's newest ``updated_at``);
- a page's tag (the job and task lists) is the size of the scoped and filtered set (the body's ``count`` and
  links) and the (id, version) of each row of the page, in the page's order: an update moves a row's version, a
  row entering, leaving or moving changes the window or the count. It reads the same index range as the page and
  nothing of the rest of the set, so it stays cheap on an admin's 10k-job list. Task pages add the newest
  ``updated_at`` of all equipment (a task shows its equipment);
- the day view's tag (not paginated) is, over its tasks, their number, the sum of their jobs' versions and the sum
  of a mix of (task id, version) modulo a prime, plus the equipment's newest ``updated_at``.

The caller adds what else decides the body (the URL with its query, the media type, "today" for the day view).

Since the tag is read before the body, a write committing in between pairs an *older* tag with a newer body: the
next poll is a 200 again, never a stale 304.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import (
    BigIntegerField,
    Count,
    ExpressionWrapper,
    F,
    Func,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
)

from equipment.models import Equipment
from jobops.conditional import make_etag

from .models import Job, JobTask

#: The mix of (id, version): ((id * K + version) mod P)^2 mod P. Every term stays below 2**62, so it is exact in a
#: 64-bit integer on every database, and a sum over a million rows stays below 2**52.
_K = 1_000_003
_P = 2_147_483_647


def _mix(pk: str, version: str) -> ExpressionWrapper:
    base = (F(pk) * _K + F(version)) % _P
    return ExpressionWrapper(base * base % _P, output_field=BigIntegerField())


def _equipment_of(task_path: str) -> Subquery:
    """The newest ``updated_at`` of the equipment needed by the tasks matching ``task_path`` = the outer row."""
    return Subquery(
        Equipment.objects.filter(**{task_path: OuterRef("pk")})
        .order_by()
        .values(task_path)
        .annotate(newest=Max("updated_at"))
        .values("newest")[:1]
    )


def _all_equipment() -> Subquery:
    return Subquery(Equipment.objects.order_by().values("updated_at").order_by("-updated_at")[:1])


def job_etag(jobs: QuerySet[Job], job_id: Any, *, extra: tuple[Any, ...] = (), lock: bool = False) -> str | None:
    """The tag of job ``job_id`` in ``jobs`` (the caller's scope), or None when it is not there. ``lock``: lock the
    job row for the rest of the transaction first (an ``If-Match`` check that the write then relies on)."""
    try:
        rows = jobs.filter(pk=job_id).order_by()
    except (TypeError, ValueError, ValidationError):
        return None  # not an id: the view's lookup answers 404
    if lock:
        rows = rows.select_for_update(no_key=True, of=("self",))
    row = rows.annotate(equipment=_equipment_of("tasks__job")).values_list("version", "equipment").first()
    return None if row is None else make_etag("job", int(job_id), *row, *extra)


def task_etag(tasks: QuerySet[JobTask], task_id: Any, *, extra: tuple[Any, ...] = (), lock: bool = False) -> str | None:
    """The tag of task ``task_id`` in ``tasks`` (the caller's scope), or None. ``lock`` locks its job's row."""
    try:
        rows = tasks.filter(pk=task_id).order_by()
    except (TypeError, ValueError, ValidationError):
        return None
    if lock:
        job_id = rows.values_list("job_id", flat=True).first()
        if job_id is None:
            return None
        Job.objects.select_for_update(no_key=True).filter(pk=job_id).values_list("pk").first()
    row = rows.annotate(equipment=_equipment_of("tasks")).values_list("job__version", "equipment").first()
    return None if row is None else make_etag("task", int(task_id), *row, *extra)


def _count_of(rows: QuerySet[Any]) -> Subquery:
    # COUNT as a plain function (not an aggregate: no GROUP BY), so the set's size is a scalar subquery that
    # PostgreSQL evaluates once for the page.
    return Subquery(rows.order_by().values_list(Func(F("pk"), function="COUNT", output_field=BigIntegerField())))


def _page_etag(
    kind: str, rows: QuerySet[Any], columns: tuple[Any, ...], *, offset: int, limit: int, extra: tuple[Any, ...]
) -> str:
    page = list(rows.annotate(_total=_count_of(rows)).values_list("_total", *columns)[offset : offset + limit])
    total = page[0][0] if page else 0  # an empty page past the end is a 404 anyway
    return make_etag(kind, total, [row[1:] for row in page], *extra)


def jobs_page_etag(jobs: QuerySet[Job], *, offset: int, limit: int, extra: tuple[Any, ...] = ()) -> str:
    """The tag of the page ``[offset, offset + limit)`` of ``jobs`` (scoped, filtered, ordered)."""
    return _page_etag("jobs", jobs, ("pk", "version"), offset=offset, limit=limit, extra=extra)


def tasks_page_etag(tasks: QuerySet[JobTask], *, offset: int, limit: int, extra: tuple[Any, ...] = ()) -> str:
    """The tag of a page of ``tasks`` (scoped, filtered, ordered; a task's version is its job's)."""
    columns = ("pk", "job__version", "_equipment")
    tasks = tasks.annotate(_equipment=_all_equipment())
    return _page_etag("tasks", tasks, columns, offset=offset, limit=limit, extra=extra)


def tasks_etag(tasks: QuerySet[JobTask], *, extra: tuple[Any, ...] = ()) -> str:
    """The tag of all of ``tasks`` (the day view; a task's version is its job's)."""
    row = tasks.order_by().aggregate(
        count=Count("pk"),
        versions=Sum("job__version"),
        mix=Sum(_mix("pk", "job__version")),
        equipment=Max(_all_equipment()),
    )
    return make_etag("tasks", row["count"], row["versions"], row["mix"], row["equipment"], *extra)
