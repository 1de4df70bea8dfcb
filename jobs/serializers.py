"""Shapes of jobs and tasks. Read serializers render; write serializers validate input and never save.

Each read serializer is the one declaration of its response shape: ``jobops.jsonshape`` derives the SQL that renders
it (tests compare the two renderings whole, on SQLite and PostgreSQL). ``Meta.ordering`` on a serializer nested with
``many=True`` is the order of the nested array.

Read-only fields (``status``, ``created_by``, ``job``, timestamps, ``overdue``) are simply absent from the write
serializers, so a client that sends them has them ignored, never applied.
"""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import User
from equipment.models import Equipment
from equipment.serializers import EquipmentBriefSerializer
from jobops.fields import (
    MAX_RELATED_IDS,
    ReadModelSerializer,
    RelatedCountField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictPrimaryKeyRelatedField,
)

from .models import Job, JobTask


class JobTaskReadSerializer(ReadModelSerializer):
    required_equipment = EquipmentBriefSerializer(many=True, read_only=True)

    class Meta:
        model = JobTask
        fields = [
            "id",
            "job",
            "order",
            "title",
            "description",
            "status",
            "required_equipment",
            "started_at",
            "completed_at",
        ]
        read_only_fields = fields
        ordering = ["order"]  # within a job (``JobDetailSerializer.tasks``)


class JobReadSerializer(ReadModelSerializer):
    tasks_total = RelatedCountField(relation="tasks", help_text="Number of tasks of the job.")
    tasks_completed = RelatedCountField(
        relation="tasks", filter={"status": JobTask.Status.COMPLETED}, help_text="Number of its completed tasks."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "title",
            "description",
            "client_name",
            "status",
            "priority",
            "scheduled_date",
            "overdue",
            "assigned_to",
            "created_by",
            "created_at",
            "updated_at",
            "completed_at",
            "requires_signature",
            "tasks_total",
            "tasks_completed",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobReadSerializer):
    tasks = JobTaskReadSerializer(many=True, read_only=True)

    class Meta(JobReadSerializer.Meta):
        fields = [*JobReadSerializer.Meta.fields, "tasks"]
        read_only_fields = fields


class JobWriteSerializer(StrictModelSerializer):
    # Only technicians resolve, and every miss gets the same message as an inactive technician: a sales agent
    # cannot tell which ids belong to users outside the technicians they may assign.
    assigned_to = StrictPrimaryKeyRelatedField(
        queryset=User.objects.filter(role=User.Role.TECHNICIAN),
        error_messages={"does_not_exist": "Must be an active technician."},
        allow_null=True,
        required=False,
        help_text="An active technician's id, or null.",
    )

    class Meta:
        model = Job
        fields = [
            "title",
            "description",
            "client_name",
            "priority",
            "scheduled_date",
            "assigned_to",
            "requires_signature",
        ]


class JobTaskCreateSerializer(StrictModelSerializer):
    order = StrictIntegerField(
        min_value=1,
        max_value=2_000_000_000,
        required=False,
        allow_null=True,
        help_text="Position in the job; omitted -> appended at the end.",
    )
    required_equipment = StrictPrimaryKeyRelatedField(
        queryset=Equipment.objects.all(),
        many=True,
        required=False,
        help_text=f"Equipment ids (active), at most {MAX_RELATED_IDS}; a repeated id counts once.",
    )

    class Meta:
        model = JobTask
        fields = ["order", "title", "description", "required_equipment"]


class JobTaskUpdateSerializer(StrictModelSerializer):
    required_equipment = StrictPrimaryKeyRelatedField(
        queryset=Equipment.objects.all(),
        many=True,
        required=False,
        help_text=f"Equipment ids (active), at most {MAX_RELATED_IDS}; a repeated id counts once.",
    )

    class Meta:
        model = JobTask
        fields = ["title", "description", "required_equipment"]


class JobTaskReorderSerializer(serializers.Serializer):
    order = serializers.ListField(
        child=StrictIntegerField(min_value=1),
        allow_empty=True,
        max_length=10_000,
        help_text="Every task id of the job, each once, in the new order.",
    )
