"""Unit tests of ``jobops.jsonshape``: the database renders a read serializer's shape exactly as DRF does, or refuses
the shape when it is first compiled.

The end-to-end equality of the API's responses (every role, filter and page) is in ``tests/jobs/test_rendering.py``;
these tests take the module's parts one at a time: which fields are refused, the values whose rendering is easy to get
wrong (datetimes, booleans, escaped text, empty and ordered arrays, counts), ``render_page``/``render_one``/
``render_groups``, the compiled-once SQL and its alias check, and the two serializer helpers of ``jobops.fields``.

A rendering is compared with the serializer's ``.data`` as the API sends it (``ORJSONRenderer``), both as values and
as canonical bytes: the bytes also compare key order and JSON types (``true`` is not ``1``, which Python's ``==``
would accept).

``_compile`` and ``_fields`` are cached per serializer class: every throwaway serializer below is used by one case.
"""

from __future__ import annotations

import datetime
import itertools
import zoneinfo
from typing import Any

import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework import serializers

from accounts.models import User
from equipment.models import Equipment
from equipment.serializers import EquipmentReadSerializer
from jobops import jsonshape
from jobops.fields import OrderedListSerializer, ReadModelSerializer, RelatedCountField, UTCDateTimeField
from jobops.renderers import ORJSONRenderer
from jobs import dashboard
from jobs.models import Job, JobTask
from jobs.selectors import task_scope
from jobs.serializers import JobDetailSerializer, JobReadSerializer, JobTaskReadSerializer
from tests.builders import at, make_job, make_task, make_tasks
from tests.factories import EquipmentFactory, JobFactory, UserFactory

pytestmark = pytest.mark.django_db

P, IP, C = JobTask.Status.PENDING, JobTask.Status.IN_PROGRESS, JobTask.Status.COMPLETED
DAY = datetime.date(2026, 3, 10)


# --- helpers -------------------------------------------------------------------------------------------------------


def from_db(fragment: orjson.Fragment | None) -> Any:
    """The JSON the database rendered, parsed (a Fragment has no accessor: it is encoded, then parsed)."""
    assert fragment is not None, "no row rendered"
    return orjson.loads(orjson.dumps(fragment))


def from_drf(data: Any) -> Any:
    """The serializer's ``.data`` as the API sends it, parsed."""
    return orjson.loads(ORJSONRenderer().render(data))


def assert_same(rendered: Any, expected: Any) -> None:
    """Equal values, then equal canonical bytes: the same key order and JSON types (``true`` vs ``1``)."""
    assert rendered == expected
    assert orjson.dumps(rendered) == orjson.dumps(expected)


def render_object(serializer_class: Any, obj: Any) -> Any:
    return from_db(jsonshape.render_one(type(obj).objects.filter(pk=obj.pk), serializer_class))


def serialize_object(serializer_class: Any, obj: Any) -> Any:
    return from_drf(serializer_class(type(obj).objects.get(pk=obj.pk)).data)


def assert_renders_as_drf(serializer_class: Any, obj: Any) -> Any:
    rendered = render_object(serializer_class, obj)
    assert_same(rendered, serialize_object(serializer_class, obj))
    return rendered


# --- fields the database does not render are refused when the shape is first compiled ------------------------------


class _JobBrief(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "title"]


class _TaskNewestFirst(ReadModelSerializer):
    class Meta:
        model = JobTask
        fields = ["id", "order"]
        ordering = ["-order"]


class _JobDecimal(ReadModelSerializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, source="id")

    class Meta:
        model = Job
        fields = ["id", "amount"]


class _JobMethod(ReadModelSerializer):
    shout = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "shout"]

    def get_shout(self, obj: Job) -> str:
        return obj.title.upper()


class _JobPlainDateTime(ReadModelSerializer):
    completed_at = serializers.DateTimeField()  # the current time zone (TIME_ZONE), not UTC

    class Meta:
        model = Job
        fields = ["id", "completed_at"]


class _JobParisDateTime(ReadModelSerializer):
    completed_at = serializers.DateTimeField(default_timezone=zoneinfo.ZoneInfo("Europe/Paris"))

    class Meta:
        model = Job
        fields = ["id", "completed_at"]


class _JobYearOnly(ReadModelSerializer):
    completed_at = UTCDateTimeField(format="%Y")

    class Meta:
        model = Job
        fields = ["id", "completed_at"]


class _TaskOrderAsText(ReadModelSerializer):
    order = serializers.CharField()  # an integer column rendered as a string by DRF

    class Meta:
        model = JobTask
        fields = ["id", "order"]


