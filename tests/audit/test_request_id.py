"""X-Request-ID: kept when valid, replaced by a UUID otherwise, on every response, on entries and in log lines."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from audit.models import AuditEntry
from jobops.logging import JSONFormatter, RequestIDFilter
from jobops.middleware import request_id_from

pytestmark = pytest.mark.django_db


def _is_uuid(value):
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


@pytest.mark.parametrize("incoming", ["abc", "A-b_c.9", "x" * 64, "0", "f47ac10b-58cc-4372-a567-0e02b2c3d479"])
def test_a_valid_incoming_id_is_kept(api_client, admin_user, incoming):
    response = api_client(admin_user).get("/api/audit/", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming", ["", "x" * 65, "has space", "semi;colon", "new\nline", "trailing\n", "ünïcode", "<script>", "a/b"]
)
def test_an_invalid_incoming_id_is_replaced_by_a_uuid(api_client, admin_user, incoming):
    response = api_client(admin_user).get("/api/audit/", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] != incoming
    assert _is_uuid(response["X-Request-ID"])


def test_without_an_incoming_id_each_response_gets_a_fresh_uuid(api_client, admin_user):
    client = api_client(admin_user)
    first, second = client.get("/api/audit/")["X-Request-ID"], client.get("/api/audit/")["X-Request-ID"]
    assert _is_uuid(first) and _is_uuid(second) and first != second


def test_request_id_from():
    assert request_id_from("ok-1") == "ok-1"
    assert _is_uuid(request_id_from(None))
    assert _is_uuid(request_id_from("ok-1\n"))


@pytest.mark.parametrize(
    ("path", "persona", "status"),
    [
        ("/api/audit/", None, 401),
        ("/api/audit/", "technician", 403),
        ("/api/audit/999999/", "admin_user", 404),
        ("/api/no-such-endpoint/", "admin_user", 404),
        ("/no-such-page/", None, 404),
        ("/api/audit/?at_after=nope", "admin_user", 400),
        ("/healthz/", None, 200),
        ("/api/schema/", None, 200),
    ],
)
def test_every_response_carries_the_id(request, api_client, path, persona, status):
    user = request.getfixturevalue(persona) if persona else None
    response = api_client(user).get(path, HTTP_X_REQUEST_ID="trace-42")
    assert response.status_code == status
    assert response["X-Request-ID"] == "trace-42"


def test_entries_written_during_a_request_store_its_id_and_source(api_client, sales_agent, job):
    response = api_client(sales_agent).patch(
        f"/api/jobs/{job.pk}/", {"title": "Renamed", "priority": "urgent"}, HTTP_X_REQUEST_ID="req-edit-1"
    )
    assert response.status_code == 200, response.content
    entries = AuditEntry.objects.filter(job_id=job.pk)
    assert entries.count() >= 1
    assert set(entries.values_list("request_id", flat=True)) == {"req-edit-1"}
    assert set(entries.values_list("source", flat=True)) == {"api"}
    generated = api_client(sales_agent).patch(f"/api/jobs/{job.pk}/", {"title": "Again"})
    entry = AuditEntry.objects.filter(job_id=job.pk).latest("id")
    assert entry.request_id == generated["X-Request-ID"] and _is_uuid(entry.request_id)


def test_the_id_does_not_leak_out_of_the_request(api_client, admin_user, make_entry):
    api_client(admin_user).get("/api/audit/", HTTP_X_REQUEST_ID="only-inside")
    assert make_entry().request_id == ""


@pytest.fixture
def log_lines():
    """JSON log lines of the access logger and of django.request, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIDFilter())
    handler.setFormatter(JSONFormatter())
    loggers = [logging.getLogger("jobops.request"), logging.getLogger("django.request")]
    previous = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for lg, level in previous:
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_log_lines_carry_the_request_id(api_client, admin_user, log_lines):
    api_client(admin_user).get("/api/audit/", HTTP_X_REQUEST_ID="log-me")
    api_client(admin_user).get("/api/audit/424242/", HTTP_X_REQUEST_ID="log-404")
    lines = log_lines()
    access = [line for line in lines if line["logger"] == "jobops.request"]
    assert [(line["request_id"], line["status"], line["method"]) for line in access] == [
        ("log-me", 200, "GET"),
        ("log-404", 404, "GET"),
    ]
    assert access[0]["path"] == "/api/audit/" and access[0]["user_id"] == admin_user.pk
    assert isinstance(access[0]["duration_ms"], float)
    # Django logs "Not Found" after the middleware chain returned; the id still comes through on the record.
    warnings = [line for line in lines if line["logger"] == "django.request"]
    assert warnings and {line["request_id"] for line in warnings} == {"log-404"}


def test_log_lines_outside_a_request_say_so():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert RequestIDFilter().filter(record) is True
    assert json.loads(JSONFormatter().format(record))["request_id"] == "-"
