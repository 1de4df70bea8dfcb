"""schemathesis hooks of the fuzz runs (``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``, set by test_schemathesis.py).

The fuzzer logs in by username (``auth.json``) and logs in again whenever it is refused. Two legitimate operations
combine badly for it: renaming a user (``PATCH``/``PUT`` ``/api/auth/me/`` and ``/api/users/{id}/``) and ending
sessions (``POST /api/auth/logout/all/``, ``/api/users/{id}/sign-out/``): after both, the identity cannot log in
again under its old name and every later case errors out. So every successful rename is undone at once, with the
same credentials, and the fuzz identities keep their names. Nothing is excluded: the renames are still sent and
checked like any other request.
"""

from __future__ import annotations

import re
from typing import Any

import requests
import schemathesis

_RENAMES = re.compile(r"^/api/(auth/me|users/[^/]+)/$")
_before: dict[int, tuple[str, dict[str, str], str]] = {}


def _auth_headers(headers: Any) -> dict[str, str]:
    return {key: value for key, value in dict(headers or {}).items() if key.lower() == "authorization"}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.method.upper() not in ("PATCH", "PUT") or not _RENAMES.match(case.formatted_path):
        return
    # The auth provider has already put the identity's Authorization header on the case.
    headers = _auth_headers({**dict(case.headers or {}), **dict(kwargs.get("headers") or {})})
    try:
        url = case.as_transport_kwargs()["url"]
    except Exception:  # noqa: BLE001 - no URL to ask: leave the case alone
        return
    if not url or not headers:
        return
    current = requests.get(url, headers=headers, timeout=10)
    if current.status_code == 200:
        _before[id(case)] = (url, headers, current.json().get("username", ""))


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    saved = _before.pop(id(case), None)
    if saved is None or response.status_code != 200:
        return
    url, headers, username = saved
    try:
        renamed = response.json().get("username") != username
    except ValueError:
        return
    if renamed and username:
        requests.patch(url, json={"username": username}, headers=headers, timeout=10)
