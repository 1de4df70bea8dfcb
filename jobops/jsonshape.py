"""Response bodies rendered by the database, derived from a read serializer's declaration.

A read serializer declares a response shape once. For the most polled reads, this module turns that declaration into
ORM expressions that compile to ``json_build_object``/``json_agg`` on PostgreSQL and ``json_object``/
``json_group_array`` on SQLite, so the database returns the body as JSON text and Python passes it through: no model
instances, no per-field serializer walk. Nothing is written twice: the keys, their order, their types and the nested
shapes all come from the serializer's fields; identifiers and values go through the ORM.

Supported serializer fields, with DRF's rendering reproduced exactly (tests compare both renderings whole, on both
databases): integers and primary keys (``IntegerField``, ``PrimaryKeyRelatedField``), text (``CharField``,
``ChoiceField``), ``BooleanField``, ``DateField``, ``DateTimeField`` in UTC (``jobops.fields.UTCDateTimeField``:
ISO 8601, ``Z``, microseconds only when non-zero), ``jobops.fields.RelatedCountField``, a nested serializer on the
same row (``source="*"``), and a nested ``many=True`` serializer over a reverse foreign key or a many-to-many relation
(ordered by its ``Meta.ordering``). A field whose source is not a model field reads an annotation the caller declares
(``annotations``). Anything else (a ``DecimalField``, a ``SerializerMethodField``, a custom format) raises
``ImproperlyConfigured`` when the shape is first used, so a new field cannot render differently here than through the
serializer.

Compiled once: resolving and compiling the expression tree of a shape costs several times more than running the
statement (measured: 2.1 of 2.7 ms of Python per job-list request), so each shape is compiled once per database and
process (``_compile``); a request compiles only its own query (scope, filters, order, page). Values that change per
request inside a shape (the dashboard's "today") are declared parameters (``params``), bound per request.
"""

from __future__ import annotations

