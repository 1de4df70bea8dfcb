"""Job and task services: transitions, ordering rules, frozen jobs, overdue, audit rows, role rules."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from audit.models import AuditEntry
from jobops.exceptions import InvalidTransition, JobFrozen, OpenTasks, OutOfOrder
from jobs import services
from jobs.models import Job, JobTask
from tests.factories import EquipmentFactory, JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def make_job(creator, technician, n_tasks=3, **kwargs):
    job = JobFactory(created_by=creator, assigned_to=technician, **kwargs)
    tasks = [JobTaskFactory(job=job, order=i) for i in range(1, n_tasks + 1)]
    return job, tasks


def statuses(job):
    return list(job.tasks.order_by("order").values_list("status", flat=True))


def test_job_create_sets_creator_pending_and_audits(sales_agent, technician):
    job = services.job_create(
        actor=sales_agent,
        data={
            "title": "Boiler",
            "client_name": "ACME",
            "scheduled_date": datetime.date(2030, 1, 1),
            "assigned_to": technician,
        },
    )
    assert job.created_by == sales_agent
    assert job.status == Job.Status.PENDING
    assert job.overdue is False
    entry = AuditEntry.objects.get(action="job.created")
    assert entry.actor_id == sales_agent.pk and entry.actor_label == sales_agent.username
    assert entry.job_id == job.pk and entry.object_id == job.pk and entry.object_type == "job"
    assert entry.changes["title"] == [None, "Boiler"]
    assert entry.changes["assigned_to"] == [None, technician.pk]


def test_job_create_in_the_past_is_overdue_at_once(sales_agent):
    job = services.job_create(
        actor=sales_agent,
        data={
            "title": "Late",
            "client_name": "ACME",
            "scheduled_date": timezone.localdate() - datetime.timedelta(days=1),
        },
    )
    assert job.overdue is True


@pytest.mark.parametrize("kind", ["sales", "inactive", "admin"])
def test_job_assignee_must_be_active_technician(sales_agent, admin_user, kind):
    assignee = {
        "sales": lambda: UserFactory(role="sales_agent"),
        "inactive": lambda: UserFactory(role="technician", is_active=False),
        "admin": lambda: admin_user,
    }[kind]()
    with pytest.raises(ValidationError) as err:
        services.job_create(
            actor=sales_agent,
            data={
                "title": "x",
                "client_name": "c",
                "scheduled_date": datetime.date(2030, 1, 1),
                "assigned_to": assignee,
            },
        )
    assert "assigned_to" in err.value.message_dict
    assert not Job.objects.exists()
    assert not AuditEntry.objects.exists()


def test_job_update_records_updated_and_assigned_separately(sales_agent, technician, other_technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician, title="Old")
    services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "New", "assigned_to": other_technician})
    job.refresh_from_db()
    assert job.title == "New" and job.assigned_to == other_technician
    updated = AuditEntry.objects.get(action="job.updated")
    assert updated.changes == {"title": ["Old", "New"]}
    assigned = AuditEntry.objects.get(action="job.assigned")
    assert assigned.changes == {"assigned_to": [technician.pk, other_technician.pk]}


def test_job_update_with_no_change_writes_nothing(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician, title="Same")
    services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "Same"})
    assert not AuditEntry.objects.exists()


def test_job_update_keeps_existing_assignee_even_if_now_inactive(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    technician.is_active = False
    technician.save()
    services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "t2", "assigned_to": technician})
    job.refresh_from_db()
    assert job.title == "t2"


def test_rescheduling_sets_and_clears_overdue(sales_agent):
    job = JobFactory(created_by=sales_agent)
    yesterday = timezone.localdate() - datetime.timedelta(days=1)
    services.job_update(actor=sales_agent, job_id=job.pk, data={"scheduled_date": yesterday})
    job.refresh_from_db()
    assert job.overdue is True
    services.job_update(actor=sales_agent, job_id=job.pk, data={"scheduled_date": timezone.localdate()})
    job.refresh_from_db()
    assert job.overdue is False
    changes = [e.changes.get("overdue") for e in AuditEntry.objects.filter(action="job.updated").order_by("id")]
    assert changes == [[False, True], [True, False]]


def test_other_sales_agent_cannot_update(sales_agent, other_sales_agent):
    job = JobFactory(created_by=sales_agent)
    with pytest.raises(PermissionDenied):
        services.job_update(actor=other_sales_agent, job_id=job.pk, data={"title": "x"})


def test_tasks_must_be_done_in_order(sales_agent, technician):
    job, (t1, t2, t3) = make_job(sales_agent, technician)
    with pytest.raises(OutOfOrder):
        services.task_start(actor=technician, task_id=t2.pk)
    with pytest.raises(OutOfOrder):
        services.task_complete(actor=technician, task_id=t3.pk)
    services.task_start(actor=technician, task_id=t1.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.IN_PROGRESS
    with pytest.raises(InvalidTransition):
        services.task_start(actor=technician, task_id=t1.pk)
    services.task_complete(actor=technician, task_id=t1.pk)
    services.task_complete(actor=technician, task_id=t2.pk)  # complete without start
    t2.refresh_from_db()
    assert t2.started_at == t2.completed_at
    with pytest.raises(InvalidTransition):
        services.task_complete(actor=technician, task_id=t2.pk)
    assert statuses(job) == ["completed", "completed", "pending"]
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["task.started", "job.started", "task.completed", "task.completed"]


def test_complete_first_task_starts_pending_job(sales_agent, technician):
    job, (t1, *_rest) = make_job(sales_agent, technician)
    services.task_complete(actor=technician, task_id=t1.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.IN_PROGRESS


def test_only_assigned_technician_or_admin_works_tasks(sales_agent, technician, other_technician, admin_user):
    job, (t1, *_rest) = make_job(sales_agent, technician)
    with pytest.raises(PermissionDenied):
        services.task_start(actor=other_technician, task_id=t1.pk)
    with pytest.raises(PermissionDenied):
        services.task_start(actor=sales_agent, task_id=t1.pk)
    services.task_start(actor=admin_user, task_id=t1.pk)


def test_job_complete_requires_all_tasks(sales_agent, technician):
    job, tasks = make_job(sales_agent, technician, n_tasks=2)
    services.task_complete(actor=technician, task_id=tasks[0].pk)
    with pytest.raises(OpenTasks):
        services.job_complete(actor=technician, job_id=job.pk)
    services.task_complete(actor=technician, task_id=tasks[1].pk)
    services.job_complete(actor=technician, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED and job.completed_at is not None
    with pytest.raises(InvalidTransition):
        services.job_complete(actor=technician, job_id=job.pk)


def test_job_without_tasks_can_be_completed(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    services.job_complete(actor=technician, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED


def test_frozen_job_rejects_changes_until_reopened(sales_agent, technician, admin_user):
    job, (t1,) = make_job(sales_agent, technician, n_tasks=1)
    services.task_complete(actor=technician, task_id=t1.pk)
    services.job_complete(actor=technician, job_id=job.pk)
    with pytest.raises(JobFrozen):
        services.job_update(actor=sales_agent, job_id=job.pk, data={"title": "x"})
    with pytest.raises(JobFrozen):
        services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "more"})
    with pytest.raises(JobFrozen):
        services.task_reopen(actor=technician, task_id=t1.pk)
    with pytest.raises(JobFrozen):
        services.task_update(actor=sales_agent, task_id=t1.pk, data={"title": "x"})
    with pytest.raises(JobFrozen):
        services.task_delete(actor=sales_agent, task_id=t1.pk)
    with pytest.raises(InvalidTransition):
        services.job_cancel(actor=sales_agent, job_id=job.pk)
    with pytest.raises(PermissionDenied):
        services.job_reopen(actor=sales_agent, job_id=job.pk)
    services.job_reopen(actor=admin_user, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.IN_PROGRESS and job.completed_at is None
    services.task_update(actor=sales_agent, task_id=t1.pk, data={"title": "renamed"})


@pytest.mark.parametrize("started, expected", [(False, "pending"), (True, "in_progress")])
def test_reopen_cancelled_job(sales_agent, technician, admin_user, started, expected):
    job, (t1, _t2) = make_job(sales_agent, technician, n_tasks=2)
    if started:
        services.task_start(actor=technician, task_id=t1.pk)
    services.job_cancel(actor=sales_agent, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "cancelled"
    services.job_reopen(actor=admin_user, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == expected


def test_reopen_open_job_is_conflict(sales_agent, admin_user):
    job = JobFactory(created_by=sales_agent)
    with pytest.raises(InvalidTransition):
        services.job_reopen(actor=admin_user, job_id=job.pk)


def test_cancel_clears_overdue(sales_agent):
    job = JobFactory(
        created_by=sales_agent, scheduled_date=timezone.localdate() - datetime.timedelta(days=3), overdue=True
    )
    services.job_cancel(actor=sales_agent, job_id=job.pk)
    job.refresh_from_db()
    assert job.overdue is False
    assert AuditEntry.objects.get(action="job.cancelled").changes == {
        "status": ["pending", "cancelled"],
        "overdue": [True, False],
    }


def test_reopen_overdue_job_flags_again(sales_agent, technician, admin_user):
    job = JobFactory(
        created_by=sales_agent,
        assigned_to=technician,
        scheduled_date=timezone.localdate() - datetime.timedelta(days=3),
        overdue=True,
    )
    services.job_complete(actor=technician, job_id=job.pk)
    job.refresh_from_db()
    assert job.overdue is False
    services.job_reopen(actor=admin_user, job_id=job.pk)
    job.refresh_from_db()
    assert job.overdue is True


def test_task_reopen_only_last_completed(sales_agent, technician):
    job, (t1, t2, t3) = make_job(sales_agent, technician)
    services.task_complete(actor=technician, task_id=t1.pk)
    services.task_complete(actor=technician, task_id=t2.pk)
    with pytest.raises(OutOfOrder):
        services.task_reopen(actor=technician, task_id=t1.pk)
    with pytest.raises(InvalidTransition):
        services.task_reopen(actor=technician, task_id=t3.pk)
    services.task_start(actor=technician, task_id=t3.pk)
    with pytest.raises(OutOfOrder):
        services.task_reopen(actor=technician, task_id=t2.pk)


def test_task_reopen_goes_back_to_in_progress(sales_agent, technician):
    job, (t1, _t2) = make_job(sales_agent, technician, n_tasks=2)
    services.task_complete(actor=technician, task_id=t1.pk)
    services.task_reopen(actor=technician, task_id=t1.pk)
    t1.refresh_from_db()
    assert t1.status == "in_progress" and t1.completed_at is None and t1.started_at is not None
    entry = AuditEntry.objects.get(action="task.reopened")
    assert entry.changes["status"] == ["completed", "in_progress"]
    assert entry.job_id == job.pk


def test_task_add_appends_and_validates_order(sales_agent, technician):
    job, (t1, t2) = make_job(sales_agent, technician, n_tasks=2)
    task = services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "third"})
    assert task.order == 3
    with pytest.raises(ValidationError) as err:
        services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "dup", "order": 2})
    assert "order" in err.value.message_dict
    JobTask.objects.filter(pk=t1.pk).update(order=4)  # free order 1, so only the prefix rule can object
    services.task_complete(actor=technician, task_id=t2.pk)
    with pytest.raises(OutOfOrder):
        services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "early", "order": 1})
    # Gaps are allowed: a free order after the started prefix is fine.
    JobTask.objects.filter(pk=task.pk).update(order=10)
    assert services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "mid", "order": 5}).order == 5


def test_task_add_rejects_inactive_equipment(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    active, inactive = EquipmentFactory(), EquipmentFactory(is_active=False)
    with pytest.raises(ValidationError) as err:
        services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "x", "required_equipment": [inactive]})
    assert "required_equipment" in err.value.message_dict
    task = services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "x", "required_equipment": [active]})
    assert list(task.required_equipment.all()) == [active]
    assert AuditEntry.objects.get(action="task.created").changes["required_equipment"] == [None, [active.pk]]


def test_task_update_equipment_diff_as_id_lists(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    e1, e2 = EquipmentFactory(), EquipmentFactory()
    task = services.task_add(actor=sales_agent, job_id=job.pk, data={"title": "x", "required_equipment": [e1]})
    e1.is_active = False
    e1.save()
    services.task_update(actor=sales_agent, task_id=task.pk, data={"required_equipment": [e1, e2]})
    entry = AuditEntry.objects.get(action="task.updated")
    assert entry.changes == {"required_equipment": [[e1.pk], sorted([e1.pk, e2.pk])]}


def test_task_delete_keeps_other_orders(sales_agent, technician):
    job, (t1, t2, t3) = make_job(sales_agent, technician)
    services.task_delete(actor=sales_agent, task_id=t2.pk)
    assert list(job.tasks.values_list("order", flat=True)) == [1, 3]
    assert AuditEntry.objects.get(action="task.deleted").object_id == t2.pk


def test_reorder(sales_agent, technician):
    job, (t1, t2, t3) = make_job(sales_agent, technician)
    services.task_complete(actor=technician, task_id=t1.pk)
    with pytest.raises(OutOfOrder):
        services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[t2.pk, t1.pk, t3.pk])
    with pytest.raises(ValidationError):
        services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[t1.pk, t3.pk])
    with pytest.raises(ValidationError):
        services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[t1.pk, t3.pk, t3.pk])
    services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[t1.pk, t3.pk, t2.pk])
    assert list(job.tasks.order_by("order").values_list("pk", flat=True)) == [t1.pk, t3.pk, t2.pk]
    entries = AuditEntry.objects.filter(action="task.reordered").order_by("object_id")
    assert {e.object_id: e.changes["order"] for e in entries} == {t2.pk: [2, 3], t3.pk: [3, 2]}
    # Same order again changes nothing and writes nothing.
    services.tasks_reorder(actor=sales_agent, job_id=job.pk, task_ids=[t1.pk, t3.pk, t2.pk])
    assert AuditEntry.objects.filter(action="task.reordered").count() == 2


def test_delete_job_keeps_audit(admin_user, sales_agent, technician):
    job, tasks = make_job(sales_agent, technician)
    services.task_complete(actor=technician, task_id=tasks[0].pk)
    with pytest.raises(PermissionDenied):
        services.job_delete(actor=sales_agent, job_id=job.pk)
    services.job_delete(actor=admin_user, job_id=job.pk)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not JobTask.objects.filter(job_id=job.pk).exists()
    assert AuditEntry.objects.filter(job_id=job.pk).count() == 3  # task.completed, job.started, job.deleted


def test_failed_change_writes_no_audit(sales_agent, technician):
    job, (t1, t2) = make_job(sales_agent, technician, n_tasks=2)
    with pytest.raises(OutOfOrder):
        services.task_complete(actor=technician, task_id=t2.pk)
    assert not AuditEntry.objects.exists()
