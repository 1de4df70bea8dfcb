"""Finding 5: a per-user "tokens valid after" instant. Logging out everywhere, a password change, deactivation and an
admin's "sign out everywhere" move it; any token issued before it is a 401, access and refresh alike. The check
reuses the user row authentication reads anyway (no extra query). A plain logout ends that device's refresh token
only."""

import datetime

import pytest
import time_machine
from django.utils import timezone

from accounts import services
from audit.models import AuditEntry
from tests.conftest import client_for

from .conftest import ME, REFRESH, bearer, login, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def later(clock, seconds=2):
    clock.shift(datetime.timedelta(seconds=seconds))


def test_logout_everywhere_ends_every_access_token(technician, clock):
    phone, laptop = login("tech1"), login("tech1")
    later(clock)
    response = bearer(phone["access"]).post("/api/auth/logout/all/")
    assert response.status_code == 204, response.content
    for pair in (phone, laptop):
        assert bearer(pair["access"]).get(ME).status_code == 401
        assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    # A new login works at once.
    assert bearer(login("tech1")["access"]).get(ME).status_code == 200
    assert AuditEntry.objects.filter(action="user.signed_out", object_id=technician.pk).count() == 1


def test_password_change_ends_other_access_tokens(technician, clock):
    pair = login("tech1")
    later(clock)
    response = client_for(technician).post(
        "/api/auth/me/password/", {"old_password": "Test-pass-1234!", "new_password": "Brand-new-pass-77"}
    )
    assert response.status_code == 204
    assert bearer(pair["access"]).get(ME).status_code == 401
    assert bearer(login("tech1", "Brand-new-pass-77")["access"]).get(ME).status_code == 200


def test_reactivation_does_not_revive_access_tokens(technician, admin_user, clock):
    pair = login("tech1")
    later(clock)
    services.user_update(actor=admin_user, user_id=technician.pk, data={"is_active": False})
    services.user_update(actor=admin_user, user_id=technician.pk, data={"is_active": True})
    assert bearer(pair["access"]).get(ME).status_code == 401
    assert bearer(login("tech1")["access"]).get(ME).status_code == 200


def test_admin_signs_a_user_out_everywhere(technician, admin_user, clock):
    pair = login("tech1")
    later(clock)
    response = client_for(admin_user).post(f"/api/users/{technician.pk}/sign-out/")
    assert response.status_code == 204, response.content
    assert bearer(pair["access"]).get(ME).status_code == 401
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    entry = AuditEntry.objects.get(action="user.signed_out")
    assert (entry.object_id, entry.actor_id) == (technician.pk, admin_user.pk)


def test_only_admins_sign_others_out(technician, other_technician):
    response = client_for(other_technician).post(f"/api/users/{technician.pk}/sign-out/")
    assert response.status_code == 403


def test_plain_logout_keeps_the_other_devices(technician, clock):
    phone, laptop = login("tech1"), login("tech1")
    later(clock)
    assert post("/api/auth/logout/", {"refresh": phone["refresh"]}).status_code == 204
    assert post(REFRESH, {"refresh": phone["refresh"]}).status_code == 401
    assert bearer(laptop["access"]).get(ME).status_code == 200
    assert post(REFRESH, {"refresh": laptop["refresh"]}).status_code == 200


def test_the_check_costs_no_extra_query(technician, clock, django_assert_num_queries):
    pair = login("tech1")
    later(clock)
    services.user_sign_out(actor=technician, user_id=technician.pk)
    fresh = bearer(login("tech1")["access"])
    with django_assert_num_queries(1):  # the user row, nothing else
        assert fresh.get(ME).status_code == 200
    with django_assert_num_queries(1):
        assert bearer(pair["access"]).get(ME).status_code == 401


def test_admin_site_action_signs_users_out_everywhere(technician, admin_user, clock):
    from django.test import Client

    pair = login("tech1")
    later(clock)
    browser = Client()
    browser.force_login(admin_user)
    response = browser.post(
        "/admin/accounts/user/", {"action": "sign_out_everywhere", "_selected_action": [technician.pk]}
    )
    assert response.status_code == 302, response.content[:2000]
    assert bearer(pair["access"]).get(ME).status_code == 401
    entry = AuditEntry.objects.get(action="user.signed_out")
    assert (entry.object_id, entry.actor_id, entry.source) == (technician.pk, admin_user.pk, "admin")