class _TaskWithNestedJob(ReadModelSerializer):
    job = _JobBrief(read_only=True)  # source "job": another row

    class Meta:
        model = JobTask
        fields = ["id", "job"]


class _JobTasksNewestFirst(ReadModelSerializer):
    tasks = _TaskNewestFirst(many=True, read_only=True)

    class Meta:
        model = Job
        fields = ["id", "tasks"]


class _JobDatePlainDate(ReadModelSerializer):
    scheduled_date = serializers.DateField(format="%d/%m/%Y")

    class Meta:
        model = Job
        fields = ["id", "scheduled_date"]


@pytest.mark.parametrize(
    ("serializer_class", "message"),
    [
        (_JobDecimal, "DecimalField .amount. has no SQL rendering"),
        (_JobMethod, "shout"),  # source "*": "no column to render"
        (_JobPlainDateTime, "completed_at: only ISO 8601 datetimes in UTC"),
        (_JobParisDateTime, "completed_at: only ISO 8601 datetimes in UTC"),
        (_JobYearOnly, "completed_at: only ISO 8601 datetimes in UTC"),
        (_JobDatePlainDate, "scheduled_date: only ISO 8601 dates"),
        (_TaskOrderAsText, "order: a PositiveIntegerField column is not rendered as CharField"),
        (_TaskWithNestedJob, "a nested object is rendered only from the same row"),
        (_JobTasksNewestFirst, "_TaskNewestFirst: a nested list is ordered by field names, ascending"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_a_field_without_an_exact_sql_rendering_is_refused_when_first_compiled(
    job, django_assert_num_queries, serializer_class, message
):
    model = serializer_class.Meta.model
    obj = job if model is Job else make_task(job, 1)
    queryset = model.objects.filter(pk=obj.pk)
    with django_assert_num_queries(0):  # refused before anything is sent to the database
        with pytest.raises(ImproperlyConfigured, match=message):
            jsonshape.render_one(queryset, serializer_class)
        with pytest.raises(ImproperlyConfigured, match=message):  # every time: a refusal is not cached as a shape
            jsonshape.render_page(queryset, serializer_class, offset=0, limit=10)
    # DRF itself renders these shapes: they are refused by the module, not broken
    assert serializer_class(obj).data["id"] == obj.pk


# --- values: exactly what DRF renders -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (at("2026-03-04 08:00:00"), "2026-03-04T08:00:00Z"),  # a whole second: no fraction
        (at("2026-03-04 08:00:00").replace(microsecond=120), "2026-03-04T08:00:00.000120Z"),
        (at("2026-03-04 08:00:00").replace(microsecond=100000), "2026-03-04T08:00:00.100000Z"),
        (at("2026-03-04 23:59:59").replace(microsecond=999999), "2026-03-04T23:59:59.999999Z"),
        (at("1969-12-31 23:59:59").replace(microsecond=1), "1969-12-31T23:59:59.000001Z"),
        (at("0999-01-02 03:04:05"), "0999-01-02T03:04:05Z"),
        (None, None),
    ],
    ids=["whole-second", "120us", "100000us", "999999us", "before-1970", "year-999", "null"],
)
def test_datetimes_render_as_drf(job, stored, expected):
    Job.objects.filter(pk=job.pk).update(completed_at=stored)
    rendered = assert_renders_as_drf(JobReadSerializer, job)
    assert rendered["completed_at"] == expected


def test_auto_timestamps_render_as_drf(job):
    # created_at/updated_at as Django wrote them (timezone.now(): microseconds, almost always non-zero)
    rendered = assert_renders_as_drf(JobReadSerializer, job)
    assert rendered["created_at"].endswith("Z") and rendered["updated_at"].endswith("Z")


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_json_true_and_false_not_numbers(job, value):
    Job.objects.filter(pk=job.pk).update(overdue=value)
    equipment = EquipmentFactory(is_active=value)
    rendered_job = assert_renders_as_drf(JobReadSerializer, job)
    rendered_equipment = assert_renders_as_drf(EquipmentReadSerializer, equipment)
    # 1 == True in Python: the type is what tells a JSON boolean from a number
    assert rendered_job["overdue"] is value
    assert rendered_equipment["is_active"] is value


ESCAPED_TEXTS = [
    'a "quoted" word',
    "back\\slash and \\u0041 not an escape",
    "tab\there",
    "line one\nline two\r\n",
    "line\u2028separator\u2029paragraph",
    "accents é ü ß, CJK 漢字, RTL עברית",
    "emoji 🚀👩🏽‍🔧",
    "control \x01\x1f\x7f",
    '{"looks": "like json"}',
    "[1, 2]",
    "null",
    "",
    " spaces ",
]


@pytest.mark.parametrize("text", ESCAPED_TEXTS)
def test_text_needing_json_escaping_renders_as_drf(job, text):
    Job.objects.filter(pk=job.pk).update(title=text[:200], description=text, client_name=text)
    rendered = assert_renders_as_drf(JobReadSerializer, job)
    assert rendered["title"] == rendered["description"] == rendered["client_name"] == text


def test_empty_nested_arrays_render_as_empty_arrays(job):
    rendered = assert_renders_as_drf(JobDetailSerializer, job)
    assert rendered["tasks"] == []
    task = make_task(job, 1)  # a task without equipment
    rendered = assert_renders_as_drf(JobDetailSerializer, job)
    assert rendered["tasks"][0]["id"] == task.pk
    assert rendered["tasks"][0]["required_equipment"] == []
    # the relation alone (``relation=``): [] without a row
    empty = JobFactory()
    assert from_db(jsonshape.render_one(Job.objects.filter(pk=empty.pk), JobTaskReadSerializer, relation="tasks")) == []


def test_nested_arrays_follow_the_child_serializers_ordering_not_the_insertion_order(job):
    # created last-first: ids run against ``order``; equipment linked last-first: link ids run against equipment ids
    equipment = EquipmentFactory.create_batch(3)
    tasks = make_tasks(job, [C, IP, P, P])
    assert [t.pk for t in tasks] == sorted((t.pk for t in tasks), reverse=True)
    tasks[1].required_equipment.add(equipment[2])
    tasks[1].required_equipment.add(equipment[0])
    tasks[1].required_equipment.add(equipment[1])
    rendered = assert_renders_as_drf(JobDetailSerializer, job)
    assert [t["order"] for t in rendered["tasks"]] == [1, 2, 3, 4]
    assert [e["id"] for e in rendered["tasks"][1]["required_equipment"]] == sorted(e.pk for e in equipment)
    # the relation alone, as the job's task list renders it
    relation = from_db(jsonshape.render_one(Job.objects.filter(pk=job.pk), JobTaskReadSerializer, relation="tasks"))
    assert_same(relation, from_drf(JobTaskReadSerializer(job.tasks.all(), many=True).data))
    assert [t["order"] for t in relation] == [1, 2, 3, 4]


class _EquipmentByName(ReadModelSerializer):
    class Meta:
        model = Equipment
        fields = ["id", "name"]
        ordering = ["name", "id"]


class _TaskEquipmentByName(ReadModelSerializer):
    required_equipment = _EquipmentByName(many=True, read_only=True)

    class Meta:
        model = JobTask
        fields = ["id", "required_equipment"]


class _TaskByOrder(ReadModelSerializer):
    class Meta:
        model = JobTask
        fields = ["id", "order"]
        ordering = ["job_id", "order"]


class _EquipmentWithTasks(ReadModelSerializer):
    tasks = _TaskByOrder(many=True, read_only=True)  # the reverse side of the many-to-many

    class Meta:
        model = Equipment
        fields = ["id", "tasks"]


def test_many_to_many_arrays_in_another_order_than_ids_and_from_the_reverse_side(job):
    # names against ids: the forward many-to-many through its reverse name (not the by-id shortcut)
    zeta, alpha, mid = (EquipmentFactory(name=name) for name in ("zeta", "alpha", "mid"))
    task = make_task(job, 1, equipment=[mid, zeta, alpha])
    rendered = assert_renders_as_drf(_TaskEquipmentByName, task)
    assert [e["name"] for e in rendered["required_equipment"]] == ["alpha", "mid", "zeta"]
    # the reverse many-to-many: the tasks needing a piece of equipment
    other = make_task(JobFactory(), 5, equipment=[alpha])
    later = make_task(job, 2, equipment=[alpha])
    rendered = assert_renders_as_drf(_EquipmentWithTasks, alpha)
    assert [t["id"] for t in rendered["tasks"]] == [task.pk, later.pk, other.pk]


@pytest.mark.parametrize(
    ("statuses", "total", "completed"),
    [([], 0, 0), ([P, IP], 2, 0), ([C, P, C, IP], 4, 2), ([C], 1, 1)],
)
def test_related_counts_with_and_without_a_filter(job, statuses, total, completed):
    make_tasks(job, statuses)
    make_tasks(JobFactory(), [C, C, P])  # another job's tasks are not counted
    rendered = assert_renders_as_drf(JobReadSerializer, job)
    assert (rendered["tasks_total"], rendered["tasks_completed"]) == (total, completed)
    assert type(rendered["tasks_total"]) is int and type(rendered["tasks_completed"]) is int


# --- render_page ----------------------------------------------------------------------------------------------------


@pytest.fixture
def five_jobs(sales_agent, technician):
    jobs = [
        make_job(scheduled=DAY + datetime.timedelta(days=n % 3), technician=technician, created_by=sales_agent)
        for n in range(5)
    ]
    make_tasks(jobs[1], [C, P])
    return jobs


@pytest.mark.parametrize(
    "ordering", [("id",), ("-id",), ("-scheduled_date", "id"), ("scheduled_date", "-id")], ids=lambda o: ",".join(o)
)
@pytest.mark.parametrize(("offset", "limit"), [(0, 10), (0, 2), (1, 2), (4, 2), (3, 100)])
def test_a_page_and_its_count_come_together_in_the_querysets_order(five_jobs, ordering, offset, limit):
    queryset = Job.objects.order_by(*ordering)
    count, page = jsonshape.render_page(queryset, JobReadSerializer, offset=offset, limit=limit)
    assert count == 5
    expected = from_drf(JobReadSerializer(queryset[offset : offset + limit], many=True).data)
    rendered = from_db(page)
    assert_same(rendered, expected)
    assert len(rendered) == min(limit, 5 - offset) > 0


def test_the_count_is_of_the_filtered_queryset_not_of_the_page(five_jobs):
    queryset = Job.objects.filter(scheduled_date=DAY).order_by("id")  # n % 3 == 0: jobs 0 and 3
    count, page = jsonshape.render_page(queryset, JobReadSerializer, offset=0, limit=1)
    assert count == 2
    assert [job["id"] for job in from_db(page)] == [five_jobs[0].pk]


@pytest.mark.parametrize("offset", [5, 6, 2**62])
def test_a_page_past_the_end_is_an_empty_array_with_the_count(five_jobs, offset):
    count, page = jsonshape.render_page(Job.objects.order_by("id"), JobReadSerializer, offset=offset, limit=2)
    assert count == 5
    assert orjson.dumps(page) == b"[]"


@pytest.mark.parametrize(
    "queryset",
    [lambda: Job.objects.filter(pk__in=[]), lambda: Job.objects.none(), lambda: Job.objects.filter(pk__in=[]).none()],
    ids=["pk__in=[]", "none()", "both"],
)
def test_a_queryset_that_can_match_nothing_is_not_sent(five_jobs, django_assert_num_queries, queryset):
    with django_assert_num_queries(0):
        count, page = jsonshape.render_page(queryset(), JobReadSerializer, offset=0, limit=10)
    assert count == 0
    assert orjson.dumps(page) == b"[]"


def test_an_empty_table_is_count_zero_and_an_empty_array(db, django_assert_num_queries):
    with django_assert_num_queries(1):
        count, page = jsonshape.render_page(Job.objects.all(), JobReadSerializer, offset=0, limit=10)
    assert (count, orjson.dumps(page)) == (0, b"[]")


def test_a_page_with_nested_arrays_is_one_query(five_jobs, django_assert_num_queries):
    equipment = EquipmentFactory.create_batch(2)
    for job in five_jobs:
        make_task(job, 7, equipment=equipment)
    queryset = Job.objects.order_by("id")
    with django_assert_num_queries(1):
        count, page = jsonshape.render_page(queryset, JobDetailSerializer, offset=0, limit=10)
    assert count == 5
    assert_same(from_db(page), from_drf(JobDetailSerializer(queryset, many=True).data))


@pytest.fixture
def tasks_with_equipment(job):
    """Tasks whose required equipment differs (linked out of id order), one without any, another job's task."""
    equipment = EquipmentFactory.create_batch(3)
    return [
        make_task(job, 1, equipment=[equipment[2], equipment[0]]),
        make_task(job, 2),
        make_task(job, 3, equipment=[equipment[1], equipment[2], equipment[0]]),
        make_task(JobFactory(), 1, equipment=[equipment[1]]),
    ]


@pytest.mark.parametrize(("offset", "limit"), [(0, 10), (1, 2), (3, 5)])
def test_a_page_of_rows_with_a_many_to_many_is_one_query(
    tasks_with_equipment, django_assert_num_queries, offset, limit
):
    # the rendered rows' own many-to-many (on PostgreSQL: batched for the page's rows)
    queryset = JobTask.objects.order_by("-id")
    with django_assert_num_queries(1):
        count, page = jsonshape.render_page(queryset, JobTaskReadSerializer, offset=offset, limit=limit)
    assert count == 4
    rendered = from_db(page)
    assert_same(rendered, from_drf(JobTaskReadSerializer(queryset[offset : offset + limit], many=True).data))
    assert [len(task["required_equipment"]) for task in rendered] == [1, 3, 0, 2][offset : offset + limit]


def test_rows_tied_in_the_order_each_carry_their_own_related_rows(job):
    """Every row ties (one status): whichever rows a page holds, each must carry its own equipment."""
    equipment = EquipmentFactory.create_batch(6)
    for n, piece in enumerate(equipment):
        make_task(job, n + 1, equipment=[piece])
    queryset = JobTask.objects.order_by("status")
    for offset in (0, 2, 4):
        _, page = jsonshape.render_page(queryset, JobTaskReadSerializer, offset=offset, limit=2)
        rows = from_db(page)
        assert len(rows) == 2
        for row in rows:
            assert_same(row, serialize_object(JobTaskReadSerializer, JobTask(pk=row["id"])))


def test_render_one_of_several_rows_renders_one_row_whole(tasks_with_equipment):
    rendered = from_db(jsonshape.render_one(JobTask.objects.all(), JobTaskReadSerializer))
    assert_same(rendered, serialize_object(JobTaskReadSerializer, JobTask(pk=rendered["id"])))
    task = tasks_with_equipment[1]  # no equipment
    assert_renders_as_drf(JobTaskReadSerializer, task)
    assert_renders_as_drf(JobTaskReadSerializer, tasks_with_equipment[2])


def test_render_one_is_one_query_and_none_without_a_row(five_jobs, django_assert_num_queries):
    with django_assert_num_queries(1):
        rendered = from_db(jsonshape.render_one(Job.objects.filter(pk=five_jobs[1].pk), JobDetailSerializer))
    assert rendered["id"] == five_jobs[1].pk
    with django_assert_num_queries(1):
        assert jsonshape.render_one(Job.objects.filter(pk=10**12), JobDetailSerializer) is None


def test_render_one_renders_the_row_of_a_queryset_filtered_to_one(five_jobs):
    """``render_one`` takes one row with the ordering cleared: the views hand it a queryset filtered by primary key."""
    target = five_jobs[3]
    rendered = from_db(jsonshape.render_one(Job.objects.order_by("-id").filter(pk=target.pk), JobReadSerializer))
    assert rendered["id"] == target.pk


# --- render_groups ---------------------------------------------------------------------------------------------------


@pytest.fixture
def day_tasks(admin_user, technician, other_technician):
    """Open tasks of open jobs on DAY and DAY + 2, created so that job ids do not follow the dates."""
    later = make_job(scheduled=DAY + datetime.timedelta(days=2), technician=technician, title='Later "job"')
    earlier = make_job(scheduled=DAY, technician=other_technician, status=Job.Status.IN_PROGRESS)
    also_later = make_job(scheduled=DAY + datetime.timedelta(days=2), technician=technician)
    make_job(scheduled=DAY + datetime.timedelta(days=1), technician=None)  # unassigned: not on the dashboard
    make_tasks(later, [P, P])
    make_tasks(earlier, [C, IP, P], equipment=EquipmentFactory.create_batch(2))
    make_tasks(also_later, [IP])
    return {"later": later, "earlier": earlier, "also_later": also_later}


def groups_by_drf(tasks, *, today):
    """What the dashboard renders through the serializers: the tasks annotated, grouped by date in their order."""
    tasks = tasks.annotate(**dashboard.dashboard_annotations(today=today)).select_related("job")
    return from_drf(
        [
            dashboard.DashboardDaySerializer({"date": date, "tasks": list(group)}).data
            for date, group in itertools.groupby(tasks, key=lambda task: task.job.scheduled_date)
        ]
    )


def render_days(tasks, *, today):
    return from_db(
        jsonshape.render_groups(
            tasks,
            dashboard.DashboardDaySerializer,
            key="job__scheduled_date",
            annotations=dashboard.dashboard_annotations,
            params={"today": today},
        )
    )


def test_groups_by_key_ascending_with_items_in_queryset_order(day_tasks, admin_user):
    tasks = dashboard.dashboard_tasks(task_scope(user=admin_user), technician_id=None, days=7, today=DAY)
    rendered = render_days(tasks, today=DAY)
    assert_same(rendered, groups_by_drf(tasks, today=DAY))
    later_date = str(DAY + datetime.timedelta(days=2))
    assert [group["date"] for group in rendered] == [str(DAY), later_date]
    first, second = rendered
    assert [(t["job"]["id"], t["order"]) for t in first["tasks"]] == [
        (day_tasks["earlier"].pk, 2),
        (day_tasks["earlier"].pk, 3),
    ]
    assert [(t["job"]["id"], t["order"]) for t in second["tasks"]] == [
        (day_tasks["later"].pk, 1),
        (day_tasks["later"].pk, 2),
        (day_tasks["also_later"].pk, 1),
    ]
    # booleans of annotations are JSON booleans too
    assert [t["actionable"] for t in second["tasks"]] == [True, False, True]
    assert all(t["actionable"] is True or t["actionable"] is False for g in rendered for t in g["tasks"])
    assert first["tasks"][0]["job"]["overdue"] is False
    assert [len(t["required_equipment"]) for t in first["tasks"]] == [2, 2]


def test_groups_need_a_queryset_ordered_by_the_key_first(day_tasks, admin_user):
    """Python's groupby (SQLite) would repeat a key for rows out of key order, where PostgreSQL groups them: both
    refuse such a queryset instead of disagreeing."""
    tasks = dashboard.dashboard_tasks(task_scope(user=admin_user), technician_id=None, days=7, today=DAY).order_by(
        "job_id", "order"
    )
    with pytest.raises(ImproperlyConfigured, match="ordered by job__scheduled_date first"):
        render_days(tasks, today=DAY)


def test_no_rows_is_an_empty_array(day_tasks, admin_user):
    tasks = dashboard.dashboard_tasks(task_scope(user=admin_user), technician_id=None, days=7, today=DAY)
    assert render_days(tasks.filter(pk__in=[]), today=DAY) == []
    assert render_days(tasks.filter(title="no such task"), today=DAY) == []


def test_a_param_is_bound_per_call_into_the_same_compiled_shape(day_tasks, admin_user):
    scope = task_scope(user=admin_user)
    before = jsonshape._compile.cache_info()
    first_day = render_days(dashboard.dashboard_tasks(scope, technician_id=None, days=7, today=DAY), today=DAY)
    after_first = jsonshape._compile.cache_info()
    next_day = DAY + datetime.timedelta(days=1)
    second_day = render_days(
        dashboard.dashboard_tasks(scope, technician_id=None, days=7, today=next_day), today=next_day
    )
    after_second = jsonshape._compile.cache_info()
    assert after_first.misses - before.misses <= 1  # compiled at most once (earlier tests may have compiled it)
    assert (after_second.misses, after_second.hits) == (after_first.misses, after_first.hits + 1)

    def overdue(days):
        return {(t["job"]["id"], t["order"]): t["job"]["overdue"] for group in days for t in group["tasks"]}

    earlier = day_tasks["earlier"].pk
    assert overdue(first_day)[(earlier, 2)] is False  # scheduled today
    assert overdue(second_day)[(earlier, 2)] is True  # scheduled yesterday
    assert not any(value for key, value in overdue(second_day).items() if key[0] != earlier)
    tasks = dashboard.dashboard_tasks(scope, technician_id=None, days=7, today=next_day)
    assert_same(second_day, groups_by_drf(tasks, today=next_day))


# --- compiled once ---------------------------------------------------------------------------------------------------


class _JobForReuse(ReadModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "title", "overdue", "completed_at"]


def test_a_shape_is_compiled_once_and_reused(five_jobs, monkeypatch):
    built = []
    original = jsonshape._json_object

    def counting(serializer_class, *args, **kwargs):
        built.append(serializer_class)
        return original(serializer_class, *args, **kwargs)

    monkeypatch.setattr(jsonshape, "_json_object", counting)
    first = jsonshape.render_one(Job.objects.filter(pk=five_jobs[0].pk), _JobForReuse)
    info = jsonshape._compile.cache_info()
    assert built == [_JobForReuse]  # this class is rendered by this test only: built, compiled here
    second = jsonshape.render_one(Job.objects.filter(pk=five_jobs[3].pk), _JobForReuse)
    count, page = jsonshape.render_page(Job.objects.order_by("-id"), _JobForReuse, offset=0, limit=2)
    assert built == [_JobForReuse]  # not built (nor compiled) again
    again = jsonshape._compile.cache_info()
    assert (again.hits, again.misses) == (info.hits + 2, info.misses)
    # the compiled SQL holds no value of a row or a request
    assert_same(from_db(first), serialize_object(_JobForReuse, five_jobs[0]))
    assert_same(from_db(second), serialize_object(_JobForReuse, five_jobs[3]))
    assert [job["id"] for job in from_db(page)] == [five_jobs[4].pk, five_jobs[3].pk]


# --- joins and the alias check -------------------------------------------------------------------------------------


class _TaskWithJobTitle(ReadModelSerializer):
    job_title = serializers.CharField(source="job.title", read_only=True)

    class Meta:
        model = JobTask
        fields = ["id", "job_title"]


class _JobPeople(ReadModelSerializer):
    # two joins to accounts_user; declared in the order the module resolves a request's joins (field paths sorted)
    assignee = serializers.CharField(source="assigned_to.username", allow_null=True, read_only=True)
    creator = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "assignee", "creator"]


