"""The Django admin saves equipment through equipment.services: audited with source "admin", rules enforced."""

import pytest
from django.test import Client

from audit.models import AuditEntry
from equipment.models import Equipment
from tests.factories import EquipmentFactory, JobTaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_pages_open(admin_client):
    item = EquipmentFactory()
    assert admin_client.get("/admin/equipment/equipment/?type__exact=tool&q=SN").status_code == 200
    assert admin_client.get(f"/admin/equipment/equipment/{item.pk}/change/").status_code == 200


def test_add_and_change_go_through_the_services(admin_client, admin_user):
    response = admin_client.post(
        "/admin/equipment/equipment/add/",
        {"name": "Ladder", "type": "accessory", "serial_number": "LAD-1", "is_active": "on", "description": ""},
    )
    assert response.status_code == 302, response.content[:3000]
    item = Equipment.objects.get(serial_number="LAD-1")
    response = admin_client.post(
        f"/admin/equipment/equipment/{item.pk}/change/",
        {"name": "Long ladder", "type": "accessory", "serial_number": "LAD-1", "description": ""},
    )
    assert response.status_code == 302, response.content[:3000]
    item.refresh_from_db()
    assert (item.name, item.is_active) == ("Long ladder", False)
    rows = list(AuditEntry.objects.order_by("id").values_list("action", "source", "actor_id"))
    assert [r[0] for r in rows[:1]] == ["equipment.created"]
    assert sorted(r[0] for r in rows[1:]) == ["equipment.deactivated", "equipment.updated"]
    assert {(r[1], r[2]) for r in rows} == {("admin", admin_user.pk)}


def test_delete_in_use_is_refused_with_a_message(admin_client):
    item = EquipmentFactory()
    JobTaskFactory().required_equipment.add(item)
    response = admin_client.post(f"/admin/equipment/equipment/{item.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Equipment.objects.filter(pk=item.pk).exists()
    assert not AuditEntry.objects.exists()
    assert "used by tasks" in admin_client.get(response["Location"]).content.decode()


def test_bulk_delete_deletes_what_it_may(admin_client):
    free = EquipmentFactory()
    used = EquipmentFactory()
    JobTaskFactory().required_equipment.add(used)
    response = admin_client.post(
        "/admin/equipment/equipment/",
        {"action": "delete_selected", "_selected_action": [free.pk, used.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert list(Equipment.objects.values_list("pk", flat=True)) == [used.pk]
    assert list(AuditEntry.objects.values_list("action", "object_id")) == [("equipment.deleted", free.pk)]


def test_deactivate_action(admin_client):
    items = EquipmentFactory.create_batch(2)
    response = admin_client.post(
        "/admin/equipment/equipment/", {"action": "deactivate", "_selected_action": [i.pk for i in items]}
    )
    assert response.status_code == 302
    assert not Equipment.objects.filter(is_active=True).exists()
    assert AuditEntry.objects.filter(action="equipment.deactivated", source="admin").count() == 2
