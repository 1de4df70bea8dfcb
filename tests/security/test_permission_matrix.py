"""The explicit role x action x object permission matrix (OWASP API1 BOLA, API5 function-level authorization).

Two technicians and two sales agents as peers: ``job_a``/``task_a`` belong to tech1 (assigned) and sales1 (creator),
``job_b``/``task_b`` to tech2 and sales2. API.md decides every cell: another peer's object is a 404 (no
enumeration), an object in scope that the role may not act on is a 403, no token is a 401. Each case builds a fresh
world, so a successful write in one cell cannot change the answer of another. schemathesis' object-level check
(tests/fuzz) complements this; it cannot replace it (it passes objects that the peer can also list).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from accounts.models import User
from notifications.models import Notification
from tests.conftest import client_for
from tests.factories import EquipmentFactory, JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db


@dataclass
class World:
    users: dict[str, User]
    ids: dict[str, int]


@pytest.fixture
def world(db) -> World:
    users = {
        "admin": UserFactory(username="m-admin", role=User.Role.ADMIN, is_staff=True),
        "tech1": UserFactory(username="m-tech1", role=User.Role.TECHNICIAN),
        "tech2": UserFactory(username="m-tech2", role=User.Role.TECHNICIAN),
        "sales1": UserFactory(username="m-sales1", role=User.Role.SALES_AGENT),
        "sales2": UserFactory(username="m-sales2", role=User.Role.SALES_AGENT),
    }
    job_a = JobFactory(created_by=users["sales1"], assigned_to=users["tech1"])
    job_b = JobFactory(created_by=users["sales2"], assigned_to=users["tech2"])
    # Jobs without tasks for the job-level actions (a job without tasks may be completed); tasks on their own jobs.
    task_job_a = JobFactory(created_by=users["sales1"], assigned_to=users["tech1"])
    task_job_b = JobFactory(created_by=users["sales2"], assigned_to=users["tech2"])
    task_a = JobTaskFactory(job=task_job_a, order=1)
    task_b = JobTaskFactory(job=task_job_b, order=1)
    equipment = EquipmentFactory()
    notification = Notification.objects.create(
        kind=Notification.Kind.JOB_ASSIGNED,
        recipient="m-tech1@example.com",
        recipient_user=users["tech1"],
        job=job_a,
        subject="Assigned",
        status=Notification.Status.FAILED,
    )
    ids = {
        "a": job_a.pk,
        "b": job_b.pk,
        "ta": task_a.pk,
        "tb": task_b.pk,
        "e": equipment.pk,
        "n": notification.pk,
        "admin": users["admin"].pk,
        "tech1": users["tech1"].pk,
        "tech2": users["tech2"].pk,
        "sales2": users["sales2"].pk,
    }
    return World(users=users, ids=ids)


# (method, path, body, {actor: expected status}); actor "anon" sends no token. Paths use {a} (own job), {b} (a
# peer's job), {ta}/{tb} (own/peer task), {e} equipment, {n} notification, and user ids by name.
MATRIX = [
    # jobs
    ("get", "/api/jobs/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
    ("get", "/api/jobs/{a}/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
    ("get", "/api/jobs/{b}/", None, {"admin": 200, "tech1": 404, "sales1": 404}),
    ("post", "/api/jobs/", "job", {"anon": 401, "admin": 201, "sales1": 201, "tech1": 403}),
    ("patch", "/api/jobs/{a}/", {"title": "x"}, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 403}),
    ("patch", "/api/jobs/{b}/", {"title": "x"}, {"sales1": 404, "tech1": 404}),
    ("delete", "/api/jobs/{a}/", None, {"anon": 401, "admin": 204, "sales1": 403, "tech1": 403}),
    ("delete", "/api/jobs/{b}/", None, {"sales1": 404, "tech1": 404}),
    ("post", "/api/jobs/{a}/cancel/", None, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 403}),
    ("post", "/api/jobs/{b}/cancel/", None, {"sales1": 404, "tech1": 404}),
    ("post", "/api/jobs/{a}/complete/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 403}),
    ("post", "/api/jobs/{b}/complete/", None, {"sales1": 404, "tech1": 404}),
    ("post", "/api/jobs/{a}/reopen/", None, {"anon": 401, "sales1": 403, "tech1": 403}),
    ("post", "/api/jobs/{b}/reopen/", None, {"sales1": 404, "tech1": 404}),
    ("get", "/api/jobs/{a}/history/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
    ("get", "/api/jobs/{b}/history/", None, {"tech1": 404, "sales1": 404}),
    ("get", "/api/jobs/{a}/tasks/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
    ("get", "/api/jobs/{b}/tasks/", None, {"tech1": 404, "sales1": 404}),
    ("post", "/api/jobs/{a}/tasks/", {"title": "t"}, {"anon": 401, "admin": 201, "sales1": 201, "tech1": 403}),
    ("post", "/api/jobs/{b}/tasks/", {"title": "t"}, {"sales1": 404, "tech1": 404}),
    # tasks
    ("get", "/api/tasks/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
    ("get", "/api/tasks/{ta}/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
    ("get", "/api/tasks/{tb}/", None, {"tech1": 404, "sales1": 404}),
    ("patch", "/api/tasks/{ta}/", {"title": "x"}, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 403}),
    ("patch", "/api/tasks/{tb}/", {"title": "x"}, {"sales1": 404, "tech1": 404}),
    ("delete", "/api/tasks/{ta}/", None, {"anon": 401, "admin": 204, "sales1": 204, "tech1": 403}),
    ("delete", "/api/tasks/{tb}/", None, {"sales1": 404, "tech1": 404}),
    ("post", "/api/tasks/{ta}/start/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 403}),
    ("post", "/api/tasks/{tb}/start/", None, {"sales1": 404, "tech1": 404}),
    ("post", "/api/tasks/{ta}/complete/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 403}),
    ("post", "/api/tasks/{tb}/complete/", None, {"sales1": 404, "tech1": 404}),
    # users
    ("get", "/api/users/", None, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 403}),
    ("get", "/api/users/{tech2}/", None, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 403}),
    ("get", "/api/users/{admin}/", None, {"sales1": 404, "tech1": 403}),
    ("post", "/api/users/", "user", {"anon": 401, "admin": 201, "sales1": 403, "tech1": 403}),
    ("patch", "/api/users/{tech2}/", {"first_name": "x"}, {"anon": 401, "admin": 200, "sales1": 403, "tech1": 403}),
    ("delete", "/api/users/{tech2}/", None, {"anon": 401, "sales1": 403, "tech1": 403}),
    # A sales agent's scope is active technicians: another sales agent is out of scope.
    ("get", "/api/users/{sales2}/", None, {"sales1": 404}),
    ("delete", "/api/users/{sales2}/", None, {"sales1": 404}),
    # equipment
    ("get", "/api/equipment/", None, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 200}),
    ("get", "/api/equipment/{e}/", None, {"anon": 401, "admin": 200, "sales1": 200, "tech1": 200}),
    ("post", "/api/equipment/", "equipment", {"anon": 401, "admin": 201, "sales1": 403, "tech1": 403}),
    ("patch", "/api/equipment/{e}/", {"name": "x"}, {"anon": 401, "admin": 200, "sales1": 403, "tech1": 403}),
    ("delete", "/api/equipment/{e}/", None, {"anon": 401, "admin": 204, "sales1": 403, "tech1": 403}),
    ("get", "/api/equipment/{e}/usage/", None, {"anon": 401, "admin": 200, "sales1": 403, "tech1": 403}),
    # admin-only read models
    ("get", "/api/audit/", None, {"anon": 401, "admin": 200, "sales1": 403, "tech1": 403}),
    ("get", "/api/notifications/", None, {"anon": 401, "admin": 200, "sales1": 403, "tech1": 403}),
    ("get", "/api/notifications/{n}/", None, {"admin": 200, "sales1": 403, "tech1": 403}),
    ("post", "/api/notifications/{n}/retry/", None, {"anon": 401, "sales1": 403, "tech1": 403}),
    ("get", "/api/analytics/", None, {"anon": 401, "admin": 200, "sales1": 403, "tech1": 403}),
    # reports
    ("get", "/api/dashboard/technician/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 403}),
    ("get", "/api/dashboard/technician/?technician={tech2}", None, {"admin": 200, "tech1": 403, "sales1": 403}),
    ("get", "/api/dashboard/technician/?technician={tech1}", None, {"tech1": 200}),
    # own profile: every role
    ("get", "/api/auth/me/", None, {"anon": 401, "admin": 200, "tech1": 200, "sales1": 200}),
]

CASES = [
    pytest.param(method, path, body, actor, expected, id=f"{actor}-{method.upper()}-{path}")
    for method, path, body, expected_by_actor in MATRIX
    for actor, expected in expected_by_actor.items()
]


def _body(kind: object, world: World) -> object:
    if kind == "job":
        return {"title": "New", "client_name": "Acme", "scheduled_date": "2030-01-01"}
    if kind == "user":
        return {"username": "m-new", "password": "A-long-enough-pass-2026", "role": "technician"}
    if kind == "equipment":
        return {"name": "Drill", "type": "tool", "serial_number": "SN-MATRIX-1"}
    return kind


@pytest.mark.parametrize(("method", "path", "body", "actor", "expected"), CASES)
def test_permission_matrix(world, method, path, body, actor, expected):
    client = client_for(None if actor == "anon" else world.users[actor])
    url = path.format(**world.ids)
    kwargs = {"format": "json"} if method != "get" else {}
    data = _body(body, world)
    response = getattr(client, method)(url, data, **kwargs) if data is not None else getattr(client, method)(url)
    assert response.status_code == expected, (actor, method, url, response.status_code, response.content[:300])


@pytest.mark.parametrize(
    ("actor", "jobs", "tasks"),
    [
        ("admin", {"a", "b"}, {"ta", "tb"}),
        ("tech1", {"a"}, {"ta"}),
        ("tech2", {"b"}, {"tb"}),
        ("sales1", {"a"}, {"ta"}),
    ],
)
def test_lists_contain_exactly_the_objects_in_scope(world, actor, jobs, tasks):
    client = client_for(world.users[actor])
    own_jobs = {world.ids[name] for name in jobs}
    listed_jobs = {row["id"] for row in client.get("/api/jobs/", {"page_size": 100}).json()["results"]}
    # The task-only jobs are in the same scopes as a and b.
    listed_jobs -= {task["job"] for task in client.get("/api/tasks/", {"page_size": 100}).json()["results"]}
    assert listed_jobs == own_jobs
    listed_tasks = {row["id"] for row in client.get("/api/tasks/", {"page_size": 100}).json()["results"]}
    assert listed_tasks == {world.ids[name] for name in tasks}


def test_sales_agents_see_only_active_technicians_with_public_fields(world):
    UserFactory(username="m-gone", role=User.Role.TECHNICIAN, is_active=False)
    rows = client_for(world.users["sales1"]).get("/api/users/", {"page_size": 100}).json()["results"]
    assert {row["username"] for row in rows} == {"m-tech1", "m-tech2"}
    assert all(set(row) == {"id", "username", "first_name", "last_name"} for row in rows)


def test_read_only_fields_sent_in_a_write_are_ignored(world):
    """API3 mass assignment: status, created_by and a role sneaked into writes change nothing."""
    sales1 = client_for(world.users["sales1"])
    response = sales1.patch(
        f"/api/jobs/{world.ids['a']}/",
        {"title": "renamed", "status": "completed", "created_by": world.ids["sales2"], "overdue": True},
        format="json",
    )
    assert response.status_code == 200
    job = response.json()
    assert (job["title"], job["status"], job["created_by"]) == ("renamed", "pending", world.users["sales1"].pk)
    me = client_for(world.users["tech1"]).patch("/api/auth/me/", {"role": "admin", "is_active": False}, format="json")
    assert me.status_code == 200
    world.users["tech1"].refresh_from_db()
    assert (world.users["tech1"].role, world.users["tech1"].is_active) == (User.Role.TECHNICIAN, True)
