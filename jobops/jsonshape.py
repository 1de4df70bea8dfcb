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

One statement per response: a page and its count, an object, the day view's groups. On PostgreSQL the to-many arrays
of the rendered rows (a task's equipment) are aggregated once per statement, in a common table expression over the
ids of the rendered rows (``_batches``), instead of one correlated subquery per row; the rows are then read back by
those ids. Nested arrays deeper down, and every array on SQLite (the embedded default), are correlated subqueries.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import orjson
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, ImproperlyConfigured
from django.db import connections
from django.db.models import (
    Aggregate,
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
)
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


class _Key(Expression):
    """A key of a JSON object, written into the SQL as a string literal: keys are serializer field names, identifiers
    checked here, and as literals they cost the driver and the server nothing per request (measured: a day-view
    statement with its 40 keys as parameters spent 0.5 ms more of Python per request binding them)."""

    def __init__(self, name: str) -> None:
        if not _IDENTIFIER.fullmatch(name):
            raise ImproperlyConfigured(f"{name!r} is not a field name that can be a JSON key.")
        super().__init__(output_field=TextField())
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        return f"'{self.name}'", ()


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _JSONObject(Func):
    """``json_build_object(k1, v1, ...)`` (PostgreSQL, keys in the given order) / ``json_object(...)`` (SQLite)."""

    output_field = TextField()

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        expressions: list[Any] = []
        for key, value in pairs:
            expressions.extend((_Key(key), value))
        super().__init__(*expressions)

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, function="JSON_BUILD_OBJECT", **extra_context)

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


@dataclass(frozen=True)
class _BatchSpec:
    field: Any  # a forward ManyToManyField of the rendered rows' model
    serializer_class: SerializerClass  # how each related row renders


class _BatchRef(Func):
    """The array of the row's related rows, read from the batch ``_b<index>`` (a common table expression of the
    statement: ``owner``, ``items``); ``[]`` when the row has none."""

    output_field = TextField()
    template = "COALESCE((SELECT %(name)s.items FROM %(name)s WHERE %(name)s.owner = %(expressions)s), '[]'::json)"

    def __init__(self, index: int) -> None:
        super().__init__(F("pk"))
        self.index = index

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, name=f"_b{int(self.index)}", **extra_context)


class _JSONAgg(Aggregate):
    """``json_agg(expression ORDER BY order)`` (PostgreSQL)."""

    function = "JSON_AGG"
    output_field = TextField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        expression, order = self.get_source_expressions()[:2]  # then the (unused) filter
        sql, params = compiler.compile(expression)
        order_sql, order_params = compiler.compile(order)
        return f"JSON_AGG({sql} ORDER BY {order_sql})", (*params, *order_params)


class _Fragment(Expression):
    """A constant SQL fragment of this module, holding no value: where a statement reads its own ``_ids``."""

    def __init__(self, sql: str) -> None:
        super().__init__(output_field=IntegerField())
        self.sql = sql

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        return f"({self.sql})", ()


#: Where a batch's query reads the ids of the rendered rows (replaced per statement), and how the rows read them.
_IDS_MARK = "SELECT 0 WHERE FALSE /* jobops: rendered ids */"
_PAGE_IDS = "SELECT _ids.pk FROM _ids"


def _batch_sql(spec: _BatchSpec, using: str) -> tuple[str, tuple[Any, ...]]:
    """The batch query of ``spec``: ``owner`` (a rendered row's id) and ``items`` (its related rows rendered, in id
    order), for the owners ``IN (_IDS_MARK)``. Compiled once, like the shape."""
    field = spec.field
    through: Any = field.remote_field.through
    source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
    source_id, target_id = through._meta.get_field(source).attname, through._meta.get_field(target).attname
    item = _json_object(spec.serializer_class, field.related_model, prefix=f"{target}__")
    batch = (
        through._default_manager.db_manager(using)
        .filter(**{f"{source_id}__in": _Fragment(_IDS_MARK)})
        .values(owner=F(source_id))
        .annotate(items=_JSONAgg(item, F(target_id)))
        .order_by()
    )
    sql, params = batch.query.get_compiler(using=using).as_sql()
    if _IDS_MARK not in sql or _PLACEHOLDER.search(sql[sql.index(_IDS_MARK) :]):
        raise ImproperlyConfigured("A batch query must read the rendered ids last.")
    return sql, tuple(params)


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


