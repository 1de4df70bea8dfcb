"""equipment.services: admin-only writes, one audit entry per kind of change, none on failure, 409 when in use."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.exceptions import PermissionDenied

from audit.models import AuditEntry
from equipment import services
from equipment.models import Equipment
from jobops.exceptions import InUse
from tests.factories import EquipmentFactory, JobTaskFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("persona", ["technician", "sales_agent"])
def test_only_admins_write(request, persona):
    actor = request.getfixturevalue(persona)
    item = EquipmentFactory()
    with pytest.raises(PermissionDenied):
        services.equipment_create(actor=actor, data={"name": "x", "serial_number": "X"})
    with pytest.raises(PermissionDenied):
        services.equipment_update(actor=actor, equipment_id=item.pk, data={"name": "y"})
    with pytest.raises(PermissionDenied):
        services.equipment_delete(actor=actor, equipment_id=item.pk)
    assert Equipment.objects.count() == 1
    assert not AuditEntry.objects.exists()


def test_create_validates_with_the_model(admin_user):
    EquipmentFactory(serial_number="DUP")
    with pytest.raises(ValidationError) as err:
        services.equipment_create(actor=admin_user, data={"name": "x", "serial_number": "DUP"})
    assert "serial_number" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        services.equipment_create(actor=admin_user, data={"name": "x", "serial_number": "N", "type": "nope"})
    assert "type" in err.value.message_dict
    assert not AuditEntry.objects.exists()


def test_update_no_change_writes_nothing_and_reactivation_is_audited(admin_user):
    item = EquipmentFactory(is_active=False)
    services.equipment_update(actor=admin_user, equipment_id=item.pk, data={"name": item.name})
    assert not AuditEntry.objects.exists()
    services.equipment_update(actor=admin_user, equipment_id=item.pk, data={"is_active": True})
    assert list(AuditEntry.objects.values_list("action", "changes")) == [
        ("equipment.activated", {"is_active": [False, True]})
    ]


def test_delete_in_use_is_refused(admin_user):
    item = EquipmentFactory()
    task = JobTaskFactory()
    task.required_equipment.add(item)
    with pytest.raises(InUse):
        services.equipment_delete(actor=admin_user, equipment_id=item.pk)
    task.required_equipment.clear()
    services.equipment_delete(actor=admin_user, equipment_id=item.pk)
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["equipment.deleted"]
