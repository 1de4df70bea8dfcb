"""GET /api/dashboard/technician/: scoping per role, date edges, time zones, grouping, actionable, bad parameters."""

from __future__ import annotations

import datetime

import pytest
import time_machine

from accounts.models import User
from jobs.dashboard import DashboardDaySerializer, DashboardJobSerializer, DashboardTaskSerializer
from jobs.models import Job, JobTask
from tests.builders import D, at, make_job, make_task, make_tasks
from tests.conftest import client_for
from tests.factories import EquipmentFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/dashboard/technician/"
P, IP, C = JobTask.Status.PENDING, JobTask.Status.IN_PROGRESS, JobTask.Status.COMPLETED
TODAY = D(2025, 6, 10)


@pytest.fixture
def frozen():
    # Noon UTC: the same calendar date in every time zone between UTC-11 and UTC+11.
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        yield


def get(user, query=""):
    return client_for(user).get(URL + query)


def task_ids(days):
    return [task["id"] for day in days for task in day["tasks"]]


def by_date(days):
    return {day["date"]: [task["id"] for task in day["tasks"]] for day in days}


@pytest.fixture
def world(frozen, technician, other_technician):
    """Jobs around 2025-06-10 for ``technician`` plus a few that must never show up."""
    e1, e2 = EquipmentFactory(), EquipmentFactory(is_active=False)
    w = {"e1": e1, "e2": e2}
    # today: the first task is completed, so the second (in progress) is the actionable one.
    w["today"] = make_job(scheduled=TODAY, technician=technician, status=Job.Status.IN_PROGRESS)
    w["today_tasks"] = make_tasks(w["today"], [C, IP, P])
    w["today_tasks"][1].required_equipment.set([e2, e1])
    # a second job the same day, created later: listed after the first one.
    w["today_b"] = make_job(scheduled=TODAY, technician=technician, priority=Job.Priority.URGENT)
    w["today_b_tasks"] = make_tasks(w["today_b"], [P, P])
    w["end"] = make_job(scheduled=TODAY + datetime.timedelta(days=7), technician=technician)
    w["end_tasks"] = make_tasks(w["end"], [P])
    w["after_end"] = make_job(scheduled=TODAY + datetime.timedelta(days=8), technician=technician)
    make_tasks(w["after_end"], [P])
    # overdue: one flagged by the sweep, one the sweep has not reached yet (open and scheduled before today).
    w["flagged"] = make_job(scheduled=D(2025, 6, 2), technician=technician, status=Job.Status.IN_PROGRESS, overdue=True)
    w["flagged_tasks"] = make_tasks(w["flagged"], [C, C, P])
    w["unflagged"] = make_job(scheduled=D(2025, 6, 9), technician=technician)
    w["unflagged_tasks"] = make_tasks(w["unflagged"], [P])
    # never listed: closed jobs (even with open tasks left behind), fully completed tasks.
    cancelled = make_job(scheduled=TODAY, technician=technician, status=Job.Status.CANCELLED)
    make_tasks(cancelled, [P])
    done = make_job(scheduled=D(2025, 6, 5), technician=technician, status=Job.Status.COMPLETED)
    make_tasks(done, [C])
    done_today = make_job(scheduled=TODAY, technician=technician, status=Job.Status.COMPLETED)
    make_tasks(done_today, [C, C])
    # another technician's job and an unassigned one.
    w["other"] = make_job(scheduled=TODAY, technician=other_technician)
    w["other_tasks"] = make_tasks(w["other"], [P])
    w["unassigned"] = make_job(scheduled=TODAY, technician=None)
    make_tasks(w["unassigned"], [P])
    return w


def own_expected(w):
    return {
        "2025-06-02": [w["flagged_tasks"][2].pk],
        "2025-06-09": [w["unflagged_tasks"][0].pk],
        "2025-06-10": [w["today_tasks"][1].pk, w["today_tasks"][2].pk, *[t.pk for t in w["today_b_tasks"]]],
        "2025-06-17": [w["end_tasks"][0].pk],
    }


def test_technician_sees_own_open_tasks_grouped_by_date(world, technician):
    response = get(technician)
    assert response.status_code == 200, response.content
    days = response.json()
    assert [day["date"] for day in days] == ["2025-06-02", "2025-06-09", "2025-06-10", "2025-06-17"]
    assert by_date(days) == own_expected(world)