def _value(field: Any, model: type[Model], prefix: str, batches: list[_BatchSpec] | None) -> Any:
    """The SQL expression rendering one serializer field of a row of ``model`` (reached through ``prefix``, e.g.
    ``"equipment__"`` from a link row); ``batches`` collects the arrays batched for the whole statement."""
    if isinstance(field, serializers.ListSerializer | RelatedCountField) and prefix:
        raise ImproperlyConfigured(f"{field.field_name}: a nested list is rendered only from the row itself.")
    if isinstance(field, serializers.ListSerializer):
        child: Any = field.child
        return _json_array(type(child), model, str(field.source), batches)
    if isinstance(field, serializers.Serializer):
        if field.source != "*":
            raise ImproperlyConfigured(f"{field!r}: a nested object is rendered only from the same row (source='*').")
        return _json_object(type(field), model, prefix, batches)
    if isinstance(field, RelatedCountField):
        return _related_count(field, model)
    source = field.source
    if source == "*" or not source:
        raise ImproperlyConfigured(f"{field.field_name}: no column to render.")
    model_field = _model_field(model, source)
    if model_field is None and "." in source:
        raise ImproperlyConfigured(f"{field.field_name}: {source} names no model field.")
    if "." in source and not field.allow_null and _nullable_path(model, source):
        # DRF leaves the key out when a relation on the way is null; the database would render null.
        raise ImproperlyConfigured(f"{field.field_name}: {source} goes through a nullable relation: allow_null=True.")
    kind = model_field.get_internal_type() if model_field is not None else None
    expected = next((kinds for drf, kinds in _COLUMN_KINDS if isinstance(field, drf)), None)
    if kind is not None and expected is not None and kind not in expected:
        raise ImproperlyConfigured(f"{field.field_name}: a {kind} column is not rendered as {type(field).__name__}.")
    column = F(prefix + source.replace(".", "__"))  # a model field, or an annotation the caller declares
    if isinstance(field, serializers.BooleanField):
        return _JSONBoolean(column)
    if isinstance(field, serializers.DateTimeField):
        if getattr(field, "format", api_settings.DATETIME_FORMAT) != ISO_8601 or not _renders_utc(field):
            raise ImproperlyConfigured(f"{field.field_name}: only ISO 8601 datetimes in UTC are rendered by SQL.")
        return _ISODateTime(column)
    if isinstance(field, serializers.DateField):
        if getattr(field, "format", api_settings.DATE_FORMAT) != ISO_8601:
            raise ImproperlyConfigured(f"{field.field_name}: only ISO 8601 dates are rendered by SQL.")
        return column  # PostgreSQL's json and SQLite's stored text are ISO 8601
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        if field.pk_field is not None:
            raise ImproperlyConfigured(f"{field.field_name}: a custom pk_field is not rendered by SQL.")
        return column
    if isinstance(field, serializers.IntegerField):
        return column
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        return column
    raise ImproperlyConfigured(
        f"{type(field).__name__} ({field.field_name}) has no SQL rendering in jobops.jsonshape: add one, tested "
        "equal to the serializer, or render this shape with the serializer."
    )


_INTEGERS = frozenset(
    {
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
        "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField", "ForeignKey", "OneToOneField",
    }
)  # fmt: skip
#: The model columns each kind of serializer field renders as DRF does (checked when a column is a model field; an
#: annotation is the caller's to type). Order matters: a DateTimeField is a DateField for ``isinstance``.
_COLUMN_KINDS: tuple[tuple[type, frozenset[str]], ...] = (
    (serializers.BooleanField, frozenset({"BooleanField"})),
    (serializers.DateTimeField, frozenset({"DateTimeField"})),
    (serializers.DateField, frozenset({"DateField"})),
    (serializers.PrimaryKeyRelatedField, _INTEGERS),
    (serializers.IntegerField, _INTEGERS),
    (serializers.ChoiceField, frozenset({"CharField", "TextField"})),
    (serializers.CharField, frozenset({"CharField", "TextField"})),
)


