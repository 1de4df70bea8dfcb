"""The technician dashboard (``GET /api/dashboard/technician/``): open tasks by date, the day view of the mobile app.

One statement whatever the number of tasks: the tasks come from the task scope (``jobs.selectors.task_scope``) and
each is rendered by the database from ``DashboardTaskSerializer`` (``jobops.jsonshape``); Python only groups the
rendered tasks by date. "Overdue" and "actionable" are the rules of ``jobs.rules``.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.selectors import technician_exists
from jobops.api import ScopedViewSet
from jobops.fields import QueryIntegerField
from jobops.jsonshape import render_groups
from jobops.roles import ADMIN, TECHNICIAN

from . import rules, selectors
from .etags import tasks_etag
from .models import Job, JobTask
from .serializers import JobTaskReadSerializer

#: Largest id the database can store (BigAutoField); a bigger one cannot match a row (and overflows SQLite).
MAX_ID = 2**63 - 1


class DashboardQuerySerializer(serializers.Serializer):
    days = QueryIntegerField(
        min_value=1, max_value=90, default=7, help_text="Days ahead of today to include (today + days, inclusive)."
    )
    technician = QueryIntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="A technician's id. Admins: only that technician's tasks (without it: every technician's). "
        "Technicians: only their own id.",
    )


class DashboardJobSerializer(serializers.Serializer):
    # The job of a dashboard task, read from the task's row (``source="*"`` on the task).

    id = serializers.IntegerField(source="job_id")
    title = serializers.CharField(source="job.title")
    client_name = serializers.CharField(source="job.client_name")
    priority = serializers.ChoiceField(choices=Job.Priority.choices, source="job.priority")
    status = serializers.ChoiceField(choices=Job.Status.choices, source="job.status")
    overdue = serializers.BooleanField(
        source="job_overdue",
        help_text="True when the job is open and scheduled before today (TIME_ZONE): the rule behind the job's "
        "stored `overdue` flag, evaluated now.",
    )
    scheduled_date = serializers.DateField(source="job.scheduled_date")
    assigned_to = serializers.IntegerField(
        source="job.assigned_to_id", allow_null=True, help_text="The assigned technician's id."
    )


class DashboardTaskSerializer(JobTaskReadSerializer):
    # A task as the task endpoints render it, with its job summarised instead of its id, and ``actionable``.
    job = DashboardJobSerializer(source="*")
    actionable = serializers.BooleanField(help_text="True only for the first not-completed task of its job.")

    class Meta(JobTaskReadSerializer.Meta):
        fields = [*JobTaskReadSerializer.Meta.fields, "actionable"]
        read_only_fields = fields


class DashboardDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The jobs' scheduled date (a past date holds overdue jobs).")
    tasks = DashboardTaskSerializer(many=True)


def dashboard_tasks(
    tasks: QuerySet[JobTask], *, technician_id: int | None, days: int, today: datetime.date
) -> QuerySet[JobTask]:
    """The dashboard's tasks among ``tasks`` (the caller's task scope): the open tasks of open, assigned jobs
    scheduled up to ``today + days`` (so every overdue job is included, under its own past date), of
    ``technician_id`` when given; ordered by job date, job and task order."""
    end = today + datetime.timedelta(days=days)
    tasks = tasks.filter(
        status__in=rules.TASK_OPEN_STATUSES,
        job__status__in=rules.JOB_OPEN_STATUSES,
        job__scheduled_date__lte=end,
        job__assigned_to__isnull=False,
    )
    if technician_id is not None:
        tasks = tasks.filter(job__assigned_to_id=technician_id)
    return tasks.order_by("job__scheduled_date", "job_id", "order")


def dashboard_annotations(*, today: datetime.date) -> dict[str, Any]:
    """What ``DashboardTaskSerializer`` reads besides model fields: the rules of ``jobs.rules`` on ``today``."""
    return {
        "job_overdue": ExpressionWrapper(rules.overdue_q(today=today, prefix="job__"), output_field=BooleanField()),
        "actionable": rules.actionable_task(),
    }


def dashboard_days(tasks: QuerySet[JobTask], *, today: datetime.date) -> Any:
    """``[{date, tasks}]`` of ``dashboard_tasks``, dates ascending, only dates with tasks: one statement."""
    return render_groups(
        tasks,
        DashboardDaySerializer,
        key="job__scheduled_date",
        annotations=dashboard_annotations,
        params={"today": today},
    )


class TechnicianDashboardViewSet(ScopedViewSet):
    # ``list`` is the dashboard; the task scope decides what it may contain, the parameters narrow it.

    selector = selectors.task_scope
    allowed_roles = {"list": frozenset({ADMIN, TECHNICIAN})}
    etag_actions = frozenset({"list"})
    pagination_class = None
    filter_backends: list[Any] = []

    @extend_schema(
        summary="Technician dashboard: open tasks by date (admin, technician)",
        description=(
            "The pending and in-progress tasks of open jobs scheduled from today to today + `days` (in TIME_ZONE), "
            "plus those of overdue jobs under their own past date; dates ascending, only dates with tasks. Tasks "
            "are ordered by job (date, id) then `order`. Not paginated."
        ),
        tags=["reports"],
        parameters=[DashboardQuerySerializer],
        responses={200: DashboardDaySerializer(many=True)},
    )
    def list(self, request: Request) -> Any:
        # A plain dict, not the QueryDict: DRF reads an empty value in a QueryDict as "not sent" and would apply the
        # default, where the contract wants ``?days=`` to be a 400 like any other bad value.
        params = DashboardQuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        technician_id = params.validated_data.get("technician")
        user = request_user(request)
        if user.role == TECHNICIAN:
            # Checked before any lookup, so a technician learns nothing about which ids exist.
            if technician_id is not None and technician_id != user.pk:
                raise PermissionDenied("A technician may only see their own dashboard.")
        elif technician_id is not None and not technician_exists(technician_id=technician_id):
            # A well-formed id that names no technician: like any missing object, a 404 (a 400 is for bad input).
            raise NotFound(f"No technician with id {technician_id}.")
        today = timezone.localdate()
        tasks = dashboard_tasks(
            self.get_queryset(), technician_id=technician_id, days=params.validated_data["days"], today=today
        )
        etag = tasks_etag(tasks, extra=(today, *self.etag_extra(url=True)))
        return self.conditional(etag, lambda: Response(dashboard_days(tasks, today=today)))
