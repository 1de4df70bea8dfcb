"""Strict serializer fields: JSON types are checked, not coerced.

DRF's defaults turn ``0`` into ``"0"`` for a CharField, accept ``0``/``"yes"`` for a BooleanField and iterate a
dict's keys for a many-related field. The published schema says string, boolean and array, and the contract says a
wrong type is a 400, so write serializers use these instead.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, cast

from django.core.validators import MaxLengthValidator
from django.db.models import Manager
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.relations import MANY_RELATION_KWARGS
from rest_framework.serializers import LIST_SERIALIZER_KWARGS, LIST_SERIALIZER_KWARGS_REMOVE

#: An integer written in ASCII digits, as every integer query parameter must be: ``int()`` would also take " 7 ",
#: "+7", "7_0" and other scripts' digits such as "٧", which the API answers with a 400. The one home of the rule.
ASCII_INTEGER = re.compile(r"-?[0-9]+")


class StrictCharField(serializers.CharField):
    """A JSON string only; numbers, booleans, lists and objects are a 400."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (not ``"3"``, ``3.5`` or ``true``)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter written in ASCII digits (DRF's IntegerField also takes ``7.0``, `` 7 `` and
    other scripts' digits, which the rest of the API answers with a 400)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not ASCII_INTEGER.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


#: The most ids a write may send in one list of related objects (``required_equipment``): 400 beyond it. Published
#: as the field's ``maxItems`` in the OpenAPI schema.
MAX_RELATED_IDS = 100

#: Ids outside a bigint can match no row (and some databases raise on them instead of answering "no").
_ID_RANGE = range(-(2**63), 2**63)


class StrictManyRelatedField(serializers.ManyRelatedField):
    """A JSON array of at most ``max_items`` integer ids (DRF would accept an object and use its keys, take any
    number of ids and look each one up with its own query). Duplicates count once (the first position wins) and
    the ids are resolved with one query; an unknown id is a 400 naming it."""

    default_error_messages = {"max_items": "Ensure this list has no more than {max_items} items."}

    def __init__(self, *args: Any, max_items: int = MAX_RELATED_IDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_items = max_items
        # Checked in to_internal_value before any lookup; the validator publishes the limit (maxItems) in the schema.
        self.validators.append(MaxLengthValidator(max_items))

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if not self.allow_empty and not data:
            self.fail("empty")
        if len(data) > self.max_items:
            self.fail("max_items", max_items=self.max_items)
        child = cast(StrictPrimaryKeyRelatedField, self.child_relation)
        for item in data:
            if isinstance(item, bool) or not isinstance(item, int):
                child.fail("incorrect_type", data_type=type(item).__name__)
        ids = list(dict.fromkeys(data))
        queryset = child.get_queryset()
        found = queryset.in_bulk([pk for pk in ids if pk in _ID_RANGE]) if queryset is not None else {}
        missing = next((pk for pk in ids if pk not in found), None)
        if missing is not None:
            child.fail("does_not_exist", pk_value=missing)
        return [found[pk] for pk in ids]


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An integer id only (not ``"3"``, ``true`` or ``3.0``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> StrictManyRelatedField:
        list_kwargs: dict[str, Any] = {"child_relation": cls(*args, **kwargs)}
        for key in kwargs:
            if key in MANY_RELATION_KWARGS:
                list_kwargs[key] = kwargs[key]
        return StrictManyRelatedField(**list_kwargs)


class UTCDateTimeField(serializers.DateTimeField):
    """A datetime rendered in UTC (``...Z``), whatever ``TIME_ZONE`` is: ``TIME_ZONE`` only decides what "today" is.
    Input with an offset is converted as DRF does; naive input is read as UTC."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_timezone", datetime.UTC)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.INT)
class RelatedCountField(serializers.Field):
    """The number of the object's related rows ``relation`` (a reverse foreign key), those matching ``filter`` only
    when given: a declared count, rendered by ``jobops.jsonshape`` as a correlated ``COUNT`` subquery."""

    def __init__(self, *, relation: str, filter: dict[str, Any] | None = None, **kwargs: Any) -> None:  # noqa: A002
        kwargs.update(source="*", read_only=True)
        self.relation = relation
        self.filter = dict(filter or {})
        super().__init__(**kwargs)

    def to_representation(self, instance: Any) -> int:
        return int(getattr(instance, self.relation).filter(**self.filter).count())


class OrderedListSerializer(serializers.ListSerializer):
    """A nested list in the order its child serializer declares (``Meta.ordering``), as ``jobops.jsonshape`` renders
    it; a related manager is ordered accordingly (a list given as it is is left alone)."""

    def to_representation(self, data: Any) -> list[Any]:
        ordering = getattr(getattr(self.child, "Meta", None), "ordering", None)
        if ordering and isinstance(data, Manager):
            data = data.order_by(*ordering)
        return super().to_representation(data)


class ReadModelSerializer(serializers.ModelSerializer):
    # The base of every read serializer: model datetimes render in UTC (``UTCDateTimeField``), and a ``many=True``
    # nesting follows ``Meta.ordering`` (``OrderedListSerializer``). A comment, not a docstring: drf-spectacular would
    # publish it as the description of every read schema.

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
    }

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> serializers.ListSerializer:
        list_kwargs: dict[str, Any] = {}
        for key in LIST_SERIALIZER_KWARGS_REMOVE:
            value = kwargs.pop(key, None)
            if value is not None:
                list_kwargs[key] = value
        list_kwargs["child"] = cls(*args, **kwargs)
        list_kwargs.update({key: value for key, value in kwargs.items() if key in LIST_SERIALIZER_KWARGS})
        return OrderedListSerializer(*args, **list_kwargs)


class StrictModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose generated text and boolean fields are strict about JSON types."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
    }
    serializer_related_field = StrictPrimaryKeyRelatedField


def _strict_mapping() -> None:
    from django.db import models

    mapping = StrictModelSerializer.serializer_field_mapping
    for text_field in (models.CharField, models.TextField, models.SlugField):
        mapping[text_field] = StrictCharField
    mapping[models.BooleanField] = StrictBooleanField
    for integer_field in (models.IntegerField, models.PositiveIntegerField, models.BigIntegerField):
        mapping[integer_field] = StrictIntegerField
    ReadModelSerializer.serializer_field_mapping[models.DateTimeField] = UTCDateTimeField


_strict_mapping()
