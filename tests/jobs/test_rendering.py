"""Jobs and tasks are rendered by the database from their read serializers (``jobops.jsonshape``). Whatever the role,
filters, ordering or page, and on SQLite as on PostgreSQL, the body must be exactly what the serializers render:
each case is requested twice, rendered by the database and then by the serializers (the view's rendering methods
swapped for serializer-based ones), and the two responses compared whole."""

from __future__ import annotations

import datetime
import itertools

import pytest
import time_machine
from django.utils import timezone
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from jobops.api import ScopedViewSet
from jobs import dashboard
from jobs.models import Job, JobTask
from tests.builders import at, make_job, make_task
from tests.conftest import client_for
from tests.factories import EquipmentFactory

pytestmark = pytest.mark.django_db

P, IP, C = JobTask.Status.PENDING, JobTask.Status.IN_PROGRESS, JobTask.Status.COMPLETED
OPEN = (Job.Status.PENDING, Job.Status.IN_PROGRESS)


def serializer_page(self, queryset, serializer_class):
    page = self.paginate_queryset(queryset)
    return self.get_paginated_response(serializer_class(page, many=True).data)


def serializer_object(self, serializer_class, *, queryset=None, pk=None, relation=None, status_code=200):
    queryset = self.get_queryset() if queryset is None else queryset
    obj = get_object_or_404(queryset, pk=self.kwargs["pk"] if pk is None else pk)
    self.check_object_permissions(self.request, obj)
    if relation is not None:  # the array of the object's related rows (a job's tasks)
        return Response(serializer_class(getattr(obj, relation).all(), many=True).data, status=status_code)
    return Response(serializer_class(obj).data, status=status_code)


def serializer_days(tasks, *, today):
    tasks = tasks.annotate(**dashboard.dashboard_annotations(today=today)).select_related("job")
    return [
        dashboard.DashboardDaySerializer({"date": date, "tasks": list(group)}).data
        for date, group in itertools.groupby(tasks, key=lambda task: task.job.scheduled_date)
    ]


def both(monkeypatch, user, url):
    """The response to ``url`` rendered by the database, then by the serializers."""
    client = client_for(user)
    database = client.get(url)
    with monkeypatch.context() as patch:
        patch.setattr(ScopedViewSet, "rendered_page", serializer_page)
        patch.setattr(ScopedViewSet, "rendered_object", serializer_object)
        patch.setattr(dashboard, "dashboard_days", serializer_days)
        python = client.get(url)
    assert database.status_code == python.status_code, (database.content, python.content)
    return database, python


@pytest.fixture
def jobs_world(technician, other_technician, sales_agent, other_sales_agent):
    """Jobs in every status, priority and owner, with tasks in every status and timestamps with and without
    microseconds, and text that JSON must escape."""
    equipment = EquipmentFactory.create_batch(2)
    start = datetime.date(2026, 3, 1)
    owners = [(sales_agent, technician), (other_sales_agent, other_technician), (sales_agent, None)]
    jobs = []
    for n in range(23):
        creator, assignee = owners[n % 3]
        job = make_job(
            title=f'Job {n} "quoted" \\ back\tslash é ✓' if n % 5 == 0 else f"Job {n}",
            description="line one\nline two\u2028" if n % 4 == 0 else "",
            client_name=f"Client {n % 4}",
            scheduled=start + datetime.timedelta(days=n % 6),
            priority=list(Job.Priority)[n % 4],
            status=list(Job.Status)[n % 4],
            overdue=n % 7 == 0 and list(Job.Status)[n % 4] in OPEN,
            created_by=creator,
            technician=assignee,
        )
        jobs.append(job)
        # Created last-first, so task ids do not follow their order.
        for order, status in reversed(list(enumerate([C, IP, P][: n % 4], start=1))):
            make_task(job, order, status, equipment=equipment[::-1][: order % 3])
    whole_second = at("2026-03-04 08:00:00")
    Job.objects.filter(pk=jobs[1].pk).update(completed_at=whole_second, updated_at=whole_second)
    Job.objects.filter(pk=jobs[2].pk).update(completed_at=whole_second.replace(microsecond=120))
    return jobs


