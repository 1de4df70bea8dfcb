"""Query parameters of the audit list. Bad ids, dates and over-long strings are 400s with field errors."""

from __future__ import annotations

import datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field

from jobops.filters import IdFilter

from .models import AuditEntry


class InstantField(forms.Field):
    """An ISO 8601 date-time (``2030-01-31T12:00:00Z``; without an offset it is read in ``TIME_ZONE``) or a bare
    date (``2030-01-31``). Cleans to ``(aware datetime, is_date)``; the filter decides what a date means."""

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date-time (2030-01-31T12:00:00Z) or date (2030-01-31).",
    }

    def to_python(self, value: Any) -> tuple[datetime.datetime, bool] | None:
        if value in (None, ""):
            return None
        text = str(value).strip()
        # An unencoded "+02:00" offset arrives as " 02:00" (a "+" in a query string is a space).
        text = text[:11] + text[11:].replace(" ", "+")
        try:
            # The date first: parse_datetime() would also read a bare date, as midnight.
            day = parse_date(text)
            if day is not None:
                start = timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
                return start.astimezone(datetime.UTC), True
            moment = parse_datetime(text)
            if moment is not None:
                if timezone.is_naive(moment):
                    moment = timezone.make_aware(moment)
                # Normalised to UTC here, so a date-time at the edge of the calendar is a 400, not a 500 later.
                return moment.astimezone(datetime.UTC), False
        except (ValueError, OverflowError):
            pass
        raise ValidationError(self.error_messages["invalid"], code="invalid")


# Documented as a date-time, one type that clients generate as a datetime; a bare date is still accepted (see above).
@extend_schema_field({"type": "string", "format": "date-time"})
class InstantFilter(django_filters.Filter):
    """``at_after`` (inclusive; a date means from the start of that day) or ``at_before`` (inclusive; a date means
    up to the end of that day), both in ``TIME_ZONE`` when no offset is given."""

    field_class = InstantField

    def __init__(self, *args: Any, bound: str, **kwargs: Any) -> None:
        self.bound = bound
        super().__init__(*args, field_name="at", **kwargs)

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if not value:
            return qs
        moment, is_date = value
        if self.bound == "after":
            return qs.filter(at__gte=moment)
        if is_date:
            try:
                next_day = timezone.localtime(moment).date() + datetime.timedelta(days=1)
            except OverflowError:  # the last day of the calendar: no upper bound at all
                return qs
            return qs.filter(at__lt=timezone.make_aware(datetime.datetime.combine(next_day, datetime.time.min)))
        return qs.filter(at__lte=moment)


class AuditFilter(django_filters.FilterSet):
    actor = IdFilter(field_name="actor_id", help_text="The acting user's id.")
    action = django_filters.CharFilter(max_length=64, help_text="A dotted action, exactly (e.g. `job.updated`).")
    object_type = django_filters.CharFilter(max_length=32, help_text="e.g. `job`, `jobtask`, `user`, `equipment`.")
    object_id = IdFilter(field_name="object_id", help_text="The changed object's id (use with `object_type`).")
    job = IdFilter(field_name="job_id", help_text="Entries of this job and of its tasks.")
    at_after = InstantFilter(
        bound="after",
        help_text="From this ISO 8601 date-time (inclusive), e.g. `2030-01-31T12:00:00Z`; no offset means `TIME_ZONE`.",
    )
    at_before = InstantFilter(
        bound="before",
        help_text="Up to this ISO 8601 date-time (inclusive), e.g. `2030-01-31T18:00:00+02:00`.",
    )

    class Meta:
        model = AuditEntry
        fields: list[str] = []