class _JobPeopleCreatorFirst(ReadModelSerializer):
    creator = serializers.CharField(source="created_by.username", read_only=True)
    assignee = serializers.CharField(source="assigned_to.username", allow_null=True, read_only=True)

    class Meta:
        model = Job
        fields = ["id", "creator", "assignee"]


class _JobPeopleForCheck(ReadModelSerializer):
    assignee = serializers.CharField(source="assigned_to.username", allow_null=True, read_only=True)
    creator = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "assignee", "creator"]


class _TaskWithJobTitleForCheck(ReadModelSerializer):
    job_title = serializers.CharField(source="job.title", read_only=True)

    class Meta:
        model = JobTask
        fields = ["id", "job_title"]


def test_a_field_read_through_a_join_renders_as_drf(job):
    task = make_task(job, 1)
    rendered = assert_renders_as_drf(_TaskWithJobTitle, task)
    assert rendered["job_title"] == job.title
    rendered = assert_renders_as_drf(_JobPeople, job)
    assert (rendered["assignee"], rendered["creator"]) == (job.assigned_to.username, job.created_by.username)
    unassigned = JobFactory(assigned_to=None)
    assert assert_renders_as_drf(_JobPeople, unassigned)["assignee"] is None  # a LEFT JOIN, allow_null


