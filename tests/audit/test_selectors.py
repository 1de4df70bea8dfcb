"""audit.selectors: the admin-only trail (jobops.roles.is_admin) and the unscoped history of one job, whose caller
(jobs) decides who may read it."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser

from audit.selectors import audit_history_of_job, audit_list_for
from tests.factories import UserFactory

from .conftest import T0

pytestmark = pytest.mark.django_db


def test_list_is_for_active_admins_only(make_entry, admin_user, technician, sales_agent):
    older = make_entry(action="job.created", at=T0)
    newer = make_entry(action="job.updated", at=T0 + datetime.timedelta(seconds=1))
    assert list(audit_list_for(user=admin_user)) == [newer, older]
    inactive_admin = UserFactory(role="admin", is_staff=True, is_active=False)
    flagged_technician = UserFactory(role="technician", is_staff=True, is_superuser=True)
    for user in (technician, sales_agent, inactive_admin, flagged_technician, AnonymousUser(), None):
        assert not audit_list_for(user=user).exists()


def test_history_of_job_is_its_and_its_tasks_entries_newest_first(make_entry):
    job_created = make_entry(action="job.created", object_type="job", object_id=5, job_id=5, at=T0)
    task_started = make_entry(
        action="task.started", object_type="jobtask", object_id=9, job_id=5, at=T0 + datetime.timedelta(minutes=1)
    )
    same_instant = make_entry(
        action="task.completed", object_type="jobtask", object_id=9, job_id=5, at=T0 + datetime.timedelta(minutes=1)
    )
    # Not part of it: another job, an entry without a job, and an outbox entry that carries the job id.
    make_entry(action="job.created", object_type="job", object_id=6, job_id=6, at=T0)
    make_entry(action="user.created", object_type="user", object_id=5, at=T0)
    make_entry(action="notification.retried", object_type="notification", object_id=3, job_id=5, at=T0)
    assert list(audit_history_of_job(job_id=5)) == [same_instant, task_started, job_created]
    # Unscoped: no user is asked for, and a deleted job keeps its history.
    assert list(audit_history_of_job(job_id=404)) == []
