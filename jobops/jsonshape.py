"""Response bodies rendered by the database, derived from a read serializer's declaration.

A read serializer declares a response shape once. For the most polled reads, this module turns that declaration into
ORM expressions that compile to ``json_build_object``/``json_agg`` on PostgreSQL and ``json_object``/
``json_group_array`` on SQLite, so the database returns each row's body as JSON text and Python only joins bytes: no
model instances, no per-field serializer walk. Nothing is written twice: the keys, their order, their types and the
nested shapes all come from the serializer's fields, and identifiers and values go through the ORM (keys and constants
are query parameters).

Supported serializer fields, with DRF's rendering reproduced exactly (tests compare both renderings whole, on every
database): integers and primary keys (``IntegerField``, ``PrimaryKeyRelatedField``), text (``CharField``,
``ChoiceField``, ``EmailField``), ``BooleanField``, ``DateField``, ``DateTimeField`` (ISO 8601 in UTC, ``Z``,
microseconds only when non-zero: ``jobops.fields.UTCDateTimeField``), a nested serializer on the same row
(``source="*"``), and a nested ``many=True`` serializer over a reverse foreign key or a many-to-many relation. Anything
else (a ``DecimalField``, a ``SerializerMethodField``, a custom format) raises ``ImproperlyConfigured`` when the
expression is built, so a new field cannot render differently here than through the serializer.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable
from typing import Any

import orjson
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, Func, IntegerField, Model, OuterRef, QuerySet, Subquery, TextField, Value
from django.db.models.expressions import Combinable, Expression
from django.db.models.functions import Cast
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

__all__ = ["count_of", "json_array", "json_object", "json_text", "render_array"]


class _JSONObject(Func):
    """``json_build_object(k1, v1, ...)`` (PostgreSQL, keys in the given order) / ``json_object(...)`` (SQLite)."""

    output_field = TextField()

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        expressions: list[Any] = []
        for key, value in pairs:
            expressions.extend((Value(key), value))
        super().__init__(*expressions)

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        raise ImproperlyConfigured(f"Database-rendered JSON is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # Keys cast to text: with server-side parameter binding PostgreSQL cannot infer a parameter's type in "any".
        copy = self.copy()
        copy.set_source_expressions(
            [Cast(e, TextField()) if i % 2 == 0 else e for i, e in enumerate(copy.get_source_expressions())]
        )
        return super(_JSONObject, copy).as_sql(compiler, connection, function="JSON_BUILD_OBJECT", **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, function="JSON_OBJECT", **extra_context)


class _JSONBoolean(Func):
    """A boolean as JSON ``true``/``false``/``null`` (SQLite stores booleans as 0/1, which would render as numbers)."""

    output_field = TextField()

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, template="%(expressions)s", **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(
            compiler,
            connection,
            template="CASE (%(expressions)s) WHEN 1 THEN json('true') WHEN 0 THEN json('false') END",
            **extra_context,
        )


class _ISODateTime(Func):
    """DRF's rendering of a datetime in UTC: ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; NULL stays NULL."""

    output_field = TextField()

    def _sql(self, compiler: Any, connection: Any, template: str, **extra_context: Any) -> Any:
        sql, params = super().as_sql(compiler, connection, template=template, **extra_context)
        if params:  # the template repeats the expression: only a plain column may be repeated safely
            raise ImproperlyConfigured("A rendered datetime must be a column, not an expression with parameters.")
        return sql, params

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        raise ImproperlyConfigured(f"Database-rendered JSON is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        utc = "(%(expressions)s AT TIME ZONE 'UTC')"
        template = (
            f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', %(expressions)s) = "
            f"%(expressions)s THEN '' ELSE to_char({utc}, '.US') END || 'Z'"
        )
        return self._sql(compiler, connection, template, **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # Django stores aware datetimes on SQLite as naive UTC text, str(datetime): "YYYY-MM-DD HH:MM:SS[.ffffff]".
        return self._sql(compiler, connection, "replace(%(expressions)s, ' ', 'T') || 'Z'", **extra_context)


class _JSONArraySubquery(Subquery):
    """The JSON array of the ``body`` column of ``queryset``, in the order of its ``o0, o1, ...`` columns; ``[]``
    when it selects no row."""

    output_field = TextField()

    def __init__(self, queryset: QuerySet[Any], order_keys: int) -> None:
        self.order_keys = order_keys
        super().__init__(queryset)

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        raise ImproperlyConfigured(f"Database-rendered JSON is not implemented for {connection.vendor}.")

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        order = ", ".join(f"_j.o{i}" for i in range(self.order_keys))
        template = f"COALESCE((SELECT json_agg(_j.body ORDER BY {order}) FROM (%(subquery)s) _j), '[]'::json)"
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # SQLite 3.40 has no ORDER BY inside an aggregate; an aggregate over an ordered subquery reads it in order
        # (SQLite does not flatten a subquery with ORDER BY into an aggregate query).
        template = "json(COALESCE((SELECT json_group_array(json(_j.body)) FROM (%(subquery)s) _j), '[]'))"
        return super().as_sql(compiler, connection, template=template, **extra_context)


def _path(source: str, prefix: str) -> str:
    return prefix + source.replace(".", "__")


def _model_field(model: type[Model], source: str) -> Any:
    """The model field reached by a dotted ``source`` (``"job.title"``), or ``None`` for an annotation."""
    current: Any = model
    field = None
    for part in source.split("."):
        if current is None:
            return None
        try:
            field = current._meta.get_field(part)
        except Exception:  # FieldDoesNotExist: an annotation (or a property, which is rejected by the caller)
            return None
        current = field.related_model
    return field


def _value(field: serializers.Field, model: type[Model], prefix: str) -> Any:
    """The SQL expression rendering one serializer field of a row of ``model`` (reached through ``prefix``)."""
    if isinstance(field, serializers.ListSerializer):
        return json_array(type(field.child), model, relation=field.source, prefix=prefix)
    if isinstance(field, serializers.Serializer):
        if field.source != "*":
            raise ImproperlyConfigured(f"{field!r}: a nested object is rendered only from the same row (source='*').")
        return json_object(type(field), model, prefix=prefix)
    source = field.source
    if source == "*" or not source:
        raise ImproperlyConfigured(f"{field.field_name}: no column to render.")
    column = F(_path(source, prefix))
    if isinstance(field, serializers.BooleanField):
        return _JSONBoolean(column)
    if isinstance(field, serializers.DateTimeField):
        if getattr(field, "format", api_settings.DATETIME_FORMAT) not in (ISO_8601, None) or not _renders_utc(field):
            raise ImproperlyConfigured(f"{field.field_name}: only ISO 8601 datetimes in UTC are rendered by SQL.")
        return _ISODateTime(column)
    if isinstance(field, serializers.DateField):
        if getattr(field, "format", api_settings.DATE_FORMAT) not in (ISO_8601, None):
            raise ImproperlyConfigured(f"{field.field_name}: only ISO 8601 dates are rendered by SQL.")
        return column  # PostgreSQL's json and SQLite's stored text are ISO 8601
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        if field.pk_field is not None:
            raise ImproperlyConfigured(f"{field.field_name}: a custom pk_field is not rendered by SQL.")
        return column
    if isinstance(field, serializers.IntegerField | serializers.CharField | serializers.ChoiceField):
        if isinstance(field, serializers.CharField | serializers.ChoiceField) and _is_numeric(model, source):
            raise ImproperlyConfigured(f"{field.field_name}: a number rendered as text is not rendered by SQL.")
        return column
    raise ImproperlyConfigured(
        f"{type(field).__name__} ({field.field_name}) has no SQL rendering in jobops.jsonshape: add one, tested "
        "equal to the serializer, or render this shape with the serializer."
    )


def _renders_utc(field: serializers.DateTimeField) -> bool:
    tz = getattr(field, "timezone", None)
    return tz is datetime.UTC


def _is_numeric(model: type[Model], source: str) -> bool:
    field = _model_field(model, source)
    return field is not None and field.get_internal_type() not in ("CharField", "TextField", "SlugField", "EmailField")


def _fields(serializer_class: type[serializers.BaseSerializer]) -> dict[str, serializers.Field]:
    # Bound fields (``field.source`` resolved), as DRF binds them when it renders.
    return dict(serializer_class().fields)


@functools.cache
def json_object(serializer_class: type[serializers.BaseSerializer], model: type[Model], *, prefix: str = "") -> Any:
    """The expression of one row's body as ``serializer_class`` renders it: a JSON object with its fields in order.

    ``model`` is the model of the row (its fields decide nothing the serializer does not, but resolve relations);
    ``prefix`` reaches the row through relations (``"job__"``). Fields whose source is not a model field are read
    from the queryset's annotations of that name.

    Built once per shape (building it instantiates the serializer): queries resolve copies, so sharing is safe.
    """
    return _JSONObject((name, _value(field, model, prefix)) for name, field in _fields(serializer_class).items())


def _ordering(serializer_class: type[serializers.BaseSerializer], model: type[Model]) -> list[str]:
    meta = getattr(serializer_class, "Meta", None)
    ordering = list(getattr(meta, "ordering", None) or model._meta.ordering or ["pk"])
    for term in ordering:
        if not isinstance(term, str):
            raise ImproperlyConfigured(f"{serializer_class.__name__}: ordering must be field names.")
    return ordering


@functools.cache
def json_array(
    serializer_class: type[serializers.BaseSerializer], model: type[Model], *, relation: str, prefix: str = ""
) -> Any:
    """The JSON array of the related rows ``relation`` (a reverse foreign key or a many-to-many of ``model``), each
    rendered by ``serializer_class``, ordered by the serializer's ``Meta.ordering`` or the related model's."""
    if prefix:
        raise ImproperlyConfigured("A nested array is rendered only from the row itself, not through a relation.")
    field = model._meta.get_field(relation)
    related: type[Model] = field.related_model  # type: ignore[assignment]
    if field.many_to_many and not field.auto_created:  # a forward many-to-many: filter through its reverse name
        lookup = field.related_query_name()  # type: ignore[union-attr]
    elif field.one_to_many or (field.many_to_many and field.auto_created):  # reverse foreign key / many-to-many
        lookup = field.field.name  # type: ignore[union-attr]
    else:
        raise ImproperlyConfigured(f"{model.__name__}.{relation}: only to-many relations render as arrays.")
    ordering = _ordering(serializer_class, related)
    if any(term.startswith("-") for term in ordering):
        raise ImproperlyConfigured(f"{serializer_class.__name__}: descending nested ordering is not supported.")
    # The ordering columns are selected too: PostgreSQL's aggregate orders by them (``json_agg(... ORDER BY ...)``).
    inner = (
        related._default_manager.filter(**{lookup: OuterRef("pk")})
        .order_by(*ordering)
        .values(body=json_object(serializer_class, related), **{f"o{i}": F(term) for i, term in enumerate(ordering)})
    )
    return _JSONArraySubquery(inner, len(ordering))


class _JSONText(Func):
    """A JSON value as text (PostgreSQL's driver would otherwise parse ``json`` into Python objects)."""

    output_field = TextField()

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, template="%(expressions)s", **extra_context)

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, template="(%(expressions)s)::text", **extra_context)


def json_text(expression: Combinable | Expression) -> Any:
    """``expression`` (a JSON value) as the text the database renders for it."""
    return _JSONText(expression)


def count_of(queryset: QuerySet[Any]) -> Subquery:
    """A scalar subquery counting the rows of ``queryset`` (its ordering dropped): evaluated once per statement, so a
    page and its total come from one statement."""
    counted = queryset.order_by().annotate(_n=Func(F("pk"), function="COUNT")).values("_n")
    return Subquery(counted, output_field=IntegerField())


@functools.cache
def _fragment_empty() -> orjson.Fragment:
    return orjson.Fragment(b"[]")


def render_array(bodies: Iterable[str]) -> orjson.Fragment:
    """A JSON array of the rendered ``bodies`` (JSON texts), passed through to the response as they are."""
    joined = ",".join(bodies)
    return orjson.Fragment("[" + joined + "]") if joined else _fragment_empty()
