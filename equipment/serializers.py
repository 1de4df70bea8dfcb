"""Shapes of equipment. The read serializer renders; the write serializer validates input and never saves."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from jobops.fields import ReadModelSerializer, StrictBooleanField, StrictCharField, Text

from .models import Equipment
from .services import DUPLICATE_SERIAL


class EquipmentReadSerializer(ReadModelSerializer):
    class Meta:
        model = Equipment
        fields = ["id", "name", "type", "serial_number", "is_active", "description", "created_at", "updated_at"]
        read_only_fields = fields


class EquipmentBriefSerializer(ReadModelSerializer):
    # Equipment as a task lists it (``required_equipment``), by id.

    class Meta:
        model = Equipment
        fields = ["id", "name", "type", "serial_number", "is_active"]
        read_only_fields = fields
        ordering = ["id"]  # as a nested list


class EquipmentWriteSerializer(serializers.ModelSerializer):
    """Admin input. ``id`` and the timestamps are not writable (ignored if sent)."""

    name = StrictCharField(max_length=200)
    serial_number = StrictCharField(
        max_length=100,
        validators=[UniqueValidator(queryset=Equipment.objects.all(), message=DUPLICATE_SERIAL)],
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=10_000, text=Text.MULTILINE)
    is_active = StrictBooleanField(required=False)

    class Meta:
        model = Equipment
        fields = ["name", "type", "serial_number", "is_active", "description"]
