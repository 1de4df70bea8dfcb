"""GET /api/analytics/: figures against hand-computed expectations, date range, time zone, roles, bad parameters."""

from __future__ import annotations

import pytest
import time_machine

from accounts.models import User
from jobs.analytics import AnalyticsSerializer
from jobs.models import Job, JobTask
from tests.builders import D, at, make_job, make_task
from tests.conftest import client_for
from tests.factories import EquipmentFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/analytics/"
S, PR, T = Job.Status, Job.Priority, JobTask.Status


def get(user, query=""):
    return client_for(user).get(URL + query)


@pytest.fixture
def frozen():
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        yield


@pytest.fixture
def data(frozen, technician, other_technician, sales_agent):
    """A small June 2025 data set; 'today' is 2025-06-10. Expected figures are worked out by hand in the tests."""
    t3 = UserFactory(username="tech3", role=User.Role.TECHNICIAN)  # no jobs at all
    former = UserFactory(username="former", role=User.Role.SALES_AGENT)  # was a technician, still assigned one job
    e1, e2, e3 = (EquipmentFactory(name=name) for name in ("Drill", "Ladder", "Van"))
    old_only = EquipmentFactory(name="Old saw")
    EquipmentFactory(name="Never used")
    tech1, tech2 = technician, other_technician

    # A: completed in 2 days (172800 s); tasks 600 s and 1800 s.
    a = make_job(
        scheduled=D(2025, 6, 2),
        technician=tech1,
        status=S.COMPLETED,
        priority=PR.HIGH,
        created_at=at("2025-06-01 00:00"),
        completed_at=at("2025-06-03 00:00"),
    )
    make_task(a, 1, T.COMPLETED, started_at=at("2025-06-02 10:00"), completed_at=at("2025-06-02 10:10"), equipment=[e1])
    make_task(
        a, 2, T.COMPLETED, started_at=at("2025-06-02 10:10"), completed_at=at("2025-06-02 10:40"), equipment=[e1, e2]
    )
    # B: completed in 1 day (86400 s); one task of 60 s.
    b = make_job(
        scheduled=D(2025, 6, 3),
        technician=tech1,
        status=S.COMPLETED,
        priority=PR.LOW,
        created_at=at("2025-06-01 00:00"),
        completed_at=at("2025-06-02 00:00"),
    )
    make_task(b, 1, T.COMPLETED, started_at=at("2025-06-02 09:00"), completed_at=at("2025-06-02 09:01"), equipment=[e1])
    # C: in progress and flagged overdue; one completed task of 120 s, one in progress.
    c = make_job(scheduled=D(2025, 6, 5), technician=tech2, status=S.IN_PROGRESS, priority=PR.URGENT, overdue=True)
    make_task(c, 1, T.COMPLETED, started_at=at("2025-06-05 08:00"), completed_at=at("2025-06-05 08:02"))
    make_task(c, 2, T.IN_PROGRESS, started_at=at("2025-06-05 08:02"), equipment=[e3])
    # D: pending, scheduled before today, not flagged yet: overdue by date.
    make_job(scheduled=D(2025, 6, 8), technician=tech2, status=S.PENDING)
    # E: pending, future, unassigned, one task needing the ladder.
    e = make_job(scheduled=D(2025, 6, 20), technician=None)
    make_task(e, 1, T.PENDING, equipment=[e2])
    # F: cancelled.
    make_job(scheduled=D(2025, 6, 15), technician=tech1, status=S.CANCELLED, priority=PR.LOW)
    # H: assigned to someone who is no longer a technician.
    make_job(scheduled=D(2025, 6, 25), technician=former, priority=PR.HIGH)
    # G: outside June: completed in 1000 s, a 30 s task with the old saw.
    g = make_job(
        scheduled=D(2025, 5, 20),
        technician=tech1,
        status=S.COMPLETED,
        created_at=at("2025-05-20 00:00"),
        completed_at=at("2025-05-20 00:16:40"),
    )
    make_task(
        g,
        1,
        T.COMPLETED,
        started_at=at("2025-05-20 00:00"),
        completed_at=at("2025-05-20 00:00:30"),
        equipment=[old_only],
    )
    return {"tech1": tech1, "tech2": tech2, "t3": t3, "former": former, "e1": e1, "e2": e2, "e3": e3, "old": old_only}


