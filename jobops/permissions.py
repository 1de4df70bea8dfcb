"""Role-based permissions: a per-action role map on each ViewSet, default deny.

The role is read from the user row loaded for this request (never from token claims). For an action on one object
that the caller's role may *see* but not act on, the decision waits until the object has been looked up through the
caller's scope: an object outside the scope is a 404 (no enumeration), one inside it is a 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from jobops.roles import is_admin


def _role(request: Request) -> str | None:
    user = request.user
    if not user or not user.is_authenticated:
        return None
    return getattr(user, "role", None)


class HasActionRole(BasePermission):
    """``view.allowed_roles[view.action]`` lists the roles that may run the action; a missing action is denied."""

    def has_permission(self, request: Request, view: Any) -> bool:
        role = _role(request)
        if role is None:
            return False
        action = getattr(view, "action", None)
        if action is None:
            # No handler for this method: let DRF answer 405 Method Not Allowed.
            return True
        allowed = view.allowed_roles.get(action)
        if allowed is None:
            return False
        if role in allowed:
            return True
        return bool(getattr(view, "detail", False)) and role in view.allowed_roles.get("retrieve", ())

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return _role(request) in view.allowed_roles.get(view.action, ())


class IsAdminRole(BasePermission):
    """Admins only (``jobops.roles.is_admin``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_admin(request.user)
