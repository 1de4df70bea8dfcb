"""The audit trail in the Django admin is read-only for everyone, superusers included."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import Client
from django.test.client import RequestFactory

from audit.models import AuditEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditentry/"


@pytest.fixture
def superuser():
    return UserFactory(username="root", role="admin", is_staff=True, is_superuser=True)


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("persona", ["superuser", "admin_user"])
def test_changelist_and_detail_render_for_staff_admins(request, make_entry, persona):
    entry = make_entry(action="job.created", object_repr="Boiler repair", changes={"title": [None, "Boiler repair"]})
    client = _client(request.getfixturevalue(persona))
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert b"Boiler repair" in response.content
    assert b"job.created" in response.content
    detail = client.get(f"{CHANGELIST}{entry.pk}/change/")
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content  # view only: no save button
    assert client.get(f"{CHANGELIST}?q=job.created").status_code == 200
    assert client.get(f"{CHANGELIST}?source__exact=api").status_code == 200


def test_no_add_change_or_delete(superuser, make_entry):
    entry = make_entry(action="job.created")
    client = _client(superuser)
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.post(f"{CHANGELIST}add/", {"action": "job.forged"}).status_code == 403
    assert client.post(f"{CHANGELIST}{entry.pk}/change/", {"action": "job.tampered"}).status_code == 403
    assert client.get(f"{CHANGELIST}{entry.pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert bulk.status_code in (200, 302, 403)
    assert AuditEntry.objects.filter(pk=entry.pk, action="job.created").exists()
    assert AuditEntry.objects.count() == 1


def test_permissions_are_all_read_only(superuser, admin_user, technician):
    model_admin = site._registry[AuditEntry]
    for user in (superuser, admin_user):
        request = RequestFactory().get(CHANGELIST)
        request.user = user
        assert model_admin.has_view_permission(request)
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert not model_admin.get_actions(request)
    request = RequestFactory().get(CHANGELIST)
    request.user = technician
    assert not model_admin.has_view_permission(request)
    assert not model_admin.has_module_permission(request)


def test_non_staff_users_are_sent_to_login(technician):
    response = _client(technician).get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