def _nullable_path(model: type[Model], source: str) -> bool:
    """Whether a relation on the way to the last part of a dotted ``source`` may be null."""
    current: Any = model
    for part in source.split(".")[:-1]:
        relation = current._meta.get_field(part)
        if relation.null:
            return True
        current = relation.related_model
    return False


def _renders_utc(field: serializers.DateTimeField) -> bool:
    return getattr(field, "timezone", None) is datetime.UTC


def _related_count(field: RelatedCountField, model: type[Model]) -> Any:
    relation: Any = model._meta.get_field(field.relation)
    if not relation.one_to_many:
        raise ImproperlyConfigured(f"{field.field_name}: counts a reverse foreign key only.")
    rows = relation.related_model._default_manager.filter(**{relation.field.name: OuterRef("pk")}, **field.filter)
    counted = rows.order_by().annotate(_n=Func(F("pk"), function="COUNT")).values("_n")
    return Subquery(counted, output_field=IntegerField())


def _json_object(
    serializer_class: SerializerClass,
    model: type[Model],
    prefix: str = "",
    batches: list[_BatchSpec] | None = None,
) -> _JSONObject:
    """One row's body as ``serializer_class`` renders it: a JSON object with its fields in order."""
    fields = _fields(serializer_class).items()
    return _JSONObject((name, _value(field, model, prefix, batches)) for name, field in fields)


def _ordering(serializer_class: SerializerClass, model: type[Model]) -> list[str]:
    meta = getattr(serializer_class, "Meta", None)
    ordering = list(getattr(meta, "ordering", None) or model._meta.ordering or ["pk"])
    if not all(isinstance(term, str) and not term.startswith("-") for term in ordering):
        raise ImproperlyConfigured(f"{serializer_class.__name__}: a nested list is ordered by field names, ascending.")
    return ordering


