"""Read-only reports: the technician dashboard, the admin analytics and equipment usage.

Every report is computed by the database in a fixed number of queries, whatever the amount of data: the dashboard
in one query (tasks joined to their job and equipment), equipment usage in two, analytics in five (seven on SQLite,
which has no ``percentile_cont``: one more query per percentile). Nothing is cached: the figures are always as
fresh as the rows they count.

"Overdue" follows the rule the services and the daily sweep apply (``jobs.services``): a job is overdue when it is
open (pending or in progress) and scheduled before today in ``TIME_ZONE``. The reports treat a job as overdue when
its stored ``overdue`` flag is set *or* that rule holds, so a job does not drop out of the dashboard or the counts
between midnight and the sweep (or while a failed sweep is retried).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from typing import Any

import orjson
from django.db import NotSupportedError, connections
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Min,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from equipment.models import Equipment

from . import pgjson
from .models import Job, JobTask
from .rows import format_date, format_datetime

OPEN_JOB_STATUSES = (Job.Status.PENDING, Job.Status.IN_PROGRESS)
OPEN_TASK_STATUSES = (JobTask.Status.PENDING, JobTask.Status.IN_PROGRESS)
#: The percentile reported next to each average (0.9 = p90), with ``percentile_cont``'s linear interpolation.
PERCENTILE = 0.9
TOP_EQUIPMENT = 10
#: Largest id the database can store (BigAutoField); a bigger one cannot match a row (and overflows SQLite).
MAX_ID = 2**63 - 1


def overdue_q(*, today: datetime.date, prefix: str = "") -> Q:
    """Jobs (reached through ``prefix``, e.g. ``"job__"``) that are overdue on ``today``: see the module docstring."""
    return Q(**{f"{prefix}status__in": OPEN_JOB_STATUSES}) & (
        Q(**{f"{prefix}overdue": True}) | Q(**{f"{prefix}scheduled_date__lt": today})
    )


def scheduled_between_q(*, date_from: datetime.date | None, date_to: datetime.date | None, prefix: str = "") -> Q:
    """Jobs (through ``prefix``) scheduled within ``[date_from, date_to]``; a missing bound is open-ended."""
    q = Q()
    if date_from is not None:
        q &= Q(**{f"{prefix}scheduled_date__gte": date_from})
    if date_to is not None:
        q &= Q(**{f"{prefix}scheduled_date__lte": date_to})
    return q


# --- database helpers -------------------------------------------------------------------------------------------


class Seconds(Func):
    """The float number of seconds from the ``start`` column to the ``end`` column (both datetimes)."""

    output_field = FloatField()

    def __init__(self, start: str, end: str) -> None:
        super().__init__(ExpressionWrapper(F(end) - F(start), output_field=DurationField()))

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        if connection.features.has_native_duration_field:
            raise NotSupportedError(f"Seconds() is not implemented for {connection.vendor}.")
        # Without a native interval type Django renders a datetime difference as integer microseconds.
        return super().as_sql(compiler, connection, template="(%(expressions)s) / 1000000.0", **extra_context)

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::double precision", **extra_context
        )


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`` (an ordered-set aggregate)."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)r) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        # Interpolated into the SQL, so only ever a float of our own in [0, 1], never client input.
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        super().__init__(expression, fraction=fraction, **extra)


def _has_percentile(queryset: QuerySet[Any]) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def _percentile_fallback(queryset: QuerySet[Any], expression: Any, *, count: int, fraction: float) -> float | None:
    """``percentile_cont`` for databases without it, in one query: the one or two rows around the rank, interpolated.

    ``count`` is the number of rows in ``queryset`` (already known from the aggregate query), so the rank is known
    before the query and the database returns at most two values (ORDER BY ... LIMIT 2 OFFSET rank).
    """
    if count == 0:
        return None
    rank = fraction * (count - 1)
    low = math.floor(rank)
    values = list(
        queryset.annotate(value_seconds=expression)
        .order_by("value_seconds")
        .values_list("value_seconds", flat=True)[low : low + 2]
    )
    if not values:  # rows vanished between the two queries
        return None
    if len(values) == 1:
        return float(values[0])
    return float(values[0]) + (rank - low) * (float(values[1]) - float(values[0]))


def _duration_aggregates(key: str, *, start: str, end: str, native: bool, condition: Q | None = None) -> dict[str, Any]:
    """Aggregates for count, average and (natively) percentile of ``end - start`` in seconds, named ``<key>_...``.

    ``condition`` restricts them to some rows of the aggregated queryset (an SQL ``FILTER``), so these can share one
    query with other aggregates over the same rows.
    """
    seconds = Seconds(start, end)
    aggregates: dict[str, Any] = {
        f"{key}_count": Count("pk", filter=condition),
        f"{key}_average": Avg(seconds, filter=condition),
    }
    if native:
        aggregates[f"{key}_p90"] = PercentileCont(seconds, fraction=PERCENTILE, filter=condition)
    return aggregates


def _duration_stats(
    key: str, stats: dict[str, Any], *, rows: QuerySet[Any], start: str, end: str, native: bool
) -> dict[str, Any]:
    """The API shape of ``_duration_aggregates`` results; without a native percentile, one more query over ``rows``
    (the rows the aggregates were restricted to), skipped when there is nothing to rank."""
    count = stats[f"{key}_count"]
    if native:
        p90 = stats[f"{key}_p90"]
    else:
        p90 = _percentile_fallback(rows, Seconds(start, end), count=count, fraction=PERCENTILE)
    return {"count": count, "average": _round(stats[f"{key}_average"]), "p90": _round(p90)}


def _round(value: float | None) -> float | None:
    # Millisecond precision: enough for durations, and stable across PostgreSQL and SQLite float arithmetic.
    return None if value is None else round(float(value), 3)


# --- technician dashboard -----------------------------------------------------------------------------------------

_DASHBOARD_COLUMNS = (
    "id",
    "order",
    "title",
    "description",
    "status",
    "started_at",
    "completed_at",
    "job_id",
    "job__title",
    "job__client_name",
    "job__priority",
    "job__status",
    "job__overdue",
    "job__scheduled_date",
    "job__assigned_to_id",
    "required_equipment__id",
    "required_equipment__name",
    "required_equipment__type",
    "required_equipment__serial_number",
    "required_equipment__is_active",
)


def dashboard_jobs_for(*, user: Any, technician_id: int | None, days: int, today: datetime.date) -> QuerySet[Job]:
    """The jobs on the dashboard: open, and scheduled up to ``today + days`` (so every open job scheduled before
    today, i.e. every overdue one, is included) or flagged overdue.

    Scope: a technician sees only the jobs assigned to them, whatever ``technician_id`` says (the view answers 403
    before that); an admin sees the jobs of ``technician_id``, or of every technician (assigned jobs only) without
    it; any other role sees nothing.
    """
    end = today + datetime.timedelta(days=days)
    qs = Job.objects.filter(Q(scheduled_date__lte=end) | Q(overdue=True), status__in=OPEN_JOB_STATUSES)
    role = getattr(user, "role", None)
    if role == User.Role.TECHNICIAN:
        return qs.filter(assigned_to_id=user.pk)
    if role == User.Role.ADMIN:
        if technician_id is not None:
            return qs.filter(assigned_to_id=technician_id)
        return qs.filter(assigned_to__isnull=False)
    return qs.none()


def dashboard_tasks_for(jobs: QuerySet[Job]) -> QuerySet[JobTask]:
    """The dashboard's tasks: the pending and in-progress tasks of ``jobs`` (``dashboard_jobs_for``)."""
    return JobTask.objects.filter(status__in=OPEN_TASK_STATUSES, job__in=jobs)


