"""Conditional requests: strong ``ETag``s, ``If-None-Match`` -> 304 and ``If-Match`` -> 412 (API.md v2).

The platform half: how a tag is spelt and compared, the 304 and 412 answers. What a tag is made of is the owning
app's business (``jobs.etags``: a job's row version; a list's count and checksum of versions), computed by one
query *before* the body is rendered, so that a tag never claims a body newer than the one it was sent with (a write
that commits in between makes the next poll a 200 again, never a stale 304).

- ``make_etag(*parts)``: a strong tag from the values that decide a representation.
- ``not_modified_answer(request, etag)``: the 304 for a matching ``If-None-Match`` (weak comparison, RFC 9110
  13.1.2), else None.
- ``check_if_match(request, current)``: raises ``PreconditionFailed`` (412 ``precondition_failed``, with the current
  ``ETag``) unless ``If-Match`` is absent, ``*`` on an existing object, or lists the current tag (strong comparison).
- ``BodyETagMiddleware``: the GET answers under ``/api/`` that no view tagged (users, equipment, audit,
  notifications, a job's history, reports) get a strong tag hashed from their body, and a 304 when it matches. It
  saves the bytes, not the work; the hot reads (jobs, tasks, the day view) tag themselves without rendering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from rest_framework import status

from .exceptions import ApplicationError

ETAG = "ETag"
_SAFE = frozenset({"GET", "HEAD"})


def make_etag(*parts: Any) -> str:
    """A strong entity tag from ``parts`` (their ``repr``: ints, strings, dates, None)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match_hits(request: Any, etag: str) -> bool:
    """``If-None-Match`` lists ``etag`` (or is ``*``): the client's copy is current."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = _tags(header)
    return "*" in tags or _opaque(etag) in {_opaque(tag) for tag in tags}


def not_modified(etag: str) -> HttpResponse:
    response = HttpResponseNotModified()
    response[ETAG] = etag
    return response


def not_modified_answer(request: Any, etag: str | None) -> HttpResponse | None:
    if etag is not None and request.method in _SAFE and none_match_hits(request, etag):
        return not_modified(etag)
    return None


class PreconditionFailed(ApplicationError):
    """``If-Match`` named another version than the current one: 412 with the current ``ETag``."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "precondition_failed"

    def __init__(self, current: str | None) -> None:
        super().__init__(
            "The object changed since you read it (If-Match does not match its current ETag): read it again.",
            headers={ETAG: current} if current else None,
        )


def has_preconditions(request: Any) -> bool:
    """``If-Match`` names at least one tag (an empty header is no condition)."""
    return bool(_tags(request.headers.get("If-Match", "")))


def check_if_match(request: Any, current: str | None) -> None:
    """Raise ``PreconditionFailed`` when ``If-Match`` is sent and does not match ``current`` (None: no object)."""
    tags = _tags(request.headers.get("If-Match", ""))
    if not tags:
        return
    if current is not None and ("*" in tags or current in tags):  # strong comparison: a weak tag never matches
        return
    raise PreconditionFailed(current)


class BodyETagMiddleware:
    """A strong ETag hashed from the body of any untagged 200 GET under ``/api/``; 304 when ``If-None-Match`` has it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.method not in _SAFE
            or response.status_code != 200
            or response.streaming
            or response.has_header(ETAG)
            or not request.path_info.startswith("/api/")
        ):
            return response
        etag = f'"{hashlib.blake2b(response.content, digest_size=16).hexdigest()}"'
        if none_match_hits(request, etag):
            return not_modified(etag)
        response[ETAG] = etag
        return response
