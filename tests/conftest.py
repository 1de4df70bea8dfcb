"""Shared fixtures: personas (including outsiders), API clients with real JWTs, and service guards."""

from __future__ import annotations

import threading
import warnings

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User

from .factories import JobFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _audit_table_flushable():
    """On PostgreSQL the audit table rejects TRUNCATE (append-only trigger, audit/migrations/0002); let only the
    ``flush`` that empties the database after each ``transaction=True`` test through (see ``audit.testing``)."""
    from audit.testing import audit_flush_allowed

    with audit_flush_allowed():
        yield


#: The test running now, for the ``application_name`` of connections it opens (see ``_name_connections``).
_current_test = {"id": ""}


@pytest.fixture(autouse=True)
def _name_connections(request):
    _current_test["id"] = request.node.nodeid
    yield


@receiver(connection_created)
def _label_connection(sender, connection, **kwargs):
    """On PostgreSQL every connection a test opens carries that test and its thread as ``application_name``, so a
    session still open at the end (``django_db_setup`` below) names who opened it."""
    if connection.vendor != "postgresql":
        return
    label = f"{threading.current_thread().name} {_current_test['id'].rsplit('/', 1)[-1]}"[:63]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('application_name', %s, false)", [label])


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, and before it is dropped: any other session still connected to it (a server,
    worker or thread a test started and did not stop) is named in a warning, with its last statement, and ended, so
    the drop does not fail with "is being accessed by other users"."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, client_port, state, backend_start, left(query, 300) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        others = cursor.fetchall()
        for pid, *_ in others:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    if others:
        warnings.warn(
            f"{len(others)} session(s) still connected to the test database at the end, ended: "
            + "; ".join(
                f"pid {pid} app {app!r} port {port} {state} since {start:%H:%M:%S}: {query!r}"
                for pid, app, port, state, start, query in others
            ),
            stacklevel=1,
        )


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _celery_joins_allowed():
    """Celery's process-wide "a join would block" flag back to its default before each test: a test that builds a
    worker's components in this process (the live-stream and worker drills) can leave it set, and every later
    ``.delay(...).get()`` in eager mode then raises "Never call result.get() within a task!" (the failures moved
    with the test order)."""
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield


def require_service(name: str, available: bool, why: str = "") -> None:
    """Skip (locally) or fail (CI, JOBOPS_REQUIRE_SERVICES=1) when a service a test needs is missing."""
    if available:
        return
    message = f"required service missing: {name}{': ' + why if why else ''}"
    if settings.JOBOPS_REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def require_postgres():
    require_service("PostgreSQL", connection.vendor == "postgresql", "set DATABASE_URL to a PostgreSQL database")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin1", role=User.Role.ADMIN, is_staff=True)


@pytest.fixture
def technician(db):
    return UserFactory(username="tech1", role=User.Role.TECHNICIAN)


@pytest.fixture
def other_technician(db):
    return UserFactory(username="tech2", role=User.Role.TECHNICIAN)


@pytest.fixture
def sales_agent(db):
    return UserFactory(username="sales1", role=User.Role.SALES_AGENT)


@pytest.fixture
def other_sales_agent(db):
    return UserFactory(username="sales2", role=User.Role.SALES_AGENT)


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = AccessToken.for_user(user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def api_client():
    """``api_client(user)`` -> an APIClient sending a real JWT for ``user`` (None: anonymous)."""
    return client_for


@pytest.fixture
def job(sales_agent, technician):
    return JobFactory(created_by=sales_agent, assigned_to=technician)
