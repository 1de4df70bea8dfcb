"""The Django admin saves users through accounts.services: audited with source "admin", rules enforced."""

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEntry
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user):
    # admin_user is a staff user with the admin role but not a superuser: the role is what grants admin access.
    client = Client()
    client.force_login(admin_user)
    return client


def _change_data(user, **overrides):
    data = {
        "username": user.username,
        "role": user.role,
        "is_active": "on" if user.is_active else "",
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "phone": user.phone,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


def test_staff_admin_can_open_the_user_pages(admin_client, technician):
    assert admin_client.get("/admin/").status_code == 200
    assert admin_client.get("/admin/accounts/user/").status_code == 200
    assert admin_client.get("/admin/accounts/user/?role__exact=technician&q=tech").status_code == 200
    assert admin_client.get(f"/admin/accounts/user/{technician.pk}/change/").status_code == 200
    assert admin_client.get("/admin/accounts/user/add/").status_code == 200


def test_non_admin_staff_is_kept_out():
    staff_tech = UserFactory(role="technician", is_staff=True)
    client = Client()
    client.force_login(staff_tech)
    assert client.get("/admin/accounts/user/").status_code == 403


def test_change_form_saves_through_the_service(admin_client, admin_user, technician):
    response = admin_client.post(
        f"/admin/accounts/user/{technician.pk}/change/",
        _change_data(technician, role="admin", first_name="Promoted", is_staff="on"),
    )
    assert response.status_code == 302, response.content[:3000]
    technician.refresh_from_db()
    assert (technician.role, technician.first_name, technician.is_staff, technician.is_superuser) == (
        "admin",
        "Promoted",
        True,
        True,
    )
    entries = list(AuditEntry.objects.order_by("id"))
    assert {e.action for e in entries} == {"user.role_changed", "user.updated"}
    assert len(entries) == 2
    assert {e.source for e in entries} == {"admin"}
    assert {e.actor_id for e in entries} == {admin_user.pk}


def test_add_form_creates_through_the_service(admin_client):
    response = admin_client.post(
        "/admin/accounts/user/add/",
        {
            "username": "fromadmin",
            "password1": "Admin-made-pass-1",
            "password2": "Admin-made-pass-1",
            "role": "sales_agent",
            "email": "fa@example.com",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    user = User.objects.get(username="fromadmin")
    assert user.check_password("Admin-made-pass-1")
    assert (user.role, user.is_staff) == ("sales_agent", False)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.object_id) == ("user.created", "admin", user.pk)
    assert "password" not in entry.changes


def test_password_form_goes_through_the_service(admin_client, technician):
    response = admin_client.post(
        f"/admin/accounts/user/{technician.pk}/password/",
        {"password1": "Reset-by-admin-55", "password2": "Reset-by-admin-55"},
    )
    assert response.status_code == 302, response.content[:3000]
    technician.refresh_from_db()
    assert technician.check_password("Reset-by-admin-55")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.changes) == ("user.password_changed", "admin", {})


def test_refused_change_is_a_message_and_writes_nothing(admin_client, admin_user):
    response = admin_client.post(
        f"/admin/accounts/user/{admin_user.pk}/change/", _change_data(admin_user, role="technician")
    )
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.role == "admin"
    assert not AuditEntry.objects.exists()
    follow = admin_client.get(response["Location"])
    assert "last active admin" in follow.content.decode()


def test_delete_through_the_service(admin_client, admin_user):
    victim = UserFactory(username="victim")
    used = UserFactory(username="used")
    JobFactory(assigned_to=used)
    response = admin_client.post(f"/admin/accounts/user/{victim.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=victim.pk).exists()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.object_id) == ("user.deleted", "admin", victim.pk)
    # A user referenced by a job: Django's delete page refuses (protected), nothing is deleted or audited.
    admin_client.post(f"/admin/accounts/user/{used.pk}/delete/", {"post": "yes"})
    assert User.objects.filter(pk=used.pk).exists()
    assert AuditEntry.objects.count() == 1