JOB_QUERIES = [
    "",
    "?page_size=5",
    "?page=2&page_size=5",
    "?page=3&page_size=5",
    "?page_size=100",
    "?ordering=-priority",
    "?ordering=priority,-scheduled_date",
    "?ordering=status&page=2&page_size=4",
    "?ordering=-created_at",
    "?status=pending",
    "?status=completed&priority=high",
    "?overdue=true",
    "?overdue=false&ordering=-scheduled_date",
    "?search=quoted",
    "?search=nothing-matches-this",
    "?scheduled_after=2026-03-03&scheduled_before=2026-03-04",
    "?assigned_to=999999",
]


@pytest.mark.parametrize("query", JOB_QUERIES)
@pytest.mark.parametrize("persona", ["admin_user", "technician", "sales_agent"])
def test_job_list_bodies_are_equal(request, monkeypatch, jobs_world, persona, query):
    user = request.getfixturevalue(persona)
    database, python = both(monkeypatch, user, "/api/jobs/" + query)
    assert database.json() == python.json()
    if persona == "admin_user":
        assert database.status_code == 200  # the admin sees all 23 jobs: every query above has a page 1..3
    body = database.json()
    if body.get("results"):
        # same keys in the same order (the bench and the docs compare ordered bodies)
        assert list(body["results"][0]) == list(python.json()["results"][0])


@pytest.mark.parametrize("query", ["?page=9", "?page=2&page_size=100", "?page=9223372036854775807"])
def test_a_page_past_the_end_is_404_on_both(monkeypatch, jobs_world, admin_user, query):
    database, python = both(monkeypatch, admin_user, "/api/jobs/" + query)
    assert database.status_code == 404
    assert database.json() == python.json()


@pytest.mark.parametrize(
    "query",
    ["?page=0", "?page=x", "?page_size=-1", "?status=bogus", "?status=bogus&page=x", "?ordering=nope&page_size=0"],
)
def test_bad_parameters_are_the_same_400_on_both(monkeypatch, jobs_world, technician, query):
    database, python = both(monkeypatch, technician, "/api/jobs/" + query)
    assert database.status_code == 400
    assert database.json() == python.json()


def test_an_empty_list_is_page_one_with_count_zero(monkeypatch, technician):
    database, python = both(monkeypatch, technician, "/api/jobs/")
    assert database.json() == python.json() == {"count": 0, "next": None, "previous": None, "results": []}


TASK_QUERIES = [
    "",
    "?page_size=4",
    "?page=2&page_size=4",
    "?page_size=100",
    "?status=completed",
    "?status=pending&page_size=3",
    "?scheduled_after=2026-03-03",
    "?scheduled_before=2026-03-02&status=in_progress",
    "?job=999999",
    "?page=99",
    "?page=x",
    "?status=bogus",
]


@pytest.mark.parametrize("query", TASK_QUERIES)
@pytest.mark.parametrize("persona", ["admin_user", "technician", "sales_agent"])
def test_task_list_bodies_are_equal(request, monkeypatch, jobs_world, persona, query):
    user = request.getfixturevalue(persona)
    database, python = both(monkeypatch, user, "/api/tasks/" + query)
    assert database.json() == python.json()
    if persona == "admin_user" and query in ("", "?page_size=100"):
        assert database.status_code == 200 and database.json()["results"]


def test_task_list_filtered_by_job_is_equal(monkeypatch, jobs_world, sales_agent):
    job = next(job for job in jobs_world if job.created_by_id == sales_agent.pk and job.tasks.count() > 1)
    database, python = both(monkeypatch, sales_agent, f"/api/tasks/?job={job.pk}")
    assert database.json() == python.json()
    assert [task["order"] for task in database.json()["results"]] == list(range(1, job.tasks.count() + 1))


