"""The most polled read paths, rendered to JSON by PostgreSQL.

Every mobile client polls the job list and the technician day view, and opens jobs and their task lists. On
PostgreSQL these bodies are built by the database (``json_build_object`` / ``json_agg``) in the one statement that
selects the rows, and Python passes the bytes through (``orjson.Fragment``): no row objects, no datetime parsing and
re-formatting, no serializer walk. A job-list page and its count come from the same statement: one query.

What is selected still comes from the ORM: the caller hands in the scoped, filtered and ordered queryset built by
``jobs.selectors`` / ``jobs.reports`` (with django-filter's filters applied), and this module only wraps its
compiled SQL. There is one definition of who sees what; this module decides only the shape, and the shape is the
read serializers' (``JobReadSerializer``, ``JobDetailSerializer``, ``JobTaskReadSerializer``, the dashboard
serializers): tests compare the two renderings on PostgreSQL.

Used when the database is PostgreSQL and the current time zone is UTC (timestamps are formatted in SQL exactly as DRF
renders them in UTC). Anywhere else (the embedded SQLite default, another ``TIME_ZONE``) the Python renderers
(``jobs.rows``, ``jobs.reports``, the serializers) produce the same bodies.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from django.core.exceptions import EmptyResultSet
from django.db import connections, router
from django.db.models import Model, QuerySet
from django.utils import timezone

from equipment.models import Equipment

from .models import Job, JobTask
from .rows import JOB_LIST_FIELDS, JOB_LIST_VALUES
from .serializers import EquipmentBriefSerializer, JobDetailSerializer, JobTaskReadSerializer


def enabled(model: type[Model]) -> bool:
    """Whether the database ``model`` is read from renders these bodies itself (PostgreSQL, time zone UTC)."""
    return (
        connections[router.db_for_read(model)].vendor == "postgresql" and timezone.get_current_timezone_name() == "UTC"
    )


def _compiled(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL and parameters of ``queryset``, or ``None`` when it can match nothing (``.none()``, ``__in=[]``)."""
    try:
        return queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        return None


def _iso(column: str) -> str:
    """SQL for DRF's rendering of a UTC datetime: ISO 8601, microseconds only when non-zero, ``Z``; NULL stays NULL."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || CASE WHEN date_trunc('second', {column}) = {column} THEN '' ELSE to_char({utc}, '.US') END || 'Z'"
    )


def _q(name: str) -> str:
    """A quoted SQL identifier. The SQL in this module is assembled only from the models' own table and column names
    (quoted here), constants of this module and the ORM's compiled SQL; every value is a query parameter."""
    return '"' + name.replace('"', '""') + '"'


# --- job list -----------------------------------------------------------------------------------------------------


_MAX_OFFSET = 2**62

#: The job columns the list renders, as ``values()`` names them (foreign keys by their column).
_JOB_COLUMNS = tuple(name for name in JOB_LIST_VALUES if name not in ("tasks_total", "tasks_completed"))


def _object_sql(model: type[Model], row: str, fields: Iterable[str], computed: Mapping[str, str]) -> str:
    """``json_build_object(...)`` with the keys ``fields`` in order: the SQL in ``computed``, else the column of
    ``row`` (``values()`` names: ``attname``), datetimes as DRF renders them. A serializer field that is neither
    fails here, at first use."""
    parts = []
    for name in fields:
        if name in computed:
            value = computed[name]
        else:
            field = model._meta.get_field(name)
            column = f"{row}.{_q(field.attname)}"
            value = _iso(column) if field.get_internal_type() == "DateTimeField" else column
        parts.append(f"'{name}', {value}")
    return "json_build_object(" + ", ".join(parts) + ")"


@functools.cache
def _task_object_sql() -> str:
    """``json_build_object(...)`` of one task row ``t``: the keys of ``JobTaskReadSerializer`` in its order, with the
    required equipment as ``EquipmentBriefSerializer`` renders it (by id)."""
    m2m = JobTask._meta.get_field("required_equipment").remote_field.through._meta
    equipment = ", ".join(
        f"'{name}', e.{_q(Equipment._meta.get_field(name).column)}" for name in EquipmentBriefSerializer.Meta.fields
    )
    computed = {
        "job": f"t.{_q(JobTask._meta.get_field('job').column)}",
        "required_equipment": (
            f"COALESCE((SELECT json_agg(json_build_object({equipment}) ORDER BY e.id) "  # nosec B608
            f"FROM {_q(m2m.db_table)} m JOIN {_q(Equipment._meta.db_table)} e "
            f"ON e.id = m.{_q(m2m.get_field('equipment').column)} "
            f"WHERE m.{_q(m2m.get_field('jobtask').column)} = t.id), '[]'::json)"
        ),
    }
    return _object_sql(JobTask, "t", JobTaskReadSerializer.Meta.fields, computed)


