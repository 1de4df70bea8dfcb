"""prune_audit: the retention command deletes old entries and records itself (on any database)."""

from __future__ import annotations

import datetime
import io

import pytest
import time_machine
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from audit.services import audit_prune

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)


def _run(*args):
    out = io.StringIO()
    call_command("prune_audit", *args, stdout=out)
    return out.getvalue()


def test_prune_deletes_only_entries_older_than_the_cutoff_and_audits_itself(make_entry):
    old = make_entry(at=NOW - datetime.timedelta(days=31))
    older = make_entry(at=NOW - datetime.timedelta(days=400))
    kept = make_entry(at=NOW - datetime.timedelta(days=29))
    with time_machine.travel(NOW, tick=False):
        output = _run("--older-than", "30")
    assert "Deleted 2 audit entries" in output
    remaining = set(AuditEntry.objects.values_list("pk", flat=True))
    assert kept.pk in remaining and old.pk not in remaining and older.pk not in remaining
    pruned = AuditEntry.objects.get(action="audit.pruned")
    cutoff = NOW - datetime.timedelta(days=30)
    assert pruned.changes == {
        "count": [None, 2],
        "cutoff": [None, cutoff.isoformat()],
        "older_than_days": [None, 30],
    }
    assert pruned.at == NOW
    assert (pruned.actor_id, pruned.actor_label, pruned.source) == (None, "system:prune_audit", "command")
    assert pruned.object_type == "auditentry"


def test_prune_with_nothing_to_delete_still_records_that_it_ran(make_entry):
    make_entry(at=NOW)
    with time_machine.travel(NOW, tick=False):
        _run("--older-than", "1")
    assert AuditEntry.objects.get(action="audit.pruned").changes["count"] == [None, 0]
    assert AuditEntry.objects.count() == 2


@pytest.mark.parametrize("args", [[], ["--older-than", "0"], ["--older-than", "-3"], ["--older-than", "ten"]])
def test_prune_rejects_missing_or_bad_retention(make_entry, args):
    make_entry(at=NOW - datetime.timedelta(days=1000))
    with pytest.raises(CommandError):
        _run(*args)
    assert AuditEntry.objects.count() == 1
    assert not AuditEntry.objects.filter(action="audit.pruned").exists()


@pytest.mark.parametrize("days", [0, -1, True, 1.5, "3"])
def test_the_service_refuses_bad_retention_too(days):
    with pytest.raises(ValueError):
        audit_prune(older_than_days=days)
