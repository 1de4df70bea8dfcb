"""Strict serializer fields: JSON types are checked, not coerced.

DRF's defaults turn ``0`` into ``"0"`` for a CharField, accept ``0``/``"yes"`` for a BooleanField and iterate a
dict's keys for a many-related field. The published schema says string, boolean and array, and the contract says a
wrong type is a 400, so write serializers use these instead.
"""

from __future__ import annotations

import datetime
import enum
import re
from typing import Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import (
    MaxLengthValidator,
    MinLengthValidator,
    ProhibitNullCharactersValidator,
    RegexValidator,
)
from django.db.models import Manager
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty, get_error_detail
from rest_framework.relations import MANY_RELATION_KWARGS
from rest_framework.serializers import LIST_SERIALIZER_KWARGS, LIST_SERIALIZER_KWARGS_REMOVE
from rest_framework.validators import ProhibitSurrogateCharactersValidator

#: An integer written in ASCII digits, as every integer query parameter must be: ``int()`` would also take " 7 ",
#: "+7", "7_0" and other scripts' digits such as "٧", which the API answers with a 400. The one home of the rule.
ASCII_INTEGER = re.compile(r"-?[0-9]+")


#: What ``str.strip()`` removes (``str.isspace()``): DRF trims these around every text unless told not to.
WHITESPACE = frozenset(code for code in range(0x3001) if chr(code).isspace())

_C0, _DEL_C1 = frozenset(range(0x20)), frozenset(range(0x7F, 0xA0))


class Text(enum.Enum):
    """Which characters a text field accepts (README, "Text input"). Each kind is a pattern the field checks on the
    text as sent and the OpenAPI schema publishes (``pattern``), so what the schema says is what is checked:

    * ``LINE`` (names, titles, usernames, phone numbers; the default): no control character at all, C0
      (U+0000-U+001F: tab and line breaks included), DEL and C1 (U+007F-U+009F), and no Unicode line or paragraph
      separator (U+2028, U+2029).
    * ``MULTILINE`` (descriptions): the same, except tab, line feed and carriage return (and U+2028, U+2029).
    * ``ANY`` (secrets: passwords and refresh tokens, whatever their owner typed or was given): anything but NUL.

    NUL is refused everywhere (PostgreSQL cannot store it), and so are unpaired surrogates (U+D800-U+DFFF written as
    ``\\ud800`` escapes: not Unicode text; no JSON Schema keyword can say so, DRF refuses them). A field that trims
    and may not be blank publishes the pattern's ``non_blank`` form: at least one character that is not whitespace.
    """

    LINE = "line"
    MULTILINE = "multiline"
    ANY = "any"

    @property
    def refused(self) -> frozenset[int]:
        """The code points this kind refuses."""
        if self is Text.LINE:
            return _C0 | _DEL_C1 | {0x2028, 0x2029}
        if self is Text.MULTILINE:
            return (_C0 - {0x09, 0x0A, 0x0D}) | _DEL_C1
        return frozenset({0x00})

    @property
    def message(self) -> str:
        return {
            Text.LINE: "Control characters and line breaks are not allowed.",
            Text.MULTILINE: "Control characters other than tab, line feed and carriage return are not allowed.",
            Text.ANY: "Null characters are not allowed.",
        }[self]

    def pattern(self, *, non_blank: bool = False) -> str:
        """The kind as a Python pattern that drf-spectacular can publish: ``\\xNN``/``\\uNNNN`` escapes (published
        as ``\\u00NN``/``\\uNNNN``) and ``\\A``/``\\Z`` (published as ``^``/``$``). ``+``, not ``*``: the empty text is
        the blank rule's (``allow_blank``), and drf-spectacular publishes a blank-allowed field as ``oneOf:
        [{pattern}, {maxLength: 0}]``, which "" must match once only. Written so that no input backtracks more than
        linearly (the leading whitespace class and the first other character are disjoint)."""
        refused = _char_class(self.refused)
        if not non_blank:
            return rf"\A[^{refused}]+\Z"
        blank = _char_class(WHITESPACE - self.refused)
        return rf"\A[{blank}]*[^{_char_class(self.refused | WHITESPACE)}][^{refused}]*\Z"

    def validator(self, *, non_blank: bool = False) -> TextValidator:
        return TextValidator(re.compile(self.pattern(non_blank=non_blank)), message=self.message)


def _char_class(codes: frozenset[int]) -> str:
    """The body of a regex character class holding exactly ``codes`` (ranges merged, every character escaped)."""

    def escape(code: int) -> str:
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    parts: list[str] = []
    ordered = sorted(codes)
    start = previous = ordered[0]
    for code in [*ordered[1:], -1]:
        if code == previous + 1:
            previous = code
            continue
        parts.append(escape(start) if start == previous else f"{escape(start)}-{escape(previous)}")
        start = previous = code
    return "".join(parts)


