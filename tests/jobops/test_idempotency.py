"""``Idempotency-Key`` (API.md v2, "Offline-safe writes"): a retried write runs once and gets its first answer again,
byte for byte; the key is per user, bound to one request, purged after its TTL, and stored with its change."""

from __future__ import annotations

import datetime
import threading
from unittest import mock

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEntry
from jobops.models import IdempotencyKey
from jobs import services
from jobs.models import Job, JobTask
from notifications.models import Notification
from tasks.idempotency import purge_idempotency_keys
from tests.conftest import client_for
from tests.factories import JobFactory, JobTaskFactory

TOMORROW = str(datetime.date.today() + datetime.timedelta(days=3))


def _job_body(technician):
    return {"title": "Boiler", "client_name": "ACME", "scheduled_date": TOMORROW, "assigned_to": technician.pk}


def send(client, method, path, body=None, key="k-1", **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return getattr(client, method)(path, body, format="json", **headers)


def assert_replayed(first, second):
    assert second.status_code == first.status_code
    assert second.content == first.content  # byte for byte
    assert second["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert second.get("Content-Type") == first.get("Content-Type")


def _effects():
    return (
        Job.objects.count(),
        JobTask.objects.count(),
        AuditEntry.objects.count(),
        Notification.objects.count(),
        sorted(JobTask.objects.values_list("status", flat=True)),
        sorted(Job.objects.values_list("status", "version")),
    )


# --- replay, per kind of write ------------------------------------------------------------------------------------


@pytest.fixture
def world(db, sales_agent, technician, admin_user):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    first = JobTaskFactory(job=job, order=1)
    second = JobTaskFactory(job=job, order=2)
    return {
        "sales": client_for(sales_agent),
        "tech": client_for(technician),
        "admin": client_for(admin_user),
        "job": job,
        "first": first,
        "second": second,
        "technician": technician,
    }


WRITES = {
    "create job": lambda w: ("sales", "post", "/api/jobs/", _job_body(w["technician"]), 201),
    "add task": lambda w: ("sales", "post", f"/api/jobs/{w['job'].pk}/tasks/", {"title": "Pump"}, 201),
    "reorder": lambda w: (
        "sales",
        "post",
        f"/api/jobs/{w['job'].pk}/tasks/reorder/",
        {"order": [w["second"].pk, w["first"].pk]},
        200,
    ),
    "start task": lambda w: ("tech", "post", f"/api/tasks/{w['first'].pk}/start/", None, 200),
    "complete task": lambda w: ("tech", "post", f"/api/tasks/{w['first'].pk}/complete/", None, 200),
    "cancel job": lambda w: ("sales", "post", f"/api/jobs/{w['job'].pk}/cancel/", None, 200),
    "patch job": lambda w: ("sales", "patch", f"/api/jobs/{w['job'].pk}/", {"title": "New"}, 200),
    "put job": lambda w: ("sales", "put", f"/api/jobs/{w['job'].pk}/", _job_body(w["technician"]), 200),
    "patch task": lambda w: ("sales", "patch", f"/api/tasks/{w['first'].pk}/", {"title": "New"}, 200),
    "delete task": lambda w: ("sales", "delete", f"/api/tasks/{w['second'].pk}/", None, 204),
    "delete job": lambda w: ("admin", "delete", f"/api/jobs/{w['job'].pk}/", None, 204),
    "bad input (400)": lambda w: ("sales", "post", "/api/jobs/", {"title": ""}, 400),
    "conflict (409)": lambda w: ("tech", "post", f"/api/tasks/{w['second'].pk}/start/", None, 409),
    "forbidden (403)": lambda w: ("tech", "post", f"/api/jobs/{w['job'].pk}/cancel/", None, 403),
}


@pytest.mark.parametrize("kind", list(WRITES))
def test_a_retried_write_gets_the_first_answer_byte_for_byte_and_runs_nothing(world, kind):
    who, method, path, body, expected = WRITES[kind](world)
    client = world[who]
    first = send(client, method, path, body)
    assert first.status_code == expected, first.content
    effects = _effects()
    second = send(client, method, path, body)
    assert_replayed(first, second)
    assert _effects() == effects  # nothing ran again: no row, no audit entry, no email, no version moved


def test_task_reopen_and_job_complete_and_reopen_replay(world, admin_user):
    tech, admin = world["tech"], world["admin"]
    for task in (world["first"], world["second"]):
        services.task_complete(actor=admin_user, task_id=task.pk)
    for client, path in (
        (tech, f"/api/tasks/{world['second'].pk}/reopen/"),
        (tech, f"/api/tasks/{world['second'].pk}/complete/"),
        (tech, f"/api/jobs/{world['job'].pk}/complete/"),
        (admin, f"/api/jobs/{world['job'].pk}/reopen/"),
    ):
        first = send(client, "post", path, key=path)
        assert first.status_code == 200, first.content
        effects = _effects()
        assert_replayed(first, send(client, "post", path, key=path))
        assert _effects() == effects


def test_a_replayed_409_stays_the_stored_answer_after_the_state_changed(world, admin_user):
    path = f"/api/tasks/{world['second'].pk}/start/"
    first = send(world["tech"], "post", path)
    assert first.status_code == 409
    services.task_complete(actor=admin_user, task_id=world["first"].pk)  # now the start would succeed
    assert_replayed(first, send(world["tech"], "post", path))
    assert JobTask.objects.get(pk=world["second"].pk).status == "pending"


def test_without_the_header_writes_behave_as_before(world):
    path = f"/api/jobs/{world['job'].pk}/tasks/"
    assert send(world["sales"], "post", path, {"title": "A"}, key=None).status_code == 201
    assert send(world["sales"], "post", path, {"title": "A"}, key=None).status_code == 201
    assert JobTask.objects.filter(job=world["job"], title="A").count() == 2
    assert not IdempotencyKey.objects.exists()


# --- reuse, scope, validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda w: ("post", f"/api/jobs/{w['job'].pk}/tasks/", {"title": "Other"}),  # another body
        lambda w: ("post", "/api/jobs/", {"title": "Pump"}),  # another path
        lambda w: ("patch", f"/api/jobs/{w['job'].pk}/", {"title": "Pump"}),  # another method (and path)
    ],
)
def test_the_same_key_for_another_request_is_a_422(world, change):
    first = send(world["sales"], "post", f"/api/jobs/{world['job'].pk}/tasks/", {"title": "Pump"})
    assert first.status_code == 201
    method, path, body = change(world)
    effects = _effects()
    response = send(world["sales"], method, path, body)
    assert response.status_code == 422
    assert response.json() == {"detail": mock.ANY, "code": "idempotency_key_reused"}
    assert _effects() == effects


