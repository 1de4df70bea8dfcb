"""Shape of audit entries in the API (read-only: the trail has no write serializer)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobops.fields import ReadModelSerializer

from .models import AuditEntry

_CHANGES_SCHEMA = {
    "type": "object",
    "description": (
        "`{field: [old, new]}` for each changed field; many-to-many fields as lists of ids. Secrets (such as "
        "password hashes) are never recorded."
    ),
    "additionalProperties": {"type": "array", "items": {}, "minItems": 2, "maxItems": 2},
}


@extend_schema_field(_CHANGES_SCHEMA)
class ChangesField(serializers.JSONField):
    pass


class AuditEntryReadSerializer(ReadModelSerializer):
    actor = serializers.IntegerField(
        source="actor_id", read_only=True, allow_null=True, help_text="The acting user's id; null for the system."
    )
    job = serializers.IntegerField(
        source="job_id", read_only=True, allow_null=True, help_text="The job this entry belongs to, if any."
    )
    changes = ChangesField(read_only=True)

    class Meta:
        model = AuditEntry
        fields = (
            "id",
            "at",
            "actor",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "job",
            "changes",
            "request_id",
            "source",
        )
        read_only_fields = fields
