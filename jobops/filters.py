"""Shared django-filter pieces that reject bad values (400) instead of silently ignoring them."""

from __future__ import annotations

from typing import Any

import django_filters
import django_filters.rest_framework
from django import forms
from django.core.exceptions import ValidationError
from django_filters.widgets import BaseCSVWidget
from drf_spectacular.utils import extend_schema_field

from jobops.fields import ASCII_INTEGER

# What IdField accepts, so the OpenAPI schema (and clients generated from it) agrees with the 400s.
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


class StrictBooleanField(forms.Field):
    TRUE = frozenset({"true", "1", "yes"})
    FALSE = frozenset({"false", "0", "no"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValidationError("Enter true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        return None


class StrictBooleanFilter(django_filters.BooleanFilter):
    """``?flag=true|false`` (also 1/0, yes/no); anything else is a 400."""

    field_class = StrictBooleanField


class IdField(forms.IntegerField):
    """An object id: an integer that fits the database's bigint (larger values would be a 500, not a 400)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> int | None:
        # ASCII digits only: Django's IntegerField also takes " 7 ", "+7", "7.0" and non-ASCII digits such as "٧".
        if isinstance(value, str) and value and not ASCII_INTEGER.fullmatch(value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


@extend_schema_field(ID_SCHEMA)
class IdFilter(django_filters.NumberFilter):
    """``?field=<id>``: a positive integer; anything else is a 400."""

    field_class = IdField


class RepeatedOrCSVWidget(BaseCSVWidget, forms.TextInput):
    """A list parameter sent comma-separated (``?ordering=a,-b``), repeated (``?ordering=a&ordering=-b``, what
    generated clients send for an array) or both: the same keys in the same order. django-filter's CSV widget
    reads only the last of repeated values, which would drop keys silently."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        values = data.getlist(name) if hasattr(data, "getlist") else []
        if len(values) > 1:
            return [part for value in values for part in str(value).split(",")]
        return super().value_from_datadict(data, files, name)


class FilterBackend(django_filters.rest_framework.DjangoFilterBackend):
    """django-filter, minus its cost when a request sends none of the view's filter parameters.

    Building a FilterSet deep-copies every filter and builds a form (about a millisecond per list request); with no
    filter parameter there is nothing to validate or apply, so the queryset is returned as it is.
    """

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        if not any(name in request.query_params for name in filterset_class.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)