def test_the_alias_check_refuses_a_query_whose_joins_carry_other_aliases(job, django_assert_num_queries):
    """Compiled alone, the shape's second join to accounts_user is ``T3``; after the queryset's own join to the
    tasks it would be ``T4``: the compiled SQL's ``T3`` names nothing in that query."""
    make_task(job, 1, title="x")
    jsonshape.render_one(Job.objects.filter(pk=job.pk), _JobPeopleForCheck)  # compiled (and fine) on its own
    queryset = Job.objects.filter(tasks__title="x")
    with django_assert_num_queries(0):
        with pytest.raises(ImproperlyConfigured, match="is not the one the shape reads through"):
            jsonshape.render_page(queryset, _JobPeopleForCheck, offset=0, limit=10)
        with pytest.raises(ImproperlyConfigured, match="is not the one the shape reads through"):
            jsonshape.render_one(queryset, _JobPeopleForCheck)


def test_a_query_joining_the_shapes_table_by_another_path_is_refused_or_rendered_right(technician):
    """The queryset joins jobs_job first, through the equipment's other tasks: the shape's join (task -> its job)
    is then ``T6`` in that query, and the compiled SQL's ``"jobs_job"`` is the other task's job. The shape must be
    refused (ImproperlyConfigured) or read each task's own job; reading another row's job is the failure."""
    shared = EquipmentFactory()
    mine = make_task(make_job(scheduled=DAY, title="Job A", technician=technician), 1, equipment=[shared])
    make_task(make_job(scheduled=DAY, title="Job B"), 1, equipment=[shared])
    queryset = JobTask.objects.filter(required_equipment__tasks__job__title="Job B", pk=mine.pk)
    assert queryset.count() == 1
    try:
        rendered = from_db(jsonshape.render_one(queryset, _TaskWithJobTitleForCheck))
    except ImproperlyConfigured:
        return
    assert rendered == {"id": mine.pk, "job_title": "Job A"}


