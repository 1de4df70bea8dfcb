"""The database is unreachable for a moment: 503 with ``Retry-After``, never a 500 (issue 19, the scale-out drill).

When PostgreSQL refuses connections, drops an open one mid-request, or is shutting down or starting up, every request
that touches it fails with ``django.db.OperationalError`` (psycopg's error as its ``__cause__``). That is not a bug
of the request: the client should retry shortly. Such a request answers **503** ``{"detail", "code":
"service_unavailable"}`` (the one error shape, under ``/api/`` and to any client whose ``Accept`` prefers JSON; a
short HTML page otherwise) with ``Retry-After: DB_UNAVAILABLE_RETRY_AFTER`` (5 s), and logs one WARNING with the
reason, no traceback (a deadlock: an ERROR with its traceback, below); Django's "Internal Server Error" line is not
written. Its transaction rolled back (``transaction.atomic`` does) and the broken connection is closed here, so the
next request opens a fresh one (``CONN_HEALTH_CHECKS`` would also catch it, one query later). The 503 does not
promise that nothing changed: a connection lost during ``COMMIT`` leaves the client unable to know whether the
server committed. A write retried with the same ``Idempotency-Key`` is safe either way (``jobops.idempotency``).

Two places answer, between them every path, both with the one builder :func:`unavailable_response`:

- the DRF exception handler (``jobops.exceptions``) for anything raised inside an API view: permissions,
  authentication (the user row), throttles, the view, its services; it answers in every mode, ``DEBUG`` included;
- ``handler500`` (``jobops.views.server_failure``) for everything else: middleware that runs outside DRF (the
  ``Idempotency-Key`` lookup and lock, the session and user of the admin), the admin, ``/live/``. Django calls it
  inside its ``except`` block, so ``sys.exc_info()`` holds the error. (An outer middleware's ``try`` never sees
  it: Django turns each middleware's exceptions into a response first.) With ``DEBUG`` on Django shows its debug
  page instead of calling ``handler500``; that is development only.

What counts as "unavailable" (:func:`unavailable_reason`), read from psycopg's error in the chain:

- an ``OperationalError`` without an SQLSTATE whose message is a transport failure (``TRANSPORT_FAILURES``:
  connection refused, the server closed the connection, the connection is lost or closed, a connect timeout,
  a temporary failure of name resolution, the server shutting down, starting up or out of connection slots).
  psycopg 3 gives *every* failure at connect time no SQLSTATE, so the message decides: a wrong password, a missing
  role or database, a ``pg_hba.conf`` rejection, a host name that does not exist or a bad DSN is no SQLSTATE too,
  and stays a 500;
- SQLSTATE class 08 (connection exception), 57P01 ``admin_shutdown``, 57P02 ``crash_shutdown``, 57P03
  ``cannot_connect_now`` (starting up or shutting down), 53300 ``too_many_connections``;
- 40001 ``serialization_failure`` and 40P01 ``deadlock_detected``: the transaction was rolled back as a whole and
  the same request succeeds when retried, which is what 503 + ``Retry-After`` tells the client. A deadlock is
  logged at ERROR with its traceback: it is a lock-ordering bug and must stay visible. A serialization failure
  stays a WARNING (on a hot standby it is a conflict with WAL replay, expected now and then).

Anything else (a statement timeout 57014, bad credentials or a missing database, SQLite's "database is locked",
any programming or data error) stays a 500 with its traceback: those are bugs or configuration to fix, not an outage
to wait out.
"""

from __future__ import annotations

import logging

import psycopg
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("jobops.db")

CODE = "service_unavailable"
DETAIL = "The service is briefly unavailable (its database cannot be reached); retry after Retry-After seconds."

#: SQLSTATEs (besides class 08 and no SQLSTATE at all) that mean "retry shortly", with the name logged.
TRANSIENT_SQLSTATES = {
    "57P01": "admin_shutdown",
    "57P02": "crash_shutdown",
    "57P03": "cannot_connect_now",
    "53300": "too_many_connections",
    "40001": "serialization_failure",
    "40P01": "deadlock_detected",
}


