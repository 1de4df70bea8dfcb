"""Every write to jobs and their tasks.

Each service runs in one transaction: it locks the job row (``SELECT ... FOR NO KEY UPDATE``), re-checks the rules
under the lock, saves, writes its audit entries and queues its emails in the outbox, so a change, its audit entry
and its notification commit together or not at all. Any change to a task locks its job first, so every path that
can break an invariant is serialised on the same row, in the same order (job, then tasks).

Invariants kept here:
- the completed tasks of a job are a prefix of its ordered tasks, and at most one task is ``in_progress``: the one
  right after that prefix;
- a job is ``completed`` only if every one of its tasks is completed;
- a completed or cancelled job is frozen: it and its tasks change only after an admin reopens it;
- ``overdue`` is true exactly for open jobs scheduled before today (kept at once here, and daily by the sweep).

Callers pass the acting user; role rules that depend on the target (a technician may only work on jobs assigned to
them, a sales agent only on jobs they created) are checked here, under the lock, whatever the caller.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import Http404
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from accounts.models import User
from audit.services import audit_build, audit_diff, audit_record, audit_record_many, audit_snapshot
from equipment.models import Equipment
from jobops.exceptions import InvalidTransition, JobFrozen, OpenTasks, OutOfOrder, SignatureRequired
from jobops.roles import is_admin
from notifications import services as notifications

from . import feed, rules
from .attachments import cleanup as attachment_cleanup
from .attachments.rules import has_signature
from .models import Job, JobTask

Status = Job.Status
TaskStatus = JobTask.Status

#: Allowed job status changes. ``pending -> in_progress`` happens automatically when the first task starts or
#: completes; ``completed -> in_progress`` and ``cancelled -> pending|in_progress`` are the admin's reopen.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.IN_PROGRESS, Status.COMPLETED, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.CANCELLED}),
    Status.COMPLETED: frozenset({Status.IN_PROGRESS}),
    Status.CANCELLED: frozenset({Status.PENDING, Status.IN_PROGRESS}),
}

JOB_FIELDS = ("title", "description", "client_name", "priority", "scheduled_date", "assigned_to", "requires_signature")
JOB_AUDIT_FIELDS = (*JOB_FIELDS, "status", "overdue", "created_by", "completed_at")
TASK_FIELDS = ("title", "description")
TASK_AUDIT_FIELDS = ("order", "title", "description", "status", "started_at", "completed_at")


# --- helpers -----------------------------------------------------------------------------------------------------


def _today() -> datetime.date:
    return timezone.localdate()


def _lock_job(job_id: int) -> Job:
    """Lock the job row for the rest of the transaction (FOR NO KEY UPDATE: task inserts are not blocked by FK
    checks, but every other writer of this job waits)."""
    try:
        return Job.objects.select_for_update(no_key=True).get(pk=job_id)
    except Job.DoesNotExist:  # deleted since the caller looked it up
        raise Http404("No Job matches the given query.") from None


def _lock_task(task_id: int) -> tuple[Job, JobTask]:
    """Lock a task's job first, then read the task (parents before children: no deadlocks)."""
    job_id = JobTask.objects.filter(pk=task_id).values_list("job_id", flat=True).first()
    if job_id is None:
        raise Http404("No JobTask matches the given query.")
    job = _lock_job(job_id)
    try:
        task = JobTask.objects.select_for_update(no_key=True).get(pk=task_id, job_id=job.pk)
    except JobTask.DoesNotExist:  # deleted between the two reads
        raise Http404("No JobTask matches the given query.") from None
    return job, task


def _ensure_not_frozen(job: Job) -> None:
    if rules.is_frozen(job):
        raise JobFrozen(f"Job {job.pk} is {job.status}; reopen it before changing it or its tasks.")


def _ensure_may_edit(actor: Any, job: Job) -> None:
    """Editing a job or its tasks: admin, or the sales agent who created it."""
    if is_admin(actor):
        return
    if getattr(actor, "role", None) == User.Role.SALES_AGENT and job.created_by_id == actor.pk:
        return
    raise PermissionDenied("Only an admin or the job's creator may change this job.")


def _ensure_may_work(actor: Any, job: Job) -> None:
    """Working on tasks and completing the job: admin, or the technician the job is assigned to."""
    if is_admin(actor):
        return
    if getattr(actor, "role", None) == User.Role.TECHNICIAN and job.assigned_to_id == actor.pk:
        return
    raise PermissionDenied("Only an admin or the job's assigned technician may do this.")


