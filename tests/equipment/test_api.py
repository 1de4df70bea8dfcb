"""/api/equipment/ over HTTP: role x action matrix, shapes, validation, filters, 409 on referenced equipment,
audit entries and query budgets."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from equipment.models import Equipment
from tests.conftest import client_for
from tests.factories import EquipmentFactory, JobTaskFactory

pytestmark = pytest.mark.django_db

FIELDS = {"id", "name", "type", "serial_number", "is_active", "description", "created_at", "updated_at"}


@pytest.fixture
def people(admin_user, technician, sales_agent):
    return {"admin": admin_user, "technician": technician, "sales_agent": sales_agent, "anonymous": None}


@pytest.fixture
def drill(db):
    return EquipmentFactory(name="Drill", serial_number="DR-1", type="tool", description="Cordless")


def call(user, method, url, data=None):
    return getattr(client_for(user), method)(url, data=data, format="json")


NEW = {"name": "Van", "type": "vehicle", "serial_number": "VAN-1"}
MATRIX = [
    ("get", "/api/equipment/", None, dict(admin=200, technician=200, sales_agent=200, anonymous=401)),
    ("post", "/api/equipment/", NEW, dict(admin=201, technician=403, sales_agent=403, anonymous=401)),
    ("get", "/api/equipment/{id}/", None, dict(admin=200, technician=200, sales_agent=200, anonymous=401)),
    ("patch", "/api/equipment/{id}/", {"name": "X"}, dict(admin=200, technician=403, sales_agent=403, anonymous=401)),
    (
        "put",
        "/api/equipment/{id}/",
        {**NEW, "serial_number": "P-1"},
        dict(admin=200, technician=403, sales_agent=403, anonymous=401),
    ),  # fmt: skip
    ("delete", "/api/equipment/{id}/", None, dict(admin=204, technician=403, sales_agent=403, anonymous=401)),
    ("get", "/api/equipment/999999/", None, dict(admin=404, technician=404, sales_agent=404, anonymous=401)),
    # A role that may read but not write learns nothing more than a 404 about an id that does not exist.
    ("patch", "/api/equipment/999999/", {"name": "X"}, dict(admin=404, technician=404, sales_agent=404, anonymous=401)),
]


@pytest.mark.parametrize("persona", ["admin", "technician", "sales_agent", "anonymous"])
@pytest.mark.parametrize("method, url, body, expected", MATRIX)
def test_matrix(people, drill, persona, method, url, body, expected):
    before = list(Equipment.objects.values())
    response = call(people[persona], method, url.format(id=drill.pk), body)
    assert response.status_code == expected[persona], response.content
    if expected[persona] >= 400:
        assert list(Equipment.objects.values()) == before
        assert not AuditEntry.objects.exists()
    elif method == "get" and url.endswith("{id}/"):
        assert set(response.json()) == FIELDS


def test_inactive_equipment_is_visible_to_every_role(people, drill):
    EquipmentFactory(is_active=False, serial_number="OLD-1")
    for persona in ("admin", "technician", "sales_agent"):
        assert call(people[persona], "get", "/api/equipment/").json()["count"] == 2


def test_create(people):
    response = call(people["admin"], "post", "/api/equipment/", {**NEW, "id": 77, "created_at": "2000-01-01T00:00:00Z"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == FIELDS
    item = Equipment.objects.get(serial_number="VAN-1")
    assert body["id"] == item.pk and item.pk != 77 and item.created_at.year > 2000
    assert (item.type, item.is_active, item.description) == ("vehicle", True, "")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_id, entry.actor_id, entry.source) == (
        "equipment.created",
        "equipment",
        item.pk,
        people["admin"].pk,
        "api",
    )
    assert entry.changes["serial_number"] == [None, "VAN-1"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"type": "tool", "serial_number": "S-9"}, "name"),
        ({"name": "n"}, "serial_number"),
        ({"name": "n", "serial_number": "DR-1"}, "serial_number"),
        ({"name": "n", "serial_number": "S-9", "type": "spaceship"}, "type"),
        ({"name": "n", "serial_number": "S-9", "is_active": "sometimes"}, "is_active"),
        ({"name": 5, "serial_number": "S-9"}, "name"),
        ({"name": "n", "serial_number": ["S-9"]}, "serial_number"),
        ({"name": "", "serial_number": "S-9"}, "name"),
        ({"name": "n" * 201, "serial_number": "S-9"}, "name"),
        ({"name": "n", "serial_number": None}, "serial_number"),
        ({"name": "n", "serial_number": "S-9", "is_active": "true"}, "is_active"),
        ({"name": "n", "serial_number": "S-9", "is_active": 1}, "is_active"),
    ],
)
def test_create_validation(people, drill, body, field):
    response = call(people["admin"], "post", "/api/equipment/", body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Equipment.objects.count() == 1
    assert not AuditEntry.objects.exists()


def test_update_duplicate_serial_is_400_but_own_serial_is_fine(people, drill):
    other = EquipmentFactory(serial_number="OTHER")
    url = f"/api/equipment/{other.pk}/"
    response = call(people["admin"], "patch", url, {"serial_number": "DR-1"})
    assert response.status_code == 400 and "serial_number" in response.json()
    assert call(people["admin"], "patch", url, {"serial_number": "OTHER"}).status_code == 200
    assert not AuditEntry.objects.exists()


def test_deactivate_and_edit_audited_separately(people, drill):
    response = call(
        people["admin"], "patch", f"/api/equipment/{drill.pk}/", {"is_active": False, "description": "Broken"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    entries = {e.action: e.changes for e in AuditEntry.objects.all()}
    assert entries == {
        "equipment.deactivated": {"is_active": [True, False]},
        "equipment.updated": {"description": ["Cordless", "Broken"]},
    }
    assert AuditEntry.objects.count() == 2


def test_delete(people, drill):
    response = call(people["admin"], "delete", f"/api/equipment/{drill.pk}/")
    assert response.status_code == 204
    assert not Equipment.objects.exists()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_id) == ("equipment.deleted", drill.pk)
    assert entry.changes["serial_number"] == ["DR-1", None]


def test_delete_referenced_equipment_is_409(people, drill):
    JobTaskFactory().required_equipment.add(drill)
    response = call(people["admin"], "delete", f"/api/equipment/{drill.pk}/")
    assert response.status_code == 409
    assert response.json()["code"] == "in_use" and response.json()["detail"]
    assert Equipment.objects.filter(pk=drill.pk).exists()
    assert drill.tasks.count() == 1
    assert not AuditEntry.objects.exists()


def test_filters(people, drill):
    van = EquipmentFactory(name="Van", type="vehicle", serial_number="VN-77", is_active=False)
    lift = EquipmentFactory(name="Lift", type="machine", serial_number="LF-3", description="Hydraulic drill stand")

    def ids(query):
        response = call(people["technician"], "get", f"/api/equipment/?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("type=vehicle") == [van.pk]
    assert ids("is_active=false") == [van.pk]
    assert ids("is_active=true") == [drill.pk, lift.pk]
    assert ids("search=drill") == [drill.pk, lift.pk]  # name and description; ordered by name
    assert ids("search=vn-7") == [van.pk]
    assert ids("type=machine&search=drill") == [lift.pk]


@pytest.mark.parametrize("query", ["type=boat", "is_active=2", "page_size=0", "page=abc"])
def test_bad_query_parameters_are_400(people, query):
    assert call(people["sales_agent"], "get", f"/api/equipment/?{query}").status_code == 400


def _queries(user, url):
    client = client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


@pytest.mark.parametrize("persona", ["admin", "technician", "sales_agent"])
def test_list_query_count_is_constant(people, persona, django_assert_num_queries):
    EquipmentFactory.create_batch(60)
    user = people[persona]
    counts = {size: _queries(user, f"/api/equipment/?page_size={size}") for size in (1, 10, 50)}
    assert len(set(counts.values())) == 1, counts
    with django_assert_num_queries(3):  # auth user + count + page
        client_for(user).get("/api/equipment/?page_size=50")
