"""Django admin building blocks shared by every app's ``admin.py`` (this module registers nothing).

JobOps' admin saves through the services, exactly like the API: ``ServiceErrorsAsMessages`` turns a service's
refusal into an error message (and rolls the whole admin request back), ``error_message`` renders such a refusal as
one line, and ``StaffAdminPermissions`` lets staff users with the admin role manage an app's objects without Django
per-model permissions (the role is the permission model; groups and per-user permissions are not used).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from rest_framework.exceptions import PermissionDenied

from jobops.exceptions import ApplicationError
from jobops.roles import is_admin

#: What a service raises when it refuses a change: shown to the admin user, never a 500.
SERVICE_ERRORS: tuple[type[Exception], ...] = (ApplicationError, ValidationError, PermissionDenied)


def is_staff_admin(request: HttpRequest) -> bool:
    """An admin (``jobops.roles.is_admin``) who may use the admin site (``is_staff``, which the services derive from
    the role; the admin site itself also requires it to log in)."""
    user = request.user
    return bool(user.is_staff and is_admin(user))


def error_message(exc: Exception) -> str:
    """One line for a service's refusal: the conflict's message, or the field errors of a ``ValidationError``."""
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(getattr(exc, "detail", exc))


class StaffAdminPermissions:
    """Staff users with the admin role may manage these objects without Django per-model permissions."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_staff_admin(request) or super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_staff_admin(request) or super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_staff_admin(request) or super().has_add_permission(request)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_staff_admin(request) or super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_staff_admin(request) or super().has_delete_permission(request, obj)  # type: ignore[misc]


class ServiceErrorsAsMessages:
    """Run an admin view in one transaction; a service's refusal rolls it back and is shown as an error message."""

    def _guarded(self, request: HttpRequest, view: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            with transaction.atomic():
                return view(request, *args, **kwargs)
        except SERVICE_ERRORS as exc:
            self.message_user(request, f"Not saved: {error_message(exc)}", level=messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self._guarded(request, super().changeform_view, *args, **kwargs)  # type: ignore[misc]

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self._guarded(request, super().delete_view, *args, **kwargs)  # type: ignore[misc]
