"""Every jobs service writes exactly one audit entry per change, with the right action, committed with the change.

Each case runs one service through its public signature on a job set up so that only the change under test
happens (for instance, starting a task of a job that is already in progress, so ``job.started`` is not also due).
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from audit.models import AuditEntry
from jobops.exceptions import OpenTasks
from jobs import services
from jobs.models import Job, JobTask
from tests.factories import EquipmentFactory, JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db

DONE = JobTask.Status.COMPLETED


def _task(job, order, status=JobTask.Status.PENDING):
    now = timezone.now()
    return JobTaskFactory(
        job=job,
        order=order,
        status=status,
        started_at=now if status != JobTask.Status.PENDING else None,
        completed_at=now if status == DONE else None,
    )


def _case_job_create(ctx):
    data = {"title": "New", "client_name": "ACME", "scheduled_date": ctx["job"].scheduled_date}
    job = services.job_create(actor=ctx["sales"], data=data)
    return job.pk, "job.created", job.pk


def _case_job_update(ctx):
    services.job_update(actor=ctx["sales"], job_id=ctx["job"].pk, data={"title": "Renamed", "priority": "high"})
    return ctx["job"].pk, "job.updated", ctx["job"].pk


def _case_job_assign(ctx):
    other = UserFactory(role="technician")
    services.job_update(actor=ctx["sales"], job_id=ctx["job"].pk, data={"assigned_to": other})
    return ctx["job"].pk, "job.assigned", ctx["job"].pk


def _case_job_delete(ctx):
    services.job_delete(actor=ctx["admin"], job_id=ctx["job"].pk)
    return ctx["job"].pk, "job.deleted", ctx["job"].pk


def _case_job_cancel(ctx):
    services.job_cancel(actor=ctx["sales"], job_id=ctx["job"].pk)
    return ctx["job"].pk, "job.cancelled", ctx["job"].pk


def _case_job_complete(ctx):
    services.job_complete(actor=ctx["tech"], job_id=ctx["job"].pk)
    return ctx["job"].pk, "job.completed", ctx["job"].pk


def _case_job_reopen(ctx):
    Job.objects.filter(pk=ctx["job"].pk).update(status=Job.Status.COMPLETED, completed_at=timezone.now())
    services.job_reopen(actor=ctx["admin"], job_id=ctx["job"].pk)
    return ctx["job"].pk, "job.reopened", ctx["job"].pk


def _case_task_add(ctx):
    task = services.task_add(
        actor=ctx["sales"], job_id=ctx["job"].pk, data={"title": "Step", "required_equipment": [EquipmentFactory()]}
    )
    return ctx["job"].pk, "task.created", task.pk


def _case_task_update(ctx):
    task = _task(ctx["job"], 1)
    services.task_update(
        actor=ctx["sales"], task_id=task.pk, data={"title": "Other", "required_equipment": [EquipmentFactory()]}
    )
    return ctx["job"].pk, "task.updated", task.pk


def _case_task_delete(ctx):
    task = _task(ctx["job"], 1)
    services.task_delete(actor=ctx["sales"], task_id=task.pk)
    return ctx["job"].pk, "task.deleted", task.pk


def _in_progress(ctx):
    Job.objects.filter(pk=ctx["job"].pk).update(status=Job.Status.IN_PROGRESS)


def _case_task_start(ctx):
    _in_progress(ctx)
    _task(ctx["job"], 1, DONE)
    task = _task(ctx["job"], 2)
    services.task_start(actor=ctx["tech"], task_id=task.pk)
    return ctx["job"].pk, "task.started", task.pk


def _case_task_complete(ctx):
    _in_progress(ctx)
    task = _task(ctx["job"], 1, JobTask.Status.IN_PROGRESS)
    services.task_complete(actor=ctx["tech"], task_id=task.pk)
    return ctx["job"].pk, "task.completed", task.pk


def _case_task_reopen(ctx):
    _in_progress(ctx)
    task = _task(ctx["job"], 1, DONE)
    services.task_reopen(actor=ctx["tech"], task_id=task.pk)
    return ctx["job"].pk, "task.reopened", task.pk


CASES = [
    _case_job_create,
    _case_job_update,
    _case_job_assign,
    _case_job_delete,
    _case_job_cancel,
    _case_job_complete,
    _case_job_reopen,
    _case_task_add,
    _case_task_update,
    _case_task_delete,
    _case_task_start,
    _case_task_complete,
    _case_task_reopen,
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__.removeprefix("_case_"))
def test_each_jobs_service_writes_exactly_one_entry(case, admin_user, sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    ctx = {"admin": admin_user, "sales": sales_agent, "tech": technician, "job": job}
    before = set(AuditEntry.objects.values_list("pk", flat=True))
    job_id, action, object_id = case(ctx)
    new = AuditEntry.objects.exclude(pk__in=before)
    assert [(e.action, e.object_id, e.job_id) for e in new] == [(action, object_id, job_id)]
    entry = new.get()
    assert entry.actor_id is not None and entry.actor_label
    assert entry.changes, "an entry records what changed"
    assert "password" not in str(entry.changes)


def test_reorder_writes_one_entry_per_moved_task_in_bulk(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    first, second, third = _task(job, 1), _task(job, 2), _task(job, 3)
    services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[first.pk, third.pk, second.pk])
    entries = AuditEntry.objects.filter(action="task.reordered").order_by("object_id")
    assert [(e.object_id, e.changes["order"]) for e in entries] == [(second.pk, [2, 3]), (third.pk, [3, 2])]
    assert {e.job_id for e in entries} == {job.pk}


def test_a_refused_change_writes_nothing(sales_agent, technician, other_sales_agent):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    _task(job, 1)
    with pytest.raises(PermissionDenied):
        services.job_update(actor=other_sales_agent, job_id=job.pk, data={"title": "Hijack"})
    with pytest.raises(OpenTasks):
        services.job_complete(actor=technician, job_id=job.pk)
    assert not AuditEntry.objects.exists()