def tech_row(user, open_, completed, overdue):
    return {
        "id": user.pk,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": user.role,
        "is_active": user.is_active,
        "open": open_,
        "completed": completed,
        "overdue": overdue,
    }


def test_figures_for_june(data, admin_user):
    response = get(admin_user, "?from=2025-06-01&to=2025-06-30")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == set(AnalyticsSerializer().fields)
    assert body["from"] == "2025-06-01" and body["to"] == "2025-06-30"
    assert body["jobs_total"] == 7  # A B C D E F H
    assert body["jobs_by_status"] == {"pending": 3, "in_progress": 1, "completed": 2, "cancelled": 1}
    assert body["jobs_by_priority"] == {"low": 2, "medium": 2, "high": 2, "urgent": 1}
    assert body["overdue_count"] == 2  # C (flag), D (date)
    assert body["overdue_rate"] == 0.5  # of 4 open jobs: C D E H
    # tasks: 600, 1800, 60, 120 -> mean 645; p90 rank 0.9 * 3 = 2.7 -> 600 + 0.7 * (1800 - 600) = 1440
    assert body["task_duration_seconds"] == {"count": 4, "average": 645.0, "p90": 1440.0}
    # jobs: 172800, 86400 -> mean 129600; p90 rank 0.9 -> 86400 + 0.9 * 86400 = 164160
    assert body["job_duration_seconds"] == {"count": 2, "average": 129600.0, "p90": 164160.0}
    e1, e2, e3 = data["e1"], data["e2"], data["e3"]
    assert body["most_used_equipment"] == [
        {"id": e1.pk, "name": "Drill", "type": "tool", "tasks": 3},
        {"id": e2.pk, "name": "Ladder", "type": "tool", "tasks": 2},
        {"id": e3.pk, "name": "Van", "type": "tool", "tasks": 1},
    ]
    assert body["technicians"] == [
        tech_row(data["former"], 1, 0, 0),
        tech_row(data["tech1"], 0, 2, 0),
        tech_row(data["tech2"], 2, 0, 2),
        tech_row(data["t3"], 0, 0, 0),
    ]
    assert body["jobs_completed_per_day"] == [{"date": "2025-06-02", "count": 1}, {"date": "2025-06-03", "count": 1}]


def test_without_range_every_job_counts(data, admin_user):
    body = get(admin_user).json()
    assert body["from"] is None and body["to"] is None
    assert body["jobs_total"] == 8
    assert body["jobs_by_status"]["completed"] == 3
    # tasks: 30, 60, 120, 600, 1800 -> mean 522; p90 rank 3.6 -> 600 + 0.6 * 1200 = 1320
    assert body["task_duration_seconds"] == {"count": 5, "average": 522.0, "p90": 1320.0}
    # jobs: 1000, 86400, 172800 -> mean 86733.333; p90 rank 1.8 -> 86400 + 0.8 * 86400 = 155520
    assert body["job_duration_seconds"] == {"count": 3, "average": 86733.333, "p90": 155520.0}
    assert data["old"].pk in [row["id"] for row in body["most_used_equipment"]]
    assert {row["id"]: row["completed"] for row in body["technicians"]}[data["tech1"].pk] == 3
    assert body["jobs_completed_per_day"][0] == {"date": "2025-05-20", "count": 1}


def test_one_sided_ranges(data, admin_user):
    assert get(admin_user, "?from=2025-06-09").json()["jobs_total"] == 3  # E F H
    assert get(admin_user, "?to=2025-06-02").json()["jobs_total"] == 2  # G A
    single_day = get(admin_user, "?from=2025-06-05&to=2025-06-05").json()
    assert single_day["jobs_total"] == 1 and single_day["overdue_count"] == 1 and single_day["overdue_rate"] == 1.0


