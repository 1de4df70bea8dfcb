"""``/api/notifications/``: admin only, read-only, filters (400 on bad values), constant queries, retry."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from notifications.models import Notification
from tests.factories import JobFactory
from tests.notifications.support import deliveries

pytestmark = pytest.mark.django_db

URL = "/api/notifications/"
FIELDS = {"id", "channel", "kind", "recipient", "job", "status", "attempts", "last_error", "created_at", "sent_at"}
Kind = Notification.Kind
Status = Notification.Status


def make(job=None, kind=Kind.JOB_ASSIGNED, status=Status.PENDING, **extra):
    return Notification.objects.create(
        kind=kind, recipient="someone@example.com", job=job, subject="S", status=status, **extra
    )


@pytest.fixture
def outbox(job):
    other_job = JobFactory(created_by=job.created_by)
    return {
        "pending": make(job),
        "sent": make(job, kind=Kind.JOB_COMPLETED, status=Status.SENT),
        "failed": make(other_job, kind=Kind.JOB_OVERDUE, status=Status.FAILED, attempts=6, last_error="SMTP: down"),
        "reminder": make(None, kind=Kind.DAILY_REMINDER),
    }


@pytest.fixture
def users(admin_user, technician, sales_agent):
    return {"admin": admin_user, "technician": technician, "sales_agent": sales_agent, "anonymous": None}


MATRIX = [
    ("anonymous", 401, 401, 401),
    ("technician", 403, 403, 403),
    ("sales_agent", 403, 403, 403),
    ("admin", 200, 200, 200),
]


@pytest.mark.parametrize(("persona", "list_code", "detail_code", "retry_code"), MATRIX)
def test_role_matrix(api_client, users, outbox, persona, list_code, detail_code, retry_code):
    client = api_client(users[persona])
    failed = outbox["failed"]
    assert client.get(URL).status_code == list_code
    assert client.get(f"{URL}{failed.pk}/").status_code == detail_code
    assert client.post(f"{URL}{failed.pk}/retry/").status_code == retry_code
    failed.refresh_from_db()
    assert failed.status == (Status.PENDING if retry_code == 200 else Status.FAILED)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_only(api_client, admin_user, outbox, method):
    client = api_client(admin_user)
    target = URL if method == "post" else f"{URL}{outbox['pending'].pk}/"
    assert getattr(client, method)(target, {}).status_code == 405
    assert Notification.objects.count() == 4


def test_list_shape_newest_first(api_client, admin_user, outbox):
    body = api_client(admin_user).get(URL).json()
    assert body["count"] == 4
    assert [row["id"] for row in body["results"]] == sorted((n.pk for n in outbox.values()), reverse=True)
    row = next(r for r in body["results"] if r["id"] == outbox["failed"].pk)
    assert set(row) == FIELDS
    assert row["kind"] == "job_overdue" and row["status"] == "failed" and row["attempts"] == 6
    assert row["last_error"] == "SMTP: down" and row["job"] == outbox["failed"].job_id
    reminder = next(r for r in body["results"] if r["id"] == outbox["reminder"].pk)
    assert reminder["job"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", ["failed"]),
        ("status=sent", ["sent"]),
        ("kind=daily_reminder", ["reminder"]),
        ("kind=job_assigned&status=pending", ["pending"]),
        ("status=sent&kind=job_assigned", []),
    ],
)
def test_filters(api_client, admin_user, outbox, query, expected):
    body = api_client(admin_user).get(f"{URL}?{query}").json()
    assert sorted(r["id"] for r in body["results"]) == sorted(outbox[name].pk for name in expected)


def test_filter_by_job(api_client, admin_user, outbox, job):
    body = api_client(admin_user).get(f"{URL}?job={job.pk}").json()
    assert sorted(r["id"] for r in body["results"]) == sorted([outbox["pending"].pk, outbox["sent"].pk])


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=lost", "status"), ("kind=spam", "kind"), ("job=abc", "job"), ("job=0", "job"), ("page=0", "page")],
)
def test_bad_filters_are_400(api_client, admin_user, outbox, query, field):
    response = api_client(admin_user).get(f"{URL}?{query}")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("page_size", [1, 10, 50])
def test_constant_queries(api_client, admin_user, job, page_size):
    for _ in range(60):
        make(job)
    client = api_client(admin_user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"{URL}?page_size={page_size}")
    assert response.status_code == 200 and len(response.json()["results"]) == page_size
    # JWT user + count + page, whatever the page size.
    assert len(ctx.captured_queries) == 3


def test_retry_failed_returns_the_row_pending(api_client, admin_user, outbox, django_capture_on_commit_callbacks):
    failed = outbox["failed"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client(admin_user).post(f"{URL}{failed.pk}/retry/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert body["id"] == failed.pk and body["status"] == "pending" and body["attempts"] == 0
    assert body["last_error"] == ""
    assert len(deliveries(callbacks)) == 1  # enqueued after commit
    assert AuditEntry.objects.filter(action="notification.retried", object_id=failed.pk).count() == 1


@pytest.mark.parametrize("name", ["pending", "sent"])
def test_retry_not_failed_is_409(api_client, admin_user, outbox, name):
    row = outbox[name]
    response = api_client(admin_user).post(f"{URL}{row.pk}/retry/")
    assert response.status_code == 409
    assert response.json()["code"] == "not_failed"
    row.refresh_from_db()
    assert row.status == name


def test_retry_unknown_is_404(api_client, admin_user):
    assert api_client(admin_user).post(f"{URL}999999/retry/").status_code == 404