def _validate_assignee(assignee: User | None) -> None:
    if assignee is None:
        return
    if assignee.role != User.Role.TECHNICIAN or not assignee.is_active:
        raise ValidationError({"assigned_to": ["Must be an active technician."]})


def _validate_equipment(equipment: Iterable[Equipment], *, already: Iterable[int] = ()) -> list[Equipment]:
    """New equipment assignments must be active; equipment already on the task may stay after deactivation."""
    items = list(dict.fromkeys(equipment))
    kept = set(already)
    inactive = [e.pk for e in items if not e.is_active and e.pk not in kept]
    if inactive:
        raise ValidationError(
            {"required_equipment": [f"Inactive equipment cannot be assigned: {', '.join(map(str, inactive))}."]}
        )
    return items


def _refresh_overdue(job: Job, today: datetime.date) -> bool:
    """Set ``job.overdue`` from its status and date; returns True when it became overdue (a new episode)."""
    should = rules.is_overdue(status=job.status, scheduled_date=job.scheduled_date, today=today)
    became = should and not job.overdue
    job.overdue = should
    return became


def touch_jobs(jobs: QuerySet[Job], **fields: Any) -> int:
    """Move the row version (``Job.version``, behind every ETag of a job, its tasks and the lists holding them) of
    ``jobs``, setting ``fields`` in the same UPDATE; returns the number of rows. The one place a version moves: every
    write to a job or to any of its tasks calls it (``_changed``) inside the transaction that holds the job's lock."""
    return jobs.update(version=F("version") + 1, **fields)


def _changed(
    job: Job, *, tasks: Iterable[int] = (), attachments: Iterable[int] = (), also: Iterable[int | None] = ()
) -> None:
    """A write to ``job`` (and to its tasks ``tasks`` or attachments ``attachments``) is done, inside the transaction
    that holds the job's lock: the job's row version moves (its ETag, its tasks' and those of the lists holding them)
    and the change feed records the job and those objects for everyone who can see them now, or could before
    (``also``: a previous assignee). Every service that changes a job, its tasks or its attachments ends here
    (``jobs.attachments.services`` too); creation and deletion of a job only record (a new row starts at version 1,
    a deleted one has none)."""
    touch_jobs(Job.objects.filter(pk=job.pk))
    job.version += 1
    feed.record(feed.touch(job, tasks=tasks, attachments=attachments, also=also))


def _save(instance: Any, fields: Iterable[str]) -> None:
    instance.full_clean(validate_unique=False, validate_constraints=False)
    instance.save(update_fields=[*fields, "updated_at"])


def _task_snapshot(task: JobTask, equipment_ids: list[int] | None = None) -> dict[str, Any]:
    snapshot = audit_snapshot(task, TASK_AUDIT_FIELDS)
    if equipment_ids is not None:
        snapshot["required_equipment"] = sorted(equipment_ids)
    return snapshot


def _task_repr(task: JobTask) -> str:
    return f"{task.order}. {task.title}"


def _audit_task(actor: Any, action: str, task: JobTask, changes: Mapping[str, Any]) -> None:
    audit_record(
        actor=actor, action=action, obj=task, object_repr=_task_repr(task), job_id=task.job_id, changes=changes
    )


def _start_job_if_pending(actor: Any, job: Job) -> None:
    """``pending -> in_progress`` when the job's first task starts or completes."""
    if job.status != Status.PENDING:
        return
    job.status = Status.IN_PROGRESS
    _save(job, ["status"])
    audit_record(
        actor=actor, action="job.started", obj=job, job_id=job.pk, changes={"status": [Status.PENDING, job.status]}
    )


# --- jobs --------------------------------------------------------------------------------------------------------


