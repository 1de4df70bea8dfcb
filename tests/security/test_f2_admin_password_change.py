"""Finding 2: every password change made in the Django admin goes through ``accounts.services``: it is validated,
audited, ends the user's refresh tokens and moves their "tokens valid after" instant."""

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEntry
from tests.factories import DEFAULT_PASSWORD

from .conftest import REFRESH, login, post

pytestmark = pytest.mark.django_db

NEW = "Changed-in-admin-42"


@pytest.fixture
def admin_browser(admin_user):
    client = Client()
    assert client.login(username="admin1", password=DEFAULT_PASSWORD)
    return client


def test_own_password_change_in_the_admin_goes_through_the_service(admin_user, admin_browser):
    pair = login("admin1")
    response = admin_browser.post(
        "/admin/password_change/",
        {"old_password": DEFAULT_PASSWORD, "new_password1": NEW, "new_password2": NEW},
    )
    assert response.status_code == 302, response.content[:2000]
    assert User.objects.get(pk=admin_user.pk).check_password(NEW)
    entry = AuditEntry.objects.get(action="user.password_changed")
    assert (entry.object_id, entry.actor_id, entry.source, entry.changes) == (admin_user.pk, admin_user.pk, "admin", {})
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    # The admin's own browser session survives its own change.
    assert admin_browser.get("/admin/").status_code == 200


def test_own_password_change_in_the_admin_is_validated(admin_user, admin_browser):
    response = admin_browser.post(
        "/admin/password_change/",
        {"old_password": DEFAULT_PASSWORD, "new_password1": "short", "new_password2": "short"},
    )
    assert response.status_code == 200  # the form again, with its errors
    assert User.objects.get(pk=admin_user.pk).check_password(DEFAULT_PASSWORD)
    assert not AuditEntry.objects.exists()


def test_set_password_form_for_another_user_ends_their_sessions(admin_user, admin_browser, technician):
    pair = login("tech1")
    response = admin_browser.post(
        f"/admin/accounts/user/{technician.pk}/password/", {"password1": NEW, "password2": NEW}
    )
    assert response.status_code == 302, response.content[:2000]
    assert User.objects.get(pk=technician.pk).check_password(NEW)
    assert AuditEntry.objects.filter(action="user.password_changed", object_id=technician.pk).count() == 1
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
