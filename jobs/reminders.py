"""The daily reminder: each technician's open work for the day, handed to the outbox as plain data.

Jobs owns the question "what is open for whom today"; notifications owns the email (``notify_daily_reminders``
takes ``DailyReminder`` values and knows no jobs model). The beat task ``notifications.send_daily_reminders``
(``tasks.emails``) calls ``jobs_send_daily_reminders``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, TypedDict

from django.db import transaction
from django.db.models import QuerySet

from notifications.services import DailyReminder, Person, notify_daily_reminders

from .models import JobTask
from .rules import JOB_OPEN_STATUSES, TASK_OPEN_STATUSES


class ReminderRow(TypedDict):
    """One ``values()`` row of ``job_tasks_due_for_reminders``: an open task with its job and technician."""

    job_id: int
    job__title: str
    job__client_name: str
    job__priority: str
    job__assigned_to_id: int
    job__assigned_to__email: str
    job__assigned_to__first_name: str
    job__assigned_to__last_name: str
    job__assigned_to__username: str
    order: int
    title: str
    status: str


def job_tasks_due_for_reminders(*, today: datetime.date) -> QuerySet[JobTask, ReminderRow]:
    """The open tasks of open jobs scheduled ``today`` and assigned to an active technician, as ``values()`` rows
    ordered by technician, job and task order. One query; no model instances."""
    return (
        JobTask.objects.filter(
            job__scheduled_date=today,
            job__status__in=JOB_OPEN_STATUSES,
            job__assigned_to__isnull=False,
            job__assigned_to__is_active=True,
            status__in=TASK_OPEN_STATUSES,
        )
        .order_by("job__assigned_to_id", "job_id", "order")
        .values(
            "job_id",
            "job__title",
            "job__client_name",
            "job__priority",
            "job__assigned_to_id",
            "job__assigned_to__email",
            "job__assigned_to__first_name",
            "job__assigned_to__last_name",
            "job__assigned_to__username",
            "order",
            "title",
            "status",
        )
    )


def _reminders(rows: Iterable[ReminderRow]) -> list[DailyReminder]:
    """Group task rows (ordered by technician, job, task order) into one ``DailyReminder`` per technician."""
    people: dict[int, Person] = {}
    jobs: dict[int, dict[int, dict[str, Any]]] = {}
    for row in rows:
        user_id = row["job__assigned_to_id"]
        if user_id not in people:
            full_name = f"{row['job__assigned_to__first_name']} {row['job__assigned_to__last_name']}".strip()
            people[user_id] = Person(
                user_id=user_id,
                email=(row["job__assigned_to__email"] or "").strip(),
                name=full_name or row["job__assigned_to__username"],
            )
        job = jobs.setdefault(user_id, {}).setdefault(
            row["job_id"],
            {
                "job_id": row["job_id"],
                "job_title": row["job__title"],
                "client_name": row["job__client_name"],
                "priority": row["job__priority"],
                "tasks": [],
            },
        )
        job["tasks"].append({"order": row["order"], "title": row["title"], "status": row["status"]})
    return [DailyReminder(technician=person, jobs=list(jobs[user_id].values())) for user_id, person in people.items()]


@transaction.atomic
def jobs_send_daily_reminders(*, today: datetime.date) -> list[int]:
    """Queue one ``daily_reminder`` email per active technician with open tasks on open jobs scheduled ``today``
    (a date in ``TIME_ZONE``), listing those jobs and tasks in order.

    Never twice for the same technician and day (the outbox's dedupe key), so a redelivered or repeated run queues
    nothing new. Returns the ids of the outbox rows written. Called by the beat task; a fixed number of queries
    whatever the number of technicians.
    """
    return notify_daily_reminders(reminders=_reminders(job_tasks_due_for_reminders(today=today)), today=today)