def dashboard_rows(tasks: QuerySet[JobTask]) -> QuerySet[JobTask, tuple[Any, ...]]:
    """One row per (task, required equipment), or one per task without equipment, ordered by job date, job id,
    task order and equipment id, so each job's tasks and each task's equipment are contiguous. One query: the
    equipment comes through a LEFT JOIN rather than a second query."""
    return tasks.order_by("job__scheduled_date", "job_id", "order", "required_equipment__id").values_list(
        *_DASHBOARD_COLUMNS
    )


def dashboard_days(rows: Iterable[tuple[Any, ...]], *, today: datetime.date) -> list[dict[str, Any]]:
    """Group ``dashboard_rows`` rows into the API shape: ``[{date, tasks: [...]}]``, dates ascending.

    Only dates with tasks appear. ``actionable`` marks the first task of each job: the rows hold every
    not-completed task of each job they include (the filters on the job select whole jobs, and the task filter is
    exactly "not completed"), ordered by ``order``, so the first row of a job is its first not-completed task, even
    when earlier tasks are completed. ``job.overdue`` is the reports' overdue rule (see the module docstring).
    """
    days: list[dict[str, Any]] = []
    day_tasks: list[dict[str, Any]] = []
    current_date = None
    job_summary: dict[str, Any] = {}
    current_job = None
    task: dict[str, Any] = {}
    current_task = None
    for (
        task_id,
        order,
        title,
        description,
        status,
        started_at,
        completed_at,
        job_id,
        job_title,
        client_name,
        priority,
        job_status,
        overdue,
        scheduled_date,
        assigned_to,
        equipment_id,
        equipment_name,
        equipment_type,
        serial_number,
        equipment_active,
    ) in rows:
        if task_id != current_task:
            current_task = task_id
            if scheduled_date != current_date:
                current_date = scheduled_date
                day_tasks = []
                days.append({"date": format_date(scheduled_date), "tasks": day_tasks})
            actionable = job_id != current_job
            if actionable:
                current_job = job_id
                job_summary = {
                    "id": job_id,
                    "title": job_title,
                    "client_name": client_name,
                    "priority": priority,
                    "status": job_status,
                    "overdue": overdue or scheduled_date < today,
                    "scheduled_date": format_date(scheduled_date),
                    "assigned_to": assigned_to,
                }
            task = {
                "id": task_id,
                "job": job_summary,
                "order": order,
                "title": title,
                "description": description,
                "status": status,
                "required_equipment": [],
                "started_at": format_datetime(started_at),
                "completed_at": format_datetime(completed_at),
                "actionable": actionable,
            }
            day_tasks.append(task)
        if equipment_id is not None:
            task["required_equipment"].append(
                {
                    "id": equipment_id,
                    "name": equipment_name,
                    "type": equipment_type,
                    "serial_number": serial_number,
                    "is_active": equipment_active,
                }
            )
    return days


