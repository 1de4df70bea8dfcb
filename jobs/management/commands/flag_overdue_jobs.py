"""``manage.py flag_overdue_jobs [--date YYYY-MM-DD]``: run the overdue sweep now and print what changed."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from jobops.context import audit_context
from jobs.sweep import SYSTEM_ACTOR, jobs_flag_overdue


class Command(BaseCommand):
    help = "Flag open jobs scheduled before today (in TIME_ZONE) as overdue and clear stale flags (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date",
            dest="today",
            help="Sweep as if today were this date (YYYY-MM-DD); default: today in TIME_ZONE.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        raw = options.get("today")
        try:
            today = datetime.date.fromisoformat(raw) if raw else timezone.localdate()
        except ValueError:
            raise CommandError(f"--date must be YYYY-MM-DD, got {raw!r}") from None
        with audit_context(source="command", system=SYSTEM_ACTOR):
            result = jobs_flag_overdue(today=today)
        self.stdout.write(
            f"Overdue sweep for {result.today.isoformat()}: flagged {result.flagged}, cleared {result.cleared}, "
            f"notifications queued {result.notifications}."
        )
