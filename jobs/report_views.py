"""Report endpoints: the technician dashboard, admin analytics and equipment usage (API.md).

Thin views over ``jobs.reports``: they validate the query parameters with a serializer (bad values -> 400 with
field errors), apply the role rules and return what the report function built. The report functions produce the
response shape directly from ``values()`` rows (no model instances, no per-field serializer work); the response
serializers below document that shape in the OpenAPI schema, and the tests check the two agree.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ADMIN, ADMIN_ONLY, TECHNICIAN
from equipment.models import Equipment
from jobops.fields import QueryIntegerField

from . import reports
from .models import Job, JobTask
from .serializers import EquipmentBriefSerializer

TAGS = ["reports"]


class HasReportRole(BasePermission):
    """Default deny: the caller's role (read from the user row, not the token) must be in ``view.allowed_roles``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        return getattr(user, "role", None) in getattr(view, "allowed_roles", frozenset())


def query_params(request: Request) -> dict[str, str]:
    # A plain dict, not the QueryDict: DRF reads an empty value in a QueryDict as "not sent" (HTML form rules) and
    # would apply the default, where the contract wants ``?days=`` to be a 400 like any other bad value.
    return request.query_params.dict()


class ReportView(APIView):
    # IsAuthenticated first, so an anonymous caller gets 401 rather than 403.
    permission_classes = [IsAuthenticated, HasReportRole]
    allowed_roles: frozenset[str] = frozenset()


# --- technician dashboard -----------------------------------------------------------------------------------------


class DashboardQuerySerializer(serializers.Serializer):
    days = QueryIntegerField(
        min_value=1, max_value=90, default=7, help_text="Days ahead of today to include (today + days, inclusive)."
    )
    technician = QueryIntegerField(
        min_value=1,
        max_value=reports.MAX_ID,
        required=False,
        help_text="A technician's id. Admins: only that technician's tasks (without it: every technician's). "
        "Technicians: only their own id.",
    )


class DashboardJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    client_name = serializers.CharField()
    priority = serializers.ChoiceField(choices=Job.Priority.choices)
    status = serializers.ChoiceField(choices=Job.Status.choices)
    overdue = serializers.BooleanField(
        help_text="True when the job is flagged overdue or is open and scheduled before today (TIME_ZONE)."
    )
    scheduled_date = serializers.DateField()
    assigned_to = serializers.IntegerField(allow_null=True, help_text="The assigned technician's id.")


class DashboardTaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = DashboardJobSerializer()
    order = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=JobTask.Status.choices)
    required_equipment = EquipmentBriefSerializer(many=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    actionable = serializers.BooleanField(help_text="True only for the first not-completed task of its job.")


class DashboardDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The jobs' scheduled date (a past date holds overdue jobs).")
    tasks = DashboardTaskSerializer(many=True)


class TechnicianDashboardView(ReportView):
    allowed_roles = frozenset({ADMIN, TECHNICIAN})

    @extend_schema(
        summary="Technician dashboard: open tasks by date (admin, technician)",
        description=(
            "The pending and in-progress tasks of open jobs scheduled from today to today + `days` (in TIME_ZONE), "
            "plus those of overdue jobs under their own past date; dates ascending, only dates with tasks. Tasks "
            "are ordered by job (date, id) then `order`. Not paginated."
        ),
        tags=TAGS,
        parameters=[DashboardQuerySerializer],
        responses={200: DashboardDaySerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        params = DashboardQuerySerializer(data=query_params(request))
        params.is_valid(raise_exception=True)
        technician_id = params.validated_data.get("technician")
        user = request.user
        if user.role == TECHNICIAN:
            # Checked before any lookup, so a technician learns nothing about which ids exist.
            if technician_id is not None and technician_id != user.pk:
                raise PermissionDenied("A technician may only see their own dashboard.")
        elif technician_id is not None and not reports.technician_exists(technician_id=technician_id):
            # A well-formed id that names no technician: like any missing object, a 404 (a 400 is for bad input).
            raise NotFound(f"No technician with id {technician_id}.")
        days = reports.technician_dashboard(user=user, technician_id=technician_id, days=params.validated_data["days"])
        return Response(days)


# --- analytics ----------------------------------------------------------------------------------------------------


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
    tasks = serializers.IntegerField(help_text="Tasks of jobs in range that require it.")


class TechnicianLoadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    first_name = serializers.CharField(allow_blank=True)
    last_name = serializers.CharField(allow_blank=True)
    role = serializers.CharField(help_text="Current role (a former technician still assigned jobs is listed too).")
    is_active = serializers.BooleanField()
    open = serializers.IntegerField(help_text="Assigned jobs in range that are pending or in progress.")
    completed = serializers.IntegerField(help_text="Assigned jobs in range that are completed.")
    overdue = serializers.IntegerField(help_text="Assigned jobs in range that are overdue.")


class CompletedPerDaySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="Date of `completed_at` in TIME_ZONE.")
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


class AnalyticsView(ReportView):
    allowed_roles = ADMIN_ONLY

    @extend_schema(
        summary="Analytics over jobs scheduled in a date range (admin)",
        description=(
            "Every figure describes the jobs whose `scheduled_date` is within [`from`, `to`] (either bound may be "
            "omitted) and their tasks. Computed in the database on every request (not cached)."
        ),
        tags=TAGS,
        parameters=[AnalyticsQuerySerializer],
        responses={200: AnalyticsSerializer},
    )
    def get(self, request: Request) -> Response:
        params = AnalyticsQuerySerializer(data=query_params(request))
        params.is_valid(raise_exception=True)
        data = reports.analytics(date_from=params.validated_data.get("from"), date_to=params.validated_data.get("to"))
        return Response(data)


# --- equipment usage ----------------------------------------------------------------------------------------------


class EquipmentUpcomingUseSerializer(serializers.Serializer):
    job = serializers.IntegerField(help_text="Job id.")
    title = serializers.CharField(help_text="Job title.")
    scheduled_date = serializers.DateField()
    status = serializers.ChoiceField(choices=Job.Status.choices, help_text="Job status.")
    task = serializers.IntegerField(help_text="Task id.")
    task_title = serializers.CharField()
    order = serializers.IntegerField(help_text="Task order within the job.")
    task_status = serializers.ChoiceField(choices=JobTask.Status.choices)


class EquipmentUsageSerializer(serializers.Serializer):
    equipment = EquipmentBriefSerializer()
    tasks_count = serializers.IntegerField(help_text="Tasks (any status) that require it.")
    jobs_count = serializers.IntegerField(help_text="Distinct jobs of those tasks.")
    completed_tasks_count = serializers.IntegerField(help_text="Completed tasks that required it.")
    first_used_at = serializers.DateTimeField(
        allow_null=True, help_text="Earliest completed_at of a completed task that required it."
    )
    last_used_at = serializers.DateTimeField(
        allow_null=True, help_text="Latest completed_at of a completed task that required it."
    )
    upcoming = EquipmentUpcomingUseSerializer(
        many=True, help_text="Open tasks needing it, in open jobs scheduled today or later; by date, job, order."
    )


class EquipmentUsageView(ReportView):
    allowed_roles = ADMIN_ONLY

    @extend_schema(
        summary="How an equipment item is used (admin)",
        tags=["equipment"],
        responses={200: EquipmentUsageSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(reports.equipment_usage(equipment_id=pk))
