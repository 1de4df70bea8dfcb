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

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connections
from django.db.models import (
    F,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
)

from equipment.models import Equipment
from jobops.conditional import make_etag

from .models import Job, JobTask

#: The mix of (id, version): ((id * K + version) mod P)^2 mod P. Every term stays below 2**62, so it is exact in a
#: 64-bit integer on every database, and a sum over a million rows stays below 2**52.
_MIX = "((((_t._i * 1000003 + _t._v) %% 2147483647) * ((_t._i * 1000003 + _t._v) %% 2147483647)) %% 2147483647)"
_NEWEST_EQUIPMENT = "(SELECT max(updated_at) FROM {table})"

# The list tags are plain SQL around the ORM's compiled query of the set (scope, filters, order, page): the ORM
# compiles only the ``values_list`` of two columns, never an aggregate expression tree (which cost more Python than
# the query itself on the polled paths). The compiled queries' own ``%%`` are already escaped.
_PAGE_SQL = "SELECT (SELECT count(*) FROM ({count}) _c), {equipment}, _t.* FROM ({page}) _t"
_SET_SQL = "SELECT count(*), sum(_t._v), sum({mix}), {equipment} FROM ({rows}) _t"


def _newest_equipment() -> str:
    return _NEWEST_EQUIPMENT.format(table=Equipment._meta.db_table)


def _compiled(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL of ``queryset``, or None when it can match nothing (an unknown role's empty scope)."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        return None
    return sql, tuple(params)


def _rows(queryset: QuerySet[Any], sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


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


def _page_etag(
    kind: str, rows: QuerySet[Any], version: str, *, offset: int, limit: int, extra: tuple[Any, ...], equipment: bool
) -> str:
    count = _compiled(rows.order_by().values("pk"))
    page = _compiled(rows.values_list("pk", version)[offset : offset + limit])
    found: list[tuple[Any, ...]] = []
    if count is not None and page is not None:
        sql = _PAGE_SQL.format(count=count[0], page=page[0], equipment=_newest_equipment() if equipment else "NULL")
        found = _rows(rows, sql, count[1] + page[1])
    # No row: an empty set, or a page past the end (a 404 anyway).
    total, newest = found[0][:2] if found else (0, None)
    return make_etag(kind, total, newest, [row[2:] for row in found], *extra)


def jobs_page_etag(jobs: QuerySet[Job], *, offset: int, limit: int, extra: tuple[Any, ...] = ()) -> str:
    """The tag of the page ``[offset, offset + limit)`` of ``jobs`` (scoped, filtered, ordered)."""
    return _page_etag("jobs", jobs, "version", offset=offset, limit=limit, extra=extra, equipment=False)


def tasks_page_etag(tasks: QuerySet[JobTask], *, offset: int, limit: int, extra: tuple[Any, ...] = ()) -> str:
    """The tag of a page of ``tasks`` (scoped, filtered, ordered; a task's version is its job's)."""
    return _page_etag("tasks", tasks, "job__version", offset=offset, limit=limit, extra=extra, equipment=True)


def tasks_etag(tasks: QuerySet[JobTask], *, extra: tuple[Any, ...] = ()) -> str:
    """The tag of all of ``tasks`` (the day view; a task's version is its job's): count, sum and mix of versions."""
    rows = _compiled(tasks.order_by().values(_i=F("pk"), _v=F("job__version")))
    row: tuple[Any, ...] = (0, None, None, None)
    if rows is not None:
        sql = _SET_SQL.format(rows=rows[0], mix=_MIX, equipment=_newest_equipment())
        row = _rows(tasks, sql, rows[1])[0]
    return make_etag("tasks", *row, *extra)
