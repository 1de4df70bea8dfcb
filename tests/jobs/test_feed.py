"""The change feed over REST (``GET /api/changes/``): scoping per role, removal on reassignment and deletion,
coalescing, paging, retention and bad cursors, query counts; on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import feed, services
from jobs.models import Change
from jobs.sweep import jobs_flag_overdue
from tests.factories import EquipmentFactory, JobFactory, JobTaskFactory

URL = "/api/changes/"
# Committed transactions: on PostgreSQL a row is readable once its writing transaction has ended, and a test wrapped
# in one transaction would never end it.
pytestmark = pytest.mark.django_db(transaction=True)


def cursor_of(client) -> str:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["changes"] == [] and body["has_more"] is False
    return body["cursor"]


def read_all(client, cursor, *, limit=100):
    """Every change after ``cursor``, page by page: (changes, final cursor)."""
    changes = []
    for _ in range(1000):
        response = client.get(URL, {"after": cursor, "limit": limit})
        assert response.status_code == 200, response.content
        body = response.json()
        changes.extend(body["changes"])
        cursor = body["cursor"]
        if not body["has_more"]:
            return changes, cursor
    raise AssertionError("the feed never ended")


def by_object(changes):
    return {(c["object_type"], c["object_id"]): c for c in changes}


def job_data(job_id, user, api_client):
    response = api_client(user).get(f"/api/jobs/{job_id}/")
    assert response.status_code == 200
    return response.json()


def create_job(api_client, user, **extra):
    body = {"title": "Boiler", "client_name": "ACME", "scheduled_date": "2030-01-10", **extra}
    response = api_client(user).post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_without_after_only_the_current_cursor(api_client, technician):
    client = api_client(technician)
    first = cursor_of(client)
    assert read_all(client, first)[0] == []


def test_anonymous_is_401(api_client):
    assert api_client(None).get(URL).status_code == 401


def test_created_job_and_task_come_as_their_detail_renders_them(api_client, admin_user, sales_agent, technician):
    cursors = {user: cursor_of(api_client(user)) for user in (admin_user, sales_agent, technician)}
    job = create_job(api_client, sales_agent, assigned_to=technician.pk)
    equipment = EquipmentFactory()
    task = api_client(sales_agent).post(
        f"/api/jobs/{job['id']}/tasks/", {"title": "Drain", "required_equipment": [equipment.pk]}, format="json"
    )
    assert task.status_code == 201
    for user in (admin_user, sales_agent, technician):
        changes, _ = read_all(api_client(user), cursors[user])
        assert [c["type"] for c in changes] == ["job.upserted", "task.upserted"], user
        job_change, task_change = changes
        assert job_change["object_id"] == job["id"] and job_change["job"] == job["id"]
        assert job_change["data"] == job_data(job["id"], user, api_client)  # the detail as it renders now
        assert task_change["data"] == api_client(user).get(f"/api/tasks/{task.json()['id']}/").json()
        assert task_change["job"] == job["id"]
        assert job_change["at"].endswith("Z") and job_change["cursor"] != task_change["cursor"]


def test_scope_other_technician_and_other_sales_agent_see_nothing(
    api_client, sales_agent, technician, other_technician, other_sales_agent
):
    cursors = {user: cursor_of(api_client(user)) for user in (other_technician, other_sales_agent)}
    job = create_job(api_client, sales_agent, assigned_to=technician.pk)
    services.task_add(actor=sales_agent, job_id=job["id"], data={"title": "T"})
    for user, cursor in cursors.items():
        assert read_all(api_client(user), cursor)[0] == [], user


def test_reassignment_removes_the_job_and_its_tasks_for_the_previous_technician(
    api_client, admin_user, sales_agent, technician, other_technician
):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    tasks = [JobTaskFactory(job=job, order=i) for i in (1, 2)]
    before = {user: cursor_of(api_client(user)) for user in (technician, other_technician, sales_agent)}
    services.job_update(actor=admin_user, job_id=job.pk, data={"assigned_to": other_technician})

    old, _ = read_all(api_client(technician), before[technician])
    assert {(c["type"], c["object_id"]) for c in old} == {
        ("job.removed", job.pk),
        *(("task.removed", t.pk) for t in tasks),
    }
    assert all(c["data"] is None and c["job"] == job.pk for c in old)

    new, _ = read_all(api_client(other_technician), before[other_technician])
    assert {(c["type"], c["object_id"]) for c in new} == {
        ("job.upserted", job.pk),
        *(("task.upserted", t.pk) for t in tasks),
    }
    assert by_object(new)[("job", job.pk)]["data"]["assigned_to"] == other_technician.pk

    creator, _ = read_all(api_client(sales_agent), before[sales_agent])
    assert {c["type"] for c in creator} == {"job.upserted", "task.upserted"}


def test_an_admin_reading_sees_every_job(api_client, admin_user, sales_agent, other_sales_agent, technician):
    cursor = cursor_of(api_client(admin_user))
    jobs = [JobFactory(created_by=agent) for agent in (sales_agent, other_sales_agent)]
    for job in jobs:
        services.job_update(actor=admin_user, job_id=job.pk, data={"title": f"Renamed {job.pk}"})
    changes, _ = read_all(api_client(admin_user), cursor)
    assert [(c["type"], c["object_id"]) for c in changes] == [("job.upserted", job.pk) for job in jobs]
    assert changes[0]["data"]["title"] == f"Renamed {jobs[0].pk}"


def test_several_changes_to_one_object_come_as_the_newest(api_client, sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    other = JobFactory(created_by=sales_agent, assigned_to=technician)
    cursor = cursor_of(api_client(technician))
    for title in ("one", "two", "three"):
        services.job_update(actor=sales_agent, job_id=job.pk, data={"title": title})
    services.job_update(actor=sales_agent, job_id=other.pk, data={"title": "other"})
    services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "four"})
    changes, _ = read_all(api_client(technician), cursor)
    # One change per object, in the order of each object's newest change; the representation is the current one.
    assert [c["object_id"] for c in changes] == [other.pk, job.pk]
    assert changes[1]["data"]["title"] == "four"


def test_deleted_job_comes_as_removed_with_its_tasks(api_client, admin_user, sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    task = JobTaskFactory(job=job, order=1)
    cursors = {user: cursor_of(api_client(user)) for user in (admin_user, sales_agent, technician)}
    assert api_client(admin_user).delete(f"/api/jobs/{job.pk}/").status_code == 204
    for user, cursor in cursors.items():
        changes, _ = read_all(api_client(user), cursor)
        assert {(c["type"], c["object_id"], c["job"]) for c in changes} == {
            ("job.removed", job.pk, job.pk),
            ("task.removed", task.pk, job.pk),
        }


def test_task_work_is_in_the_feed_with_its_job(api_client, sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    task = JobTaskFactory(job=job, order=1)
    cursor = cursor_of(api_client(technician))
    assert api_client(technician).post(f"/api/tasks/{task.pk}/start/").status_code == 200
    changes, cursor = read_all(api_client(technician), cursor)
    found = by_object(changes)
    assert found[("task", task.pk)]["data"]["status"] == "in_progress"
    assert found[("job", job.pk)]["data"]["status"] == "in_progress"  # the job started with its first task
    assert read_all(api_client(technician), cursor)[0] == []  # nothing twice


def test_reorder_and_the_overdue_sweep_record_in_bulk(api_client, admin_user, sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician, scheduled_date=datetime.date(2020, 1, 1))
    tasks = [JobTaskFactory(job=job, order=i) for i in (1, 2, 3)]
    cursor = cursor_of(api_client(technician))
    services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[tasks[2].pk, tasks[0].pk, tasks[1].pk])
    changes, cursor = read_all(api_client(technician), cursor)
    assert {c["object_id"] for c in changes if c["object_type"] == "task"} == {t.pk for t in tasks}
    assert by_object(changes)[("task", tasks[2].pk)]["data"]["order"] == 1

    assert jobs_flag_overdue(today=datetime.date(2020, 2, 1)).flagged == 1
    changes, _ = read_all(api_client(technician), cursor)
    assert [(c["type"], c["object_id"], c["data"]["overdue"]) for c in changes] == [("job.upserted", job.pk, True)]


def test_paging_with_has_more_delivers_everything_once(api_client, admin_user, sales_agent):
    cursor = cursor_of(api_client(admin_user))
    jobs = [JobFactory(created_by=sales_agent) for _ in range(7)]
    for job in jobs:
        services.job_update(actor=admin_user, job_id=job.pk, data={"title": f"t{job.pk}"})
    first = api_client(admin_user).get(URL, {"after": cursor, "limit": 3}).json()
    assert first["has_more"] is True and len(first["changes"]) == 3
    changes, _ = read_all(api_client(admin_user), cursor, limit=3)
    assert [c["object_id"] for c in changes] == [job.pk for job in jobs]


@pytest.mark.parametrize(
    "params",
    [
        {"after": "nope"},
        {"after": "!!!"},
        {"after": base64.urlsafe_b64encode(b"1.2").decode()},
        {"after": base64.urlsafe_b64encode(b"99999999999999999999.1.1").decode()},
        {"after": "x" * 200},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"limit": ""},
    ],
)
def test_bad_cursor_or_limit_is_a_400_naming_the_field(api_client, technician, params):
    response = api_client(technician).get(URL, params)
    assert response.status_code == 400, response.content
    assert set(response.json()) & set(params)


def test_cursor_older_than_the_retention_is_410(api_client, technician, settings):
    settings.CHANGE_FEED_RETENTION_DAYS = 30
    old = feed.encode_cursor(feed.Position(0, 0), issued=timezone.now() - datetime.timedelta(days=31))
    response = api_client(technician).get(URL, {"after": old})
    assert response.status_code == 410
    assert response.json()["code"] == "cursor_expired"
    recent = feed.encode_cursor(feed.Position(0, 0), issued=timezone.now() - datetime.timedelta(days=29))
    assert api_client(technician).get(URL, {"after": recent}).status_code == 200


def test_prune_deletes_rows_past_the_retention_in_batches(sales_agent, settings):
    settings.CHANGE_FEED_RETENTION_DAYS = 30
    jobs = [JobFactory(created_by=sales_agent) for _ in range(3)]
    for job in jobs:
        services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "x"})
    old_ids = list(Change.objects.filter(job_id__in=[jobs[0].pk, jobs[1].pk]).values_list("id", flat=True))
    Change.objects.filter(id__in=old_ids).update(at=timezone.now() - datetime.timedelta(days=31, hours=2))
    kept = Change.objects.exclude(id__in=old_ids).count()
    assert feed.prune_changes(batch_size=1) == len(old_ids)
    assert Change.objects.count() == kept and kept > 0
    assert feed.prune_changes() == 0


def test_feed_page_queries_do_not_grow_with_its_size(api_client, admin_user, sales_agent, technician):
    equipment = EquipmentFactory()

    def queries(n):
        cursor = cursor_of(api_client(technician))
        for _ in range(n):
            job = JobFactory(created_by=sales_agent, assigned_to=technician)
            task = services.task_add(
                actor=sales_agent, job_id=job.pk, data={"title": "T", "required_equipment": [equipment]}
            )
            services.task_start(actor=technician, task_id=task.pk)
        client = api_client(technician)
        with CaptureQueriesContext(connection) as ctx:
            body = client.get(URL, {"after": cursor, "limit": 500}).json()
        assert len(body["changes"]) == 2 * n
        return len(ctx.captured_queries)

    assert queries(2) == queries(20)


def test_rows_are_recorded_with_the_change_or_not_at_all(sales_agent, technician, other_technician, monkeypatch):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)

    def broken(**kwargs):
        raise RuntimeError("the outbox failed after the feed row was written")

    monkeypatch.setattr(services.notifications, "notify_job_assigned", broken)
    with pytest.raises(RuntimeError):
        services.job_update(actor=sales_agent, job_id=job.pk, data={"assigned_to": other_technician})
    assert not Change.objects.exists()  # rolled back with the change and its audit entry
    job.refresh_from_db()
    assert job.assigned_to_id == technician.pk
    monkeypatch.undo()
    services.job_update(actor=sales_agent, job_id=job.pk, data={"assigned_to": other_technician})
    assert Change.objects.filter(job_id=job.pk).exists()


def test_equipment_renamed_updates_the_tasks_that_list_it(api_client, admin_user, sales_agent, technician):
    drill, other = EquipmentFactory(name="Drill"), EquipmentFactory(name="Saw")
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    task = services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "T", "required_equipment": [drill]})
    services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "U", "required_equipment": [other]})
    cursor = cursor_of(api_client(technician))
    response = api_client(admin_user).patch(f"/api/equipment/{drill.pk}/", {"name": "Hammer drill"}, format="json")
    assert response.status_code == 200
    changes, cursor = read_all(api_client(technician), cursor)
    assert {(c["object_type"], c["object_id"]) for c in changes} == {("job", job.pk), ("task", task.pk)}
    assert by_object(changes)[("task", task.pk)]["data"]["required_equipment"][0]["name"] == "Hammer drill"
    # A field tasks do not render changes nothing in the feed.
    response = api_client(admin_user).patch(f"/api/equipment/{drill.pk}/", {"description": "new"}, format="json")
    assert response.status_code == 200
    assert read_all(api_client(technician), cursor)[0] == []