def technician_exists(*, technician_id: int) -> bool:
    """Whether ``technician_id`` names a user with the technician role (active or not: an admin may look back)."""
    return 0 < technician_id <= MAX_ID and User.objects.filter(pk=technician_id, role=User.Role.TECHNICIAN).exists()


def technician_dashboard(
    *, user: Any, technician_id: int | None = None, days: int = 7, today: datetime.date | None = None
) -> list[dict[str, Any]] | orjson.Fragment:
    """The technician dashboard (API.md "Technician dashboard") for ``user``, ready to render: one query.

    On PostgreSQL the body comes back as JSON the database built (``jobs.pgjson``), elsewhere as Python lists.

    ``today`` defaults to the current date in ``TIME_ZONE``. Role rules on ``technician_id`` (a technician may
    name only themselves, an admin only an existing technician) are the caller's to check; scoping is applied
    here regardless, so a technician never sees another technician's tasks.
    """
    today = today or timezone.localdate()
    jobs = dashboard_jobs_for(user=user, technician_id=technician_id, days=days, today=today)
    if pgjson.enabled(JobTask):
        # The same body, rendered by PostgreSQL (tested equal).
        return pgjson.day_view(jobs, task_statuses=OPEN_TASK_STATUSES, today=today)
    return dashboard_days(dashboard_rows(dashboard_tasks_for(jobs)), today=today)


# --- analytics ----------------------------------------------------------------------------------------------------