def test_empty_range_gives_zeros_and_nulls(data, admin_user):
    body = get(admin_user, "?from=2030-01-01&to=2030-12-31").json()
    assert body["jobs_total"] == 0
    assert body["jobs_by_status"] == {"pending": 0, "in_progress": 0, "completed": 0, "cancelled": 0}
    assert body["jobs_by_priority"] == {"low": 0, "medium": 0, "high": 0, "urgent": 0}
    assert body["overdue_count"] == 0 and body["overdue_rate"] is None
    assert body["task_duration_seconds"] == {"count": 0, "average": None, "p90": None}
    assert body["job_duration_seconds"] == {"count": 0, "average": None, "p90": None}
    assert body["most_used_equipment"] == []
    # technicians are listed even with nothing to count
    assert [row["id"] for row in body["technicians"]] == [data["tech1"].pk, data["tech2"].pk, data["t3"].pk]
    assert all(row["open"] == row["completed"] == row["overdue"] == 0 for row in body["technicians"])
    assert body["jobs_completed_per_day"] == []


def test_single_duration_has_itself_as_p90(frozen, admin_user, technician):
    job = make_job(scheduled=D(2025, 6, 1), technician=technician)
    make_task(job, 1, T.COMPLETED, started_at=at("2025-06-01 10:00:00.250"), completed_at=at("2025-06-01 10:00:10"))
    assert get(admin_user).json()["task_duration_seconds"] == {"count": 1, "average": 9.75, "p90": 9.75}


def test_top_equipment_is_capped_at_ten_and_ordered(frozen, admin_user, technician):
    job = make_job(scheduled=D(2025, 6, 1), technician=technician)
    equipment = [EquipmentFactory(name=f"Item {n:02d}") for n in range(12)]
    # item k is required by k + 1 tasks
    order = 0
    for k, item in enumerate(equipment):
        for _ in range(k + 1):
            order += 1
            make_task(job, order, equipment=[item])
    rows = get(admin_user).json()["most_used_equipment"]
    assert [row["name"] for row in rows] == [f"Item {n:02d}" for n in range(11, 1, -1)]
    assert [row["tasks"] for row in rows] == list(range(12, 2, -1))


def test_completed_per_day_uses_time_zone(settings, admin_user, technician):
    settings.TIME_ZONE = "America/New_York"  # UTC-4 in June
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        for completed in ("2025-06-03 03:59", "2025-06-03 04:00", "2025-06-03 23:00"):
            make_job(scheduled=D(2025, 6, 1), technician=technician, status=S.COMPLETED, completed_at=at(completed))
        body = get(admin_user).json()
    # 03:59 UTC is still the 2nd in New York; 04:00 and 23:00 UTC are the 3rd.
    assert body["jobs_completed_per_day"] == [{"date": "2025-06-02", "count": 1}, {"date": "2025-06-03", "count": 2}]


def test_overdue_uses_today_in_time_zone(settings, admin_user, technician):
    settings.TIME_ZONE = "Pacific/Auckland"  # UTC+12 in June: 2025-06-10 13:00 UTC is the 11th there
    with time_machine.travel(at("2025-06-10 13:00"), tick=False):
        make_job(scheduled=D(2025, 6, 10), technician=technician)
        make_job(scheduled=D(2025, 6, 11), technician=technician)
        body = get(admin_user).json()
    assert body["overdue_count"] == 1 and body["overdue_rate"] == 0.5


@pytest.mark.parametrize(
    "query, field",
    [
        ("?from=abc", "from"),
        ("?to=2025-13-01", "to"),
        ("?from=2025-02-30", "from"),
        ("?from=", "from"),
        ("?from=2025-06-02&to=2025-06-01", "to"),
        ("?to=10/06/2025", "to"),
    ],
)
def test_bad_dates_are_400(frozen, admin_user, query, field):
    response = get(admin_user, query)
    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize("persona, expected", [("technician", 403), ("sales_agent", 403), ("anonymous", 401)])
def test_admin_only(frozen, technician, sales_agent, persona, expected):
    user = {"technician": technician, "sales_agent": sales_agent, "anonymous": None}[persona]
    assert get(user).status_code == expected
    assert get(user, "?from=abc").status_code == expected
