"""``manage.py prune_audit --older-than DAYS``: the retention policy, and the only sanctioned way to delete entries."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_prune
from jobops.context import audit_context


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if days < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return days


class Command(BaseCommand):
    help = (
        "Delete audit entries older than DAYS days, in one transaction that also writes an audit.pruned entry "
        "(count and cutoff). On PostgreSQL this is the only way past the audit table's append-only trigger."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            dest="older_than",
            type=_days,
            required=True,
            metavar="DAYS",
            help="Retention in days (>= 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with audit_context(source="command", system="prune_audit"):
            try:
                result = audit_prune(older_than_days=options["older_than"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(f"Deleted {result.deleted} audit entries older than {result.cutoff.isoformat()}.")