def test_task_shape_job_summary_equipment_and_actionable(world, technician):
    days = get(technician).json()
    tasks = {task["id"]: task for day in days for task in day["tasks"]}
    second = tasks[world["today_tasks"][1].pk]
    assert set(second) == set(DashboardTaskSerializer().fields)
    assert set(second["job"]) == set(DashboardJobSerializer().fields)
    assert set(days[0]) == set(DashboardDaySerializer().fields)
    job = world["today"]
    assert second["job"] == {
        "id": job.pk,
        "title": job.title,
        "client_name": job.client_name,
        "priority": "medium",
        "status": "in_progress",
        "overdue": False,
        "scheduled_date": "2025-06-10",
        "assigned_to": job.assigned_to_id,
    }
    assert second["order"] == 2 and second["status"] == "in_progress"
    assert second["title"] == world["today_tasks"][1].title
    assert second["description"] == ""
    assert second["started_at"] == "2025-06-10T12:00:00Z" and second["completed_at"] is None
    e1, e2 = world["e1"], world["e2"]
    assert second["required_equipment"] == [
        {"id": e.pk, "name": e.name, "type": e.type, "serial_number": e.serial_number, "is_active": e.is_active}
        for e in sorted([e1, e2], key=lambda e: e.pk)
    ]
    assert tasks[world["today_tasks"][2].pk]["required_equipment"] == []
    # actionable: the first not-completed task of each job, whatever came before it.
    actionable = {task_id for task_id, task in tasks.items() if task["actionable"]}
    assert actionable == {
        world["today_tasks"][1].pk,  # after a completed task 1
        world["today_b_tasks"][0].pk,
        world["end_tasks"][0].pk,
        world["flagged_tasks"][2].pk,  # after two completed tasks
        world["unflagged_tasks"][0].pk,
    }


def test_overdue_jobs_are_listed_under_their_own_past_date_and_marked(world, technician):
    days = get(technician).json()
    past = {day["date"]: day["tasks"][0]["job"] for day in days if day["date"] < "2025-06-10"}
    assert past["2025-06-02"]["overdue"] is True  # stored flag
    assert past["2025-06-09"]["overdue"] is True  # open and scheduled before today, sweep not run yet
    assert past["2025-06-09"]["id"] == world["unflagged"].pk


def test_outsider_technician_sees_none_of_anothers_tasks(world, technician, other_technician):
    days = get(other_technician).json()
    assert task_ids(days) == [world["other_tasks"][0].pk]
    assert not set(task_ids(get(technician).json())) & set(task_ids(days))


def test_technician_may_name_only_themselves(world, technician, other_technician):
    own = get(technician, f"?technician={technician.pk}")
    assert own.status_code == 200
    assert by_date(own.json()) == own_expected(world)
    assert get(technician, f"?technician={other_technician.pk}").status_code == 403
    # An id that exists nowhere is also 403 for a technician: no probing for ids.
    assert get(technician, "?technician=987654").status_code == 403


def test_admin_without_technician_sees_every_technicians_tasks(world, admin_user):
    days = get(admin_user).json()
    expected = own_expected(world)
    # same date: by job id, then order ("today" < "today_b" < "other" by creation)
    expected["2025-06-10"] = [*expected["2025-06-10"], world["other_tasks"][0].pk]
    assert by_date(days) == expected
    # unassigned jobs are nobody's dashboard
    assert world["unassigned"].pk not in {task["job"]["id"] for day in days for task in day["tasks"]}


def test_admin_with_technician_sees_only_theirs(world, admin_user, technician, other_technician):
    assert by_date(get(admin_user, f"?technician={technician.pk}").json()) == own_expected(world)
    assert task_ids(get(admin_user, f"?technician={other_technician.pk}").json()) == [world["other_tasks"][0].pk]


def test_admin_may_look_at_an_inactive_technician(frozen, admin_user):
    former = UserFactory(role=User.Role.TECHNICIAN, is_active=False)
    job = make_job(scheduled=TODAY, technician=former)
    (task,) = make_tasks(job, [P])
    assert task_ids(get(admin_user, f"?technician={former.pk}").json()) == [task.pk]


@pytest.mark.parametrize("persona, expected", [("sales_agent", 403), ("anonymous", 401)])
def test_other_roles_are_refused(frozen, sales_agent, persona, expected):
    user = sales_agent if persona == "sales_agent" else None
    assert get(user).status_code == expected
    assert get(user, "?days=abc").status_code == expected  # the role is checked before the parameters