@pytest.mark.parametrize("method, path", [("put", "/api/jobs/"), ("post", "/api/no-such-thing/")])
def test_a_405_or_404_is_the_views_and_stores_nothing(world, method, path):
    send(world["sales"], "post", "/api/jobs/", _job_body(world["technician"]), key="k")
    response = send(world["sales"], method, path, {}, key="k")
    assert response.status_code in (404, 405)
    assert IdempotencyKey.objects.count() == 1


def test_keys_are_per_user(world, other_sales_agent):
    world["job"].created_by = other_sales_agent
    world["job"].save()
    body = _job_body(world["technician"])
    assert send(world["sales"], "post", "/api/jobs/", body).status_code == 201
    response = send(client_for(other_sales_agent), "post", "/api/jobs/", body)
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert Job.objects.filter(title="Boiler").count() == 2


@pytest.mark.parametrize("key", ["", "a b", "é", "x" * 256, "tab\there"])
def test_a_malformed_key_is_a_400(world, key):
    response = world["sales"].post(
        "/api/jobs/", _job_body(world["technician"]), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Job.objects.filter(title="Boiler").exists()


def test_the_token_endpoints_ignore_the_key(world, sales_agent):
    from tests.factories import DEFAULT_PASSWORD

    body = {"username": sales_agent.username, "password": DEFAULT_PASSWORD}
    first = send(world["sales"], "post", "/api/auth/token/", body)
    second = send(world["sales"], "post", "/api/auth/token/", body)
    assert first.status_code == second.status_code == 200
    assert not second.has_header("Idempotent-Replayed")
    assert not IdempotencyKey.objects.exists()


def _user_row_reads(client, user, *args, **kwargs):
    """The response, and the reads of ``user``'s whole row (what authentication does) while it was answered."""
    with CaptureQueriesContext(connection) as queries:
        response = send(client, *args, **kwargs)
    table = User._meta.db_table
    row = f'SELECT "{table}"."id", "{table}"."password"'
    where = f'WHERE "{table}"."id" = {user.pk}'
    return response, [q["sql"] for q in queries.captured_queries if q["sql"].startswith(row) and where in q["sql"]]


def test_a_keyed_write_authenticates_once(world, sales_agent):
    """The middleware authenticates the caller to scope the key; the view reuses that (one token check, one read of
    the user row), as an unkeyed write does."""
    path = f"/api/jobs/{world['job'].pk}/"
    sales = world["sales"]
    keyed, keyed_reads = _user_row_reads(sales, sales_agent, "patch", path, {"title": "Keyed"}, key="k-once")
    plain, plain_reads = _user_row_reads(sales, sales_agent, "patch", path, {"title": "Plain"}, key=None)
    assert keyed.status_code == plain.status_code == 200, (keyed.content, plain.content)
    assert len(plain_reads) == 1, plain_reads
    assert keyed_reads == plain_reads


def test_an_unauthenticated_write_is_a_401_and_stores_nothing(db):
    response = send(client_for(None), "post", "/api/jobs/", {"title": "x"})
    assert response.status_code == 401
    assert not IdempotencyKey.objects.exists()


# --- 5xx, atomicity, TTL ------------------------------------------------------------------------------------------


def test_a_5xx_is_not_stored_and_the_retry_runs(world):
    path = f"/api/jobs/{world['job'].pk}/cancel/"
    world["sales"].raise_request_exception = False
    with mock.patch.object(services, "job_cancel", side_effect=RuntimeError("boom")):
        assert send(world["sales"], "post", path).status_code == 500
    assert not IdempotencyKey.objects.exists()
    response = send(world["sales"], "post", path)
    assert response.status_code == 200
    assert not response.has_header("Idempotent-Replayed")
    assert Job.objects.get(pk=world["job"].pk).status == "cancelled"


def test_the_change_and_its_stored_response_commit_together(world):
    """A crash between running the write and storing its response leaves neither."""
    path = f"/api/jobs/{world['job'].pk}/cancel/"
    world["sales"].raise_request_exception = False
    audit_before = AuditEntry.objects.count()
    with mock.patch("jobops.idempotency._store", side_effect=RuntimeError("crash before the store")):
        assert send(world["sales"], "post", path).status_code == 500
    assert Job.objects.get(pk=world["job"].pk).status == "pending"
    assert AuditEntry.objects.count() == audit_before
    assert not IdempotencyKey.objects.exists()


def test_keys_expire_after_the_ttl_and_beat_purges_them(world, settings, sales_agent):
    settings.IDEMPOTENCY_TTL_HOURS = 2
    path = f"/api/jobs/{world['job'].pk}/tasks/"
    start = timezone.now()

    def at(hours):
        return time_machine.travel(start + datetime.timedelta(hours=hours), tick=False)

    with at(0):
        send(client_for(sales_agent), "post", path, {"title": "A"}, key="old")
    with at(1):
        send(client_for(sales_agent), "post", path, {"title": "B"}, key="young")
    with at(2.5):
        # "old" is past its TTL: the same request runs again instead of replaying
        again = send(client_for(sales_agent), "post", path, {"title": "A"}, key="old")
        assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
        assert JobTask.objects.filter(job=world["job"], title="A").count() == 2
    with at(3.5):
        assert purge_idempotency_keys() == 1  # "young" (2.5 h old); the new "old" is 1 h old
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["old"]


def test_the_purge_is_on_the_beat_schedule(settings):
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "jobops.purge_idempotency_keys" in schedule
    assert "tasks.idempotency" in settings.CELERY_IMPORTS


# --- concurrency --------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_repeat_while_the_first_runs_is_a_409_in_use(sales_agent, technician):
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    entered, release = threading.Event(), threading.Event()
    real_cancel = services.job_cancel
    results = {}

    def slow_cancel(**kwargs):
        entered.set()
        assert release.wait(10)
        return real_cancel(**kwargs)

    def first():
        try:
            results["first"] = send(client_for(sales_agent), "post", f"/api/jobs/{job.pk}/cancel/")
        finally:
            connection.close()

    with mock.patch.object(services, "job_cancel", side_effect=slow_cancel):
        thread = threading.Thread(target=first)
        thread.start()
        try:
            assert entered.wait(10)
            second = send(client_for(sales_agent), "post", f"/api/jobs/{job.pk}/cancel/")
        finally:
            release.set()
            thread.join(20)
    assert second.status_code == 409
    assert second.json() == {"detail": mock.ANY, "code": "idempotency_key_in_use"}
    assert results["first"].status_code == 200
    third = send(client_for(sales_agent), "post", f"/api/jobs/{job.pk}/cancel/")
    assert_replayed(results["first"], third)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_identical_requests_at_once_run_exactly_once(require_postgres, sales_agent, technician):
    threads_count = 8
    barrier = threading.Barrier(threads_count, timeout=20)
    responses: list = [None] * threads_count
    body = _job_body(technician)

    def worker(index):
        try:
            client = client_for(sales_agent)
            barrier.wait()
            responses[index] = send(client, "post", "/api/jobs/", body, key="same-moment")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(r.status_code for r in responses)
    ran = [r for r in responses if r.status_code == 201 and not r.has_header("Idempotent-Replayed")]
    assert len(ran) == 1, statuses
    assert set(statuses) <= {201, 409}, statuses
    for response in responses:
        if response.status_code == 201:
            assert response.content == ran[0].content
        else:
            assert response.json()["code"] == "idempotency_key_in_use"
    job = Job.objects.get()
    assert AuditEntry.objects.filter(job_id=job.pk, action="job.created").count() == 1
    assert Notification.objects.filter(job=job, kind="job_assigned").count() == 1
    assert IdempotencyKey.objects.count() == 1
