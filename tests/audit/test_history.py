"""GET /api/jobs/{id}/history/: the job's entries and its tasks', for anyone who can see the job (else 404)."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import JobFactory, JobTaskFactory

from .conftest import T0

pytestmark = pytest.mark.django_db


def url(job_id):
    return f"/api/jobs/{job_id}/history/"


@pytest.fixture
def history(job, make_entry, sales_agent, technician):
    """Entries of ``job`` (its own and its task's) plus one of another job and one without a job."""
    task = JobTaskFactory(job=job)
    other = JobFactory(created_by=sales_agent)
    own = [
        make_entry(actor=sales_agent, action="job.created", obj=job, job_id=job.pk, at=T0),
        make_entry(
            actor=sales_agent, action="task.created", obj=task, job_id=job.pk, at=T0 + datetime.timedelta(minutes=1)
        ),
        make_entry(
            actor=technician, action="task.started", obj=task, job_id=job.pk, at=T0 + datetime.timedelta(minutes=2)
        ),
    ]
    make_entry(actor=sales_agent, action="job.created", obj=other, job_id=other.pk, at=T0)
    make_entry(actor=None, action="user.created", object_type="user", object_id=99, at=T0)
    # An outbox entry carries the job id but names a recipient's address: never part of the job's history.
    make_entry(
        actor=None,
        action="notification.retried",
        object_type="notification",
        object_id=7,
        object_repr="job_assigned to tech@example.com",
        job_id=job.pk,
        at=T0 + datetime.timedelta(minutes=3),
    )
    return own


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("admin_user", 200),
        ("technician", 200),  # assigned
        ("sales_agent", 200),  # creator
        ("other_technician", 404),
        ("other_sales_agent", 404),
        (None, 401),
    ],
)
def test_history_is_scoped_like_the_job(request, api_client, job, history, persona, status):
    user = request.getfixturevalue(persona) if persona else None
    response = api_client(user).get(url(job.pk))
    assert response.status_code == status, response.content
    if status == 200:
        assert [row["id"] for row in response.json()["results"]] == [e.pk for e in reversed(history)]


def test_history_has_the_job_and_its_tasks_entries_newest_first(api_client, admin_user, job, history):
    body = api_client(admin_user).get(url(job.pk)).json()
    assert body["count"] == 3
    rows = body["results"]
    assert [row["action"] for row in rows] == ["task.started", "task.created", "job.created"]
    assert {row["job"] for row in rows} == {job.pk}
    assert rows[0]["object_type"] == "jobtask" and rows[2]["object_type"] == "job"
    assert set(rows[0]) >= {"id", "at", "actor", "actor_label", "changes", "request_id", "source"}


def test_history_of_a_missing_job_is_404(api_client, admin_user):
    assert api_client(admin_user).get(url(987654)).status_code == 404
    assert api_client(admin_user).get(url(2**70)).status_code == 404
    assert api_client(admin_user).get("/api/jobs/abc/history/").status_code == 404


def test_history_survives_the_deletion_of_a_task(api_client, sales_agent, job, history):
    # Entries hold plain ids: the task can go and its entries stay in the job's history.
    job.tasks.all().delete()
    assert api_client(sales_agent).get(url(job.pk)).json()["count"] == 3


def test_history_is_paginated(api_client, technician, job, history):
    client = api_client(technician)
    first = client.get(url(job.pk) + "?page_size=2").json()
    assert [row["action"] for row in first["results"]] == ["task.started", "task.created"]
    assert first["next"]
    second = client.get(first["next"]).json()
    assert [row["action"] for row in second["results"]] == ["job.created"]
    assert client.get(url(job.pk) + "?page=5").status_code == 404
    assert client.get(url(job.pk) + "?page_size=x").status_code == 400


def test_history_query_count_does_not_grow_with_the_page_size(api_client, technician, job, make_entry):
    for i in range(40):
        make_entry(action="job.updated", obj=job, job_id=job.pk, at=T0 + datetime.timedelta(minutes=i))
    client = api_client(technician)
    counts = []
    for size in (1, 10, 40):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url(job.pk) + f"?page_size={size}")
        assert len(response.json()["results"]) == size
        counts.append(len(queries))
    assert len(set(counts)) == 1, counts
    assert counts[0] <= 4  # the user, the job (scope check), the count, the page
