"""Request correlation: every response carries ``X-Request-ID``; audit entries and log lines carry it too.

An incoming ``X-Request-ID`` is kept when it is 1-64 characters of ASCII letters, digits, ``-``, ``_`` and ``.``
(so it is safe in log lines, headers and the 64-character audit column); anything else is replaced by a new UUID4.
The id is published through ``jobops.context`` for the duration of the request, so every audit entry written while
serving it stores it, and every log line emitted while serving it shows it. One access line is logged per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.cache import patch_cache_control
from django.utils.functional import SimpleLazyObject, empty

from . import views
from .context import request_id_var, source_var, system_actor_var

HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ADMIN_PREFIX = "/admin/"

logger = logging.getLogger("jobops.request")


def request_id_from(value: str | None) -> str:
    """The incoming id when valid, else a fresh UUID4 (``fullmatch``: a trailing newline is not accepted)."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


def _user_id(request: HttpRequest) -> Any:
    # Never trigger a session lookup just to log: read the user only when authentication already resolved it.
    user = request.__dict__.get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return None
    return getattr(user, "pk", None)


class RequestIDMiddleware:
    """First in ``MIDDLEWARE``, so the id covers every other middleware, the view and the error handlers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        source = "admin" if request.path_info.startswith(_ADMIN_PREFIX) else "api"
        tokens = [
            (request_id_var, request_id_var.set(request_id)),
            (source_var, source_var.set(source)),
            # A request is never "the system", whatever a previous job on this thread left behind.
            (system_actor_var, system_actor_var.set("")),
        ]
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "user_id": _user_id(request),
                },
            )
            return response
        finally:
            for var, token in reversed(tokens):
                var.reset(token)


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every API response to a request that carries credentials (an
    ``Authorization`` header) and on every response of the token endpoints (``/api/auth/``): what a user's token
    shows them (and the tokens themselves) must not stay in a browser's or a proxy's cache. Public responses (the
    schema, the docs, health checks) keep their caching. A client that keeps its own copy still revalidates with
    ``If-None-Match``: ``no-store`` is about HTTP caches, not about the ETags the API sends."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        path = request.path_info
        if path.startswith("/api/") and ("HTTP_AUTHORIZATION" in request.META or path.startswith("/api/auth/")):
            patch_cache_control(response, no_store=True)
        return response


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class FormBodyMiddleware:
    """A form body that cannot be parsed is a 400 before anything else reads it (outside ``/api/``, whose views parse
    their own bodies). Placed before ``CsrfViewMiddleware``: that middleware reads ``request.POST`` for the CSRF
    token, and Django raises there for a form declared in another charset than UTF-8 or a truncated multipart body;
    Django's error views then run the same CSRF check and raise again, so the client got a 500 (pen test, finding 7).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method == "POST"
            and request.content_type in _FORM_TYPES
            and not request.path_info.startswith("/api/")
        ):
            try:
                request.POST  # noqa: B018 - parse now, so that nothing later raises on it
            except Exception:  # noqa: BLE001 - an unreadable form is the client's error whatever Django raised
                return HttpResponseBadRequest("Malformed form body.", content_type="text/plain")
        return self.get_response(request)


class ApiJsonErrorsMiddleware:
    """An ``/api/`` answer is JSON in every mode. With ``DEBUG`` off, ``handler404``/``handler500``
    (``jobops.views``) already answer JSON; with it on, Django answers its HTML debug pages instead (an unknown
    ``/api/`` path under ``make run``, say): those are replaced by the same JSON bodies (the traceback is still
    logged by ``django.request``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code in (404, 500)
            and request.path.startswith("/api/")
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return views.not_found(request) if response.status_code == 404 else views.server_failure(request)
        return response