@pytest.mark.parametrize("suffix", ["", "tasks/"])
@pytest.mark.parametrize("persona", ["admin_user", "technician", "sales_agent"])
def test_job_detail_and_task_list_bodies_are_equal(request, monkeypatch, jobs_world, persona, suffix):
    """Every job of the world as each role: in scope the same body (tasks in order, equipment by id), out of scope
    the same 404."""
    user = request.getfixturevalue(persona)
    seen = 0
    for job in jobs_world:
        database, python = both(monkeypatch, user, f"/api/jobs/{job.pk}/{suffix}")
        assert database.json() == python.json()
        seen += database.status_code == 200
    assert 0 < seen <= len(jobs_world)


@pytest.mark.parametrize("path", ["-1/", "0/", "abc/", f"{2**63}/", "99999999999999999999/", "1.5/", "-1/tasks/"])
def test_bad_job_ids_are_the_same_404(monkeypatch, jobs_world, admin_user, path):
    database, python = both(monkeypatch, admin_user, "/api/jobs/" + path)
    assert database.status_code == 404
    assert database.json() == python.json()


def test_job_detail_and_tasks_are_one_statement_besides_the_user(jobs_world, technician, django_assert_num_queries):
    job = next(job for job in jobs_world if job.assigned_to_id == technician.pk)
    for suffix in ("", "tasks/"):
        with django_assert_num_queries(3):  # the user, the ETag (jobs.etags), the body
            assert client_for(technician).get(f"/api/jobs/{job.pk}/{suffix}").status_code == 200


def test_task_list_is_one_statement_besides_the_user(jobs_world, admin_user, django_assert_num_queries):
    with django_assert_num_queries(3):  # the user, the ETag, the page
        assert client_for(admin_user).get("/api/tasks/?page_size=100").status_code == 200


def test_job_list_is_one_statement_besides_the_user(jobs_world, admin_user, django_assert_num_queries):
    with django_assert_num_queries(3):  # the user row, the ETag, then count and page together
        response = client_for(admin_user).get("/api/jobs/?page_size=100")
    assert response.json()["count"] == len(jobs_world)


@pytest.fixture
def day_world(technician, other_technician):
    """Open and closed jobs around 2025-06-10, overdue ones (flagged and not), equipment, started tasks."""
    today = datetime.date(2025, 6, 10)
    equipment = [EquipmentFactory(), EquipmentFactory(is_active=False), EquipmentFactory()]
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        for n in range(14):
            job = make_job(
                scheduled=today + datetime.timedelta(days=n % 9 - 3),
                technician=technician if n % 4 else other_technician,
                status=[Job.Status.PENDING, Job.Status.IN_PROGRESS, Job.Status.COMPLETED][n % 3],
                overdue=n % 5 == 0 and n % 3 != 2,
                title=f'Day job {n} "x"',
            )
            for order, status in enumerate([C, IP, P, P][: 1 + n % 4], start=1):
                started = timezone.now() - datetime.timedelta(hours=order, microseconds=n) if status != P else None
                make_task(job, order, status, started_at=started, equipment=equipment[: (n + order) % 4])
        yield today


@pytest.mark.parametrize("query", ["", "?days=1", "?days=90"])
@pytest.mark.parametrize("persona", ["technician", "admin_user"])
def test_day_view_bodies_are_equal(request, monkeypatch, day_world, persona, query):
    user = request.getfixturevalue(persona)
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        database, python = both(monkeypatch, user, "/api/dashboard/technician/" + query)
    assert database.status_code == 200
    assert database.json() == python.json()
    assert database.json(), "the world has open tasks in the window"


def test_day_view_for_a_named_technician_is_equal(monkeypatch, day_world, admin_user, other_technician):
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        database, python = both(monkeypatch, admin_user, f"/api/dashboard/technician/?technician={other_technician.pk}")
    assert database.json() == python.json()
