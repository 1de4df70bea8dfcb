"""Every report costs the same, exact number of queries with 10 tasks and with 1,000 (bulk-created data)."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobTask
from tests.builders import D, at
from tests.conftest import client_for
from tests.factories import EquipmentFactory

pytestmark = pytest.mark.django_db

TODAY = D(2025, 6, 10)
TASKS_PER_JOB = 5


@pytest.fixture
def frozen():
    with time_machine.travel(at("2025-06-10 12:00"), tick=False):
        yield


def build(n_tasks, *, technicians, creator, equipment):
    """``n_tasks`` tasks in jobs of five, spread over -5..+9 days, in every status, each with two equipment items."""
    jobs = []
    for i in range(n_tasks // TASKS_PER_JOB):
        status = [Job.Status.COMPLETED, Job.Status.IN_PROGRESS, Job.Status.PENDING, Job.Status.IN_PROGRESS][i % 4]
        scheduled = TODAY + datetime.timedelta(days=i % 15 - 5)
        jobs.append(
            Job(
                title=f"Bulk {i}",
                client_name="Client",
                status=status,
                scheduled_date=scheduled,
                overdue=status != Job.Status.COMPLETED and scheduled < TODAY,
                assigned_to=technicians[i % len(technicians)],
                created_by=creator,
                completed_at=at("2025-06-09 10:00") if status == Job.Status.COMPLETED else None,
            )
        )
    jobs = Job.objects.bulk_create(jobs)
    tasks = []
    for job in jobs:
        done = (
            TASKS_PER_JOB if job.status == Job.Status.COMPLETED else (2 if job.status == Job.Status.IN_PROGRESS else 0)
        )
        for order in range(1, TASKS_PER_JOB + 1):
            finished = order <= done
            tasks.append(
                JobTask(
                    job=job,
                    order=order,
                    title=f"T{order}",
                    status=JobTask.Status.COMPLETED if finished else JobTask.Status.PENDING,
                    started_at=at("2025-06-08 10:00") if finished else None,
                    completed_at=at("2025-06-08 10:00") + datetime.timedelta(minutes=order) if finished else None,
                )
            )
    tasks = JobTask.objects.bulk_create(tasks)
    through = JobTask.required_equipment.through
    through.objects.bulk_create(
        [
            through(jobtask_id=task.pk, equipment_id=equipment[(k + offset) % len(equipment)].pk)
            for k, task in enumerate(tasks)
            for offset in (0, 1)
        ]
    )
    assert len(tasks) == n_tasks


def count_queries(user, path):
    client = client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), response.json()


def measure(people, equipment):
    admin, tech = people
    return {
        "dashboard (technician)": count_queries(tech, "/api/dashboard/technician/?days=90"),
        "dashboard (admin, all)": count_queries(admin, "/api/dashboard/technician/?days=90"),
        "dashboard (admin, ?technician=)": count_queries(admin, f"/api/dashboard/technician/?technician={tech.pk}"),
        "analytics": count_queries(admin, "/api/analytics/"),
        "analytics (range)": count_queries(admin, "/api/analytics/?from=2025-06-01&to=2025-06-30"),
        "usage": count_queries(admin, f"/api/equipment/{equipment[0].pk}/usage/"),
    }


def expected_counts():
    # auth (the user row) + the report's own queries
    analytics = 1 + (5 if connection.vendor == "postgresql" else 7)  # SQLite: +1 query per percentile
    return {
        "dashboard (technician)": 3,  # auth + the ETag (jobs.etags) + tasks/jobs/equipment in one query
        "dashboard (admin, all)": 3,
        "dashboard (admin, ?technician=)": 4,  # + does that technician exist
        "analytics": analytics,
        "analytics (range)": analytics,
        "usage": 3,  # auth + equipment with its aggregates + upcoming tasks
    }


def test_query_counts_do_not_grow_with_data(frozen, admin_user, technician, other_technician, sales_agent):
    equipment = EquipmentFactory.create_batch(4)
    people = (admin_user, technician)
    build(10, technicians=[technician, other_technician], creator=sales_agent, equipment=equipment)
    small = measure(people, equipment)
    build(990, technicians=[technician, other_technician], creator=sales_agent, equipment=equipment)
    large = measure(people, equipment)
    assert {name: n for name, (n, _) in small.items()} == expected_counts()
    assert {name: n for name, (n, _) in large.items()} == expected_counts()
    # the large data set really is larger in every report
    tasks = lambda body: sum(len(day["tasks"]) for day in body)  # noqa: E731
    assert tasks(large["dashboard (admin, all)"][1]) > 10 * tasks(small["dashboard (admin, all)"][1]) > 0
    assert (
        large["analytics"][1]["task_duration_seconds"]["count"]
        > small["analytics"][1]["task_duration_seconds"]["count"]
    )
    assert large["usage"][1]["tasks_count"] > 10 * small["usage"][1]["tasks_count"] > 0
