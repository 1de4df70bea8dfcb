"""How an equipment item is used (``GET /api/equipment/{id}/usage/``, admin): two queries.

It lives in jobs, not in equipment, because it is about tasks and their jobs: it counts tasks and applies the job
rules (open, scheduled), and equipment sits below jobs in the app layers (equipment never imports jobs). The item comes
from the equipment scope (a missing one is a 404); the tasks counted are those of the caller's job scope.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from equipment.models import Equipment
from equipment.selectors import equipment_list_for
from equipment.serializers import EquipmentBriefSerializer
from jobops.api import ScopedViewSet
from jobops.fields import UTCDateTimeField
from jobops.replica import replica_reads
from jobops.roles import ADMIN_ONLY

from . import rules, selectors
from .models import Job, JobTask


class EquipmentUpcomingUseSerializer(serializers.Serializer):
    job = serializers.IntegerField(source="job_id", help_text="Job id.")
    title = serializers.CharField(source="job__title", help_text="Job title.")
    scheduled_date = serializers.DateField(source="job__scheduled_date")
    status = serializers.ChoiceField(choices=Job.Status.choices, source="job__status", help_text="Job status.")
    task = serializers.IntegerField(source="id", help_text="Task id.")
    task_title = serializers.CharField(source="title")
    order = serializers.IntegerField(help_text="Task order within the job.")
    task_status = serializers.ChoiceField(choices=JobTask.Status.choices, source="status")


class EquipmentUsageSerializer(serializers.Serializer):
    equipment = EquipmentBriefSerializer(source="*")
    tasks_count = serializers.IntegerField(help_text="Tasks (any status) that require it.")
    jobs_count = serializers.IntegerField(help_text="Distinct jobs of those tasks.")
    completed_tasks_count = serializers.IntegerField(help_text="Completed tasks that required it.")
    first_used_at = UTCDateTimeField(
        allow_null=True, help_text="Earliest completed_at of a completed task that required it."
    )
    last_used_at = UTCDateTimeField(
        allow_null=True, help_text="Latest completed_at of a completed task that required it."
    )
    upcoming = EquipmentUpcomingUseSerializer(
        many=True, help_text="Open tasks needing it, in open jobs scheduled today or later; by date, job, order."
    )


def with_usage_counts(items: QuerySet[Equipment], *, user: Any) -> QuerySet[Equipment]:
    """``items`` with the counts ``EquipmentUsageSerializer`` renders, over the tasks of ``user``'s jobs:
    ``tasks_count``/``jobs_count`` every task (any status) requiring it and their distinct jobs;
    ``completed_tasks_count``, ``first_used_at`` and ``last_used_at`` (min/max ``completed_at``) its completed tasks."""
    visible = selectors.job_scope_q(user=user, prefix="tasks__job__")
    completed = visible & Q(tasks__status=JobTask.Status.COMPLETED)
    return items.annotate(
        tasks_count=Count("tasks", filter=visible),
        jobs_count=Count("tasks__job", filter=visible, distinct=True),
        completed_tasks_count=Count("tasks", filter=completed),
        first_used_at=Min("tasks__completed_at", filter=completed),
        last_used_at=Max("tasks__completed_at", filter=completed),
    ).order_by()


def upcoming_uses(tasks: QuerySet[JobTask], *, equipment_id: int) -> list[Any]:
    """The open tasks among ``tasks`` requiring the item, in open jobs scheduled today (``TIME_ZONE``) or later, by
    date, job and task order."""
    return list(
        tasks.filter(
            required_equipment=equipment_id,
            status__in=rules.TASK_OPEN_STATUSES,
            job__status__in=rules.JOB_OPEN_STATUSES,
            job__scheduled_date__gte=timezone.localdate(),
        )
        .order_by("job__scheduled_date", "job_id", "order")
        .values("job_id", "job__title", "job__scheduled_date", "job__status", "id", "title", "order", "status")
    )


class EquipmentUsageViewSet(ScopedViewSet):
    # ``retrieve`` is the usage of one item; inactive items are reported too (their history stays meaningful).

    selector = equipment_list_for
    allowed_roles = {"retrieve": ADMIN_ONLY}
    pagination_class = None
    filter_backends: list[Any] = []

    def shape_queryset(self, queryset: QuerySet[Equipment]) -> QuerySet[Equipment]:
        return with_usage_counts(queryset, user=self.request.user)

    @extend_schema(
        summary="How an equipment item is used (admin)", tags=["equipment"], responses={200: EquipmentUsageSerializer}
    )
    @replica_reads
    def retrieve(self, request: Request, pk: int) -> Response:
        item = self.get_object()
        item.upcoming = upcoming_uses(selectors.task_scope(user=request.user), equipment_id=item.pk)
        return Response(EquipmentUsageSerializer(item).data)
