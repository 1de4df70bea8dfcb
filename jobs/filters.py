"""Query parameters of the job and task lists. Unknown choices, bad dates or numbers and unknown ordering fields
are 400s with field errors (django-filter validates them), never silently ignored."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from jobops.filters import IdFilter, RepeatedOrCSVWidget, StrictBooleanFilter

from . import rules
from .models import Job, JobTask

PRIORITY_RANK = Case(
    *(When(priority=priority, then=Value(rank)) for priority, rank in rules.PRIORITY_RANK.items()),
    default=Value(-1),
    output_field=IntegerField(),
)


class JobOrderingFilter(django_filters.OrderingFilter):
    """Ordering by ``scheduled_date``, ``priority`` (by rank: low < medium < high < urgent), ``created_at`` or
    ``status``; ``-`` for descending; several comma-separated or repeated (the same). ``id`` always breaks ties."""

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if not value:
            return qs
        ordering = [self.get_ordering_value(param) for param in value]
        if any(term.lstrip("-") == "priority_rank" for term in ordering):
            qs = qs.annotate(priority_rank=PRIORITY_RANK)
        return qs.order_by(*ordering, "id")


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Job.Status.choices)
    priority = django_filters.ChoiceFilter(choices=Job.Priority.choices)
    assigned_to = IdFilter(field_name="assigned_to_id")
    created_by = IdFilter(field_name="created_by_id")
    overdue = StrictBooleanFilter()
    scheduled_after = django_filters.DateFilter(field_name="scheduled_date", lookup_expr="gte")
    scheduled_before = django_filters.DateFilter(field_name="scheduled_date", lookup_expr="lte")
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="In title and client name.")
    ordering = JobOrderingFilter(
        fields=(
            ("scheduled_date", "scheduled_date"),
            ("priority_rank", "priority"),
            ("created_at", "created_at"),
            ("status", "status"),
        ),
        widget=RepeatedOrCSVWidget,
    )

    class Meta:
        model = Job
        fields: list[str] = []

    def filter_search(self, qs: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        value = value.strip()
        if not value:
            return qs
        return qs.filter(Q(title__icontains=value) | Q(client_name__icontains=value))


class TaskFilter(django_filters.FilterSet):
    job = IdFilter(field_name="job_id")
    status = django_filters.ChoiceFilter(choices=JobTask.Status.choices)
    scheduled_after = django_filters.DateFilter(field_name="job__scheduled_date", lookup_expr="gte")
    scheduled_before = django_filters.DateFilter(field_name="job__scheduled_date", lookup_expr="lte")

    class Meta:
        model = JobTask
        fields: list[str] = []
