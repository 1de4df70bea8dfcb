"""GET /api/equipment/{id}/usage/: counts, first/last use, upcoming use, roles, unknown ids."""

from __future__ import annotations

import pytest
import time_machine

from jobs.equipment_usage import EquipmentUsageSerializer
from jobs.models import Job, JobTask
from tests.builders import D, at, make_job, make_task
from tests.conftest import client_for
from tests.factories import EquipmentFactory

pytestmark = pytest.mark.django_db

S, T = Job.Status, JobTask.Status


def url(pk):
    return f"/api/equipment/{pk}/usage/"


@pytest.fixture
def frozen():
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        yield


@pytest.fixture
def data(frozen, technician):
    drill, other = EquipmentFactory(name="Drill"), EquipmentFactory(name="Saw")
    done = make_job(scheduled=D(2025, 6, 1), technician=technician, status=S.COMPLETED)
    make_task(done, 1, T.COMPLETED, completed_at=at("2025-06-01 09:00"), equipment=[drill])
    make_task(done, 2, T.COMPLETED, completed_at=at("2025-06-01 15:30"), equipment=[drill, other])
    busy = make_job(scheduled=D(2025, 6, 10), technician=technician, status=S.IN_PROGRESS)
    make_task(busy, 1, T.COMPLETED, completed_at=at("2025-06-10 08:00"), equipment=[drill])
    busy_2 = make_task(busy, 2, T.IN_PROGRESS, equipment=[drill])
    busy_3 = make_task(busy, 3, T.PENDING, equipment=[drill])
    later = make_job(scheduled=D(2025, 6, 12), technician=technician)
    later_1 = make_task(later, 1, T.PENDING, equipment=[drill])
    make_task(later, 2, T.PENDING, equipment=[other])
    # not upcoming: an overdue (past) job, a cancelled future job
    late = make_job(scheduled=D(2025, 6, 8), technician=technician, overdue=True)
    make_task(late, 1, T.PENDING, equipment=[drill])
    cancelled = make_job(scheduled=D(2025, 6, 11), technician=technician, status=S.CANCELLED)
    make_task(cancelled, 1, T.PENDING, equipment=[drill])
    # a job created later but scheduled earlier comes first
    sooner = make_job(scheduled=D(2025, 6, 11), technician=technician)
    sooner_1 = make_task(sooner, 4, T.PENDING, equipment=[drill])
    return {
        "drill": drill,
        "other": other,
        "busy": busy,
        "busy_2": busy_2,
        "busy_3": busy_3,
        "later": later,
        "later_1": later_1,
        "sooner": sooner,
        "sooner_1": sooner_1,
    }


def test_usage_figures(data, admin_user):
    drill = data["drill"]
    response = client_for(admin_user).get(url(drill.pk))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == set(EquipmentUsageSerializer().fields)
    assert body["equipment"] == {
        "id": drill.pk,
        "name": "Drill",
        "type": "tool",
        "serial_number": drill.serial_number,
        "is_active": True,
    }
    # every task requiring it: done x2, busy x3, later x1, late x1, cancelled x1, sooner x1
    assert body["tasks_count"] == 9
    assert body["jobs_count"] == 6
    assert body["completed_tasks_count"] == 3
    assert body["first_used_at"] == "2025-06-01T09:00:00Z"
    assert body["last_used_at"] == "2025-06-10T08:00:00Z"
    busy, sooner, later = data["busy"], data["sooner"], data["later"]
    assert body["upcoming"] == [
        {
            "job": busy.pk,
            "title": busy.title,
            "scheduled_date": "2025-06-10",
            "status": "in_progress",
            "task": data["busy_2"].pk,
            "task_title": data["busy_2"].title,
            "order": 2,
            "task_status": "in_progress",
        },
        {
            "job": busy.pk,
            "title": busy.title,
            "scheduled_date": "2025-06-10",
            "status": "in_progress",
            "task": data["busy_3"].pk,
            "task_title": data["busy_3"].title,
            "order": 3,
            "task_status": "pending",
        },
        {
            "job": sooner.pk,
            "title": sooner.title,
            "scheduled_date": "2025-06-11",
            "status": "pending",
            "task": data["sooner_1"].pk,
            "task_title": data["sooner_1"].title,
            "order": 4,
            "task_status": "pending",
        },
        {
            "job": later.pk,
            "title": later.title,
            "scheduled_date": "2025-06-12",
            "status": "pending",
            "task": data["later_1"].pk,
            "task_title": data["later_1"].title,
            "order": 1,
            "task_status": "pending",
        },
    ]


def test_other_equipment_counts_only_its_own_tasks(data, admin_user):
    body = client_for(admin_user).get(url(data["other"].pk)).json()
    assert (body["tasks_count"], body["jobs_count"], body["completed_tasks_count"]) == (2, 2, 1)
    assert body["first_used_at"] == body["last_used_at"] == "2025-06-01T15:30:00Z"
    assert [row["task"] for row in body["upcoming"]] == [data["later"].tasks.get(order=2).pk]


def test_unused_and_inactive_equipment(frozen, admin_user):
    idle = EquipmentFactory(is_active=False)
    body = client_for(admin_user).get(url(idle.pk)).json()
    assert body["equipment"]["is_active"] is False
    assert body["tasks_count"] == body["jobs_count"] == body["completed_tasks_count"] == 0
    assert body["first_used_at"] is None and body["last_used_at"] is None
    assert body["upcoming"] == []


def test_usage_timestamps_are_rendered_in_utc_whatever_the_time_zone(settings, admin_user, technician):
    settings.TIME_ZONE = "Europe/Paris"
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        item = EquipmentFactory()
        job = make_job(scheduled=D(2025, 6, 1), technician=technician, status=S.COMPLETED)
        make_task(job, 1, T.COMPLETED, completed_at=at("2025-06-01 22:30"), equipment=[item])
        body = client_for(admin_user).get(url(item.pk)).json()
    assert body["first_used_at"] == "2025-06-01T22:30:00Z"


def test_upcoming_starts_today_in_time_zone(settings, admin_user, technician):
    settings.TIME_ZONE = "America/Los_Angeles"  # 2025-06-10 03:00 UTC is still the 9th there
    with time_machine.travel(at("2025-06-10 03:00"), tick=False):
        item = EquipmentFactory()
        ninth = make_job(scheduled=D(2025, 6, 9), technician=technician)
        make_task(ninth, 1, equipment=[item])
        body = client_for(admin_user).get(url(item.pk)).json()
    assert [row["job"] for row in body["upcoming"]] == [ninth.pk]


def test_unknown_equipment_is_404(frozen, admin_user):
    client = client_for(admin_user)
    assert client.get(url(987654)).status_code == 404
    assert client.get(url(0)).status_code == 404
    assert client.get(url(99999999999999999999999)).status_code == 404
    assert client.get("/api/equipment/abc/usage/").status_code == 404


@pytest.mark.parametrize("persona, expected", [("technician", 403), ("sales_agent", 403), ("anonymous", 401)])
def test_admin_only(frozen, technician, sales_agent, persona, expected):
    user = {"technician": technician, "sales_agent": sales_agent, "anonymous": None}[persona]
    item = EquipmentFactory()
    assert client_for(user).get(url(item.pk)).status_code == expected
    assert client_for(user).get(url(987654)).status_code == expected
