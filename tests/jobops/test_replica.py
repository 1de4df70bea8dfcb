"""jobops.replica without a standby: the default is unchanged, the settings build the alias, the breaker and the
fallback behave, and exactly the report actions opt in. (A real primary + standby: test_replica_pair.py.)"""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError

from jobops import replica
from jobops.breaker import CircuitBreaker
from jobs.models import Job
from tests.deploy.support import PYTHON, ROOT, hermetic_env
from tests.factories import EquipmentFactory


def test_without_a_replica_url_everything_reads_default():
    assert "replica" not in settings.DATABASES
    assert not replica.configured()
    assert replica.report_alias() == DEFAULT_DB_ALIAS
    assert settings.DATABASE_ROUTERS == []
    seen = []
    assert replica.run_report(lambda: seen.append(replica.current_alias()) or "ok") == "ok"
    assert seen == [DEFAULT_DB_ALIAS]


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({'databases': settings.DATABASES, 'routers': settings.DATABASE_ROUTERS}, default=str))"
    )
    return subprocess.run(
        [str(PYTHON), "-c", script],
        cwd=ROOT,
        env=hermetic_env({"DJANGO_SETTINGS_MODULE": "jobops.settings.test", **env}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_replica_url_adds_a_mirrored_alias_with_a_short_connect_timeout():
    result = _settings_with(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/jobops",
            "DATABASE_REPLICA_URL": "postgres://reader@standby.internal:5433/jobops",
        }
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    replica_db = config["databases"]["replica"]
    assert (replica_db["HOST"], replica_db["PORT"], replica_db["USER"]) == ("standby.internal", 5433, "reader")
    assert replica_db["OPTIONS"]["connect_timeout"] == 2
    assert replica_db["TEST"]["MIRROR"] == "default"  # pytest-django creates no second test database
    assert replica_db["CONN_HEALTH_CHECKS"] is True
    assert config["databases"]["default"]["PORT"] == 5432
    assert config["routers"] == ["jobops.replica.ReplicaRouter"]


def test_replica_url_needs_a_postgresql_primary():
    result = _settings_with({"DATABASE_REPLICA_URL": "postgres://postgres@127.0.0.1:5433/jobops"})
    assert result.returncode != 0
    assert "DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL" in result.stderr


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lag = 0.0  # the standby's replay lag the fake measure reports

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_replica(monkeypatch):
    """A configured replica (no connection is made: the reads below only record where they would go)."""
    clock = Clock()
    monkeypatch.setattr(replica, "configured", lambda: True)
    monkeypatch.setattr(replica, "breaker", CircuitBreaker(clock=clock))
    clock.lag = 0.0
    monkeypatch.setattr(replica, "lag_guard", replica.LagGuard(clock=clock, measure=lambda: clock.lag))
    monkeypatch.setattr(replica, "_discard_replica_connection", lambda: None)
    monkeypatch.setattr(settings, "DATABASE_REPLICA_MAX_LAG_SECONDS", 30.0, raising=False)
    monkeypatch.setattr(settings, "DATABASE_REPLICA_RETRY_SECONDS", 5.0, raising=False)
    return clock


def test_reports_read_the_replica_and_the_router_follows(fake_replica):
    router = replica.ReplicaRouter()

    def read():
        return replica.current_alias(), router.db_for_read(Job), router.db_for_write(Job)

    assert replica.run_report(read) == ("replica", "replica", "default")
    # Outside a report body: the primary, for reads and writes.
    assert read() == ("default", "default", "default")
    assert router.allow_migrate("replica", "jobs") is False
    assert router.allow_migrate("default", "jobs") is True


def _django_error(cause: psycopg.Error) -> OperationalError:
    """What Django raises for psycopg's ``cause`` (its error chained, as the backend's wrapper does)."""
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


REFUSED = psycopg.OperationalError(
    'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
)


def test_a_replica_failure_falls_back_and_trips_the_breaker_until_the_retry(fake_replica):
    calls: list[str] = []

    def read():
        calls.append(replica.current_alias())
        if replica.current_alias() == "replica":
            raise _django_error(REFUSED)
        return "answer"

    assert replica.run_report(read) == "answer"
    assert calls == ["replica", "default"]
    # Within the breaker window the replica is not tried at all (no connect timeout to pay).
    calls.clear()
    fake_replica.now += 4.9
    assert replica.run_report(read) == "answer"
    assert calls == ["default"]
    # After it, the replica is tried again; still down: one more fallback, a new window.
    calls.clear()
    fake_replica.now += 0.2
    assert replica.run_report(read) == "answer"
    assert calls == ["replica", "default"]
    # Back up: reports return to it once the window is over.
    calls.clear()
    fake_replica.now += 5.1
    assert replica.run_report(lambda: calls.append(replica.current_alias()) or "ok") == "ok"
    assert calls == ["replica"]


def test_a_conflict_with_recovery_falls_back(fake_replica):
    # The standby cancelled the query to replay WAL: the primary answers it, and the breaker trips.
    conflict = psycopg.errors.SerializationFailure(
        "canceling statement due to conflict with recovery\nDETAIL:  User query might have needed to see row "
        "versions that must be removed."
    )
    calls: list[str] = []

    def read():
        calls.append(replica.current_alias())
        if replica.current_alias() == "replica":
            raise _django_error(conflict)
        return "answer"

    assert replica.run_report(read) == "answer"
    assert calls == ["replica", "default"]
    assert not replica.breaker.available()


@pytest.mark.parametrize(
    "cause",
    [
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.SerializationFailure("could not serialize access due to concurrent update"),
        psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "reports"'),
        psycopg.errors.UndefinedTable('relation "x" does not exist'),
    ],
)
def test_a_database_error_that_is_not_the_standby_being_down_propagates(fake_replica, cause):
    # A heavy report that hits its statement timeout would time out on the primary too: it must not trip the
    # breaker (moving every report to the primary) nor run a second time there.
    calls: list[str] = []

    def read():
        calls.append(replica.current_alias())
        raise _django_error(cause)

    with pytest.raises(OperationalError):
        replica.run_report(read)
    assert calls == ["replica"]
    assert replica.breaker.available()


def test_other_errors_are_not_retried_on_the_primary(fake_replica):
    calls: list[str] = []

    def read():
        calls.append(replica.current_alias())
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        replica.run_report(read)
    assert calls == ["replica"]
    assert replica.breaker.available()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "report"),
    [
        ("/api/analytics/", True),
        ("/api/equipment/{equipment}/usage/", True),
        ("/api/audit/", True),
        ("/api/jobs/", False),
        ("/api/equipment/", False),
    ],
)
def test_exactly_the_report_actions_opt_in(monkeypatch, api_client, admin_user, path, report):
    runs = []

    def recording_run_report(read):
        runs.append(path)
        return read()

    monkeypatch.setattr(replica, "run_report", recording_run_report)
    item = EquipmentFactory()
    response = api_client(admin_user).get(path.format(equipment=item.pk))
    assert response.status_code == 200, response.content
    assert runs == ([path] if report else [])