@transaction.atomic
def job_create(*, actor: User, data: Mapping[str, Any], today: datetime.date | None = None) -> Job:
    """Create a job as ``actor`` (admin or sales agent), who becomes its ``created_by``.

    ``assigned_to`` must be an active technician. The job starts ``pending``; ``overdue`` is set at once when it is
    scheduled in the past. Writes ``job.created`` and queues the assignment email.
    """
    today = today or _today()
    fields = {key: data[key] for key in JOB_FIELDS if key in data}
    _validate_assignee(fields.get("assigned_to"))
    job = Job(**fields, created_by=actor, status=Status.PENDING)
    became_overdue = _refresh_overdue(job, today)
    job.full_clean(validate_unique=False, validate_constraints=False)
    job.save(force_insert=True)
    audit_record(
        actor=actor,
        action="job.created",
        obj=job,
        job_id=job.pk,
        changes={
            key: [None, value]
            for key, value in audit_snapshot(job, JOB_AUDIT_FIELDS).items()
            if value not in (None, "")
        },
    )
    feed.record(feed.touch(job))
    if job.assigned_to_id is not None:
        notifications.notify_job_assigned(job=job, previous_assignee=None)
    if became_overdue:
        notifications.notify_job_overdue(job=job)
    return job


@transaction.atomic
def job_update(*, actor: User, job_id: int, data: Mapping[str, Any], today: datetime.date | None = None) -> Job:
    """Change a job's editable fields (admin, or the sales agent who created it).

    A frozen (completed or cancelled) job cannot be edited (409). A new ``assigned_to`` must be an active technician;
    the change is audited as ``job.assigned`` and emails the technicians involved. Other field changes are audited as
    one ``job.updated`` entry. Rescheduling sets or clears ``overdue`` at once. A request that changes nothing writes
    nothing.
    """
    today = today or _today()
    job = _lock_job(job_id)
    _ensure_may_edit(actor, job)
    _ensure_not_frozen(job)
    before = audit_snapshot(job, JOB_AUDIT_FIELDS)
    previous_assignee = job.assigned_to
    fields = {key: data[key] for key in JOB_FIELDS if key in data}
    if "assigned_to" in fields and fields["assigned_to"] != previous_assignee:
        _validate_assignee(fields["assigned_to"])
    for key, value in fields.items():
        setattr(job, key, value)
    became_overdue = _refresh_overdue(job, today)
    after = audit_snapshot(job, JOB_AUDIT_FIELDS)
    changes = audit_diff(before, after)
    if not changes:
        return job
    _save(job, [key for key in changes])
    assignment = {key: changes.pop(key) for key in ("assigned_to",) if key in changes}
    if changes:
        audit_record(actor=actor, action="job.updated", obj=job, job_id=job.pk, changes=changes)
    if assignment:
        audit_record(actor=actor, action="job.assigned", obj=job, job_id=job.pk, changes=assignment)
        # The tasks change hands with the job: the new assignee gets them, the previous one loses sight of them.
        _changed(
            job,
            tasks=job.tasks.values_list("pk", flat=True),
            also=[previous_assignee.pk if previous_assignee else None],
        )
        if job.assigned_to_id is not None or previous_assignee is not None:
            notifications.notify_job_assigned(job=job, previous_assignee=previous_assignee)
    else:
        _changed(job)
    if became_overdue:
        notifications.notify_job_overdue(job=job)
    return job


@transaction.atomic
def job_delete(*, actor: User, job_id: int) -> None:
    """Delete a job and its tasks (admin only). Its audit entries, and its tasks', stay; ``job.deleted`` records
    the job's last state and the ids of the tasks removed with it."""
    if not is_admin(actor):
        raise PermissionDenied("Only an admin may delete jobs.")
    job = _lock_job(job_id)
    snapshot = audit_snapshot(job, JOB_AUDIT_FIELDS)
    snapshot["tasks"] = list(job.tasks.order_by("order").values_list("pk", flat=True))
    attachment_ids, attachment_keys = attachment_cleanup.attachments_of(job_id=job.pk)
    feed.record(feed.touch(job, tasks=snapshot["tasks"], attachments=attachment_ids))
    audit_record(
        actor=actor,
        action="job.deleted",
        obj=job,
        job_id=job.pk,
        changes={key: [value, None] for key, value in snapshot.items()},
    )
    job.delete()
    attachment_cleanup.remove_after_commit(attachment_keys)  # the attachments went with the job; their objects now


def _transition(
    *, actor: User, job: Job, target: str, action: str, extra: Mapping[str, Any] | None = None
) -> dict[str, list[Any]]:
    if target not in TRANSITIONS.get(job.status, frozenset()):
        raise InvalidTransition(f"A {job.status} job cannot become {target}.")
    before = audit_snapshot(job, ("status", "overdue", "completed_at"))
    job.status = target
    for key, value in (extra or {}).items():
        setattr(job, key, value)
    became_overdue = _refresh_overdue(job, _today())
    changes = audit_diff(before, audit_snapshot(job, ("status", "overdue", "completed_at")))
    _save(job, changes.keys())
    audit_record(actor=actor, action=action, obj=job, job_id=job.pk, changes=changes)
    _changed(job)
    if became_overdue:
        notifications.notify_job_overdue(job=job)
    return changes


