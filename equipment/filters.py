"""Query parameters of the equipment list. Unknown choices and bad booleans are 400s with field errors."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from jobops.filters import StrictBooleanFilter, TextFilter

from .models import Equipment


class EquipmentFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=Equipment.Type.choices)
    is_active = StrictBooleanFilter()
    search = TextFilter(method="filter_search", max_length=200, help_text="In name, serial number and description.")

    class Meta:
        model = Equipment
        fields: list[str] = []

    def filter_search(self, qs: QuerySet[Equipment], name: str, value: str) -> QuerySet[Equipment]:
        value = value.strip()
        if not value:
            return qs
        return qs.filter(Q(name__icontains=value) | Q(serial_number__icontains=value) | Q(description__icontains=value))
