"""Fast renderers for the hot read paths (job list, task lists).

The list endpoints are polled by every mobile client, so they skip model instantiation and DRF field machinery:
the selectors return ``values()`` rows and these functions turn them into exactly what the read serializers
produce (same keys, same order, DRF's ISO 8601 datetimes in the current time zone with ``Z`` for UTC). A test
compares both outputs field by field, so the documented serializers stay the contract.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from django.utils import timezone

from .serializers import JobReadSerializer

#: The fields of ``JobReadSerializer``: the documented shape is the single source of the list's keys.
JOB_LIST_FIELDS = tuple(JobReadSerializer.Meta.fields)
#: ``values()`` names for the fields above (foreign keys by their column).
JOB_LIST_VALUES = tuple(
    {"assigned_to": "assigned_to_id", "created_by": "created_by_id"}.get(f, f) for f in JOB_LIST_FIELDS
)


def format_datetime(value: datetime.datetime | None) -> str | None:
    """DRF's DateTimeField output: current time zone, ISO 8601, ``Z`` instead of ``+00:00``."""
    if value is None:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_date(value: datetime.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    fmt_dt = format_datetime
    return [
        {
            "id": row["id"],
            "title": row["title"],
            "description": row["description"],
            "client_name": row["client_name"],
            "status": row["status"],
            "priority": row["priority"],
            "scheduled_date": format_date(row["scheduled_date"]),
            "overdue": row["overdue"],
            "assigned_to": row["assigned_to_id"],
            "created_by": row["created_by_id"],
            "created_at": fmt_dt(row["created_at"]),
            "updated_at": fmt_dt(row["updated_at"]),
            "completed_at": fmt_dt(row["completed_at"]),
            "tasks_total": row["tasks_total"],
            "tasks_completed": row["tasks_completed"],
        }
        for row in rows
    ]
