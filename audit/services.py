"""The audit trail's only writer.

Every write service calls ``audit_record`` (or ``audit_record_many`` for set-based changes) inside its own
transaction, so a change and its entry commit together or not at all. Actor, request id and source are explicit or
come from ``jobops.context`` (set by the request middleware, the admin, Celery tasks and management commands); no
signals are involved, so bulk updates, background work and JWT requests are all recorded.

The trail is append-only: nothing here updates an entry, and the only deletion is ``audit_prune`` (the
``prune_audit`` command), which on PostgreSQL must switch off the table's append-only trigger for its own transaction
(see ``audit/migrations/0002_append_only_trigger.py``) and records itself as an ``audit.pruned`` entry.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from django.db import connection, models, transaction
from django.utils import timezone

from jobops.context import request_id_var, source_var, system_actor_var

from .models import AuditEntry

#: Field names that are never written to the trail, whatever a caller passes (exact names).
SECRET_FIELDS = frozenset({"password", "last_login"})
# ... and any key containing one of these words (``new_password``, ``api_token``, ``client_secret``), at any depth.
_SECRET_WORDS = ("password", "secret", "token")

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

#: SQL that lets the current transaction delete audit rows on PostgreSQL (the trigger checks this setting). The
#: third argument ``true`` makes it ``SET LOCAL``: it ends with the transaction, so it never leaks to other work.
PRUNE_FLAG_SQL = "SELECT set_config('jobops.audit_prune', 'on', true)"


def _is_secret(key: Any) -> bool:
    name = str(key).lower()
    return name in SECRET_FIELDS or any(word in name for word in _SECRET_WORDS)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of ``value``: model instances as their ids, dates as ISO strings, secrets dropped."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=lambda v: (v is None, str(type(v)), v))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if not _is_secret(k)}
    if isinstance(value, models.QuerySet | models.Manager):
        return sorted(obj.pk for obj in value.all())
    return value


def audit_snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-ready values of ``fields`` on ``obj``, for ``audit_diff`` or a created/deleted entry.

    Foreign keys are taken as ids (no query); many-to-many fields as the sorted list of related ids (one query,
    none when prefetched). Secret fields (password hashes and the like) are skipped, so they can never reach an
    entry even when a caller lists them.
    """
    snapshot: dict[str, Any] = {}
    for name in fields:
        if _is_secret(name):
            continue
        field = obj._meta.get_field(name)
        if field.many_to_many:
            snapshot[name] = sorted(related.pk for related in getattr(obj, name).all()) if obj.pk else []
        elif field.is_relation:
            # A forward foreign key: callers list the model's own fields, never a reverse relation (no ``attname``).
            snapshot[name] = getattr(obj, cast("models.Field[Any, Any]", field).attname)
        else:
            snapshot[name] = _plain(getattr(obj, name))
    return snapshot