@pytest.mark.parametrize(
    "query",
    [
        "?days=abc",
        "?days=7.0",
        "?days= 7",
        "?days=\u0667",
        "?days=0",
        "?days=91",
        "?days=-1",
        "?days=",
        "?days=1e3",
        "?days=99999999999999999999999",
    ],
)
def test_bad_days_is_400_with_field_error(frozen, technician, admin_user, query):
    for user in (technician, admin_user):
        response = get(user, query)
        assert response.status_code == 400, (query, response.content)
        assert "days" in response.json()


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "", "99999999999999999999999"])
def test_bad_technician_is_400(frozen, admin_user, technician, value):
    response = get(admin_user, f"?technician={value}")
    assert response.status_code == 400, response.content
    assert "technician" in response.json()
    assert get(technician, f"?technician={value}").status_code == 400


def test_technician_id_must_name_an_existing_technician(frozen, admin_user, sales_agent):
    for pk in (sales_agent.pk, admin_user.pk, 987654):
        response = get(admin_user, f"?technician={pk}")
        assert response.status_code == 404
        assert response.json() == {"detail": f"No technician with id {pk}.", "code": "not_found"}


@pytest.mark.parametrize("days", [1, 7, 90])
def test_window_includes_today_plus_n_and_excludes_the_day_after(frozen, technician, days):
    inside = make_job(scheduled=TODAY + datetime.timedelta(days=days), technician=technician)
    outside = make_job(scheduled=TODAY + datetime.timedelta(days=days + 1), technician=technician)
    today = make_job(scheduled=TODAY, technician=technician)
    for job in (inside, outside, today):
        make_tasks(job, [P])
    response = get(technician, f"?days={days}")
    assert response.status_code == 200
    jobs = [task["job"]["id"] for day in response.json() for task in day["tasks"]]
    assert jobs == [today.pk, inside.pk]


def test_default_window_is_seven_days(frozen, technician):
    seventh = make_job(scheduled=TODAY + datetime.timedelta(days=7), technician=technician)
    eighth = make_job(scheduled=TODAY + datetime.timedelta(days=8), technician=technician)
    make_tasks(seventh, [P])
    make_tasks(eighth, [P])
    assert [day["date"] for day in get(technician).json()] == ["2025-06-17"]
    assert [day["date"] for day in get(technician, "?days=8").json()] == ["2025-06-17", "2025-06-18"]


def test_job_with_only_completed_tasks_and_no_tasks_are_absent(frozen, technician):
    make_tasks(make_job(scheduled=TODAY, technician=technician, status=Job.Status.IN_PROGRESS), [C, C])
    make_job(scheduled=TODAY, technician=technician)
    assert get(technician).json() == []


# (instant in UTC, TIME_ZONE, today there)
ZONES = [
    ("2025-06-10 11:30", "UTC", "2025-06-10"),
    ("2025-06-10 13:30", "Pacific/Auckland", "2025-06-11"),  # UTC+12: already the 11th
    ("2025-06-10 03:30", "America/Los_Angeles", "2025-06-09"),  # UTC-7: still the 9th
]


@pytest.mark.parametrize("instant, zone, local_today", ZONES)
def test_today_is_the_date_in_time_zone(settings, technician, instant, zone, local_today):
    settings.TIME_ZONE = zone
    with time_machine.travel(at(instant), tick=False):
        today = D.fromisoformat(local_today)
        jobs = {
            offset: make_job(scheduled=today + datetime.timedelta(days=offset), technician=technician)
            for offset in (-1, 0, 1, 2)
        }
        started = make_task(jobs[0], 1, IP, started_at=at("2025-06-01 23:30"))
        for offset in (-1, 1, 2):
            make_tasks(jobs[offset], [P])
        days = get(technician, "?days=1").json()
    assert [day["date"] for day in days] == [
        (today + datetime.timedelta(days=offset)).isoformat() for offset in (-1, 0, 1)
    ]
    summaries = [day["tasks"][0]["job"] for day in days]
    assert [summary["overdue"] for summary in summaries] == [True, False, False]
    # TIME_ZONE decides what "today" is, never how a timestamp is written: UTC, like every other endpoint
    rendered = next(task for day in days for task in day["tasks"] if task["id"] == started.pk)["started_at"]
    assert rendered == "2025-06-01T23:30:00Z"


# The whole body is compared with what the documented serializers render in tests/jobs/test_rendering.py.
