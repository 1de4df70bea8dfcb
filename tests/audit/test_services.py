"""audit.services: what an entry records, where its context comes from, and what it never records."""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction

from audit.models import AuditEntry
from audit.services import audit_build, audit_diff, audit_record, audit_record_many, audit_snapshot
from jobops.context import audit_context, request_id_var
from tests.factories import DEFAULT_PASSWORD, EquipmentFactory, JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_entry_records_actor_snapshot_object_job_and_changes(sales_agent):
    job = JobFactory(created_by=sales_agent, title="Boiler")
    with transaction.atomic():
        entry = audit_record(
            actor=sales_agent, action="job.updated", obj=job, job_id=job.pk, changes={"title": ["Old", "Boiler"]}
        )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.actor_id, stored.actor_label) == (sales_agent.pk, "sales1")
    assert (stored.object_type, stored.object_id, stored.object_repr) == ("job", job.pk, str(job))
    assert stored.job_id == job.pk
    assert stored.changes == {"title": ["Old", "Boiler"]}
    assert stored.source == "api"  # the default outside any other context
    # The label is a snapshot: renaming the user later does not rewrite history.
    sales_agent.username = "renamed"
    sales_agent.save(update_fields=["username"])
    stored.refresh_from_db()
    assert stored.actor_label == "sales1"


def test_system_entries_are_labelled_with_the_task_or_command():
    with audit_context(source="task", system="flag_overdue_jobs"), transaction.atomic():
        entry = audit_record(actor=None, action="job.flagged_overdue", object_type="job", object_id=7, job_id=7)
    assert (entry.actor_id, entry.actor_label, entry.source) == (None, "system:flag_overdue_jobs", "task")
    with transaction.atomic():
        bare = audit_record(actor=None, action="job.flagged_overdue", object_type="job", object_id=7)
    assert bare.actor_label == "system"


def test_request_id_comes_from_the_context():
    token = request_id_var.set("req-123")
    try:
        with transaction.atomic():
            entry = audit_record(actor=None, action="job.updated", object_type="job", object_id=1)
    finally:
        request_id_var.reset(token)
    assert AuditEntry.objects.get(pk=entry.pk).request_id == "req-123"


def test_audit_context_rejects_unknown_sources_and_restores_the_previous_one():
    with pytest.raises(ValueError):
        with audit_context(source="cron"):
            pass
    with audit_context(source="command", system="outer"):
        with audit_context(source="task", system="inner"):
            pass
        with transaction.atomic():
            entry = audit_record(actor=None, action="job.updated", object_type="job", object_id=1)
    assert (entry.source, entry.actor_label) == ("command", "system:outer")


@pytest.mark.parametrize("action", ["created", "Job.Created", "job.", ".created", "job created", ""])
def test_actions_must_be_dotted_verbs(action):
    with pytest.raises(ValueError), transaction.atomic():
        audit_record(actor=None, action=action, object_type="job", object_id=1)
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_audit_record_outside_a_transaction_raises():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor=None, action="job.updated", object_type="job", object_id=1)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record_many([audit_build(actor=None, action="job.updated", object_type="job", object_id=1)])
    assert not AuditEntry.objects.exists()


def test_the_test_transaction_does_not_count_as_the_change_transaction():
    # pytest-django wraps this test in an atomic block; a service that forgot @transaction.atomic still fails.
    with pytest.raises(RuntimeError):
        audit_record(actor=None, action="job.updated", object_type="job", object_id=1)


def test_a_failed_change_writes_no_entry(sales_agent):
    job = JobFactory(created_by=sales_agent, title="Before")
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        job.title = "After"
        job.save(update_fields=["title"])
        audit_record(
            actor=sales_agent, action="job.updated", obj=job, job_id=job.pk, changes={"title": ["Before", "After"]}
        )
        1 / 0  # noqa: B018 - the change fails after its entry was written
    job.refresh_from_db()
    assert job.title == "Before"
    assert not AuditEntry.objects.exists()


def test_secrets_are_never_stored(admin_user):
    user = UserFactory(username="victim")
    password_hash = user.password
    assert password_hash and DEFAULT_PASSWORD not in password_hash
    snapshot = audit_snapshot(user, ["username", "password", "last_login", "role"])
    assert set(snapshot) == {"username", "role"}
    old = audit_snapshot(user, ["username", "password"])
    user.set_password("An0ther-Secret!")
    user.username = "victim2"
    changes = audit_diff({**old, "password": password_hash}, {"username": "victim2", "password": user.password})
    assert changes == {"username": ["victim", "victim2"]}
    with transaction.atomic():
        entry = audit_record(
            actor=admin_user,
            action="user.updated",
            obj=user,
            changes={
                **changes,
                "password": [password_hash, user.password],
                "new_password": [None, "An0ther-Secret!"],
                "profile": [None, {"api_token": "tok-1", "client_secret": "s3", "phone": "123"}],
            },
        )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.changes == {"username": ["victim", "victim2"], "profile": [None, {"phone": "123"}]}
    raw = str(AuditEntry.objects.values_list("changes", flat=True).get(pk=entry.pk))
    for secret in (password_hash, user.password, "An0ther-Secret!", "tok-1", "s3"):
        assert secret not in raw


def test_snapshots_take_foreign_keys_as_ids_and_many_to_many_as_sorted_id_lists(sales_agent):
    job = JobFactory(created_by=sales_agent)
    task = JobTaskFactory(job=job)
    second, first = EquipmentFactory(), EquipmentFactory()
    task.required_equipment.set([first, second])
    snapshot = audit_snapshot(task, ["job", "title", "required_equipment"])
    assert snapshot == {"job": job.pk, "title": task.title, "required_equipment": sorted([first.pk, second.pk])}


def test_values_are_stored_as_json(sales_agent):
    job = JobFactory(created_by=sales_agent)
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    with transaction.atomic():
        entry = audit_record(
            actor=sales_agent,
            action="job.updated",
            obj=job,
            changes={
                "scheduled_date": [datetime.date(2030, 1, 1), datetime.date(2030, 1, 2)],
                "completed_at": [None, when],
                "assigned_to": [None, sales_agent],
                "tags": [set(), {3, 1, 2}],
            },
        )
    assert AuditEntry.objects.get(pk=entry.pk).changes == {
        "scheduled_date": ["2030-01-01", "2030-01-02"],
        "completed_at": [None, "2030-01-02T03:04:05+00:00"],
        "assigned_to": [None, sales_agent.pk],
        "tags": [[], [1, 2, 3]],
    }


def test_bulk_entries_are_written_in_one_statement(django_assert_num_queries):
    entries = [audit_build(actor=None, action="task.reordered", object_type="jobtask", object_id=i) for i in range(5)]
    with transaction.atomic(), django_assert_num_queries(1):  # one INSERT for all of them
        audit_record_many(entries)
    assert AuditEntry.objects.filter(action="task.reordered").count() == 5
    with transaction.atomic():
        assert audit_record_many([]) == []