def _json_array(
    serializer_class: SerializerClass, model: type[Model], relation: str, batches: list[_BatchSpec] | None = None
) -> Any:
    """The JSON array of the related rows ``relation`` (a reverse foreign key or a many-to-many of ``model``), each
    rendered by ``serializer_class``, ordered by the serializer's ``Meta.ordering`` or the related model's.

    With ``batches`` (PostgreSQL, the rendered rows themselves), a forward many-to-many in id order is read from a
    common table expression that aggregates the link rows of every rendered row at once (``_BatchRef``)."""
    field: Any = model._meta.get_field(relation)
    related: type[Model] = field.related_model
    ordering = _ordering(serializer_class, related)
    if batches is not None and field.many_to_many and not field.auto_created and ordering in (["id"], ["pk"]):
        batches.append(_BatchSpec(field=field, serializer_class=serializer_class))
        return _BatchRef(len(batches) - 1)
    if field.many_to_many and not field.auto_created and ordering in (["id"], ["pk"]):
        # A forward many-to-many in id order: the link rows in order, each item looked up by its primary key. PostgreSQL
        # would otherwise hash the whole related table once per row (measured: 40 % less time on the day view's
        # equipment, whose table is small enough to look cheap to hash).
        through: Any = field.remote_field.through
        source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
        target_id = through._meta.get_field(target).attname
        item = (
            related._default_manager.filter(pk=OuterRef(target_id))
            .order_by()
            .values(body=_json_object(serializer_class, related))
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
            for path in _joined_paths(type(field)):
                paths.setdefault(path.rsplit("__", 1)[0], path)
        elif field.source and "." in field.source:
            path = field.source.replace(".", "__")
            paths.setdefault(path.rsplit("__", 1)[0], path)
    # In the fields' order: the order in which compiling the shape made the joins, so a request's query makes them
    # in the same order (two joins to one table then get the same aliases).
    return tuple(paths.values())


# --- compiled once, bound per request --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]  # constants, and ``_Param`` markers bound per request
    joins: tuple[str, ...]  # field paths whose joins the SQL reads through
    aliases: tuple[tuple[str, Any], ...]  # (alias, join identity) of the joins the SQL reads, besides the base table
    batches: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # the SQL of ``_b0, _b1, ...`` (``_batch_sql``)


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
    # Arrays of the rendered rows are batched on PostgreSQL; SQLite reads them per row (the embedded default).
    batches: list[_BatchSpec] | None = [] if connections[using].vendor == "postgresql" else None
    if relation is None:
        joins, body = _joined_paths(serializer_class), _json_object(serializer_class, model, "", batches)
    else:
        joins, body = (), _json_array(serializer_class, model, relation)
    queryset = template.values_list(body)
    compiler = queryset.query.get_compiler(using=using)
    select, _, _ = compiler.get_select()
    sql, params = select[0][1]
    base = queryset.query.get_initial_alias()
    quote = compiler.quote_name_unless_alias
    aliases = tuple(  # the joined tables the SQL reads (a join trimmed to a foreign key column is not read)
        (alias, _join_identity(join))
        for alias, join in queryset.query.alias_map.items()
        if alias != base and f"{quote(alias)}." in sql
    )
    batch_sql = tuple(_batch_sql(spec, using) for spec in batches or ())
    return _Compiled(sql=sql, params=tuple(params), joins=joins, aliases=aliases, batches=batch_sql)


def _join_identity(join: Any) -> tuple[Any, ...]:
    """What makes a join the same join in two queries: table, the alias it hangs from, the columns it joins on."""
    return (join.table_name, join.parent_alias, tuple(join.join_cols), join.join_type)


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
        for alias, identity in self.compiled.aliases:
            join = query.alias_map.get(alias)
            if join is None or _join_identity(join) != identity:
                # The query made another join under the alias the shape reads (a filter through another path to the
                # same table, say): rendering would read the wrong rows. A programming error, caught by the tests.
                raise ImproperlyConfigured(f"The query's join {alias} is not the one the shape reads through.")
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


_PLACEHOLDER = re.compile(r"(?<!%)%s")
#: The ids of the rendered rows, numbered in their order.
_IDS_CTE = "_ids AS MATERIALIZED (SELECT _q.pk, row_number() OVER () AS _n FROM ({rows}) _q)"


def _batches(shape: _ShapeSQL, ids: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    """The ``WITH`` clause of the shape's batches (empty without any): ``_ids``, the ids of the rendered rows (the
    ``pk`` of ``ids``), then ``_b0, _b1, ...`` computed for those ids."""
    if not shape.compiled.batches:
        return "", ()
    compiled = _sql(ids)
    if compiled is None:
        return "", ()  # no row: the caller renders nothing
    ids_sql, params = compiled
    # Numbered in the order of ``ids``: a page's rows are read back by id, and aggregated in this order.
    clauses = [_IDS_CTE.replace("{rows}", ids_sql, 1)]
    all_params = list(params)
    for index, (sql, batch_params) in enumerate(shape.compiled.batches):
        clauses.append(f"_b{index} AS MATERIALIZED ({sql.replace(_IDS_MARK, _PAGE_IDS, 1)})")
        all_params.extend(batch_params)
    return "WITH " + ", ".join(clauses) + " ", tuple(all_params)


def _fetch(
    alias: str,
    wrapper: str,
    parts: Mapping[str, tuple[str, tuple[Any, ...]]],
    *,
    own: tuple[Any, ...] = (),
    with_: tuple[str, tuple[Any, ...]] = ("", ()),
) -> tuple[Any, ...]:
    """One row of ``wrapper``: SQL in which each ``{name}`` is replaced by the compiled SQL ``parts[name]``, in the
    order the names appear in ``wrapper``; ``own`` are the parameters of the wrapper's own placeholders, which come
    before every part; ``with_`` a ``WITH`` clause put first. The wrappers hold no value: everything else is the
    ORM's SQL."""
    sql, params = with_[0] + wrapper, [*with_[1], *own]
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


#: A page whose rows are read back by the ids in ``_ids`` (see ``_batches``), in their order (PostgreSQL).
_PAGE_BY_IDS = (
    "SELECT (SELECT count(*) FROM ({count}) _c), "
    "(SELECT COALESCE(json_agg(_p.body ORDER BY _i._n), '[]')::text FROM ({rows}) _p JOIN _ids _i ON _i.pk = _p.pk)"
)


def render_page(
    queryset: QuerySet[Any], serializer_class: SerializerClass, *, offset: int, limit: int
) -> tuple[int, orjson.Fragment]:
    """``(count, array)``: the number of rows of ``queryset`` (scoped, filtered, ordered) and the JSON array of its
    page ``[offset, offset + limit)`` rendered by ``serializer_class``. One statement."""
    vendor = connections[queryset.db].vendor
    count = _sql(queryset.order_by().values("pk"))
    if count is None:
        return 0, _empty()
    body = _shape(serializer_class, queryset, text=False)
    page_ids = queryset.values("pk")[offset : offset + limit]
    with_ = _batches(body, page_ids)
    if with_[0]:
        # The rows are read back by the ids the batches were computed for (not a second LIMIT that ties could move),
        # from a plain query: the scope, filters and order were applied once, to the ids.
        page = _sql(_by_ids(queryset).values("pk", body=body))
        wrapper = _PAGE_BY_IDS
    else:
        page = _sql(page_ids.values(body=body))
        wrapper = _PAGE[vendor]
    assert page is not None  # the same filters as the count's
    total, array = _fetch(queryset.db, wrapper, {"count": count, "rows": page}, with_=with_)
    return total, orjson.Fragment(array)


def _by_ids(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """The rows of ``queryset``'s model whose ids are the statement's ``_ids`` (already scoped and filtered)."""
    return queryset.model._default_manager.db_manager(queryset.db).filter(pk__in=_Fragment(_PAGE_IDS))


def render_one(
    queryset: QuerySet[Any],
    serializer_class: SerializerClass,
    *,
    relation: str | None = None,
) -> orjson.Fragment | None:
    """The row of ``queryset`` (at most one: the views filter by primary key) rendered by ``serializer_class``
    (with ``relation``: the JSON array of its related rows so rendered), or ``None`` without a row. One statement."""
    body = _shape(serializer_class, queryset, relation=relation)
    ids = queryset.order_by().values("pk")[:1]
    with_ = _batches(body, ids)
    if not with_[0]:
        bodies = list(ids.values_list(body, flat=True))
        return orjson.Fragment(bodies[0]) if bodies else None
    compiled = _sql(_by_ids(queryset).values_list(body))
    assert compiled is not None  # the batches' ids came from the same query
    (text,) = _fetch(queryset.db, "SELECT ({rows})", {"rows": compiled}, with_=with_)
    return None if text is None else orjson.Fragment(text)


def render_each(queryset: QuerySet[Any], serializer_class: SerializerClass) -> dict[Any, orjson.Fragment]:
    """Each row of ``queryset`` rendered by ``serializer_class``, by primary key (rows it does not hold are absent:
    the caller tells "gone or out of scope" from that). One statement."""
    body = _shape(serializer_class, queryset)
    ids = queryset.order_by().values("pk")
    with_ = _batches(body, ids)
    if not with_[0]:
        return {pk: orjson.Fragment(text) for pk, text in queryset.order_by().values_list("pk", body)}
    compiled = _sql(_by_ids(queryset).values_list("pk", body))
    if compiled is None:
        return {}
    sql, params = compiled
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(with_[0] + sql, (*with_[1], *params))
        return {pk: orjson.Fragment(text) for pk, text in cursor.fetchall()}


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
    if queryset.query.order_by[:1] != (key,):
        # Python's groupby (SQLite) needs the rows by key; PostgreSQL would group them anyway, so say it once here.
        raise ImproperlyConfigured(f"render_groups needs a queryset ordered by {key} first.")
    postgres = connections[queryset.db].vendor == "postgresql"
    body = _shape(type(items_field.child), queryset, annotations=annotations, params=params, text=not postgres)
    rows = queryset.values(key=F(key), body=body)
    if postgres:
        with_ = _batches(body, queryset.order_by().values("pk"))
        if with_[0] and all(isinstance(term, str) for term in queryset.query.order_by):
            # Read back by id from a plain query, in the queryset's order (its terms are field paths): the scope and
            # filters were applied once, to the ids.
            rows = _by_ids(queryset).order_by(*queryset.query.order_by).values(key=F(key), body=body)
        compiled = _sql(rows)
        if compiled is None:
            return _empty()
        (array,) = _fetch(rows.db, _PG_GROUPS, {"rows": compiled}, own=(key_name, items_name), with_=with_)
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