def analytics(
    *, date_from: datetime.date | None = None, date_to: datetime.date | None = None, today: datetime.date | None = None
) -> dict[str, Any]:
    """Admin analytics over the jobs scheduled within ``[date_from, date_to]`` (a missing bound is open-ended).

    Every figure describes that same set of jobs: counts by status and by priority (every choice present), the
    overdue count and rate (overdue / open jobs, null without open jobs), task durations (``started_at`` ->
    ``completed_at`` of their completed tasks) and job durations (``created_at`` -> ``completed_at`` of the
    completed ones) as count/average/p90 in seconds, the ten equipment items required by most of their tasks, per
    technician open/completed/overdue job counts (every user with the technician role, plus anyone else still
    assigned a job in range), and the jobs completed per day (``completed_at`` date in ``TIME_ZONE``). Five
    queries on PostgreSQL, seven elsewhere (the percentile fallback), whatever the amount of data.
    """
    today = today or timezone.localdate()
    in_range = scheduled_between_q(date_from=date_from, date_to=date_to)
    jobs = Job.objects.filter(in_range).order_by()

    native = _has_percentile(jobs)
    completed_job = Q(status=Job.Status.COMPLETED, completed_at__isnull=False)
    # One query for every per-job figure, job durations included.
    counts = jobs.aggregate(
        **_duration_aggregates(
            "duration", start="created_at", end="completed_at", native=native, condition=completed_job
        ),
        total=Count("pk"),
        open=Count("pk", filter=Q(status__in=OPEN_JOB_STATUSES)),
        overdue=Count("pk", filter=overdue_q(today=today)),
        **{f"status_{value}": Count("pk", filter=Q(status=value)) for value in Job.Status.values},
        **{f"priority_{value}": Count("pk", filter=Q(priority=value)) for value in Job.Priority.values},
    )
    job_durations = _duration_stats(
        "duration", counts, rows=jobs.filter(completed_job), start="created_at", end="completed_at", native=native
    )
    completed_tasks = JobTask.objects.filter(
        scheduled_between_q(date_from=date_from, date_to=date_to, prefix="job__"),
        status=JobTask.Status.COMPLETED,
        started_at__isnull=False,
        completed_at__isnull=False,
    ).order_by()
    task_durations = _duration_stats(
        "duration",
        completed_tasks.aggregate(
            **_duration_aggregates("duration", start="started_at", end="completed_at", native=native)
        ),
        rows=completed_tasks,
        start="started_at",
        end="completed_at",
        native=native,
    )

    # filter() before annotate(): the count runs over the join the filter made, i.e. only tasks of jobs in range.
    equipment = (
        Equipment.objects.filter(
            scheduled_between_q(date_from=date_from, date_to=date_to, prefix="tasks__job__"),
            tasks__isnull=False,
        )
        .annotate(tasks_count=Count("tasks"))
        .order_by("-tasks_count", "name", "id")
        .values("id", "name", "type", "tasks_count")[:TOP_EQUIPMENT]
    )

    assigned_in_range = scheduled_between_q(date_from=date_from, date_to=date_to, prefix="assigned_jobs__")
    technicians = (
        User.objects.filter(
            Q(role=User.Role.TECHNICIAN) | Q(pk__in=jobs.filter(assigned_to__isnull=False).values("assigned_to_id"))
        )
        .annotate(
            open_jobs=Count("assigned_jobs", filter=assigned_in_range & Q(assigned_jobs__status__in=OPEN_JOB_STATUSES)),
            completed_jobs=Count(
                "assigned_jobs", filter=assigned_in_range & Q(assigned_jobs__status=Job.Status.COMPLETED)
            ),
            overdue_jobs=Count(
                "assigned_jobs", filter=assigned_in_range & overdue_q(today=today, prefix="assigned_jobs__")
            ),
        )
        .order_by("username", "id")
        .values(
            "id",
            "username",
            "first_name",
            "last_name",
            "role",
            "is_active",
            "open_jobs",
            "completed_jobs",
            "overdue_jobs",
        )
    )

    per_day = (
        jobs.filter(completed_job)
        .annotate(day=TruncDate("completed_at", tzinfo=timezone.get_default_timezone()))
        .values("day")
        .annotate(count=Count("pk"))
        .order_by("day")
    )

    open_count = counts["open"]
    return {
        "from": format_date(date_from),
        "to": format_date(date_to),
        "jobs_total": counts["total"],
        "jobs_by_status": {value: counts[f"status_{value}"] for value in Job.Status.values},
        "jobs_by_priority": {value: counts[f"priority_{value}"] for value in Job.Priority.values},
        "overdue_count": counts["overdue"],
        "overdue_rate": round(counts["overdue"] / open_count, 4) if open_count else None,
        "task_duration_seconds": task_durations,
        "job_duration_seconds": job_durations,
        "most_used_equipment": [
            {"id": row["id"], "name": row["name"], "type": row["type"], "tasks": row["tasks_count"]}
            for row in equipment
        ],
        "technicians": [
            {
                "id": row["id"],
                "username": row["username"],
                "first_name": row["first_name"],
                "last_name": row["last_name"],
                "role": row["role"],
                "is_active": row["is_active"],
                "open": row["open_jobs"],
                "completed": row["completed_jobs"],
                "overdue": row["overdue_jobs"],
            }
            for row in technicians
        ],
        "jobs_completed_per_day": [{"date": format_date(row["day"]), "count": row["count"]} for row in per_day],
    }


