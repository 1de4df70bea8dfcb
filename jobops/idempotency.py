"""``Idempotency-Key``: a write retried after a lost response runs once (API.md v2, "Offline-safe writes").

One mechanism for every unsafe method under ``/api/`` (but the token endpoints), as a middleware, so no view opts in
or out. A request that carries the header, from an authenticated user:

1. takes a lock on (user, key) for its transaction: PostgreSQL's ``pg_try_advisory_xact_lock`` (across processes),
   an in-process set elsewhere. Held by another request -> 409 ``idempotency_key_in_use``: the first is still running;
2. looks the key up: found with the same fingerprint (method, path with query, body) -> the stored status, body and
   headers again, with ``Idempotent-Replayed: true``, and nothing runs; found with another fingerprint -> 422
   ``idempotency_key_reused``;
3. otherwise runs the request **inside one transaction** and stores its response in that same transaction, so the
   change and its stored response commit together: a crash in between leaves neither. A response >= 500 rolls the
   transaction back and is not stored (a retry runs again).

A key lives ``IDEMPOTENCY_TTL_HOURS`` (default 24): an older one is treated as unknown, and the beat task
``jobops.purge_idempotency_keys`` deletes them. Requests without the header behave exactly as before. Requests that
do not authenticate (no or a bad token, or the logout endpoint used with its refresh token only) run without it: a
key is per user.

Attachments (issue 15): a multipart upload is fingerprinted by its raw body like any other request, which reads it
into memory once; keep ``DATA_UPLOAD_MAX_MEMORY_SIZE``-sized uploads in mind when that endpoint lands.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings

from .models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The response headers a replay repeats besides the body.
STORED_HEADERS = ("Content-Type", "ETag", "Location")
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # 1..255 visible ASCII characters


def ttl() -> datetime.timedelta:
    return datetime.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)


def _applies(request: HttpRequest) -> bool:
    if request.method not in UNSAFE_METHODS or HEADER not in request.headers:
        return False
    path = request.path_info
    if not path.startswith("/api/") or any(path.startswith(p) for p in settings.IDEMPOTENCY_EXEMPT_PATHS):
        return False
    return _view_accepts(path, request.method)


def _view_accepts(path: str, method: str) -> bool:
    """Whether a view answers ``method`` at ``path``: a 404 or a 405 is the view's to give (and store nothing)."""
    try:
        view = resolve(path).func
    except Resolver404:
        return False
    actions = getattr(view, "actions", None)  # a ViewSet's method -> action map for this route
    if actions is not None:
        return method.lower() in actions
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    return view_class is None or callable(getattr(view_class, method.lower(), None))


def _error(status: int, detail: str, code: str) -> HttpResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status, json_dumps_params={"separators": (",", ":")})


def _authenticated_user_id(request: HttpRequest) -> int | None:
    """The caller as the API's own authenticators see it (the JWT and the user row), or None. The JWT authenticator
    keeps its answer on the request, so the view does not check the token or read the user row again."""
    drf_request = Request(request)
    authenticator_classes: list[type[BaseAuthentication]] = api_settings.DEFAULT_AUTHENTICATION_CLASSES  # type: ignore[assignment]
    for authenticator_class in authenticator_classes:
        try:
            result = authenticator_class().authenticate(drf_request)
        except APIException:
            return None  # the view answers 401 itself
        if result is not None:
            user = result[0]
            return user.pk if getattr(user, "is_authenticated", False) else None
    return None


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.get_full_path(), ""):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


# --- the lock on (user, key) --------------------------------------------------------------------------------------

_local_in_flight: set[tuple[str, int, str]] = set()
_local_guard = threading.Lock()


@contextmanager
def _key_lock(alias: str, user_id: int, key: str) -> Iterator[bool]:
    """Yields whether this request holds (user, key) until its transaction ends (must be entered inside it)."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()[:8], signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
            yield bool(cursor.fetchone()[0])
        return  # released by PostgreSQL at commit or rollback, after the commit is visible
    token = (alias, user_id, key)
    with _local_guard:
        held = token in _local_in_flight
        if not held:
            _local_in_flight.add(token)
    try:
        yield not held
    finally:
        if not held:
            with _local_guard:
                _local_in_flight.discard(token)


# --- replay and store ---------------------------------------------------------------------------------------------


def _replay(stored: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(bytes(stored.body), status=stored.status_code)
    for name, value in stored.headers.items():
        response[name] = value
    if "Content-Type" not in stored.headers:
        del response["Content-Type"]
    response[REPLAYED_HEADER] = "true"
    return response


def _store(*, user_id: int, key: str, print_: str, response: HttpResponse, now: datetime.datetime) -> None:
    IdempotencyKey.objects.create(
        user_id=user_id,
        key=key,
        fingerprint=print_,
        status_code=response.status_code,
        body=response.content,
        headers={name: response[name] for name in STORED_HEADERS if response.has_header(name)},
        created_at=now,
    )


def run_once(
    request: HttpRequest, get_response: Callable[[HttpRequest], HttpResponse], *, user_id: int, key: str
) -> HttpResponse:
    """Steps 1-3 of the module docstring for one request that carries ``key``."""
    try:
        print_ = fingerprint(request)
    except RequestDataTooBig:
        return get_response(request)  # the view answers 413; such a body is not stored
    now = timezone.now()
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        with _key_lock(DEFAULT_DB_ALIAS, user_id, key) as held:
            if not held:
                return _error(409, "A request with this Idempotency-Key is still running.", "idempotency_key_in_use")
            stored = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
            if stored is not None and stored.created_at <= now - ttl():
                stored.delete()  # expired, not yet purged: the key is free again
                stored = None
            if stored is not None:
                if stored.fingerprint != print_:
                    return _error(
                        422,
                        "This Idempotency-Key was used for another request (method, path or body).",
                        "idempotency_key_reused",
                    )
                return _replay(stored)
            response = get_response(request)
            if response.status_code >= 500 or response.streaming or transaction.get_rollback(DEFAULT_DB_ALIAS):
                transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)
                return response
            _store(user_id=user_id, key=key, print_=print_, response=response, now=now)
            return response


class IdempotencyMiddleware:
    """Applies ``run_once`` to unsafe ``/api/`` requests that carry ``Idempotency-Key`` (see the module docstring).
    Late in ``MIDDLEWARE``: what runs inside it (the view) is what the transaction covers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _applies(request):
            return self.get_response(request)
        key = request.headers[HEADER]
        if not _VALID_KEY.fullmatch(key):
            return JsonResponse(
                {
                    "detail": "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                    "code": "invalid_idempotency_key",
                    HEADER: ["Must be 1 to 255 visible ASCII characters."],
                },
                status=400,
            )
        user_id = _authenticated_user_id(request)
        if user_id is None:
            return self.get_response(request)
        return run_once(request, self.get_response, user_id=user_id, key=key)


def idempotency_purge(*, now: datetime.datetime | None = None) -> int:
    """Delete the stored responses older than ``IDEMPOTENCY_TTL_HOURS``; returns how many. Idempotent (beat)."""
    now = now or timezone.now()
    deleted, _ = IdempotencyKey.objects.filter(created_at__lte=now - ttl()).delete()
    return deleted
