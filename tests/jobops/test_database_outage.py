"""PostgreSQL cut under a live gunicorn server (issue 19's drill, one service at a time): every request answers 503
JSON with ``Retry-After``, nothing half-written stays, and the server serves again as soon as PostgreSQL is back.

The server reaches PostgreSQL through a :class:`~tests.faultproxy.FaultProxy`; cutting it closes the server's
persistent connection (``CONN_MAX_AGE``) and refuses new ones, as when the database host goes away."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.db import connection

from accounts.models import User
from audit.models import AuditEntry
from jobops.hashers import Argon2idPasswordHasher
from jobops.models import IdempotencyKey
from jobs.models import Job
from tests.deploy.support import ROOT, free_port, hermetic_env
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.faultproxy import FaultProxy

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proxied_server(require_postgres, tmp_path: Path):
    db = connection.settings_dict
    proxy = FaultProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    port = free_port()
    env = hermetic_env(
        {
            "DJANGO_SETTINGS_MODULE": "jobops.settings.base",
            "DJANGO_SECRET_KEY": "outage-test-secret-key-not-for-production-0123456789",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"postgres://{auth}@127.0.0.1:{proxy.port}/{db['NAME']}",
            "JOBOPS_VAR_DIR": str(tmp_path),
            "JOBOPS_PLAIN_STATIC": "1",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_ACCESS_LOG": "0",
            "LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = tmp_path / "web.log"
    with log.open("w") as handle:
        popen = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "jobops.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert popen.poll() is None, log.read_text()
            try:
                requests.get(f"{base}/healthz/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        yield base, proxy, log
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        proxy.close()


def _counts() -> tuple[int, int, int]:
    return Job.objects.count(), AuditEntry.objects.count(), IdempotencyKey.objects.count()


def _assert_503(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"detail": response.json()["detail"], "code": "service_unavailable"}


def test_postgres_cut_answers_503_then_recovers_with_nothing_half_written(proxied_server):
    base, proxy, log = proxied_server
    admin = UserFactory(username="outage-admin", role=User.Role.ADMIN, is_staff=True)
    # The server runs the production hashers (the test settings' MD5 is not among them).
    admin.password = Argon2idPasswordHasher().encode(DEFAULT_PASSWORD, Argon2idPasswordHasher().salt())
    admin.save(update_fields=["password"])
    tech = UserFactory(username="outage-tech", role=User.Role.TECHNICIAN)
    login = {"username": "outage-admin", "password": DEFAULT_PASSWORD}
    session = requests.Session()
    token = session.post(f"{base}/api/auth/token/", json=login, timeout=10).json()["access"]
    session.headers["Authorization"] = f"Bearer {token}"
    body = {"title": "Boiler", "client_name": "ACME", "scheduled_date": "2031-01-01", "assigned_to": tech.pk}
    assert session.get(f"{base}/api/jobs/", timeout=10).status_code == 200  # a persistent connection is open
    before = _counts()

    proxy.cut()
    started = time.monotonic()
    _assert_503(session.get(f"{base}/api/jobs/", timeout=10))
    _assert_503(session.post(f"{base}/api/jobs/", json=body, timeout=10))
    key = str(uuid.uuid4())
    _assert_503(session.post(f"{base}/api/jobs/", json=body, headers={"Idempotency-Key": key}, timeout=10))
    _assert_503(requests.post(f"{base}/api/auth/token/", json=login, timeout=10))
    assert time.monotonic() - started < 5  # refused connections fail at once, no connect timeout paid
    assert _counts() == before

    proxy.restore()
    assert session.get(f"{base}/api/jobs/", timeout=10).status_code == 200
    assert session.post(f"{base}/api/jobs/", json=body, timeout=10).status_code == 201
    keyed = session.post(f"{base}/api/jobs/", json=body, headers={"Idempotency-Key": key}, timeout=10)
    assert keyed.status_code == 201 and "Idempotent-Replayed" not in keyed.headers  # the 503 was not stored
    assert requests.post(f"{base}/api/auth/token/", json=login, timeout=10).status_code == 200
    jobs, audits, keys = _counts()
    assert (jobs, keys) == (before[0] + 2, before[2] + 1)
    assert audits > before[1]

    output = log.read_text()
    assert output.count("database unavailable") == 4, output
    assert "Traceback" not in output and "Internal Server Error" not in output, output
    assert " ERROR " not in output, output
