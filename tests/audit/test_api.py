"""GET /api/audit/: admin only, read-only, filtered, newest first, paginated, constant queries per page."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry

from .conftest import T0

pytestmark = pytest.mark.django_db

URL = "/api/audit/"
EXPECTED_FIELDS = {
    "id",
    "at",
    "actor",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "job",
    "changes",
    "request_id",
    "source",
}


@pytest.fixture
def entries(make_entry, admin_user, sales_agent):
    return [
        make_entry(actor=admin_user, action="job.created", object_type="job", object_id=1, job_id=1, at=T0),
        make_entry(
            actor=sales_agent,
            action="task.completed",
            object_type="jobtask",
            object_id=10,
            job_id=1,
            at=T0 + datetime.timedelta(hours=1),
            changes={"status": ["in_progress", "completed"]},
        ),
        make_entry(
            actor=None,
            action="job.flagged_overdue",
            object_type="job",
            object_id=2,
            job_id=2,
            at=T0 + datetime.timedelta(days=1),
        ),
        make_entry(
            actor=admin_user,
            action="user.role_changed",
            object_type="user",
            object_id=5,
            at=T0 + datetime.timedelta(days=2),
        ),
    ]


def _ids(response):
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("persona", "status"), [("admin_user", 200), ("technician", 403), ("sales_agent", 403), (None, 401)]
)
def test_only_admins_may_list(request, api_client, entries, persona, status):
    user = request.getfixturevalue(persona) if persona else None
    assert api_client(user).get(URL).status_code == status


@pytest.mark.parametrize(
    ("persona", "status"), [("admin_user", 200), ("technician", 403), ("sales_agent", 403), (None, 401)]
)
def test_only_admins_may_retrieve(request, api_client, entries, persona, status):
    user = request.getfixturevalue(persona) if persona else None
    assert api_client(user).get(f"{URL}{entries[1].pk}/").status_code == status


def test_entry_shape(api_client, admin_user, sales_agent, entries):
    row = api_client(admin_user).get(f"{URL}{entries[1].pk}/").json()
    assert set(row) == EXPECTED_FIELDS
    assert row["actor"] == sales_agent.pk
    assert row["actor_label"] == "sales1"
    assert row["job"] == 1
    assert row["changes"] == {"status": ["in_progress", "completed"]}
    assert row["action"] == "task.completed"
    assert row["object_type"] == "jobtask" and row["object_id"] == 10
    assert row["source"] == "api"
    assert datetime.datetime.fromisoformat(row["at"].replace("Z", "+00:00")) == entries[1].at
    system = api_client(admin_user).get(f"{URL}{entries[2].pk}/").json()
    assert system["actor"] is None and system["actor_label"] == "system"
    assert api_client(admin_user).get(f"{URL}999999/").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_is_read_only(api_client, admin_user, entries, method):
    client = api_client(admin_user)
    assert getattr(client, method)(URL, {}).status_code == 405
    assert getattr(client, method)(f"{URL}{entries[0].pk}/", {}).status_code == 405
    assert AuditEntry.objects.count() == len(entries)
    assert AuditEntry.objects.get(pk=entries[0].pk).action == "job.created"


def test_newest_first_with_id_as_tie_breaker(api_client, admin_user, make_entry, entries):
    same_time = [make_entry(at=T0 + datetime.timedelta(days=3)) for _ in range(2)]
    ids = _ids(api_client(admin_user).get(URL))
    assert ids == [same_time[1].pk, same_time[0].pk, *[e.pk for e in reversed(entries)]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=job.created", [0]),
        ("object_type=job", [2, 0]),
        ("object_type=jobtask&object_id=10", [1]),
        ("object_id=5", [3]),
        ("job=1", [1, 0]),
        ("job=3", []),
        ("at_after=2030-01-11", [3, 2]),
        ("at_after=2030-01-10T13:00:00Z", [3, 2, 1]),
        ("at_before=2030-01-10T12:30:00Z", [0]),
        ("at_before=2030-01-11", [2, 1, 0]),  # a date is inclusive of the whole day
        ("at_after=2030-01-10T12:00:00Z&at_before=2030-01-10T13:00:00Z", [1, 0]),
        ("at_after=2030-01-10T14:30:00%2B02:00", [3, 2, 1]),
        ("at_after=2030-01-10T14:30:00+02:00", [3, 2, 1]),  # an unencoded '+' arrives as a space
        ("action=nothing.here", []),
    ],
)
def test_filters(api_client, admin_user, entries, query, expected):
    response = api_client(admin_user).get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    assert _ids(response) == [entries[i].pk for i in expected]


def test_actor_filter(api_client, admin_user, sales_agent, entries):
    client = api_client(admin_user)
    assert _ids(client.get(f"{URL}?actor={admin_user.pk}")) == [entries[3].pk, entries[0].pk]
    assert _ids(client.get(f"{URL}?actor={sales_agent.pk}")) == [entries[1].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("actor=abc", "actor"),
        ("actor=0", "actor"),
        ("actor=99999999999999999999999", "actor"),
        ("job=1.5", "job"),
        ("object_id=-1", "object_id"),
        ("at_after=notadate", "at_after"),
        ("at_before=2030-13-01", "at_before"),
        ("at_before=2030-02-30T10:00:00Z", "at_before"),
        ("at_after=0001-01-01T00:00:00%2B05:00", "at_after"),
        ("action=" + "x" * 65, "action"),
        ("object_type=" + "x" * 33, "object_type"),
        ("page=0", "page"),
        ("page_size=abc", "page_size"),
    ],
)
def test_bad_filters_are_400_with_field_errors(api_client, admin_user, entries, query, field):
    response = api_client(admin_user).get(f"{URL}?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_edge_of_calendar_dates_are_not_errors(api_client, admin_user, entries):
    client = api_client(admin_user)
    assert len(_ids(client.get(f"{URL}?at_before=9999-12-31"))) == len(entries)
    assert _ids(client.get(f"{URL}?at_after=9999-12-31")) == []


def test_pagination(api_client, admin_user, entries):
    client = api_client(admin_user)
    first = client.get(f"{URL}?page_size=3").json()
    assert first["count"] == 4
    assert [row["id"] for row in first["results"]] == [e.pk for e in reversed(entries)][:3]
    assert first["next"] and first["previous"] is None
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [entries[0].pk]
    assert client.get(f"{URL}?page=3&page_size=3").status_code == 404
    assert client.get(f"{URL}?page_size=1000").json()["count"] == 4  # clamped, not refused


def test_query_count_does_not_grow_with_the_page_size(api_client, admin_user, make_entry):
    for i in range(60):
        make_entry(action="job.updated", object_id=i, job_id=i % 3, at=T0 + datetime.timedelta(minutes=i))
    client = api_client(admin_user)
    counts = {}
    for size in (1, 10, 50):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{URL}?page_size={size}&job=1")
        assert response.status_code == 200
        assert len(response.json()["results"]) == min(size, 20)
        counts[size] = len(queries)
    assert len(set(counts.values())) == 1, counts
    assert counts[1] <= 3  # the user (role from the database), the count, the page
