"""Container healthcheck for the JobOps roles: ``python docker/healthcheck.py [web|ws|worker|beat]``.

Exit 0 = healthy, 1 = unhealthy (the Docker HEALTHCHECK contract), with one line saying why.

- ``web``: ``GET /readyz/`` on this container's gunicorn answers 200 (database, cache and broker are up). The
  ``Host`` header is the first of ``DJANGO_ALLOWED_HOSTS``, so the probe is not refused as a disallowed host.
- ``worker``: the worker of this container answers a Celery ``ping`` through the broker.
- ``beat``: the schedule file was written recently (beat rewrites it at least every few minutes because the
  outbox sweep is due every minute); a hung or dead beat stops touching it.

Without an argument the role comes from the file the entrypoint wrote (``JOBOPS_ROLE_FILE``), so the image's
single HEALTHCHECK fits all three roles. Only the worker check imports Django/Celery; the others are stdlib only.
"""

from __future__ import annotations

import glob
import http.client
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _probe_host() -> str:
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and "*" not in host:
            return host
    return "localhost"


def check_web() -> str:
    port = int(os.environ.get("PORT", "8000"))
    timeout = float(os.environ.get("JOBOPS_HEALTHCHECK_TIMEOUT", "4"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/readyz/", headers={"Host": _probe_host(), "User-Agent": "jobops-healthcheck"})
        response = conn.getresponse()
        body = response.read(2000).decode("utf-8", "replace")
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"/readyz/ answered {response.status}: {body}")
    return "readyz ok"


def check_worker() -> str:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobops.settings.base")
    import django

    django.setup()
    from jobops.celery import app

    name = os.environ.get("CELERY_WORKER_NAME") or "celery@%h"
    name = name.replace("%h", socket.gethostname()).replace("%n", socket.gethostname().split(".")[0])
    timeout = float(os.environ.get("JOBOPS_HEALTHCHECK_TIMEOUT", "4"))
    replies = app.control.ping(destination=[name], timeout=timeout)
    if not any(name in reply for reply in replies):
        raise RuntimeError(f"worker {name} did not answer a ping within {timeout:g}s")
    return f"worker {name} answered"


def check_beat() -> str:
    schedule = os.environ.get("CELERY_BEAT_SCHEDULE_FILE") or str(ROOT / "var" / "beat" / "celerybeat-schedule")
    max_age = float(os.environ.get("JOBOPS_BEAT_MAX_AGE_SECONDS", "600"))
    # The shelve backend may add a suffix (.db, .dat/.dir) to the name beat was given.
    files = glob.glob(glob.escape(schedule) + "*")
    if not files:
        raise RuntimeError(f"no beat schedule file at {schedule}")
    age = time.time() - max(os.path.getmtime(f) for f in files)
    if age > max_age:
        raise RuntimeError(f"beat schedule {schedule} not written for {age:.0f}s (limit {max_age:.0f}s)")
    return f"beat schedule written {age:.0f}s ago"


# The ASGI process (`ws`) serves the same /readyz/, which there also checks the channel layer.
CHECKS = {"web": check_web, "ws": check_web, "worker": check_worker, "beat": check_beat}


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        role = argv[1]
    else:
        try:
            role = Path(os.environ.get("JOBOPS_ROLE_FILE", "/tmp/jobops-role")).read_text().strip()
        except OSError:
            role = "web"
    check = CHECKS.get(role)
    if check is None:
        print(f"unhealthy: unknown role {role!r} (expected one of {', '.join(CHECKS)})")
        return 1
    try:
        print(f"healthy: {check()}")
        return 0
    except Exception as exc:  # any failure of the probe is "unhealthy", with the reason for `docker inspect`
        print(f"unhealthy: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
