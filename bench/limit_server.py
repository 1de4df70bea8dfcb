"""The "limit": the least work that can produce JobOps' job list and day view bodies, as a plain WSGI app.

One prepared SQL statement per request builds the whole JSON document inside PostgreSQL (``json_build_object``
and ``json_agg``, timestamps formatted by ``to_char`` exactly as DRF renders them); Python only picks the
parameters and copies the bytes out. No framework, no ORM, no authentication check: the caller's user id is
read from the JWT payload without verifying it. It serves only what the benchmark compares:

- ``GET /api/jobs/?page=&page_size=``: the admin's job list (every job), with ``count``, ``next``, ``previous``
  built from the request host as DRF's ``PageNumberPagination`` does;
- ``GET /api/dashboard/technician/?days=N``: the technician dashboard of the user in the token.

The benchmark asserts (parsed JSON, keys in order) that these bodies equal JobOps' before timing either server,
so JobOps' figures can be given as a fraction of this one. Run under gunicorn with ``LIMIT_DATABASE_URL`` set.

``contract_app`` is the second mode, the *contract limit*: the same bodies after the per-request work the contract
demands of any implementation: verify the access JWT (signature with ``LIMIT_JWT_KEY``, expiry, token type), read
the user's row (401 when it is missing or inactive), and (contract v2) compute the list's ETag with one query (as
``jobs.etags``: the job page's window, the day view's count / sum of versions / mix): ``If-None-Match`` with the
current tag -> 304 with no body, else the body with its ``ETag``. No framework, no ORM.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import jwt
import psycopg

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

#: How DRF renders a datetime in UTC: ISO 8601, microseconds only when non-zero, ``Z`` for the offset.
_ISO = (
    "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN date_trunc('second', {c}) = {c} THEN '' ELSE to_char({c} AT TIME ZONE 'UTC', '.US') END || 'Z'"
)


def iso(column: str) -> str:
    return _ISO.format(c=column)


def _task_count(condition: str = "") -> str:
    return f"(SELECT count(*) FROM jobs_jobtask t WHERE t.job_id = j.id{condition})"


JOB_LIST_SQL = f"""
SELECT json_build_object(
    'count', c.n,
    'next', CASE WHEN %(offset)s::bigint + %(limit)s::bigint < c.n THEN %(next)s::text END,
    'previous', %(previous)s::text,
    'results', COALESCE((
        SELECT json_agg(json_build_object(
            'id', j.id,
            'title', j.title,
            'description', j.description,
            'client_name', j.client_name,
            'status', j.status,
            'priority', j.priority,
            'scheduled_date', j.scheduled_date,
            'overdue', j.overdue,
            'assigned_to', j.assigned_to_id,
            'created_by', j.created_by_id,
            'created_at', {iso("j.created_at")},
            'updated_at', {iso("j.updated_at")},
            'completed_at', {iso("j.completed_at")},
            'tasks_total', {_task_count()},
            'tasks_completed', {_task_count(" AND t.status = 'completed'")}
        ) ORDER BY j.scheduled_date, j.id)
        FROM (
            SELECT * FROM jobs_job ORDER BY scheduled_date, id LIMIT %(limit)s::bigint OFFSET %(offset)s::bigint
        ) j
    ), '[]'::json)
)::text
FROM (SELECT count(*) AS n FROM jobs_job) c
"""

DAY_VIEW_SQL = f"""
WITH rows AS MATERIALIZED (
    SELECT t.id, t."order", t.title, t.description, t.status, t.started_at, t.completed_at,
           j.id AS job_id, j.title AS job_title, j.client_name, j.priority, j.status AS job_status,
           (j.overdue OR j.scheduled_date < %(today)s::date) AS job_overdue, j.scheduled_date, j.assigned_to_id,
           row_number() OVER (PARTITION BY j.id ORDER BY t."order") = 1 AS actionable
    FROM jobs_jobtask t
    JOIN jobs_job j ON j.id = t.job_id
    WHERE j.assigned_to_id = %(user_id)s::bigint
      AND j.status IN ('pending', 'in_progress')
      AND t.status IN ('pending', 'in_progress')
      AND (j.scheduled_date <= %(end)s::date OR j.overdue)
),
-- One join for every task's equipment (a correlated subquery per task made PostgreSQL hash the table per task).
equipment AS (
    SELECT m.jobtask_id, json_agg(json_build_object(
        'id', e.id, 'name', e.name, 'type', e.type, 'serial_number', e.serial_number, 'is_active', e.is_active
    ) ORDER BY e.id) AS items
    FROM rows r
    JOIN jobs_jobtask_required_equipment m ON m.jobtask_id = r.id
    JOIN equipment_equipment e ON e.id = m.equipment_id
    GROUP BY m.jobtask_id
),
tasks AS (
    SELECT r.scheduled_date, r.job_id, r."order", json_build_object(
        'id', r.id,
        'job', json_build_object(
            'id', r.job_id,
            'title', r.job_title,
            'client_name', r.client_name,
            'priority', r.priority,
            'status', r.job_status,
            'overdue', r.job_overdue,
            'scheduled_date', r.scheduled_date,
            'assigned_to', r.assigned_to_id
        ),
        'order', r."order",
        'title', r.title,
        'description', r.description,
        'status', r.status,
        'required_equipment', COALESCE(q.items, '[]'::json),
        'started_at', {iso("r.started_at")},
        'completed_at', {iso("r.completed_at")},
        'actionable', r.actionable
    ) AS body
    FROM rows r
    LEFT JOIN equipment q ON q.jobtask_id = r.id
)
SELECT COALESCE(json_agg(json_build_object('date', d.scheduled_date, 'tasks', d.tasks) ORDER BY d.scheduled_date),
                '[]'::json)::text