def _job_tasks_sql(job_id: str) -> str:
    """The JSON array of the tasks of job ``job_id`` (an SQL expression), in order."""
    tasks = _q(JobTask._meta.db_table)
    task_job = _q(JobTask._meta.get_field("job").column)
    return (
        f"COALESCE((SELECT json_agg({_task_object_sql()} ORDER BY t.{_q('order')}) "  # nosec B608
        f"FROM {tasks} t WHERE t.{task_job} = {job_id}), '[]'::json)"
    )


@functools.cache
def _job_object_sql(*, with_tasks: bool = False) -> str:
    """``json_build_object(...)`` of one job row ``s``: the keys of ``JobReadSerializer`` in its order, and with
    ``with_tasks`` those of ``JobDetailSerializer`` (its ordered tasks last)."""
    tasks = _q(JobTask._meta.db_table)
    task_job = _q(JobTask._meta.get_field("job").column)
    task_status = _q(JobTask._meta.get_field("status").column)
    computed = {
        "tasks_total": f"(SELECT count(*) FROM {tasks} t WHERE t.{task_job} = s.id)",  # nosec B608
        "tasks_completed": (
            f"(SELECT count(*) FROM {tasks} t WHERE t.{task_job} = s.id AND t.{task_status} = "  # nosec B608
            f"'{JobTask.Status.COMPLETED.value}')"
        ),
        "tasks": _job_tasks_sql("s.id"),
    }
    return _object_sql(Job, "s", JobDetailSerializer.Meta.fields if with_tasks else JOB_LIST_FIELDS, computed)


def _page(
    queryset: QuerySet[Any], *, columns: tuple[str, ...], row: str, object_sql: str, offset: int, limit: int
) -> tuple[int, orjson.Fragment]:
    """``(count, results)``: the number of rows in ``queryset`` (scoped, filtered, ordered) and the JSON array of its
    page ``[offset, offset + limit)`` in the queryset's order, each row (``columns``, aliased ``row``) rendered by
    ``object_sql``. One statement."""
    counted = _compiled(queryset.order_by().values("id"))
    if counted is None:
        return 0, orjson.Fragment(b"[]")
    count_sql, count_params = counted
    # No table has 2**62 rows: a larger offset (a huge ?page=) selects nothing, as it should, without overflowing
    # PostgreSQL's bigint OFFSET; the caller then answers 404 for a page past the end.
    offset = min(offset, _MAX_OFFSET)
    page_sql, page_params = _compiled(queryset.values(*columns)[offset : offset + limit])
    # The count is a plain COUNT(*) of the unordered query (an index-only scan; a COUNT(*) OVER () on the page
    # query would buffer every row of the scope). The sorted, limited page feeds row_number() in its order, and
    # json_agg follows row_number().
    sql = (
        f"SELECT (SELECT count(*) FROM ({count_sql}) c), "  # nosec B608
        f"(SELECT COALESCE(json_agg({object_sql} ORDER BY {row}.page_row), '[]')::text "
        f"FROM (SELECT p.*, row_number() OVER () AS page_row FROM ({page_sql}) p) {row})"
    )
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, (*count_params, *page_params))
        count, body = cursor.fetchone()
    return count, orjson.Fragment(body)


def job_page(queryset: QuerySet[Job], *, offset: int, limit: int) -> tuple[int, orjson.Fragment]:
    """A page of jobs (``JobReadSerializer``) and the count of ``queryset``: see ``_page``."""
    return _page(queryset, columns=_JOB_COLUMNS, row="s", object_sql=_job_object_sql(), offset=offset, limit=limit)


#: The task columns the task list renders, as ``values()`` names them (the equipment comes from a subquery).
_TASK_COLUMNS = tuple(
    JobTask._meta.get_field(name).attname for name in JobTaskReadSerializer.Meta.fields if name != "required_equipment"
)


def task_page(queryset: QuerySet[JobTask], *, offset: int, limit: int) -> tuple[int, orjson.Fragment]:
    """A page of tasks (``JobTaskReadSerializer``) and the count of ``queryset``: see ``_page``."""
    return _page(queryset, columns=_TASK_COLUMNS, row="t", object_sql=_task_object_sql(), offset=offset, limit=limit)


def job_detail(job: QuerySet[Job]) -> orjson.Fragment | None:
    """``JobDetailSerializer``'s rendering of the job in ``job`` (a scoped queryset filtered to one id), or ``None``
    when it holds no job. One statement."""
    compiled = _compiled(job.order_by().values(*_JOB_COLUMNS))
    if compiled is None:
        return None
    inner, params = compiled
    return _one_json(job.db, f"SELECT {_job_object_sql(with_tasks=True)}::text FROM ({inner}) s", params)  # nosec B608


