"""schemathesis hooks of the fuzz runs (``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``, set by test_schemathesis.py).

The fuzzer logs in by username (``auth.json``) and logs in again whenever it is refused. Two legitimate operations
combine badly for it: renaming a user (``PATCH``/``PUT`` ``/api/auth/me/`` and ``/api/users/{id}/``) and ending
sessions (``POST /api/auth/logout/all/``, ``/api/users/{id}/sign-out/``): after both, the identity cannot log in
again under its old name and every later case errors out. So every successful rename is undone at once, with the
same credentials, and the fuzz identities keep their names. Nothing is excluded: the renames are still sent and
checked like any other request.

The admin run has a second such pair. The fuzzer may make another user an active admin (``POST /api/users/`` or a
``PATCH``/``PUT`` of ``/api/users/{id}/`` with ``role: admin``), and once there is one, demoting, deactivating or
deleting its own account is allowed too (seed 1955070743: it promoted user 2, then made itself a sales agent, and
every later admin-only case was a 403). So a second active admin is stood down at once (its role and active flag
put back as they were; a new user becomes a technician), with the fuzzing admin's credentials: the fuzzing admin
stays the only active admin, and the server's own last-admin rule (409 ``last_admin``) keeps it one.
"""

from __future__ import annotations

import re
from typing import Any

import requests
import schemathesis

_RENAMES = re.compile(r"^/api/(auth/me|users/[^/]+)/$")
_USERS = re.compile(r"^/api/users/(?:[^/]+/)?$")
_before: dict[int, tuple[str, dict[str, str], str]] = {}
#: PATCH/PUT of a user: the target's role and active flag before the call.
_standing: dict[int, dict[str, Any]] = {}


def _auth_headers(headers: Any) -> dict[str, str]:
    return {key: value for key, value in dict(headers or {}).items() if key.lower() == "authorization"}


def _target(case: Any, kwargs: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """The case's URL and the identity's Authorization header (the auth provider has already put it on the case)."""
    headers = _auth_headers({**dict(case.headers or {}), **dict(kwargs.get("headers") or {})})
    try:
        url = case.as_transport_kwargs()["url"]
    except Exception:  # noqa: BLE001 - no URL to ask: leave the case alone
        return None
    if not url or not headers:
        return None
    return url, headers


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.method.upper() not in ("PATCH", "PUT") or not _RENAMES.match(case.formatted_path):
        return
    target = _target(case, kwargs)
    if target is None:
        return
    url, headers = target
    current = requests.get(url, headers=headers, timeout=10)
    if current.status_code == 200:
        state = current.json()
        _before[id(case)] = (url, headers, state.get("username", ""))
        if "role" in state:  # /api/users/{id}/ (the admin's view of a user)
            _standing[id(case)] = {"role": state["role"], "is_active": state.get("is_active")}


def _stand_down_another_admin(response: Any, headers: dict[str, str], before: dict[str, Any] | None) -> None:
    """If the call left another user an active admin, put that user back (see the module docstring)."""
    try:
        user = response.json()
    except ValueError:
        return
    if not isinstance(user, dict) or user.get("role") != "admin" or user.get("is_active") is not True:
        return
    if before is not None and before["role"] == "admin" and before["is_active"] is True:
        return  # already an active admin before this call: not the fuzzer's doing
    base = response.request.url.split("/api/", 1)[0]
    me = requests.get(f"{base}/api/auth/me/", headers=headers, timeout=10)
    if me.status_code != 200 or me.json().get("id") == user.get("id"):
        return
    restore = {"role": before["role"], "is_active": before["is_active"]} if before else {"role": "technician"}
    requests.patch(f"{base}/api/users/{user['id']}/", json=restore, headers=headers, timeout=10)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    saved = _before.pop(id(case), None)
    before = _standing.pop(id(case), None)
    if response.status_code in (200, 201) and case.method.upper() in ("POST", "PATCH", "PUT"):
        if _USERS.match(case.formatted_path):
            headers = _auth_headers(response.request.headers)
            if headers:
                _stand_down_another_admin(response, headers, before)
    if saved is None or response.status_code != 200:
        return
    url, headers, username = saved
    try:
        renamed = response.json().get("username") != username
    except ValueError:
        return
    if renamed and username:
        requests.patch(url, json={"username": username}, headers=headers, timeout=10)
