"""gunicorn configuration for the JobOps web process (``gunicorn -c gunicorn.conf.py jobops.wsgi:application``).

Everything is tunable from the environment so that one image serves every deployment:

| variable | default | meaning |
|---|---|---|
| ``PORT`` / ``GUNICORN_BIND`` | ``8000`` / ``0.0.0.0:$PORT`` | where to listen |
| ``GUNICORN_WORKERS`` | ``2 x cores + 1`` | sync worker processes (the cores this container may use) |
| ``GUNICORN_THREADS`` | ``1`` | threads per worker (more than 1 switches to the gthread worker) |
| ``GUNICORN_TIMEOUT`` | ``30`` | seconds before a silent worker is killed and replaced |
| ``GUNICORN_GRACEFUL_TIMEOUT`` | ``30`` | seconds in-flight requests get to finish on SIGTERM / reload |
| ``GUNICORN_KEEPALIVE`` | ``5`` | seconds to hold an idle keep-alive connection (behind a load balancer) |
| ``GUNICORN_MAX_REQUESTS`` | ``0`` (off) | recycle a worker after this many requests (+ up to 10 % jitter) |
| ``GUNICORN_RELOAD`` | ``0`` | restart workers when code changes (development only) |
| ``GUNICORN_ACCESS_LOG`` | ``1`` | one access-log line per request on stdout (``0``: off) |
| ``GUNICORN_LOG_LEVEL`` | ``LOG_LEVEL`` or ``info`` | gunicorn's own log level |
| ``FORWARDED_ALLOW_IPS`` | ``127.0.0.1,::1`` | proxies trusted to set ``X-Forwarded-*`` for gunicorn itself |

Access log and error log go to stdout/stderr: the container runtime collects them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"gunicorn.conf.py: {name} must be an integer, got {raw!r}") from exc
    if value < 0:
        raise SystemExit(f"gunicorn.conf.py: {name} must not be negative, got {value}")
    return value


def _bool_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _available_cores() -> int:
    # The CPUs this process may run on (a container's cpuset), not every CPU of the host.
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int_env('PORT', 8000)}"
workers = _int_env("GUNICORN_WORKERS", 0) or 2 * _available_cores() + 1
threads = _int_env("GUNICORN_THREADS", 1) or 1
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int_env("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int_env("GUNICORN_KEEPALIVE", 5)
max_requests = _int_env("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
reload = _bool_env("GUNICORN_RELOAD")

wsgi_app = "jobops.wsgi:application"
proc_name = "jobops-web"

# Logs: errors to stderr, one access line per request to stdout. With LOG_FORMAT=json (the default, like the
# application's logs) every line is a JSON object and an access line carries the request id that
# RequestIDMiddleware put on the response, so it can be matched with the application's own log lines.
# GUNICORN_ACCESS_LOG=0 turns the access log off (the application logs each request as `jobops.request` too;
# gunicorn's line also covers requests that never reach Django, and has the client address and response size).
_access_log_off = os.environ.get("GUNICORN_ACCESS_LOG", "1").strip().lower() in {"0", "false", "no", "off"}
accesslog = None if _access_log_off else "-"
errorlog = "-"
loglevel = (os.environ.get("GUNICORN_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s user_agent="%(a)s"'


class AccessJSONFormatter(logging.Formatter):
    """One JSON object per request, built from gunicorn's access-log atoms (``record.args``)."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, Mapping) else {}

        def atom(key: str) -> str:
            try:
                return str(atoms[key])  # gunicorn's SafeAtoms answers "-" for a missing header
            except KeyError:
                return "-"

        payload = {
            "at": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": f"{atom('m')} {atom('U')} {atom('s')}",
            "request_id": atom("{x-request-id}o"),
            "method": atom("m"),
            "path": atom("U"),
            "query": atom("q"),
            "status": int(atom("s")) if atom("s").isdigit() else atom("s"),
            "bytes": int(atom("B")) if atom("B").isdigit() else 0,
            "duration_ms": int(atom("M")) if atom("M").isdigit() else atom("M"),
            "remote_addr": atom("h"),
            "user_agent": atom("a").replace('\\"', '"'),
        }
        return json.dumps(payload)


if os.environ.get("LOG_FORMAT", "json").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "jobops.logging.JSONFormatter"},
            "access_json": {"()": AccessJSONFormatter},
        },
        "filters": {"request_id": {"()": "jobops.logging.RequestIDFilter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["request_id"],
            },
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            },
            "access": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "access_json"},
        },
        "root": {"level": loglevel.upper(), "handlers": ["stdout"]},
        "loggers": {
            # propagate=False: Django's LOGGING also puts a handler on the root logger; no line may be written twice.
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }

# The worker heartbeat file lives in memory: on a container's overlay filesystem a slow disk can make gunicorn
# think a healthy worker hung.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"

# gunicorn's runtime control socket would go to $HOME/.gunicorn (not writable for the container's user, and shared
# by every gunicorn of that user); nothing in JobOps uses it.
control_socket_disable = True

forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
