"""The roles of JobOps and the one definition of "is an admin".

The role is the permission model: it is stored on the user row (``accounts.User.role``, whose choices are this
``Role``) and read from the row loaded for the request, never from token claims. This module is part of the
platform so that every app (audit and accounts included) can ask the same question without importing an app above
it.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    TECHNICIAN = "technician", "Technician"
    SALES_AGENT = "sales_agent", "Sales agent"


ADMIN = Role.ADMIN
TECHNICIAN = Role.TECHNICIAN
SALES_AGENT = Role.SALES_AGENT
ALL_ROLES = frozenset({ADMIN, TECHNICIAN, SALES_AGENT})
ADMIN_ONLY = frozenset({ADMIN})


def is_admin(user: Any) -> bool:
    """True when ``user`` is an authenticated, active user whose role is ``admin``; False for anything else
    (``None``, an anonymous user, an inactive admin, a user with any other role).

    The role alone decides: ``is_superuser`` and ``is_staff`` do not make anyone an admin. They are derived from the
    role by ``accounts.services`` (set for admins, cleared for everyone else) and ``createsuperuser`` creates users
    with the admin role, so the two only disagree on a row edited behind the services' back; such a row then gets
    the same answer from every check (API, services, selectors and the Django admin's JobOps checks), instead of
    being an admin for some of them and a technician for others. ``is_active`` is checked because services receive
    actors that did not pass authentication (tasks, the admin, tests), and an inactive user must not act as an
    admin anywhere.
    """
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "role", None) == Role.ADMIN
    )