def test_a_query_joining_the_shapes_table_first_for_a_filter_is_refused_or_rendered_right(job):
    """The queryset joins accounts_user for a filter on the creator: the shape's other join to it (the assignee) is
    then ``T3``, the alias the compiled SQL gives the creator's join."""
    queryset = Job.objects.filter(created_by__username=job.created_by.username, pk=job.pk)
    jsonshape.render_one(Job.objects.filter(pk=job.pk), _JobPeople)  # compiled on its own first
    try:
        rendered = from_db(jsonshape.render_one(queryset, _JobPeople))
    except ImproperlyConfigured:
        return
    assert rendered == serialize_object(_JobPeople, job)


def test_two_joins_to_one_table_render_each_its_own_row(job):
    """Fields read through two relations to the same table, declared creator first: each reads its own user."""
    rendered = assert_renders_as_drf(_JobPeopleCreatorFirst, job)
    assert (rendered["creator"], rendered["assignee"]) == (job.created_by.username, job.assigned_to.username)


# --- fields the module accepts: DRF's rendering must follow --------------------------------------------------------


class _JobAssigneeName(ReadModelSerializer):
    assignee_name = serializers.CharField(source="assigned_to.username", read_only=True)  # no allow_null

    class Meta:
        model = Job
        fields = ["id", "assignee_name"]