def audit_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the fields of ``after`` whose value differs from ``before`` (secrets skipped)."""
    return {
        key: [_plain(before.get(key)), _plain(after.get(key))]
        for key in after
        if not _is_secret(key) and _plain(before.get(key)) != _plain(after.get(key))
    }


def _actor_fields(actor: Any) -> tuple[int | None, str]:
    if actor is not None and getattr(actor, "pk", None) is not None:
        return actor.pk, actor.get_username()
    system = system_actor_var.get()
    return None, f"system:{system}" if system else "system"


def audit_build(
    *,
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: int | None = None,
    object_repr: str | None = None,
    job_id: int | None = None,
    changes: Mapping[str, Any] | None = None,
    at: datetime.datetime | None = None,
) -> AuditEntry:
    """An unsaved entry, for ``audit_record_many`` (``audit_record`` builds and saves one).

    ``actor`` is the acting user, or None for the system: the label then comes from the current ``audit_context``
    (``system:<task or command>``). ``action`` is a dotted verb such as ``job.updated`` (anything else is a
    programming error: ``ValueError``). The object is given as ``obj`` (its model name, pk and ``str()``) or as
    ``object_type``/``object_id``/``object_repr``; explicit values win. ``job_id`` ties the entry to a job's
    history (task entries carry their job's id). ``changes`` is ``{field: [old, new]}``; secret keys are dropped and
    values made JSON-ready. Request id and source come from ``jobops.context``.
    """
    if not _ACTION.match(action):
        raise ValueError(f"Audit actions are dotted lower-case verbs such as 'job.updated', not {action!r}.")
    actor_id, actor_label = _actor_fields(actor)
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id if object_id is not None else obj.pk
        object_repr = object_repr if object_repr is not None else str(obj)
    return AuditEntry(
        at=at or timezone.now(),
        actor_id=actor_id,
        actor_label=actor_label[:150],
        action=action,
        object_type=(object_type or "")[:32],
        object_id=object_id,
        object_repr=(object_repr or "")[:255],
        job_id=job_id,
        changes=_plain(dict(changes or {})),
        request_id=request_id_var.get(),
        source=source_var.get(),
    )


def _ensure_in_transaction(what: str) -> None:
    # A test case wraps every test in an atomic block of its own; that one does not count, so a service that forgot
    # its @transaction.atomic fails in the test suite too, not only in production.
    if not any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise RuntimeError(f"{what} must be called inside the transaction of the change it records")


def audit_record(**kwargs: Any) -> AuditEntry:
    """Write one audit entry. Must run inside the transaction of the change it records (``RuntimeError`` otherwise).

    Takes the keyword arguments of ``audit_build``: ``actor``, ``action``, the object (``obj``, or ``object_type``,
    ``object_id``, ``object_repr``), ``job_id``, ``changes`` and optionally ``at``. Called by every write service
    (jobs, tasks, users, equipment, notifications) and by ``audit_prune``; never by views, signals or serializers.
    """
    _ensure_in_transaction("audit_record")
    entry = audit_build(**kwargs)
    entry.save(force_insert=True)
    return entry


def audit_record_many(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Write many entries built with ``audit_build`` in bulk (set-based changes: the overdue sweep, reorders).

    Same rule as ``audit_record``: inside the transaction of the change, so the entries commit with it.
    """
    if not entries:
        return []
    _ensure_in_transaction("audit_record_many")
    return AuditEntry.objects.bulk_create(entries, batch_size=1000)


@dataclasses.dataclass(frozen=True)
class PruneResult:
    deleted: int
    cutoff: datetime.datetime
    entry: AuditEntry


@transaction.atomic
def audit_prune(*, older_than_days: int, now: datetime.datetime | None = None) -> PruneResult:
    """Delete the entries written more than ``older_than_days`` days before ``now`` (the retention policy).

    The only sanctioned deletion of audit rows, used by the ``prune_audit`` command. ``older_than_days`` must be at
    least 1, so a slip cannot wipe the trail. On PostgreSQL it sets ``jobops.audit_prune = on`` for this transaction
    only, which the append-only trigger requires. In the same transaction it writes one ``audit.pruned`` entry with
    the number of entries deleted and the cutoff, so pruning is itself audited (also when nothing was old enough).
    """
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or older_than_days < 1:
        raise ValueError("older_than_days must be a whole number of days, at least 1.")
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=older_than_days)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(PRUNE_FLAG_SQL)
    # No foreign key points at audit rows and there are no delete signals, so this is one DELETE statement.
    deleted, _ = AuditEntry.objects.filter(at__lt=cutoff).delete()
    entry = audit_record(
        actor=None,
        action="audit.pruned",
        object_type="auditentry",
        object_repr=f"{deleted} entries older than {cutoff.isoformat()}",
        changes={
            "count": [None, deleted],
            "cutoff": [None, cutoff],
            "older_than_days": [None, older_than_days],
        },
        at=now,
    )
    return PruneResult(deleted=deleted, cutoff=cutoff, entry=entry)