class TextValidator(RegexValidator):
    """The character rule of a ``Text`` kind (a ``RegexValidator``, so drf-spectacular publishes it as ``pattern``).
    A text made of whitespace alone, refused by a ``non_blank`` pattern, gets DRF's "blank" message."""

    code = "invalid_characters"

    def __call__(self, value: Any) -> None:
        try:
            super().__call__(value)
        except DjangoValidationError:
            if isinstance(value, str) and value.isspace():  # the same set as WHITESPACE
                raise serializers.ValidationError(
                    serializers.CharField.default_error_messages["blank"], code="blank"
                ) from None
            raise


#: The validators of a text field that depend on its characters alone: they hold for the text as the client sent
#: it (``StrictCharField.run_validation``), and again after trimming (DRF's own run: a trimmed text passes a length
#: or character rule its untrimmed text passed, so that second run can only agree).
_AS_SENT = (
    MaxLengthValidator,
    MinLengthValidator,
    RegexValidator,
    ProhibitNullCharactersValidator,
    ProhibitSurrogateCharactersValidator,
)


class StrictCharField(serializers.CharField):
    """A JSON string only (numbers, booleans, lists and objects are a 400), checked as the client sent it.

    Every text input of the API is one of these (``StrictModelSerializer`` maps model text fields to it), so the
    rules below hold everywhere:

    * ``max_length``, ``min_length`` and every pattern (``Text`` kind, ``UnicodeUsernameValidator`` ...) are checked
      on the text as sent, *before* DRF trims surrounding whitespace: the schema's ``maxLength`` and ``pattern``
      describe the request body, and Python's ``str.strip()`` also removes characters (U+001C-U+001F, U+0085,
      U+3000 ...) a client does not think of as whitespace. DRF alone trimmed first, then checked, so 10,001
      U+001D characters passed ``maxLength: 10000`` and were stored as ``""``.
    * The characters allowed are the field's ``text`` kind (``Text.LINE`` unless said otherwise).
    * Then DRF's rules apply unchanged: surrounding whitespace trimmed (unless ``trim_whitespace=False``), and a
      text left empty by it is "blank" (a 400 unless ``allow_blank``).
    """

    text = Text.LINE

    def __init__(self, *, text: Text | None = None, **kwargs: Any) -> None:
        if text is not None:
            self.text = text
        super().__init__(**kwargs)
        # Every kind refuses NUL with its own message: one error for one fault.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.validators.append(self.text.validator(non_blank=self.trim_whitespace and not self.allow_blank))

    def run_validation(self, data: Any = empty) -> Any:
        if isinstance(data, str) and data:
            self._validate_as_sent(data)
        return super().run_validation(data)

    def _validate_as_sent(self, data: str) -> None:
        errors: list[Any] = []
        for validator in self.validators:
            if not isinstance(validator, _AS_SENT):
                continue
            try:
                # DRF's convention (``Field.run_validators``): a validator that needs its field says so.
                if getattr(validator, "requires_context", False):
                    cast(Any, validator)(data, self)
                else:
                    validator(data)
            except serializers.ValidationError as exc:
                errors.extend(cast(list[Any], exc.detail))
            except DjangoValidationError as exc:
                errors.extend(get_error_detail(exc))
        if errors:
            raise serializers.ValidationError(errors)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictMultilineCharField(StrictCharField):
    """A ``StrictCharField`` of kind ``Text.MULTILINE`` (descriptions; the mapping of a model ``TextField``)."""

    text = Text.MULTILINE


class StrictEmailField(StrictCharField, serializers.EmailField):
    """An e-mail address under the ``StrictCharField`` rules (``format: email`` in the schema, DRF's check)."""


class StrictURLField(StrictCharField, serializers.URLField):
    """A URL under the ``StrictCharField`` rules (``format: uri`` in the schema, DRF's check): its length holds for
    the text as sent, and it holds no control character."""


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
    for text_field in (models.CharField, models.SlugField):
        mapping[text_field] = StrictCharField
    mapping[models.TextField] = StrictMultilineCharField
    mapping[models.EmailField] = StrictEmailField
    mapping[models.BooleanField] = StrictBooleanField
    for integer_field in (models.IntegerField, models.PositiveIntegerField, models.BigIntegerField):
        mapping[integer_field] = StrictIntegerField
    ReadModelSerializer.serializer_field_mapping[models.DateTimeField] = UTCDateTimeField


_strict_mapping()
