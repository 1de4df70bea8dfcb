"""Helpers for the audit tests: entries are written through ``audit.services`` (never with the ORM directly)."""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record

T0 = datetime.datetime(2030, 1, 10, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def make_entry(db):
    """``make_entry(action=..., at=..., ...)``: one entry written by ``audit_record`` in its own transaction."""

    def make(**kwargs):
        kwargs.setdefault("actor", None)
        kwargs.setdefault("action", "job.updated")
        if "obj" not in kwargs:
            kwargs.setdefault("object_type", "job")
            kwargs.setdefault("object_id", 1)
        kwargs.setdefault("at", timezone.now())
        with transaction.atomic():
            return audit_record(**kwargs)

    return make
