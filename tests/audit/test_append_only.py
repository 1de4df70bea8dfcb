"""The audit table is append-only in the database (PostgreSQL trigger), and prune_audit is the only way to delete."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEntry
from audit.services import PRUNE_FLAG_SQL

pytestmark = pytest.mark.postgres


def _old_entry(make_entry, days=100):
    return make_entry(at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditentry SET action = 'job.tampered'",
        "DELETE FROM audit_auditentry",
        "TRUNCATE audit_auditentry",
    ],
)
def test_trigger_rejects_update_delete_and_truncate(require_postgres, make_entry, statement):
    entry = make_entry(action="job.created")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    entry.refresh_from_db()
    assert entry.action == "job.created"


@pytest.mark.django_db
def test_trigger_rejects_the_orm_too(require_postgres, make_entry):
    entry = make_entry()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(actor_label="someone else")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.filter(pk=entry.pk, actor_label="system").exists()


@pytest.mark.django_db(transaction=True)
def test_prune_flag_does_not_outlive_the_transaction(require_postgres, make_entry):
    first, second = make_entry(), make_entry()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PRUNE_FLAG_SQL)
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [first.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [second.pk])
    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [second.pk]


@pytest.mark.django_db(transaction=True)
def test_prune_audit_gets_past_the_trigger_and_audits_itself(require_postgres, make_entry):
    old, recent = _old_entry(make_entry, days=40), _old_entry(make_entry, days=5)
    call_command("prune_audit", "--older-than", "30", stdout=io.StringIO())
    remaining = AuditEntry.objects.order_by("id")
    assert recent.pk in remaining.values_list("pk", flat=True)
    assert old.pk not in remaining.values_list("pk", flat=True)
    pruned = remaining.get(action="audit.pruned")
    assert pruned.changes["count"] == [None, 1]
    assert (pruned.source, pruned.actor_label, pruned.actor_id) == ("command", "system:prune_audit", None)
    # ...and the trail is append-only again right after.
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=recent.pk).delete()


# The two tests below run in this order: the first commits rows for real and leaves them to Django's flush (a
# TRUNCATE of every table, which the trigger would reject without the test-only hook in audit.testing); the second
# proves the flush went through and the database is usable.
@pytest.mark.django_db(transaction=True)
def test_flush_after_a_transactional_test_1_commit_rows(require_postgres, make_entry):
    make_entry()
    make_entry()
    assert AuditEntry.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_flush_after_a_transactional_test_2_database_was_emptied(require_postgres, make_entry):
    assert AuditEntry.objects.count() == 0
    make_entry()
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_flush_is_let_through_only_by_the_test_hook(require_postgres, make_entry):
    from django.db.backends.postgresql.operations import DatabaseOperations

    make_entry()
    hooked = DatabaseOperations.sql_flush  # patched for the whole session by tests/conftest.py
    DatabaseOperations.sql_flush = hooked.__wrapped__  # Django's own
    try:
        with pytest.raises(CommandError, match="couldn't be flushed") as refused:
            call_command("flush", interactive=False, verbosity=0)
        assert isinstance(refused.value.__cause__, DatabaseError)
        assert "append-only: TRUNCATE" in str(refused.value.__cause__)
    finally:
        DatabaseOperations.sql_flush = hooked
    assert AuditEntry.objects.count() == 1
    call_command("flush", interactive=False, verbosity=0)
    assert AuditEntry.objects.count() == 0
