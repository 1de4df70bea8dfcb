"""Admin analytics (``GET /api/analytics/``): figures over the jobs scheduled in a date range, computed in the database.

Five queries on PostgreSQL, seven elsewhere (SQLite has no ``percentile_cont``: one more query per percentile),
whatever the amount of data. Nothing is cached: the figures are as fresh as the rows they count. The jobs and tasks
counted are those of the caller's scope (``jobs.selectors.job_scope_q``: every job, for the admins this is open to);
"overdue" and "open" are the rules of ``jobs.rules``. The response shape is declared once, by
``AnalyticsSerializer``, which renders the raw figures (dates as dates) that ``analytics`` computes.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDate
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from equipment.models import Equipment
from jobops.api import ScopedViewSet
from jobops.replica import replica_reads
from jobops.roles import ADMIN_ONLY

from . import rules, selectors
from .models import Job, JobTask

#: The percentile reported next to each average (0.9 = p90), with ``percentile_cont``'s linear interpolation.
PERCENTILE = 0.9
TOP_EQUIPMENT = 10


def scheduled_between_q(*, date_from: datetime.date | None, date_to: datetime.date | None, prefix: str = "") -> Q:
    """Jobs (through ``prefix``) scheduled within ``[date_from, date_to]``; a missing bound is open-ended."""
    q = Q()
    if date_from is not None:
        q &= Q(**{f"{prefix}scheduled_date__gte": date_from})
    if date_to is not None:
        q &= Q(**{f"{prefix}scheduled_date__lte": date_to})
    return q


class Seconds(Func):
    """The float number of seconds from the ``start`` column to the ``end`` column (both datetimes)."""

    output_field = FloatField()

    def __init__(self, start: str, end: str) -> None:
        super().__init__(ExpressionWrapper(F(end) - F(start), output_field=DurationField()))

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
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


def analytics(
    *,
    user: Any,
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    today: datetime.date | None = None,
) -> dict[str, Any]:
    """Analytics over the jobs in ``user``'s scope scheduled within ``[date_from, date_to]`` (a missing bound is
    open-ended), as ``AnalyticsSerializer`` renders them.

    Every figure describes that same set of jobs: counts by status and by priority (every choice present), the
    overdue count and rate (overdue / open jobs, null without open jobs), task durations (``started_at`` ->
    ``completed_at`` of their completed tasks) and job durations (``created_at`` -> ``completed_at`` of the
    completed ones) as count/average/p90 in seconds, the ten equipment items required by most of their tasks, per
    technician open/completed/overdue job counts (every user with the technician role, plus anyone else still
    assigned a job in range), and the jobs completed per day (``completed_at`` date in ``TIME_ZONE``). Five
    queries on PostgreSQL, seven elsewhere (the percentile fallback), whatever the amount of data.
    """
    today = today or timezone.localdate()

    def scoped_in_range(prefix: str = "") -> Q:
        """In the caller's scope and scheduled in range: jobs reached through ``prefix``."""
        in_range = scheduled_between_q(date_from=date_from, date_to=date_to, prefix=prefix)
        return selectors.job_scope_q(user=user, prefix=prefix) & in_range

    jobs = Job.objects.filter(scoped_in_range()).order_by()

    native = _has_percentile(jobs)
    completed_job = Q(status=Job.Status.COMPLETED, completed_at__isnull=False)
    # One query for every per-job figure, job durations included.
    counts = jobs.aggregate(
        **_duration_aggregates(
            "duration", start="created_at", end="completed_at", native=native, condition=completed_job
        ),
        total=Count("pk"),
        open=Count("pk", filter=Q(status__in=rules.JOB_OPEN_STATUSES)),
        overdue=Count("pk", filter=rules.overdue_q(today=today)),
        **{f"status_{value}": Count("pk", filter=Q(status=value)) for value in Job.Status.values},
        **{f"priority_{value}": Count("pk", filter=Q(priority=value)) for value in Job.Priority.values},
    )
    job_durations = _duration_stats(
        "duration", counts, rows=jobs.filter(completed_job), start="created_at", end="completed_at", native=native
    )
    completed_tasks = JobTask.objects.filter(
        scoped_in_range("job__"),
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
        Equipment.objects.filter(scoped_in_range("tasks__job__"), tasks__isnull=False)
        .annotate(tasks_count=Count("tasks"))
        .order_by("-tasks_count", "name", "id")
        .values("id", "name", "type", "tasks_count")[:TOP_EQUIPMENT]
    )

    assigned_in_range = scoped_in_range("assigned_jobs__")
    technicians = (
        User.objects.filter(
            Q(role=User.Role.TECHNICIAN) | Q(pk__in=jobs.filter(assigned_to__isnull=False).values("assigned_to_id"))
        )
        .annotate(
            open_jobs=Count(
                "assigned_jobs", filter=assigned_in_range & Q(assigned_jobs__status__in=rules.JOB_OPEN_STATUSES)
            ),
            completed_jobs=Count(
                "assigned_jobs", filter=assigned_in_range & Q(assigned_jobs__status=Job.Status.COMPLETED)
            ),
            overdue_jobs=Count(
                "assigned_jobs", filter=assigned_in_range & rules.overdue_q(today=today, prefix="assigned_jobs__")
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
        "from": date_from,
        "to": date_to,
        "jobs_total": counts["total"],
        "jobs_by_status": {value: counts[f"status_{value}"] for value in Job.Status.values},
        "jobs_by_priority": {value: counts[f"priority_{value}"] for value in Job.Priority.values},
        "overdue_count": counts["overdue"],
        "overdue_rate": round(counts["overdue"] / open_count, 4) if open_count else None,
        "task_duration_seconds": task_durations,
        "job_duration_seconds": job_durations,
        "most_used_equipment": list(equipment),
        "technicians": list(technicians),
        "jobs_completed_per_day": list(per_day),
    }


# --- the API ----------------------------------------------------------------------------------------------------


class AnalyticsQuerySerializer(serializers.Serializer):
    date_from = serializers.DateField(required=False, help_text="First scheduled date included (YYYY-MM-DD).")
    date_to = serializers.DateField(required=False, help_text="Last scheduled date included (YYYY-MM-DD).")

    def get_fields(self) -> dict[str, serializers.Field]:
        # The contract's parameter names are ``from`` and ``to``; ``from`` cannot be a class attribute.
        fields = super().get_fields()
        fields["from"] = fields.pop("date_from")
        fields["to"] = fields.pop("date_to")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        date_from, date_to = attrs.get("from"), attrs.get("to")
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ValidationError({"to": ["Must be on or after `from`."]})
        return attrs


def _counts_serializer(name: str, choices: list[str], help_text: str) -> type[serializers.Serializer]:
    fields = {value: serializers.IntegerField(min_value=0) for value in choices}
    return type(name, (serializers.Serializer,), {**fields, "__doc__": help_text})


JobsByStatusSerializer = _counts_serializer(
    "JobsByStatusSerializer", Job.Status.values, "Number of jobs in each status (every status present)."
)
JobsByPrioritySerializer = _counts_serializer(
    "JobsByPrioritySerializer", Job.Priority.values, "Number of jobs of each priority (every priority present)."
)


class DurationStatsSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Number of durations measured.")
    average = serializers.FloatField(allow_null=True, help_text="Mean duration in seconds (null when count is 0).")
    p90 = serializers.FloatField(
        allow_null=True, help_text="90th percentile in seconds, linear interpolation (null when count is 0)."
    )


class EquipmentUseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=Equipment.Type.choices)
    tasks = serializers.IntegerField(source="tasks_count", help_text="Tasks of jobs in range that require it.")


class TechnicianLoadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    first_name = serializers.CharField(allow_blank=True)
    last_name = serializers.CharField(allow_blank=True)
    role = serializers.CharField(help_text="Current role (a former technician still assigned jobs is listed too).")
    is_active = serializers.BooleanField()
    open = serializers.IntegerField(
        source="open_jobs", help_text="Assigned jobs in range that are pending or in progress."
    )
    completed = serializers.IntegerField(
        source="completed_jobs", help_text="Assigned jobs in range that are completed."
    )
    overdue = serializers.IntegerField(source="overdue_jobs", help_text="Assigned jobs in range that are overdue.")


class CompletedPerDaySerializer(serializers.Serializer):
    date = serializers.DateField(source="day", help_text="Date of `completed_at` in TIME_ZONE.")
    count = serializers.IntegerField()


class AnalyticsSerializer(serializers.Serializer):
    date_from = serializers.DateField(allow_null=True, help_text="The `from` parameter (null: no lower bound).")
    date_to = serializers.DateField(allow_null=True, help_text="The `to` parameter (null: no upper bound).")
    jobs_total = serializers.IntegerField()
    jobs_by_status = JobsByStatusSerializer()
    jobs_by_priority = JobsByPrioritySerializer()
    overdue_count = serializers.IntegerField(
        help_text="Open jobs flagged overdue or scheduled before today (TIME_ZONE)."
    )
    overdue_rate = serializers.FloatField(
        allow_null=True, help_text="overdue_count / open (pending + in progress) jobs; null without open jobs."
    )
    task_duration_seconds = DurationStatsSerializer(help_text="started_at -> completed_at of completed tasks.")
    job_duration_seconds = DurationStatsSerializer(help_text="created_at -> completed_at of completed jobs.")
    most_used_equipment = EquipmentUseSerializer(many=True, help_text="Top 10 by number of tasks, most used first.")
    technicians = TechnicianLoadSerializer(many=True)
    jobs_completed_per_day = CompletedPerDaySerializer(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        renamed = {"date_from": "from", "date_to": "to"}
        return {renamed.get(name, name): field for name, field in fields.items()}


class AnalyticsViewSet(ScopedViewSet):
    # ``retrieve`` (no id: there is one analytics object) computes the figures; the job scope decides what it counts.

    selector = selectors.job_scope
    allowed_roles = {"retrieve": ADMIN_ONLY}
    pagination_class = None
    filter_backends: list[Any] = []

    @extend_schema(
        summary="Analytics over jobs scheduled in a date range (admin)",
        description=(
            "Every figure describes the jobs whose `scheduled_date` is within [`from`, `to`] (either bound may be "
            "omitted) and their tasks. Computed in the database on every request (not cached), on the read replica "
            "when one is configured (the figures may then lag the latest writes by the replication delay)."
        ),
        tags=["reports"],
        parameters=[AnalyticsQuerySerializer],
        responses={200: AnalyticsSerializer},
    )
    @replica_reads
    def retrieve(self, request: Request) -> Response:
        # A plain dict: DRF would read an empty value in a QueryDict as "not sent" (see the dashboard).
        params = AnalyticsQuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        figures = analytics(
            user=request.user, date_from=params.validated_data.get("from"), date_to=params.validated_data.get("to")
        )
        return Response(AnalyticsSerializer(figures).data)