@transaction.atomic
def job_cancel(*, actor: User, job_id: int) -> Job:
    """Cancel a pending or in-progress job (admin, or its creator). Clears ``overdue``; 409 from any other status."""
    job = _lock_job(job_id)
    _ensure_may_edit(actor, job)
    _transition(actor=actor, job=job, target=Status.CANCELLED, action="job.cancelled")
    return job


@transaction.atomic
def job_complete(*, actor: User, job_id: int, now: datetime.datetime | None = None) -> Job:
    """Complete a pending or in-progress job whose tasks are all completed (admin, or the assigned technician).

    Checked under the job lock, so no task can be added or reopened in between: a job with an open task is a 409.
    A job with no tasks may be completed. Clears ``overdue`` and emails the creator.
    """
    now = now or timezone.now()
    job = _lock_job(job_id)
    _ensure_may_work(actor, job)
    if job.status not in rules.JOB_OPEN_STATUSES:
        raise InvalidTransition(f"A {job.status} job cannot be completed.")
    open_tasks = job.tasks.exclude(status=TaskStatus.COMPLETED).count()
    if open_tasks:
        raise OpenTasks(f"The job still has {open_tasks} task(s) that are not completed.")
    if job.requires_signature and not has_signature(job):
        raise SignatureRequired("This job requires a signature: attach one (kind signature) to one of its tasks.")
    _transition(actor=actor, job=job, target=Status.COMPLETED, action="job.completed", extra={"completed_at": now})
    notifications.notify_job_completed(job=job)
    return job


@transaction.atomic
def job_reopen(*, actor: User, job_id: int) -> Job:
    """Reopen a frozen job (admin only): completed -> in_progress; cancelled -> pending, or in_progress when any of
    its tasks was started. ``completed_at`` is cleared and ``overdue`` recomputed; 409 for an open job."""
    if not is_admin(actor):
        raise PermissionDenied("Only an admin may reopen jobs.")
    job = _lock_job(job_id)
    if job.status == Status.COMPLETED:
        target = Status.IN_PROGRESS
    elif job.status == Status.CANCELLED:
        started = job.tasks.exclude(status=TaskStatus.PENDING).exists()
        target = Status.IN_PROGRESS if started else Status.PENDING
    else:
        raise InvalidTransition(f"A {job.status} job is not completed or cancelled; there is nothing to reopen.")
    _transition(actor=actor, job=job, target=target, action="job.reopened", extra={"completed_at": None})
    return job


# --- tasks -------------------------------------------------------------------------------------------------------


def _progress_boundary(job: Job) -> int:
    """The highest ``order`` among the job's started (in-progress or completed) tasks; 0 when none started."""
    orders = job.tasks.exclude(status=TaskStatus.PENDING).values_list("order", flat=True)
    return max(orders, default=0)


@transaction.atomic
def task_add(*, actor: User, job_id: int, data: Mapping[str, Any]) -> JobTask:
    """Add a task to a job (admin, or the job's creator); the job must not be frozen.

    ``order`` omitted -> appended after the last task. A taken ``order`` is bad input (400); an ``order`` that would
    place the new task before a started or completed task is a conflict (409), since completed tasks must stay a
    prefix. Equipment must be active. Writes ``task.created``.
    """
    job = _lock_job(job_id)
    _ensure_may_edit(actor, job)
    _ensure_not_frozen(job)
    existing = set(job.tasks.values_list("order", flat=True))
    order = data.get("order")
    if order is None:
        order = max(existing, default=0) + 1
    elif order in existing:
        raise ValidationError({"order": [f"Order {order} is already taken in this job."]})
    elif order < _progress_boundary(job):
        raise OutOfOrder("A new task cannot be placed before a task that is already started or completed.")
    equipment = _validate_equipment(data.get("required_equipment") or [])
    task = JobTask(job=job, order=order, title=data.get("title", ""), description=data.get("description", ""))
    task.full_clean(exclude=["job"], validate_unique=False, validate_constraints=False)
    task.save(force_insert=True)
    if equipment:
        task.required_equipment.set(equipment)
    _changed(job, tasks=[task.pk])
    snapshot = _task_snapshot(task, [e.pk for e in equipment])
    _audit_task(
        actor,
        "task.created",
        task,
        {key: [None, value] for key, value in snapshot.items() if value not in (None, "", [])},
    )
    return task


