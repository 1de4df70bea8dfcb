"""Jobs and tasks over HTTP: the contract's role x action matrix, status codes, shapes, filters, query budgets."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEntry
from jobs.models import Job, JobTask
from tests.conftest import client_for
from tests.factories import EquipmentFactory, JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db

PERSONAS = ["admin", "technician", "other_technician", "sales_agent", "other_sales_agent", "anonymous"]


@pytest.fixture
def people(admin_user, technician, other_technician, sales_agent, other_sales_agent):
    return {
        "admin": admin_user,
        "technician": technician,
        "other_technician": other_technician,
        "sales_agent": sales_agent,
        "other_sales_agent": other_sales_agent,
        "anonymous": None,
    }


@pytest.fixture
def world(people):
    """A job created by ``sales_agent`` and assigned to ``technician``, with two tasks."""
    job = JobFactory(created_by=people["sales_agent"], assigned_to=people["technician"])
    t1 = JobTaskFactory(job=job, order=1)
    t2 = JobTaskFactory(job=job, order=2)
    return {"job": job, "t1": t1, "t2": t2}


def call(user, method, url, data=None):
    client = client_for(user)
    return getattr(client, method)(url, data=data, format="json")


# (method, url template, body, {persona: expected status}) ; {job}, {t1}, {t2} are filled in.
JOB_MATRIX = {
    "list": (
        "get",
        "/api/jobs/",
        None,
        dict(admin=200, technician=200, other_technician=200, sales_agent=200, other_sales_agent=200, anonymous=401),
    ),
    "retrieve": (
        "get",
        "/api/jobs/{job}/",
        None,
        dict(admin=200, technician=200, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "create": (
        "post",
        "/api/jobs/",
        {"title": "T", "client_name": "C", "scheduled_date": "2031-01-01"},
        dict(admin=201, technician=403, other_technician=403, sales_agent=201, other_sales_agent=201, anonymous=401),
    ),
    "update": (
        "patch",
        "/api/jobs/{job}/",
        {"title": "New"},
        dict(admin=200, technician=403, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "put": (
        "put",
        "/api/jobs/{job}/",
        {"title": "P", "client_name": "C", "scheduled_date": "2031-01-02"},
        dict(admin=200, technician=403, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "delete": (
        "delete",
        "/api/jobs/{job}/",
        None,
        dict(admin=204, technician=403, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
    "cancel": (
        "post",
        "/api/jobs/{job}/cancel/",
        None,
        dict(admin=200, technician=403, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    # the job has open tasks: allowed roles get the business-rule 409, the others their role/scope answer
    "complete": (
        "post",
        "/api/jobs/{job}/complete/",
        None,
        dict(admin=409, technician=409, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
    # the job is open: nothing to reopen
    "reopen": (
        "post",
        "/api/jobs/{job}/reopen/",
        None,
        dict(admin=409, technician=403, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
    "tasks": (
        "get",
        "/api/jobs/{job}/tasks/",
        None,
        dict(admin=200, technician=200, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "add_task": (
        "post",
        "/api/jobs/{job}/tasks/",
        {"title": "T3"},
        dict(admin=201, technician=403, other_technician=404, sales_agent=201, other_sales_agent=404, anonymous=401),
    ),
    "reorder": (
        "post",
        "/api/jobs/{job}/tasks/reorder/",
        {"order": ["{t2}", "{t1}"]},
        dict(admin=200, technician=403, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "task_list": (
        "get",
        "/api/tasks/",
        None,
        dict(admin=200, technician=200, other_technician=200, sales_agent=200, other_sales_agent=200, anonymous=401),
    ),
    "task_retrieve": (
        "get",
        "/api/tasks/{t1}/",
        None,
        dict(admin=200, technician=200, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "task_update": (
        "patch",
        "/api/tasks/{t1}/",
        {"title": "x"},
        dict(admin=200, technician=403, other_technician=404, sales_agent=200, other_sales_agent=404, anonymous=401),
    ),
    "task_delete": (
        "delete",
        "/api/tasks/{t2}/",
        None,
        dict(admin=204, technician=403, other_technician=404, sales_agent=204, other_sales_agent=404, anonymous=401),
    ),
    "task_start": (
        "post",
        "/api/tasks/{t1}/start/",
        None,
        dict(admin=200, technician=200, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
    "task_complete": (
        "post",
        "/api/tasks/{t1}/complete/",
        None,
        dict(admin=200, technician=200, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
    "task_complete_out_of_order": (
        "post",
        "/api/tasks/{t2}/complete/",
        None,
        dict(admin=409, technician=409, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
    "task_reopen_pending": (
        "post",
        "/api/tasks/{t1}/reopen/",
        None,
        dict(admin=409, technician=409, other_technician=404, sales_agent=403, other_sales_agent=404, anonymous=401),
    ),
}


def _fill(value, world):
    ids = {"job": world["job"].pk, "t1": world["t1"].pk, "t2": world["t2"].pk}
    if isinstance(value, str):
        filled = value.format(**ids)
        return int(filled) if value.startswith("{") and filled.isdigit() else filled
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("case", sorted(JOB_MATRIX))
def test_role_matrix(people, world, case, persona):
    method, url, body, expected = JOB_MATRIX[case]
    before = AuditEntry.objects.count()
    response = call(people[persona], method, _fill(url, world), _fill(body, world))
    assert response.status_code == expected[persona], response.content
    if response.status_code >= 400:
        assert AuditEntry.objects.count() == before, "a refused request must not write an audit entry"
    if method != "get" and response.status_code < 300:
        assert AuditEntry.objects.count() > before, "every successful write leaves an audit entry"


def test_completed_task_reopen_matrix(people, world):
    world["t1"].status = "completed"
    world["t1"].started_at = world["t1"].completed_at = timezone.now()
    world["t1"].save()
    url = f"/api/tasks/{world['t1'].pk}/reopen/"
    assert call(people["sales_agent"], "post", url).status_code == 403
    assert call(people["other_technician"], "post", url).status_code == 404
    response = call(people["technician"], "post", url)
    assert response.status_code == 200
    assert response.json()["status"] == "in_progress" and response.json()["completed_at"] is None


def test_reopen_matrix_on_cancelled_job(people, world):
    job = world["job"]
    Job.objects.filter(pk=job.pk).update(status="cancelled")
    url = f"/api/jobs/{job.pk}/reopen/"
    assert call(people["sales_agent"], "post", url).status_code == 403
    assert call(people["technician"], "post", url).status_code == 403
    assert call(people["other_sales_agent"], "post", url).status_code == 404
    response = call(people["admin"], "post", url)
    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_list_contains_exactly_the_scope(people, world):
    mine = world["job"]
    other = JobFactory(created_by=people["other_sales_agent"], assigned_to=people["other_technician"])
    unassigned = JobFactory(created_by=people["sales_agent"])
    expected = {
        "admin": {mine.pk, other.pk, unassigned.pk},
        "technician": {mine.pk},
        "other_technician": {other.pk},
        "sales_agent": {mine.pk, unassigned.pk},
        "other_sales_agent": {other.pk},
    }
    for persona, ids in expected.items():
        body = call(people[persona], "get", "/api/jobs/").json()
        assert {row["id"] for row in body["results"]} == ids, persona
        assert body["count"] == len(ids)
        tasks = call(people[persona], "get", "/api/tasks/").json()
        assert {row["job"] for row in tasks["results"]} == (ids & {mine.pk}), persona


def test_job_shapes(people, world):
    eq = EquipmentFactory()
    world["t1"].required_equipment.add(eq)
    admin = people["admin"]
    row = call(admin, "get", "/api/jobs/").json()["results"][0]
    assert set(row) == {
        "id",
        "title",
        "description",
        "client_name",
        "status",
        "priority",
        "scheduled_date",
        "overdue",
        "assigned_to",
        "created_by",
        "created_at",
        "updated_at",
        "completed_at",
        "requires_signature",
        "tasks_total",
        "tasks_completed",
    }
    assert row["tasks_total"] == 2 and row["tasks_completed"] == 0
    detail = call(admin, "get", f"/api/jobs/{world['job'].pk}/").json()
    assert [t["order"] for t in detail["tasks"]] == [1, 2]
    assert detail["tasks"][0]["required_equipment"] == [
        {"id": eq.pk, "name": eq.name, "type": eq.type, "serial_number": eq.serial_number, "is_active": True}
    ]
    task = call(admin, "get", f"/api/tasks/{world['t1'].pk}/").json()
    assert set(task) == {
        "id",
        "job",
        "order",
        "title",
        "description",
        "status",
        "required_equipment",
        "started_at",
        "completed_at",
    }


def test_create_job_as_sales_agent_ignores_read_only_fields(people, technician):
    sales = people["sales_agent"]
    body = {
        "title": "Install",
        "client_name": "ACME",
        "scheduled_date": "2031-05-01",
        "assigned_to": technician.pk,
        "priority": "high",
        "status": "completed",
        "created_by": people["admin"].pk,
        "overdue": True,
        "completed_at": "2020-01-01T00:00:00Z",
        "id": 999999,
    }
    response = call(sales, "post", "/api/jobs/", body)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "pending" and data["created_by"] == sales.pk and data["overdue"] is False
    assert data["completed_at"] is None and data["id"] != 999999 and data["tasks"] == []
    job = Job.objects.get(pk=data["id"])
    assert (job.status, job.created_by_id, job.priority) == ("pending", sales.pk, "high")


def test_patch_cannot_change_status_or_creator(people, world):
    job = world["job"]
    response = call(
        people["admin"],
        "patch",
        f"/api/jobs/{job.pk}/",
        {"status": "completed", "created_by": people["admin"].pk, "completed_at": "2020-01-01T00:00:00Z"},
    )
    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.status, job.created_by_id, job.completed_at) == ("pending", people["sales_agent"].pk, None)


def test_patch_task_cannot_change_job_status_or_order(people, world):
    other_job = JobFactory(created_by=people["sales_agent"])
    t1 = world["t1"]
    response = call(
        people["sales_agent"],
        "patch",
        f"/api/tasks/{t1.pk}/",
        {"job": other_job.pk, "status": "completed", "order": 9, "started_at": "2020-01-01T00:00:00Z"},
    )
    assert response.status_code == 200
    t1.refresh_from_db()
    assert (t1.job_id, t1.status, t1.order, t1.started_at) == (world["job"].pk, "pending", 1, None)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"client_name": "C", "scheduled_date": "2031-01-01"}, "title"),
        ({"title": "T", "client_name": "C", "scheduled_date": "not-a-date"}, "scheduled_date"),
        ({"title": "T", "client_name": "C", "scheduled_date": "2031-01-01", "priority": "whenever"}, "priority"),
        ({"title": "T", "client_name": "C", "scheduled_date": "2031-01-01", "assigned_to": "abc"}, "assigned_to"),
        ({"title": "T", "client_name": "C", "scheduled_date": "2031-01-01", "assigned_to": 99999999}, "assigned_to"),
        ({"title": ["x"], "client_name": "C", "scheduled_date": "2031-01-01"}, "title"),
        ({"title": "T" * 201, "client_name": "C", "scheduled_date": "2031-01-01"}, "title"),
    ],
)
def test_create_job_bad_input_is_400_with_field_errors(people, body, field):
    response = call(people["sales_agent"], "post", "/api/jobs/", body)
    assert response.status_code == 400
    assert field in response.json()


def test_assign_to_non_technician_is_400(people, world):
    response = call(people["admin"], "patch", f"/api/jobs/{world['job'].pk}/", {"assigned_to": people["admin"].pk})
    assert response.status_code == 400
    assert "assigned_to" in response.json()


def test_non_object_body_is_400(people):
    response = call(people["admin"], "post", "/api/jobs/", ["not", "an", "object"])
    assert response.status_code == 400


def test_conflict_body_has_detail_and_code(people, world):
    response = call(people["technician"], "post", f"/api/tasks/{world['t2'].pk}/start/")
    assert response.status_code == 409
    assert set(response.json()) >= {"detail", "code"}
    assert response.json()["code"] == "out_of_order"


def test_whole_job_flow(people, technician):
    sales, admin = people["sales_agent"], people["admin"]
    drill = EquipmentFactory(name="Drill")
    job = call(
        sales,
        "post",
        "/api/jobs/",
        {"title": "Fit kitchen", "client_name": "Smith", "scheduled_date": "2031-03-01", "assigned_to": technician.pk},
    ).json()
    url = f"/api/jobs/{job['id']}"
    first = call(sales, "post", f"{url}/tasks/", {"title": "Measure", "required_equipment": [drill.pk]}).json()
    second = call(sales, "post", f"{url}/tasks/", {"title": "Fit"}).json()
    assert (first["order"], second["order"]) == (1, 2)
    assert call(sales, "post", f"{url}/tasks/", {"title": "Dup", "order": 2}).status_code == 400
    listed = call(technician, "get", f"{url}/tasks/").json()
    assert [t["title"] for t in listed] == ["Measure", "Fit"]
    assert call(technician, "post", f"/api/tasks/{first['id']}/start/").json()["status"] == "in_progress"
    assert call(technician, "get", f"{url}/").json()["status"] == "in_progress"
    assert call(technician, "post", f"{url}/complete/").status_code == 409
    call(technician, "post", f"/api/tasks/{first['id']}/complete/")
    call(technician, "post", f"/api/tasks/{second['id']}/complete/")
    done = call(technician, "post", f"{url}/complete/")
    assert done.status_code == 200
    assert done.json()["status"] == "completed" and done.json()["tasks_completed"] == 2
    assert call(sales, "patch", f"{url}/", {"title": "late edit"}).status_code == 409
    assert call(admin, "post", f"{url}/reopen/").json()["status"] == "in_progress"


def test_reorder_bad_input(people, world):
    url = f"/api/jobs/{world['job'].pk}/tasks/reorder/"
    sales = people["sales_agent"]
    assert call(sales, "post", url, {"order": [world["t1"].pk]}).status_code == 400
    assert call(sales, "post", url, {"order": "abc"}).status_code == 400
    assert call(sales, "post", url, {}).status_code == 400
    response = call(sales, "post", url, {"order": [world["t2"].pk, world["t1"].pk]})
    assert [t["id"] for t in response.json()] == [world["t2"].pk, world["t1"].pk]
    assert [t["order"] for t in response.json()] == [1, 2]


def test_inactive_equipment_cannot_be_assigned(people, world):
    inactive = EquipmentFactory(is_active=False)
    response = call(
        people["sales_agent"],
        "post",
        f"/api/jobs/{world['job'].pk}/tasks/",
        {"title": "x", "required_equipment": [inactive.pk]},
    )
    assert response.status_code == 400
    assert "required_equipment" in response.json()


# --- filters, ordering, pagination ---------------------------------------------------------------------------------


@pytest.fixture
def many_jobs(people):
    sales, tech = people["sales_agent"], people["technician"]
    today = timezone.localdate()
    jobs = [
        JobFactory(created_by=sales, assigned_to=tech, priority="low", scheduled_date=today, title="Alpha boiler"),
        JobFactory(
            created_by=sales,
            priority="urgent",
            scheduled_date=today + datetime.timedelta(days=2),
            client_name="Zed Corp",
        ),
        JobFactory(created_by=sales, priority="high", scheduled_date=today - datetime.timedelta(days=1), overdue=True),
        JobFactory(
            created_by=sales, priority="medium", scheduled_date=today + datetime.timedelta(days=5), status="cancelled"
        ),
    ]
    return jobs


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_filters(people, many_jobs):
    admin = people["admin"]
    a, b, c, d = many_jobs
    assert ids(call(admin, "get", "/api/jobs/?status=cancelled")) == [d.pk]
    assert ids(call(admin, "get", "/api/jobs/?priority=urgent")) == [b.pk]
    assert ids(call(admin, "get", f"/api/jobs/?assigned_to={people['technician'].pk}")) == [a.pk]
    assert ids(call(admin, "get", "/api/jobs/?overdue=true")) == [c.pk]
    assert set(ids(call(admin, "get", "/api/jobs/?overdue=false"))) == {a.pk, b.pk, d.pk}
    today = timezone.localdate()
    assert ids(call(admin, "get", f"/api/jobs/?scheduled_after={today}&scheduled_before={today}")) == [a.pk]
    assert ids(call(admin, "get", "/api/jobs/?search=boiler")) == [a.pk]
    assert ids(call(admin, "get", "/api/jobs/?search=zed")) == [b.pk]
    assert ids(call(admin, "get", f"/api/jobs/?created_by={people['sales_agent'].pk}&ordering=scheduled_date")) == [
        c.pk,
        a.pk,
        b.pk,
        d.pk,
    ]


def test_default_and_priority_ordering(people, many_jobs):
    admin = people["admin"]
    a, b, c, d = many_jobs
    assert ids(call(admin, "get", "/api/jobs/")) == [c.pk, a.pk, b.pk, d.pk]
    assert ids(call(admin, "get", "/api/jobs/?ordering=priority")) == [a.pk, d.pk, c.pk, b.pk]
    assert ids(call(admin, "get", "/api/jobs/?ordering=-priority")) == [b.pk, c.pk, d.pk, a.pk]
    assert ids(call(admin, "get", "/api/jobs/?ordering=status,-scheduled_date")) == [d.pk, b.pk, a.pk, c.pk]


def test_repeated_ordering_means_the_same_as_comma_separated(people, many_jobs):
    # What a generated client sends for an array parameter (OpenAPI form style, explode): no key is dropped.
    admin = people["admin"]
    a, b, c, d = many_jobs
    assert ids(call(admin, "get", "/api/jobs/?ordering=status&ordering=-scheduled_date")) == [d.pk, b.pk, a.pk, c.pk]
    assert ids(call(admin, "get", "/api/jobs/?ordering=priority&ordering=-scheduled_date")) == [a.pk, d.pk, c.pk, b.pk]
    assert ids(call(admin, "get", "/api/jobs/?ordering=-scheduled_date&ordering=priority")) == [d.pk, b.pk, a.pk, c.pk]
    assert ids(call(admin, "get", "/api/jobs/?ordering=status,-priority&ordering=created_at")) == ids(
        call(admin, "get", "/api/jobs/?ordering=status,-priority,created_at")
    )
    response = call(admin, "get", "/api/jobs/?ordering=status&ordering=title")
    assert response.status_code == 400 and "ordering" in response.json()


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=bogus", "status"),
        ("priority=1", "priority"),
        ("overdue=maybe", "overdue"),
        ("scheduled_after=yesterday", "scheduled_after"),
        ("assigned_to=abc", "assigned_to"),
        ("assigned_to=-1", "assigned_to"),
        ("assigned_to=99999999999999999999999", "assigned_to"),
        ("ordering=title", "ordering"),
        ("page=abc", "page"),
        ("page=0", "page"),
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=-5", "page_size"),
    ],
)
def test_bad_query_parameters_are_400(people, many_jobs, query, field):
    response = call(people["admin"], "get", f"/api/jobs/?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_task_list_bad_filters_are_400(people, world):
    assert call(people["admin"], "get", "/api/tasks/?status=nope").status_code == 400
    assert call(people["admin"], "get", "/api/tasks/?job=x").status_code == 400
    assert ids(call(people["admin"], "get", f"/api/tasks/?job={world['job'].pk}&status=pending")) == [
        world["t1"].pk,
        world["t2"].pk,
    ]


def test_pagination(people, many_jobs):
    admin = people["admin"]
    page1 = call(admin, "get", "/api/jobs/?page_size=3").json()
    assert page1["count"] == 4 and len(page1["results"]) == 3 and page1["next"] and page1["previous"] is None
    page2 = call(admin, "get", "/api/jobs/?page_size=3&page=2").json()
    assert len(page2["results"]) == 1 and page2["next"] is None
    assert call(admin, "get", "/api/jobs/?page_size=3&page=3").status_code == 404
    JobFactory.create_batch(110, created_by=people["sales_agent"])
    clamped = call(admin, "get", "/api/jobs/?page_size=1000").json()
    assert len(clamped["results"]) == 100


# --- query budgets -------------------------------------------------------------------------------------------------


def _queries(user, url):
    client = client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


@pytest.fixture
def big_world(people):
    sales, tech = people["sales_agent"], people["technician"]
    equipment = EquipmentFactory.create_batch(3)
    jobs = JobFactory.create_batch(60, created_by=sales, assigned_to=tech)
    for job in jobs:
        for order in (1, 2, 3):
            task = JobTaskFactory(job=job, order=order)
            task.required_equipment.set(equipment[:order])
    return jobs


@pytest.mark.parametrize("persona", ["admin", "technician", "sales_agent"])
def test_list_query_count_is_constant(people, big_world, persona, django_assert_num_queries):
    user = people[persona]
    counts = {size: _queries(user, f"/api/jobs/?page_size={size}") for size in (1, 10, 50)}
    assert len(set(counts.values())) == 1, counts
    # auth user, the ETag (jobs.etags), then the count and the page in one statement (jobops.jsonshape)
    with django_assert_num_queries(3):
        client_for(user).get("/api/jobs/?page_size=50")
    task_counts = {size: _queries(user, f"/api/tasks/?page_size={size}") for size in (1, 10, 50)}
    assert len(set(task_counts.values())) == 1, task_counts
    # auth, the ETag, then one statement: count, page and each task's equipment
    with django_assert_num_queries(3):
        client_for(user).get("/api/tasks/?page_size=50")


def test_detail_and_task_list_query_count_independent_of_task_count(people, django_assert_num_queries):
    sales, tech = people["sales_agent"], people["technician"]
    small = JobFactory(created_by=sales, assigned_to=tech)
    JobTaskFactory(job=small, order=1)
    large = JobFactory(created_by=sales, assigned_to=tech)
    eq = EquipmentFactory.create_batch(4)
    for order in range(1, 41):
        JobTaskFactory(job=large, order=order).required_equipment.set(eq)
    # auth, the ETag, then one statement: the job, its tasks and their equipment (jobops.jsonshape)
    expected = 3
    for job in (small, large):
        with django_assert_num_queries(expected):
            assert client_for(tech).get(f"/api/jobs/{job.pk}/").status_code == 200
        with django_assert_num_queries(expected):
            assert client_for(tech).get(f"/api/jobs/{job.pk}/tasks/").status_code == 200


def test_user_without_a_known_role_sees_nothing(world):
    odd = UserFactory(role="technician")
    type(odd).objects.filter(pk=odd.pk).update(role="retired")
    assert call(odd, "get", "/api/jobs/").status_code == 403
    assert JobTask.objects.count() == 2


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York"])
def test_datetimes_render_in_utc_whatever_the_time_zone(people, big_world, settings, tz):
    """TIME_ZONE decides what "today" is, never how a datetime is written: the database-rendered list and the read
    serializer both write UTC with a Z."""
    from jobs.selectors import job_scope
    from jobs.serializers import JobReadSerializer

    settings.TIME_ZONE = tz
    job = big_world[0]
    Job.objects.filter(pk=job.pk).update(completed_at=timezone.now(), status="completed")
    admin = people["admin"]
    fast = call(admin, "get", "/api/jobs/?page_size=100").json()["results"]
    slow = JobReadSerializer(job_scope(user=admin)[:100], many=True).data
    assert fast == [dict(row) for row in slow]
    assert list(fast[0]) == list(slow[0])
    completed = next(row for row in fast if row["id"] == job.pk)
    assert completed["completed_at"].endswith("Z") and completed["created_at"].endswith("Z")


@pytest.mark.parametrize(
    "url, body, field",
    [
        ("/api/jobs/", {"title": "T", "client_name": 0, "scheduled_date": "2031-01-01"}, "client_name"),
        ("/api/jobs/", {"title": True, "client_name": "C", "scheduled_date": "2031-01-01"}, "title"),
        (
            "/api/jobs/",
            {"title": "T", "client_name": "C", "scheduled_date": "2031-01-01", "assigned_to": "1"},
            "assigned_to",
        ),
        ("/api/jobs/{job}/tasks/", {"title": "x", "required_equipment": {}}, "required_equipment"),
        ("/api/jobs/{job}/tasks/", {"title": "x", "required_equipment": ["1"]}, "required_equipment"),
        ("/api/jobs/{job}/tasks/", {"title": "x", "order": "2"}, "order"),
        ("/api/jobs/{job}/tasks/", {"title": "x", "order": 2.5}, "order"),
        ("/api/jobs/{job}/tasks/reorder/", {"order": ["1"]}, "order"),
    ],
)
def test_wrong_json_types_are_400(people, world, url, body, field):
    """The schema says string/integer/array: a value of another JSON type is rejected, never coerced."""
    response = call(people["admin"], "post", url.format(job=world["job"].pk), body)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_assignee_errors_do_not_reveal_other_users(people):
    """Missing id, admin, sales agent or inactive technician: one and the same answer."""
    inactive = UserFactory(role="technician", is_active=False)
    answers = []
    for candidate in (99999999, people["admin"].pk, people["other_sales_agent"].pk, inactive.pk):
        response = call(
            people["sales_agent"],
            "post",
            "/api/jobs/",
            {"title": "T", "client_name": "C", "scheduled_date": "2031-01-01", "assigned_to": candidate},
        )
        assert response.status_code == 400
        answers.append(response.json())
    assert all(answer == {"assigned_to": ["Must be an active technician."]} for answer in answers), answers


def test_list_parameters_do_not_affect_detail_urls(people, world):
    job = world["job"]
    assert call(people["admin"], "get", f"/api/jobs/{job.pk}/?ordering=bogus&status=completed").status_code == 200
    response = call(people["sales_agent"], "post", f"/api/jobs/{job.pk}/cancel/?status=completed")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert call(people["admin"], "get", f"/api/tasks/{world['t1'].pk}/?status=completed").status_code == 200
