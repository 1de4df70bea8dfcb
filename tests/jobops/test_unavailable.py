"""An unreachable database is a 503 with ``Retry-After`` in the one error shape, never a 500 (``jobops.unavailable``).

Unit level, on any database: every query raises what Django raises when PostgreSQL is gone (``OperationalError``
from psycopg's). The real thing, a live server whose PostgreSQL is cut by a proxy, is in
``tests/jobops/test_database_outage.py``."""

from __future__ import annotations

import logging
import socket
import sqlite3
from contextlib import contextmanager

import django.db
import psycopg
import pytest
from django.db.backends.utils import CursorWrapper
from django.db.utils import ConnectionHandler
from django.test import Client
from rest_framework.test import APIClient

from jobops.unavailable import unavailable_reason
from tests.deploy.support import free_port
from tests.factories import DEFAULT_PASSWORD


def _django_error(cause: BaseException, cls: type[Exception] = django.db.OperationalError) -> Exception:
    try:
        raise cls(str(cause)) from cause
    except Exception as exc:  # noqa: BLE001 - built only to carry the chain
        return exc


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), "connection_failure"),
        (
            psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
            "connection_failure",
        ),
        (psycopg.errors.ConnectionTimeout("connection timeout expired"), "connection_failure"),
        (psycopg.OperationalError("the connection is closed"), "connection_failure"),
        (psycopg.OperationalError("connection socket closed"), "connection_failure"),
        (psycopg.OperationalError("sending query failed: the connection is lost"), "connection_failure"),
        (
            psycopg.OperationalError("connection failed: FATAL:  the database system is shutting down"),
            "connection_failure",
        ),
        (psycopg.OperationalError("connection failed: FATAL:  sorry, too many clients already"), "connection_failure"),
        (psycopg.errors.ConnectionFailure("08006"), "connection_exception_08006"),
        (psycopg.errors.AdminShutdown("terminating connection"), "admin_shutdown"),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), "cannot_connect_now"),
        (psycopg.errors.TooManyConnections("too many clients"), "too_many_connections"),
        (psycopg.errors.SerializationFailure("could not serialize"), "serialization_failure"),
        (psycopg.errors.DeadlockDetected("deadlock detected"), "deadlock_detected"),
        # Bugs and configuration: still a 500.
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), None),
        (psycopg.errors.InvalidPassword("password authentication failed"), None),
        (psycopg.errors.UndefinedTable("relation does not exist"), None),
        (psycopg.InterfaceError("the cursor is closed"), None),
        # psycopg 3 gives no SQLSTATE to any failure at connect time, nor to some bugs: only a transport failure
        # is an outage (bad credentials, a missing database, a bad DSN and too many parameters are not).
        (psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "x"'), None),
        (psycopg.OperationalError('connection failed: FATAL:  database "nope" does not exist'), None),
        (psycopg.OperationalError('connection failed: FATAL:  no pg_hba.conf entry for host "10.0.0.1"'), None),
        (psycopg.OperationalError("failed to resolve host 'db.invalid': [Errno -2] Name or service not known"), None),
        # ... but a resolver that cannot answer now (EAI_AGAIN: Compose's `db` while its container restarts) is.
        (
            psycopg.OperationalError("failed to resolve host 'db': [Errno -3] Temporary failure in name resolution"),
            "connection_failure",
        ),
        (psycopg.OperationalError('connection is bad: invalid integer value "abc" for connection option "port"'), None),
        (
            psycopg.OperationalError(
                "sending query and params failed: number of parameters must be between 0 and 65535"
            ),
            None,
        ),
        (psycopg.OperationalError(""), None),
        (sqlite3.OperationalError("database is locked"), None),
    ],
)
def test_which_database_errors_mean_unavailable(cause, expected):
    assert unavailable_reason(_django_error(cause)) == expected


def _connect_error(**database) -> BaseException:
    """The error Django raises when it connects with these settings (a real connection attempt)."""
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.postgresql", "USER": "postgres", **database}}
    )
    try:
        handler["default"].ensure_connection()
    except django.db.OperationalError as exc:
        return exc
    finally:
        handler.close_all()
    raise AssertionError("the connection succeeded")


def _local_postgresql() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_refused_connection_is_unavailable(django_db_blocker):
    with django_db_blocker.unblock():
        exc = _connect_error(NAME="jobops", HOST="127.0.0.1", PORT=str(free_port()))
    assert isinstance(exc.__cause__, psycopg.OperationalError) and exc.__cause__.sqlstate is None
    assert unavailable_reason(exc) == "connection_failure"


@pytest.mark.skipif(not _local_postgresql(), reason="needs a PostgreSQL on 127.0.0.1:5432")
def test_a_missing_database_is_not_unavailable(django_db_blocker):
    # A real server rejecting the login (trust auth: a database that does not exist) says so in a FATAL message,
    # which psycopg 3 gives no SQLSTATE: configuration to fix, a 500, not an outage to wait out.
    with django_db_blocker.unblock():
        exc = _connect_error(NAME="jobops_no_such_database_19", HOST="127.0.0.1", PORT="5432")
    assert isinstance(exc.__cause__, psycopg.OperationalError) and exc.__cause__.sqlstate is None
    assert "does not exist" in str(exc)
    assert unavailable_reason(exc) is None