import datetime
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import orjson
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, ImproperlyConfigured
from django.db import connections
from django.db.models import (
    DateField,
    Expression,
    F,
    Field,
    Func,
    IntegerField,
    Model,
    OuterRef,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from jobops.fields import RelatedCountField

__all__ = ["render_groups", "render_one", "render_page"]

#: A read serializer class (``type[BaseSerializer]``, typed loosely: the stubs' ``__hash__`` on serializer and model
#: classes makes them unhashable to mypy, and the compiled shapes are cached by class).
SerializerClass = Any
#: What a shape's annotations are built by: keyword parameters (``_Param`` markers) -> {name: expression}.
Annotations = Callable[..., Mapping[str, Any]]


# --- SQL building blocks ---------------------------------------------------------------------------------------


class _JSONObject(Func):
    """``json_build_object(k1, v1, ...)`` (PostgreSQL, keys in the given order) / ``json_object(...)`` (SQLite)."""

    output_field = TextField()

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        expressions: list[Any] = []
        for key, value in pairs:
            expressions.extend((Value(key), value))
        super().__init__(*expressions)

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # Keys cast to text: with server-side parameter binding PostgreSQL cannot infer a parameter's type in "any".
        copy = self.copy()
        copy.set_source_expressions(
            [Cast(e, TextField()) if i % 2 == 0 else e for i, e in enumerate(copy.get_source_expressions())]
        )
        return Func.as_sql(copy, compiler, connection, function="JSON_BUILD_OBJECT", **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, function="JSON_OBJECT", **extra_context)


class _JSONBoolean(Func):
    """A boolean as JSON ``true``/``false``/``null`` (SQLite stores booleans as 0/1, which would render as numbers)."""

    output_field = TextField()
    template = "%(expressions)s"

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        template = "CASE (%(expressions)s) WHEN 1 THEN json('true') WHEN 0 THEN json('false') END"
        return self.as_sql(compiler, connection, template=template, **extra_context)


class _ISODateTime(Func):
    """DRF's rendering of a datetime in UTC: ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; NULL stays NULL."""

    output_field = TextField()

    def _sql(self, compiler: Any, connection: Any, template: str, **extra_context: Any) -> Any:
        sql, params = self.as_sql(compiler, connection, template=template, **extra_context)
        if params:  # the template repeats the expression: only a plain column may be repeated safely
            raise ImproperlyConfigured("A rendered datetime must be a column, not an expression with parameters.")
        return sql, params

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

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        order = ", ".join(f"_j.o{i}" for i in range(self.order_keys))  # column names made of integers
        template = "COALESCE((SELECT json_agg(_j.body ORDER BY %(order)s) FROM (%(subquery)s) _j), '[]'::json)"
        return self.as_sql(compiler, connection, template=template, order=order, **extra_context)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # SQLite 3.40 has no ORDER BY inside an aggregate; an aggregate over an ordered subquery reads it in order
        # (SQLite does not flatten a subquery with ORDER BY into an aggregate query).
        template = "json(COALESCE((SELECT json_group_array(json(_j.body)) FROM (%(subquery)s) _j), '[]'))"
        return self.as_sql(compiler, connection, template=template, **extra_context)


class _Param(Expression):
    """A parameter of a compiled shape (the dashboard's "today"): compiled as a placeholder whose value is bound per
    request. The marker itself stands in the compiled parameter list until then."""

    def __init__(self, name: str, output_field: Field[Any, Any]) -> None:
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        return "%s", (self,)


# --- from serializer fields to expressions ---------------------------------------------------------------------


def _model_field(model: type[Model], source: str) -> Any:
    """The model field reached by a dotted ``source`` (``"job.title"``), or ``None`` when it names no model field
    (an annotation)."""
    current: Any = model
    field: Any = None
    for part in source.split("."):
        if current is None:
            return None
        try:
            field = current._meta.get_field(part)
        except FieldDoesNotExist:
            return None
        current = field.related_model
    return field


@functools.cache
def _fields(serializer_class: SerializerClass) -> dict[str, Any]:
    # Bound fields (``field.source`` resolved), as DRF binds them when it renders. Read-only use, so shared.
    serializer: Any = serializer_class()
    return dict(serializer.fields)


def _value(field: Any, model: type[Model]) -> Any:
    """The SQL expression rendering one serializer field of a row of ``model``."""
    if isinstance(field, serializers.ListSerializer):
        child: Any = field.child
        return _json_array(type(child), model, str(field.source))
    if isinstance(field, serializers.Serializer):
        if field.source != "*":
            raise ImproperlyConfigured(f"{field!r}: a nested object is rendered only from the same row (source='*').")
        return _json_object(type(field), model)
    if isinstance(field, RelatedCountField):
        return _related_count(field, model)
    source = field.source
    if source == "*" or not source:
        raise ImproperlyConfigured(f"{field.field_name}: no column to render.")
    model_field = _model_field(model, source)
    if model_field is None and "." in source:
        raise ImproperlyConfigured(f"{field.field_name}: {source} names no model field.")
    column = F(source.replace(".", "__"))  # a model field, or an annotation the caller declares
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
    if isinstance(field, serializers.IntegerField):
        return column
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        if model_field is not None and model_field.get_internal_type() not in ("CharField", "TextField"):
            raise ImproperlyConfigured(
                f"{field.field_name}: a non-text column rendered as text is not rendered by SQL."
            )
        return column
    raise ImproperlyConfigured(
        f"{type(field).__name__} ({field.field_name}) has no SQL rendering in jobops.jsonshape: add one, tested "
        "equal to the serializer, or render this shape with the serializer."
    )


def _renders_utc(field: serializers.DateTimeField) -> bool:
    return getattr(field, "timezone", None) is datetime.UTC


def _related_count(field: RelatedCountField, model: type[Model]) -> Any:
    relation: Any = model._meta.get_field(field.relation)
    if not relation.one_to_many:
        raise ImproperlyConfigured(f"{field.field_name}: counts a reverse foreign key only.")
    rows = relation.related_model._default_manager.filter(**{relation.field.name: OuterRef("pk")}, **field.filter)
    counted = rows.order_by().annotate(_n=Func(F("pk"), function="COUNT")).values("_n")
    return Subquery(counted, output_field=IntegerField())


def _json_object(serializer_class: SerializerClass, model: type[Model]) -> _JSONObject:
    """One row's body as ``serializer_class`` renders it: a JSON object with its fields in order."""
    return _JSONObject((name, _value(field, model)) for name, field in _fields(serializer_class).items())


def _ordering(serializer_class: SerializerClass, model: type[Model]) -> list[str]:
    meta = getattr(serializer_class, "Meta", None)
    ordering = list(getattr(meta, "ordering", None) or model._meta.ordering or ["pk"])
    if not all(isinstance(term, str) and not term.startswith("-") for term in ordering):
        raise ImproperlyConfigured(f"{serializer_class.__name__}: a nested list is ordered by field names, ascending.")
    return ordering


def _json_array(serializer_class: SerializerClass, model: type[Model], relation: str) -> _JSONArraySubquery:
    """The JSON array of the related rows ``relation`` (a reverse foreign key or a many-to-many of ``model``), each
    rendered by ``serializer_class``, ordered by the serializer's ``Meta.ordering`` or the related model's."""
    field: Any = model._meta.get_field(relation)
    related: type[Model] = field.related_model
    ordering = _ordering(serializer_class, related)
    if field.many_to_many and not field.auto_created and ordering in (["id"], ["pk"]):
        # A forward many-to-many in id order: the link rows in order, each item looked up by its primary key. PostgreSQL
        # would otherwise hash the whole related table once per row (measured: 40 % less time on the day view's
        # equipment, whose table is small enough to look cheap to hash).
        through: Any = field.remote_field.through
        source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
        target_id = through._meta.get_field(target).attname
        item = related._default_manager.filter(pk=OuterRef(target_id)).values(
            body=_json_object(serializer_class, related)
        )
        links = (
            through._default_manager.filter(**{source: OuterRef("pk")})
            .order_by(target_id)
            .values(body=Subquery(item[:1], output_field=TextField()), o0=F(target_id))
        )
        return _JSONArraySubquery(links, 1)
    if field.many_to_many and not field.auto_created:  # a forward many-to-many: filter through its reverse name
        lookup = field.related_query_name()
    elif field.one_to_many or (field.many_to_many and field.auto_created):  # reverse foreign key / many-to-many
        lookup = field.field.name
    else:
        raise ImproperlyConfigured(f"{model.__name__}.{relation}: only to-many relations render as arrays.")
    # The ordering columns are selected too: PostgreSQL's aggregate orders by them (``json_agg(... ORDER BY ...)``).
    inner = (
        related._default_manager.filter(**{lookup: OuterRef("pk")})
        .order_by(*ordering)
        .values(body=_json_object(serializer_class, related), **{f"o{i}": F(term) for i, term in enumerate(ordering)})
    )
    return _JSONArraySubquery(inner, len(ordering))


def _joined_paths(serializer_class: SerializerClass) -> tuple[str, ...]:
    """One field path per relation the body reads through (``"job__title"``): resolving it makes the join."""
    paths: dict[str, str] = {}
    for field in _fields(serializer_class).values():
        if isinstance(field, serializers.ListSerializer | RelatedCountField):
            continue
        if isinstance(field, serializers.Serializer):
            paths.update({path.rsplit("__", 1)[0]: path for path in _joined_paths(type(field))})
        elif field.source and "." in field.source:
            path = field.source.replace(".", "__")
            paths.setdefault(path.rsplit("__", 1)[0], path)
    return tuple(sorted(paths.values()))


# --- compiled once, bound per request --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]  # constants, and ``_Param`` markers bound per request
    joins: tuple[str, ...]  # field paths whose joins the SQL reads through
    aliases: tuple[tuple[str, str], ...]  # (alias, table) of the joins the SQL reads, besides the base table


@functools.cache
def _compile(
    serializer_class: SerializerClass,
    model: type[Model],
    using: str,
    relation: str | None,
    annotations: Annotations | None,
) -> _Compiled:
    """The body of ``serializer_class`` (with ``relation``: the array of the row's ``relation`` rows so rendered)
    compiled against a plain queryset of ``model`` on the database ``using`` with the declared ``annotations``."""
    template = model._default_manager.db_manager(using).all()
    if annotations is not None:
        markers = {name: _Param(name, _param_field(annotations, name)) for name in _param_names(annotations)}
        template = template.annotate(**annotations(**markers))
    body: Any
    if relation is None:
        joins, body = _joined_paths(serializer_class), _json_object(serializer_class, model)
    else:
        joins, body = (), _json_array(serializer_class, model, relation)
    queryset = template.values_list(body)
    compiler = queryset.query.get_compiler(using=using)
    select, _, _ = compiler.get_select()
    sql, params = select[0][1]
    base = queryset.query.get_initial_alias()
    quote = compiler.quote_name_unless_alias
    aliases = tuple(  # the joined tables the SQL reads (a join trimmed to a foreign key column is not read)
        (alias, join.table_name)
        for alias, join in queryset.query.alias_map.items()
        if alias != base and f"{quote(alias)}." in sql
    )
    return _Compiled(sql=sql, params=tuple(params), joins=joins, aliases=aliases)


def _param_names(annotations: Annotations) -> list[str]:
    return [
        name
        for name, parameter in inspect.signature(annotations).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def _param_field(annotations: Annotations, name: str) -> Field[Any, Any]:
    annotation = inspect.signature(annotations).parameters[name].annotation
    if annotation in (datetime.date, "datetime.date"):
        return DateField()
    raise ImproperlyConfigured(f"{annotations.__name__}: parameter {name} must be a datetime.date.")


class _ShapeSQL(Expression):
    """A shape compiled once, in a request's query: its parameters bound, the joins its SQL reads through made in that
    query (and checked to carry the same aliases)."""

    def __init__(self, compiled: _Compiled, params: Mapping[str, Any], *, text: bool) -> None:
        super().__init__(output_field=TextField())
        self.compiled = compiled
        self.bound = dict(params)
        self.text = text

    def resolve_expression(
        self,
        query: Any = None,
        allow_joins: bool = True,
        reuse: Any = None,
        summarize: bool = False,
        for_save: bool = False,
    ) -> _ShapeSQL:
        for path in self.compiled.joins:
            F(path).resolve_expression(query, allow_joins, reuse)
        for alias, table in self.compiled.aliases:
            join = query.alias_map.get(alias)
            if join is None or join.table_name != table:
                raise ImproperlyConfigured(f"The query joins {table} under another alias than {alias}.")
        return self

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        params = [
            param.output_field.get_db_prep_value(self.bound[param.name], connection)
            if isinstance(param, _Param)
            else param
            for param in self.compiled.params
        ]
        if self.text and connection.vendor == "postgresql":
            return f"({self.compiled.sql})::text", params  # the driver would parse json into Python objects
        return self.compiled.sql, params


def _shape(
    serializer_class: SerializerClass,
    queryset: QuerySet[Any],
    *,
    relation: str | None = None,
    annotations: Annotations | None = None,
    params: Mapping[str, Any] | None = None,
    text: bool = True,
) -> _ShapeSQL:
    model: Any = queryset.model
    compiled = _compile(serializer_class, model, queryset.db, relation, annotations)
    return _ShapeSQL(compiled, params or {}, text=text)


def _sql(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]] | None:
    """The compiled SQL of ``queryset``, or ``None`` when it can match nothing (``.none()``, ``pk__in=[]``)."""
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:
        return None
    return sql, tuple(params)


def _fetch(
    alias: str, wrapper: str, parts: Mapping[str, tuple[str, tuple[Any, ...]]], *, own: tuple[Any, ...] = ()
) -> tuple[Any, ...]:
    """One row of ``wrapper``: SQL in which each ``{name}`` is replaced by the compiled SQL ``parts[name]``, in the
    order the names appear in ``wrapper``; ``own`` are the parameters of the wrapper's own placeholders, which come
    before every part. The wrappers hold no value: everything else is the ORM's SQL."""
    sql, params = wrapper, list(own)
    for name in sorted(parts, key=lambda name: wrapper.index("{" + name + "}")):
        part_sql, part_params = parts[name]
        sql = sql.replace("{" + name + "}", part_sql, 1)
        params.extend(part_params)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return tuple(cursor.fetchone())


# --- what the views call -----------------------------------------------------------------------------------------


#: A page and the count of its query in one statement. The count is a plain COUNT(*) of the unordered query (an index
#: scan; a COUNT(*) OVER () on the page query would read every row of the scope). On PostgreSQL the sorted, limited
#: page feeds row_number() in its order, and json_agg follows row_number(); SQLite reads an ordered subquery in order.
_PAGE = {
    "postgresql": (
        "SELECT (SELECT count(*) FROM ({count}) _c), "
        "(SELECT COALESCE(json_agg(_p.body ORDER BY _p._n), '[]')::text "
        "FROM (SELECT _q.*, row_number() OVER () AS _n FROM ({rows}) _q) _p)"
    ),
    "sqlite": ("SELECT (SELECT count(*) FROM ({count}) _c), (SELECT json_group_array(json(_p.body)) FROM ({rows}) _p)"),
}


def render_page(
    queryset: QuerySet[Any], serializer_class: SerializerClass, *, offset: int, limit: int
) -> tuple[int, orjson.Fragment]:
    """``(count, array)``: the number of rows of ``queryset`` (scoped, filtered, ordered) and the JSON array of its
    page ``[offset, offset + limit)`` rendered by ``serializer_class``. One statement."""
    vendor = connections[queryset.db].vendor
    count = _sql(queryset.order_by().values("pk"))
    if count is None:
        return 0, _empty()
    page = _sql(queryset.values(body=_shape(serializer_class, queryset, text=False))[offset : offset + limit])
    assert page is not None  # the same filters as the count's
    total, array = _fetch(queryset.db, _PAGE[vendor], {"count": count, "rows": page})
    return total, orjson.Fragment(array)


def render_one(
    queryset: QuerySet[Any],
    serializer_class: SerializerClass,
    *,
    relation: str | None = None,
) -> orjson.Fragment | None:
    """The first row of ``queryset`` rendered by ``serializer_class`` (with ``relation``: the JSON array of its
    related rows so rendered), or ``None`` without a row. One statement."""
    body = _shape(serializer_class, queryset, relation=relation)
    bodies = list(queryset.order_by().values_list(body, flat=True)[:1])
    return orjson.Fragment(bodies[0]) if bodies else None


#: The groups of a page of rows, on PostgreSQL: one JSON array of {key: ..., items: [...]}, keys ascending.
_PG_GROUPS = (
    "SELECT COALESCE(json_agg(json_build_object(%s::text, _g.key, %s::text, _g.items) ORDER BY _g.key), "
    "'[]')::text "
    "FROM (SELECT _p.key, json_agg(_p.body ORDER BY _p._n) AS items "
    "FROM (SELECT _q.*, row_number() OVER () AS _n FROM ({rows}) _q) _p GROUP BY _p.key) _g"
)


def render_groups(
    queryset: QuerySet[Any],
    group_serializer_class: SerializerClass,
    *,
    key: str,
    annotations: Annotations | None = None,
    params: Mapping[str, Any] | None = None,
) -> orjson.Fragment:
    """``queryset``'s rows grouped by the column ``key`` as ``group_serializer_class`` renders a list of groups: a
    serializer of two fields, the key (a date, number or text) and a ``many=True`` serializer of the rows, in the
    queryset's order. Groups by key ascending; only keys with rows. One statement. ``annotations``/``params``: what
    the rows' shape reads besides model fields (see ``_compile``)."""
    (key_name, key_field), (items_name, items_field) = _fields(group_serializer_class).items()
    if not isinstance(items_field, serializers.ListSerializer) or not isinstance(
        key_field, serializers.DateField | serializers.IntegerField | serializers.CharField
    ):
        raise ImproperlyConfigured(f"{group_serializer_class.__name__}: a key field, then a many=True serializer.")
    postgres = connections[queryset.db].vendor == "postgresql"
    rows = queryset.values(
        key=F(key),
        body=_shape(type(items_field.child), queryset, annotations=annotations, params=params, text=not postgres),
    )
    if postgres:
        compiled = _sql(rows)
        if compiled is None:
            return _empty()
        (array,) = _fetch(rows.db, _PG_GROUPS, {"rows": compiled}, own=(key_name, items_name))
        return orjson.Fragment(array)
    groups = groupby(rows.values_list("key", "body"), key=lambda row: row[0])
    return orjson.Fragment(
        orjson.dumps(
            [{key_name: _key_text(value), items_name: _join(body for _, body in items)} for value, items in groups]
        )
    )


def _key_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.date) else value


@functools.cache
def _empty() -> orjson.Fragment:
    return orjson.Fragment(b"[]")


def _join(bodies: Iterable[str]) -> orjson.Fragment:
    joined = ",".join(bodies)
    return orjson.Fragment("[" + joined + "]") if joined else _empty()
