"""The audit trail's only writer.

Every write service calls ``audit_record`` (or ``audit_record_many`` for set-based changes) inside its own
transaction, so a change and its entry commit together or not at all. Actor, request id and source are explicit or
come from ``jobops.context`` (set by the request middleware, the admin, Celery tasks and management commands); no
signals are involved, so bulk updates, background work and JWT requests are all recorded.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from jobops.context import request_id_var, source_var, system_actor_var

from .models import AuditEntry

# Never written to the trail, whatever a caller passes.
SECRET_FIELDS = frozenset({"password", "last_login"})


def _plain(value: Any) -> Any:
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return sorted(_plain(v) for v in value) if isinstance(value, set | frozenset) else [_plain(v) for v in value]
    return value


def audit_snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-ready values of ``fields`` on ``obj``; foreign keys as ids."""
    snapshot: dict[str, Any] = {}
    for name in fields:
        if name in SECRET_FIELDS:
            continue
        field = obj._meta.get_field(name)
        if field.many_to_many:
            continue
        if field.is_relation:
            snapshot[name] = getattr(obj, field.attname)
        else:
            snapshot[name] = _plain(getattr(obj, name))
    return snapshot


def audit_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the fields whose value changed."""
    return {
        key: [_plain(before.get(key)), _plain(after.get(key))]
        for key in after
        if key not in SECRET_FIELDS and _plain(before.get(key)) != _plain(after.get(key))
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
    """An unsaved entry (for ``audit_record_many``)."""
    actor_id, actor_label = _actor_fields(actor)
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id if object_id is not None else obj.pk
        object_repr = object_repr if object_repr is not None else str(obj)
    clean_changes = {k: v for k, v in (changes or {}).items() if k not in SECRET_FIELDS}
    return AuditEntry(
        at=at or timezone.now(),
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        object_type=object_type or "",
        object_id=object_id,
        object_repr=(object_repr or "")[:255],
        job_id=job_id,
        changes=clean_changes,
        request_id=request_id_var.get(),
        source=source_var.get(),
    )


def audit_record(**kwargs: Any) -> AuditEntry:
    """Write one audit entry. Must run inside the transaction of the change it records.

    Accepts the arguments of ``audit_build``: ``actor`` (a user, or None for the system; the system's label comes
    from the current ``audit_context``), a dotted ``action`` such as ``job.updated``, the object (or its type, id
    and repr), the ``job_id`` it belongs to and ``changes`` as ``{field: [old, new]}``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction of the change it records")
    entry = audit_build(**kwargs)
    entry.save(force_insert=True)
    return entry


def audit_record_many(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Write many entries in one statement (set-based changes: the overdue sweep, reorders)."""
    if not entries:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record_many must be called inside the transaction of the change it records")
    return AuditEntry.objects.bulk_create(entries, batch_size=1000)