@transaction.atomic
def task_update(*, actor: User, task_id: int, data: Mapping[str, Any]) -> JobTask:
    """Edit a task's title, description or required equipment (admin, or the job's creator).

    ``order`` is not editable here (reorder is the only way to move tasks) and ``status``/timestamps change only
    through start/complete/reopen. Frozen job -> 409. Writes one ``task.updated`` entry with M2M changes as id lists.
    """
    job, task = _lock_task(task_id)
    _ensure_may_edit(actor, job)
    _ensure_not_frozen(job)
    current_equipment = sorted(task.required_equipment.values_list("pk", flat=True))
    before = _task_snapshot(task, current_equipment)
    for key in TASK_FIELDS:
        if key in data:
            setattr(task, key, data[key])
    new_equipment: list[Equipment] | None = None
    if "required_equipment" in data:
        new_equipment = _validate_equipment(data["required_equipment"] or [], already=current_equipment)
    after = _task_snapshot(task, [e.pk for e in new_equipment] if new_equipment is not None else current_equipment)
    changes = audit_diff(before, after)
    if not changes:
        return task
    scalar = [key for key in changes if key in TASK_FIELDS]
    if scalar:
        _save(task, scalar)
    if new_equipment is not None and "required_equipment" in changes:
        task.required_equipment.set(new_equipment)
    _changed(job, tasks=[task.pk])
    _audit_task(actor, "task.updated", task, changes)
    return task


@transaction.atomic
def task_delete(*, actor: User, task_id: int) -> None:
    """Delete a task (admin, or the job's creator); frozen job -> 409. Other tasks keep their ``order`` (gaps are
    allowed), so the completed-prefix invariant still holds. Writes ``task.deleted``."""
    job, task = _lock_task(task_id)
    _ensure_may_edit(actor, job)
    _ensure_not_frozen(job)
    snapshot = _task_snapshot(task, sorted(task.required_equipment.values_list("pk", flat=True)))
    _audit_task(actor, "task.deleted", task, {key: [value, None] for key, value in snapshot.items()})
    attachment_ids, attachment_keys = attachment_cleanup.attachments_of(task_id=task.pk)
    task.delete()
    _changed(job, tasks=[task_id], attachments=attachment_ids)
    attachment_cleanup.remove_after_commit(attachment_keys)


def _ensure_predecessors_completed(job: Job, task: JobTask) -> None:
    blocking = job.tasks.filter(order__lt=task.order).exclude(status=TaskStatus.COMPLETED).order_by("order").first()
    if blocking is not None:
        raise OutOfOrder(f"Task {blocking.order} ({blocking.title}) must be completed first.")


@transaction.atomic
def task_start(*, actor: User, task_id: int, now: datetime.datetime | None = None) -> JobTask:
    """Start a pending task (admin, or the job's assigned technician) whose predecessors are all completed.

    Anything else is a 409: the task already started or completed, an earlier task still open, a frozen job. The
    job goes ``pending -> in_progress`` with its first started task. Writes ``task.started``.
    """
    now = now or timezone.now()
    job, task = _lock_task(task_id)
    _ensure_may_work(actor, job)
    _ensure_not_frozen(job)
    if task.status != TaskStatus.PENDING:
        raise InvalidTransition(f"Task {task.order} is {task.status}; only a pending task can be started.")
    _ensure_predecessors_completed(job, task)
    before = _task_snapshot(task)
    task.status = TaskStatus.IN_PROGRESS
    task.started_at = now
    _save(task, ["status", "started_at"])
    _changed(job, tasks=[task.pk])
    _audit_task(actor, "task.started", task, audit_diff(before, _task_snapshot(task)))
    _start_job_if_pending(actor, job)
    return task


