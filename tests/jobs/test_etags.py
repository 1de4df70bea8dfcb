"""Strong ETags, ``If-None-Match`` -> 304 and ``If-Match`` -> 412 (API.md v2, "Offline-safe writes").

The tag of every list and of the day view is computed by one query before the body is rendered (``jobs.etags``); the
property test drives random writes through the services and checks, for several readers, that whenever a body
changed its tag changed too, and that writes outside a reader's view leave its tag alone.
"""

from __future__ import annotations

import datetime
import random

import pytest
from django.utils import timezone

from accounts.services import user_update
from equipment import services as equipment_services
from equipment.models import Equipment
from jobops.exceptions import ApplicationError
from jobs import services
from jobs.models import Job, JobTask
from jobs.sweep import jobs_flag_overdue
from tests.conftest import client_for
from tests.factories import EquipmentFactory, JobFactory, JobTaskFactory

TODAY = timezone.localdate()


@pytest.fixture
def world(db, sales_agent, technician, other_technician, admin_user):
    job = JobFactory(created_by=sales_agent, assigned_to=technician, scheduled_date=TODAY)
    first = JobTaskFactory(job=job, order=1)
    second = JobTaskFactory(job=job, order=2)
    first.required_equipment.set([EquipmentFactory()])
    return {
        "sales": client_for(sales_agent),
        "tech": client_for(technician),
        "admin": client_for(admin_user),
        "job": job,
        "first": first,
        "second": second,
    }


READS = {
    "job detail": lambda w: ("tech", f"/api/jobs/{w['job'].pk}/"),
    "job's tasks": lambda w: ("tech", f"/api/jobs/{w['job'].pk}/tasks/"),
    "task detail": lambda w: ("tech", f"/api/tasks/{w['first'].pk}/"),
    "jobs list": lambda w: ("sales", "/api/jobs/?page_size=5&ordering=priority"),
    "tasks list": lambda w: ("admin", "/api/tasks/?status=pending"),
    "day view": lambda w: ("tech", "/api/dashboard/technician/?days=3"),
    "users list": lambda w: ("admin", "/api/users/"),
    "equipment list": lambda w: ("tech", "/api/equipment/"),
    "audit list": lambda w: ("admin", "/api/audit/"),
    "notifications list": lambda w: ("admin", "/api/notifications/"),
    "job history": lambda w: ("sales", f"/api/jobs/{w['job'].pk}/history/"),
}


