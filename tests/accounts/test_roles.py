"""Roles live in the platform (jobops.roles, jobops.permissions): one definition of "is an admin", the role map
permission, and accounts.User using the platform's choices."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory

from accounts.models import User
from jobops.permissions import HasActionRole, IsAdminRole
from jobops.roles import ADMIN, ADMIN_ONLY, ALL_ROLES, SALES_AGENT, TECHNICIAN, Role, is_admin
from tests.factories import UserFactory


def test_user_role_is_the_platform_role():
    assert User.Role is Role
    assert [(r.value, r.label) for r in Role] == [
        ("admin", "Admin"),
        ("technician", "Technician"),
        ("sales_agent", "Sales agent"),
    ]
    assert User._meta.get_field("role").choices == Role.choices
    assert ALL_ROLES == frozenset({ADMIN, TECHNICIAN, SALES_AGENT}) and ADMIN_ONLY == frozenset({"admin"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"role": "admin"}, True),
        ({"role": "admin", "is_staff": True, "is_superuser": True}, True),
        ({"role": "admin", "is_active": False}, False),
        ({"role": "technician"}, False),
        ({"role": "sales_agent", "is_staff": True}, False),
        ({"role": "technician", "is_staff": True, "is_superuser": True}, False),  # the flags do not make an admin
    ],
)
def test_is_admin_is_the_role_of_an_active_user(fields, expected):
    assert is_admin(UserFactory(**fields)) is expected


def test_is_admin_fails_closed_for_anything_else():
    assert is_admin(None) is False
    assert is_admin(AnonymousUser()) is False
    assert is_admin(SimpleNamespace(role="admin")) is False  # not known to be authenticated and active
    assert is_admin(SimpleNamespace(role="admin", is_authenticated=True, is_active=True)) is True


class _View:
    def __init__(self, action, allowed_roles, detail=False):
        self.action, self.allowed_roles, self.detail = action, allowed_roles, detail


def _request(user):
    request = APIRequestFactory().get("/")
    request.user = user
    return request


@pytest.mark.django_db
def test_has_action_role_default_deny_and_detail_defers_to_the_object(technician, sales_agent):
    roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES, "cancel": frozenset({ADMIN, SALES_AGENT})}
    permission = HasActionRole()
    assert permission.has_permission(_request(technician), _View("list", roles)) is True
    assert permission.has_permission(_request(technician), _View("unlisted", roles)) is False  # missing: deny
    assert permission.has_permission(_request(AnonymousUser()), _View("list", roles)) is False
    assert permission.has_permission(_request(technician), _View(None, roles)) is True  # no handler: DRF's 405
    # A detail action the role may only *see*: pass now (the scoped lookup gives 404 outside the scope) ...
    view = _View("cancel", roles, detail=True)
    assert permission.has_permission(_request(technician), view) is True
    # ... and refuse on the object (403 inside the scope).
    assert permission.has_object_permission(_request(technician), view, object()) is False
    assert permission.has_object_permission(_request(sales_agent), view, object()) is True
    assert permission.has_permission(_request(technician), _View("cancel", roles, detail=False)) is False


@pytest.mark.django_db
def test_is_admin_role_permission(admin_user, technician):
    assert IsAdminRole().has_permission(_request(admin_user), None) is True
    assert IsAdminRole().has_permission(_request(technician), None) is False
    assert IsAdminRole().has_permission(_request(AnonymousUser()), None) is False