class _JobOverdueAsNumber(ReadModelSerializer):
    overdue_number = serializers.IntegerField(source="overdue", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "overdue_number"]


class _JobClientAsNumber(ReadModelSerializer):
    client_number = serializers.IntegerField(source="client_name", read_only=True)

    class Meta:
        model = Job
        fields = ["id", "client_number"]


class _JobCompletedUnformatted(ReadModelSerializer):
    completed_at = UTCDateTimeField(format=None)

    class Meta:
        model = Job
        fields = ["id", "completed_at"]


@pytest.mark.parametrize(
    ("serializer_class", "message"),
    [
        # DRF leaves the key out when the relation is null; the database would render null
        (_JobAssigneeName, "goes through a nullable relation: allow_null=True"),
        # DRF renders 1 where PostgreSQL's json would say true, and 42 where the column holds "42"
        (_JobOverdueAsNumber, "a BooleanField column is not rendered as IntegerField"),
        (_JobClientAsNumber, "a CharField column is not rendered as IntegerField"),
        # format=None: DRF hands the datetime object to the renderer (+00:00), the database writes Z
        (_JobCompletedUnformatted, "only ISO 8601 datetimes in UTC"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_fields_drf_renders_otherwise_are_refused(sales_agent, serializer_class, message):
    job = JobFactory(created_by=sales_agent, assigned_to=None, client_name="42", overdue=False)
    with pytest.raises(ImproperlyConfigured, match=message):
        jsonshape.render_one(Job.objects.filter(pk=job.pk), serializer_class)


# --- jobops.fields: UTCDateTimeField and OrderedListSerializer ------------------------------------------------------


def test_datetimes_render_in_utc_with_z_whatever_time_zone_is(settings, job):
    settings.TIME_ZONE = "Europe/Paris"
    Job.objects.filter(pk=job.pk).update(completed_at=at("2026-07-01 22:30:00").replace(microsecond=5))
    plain = serializers.DateTimeField().to_representation(at("2026-07-01 22:30:00"))
    assert plain == "2026-07-02T00:30:00+02:00"  # TIME_ZONE is in effect for a plain DateTimeField
    assert isinstance(JobReadSerializer().fields["completed_at"], UTCDateTimeField)
    rendered = assert_renders_as_drf(JobReadSerializer, job)
    assert rendered["completed_at"] == "2026-07-01T22:30:00.000005Z"
    assert rendered["created_at"].endswith("Z")


class _TaskByTitle(ReadModelSerializer):
    class Meta:
        model = JobTask
        fields = ["id", "title"]
        ordering = ["title", "id"]


class _JobTasksByTitle(ReadModelSerializer):
    tasks = _TaskByTitle(many=True, read_only=True)

    class Meta:
        model = Job
        fields = ["id", "tasks"]


def test_ordered_list_serializer_orders_a_related_manager_by_meta_ordering(job):
    for order, title in enumerate(["charlie", "alpha", "bravo"], start=1):
        make_task(job, order, title=title)
    field = _JobTasksByTitle().fields["tasks"]
    assert isinstance(field, OrderedListSerializer)
    assert [t["title"] for t in field.to_representation(job.tasks)] == ["alpha", "bravo", "charlie"]
    # a list (or a queryset) is taken as given
    as_given = list(job.tasks.order_by("-order"))
    assert [t["title"] for t in field.to_representation(as_given)] == ["bravo", "alpha", "charlie"]
    # the database renders the same order
    rendered = assert_renders_as_drf(_JobTasksByTitle, job)
    assert [t["title"] for t in rendered["tasks"]] == ["alpha", "bravo", "charlie"]


def test_related_count_field_reads_the_relation_in_python_too(job):
    make_tasks(job, [C, P, C])
    assert RelatedCountField(relation="tasks").to_representation(job) == 3
    assert RelatedCountField(relation="tasks", filter={"status": C}).to_representation(job) == 2
    assert RelatedCountField(relation="tasks", filter={"status": IP}).to_representation(job) == 0


def test_users_render_through_a_plain_model_serializer_shape(admin_user):
    """A shape over accounts.User (no relation, a boolean, a text and a datetime column)."""

    user = UserFactory(first_name='Zoë "Z"', is_active=False)
    User.objects.filter(pk=user.pk).update(last_login=at("2026-01-02 03:04:05").replace(microsecond=60))
    rendered = assert_renders_as_drf(_UserShape, user)
    assert rendered["is_active"] is False
    assert rendered["last_login"] == "2026-01-02T03:04:05.000060Z"


class _UserShape(ReadModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "first_name", "is_active", "role", "last_login", "date_joined"]