@pytest.mark.parametrize("read", list(READS))
def test_every_read_has_a_strong_etag_and_answers_304_with_no_body(world, read):
    who, path = READS[read](world)
    client = world[who]
    first = client.get(path)
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong: no W/
    again = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert client.get(path, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304  # weak comparison
    assert client.get(path, HTTP_IF_NONE_MATCH='"other"').status_code == 200


@pytest.mark.parametrize("read", list(READS))
def test_a_write_that_changes_the_body_changes_the_tag(world, read, admin_user):
    who, path = READS[read](world)
    client = world[who]
    before = client.get(path)
    if read == "users list":
        user_update(actor=admin_user, user_id=world["first"].job.created_by_id, data={"first_name": "Renamed"})
    elif read == "equipment list":
        equipment = world["first"].required_equipment.get()
        equipment_services.equipment_update(actor=admin_user, equipment_id=equipment.pk, data={"name": "New name"})
    elif read == "notifications list":
        services.job_update(actor=admin_user, job_id=world["job"].pk, data={"assigned_to": None})
    else:
        services.task_start(actor=admin_user, task_id=world["first"].pk)  # the job, its tasks, audit...
    after = client.get(path, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after.content != before.content
    assert after["ETag"] != before["ETag"]


def test_the_job_etag_moves_with_each_of_its_tasks_and_its_equipment(world, admin_user):
    tech = world["tech"]
    path = f"/api/jobs/{world['job'].pk}/"
    tags = [tech.get(path)["ETag"]]
    services.task_update(actor=admin_user, task_id=world["second"].pk, data={"title": "Renamed"})
    tags.append(tech.get(path)["ETag"])
    equipment = world["first"].required_equipment.get()
    equipment_services.equipment_update(actor=admin_user, equipment_id=equipment.pk, data={"name": "Drill 2"})
    tags.append(tech.get(path)["ETag"])
    assert len(set(tags)) == 3
    assert tech.get(f"/api/jobs/{world['job'].pk}/tasks/")["ETag"] == tags[-1]  # the job's task list: same tag


def test_the_tag_is_not_sent_for_errors(world):
    response = world["tech"].get("/api/jobs/999999/")
    assert response.status_code == 404
    assert not response.has_header("ETag")


# --- If-Match ----------------------------------------------------------------------------------------------------


def _job_tag(w):
    return w["sales"].get(f"/api/jobs/{w['job'].pk}/")["ETag"]


def _task_tag(w, task="first"):
    return w["sales"].get(f"/api/tasks/{w[task].pk}/")["ETag"]


PRECONDITIONED = {
    "put job": ("sales", "put", lambda w: f"/api/jobs/{w['job'].pk}/", _job_tag),
    "patch job": ("sales", "patch", lambda w: f"/api/jobs/{w['job'].pk}/", _job_tag),
    "delete job": ("admin", "delete", lambda w: f"/api/jobs/{w['job'].pk}/", _job_tag),
    "cancel job": ("sales", "post", lambda w: f"/api/jobs/{w['job'].pk}/cancel/", _job_tag),
    "complete job": ("tech", "post", lambda w: f"/api/jobs/{w['job'].pk}/complete/", _job_tag),
    "reopen job": ("admin", "post", lambda w: f"/api/jobs/{w['job'].pk}/reopen/", _job_tag),
    "add task": ("sales", "post", lambda w: f"/api/jobs/{w['job'].pk}/tasks/", _job_tag),
    "reorder tasks": ("sales", "post", lambda w: f"/api/jobs/{w['job'].pk}/tasks/reorder/", _job_tag),
    "put task": ("sales", "put", lambda w: f"/api/tasks/{w['second'].pk}/", lambda w: _task_tag(w, "second")),
    "patch task": ("sales", "patch", lambda w: f"/api/tasks/{w['second'].pk}/", lambda w: _task_tag(w, "second")),
    "delete task": ("sales", "delete", lambda w: f"/api/tasks/{w['second'].pk}/", lambda w: _task_tag(w, "second")),
    "start task": ("tech", "post", lambda w: f"/api/tasks/{w['first'].pk}/start/", _task_tag),
    "complete task": ("tech", "post", lambda w: f"/api/tasks/{w['first'].pk}/complete/", _task_tag),
    "reopen task": ("tech", "post", lambda w: f"/api/tasks/{w['first'].pk}/reopen/", _task_tag),
}


def _body(kind, w):
    return {
        "put job": {"title": "T", "client_name": "C", "scheduled_date": str(TODAY)},
        "patch job": {"title": "T"},
        "add task": {"title": "New"},
        "reorder tasks": {"order": [w["first"].pk, w["second"].pk]},
        "put task": {"title": "T", "description": ""},
        "patch task": {"title": "T"},
    }.get(kind)


def _prepare(kind, w, admin):
    """Bring the job into a state where the write succeeds."""
    if kind in ("complete job", "reopen job"):
        for task in (w["first"], w["second"]):
            services.task_complete(actor=admin, task_id=task.pk)
    if kind == "reopen job":
        services.job_complete(actor=admin, job_id=w["job"].pk)
    if kind == "reopen task":
        services.task_complete(actor=admin, task_id=w["first"].pk)


def _state():
    return sorted(Job.objects.values_list("pk", "version", "status", "title")), sorted(
        JobTask.objects.values_list("pk", "order", "status", "title")
    )


@pytest.mark.parametrize("kind", list(PRECONDITIONED))
def test_a_stale_if_match_is_a_412_with_the_current_etag_and_changes_nothing(world, admin_user, kind):
    who, method, path, tag_of = PRECONDITIONED[kind]
    stale = tag_of(world)
    _prepare(kind, world, admin_user)  # someone else changes the job or its tasks meanwhile...
    if tag_of(world) == stale:  # ... or, when that was nothing, this
        services.job_update(actor=admin_user, job_id=world["job"].pk, data={"description": "changed meanwhile"})
    current = tag_of(world)
    assert current != stale
    state = _state()
    response = getattr(world[who], method)(path(world), _body(kind, world), format="json", HTTP_IF_MATCH=stale)
    assert response.status_code == 412, response.content
    assert response.json() == {"detail": response.json()["detail"], "code": "precondition_failed"}
    assert response["ETag"] == current
    assert _state() == state


@pytest.mark.parametrize("kind", list(PRECONDITIONED))
@pytest.mark.parametrize("header", ["current", "star", "absent"])
def test_a_current_if_match_or_none_proceeds(world, admin_user, kind, header):
    who, method, path, tag_of = PRECONDITIONED[kind]
    _prepare(kind, world, admin_user)
    extra = {}
    if header != "absent":
        extra["HTTP_IF_MATCH"] = tag_of(world) if header == "current" else "*"
    response = getattr(world[who], method)(path(world), _body(kind, world), format="json", **extra)
    assert response.status_code in (200, 201, 204), response.content
    if response.status_code != 204:
        assert response.has_header("ETag")  # the new version, for the client's next If-Match


def test_a_weak_if_match_never_matches(world):
    tag = _job_tag(world)
    response = world["sales"].post(f"/api/jobs/{world['job'].pk}/cancel/", HTTP_IF_MATCH=f"W/{tag}")
    assert response.status_code == 412


def test_the_etag_of_a_write_response_is_the_next_if_match(world):
    sales, path = world["sales"], f"/api/jobs/{world['job'].pk}/"
    response = sales.patch(path, {"title": "One"}, format="json", HTTP_IF_MATCH=_job_tag(world))
    assert response.status_code == 200
    response = sales.patch(path, {"title": "Two"}, format="json", HTTP_IF_MATCH=response["ETag"])
    assert response.status_code == 200
    assert response["ETag"] == sales.get(path)["ETag"]


def test_if_match_outside_the_scope_is_still_a_404(world, other_technician):
    response = client_for(other_technician).post(f"/api/tasks/{world['first'].pk}/start/", HTTP_IF_MATCH='"x"')
    assert response.status_code == 404


# --- the property: body changed => tag changed, over random writes ------------------------------------------------


def _random_write(rng, people, equipment):
    admin, sales, techs = people["admin"], people["sales"], people["techs"]
    jobs = list(Job.objects.order_by("pk"))
    tasks = list(JobTask.objects.order_by("pk"))
    kind = rng.choice(
        [
            "create",
            "update",
            "assign",
            "reschedule",
            "add",
            "edit task",
            "start",
            "complete",
            "reopen task",
            "delete task",
            "cancel",
            "complete job",
            "reopen job",
            "reorder",
            "equipment",
            "delete job",
            "sweep",
            "nothing",
        ]
    )
    job = rng.choice(jobs) if jobs else None
    task = rng.choice(tasks) if tasks else None
    day = TODAY + datetime.timedelta(days=rng.randint(-2, 4))
    if kind == "create" or job is None:
        services.job_create(
            actor=sales,
            data={
                "title": f"J{rng.random()}",
                "client_name": "C",
                "scheduled_date": day,
                "assigned_to": rng.choice(techs),
            },
        )
    elif kind == "update":
        services.job_update(actor=admin, job_id=job.pk, data={"title": f"T{rng.randint(0, 3)}"})
    elif kind == "assign":
        services.job_update(actor=admin, job_id=job.pk, data={"assigned_to": rng.choice([*techs, None])})
    elif kind == "reschedule":
        services.job_update(actor=admin, job_id=job.pk, data={"scheduled_date": day})
    elif kind == "add":
        services.task_add(
            actor=admin,
            job_id=job.pk,
            data={"title": "t", "required_equipment": [Equipment.objects.get(pk=rng.choice(equipment))]},
        )
    elif kind == "edit task" and task:
        services.task_update(actor=admin, task_id=task.pk, data={"description": f"d{rng.randint(0, 2)}"})
    elif kind == "start" and task:
        services.task_start(actor=admin, task_id=task.pk)
    elif kind == "complete" and task:
        services.task_complete(actor=admin, task_id=task.pk)
    elif kind == "reopen task" and task:
        services.task_reopen(actor=admin, task_id=task.pk)
    elif kind == "delete task" and task:
        services.task_delete(actor=admin, task_id=task.pk)
    elif kind == "cancel":
        services.job_cancel(actor=admin, job_id=job.pk)
    elif kind == "complete job":
        services.job_complete(actor=admin, job_id=job.pk)
    elif kind == "reopen job":
        services.job_reopen(actor=admin, job_id=job.pk)
    elif kind == "reorder":
        ids = list(job.tasks.values_list("pk", flat=True))
        rng.shuffle(ids)
        services.tasks_reorder(actor=admin, job_id=job.pk, task_ids=ids)
    elif kind == "equipment":
        item = rng.choice(equipment)
        equipment_services.equipment_update(actor=admin, equipment_id=item, data={"name": f"E{rng.random()}"})
    elif kind == "delete job":
        services.job_delete(actor=admin, job_id=job.pk)
    elif kind == "sweep":
        jobs_flag_overdue(today=TODAY)
    return kind


@pytest.mark.parametrize("seed", range(2))
def test_over_random_writes_a_changed_body_always_has_a_changed_tag(
    db, seed, admin_user, sales_agent, technician, other_technician
):
    rng = random.Random(seed)
    equipment = [EquipmentFactory().pk for _ in range(3)]
    people = {"admin": admin_user, "sales": sales_agent, "techs": [technician, other_technician]}
    readers = {
        "admin jobs p1": (admin_user, "/api/jobs/?page_size=3"),
        "admin jobs by priority": (admin_user, "/api/jobs/?ordering=-priority&page_size=100"),
        "tech jobs": (technician, "/api/jobs/?page_size=100"),
        "sales overdue jobs": (sales_agent, "/api/jobs/?overdue=true"),
        "tech tasks": (technician, "/api/tasks/?page_size=100"),
        "admin pending tasks": (admin_user, "/api/tasks/?status=pending&page_size=4"),
        "tech day view": (technician, "/api/dashboard/technician/?days=3"),
        "admin day view": (admin_user, "/api/dashboard/technician/?days=90"),
        "other tech day view": (other_technician, "/api/dashboard/technician/"),
    }
    clients = {name: client_for(user) for name, (user, _) in readers.items()}

    def read_all():
        out = {}
        for name, (_, path) in readers.items():
            response = clients[name].get(path)
            out[name] = (response.status_code, response.content, response.get("ETag"))
        return out

    for _ in range(3):
        services.job_create(
            actor=sales_agent,
            data={"title": "seed", "client_name": "C", "scheduled_date": TODAY, "assigned_to": technician},
        )
    before = read_all()
    changed_bodies = 0
    for step in range(50):
        try:
            kind = _random_write(rng, people, equipment)
        except ApplicationError:
            kind = "refused"  # a 409 changes nothing
        after = read_all()
        for name in readers:
            (status_0, body_0, tag_0), (status_1, body_1, tag_1) = before[name], after[name]
            if status_1 != 200:
                continue  # a page that no longer exists (404) has no tag to compare
            if status_0 == 200 and body_0 != body_1:
                changed_bodies += 1
                assert tag_0 != tag_1, (seed, step, kind, name)
        before = after
    assert changed_bodies > 30  # the writes really moved the bodies


def test_a_write_outside_a_readers_view_leaves_its_tags_alone(world, admin_user, other_technician, sales_agent):
    other = JobFactory(created_by=admin_user, assigned_to=other_technician, scheduled_date=TODAY)
    task = JobTaskFactory(job=other, order=1)
    paths = ["/api/jobs/", "/api/tasks/", "/api/dashboard/technician/"]
    before = {path: world["tech"].get(path)["ETag"] for path in paths}
    services.task_start(actor=admin_user, task_id=task.pk)
    services.job_update(actor=admin_user, job_id=other.pk, data={"title": "elsewhere"})
    assert {path: world["tech"].get(path)["ETag"] for path in paths} == before


def test_an_empty_if_match_is_no_condition(world):
    response = world["sales"].post(f"/api/jobs/{world['job'].pk}/cancel/", HTTP_IF_MATCH="")
    assert response.status_code == 200