@pytest.mark.django_db
def test_the_audit_detail_opts_in(monkeypatch, api_client, admin_user):
    from audit.models import AuditEntry

    # An audited write through the API (factories write no audit entries).
    api_client(admin_user).post(
        "/api/equipment/", {"name": "Ladder", "type": "tool", "serial_number": "L-1"}, format="json"
    )
    entry = AuditEntry.objects.order_by("-id").first()
    assert entry is not None
    runs = []
    monkeypatch.setattr(replica, "run_report", lambda read: runs.append(1) or read())
    assert api_client(admin_user).get(f"/api/audit/{entry.pk}/").status_code == 200
    assert runs == [1]


def test_the_breaker_lets_one_caller_probe_after_the_pause():
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    assert breaker.allow() and breaker.allow()  # closed: everyone
    breaker.trip(5.0)
    assert not breaker.allow() and not breaker.available()
    clock.now += 5.0
    assert breaker.available()
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # the others keep to the fallback while it runs
    breaker.trip(5.0)  # the probe failed: a new pause
    clock.now += 5.0
    assert breaker.allow()
    breaker.succeeded()  # the probe succeeded: closed again
    assert breaker.allow() and breaker.allow()


def test_a_standby_too_far_behind_sends_the_reports_to_the_primary_until_it_catches_up(fake_replica, caplog):
    measures: list[float] = []

    def measure() -> float:
        measures.append(fake_replica.lag)
        return fake_replica.lag

    replica.lag_guard = replica.LagGuard(clock=fake_replica, measure=measure)
    where = lambda: replica.current_alias()  # noqa: E731

    fake_replica.lag = 31.0  # replication stalled
    with caplog.at_level("WARNING", logger="jobops.replica"):
        assert replica.run_report(where) == "default"
    assert "31.0 s behind" in caplog.text
    assert replica.breaker.available()  # the standby answered: nothing to trip
    # Measured again only after the interval: meanwhile the last answer holds, one query per process per interval.
    fake_replica.lag = 0.0
    fake_replica.now += 4.9
    assert replica.run_report(where) == "default"
    assert measures == [31.0]
    fake_replica.now += 0.2
    assert replica.run_report(where) == "replica"
    assert measures == [31.0, 0.0]
    # At the limit is not beyond it; a limit of 0 turns the check off.
    fake_replica.lag = 30.0
    fake_replica.now += 5.1
    assert replica.run_report(where) == "replica"
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 0
    fake_replica.lag = 1e6
    fake_replica.now += 5.1
    assert replica.run_report(where) == "replica"
    assert len(measures) == 3