#: Without an SQLSTATE (psycopg 3 gives none to any failure at connect time, nor to its client-side errors), only
#: these messages (lower-cased substrings) mean the server could not be reached or went away: libpq's transport
#: errors, psycopg's own for a closed or lost connection, the FATAL answers of a server shutting down, starting up
#: or out of connection slots, and a resolver that cannot answer now. A login the server rejects (password, role,
#: database, pg_hba), a host name that does not exist, a bad DSN or a client-side limit ("number of parameters must
#: be between 0 and 65535") is not among them: a 500.
TRANSPORT_FAILURES = (
    "connection refused",
    "server closed the connection unexpectedly",
    "connection socket closed",
    "the connection is lost",
    "the connection is closed",
    "could not receive data from server",
    "could not send data to server",
    "ssl connection has been closed unexpectedly",
    "ssl syscall error",
    "terminating connection",
    "no route to host",
    "network is unreachable",
    # getaddrinfo's EAI_AGAIN: the resolver could not answer now (Compose's `db` while its container restarts, a
    # DNS server briefly away). "Name or service not known" (EAI_NONAME) is a wrong host name: a 500.
    "temporary failure in name resolution",
    "connection timed out",
    "timeout expired",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is not yet accepting connections",
    "the database system is in recovery mode",
    "sorry, too many clients already",
    "remaining connection slots are reserved",
)


def _transport_failure(exc: psycopg.OperationalError) -> bool:
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return True
    message = str(exc).lower()
    return any(failure in message for failure in TRANSPORT_FAILURES)


def unavailable_reason(exc: BaseException | None) -> str | None:
    """A short reason when ``exc`` (or what it was raised from) means the database cannot serve this request now
    and a retry will do (see the module docstring); ``None`` for anything else."""
    for _ in range(8):  # Django's wrapper -> psycopg's error; never loop on a cycle
        if exc is None:
            return None
        if isinstance(exc, psycopg.OperationalError):
            state = exc.sqlstate
            if state is None:
                return "connection_failure" if _transport_failure(exc) else None
            if state.startswith("08"):
                return f"connection_exception_{state}"
            return TRANSIENT_SQLSTATES.get(state)
        if isinstance(exc, psycopg.Error):
            return None
        exc = exc.__cause__
    return None


def retry_after() -> str:
    return str(settings.DB_UNAVAILABLE_RETRY_AFTER)


def discard_broken_connections() -> None:
    """Close every connection of this thread that saw an error: a dead socket must not serve the next request.
    Inside a transaction Django only marks it closed; the outermost ``atomic`` then forgets it."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and conn.errors_occurred:
            try:
                conn.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail; it is dropped either way
                logger.debug("closing a broken database connection failed: %s", exc)
                conn.connection = None


def log_unavailable(request: HttpRequest, exc: BaseException, reason: str) -> None:
    """One line per 503: a WARNING without traceback, except a deadlock, an ERROR with its traceback (the retry
    succeeds, but two code paths take the same locks in different orders: a bug to fix, which must stay visible)."""
    deadlock = reason == TRANSIENT_SQLSTATES["40P01"]
    logger.log(
        logging.ERROR if deadlock else logging.WARNING,
        "database unavailable (%s), answering 503: %s %s: %s: %s",
        reason,
        request.method,
        request.path,
        type(exc).__name__,
        str(exc).strip().splitlines()[0] if str(exc).strip() else "",
        exc_info=exc if deadlock else None,
        extra={"reason": reason, "status": 503},
    )


def wants_json(request: HttpRequest) -> bool:
    """Whether an error page outside DRF should be JSON: under ``/api/``, or when the client prefers JSON to HTML
    (``Accept``; a browser's ``text/html`` or a bare ``*/*`` gets the page)."""
    if request.path.startswith("/api/"):
        return True
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def unavailable_response(request: HttpRequest, exc: BaseException, reason: str) -> HttpResponse:
    """The one 503 (both the DRF exception handler and ``handler500`` return it): logged, the broken connections
    discarded, JSON ``{"detail", "code"}`` for API and JSON clients (``wants_json``), a short page otherwise."""
    log_unavailable(request, exc, reason)
    discard_broken_connections()
    response: HttpResponse
    if wants_json(request):
        response = JsonResponse({"detail": DETAIL, "code": CODE}, status=503)
    else:
        response = HttpResponse(
            "<h1>Service Unavailable (503)</h1><p>Please try again in a few seconds.</p>",
            status=503,
            content_type="text/html",
        )
    response["Retry-After"] = retry_after()
    # Logged above: Django's log_response would add an "Internal Server Error"-style line of its own.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