@transaction.atomic
def task_complete(*, actor: User, task_id: int, now: datetime.datetime | None = None) -> JobTask:
    """Complete a pending or in-progress task (admin, or the assigned technician) whose predecessors are completed.

    A task completed without a start gets ``started_at = completed_at``. Completing a completed task, an earlier
    open task or a frozen job -> 409. The job goes ``pending -> in_progress`` if needed; completing the job itself is
    a separate, explicit action. Writes ``task.completed``.
    """
    now = now or timezone.now()
    job, task = _lock_task(task_id)
    _ensure_may_work(actor, job)
    _ensure_not_frozen(job)
    if task.status == TaskStatus.COMPLETED:
        raise InvalidTransition(f"Task {task.order} is already completed.")
    _ensure_predecessors_completed(job, task)
    before = _task_snapshot(task)
    task.status = TaskStatus.COMPLETED
    task.started_at = task.started_at or now
    task.completed_at = now
    _save(task, ["status", "started_at", "completed_at"])
    _changed(job, tasks=[task.pk])
    _audit_task(actor, "task.completed", task, audit_diff(before, _task_snapshot(task)))
    _start_job_if_pending(actor, job)
    return task


@transaction.atomic
def task_reopen(*, actor: User, task_id: int) -> JobTask:
    """Reopen the last completed task of a job (admin, or the assigned technician): back to ``in_progress`` with
    ``completed_at`` cleared. Only the last completed task, only while no later task is in progress, only on an
    open job; otherwise 409. Writes ``task.reopened``."""
    job, task = _lock_task(task_id)
    _ensure_may_work(actor, job)
    _ensure_not_frozen(job)
    if task.status != TaskStatus.COMPLETED:
        raise InvalidTransition(f"Task {task.order} is {task.status}; only a completed task can be reopened.")
    if job.tasks.filter(order__gt=task.order).exclude(status=TaskStatus.PENDING).exists():
        raise OutOfOrder("Only the last completed task can be reopened, and only while no later task is started.")
    before = _task_snapshot(task)
    task.status = TaskStatus.IN_PROGRESS
    task.completed_at = None
    _save(task, ["status", "completed_at"])
    _changed(job, tasks=[task.pk])
    _audit_task(actor, "task.reopened", task, audit_diff(before, _task_snapshot(task)))
    return task


@transaction.atomic
def tasks_reorder(*, actor: User, job_id: int, task_ids: list[int]) -> list[JobTask]:
    """Put a job's tasks in the given order (admin, or the job's creator); they are renumbered 1..n.

    ``task_ids`` must be exactly the job's task ids, each once (400 otherwise). The started and completed tasks
    must keep their places at the head of the list (409 otherwise), so reordering never breaks the prefix
    invariant. Frozen job -> 409. Writes one ``task.reordered`` entry per task whose order changed, in bulk.
    """
    job = _lock_job(job_id)
    _ensure_may_edit(actor, job)
    _ensure_not_frozen(job)
    tasks = list(job.tasks.select_for_update(no_key=True).order_by("order"))
    by_id = {task.pk: task for task in tasks}
    if len(task_ids) != len(set(task_ids)):
        raise ValidationError({"order": ["Each task id must appear exactly once."]})
    if set(task_ids) != set(by_id):
        raise ValidationError({"order": ["The list must contain exactly this job's task ids."]})
    started = [task.pk for task in tasks if task.status != TaskStatus.PENDING]
    if task_ids[: len(started)] != started:
        raise OutOfOrder("Started and completed tasks must stay first, in their current order.")
    moves = {pk: position for position, pk in enumerate(task_ids, start=1) if by_id[pk].order != position}
    if not moves:
        return [by_id[pk] for pk in task_ids]
    old_orders = {pk: by_id[pk].order for pk in moves}
    # Two passes so the (job, order) unique constraint holds after every row: first park the moving tasks above
    # every existing order, then give them their final places.
    offset = max(task.order for task in tasks) + len(tasks) + 1
    now = timezone.now()
    for pk in moves:
        by_id[pk].order = offset + moves[pk]
        by_id[pk].updated_at = now
    JobTask.objects.bulk_update([by_id[pk] for pk in moves], ["order", "updated_at"])
    for pk, position in moves.items():
        by_id[pk].order = position
    JobTask.objects.bulk_update([by_id[pk] for pk in moves], ["order"])
    _changed(job, tasks=moves)
    audit_record_many(
        [
            audit_build(
                actor=actor,
                action="task.reordered",
                obj=by_id[pk],
                object_repr=_task_repr(by_id[pk]),
                job_id=job.pk,
                changes={"order": [old_orders[pk], position]},
                at=now,
            )
            for pk, position in moves.items()
        ]
    )
    return [by_id[pk] for pk in task_ids]