def job_tasks(job: QuerySet[Job]) -> orjson.Fragment | None:
    """The ordered tasks (``JobTaskReadSerializer``) of the job in ``job`` (a scoped queryset filtered to one id), or
    ``None`` when it holds no job. One statement."""
    compiled = _compiled(job.order_by().values("id"))
    if compiled is None:
        return None
    inner, params = compiled
    return _one_json(job.db, f"SELECT {_job_tasks_sql('s.id')}::text FROM ({inner}) s", params)  # nosec B608


def _one_json(alias: str, sql: str, params: tuple[Any, ...]) -> orjson.Fragment | None:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else orjson.Fragment(row[0])


# --- technician day view ------------------------------------------------------------------------------------------

#: The job columns the day view renders (the tasks' come from a join in the statement).
_DAY_VIEW_JOB_COLUMNS = (
    "id", "title", "client_name", "priority", "status", "overdue", "scheduled_date", "assigned_to_id",
)  # fmt: skip


@functools.cache
def _day_view_sql() -> str:
    """The day-view statement around ``{inner}``: the SQL of the dashboard jobs' ``_DAY_VIEW_JOB_COLUMNS``.

    Parameters: today, the inner query's, then the task statuses (``{statuses}``: one ``%s`` each)."""
    tasks = _q(JobTask._meta.db_table)
    m2m = JobTask._meta.get_field("required_equipment").remote_field.through._meta
    link = _q(m2m.db_table)
    link_task = _q(m2m.get_field("jobtask").column)
    link_equipment = _q(m2m.get_field("equipment").column)
    sql = f"""
WITH r AS MATERIALIZED (
    SELECT t.id, t."order", t.title, t.description, t.status, t.started_at, t.completed_at, t.job_id,
           j.title AS job_title, j.client_name, j.priority, j.status AS job_status, j.scheduled_date,
           j.assigned_to_id, (j.overdue OR j.scheduled_date < %s) AS overdue_now,
           row_number() OVER (PARTITION BY t.job_id ORDER BY t."order") = 1 AS actionable
    FROM ({{inner}}) j
    JOIN {tasks} t ON t.job_id = j.id
    WHERE t.status IN ({{statuses}})
),
equipment AS (
    SELECT m.{link_task} AS task_id, json_agg(json_build_object(
        'id', e.id, 'name', e.name, 'type', e.type, 'serial_number', e.serial_number, 'is_active', e.is_active
    ) ORDER BY e.id) AS items
    FROM r
    JOIN {link} m ON m.{link_task} = r.id
    JOIN {_q(Equipment._meta.db_table)} e ON e.id = m.{link_equipment}
    GROUP BY m.{link_task}
),
tasks AS (
    SELECT r.scheduled_date, r.job_id, r."order", json_build_object(
        'id', r.id,
        'job', json_build_object(
            'id', r.job_id,
            'title', r.job_title,
            'client_name', r.client_name,
            'priority', r.priority,
            'status', r.job_status,
            'overdue', r.overdue_now,
            'scheduled_date', r.scheduled_date,
            'assigned_to', r.assigned_to_id
        ),
        'order', r."order",
        'title', r.title,
        'description', r.description,
        'status', r.status,
        'required_equipment', COALESCE(q.items, '[]'::json),
        'started_at', {_iso("r.started_at")},
        'completed_at', {_iso("r.completed_at")},
        'actionable', r.actionable
    ) AS body
    FROM r
    LEFT JOIN equipment q ON q.task_id = r.id
)
SELECT COALESCE(json_agg(json_build_object('date', d.scheduled_date, 'tasks', d.tasks) ORDER BY d.scheduled_date),
                '[]'::json)::text
FROM (SELECT scheduled_date, json_agg(body ORDER BY job_id, "order") AS tasks FROM tasks GROUP BY scheduled_date) d
"""  # nosec B608
    return sql


def day_view(jobs: QuerySet[Job], *, task_statuses: tuple[str, ...], today: datetime.date) -> orjson.Fragment:
    """The day view (``[{date, tasks}]``) of the tasks in ``task_statuses`` of ``jobs`` (already scoped and filtered
    by the caller).

    Same rules as ``jobs.reports.dashboard_days``: dates ascending, tasks by job then order, ``actionable`` on each
    job's first listed task, ``job.overdue`` the flag or a date before ``today``.
    """
    compiled = _compiled(jobs.order_by().values(*_DAY_VIEW_JOB_COLUMNS))
    if compiled is None or not task_statuses:
        return orjson.Fragment(b"[]")
    inner, params = compiled
    # The placeholders first: the inner SQL is inserted last, so nothing in it is ever taken for a marker.
    sql = _day_view_sql().replace("{statuses}", ", ".join(["%s"] * len(task_statuses)), 1).replace("{inner}", inner, 1)
    with connections[jobs.db].cursor() as cursor:
        cursor.execute(sql, (today, *params, *task_statuses))
        (body,) = cursor.fetchone()
    return orjson.Fragment(body)