FROM (
    SELECT scheduled_date, json_agg(body ORDER BY job_id, "order") AS tasks FROM tasks GROUP BY scheduled_date
) d
"""

#: The ETag aggregates of ``jobs.etags`` in plain SQL: count, sum of versions, sum of the (id, version) mix.
_MIX = "(((({id} * 1000003 + {v}) %% 2147483647) * (({id} * 1000003 + {v}) %% 2147483647)) %% 2147483647)"

#: A page's tag as ``jobs.etags.jobs_page_etag``: the set's size and the page's (id, version) in order.
JOB_LIST_TAG_SQL = """
SELECT (SELECT count(*) FROM jobs_job), array_agg(p.id || ':' || p.version)
FROM (SELECT id, version FROM jobs_job ORDER BY scheduled_date, id LIMIT %(limit)s::bigint OFFSET %(offset)s::bigint) p
"""

DAY_VIEW_TAG_SQL = f"""
SELECT count(*), sum(j.version), sum({_MIX.format(id="t.id", v="j.version")}),
       (SELECT max(updated_at) FROM equipment_equipment)
FROM jobs_jobtask t
JOIN jobs_job j ON j.id = t.job_id
WHERE j.assigned_to_id = %(user_id)s::bigint
  AND j.status IN ('pending', 'in_progress')
  AND t.status IN ('pending', 'in_progress')
  AND (j.scheduled_date <= %(end)s::date OR j.overdue)
