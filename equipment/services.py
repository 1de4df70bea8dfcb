"""Every write to the equipment catalogue (admin only).

Each service runs in one transaction: it locks the row it changes, validates, saves and writes its audit entry with
``audit_record`` in the same transaction. Equipment referenced by any task is never deleted (409 ``in_use``):
deactivate it instead, which keeps it on the tasks that already use it while stopping new assignments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework.exceptions import PermissionDenied

from audit.services import audit_diff, audit_record, audit_snapshot
from jobops.exceptions import InUse
from jobops.roles import is_admin

from .models import Equipment
from .signals import equipment_rendering_changed

FIELDS = ("name", "type", "serial_number", "is_active", "description")
DUPLICATE_SERIAL = "Equipment with this serial number already exists."


def _ensure_admin(actor: Any) -> None:
    if not is_admin(actor):
        raise PermissionDenied("Only an admin may manage equipment.")


def _lock(equipment_id: int) -> Equipment:
    try:
        return Equipment.objects.select_for_update().get(pk=equipment_id)
    except Equipment.DoesNotExist:
        raise ValidationError({"equipment": ["This equipment no longer exists."]}) from None


def _save(item: Equipment, **kwargs: Any) -> None:
    try:
        with transaction.atomic():
            item.save(**kwargs)
    except IntegrityError:
        # Lost a race with another write of the same serial number (full_clean checked it a moment ago).
        raise ValidationError({"serial_number": [DUPLICATE_SERIAL]}) from None


@transaction.atomic
def equipment_create(*, actor: Any, data: Mapping[str, Any]) -> Equipment:
    """Add equipment (admin only). ``serial_number`` is unique (400 on a duplicate). Writes ``equipment.created``."""
    _ensure_admin(actor)
    item = Equipment(**{key: data[key] for key in FIELDS if key in data})
    item.full_clean()
    _save(item, force_insert=True)
    audit_record(
        actor=actor,
        action="equipment.created",
        obj=item,
        changes={key: [None, value] for key, value in audit_snapshot(item, FIELDS).items()},
    )
    return item


@transaction.atomic
def equipment_update(*, actor: Any, equipment_id: int, data: Mapping[str, Any]) -> Equipment:
    """Change equipment (admin only). Deactivating is audited as ``equipment.deactivated``, reactivating as
    ``equipment.activated``, other field changes as one ``equipment.updated``; a request that changes nothing
    writes nothing. Inactive equipment stays on the tasks that already have it; the jobs services refuse new
    assignments of it."""
    _ensure_admin(actor)
    item = _lock(equipment_id)
    before = audit_snapshot(item, FIELDS)
    for key in FIELDS:
        if key in data:
            setattr(item, key, data[key])
    changes = audit_diff(before, audit_snapshot(item, FIELDS))
    if not changes:
        return item
    item.full_clean(exclude=[name for name in FIELDS if name not in changes])
    _save(item, update_fields=[*changes, "updated_at"])
    from .serializers import EquipmentBriefSerializer  # the serializers import this module's messages

    if set(changes) & set(EquipmentBriefSerializer.Meta.fields):
        equipment_rendering_changed.send(sender=Equipment, equipment_id=item.pk)
    active_change = changes.pop("is_active", None)
    if active_change is not None:
        action = "equipment.activated" if item.is_active else "equipment.deactivated"
        audit_record(actor=actor, action=action, obj=item, changes={"is_active": active_change})
    if changes:
        audit_record(actor=actor, action="equipment.updated", obj=item, changes=changes)
    return item


@transaction.atomic
def equipment_delete(*, actor: Any, equipment_id: int) -> None:
    """Delete equipment (admin only) that no task references; otherwise 409 ``in_use`` (deactivate it instead).
    Writes ``equipment.deleted`` with its last state."""
    _ensure_admin(actor)
    # FOR UPDATE conflicts with the key-share lock a concurrent task assignment takes on this row, so no new
    # reference can appear between the check and the delete.
    item = _lock(equipment_id)
    if item.tasks.exists():
        raise InUse("This equipment is used by tasks; deactivate it instead.")
    audit_record(
        actor=actor,
        action="equipment.deleted",
        obj=item,
        changes={key: [value, None] for key, value in audit_snapshot(item, FIELDS).items()},
    )
    try:
        with transaction.atomic():
            item.delete()
    except IntegrityError:
        raise InUse("This equipment is used by tasks; deactivate it instead.") from None