# --- equipment usage ----------------------------------------------------------------------------------------------


def equipment_usage(*, equipment_id: int, today: datetime.date | None = None) -> dict[str, Any]:
    """How one equipment item is used (API.md "Equipment" ``usage``), or ``Http404``: two queries.

    ``tasks_count``/``jobs_count`` count every task (any status) requiring it and their distinct jobs;
    ``completed_tasks_count``, ``first_used_at`` and ``last_used_at`` (min/max ``completed_at``) cover its completed
    tasks only. ``upcoming`` lists the open tasks requiring it in open jobs scheduled today (``TIME_ZONE``) or later,
    by date, job and task order. Inactive equipment is reported too: its history stays meaningful.
    """
    if not 0 < equipment_id <= MAX_ID:
        raise Http404("No Equipment matches the given query.")
    today = today or timezone.localdate()
    completed = Q(tasks__status=JobTask.Status.COMPLETED)
    rows = list(
        Equipment.objects.filter(pk=equipment_id)
        .annotate(
            tasks_count=Count("tasks"),
            jobs_count=Count("tasks__job", distinct=True),
            completed_tasks_count=Count("tasks", filter=completed),
            first_used_at=Min("tasks__completed_at", filter=completed),
            last_used_at=Max("tasks__completed_at", filter=completed),
        )
        .order_by()
        .values(
            "id",
            "name",
            "serial_number",
            "type",
            "is_active",
            "tasks_count",
            "jobs_count",
            "completed_tasks_count",
            "first_used_at",
            "last_used_at",
        )
    )
    if not rows:
        raise Http404("No Equipment matches the given query.")
    row = rows[0]
    upcoming = (
        JobTask.objects.filter(
            required_equipment=equipment_id,
            status__in=OPEN_TASK_STATUSES,
            job__status__in=OPEN_JOB_STATUSES,
            job__scheduled_date__gte=today,
        )
        .order_by("job__scheduled_date", "job_id", "order")
        .values_list("job_id", "job__title", "job__scheduled_date", "job__status", "id", "title", "order", "status")
    )
    return {
        "equipment": {
            "id": row["id"],
            "name": row["name"],
            "serial_number": row["serial_number"],
            "type": row["type"],
            "is_active": row["is_active"],
        },
        "tasks_count": row["tasks_count"],
        "jobs_count": row["jobs_count"],
        "completed_tasks_count": row["completed_tasks_count"],
        "first_used_at": format_datetime(row["first_used_at"]),
        "last_used_at": format_datetime(row["last_used_at"]),
        "upcoming": [
            {
                "job": job_id,
                "title": job_title,
                "scheduled_date": format_date(scheduled_date),
                "status": job_status,
                "task": task_id,
                "task_title": task_title,
                "order": order,
                "task_status": task_status,
            }
            for job_id, job_title, scheduled_date, job_status, task_id, task_title, order, task_status in upcoming
        ],
    }