"""

USER_SQL = "SELECT is_active FROM accounts_user WHERE id = %(user_id)s::bigint"

_connection: psycopg.Connection | None = None


def _row(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["LIMIT_DATABASE_URL"], autocommit=True)
        # Plan each prepared statement once per worker rather than re-planning it with every request's values.
        _connection.execute("SET plan_cache_mode = force_generic_plan")
    return _connection.execute(sql, params, prepare=True).fetchone()


def _execute(sql: str, params: dict[str, Any]) -> bytes:
    row = _row(sql, params)
    return row[0].encode() if row else b"null"


# --- DRF's pagination links (rest_framework.utils.urls), reproduced without importing DRF -----------------------------


def _absolute_uri(environ: Environ) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    query = environ.get("QUERY_STRING", "")
    return f"{environ['wsgi.url_scheme']}://{host}{environ['PATH_INFO']}" + (f"?{query}" if query else "")


def replace_query_param(url: str, key: str, value: Any) -> str:
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    query_dict[key] = [str(value)]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment))


def remove_query_param(url: str, key: str) -> str:
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    query_dict.pop(key, None)
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment))


# --- endpoints --------------------------------------------------------------------------------------------------------


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    value = int(values[0]) if values else default
    if value < 1:
        raise ValueError(name)
    return value


def _user_id(environ: Environ) -> int:
    token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return int(claims["user_id"])


def job_list(environ: Environ) -> bytes:
    params = parse_qs(environ.get("QUERY_STRING", ""))
    page = _int_param(params, "page", 1)
    size = min(_int_param(params, "page_size", 20), 100)
    url = _absolute_uri(environ)
    previous = None
    if page > 1:
        previous = remove_query_param(url, "page") if page == 2 else replace_query_param(url, "page", page - 1)
    return _execute(
        JOB_LIST_SQL,
        {
            "limit": size,
            "offset": (page - 1) * size,
            "next": replace_query_param(url, "page", page + 1),
            "previous": previous,
        },
    )


def _day_view_params(environ: Environ) -> dict[str, Any]:
    params = parse_qs(environ.get("QUERY_STRING", ""))
    days = _int_param(params, "days", 7)
    today = dt.datetime.now(dt.UTC).date()
    return {"user_id": _user_id(environ), "today": today, "end": today + dt.timedelta(days=days)}


def day_view(environ: Environ) -> bytes:
    return _execute(DAY_VIEW_SQL, _day_view_params(environ))


ROUTES: dict[str, Callable[[Environ], bytes]] = {
    "/api/jobs/": job_list,
    "/api/dashboard/technician/": day_view,
    "/healthz/": lambda environ: b'{"status":"ok"}',
}


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    handler = ROUTES.get(environ["PATH_INFO"])
    if handler is None:
        status, body = "404 Not Found", b'{"detail":"Not found."}'
    else:
        try:
            status, body = "200 OK", handler(environ)
        except (ValueError, KeyError, IndexError):
            status, body = "400 Bad Request", b'{"detail":"Bad request."}'
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# --- the contract limit -----------------------------------------------------------------------------------------------

_JWT_KEY = os.environ.get("LIMIT_JWT_KEY", "")


class Unauthorized(Exception):
    pass


def _authenticate(environ: Environ) -> int:
    """The contract's per-request work: a valid, unexpired access JWT whose user row exists and is active."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer "):
        raise Unauthorized
    try:
        claims = jwt.decode(header.removeprefix("Bearer "), _JWT_KEY, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise Unauthorized from None
    if claims.get("token_type") != "access":
        raise Unauthorized
    user_id = int(claims["user_id"])
    row = _row(USER_SQL, {"user_id": user_id})
    if row is None or not row[0]:
        raise Unauthorized
    return user_id


def _tag(sql: str, params: dict[str, Any], environ: Environ) -> str:
    row = _row(sql, params)
    key = repr((row, environ.get("QUERY_STRING", ""), environ.get("HTTP_HOST", "")))
    return '"' + hashlib.blake2b(key.encode(), digest_size=16).hexdigest() + '"'


def contract_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/healthz/":
        return app(environ, start_response)
    headers = [("Content-Type", "application/json")]
    try:
        _authenticate(environ)
        if path == "/api/jobs/":
            params = parse_qs(environ.get("QUERY_STRING", ""))
            size = min(_int_param(params, "page_size", 20), 100)
            offset = (_int_param(params, "page", 1) - 1) * size
            tag = _tag(JOB_LIST_TAG_SQL, {"limit": size, "offset": offset}, environ)
            render = lambda: job_list(environ)  # noqa: E731
        elif path == "/api/dashboard/technician/":
            params = _day_view_params(environ)
            tag = _tag(DAY_VIEW_TAG_SQL, params, environ)
            render = lambda: _execute(DAY_VIEW_SQL, params)  # noqa: E731
        else:
            status, body = "404 Not Found", b'{"detail":"Not found."}'
            start_response(status, [*headers, ("Content-Length", str(len(body)))])
            return [body]
        if tag in environ.get("HTTP_IF_NONE_MATCH", ""):
            start_response("304 Not Modified", [("ETag", tag)])
            return []
        status, body = "200 OK", render()
        headers.append(("ETag", tag))
    except Unauthorized:
        status, body = "401 Unauthorized", b'{"detail":"Invalid token."}'
    except (ValueError, KeyError, IndexError):
        status, body = "400 Bad Request", b'{"detail":"Bad request."}'
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]