def test_non_database_errors_are_not_unavailable():
    assert unavailable_reason(None) is None
    assert unavailable_reason(ValueError("x")) is None
    assert unavailable_reason(_django_error(ValueError("x"), RuntimeError)) is None


@contextmanager
def database_gone(cause: BaseException | None = None):
    """Every query from here on fails as it does when PostgreSQL refuses connections."""
    cause = cause or psycopg.OperationalError("connection failed: Connection refused")
    original = CursorWrapper._execute_with_wrappers

    def fail(*args, **kwargs):
        raise _django_error(cause)

    CursorWrapper._execute_with_wrappers = fail  # type: ignore[method-assign]
    try:
        yield
    finally:
        CursorWrapper._execute_with_wrappers = original  # type: ignore[method-assign]


def _client(user=None) -> APIClient:
    from tests.conftest import client_for

    client = client_for(user)
    client.raise_request_exception = False  # what a real server does: the handlers answer
    return client


def _assert_503_json(response):
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": response.json()["detail"], "code": "service_unavailable"}


@pytest.mark.django_db
def test_api_read_write_keyed_write_and_login_answer_503(admin_user, technician, caplog):
    body = {"title": "Boiler", "client_name": "ACME", "scheduled_date": "2031-01-01", "assigned_to": technician.pk}
    client = _client(admin_user)
    anonymous = _client()
    with caplog.at_level(logging.INFO), database_gone():
        _assert_503_json(client.get("/api/jobs/"))  # DRF: the JWT's user row
        _assert_503_json(client.post("/api/jobs/", body, format="json"))
        # Idempotency-Key: its middleware authenticates and locks outside DRF (handler500 answers)
        _assert_503_json(client.post("/api/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"))
        _assert_503_json(anonymous.post("/api/auth/token/", {"username": "admin1", "password": DEFAULT_PASSWORD}))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    warnings = [r for r in caplog.records if r.name == "jobops.db" and r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all("connection_failure" in r.getMessage() for r in warnings)
    # Back: everything answers as usual.
    assert client.get("/api/jobs/").status_code == 200
    assert client.post("/api/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    assert anonymous.post("/api/auth/token/", {"username": "admin1", "password": DEFAULT_PASSWORD}).status_code == 200


@pytest.mark.django_db
def test_admin_and_pages_outside_the_api_answer_a_503_page(admin_user, caplog):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    with caplog.at_level(logging.INFO), database_gone(psycopg.errors.AdminShutdown("terminating connection")):
        response = client.get("/admin/")  # the session, then the user: middleware, outside DRF
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_real_database_bug_is_still_a_500_with_its_traceback(admin_user, caplog, settings):
    settings.DB_UNAVAILABLE_RETRY_AFTER = 7
    with caplog.at_level(logging.INFO), database_gone(psycopg.errors.UndefinedTable('relation "x" does not exist')):
        response = _client(admin_user).get("/api/jobs/")
    assert response.status_code == 500
    assert "Retry-After" not in response
    assert response.json() == {"detail": "Internal server error.", "code": "server_error"}
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


@pytest.mark.django_db
def test_retry_after_is_the_setting(admin_user, settings):
    settings.DB_UNAVAILABLE_RETRY_AFTER = 9
    with database_gone():
        response = _client(admin_user).get("/api/jobs/")
    assert response.status_code == 503 and response["Retry-After"] == "9"


@pytest.mark.django_db
def test_a_deadlock_is_a_503_logged_as_an_error_with_its_traceback(admin_user, caplog):
    # Rolled back whole, so a retry succeeds (503); but a deadlock is a lock-ordering bug: it must stay visible.
    with caplog.at_level(logging.INFO), database_gone(psycopg.errors.DeadlockDetected("deadlock detected")):
        response = _client(admin_user).get("/api/jobs/")
    _assert_503_json(response)
    records = [r for r in caplog.records if r.name == "jobops.db"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR and records[0].exc_info
    assert "deadlock_detected" in records[0].getMessage()


@pytest.mark.django_db
def test_a_serialization_failure_is_a_503_logged_as_a_warning(admin_user, caplog):
    # On a hot standby this is a conflict with WAL replay: an expected, transient event.
    cause = psycopg.errors.SerializationFailure("canceling statement due to conflict with recovery")
    with caplog.at_level(logging.INFO), database_gone(cause):
        response = _client(admin_user).get("/api/jobs/")
    _assert_503_json(response)
    records = [r for r in caplog.records if r.name == "jobops.db"]
    assert [r.levelno for r in records] == [logging.WARNING] and not records[0].exc_info
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.django_db
def test_a_json_client_outside_the_api_gets_a_json_503(admin_user, caplog):
    # POST /live/token/ is a JSON endpoint outside /api/ (the live page's fetch asks for JSON): its session and user
    # are read by middleware, so handler500 answers, in JSON because the client prefers it.
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    with caplog.at_level(logging.INFO), database_gone():
        response = client.post("/live/token/", HTTP_ACCEPT="application/json")
        page = client.post("/live/token/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    _assert_503_json(response)
    assert page.status_code == 503 and page["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_json_client_outside_the_api_gets_a_json_500(admin_user, caplog):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    with caplog.at_level(logging.CRITICAL), database_gone(psycopg.errors.UndefinedTable('relation "x" does not exist')):
        response = client.post("/live/token/", HTTP_ACCEPT="application/json")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error.", "code": "server_error"}
