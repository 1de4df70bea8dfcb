"""Auth over HTTP: login, refresh rotation, logout, deactivation, own profile, password change, login throttles."""

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User
from audit.models import AuditEntry
from tests.conftest import client_for
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN, REFRESH, LOGOUT, ME, PASSWORD = (
    "/api/auth/token/",
    "/api/auth/token/refresh/",
    "/api/auth/logout/",
    "/api/auth/me/",
    "/api/auth/me/password/",
)


def post(url, data, client=None, **extra):
    return (client or APIClient()).post(url, data, format="json", **extra)


def login(username, password=DEFAULT_PASSWORD):
    response = post(TOKEN, {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def bearer(access):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


# --- login ---------------------------------------------------------------------------------------------------------


def test_login_returns_a_working_pair(technician):
    pair = login("tech1")
    assert set(pair) == {"access", "refresh"}
    me = bearer(pair["access"]).get(ME)
    assert me.status_code == 200
    assert me.json()["id"] == technician.pk


def test_bad_credentials_do_not_reveal_whether_the_username_exists(technician):
    wrong_password = post(TOKEN, {"username": "tech1", "password": "not-the-password"})
    unknown_user = post(TOKEN, {"username": "nobody-here", "password": "not-the-password"})
    technician.is_active = False
    technician.save(update_fields=["is_active"])
    inactive = post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD})
    assert wrong_password.status_code == unknown_user.status_code == inactive.status_code == 401
    assert wrong_password.json() == unknown_user.json() == inactive.json()
    assert "detail" in wrong_password.json()


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "username"),
        ({"username": "tech1"}, "password"),
        ({"password": "x"}, "username"),
        ({"username": 123, "password": DEFAULT_PASSWORD}, "username"),
        ({"username": "tech1", "password": ["x"]}, "password"),
        ({"username": None, "password": "x"}, "username"),
        ({"username": "tech1", "password": "x" * 5000}, "password"),
    ],
)
def test_login_bad_body_is_400_with_field_errors(technician, body, field):
    response = post(TOKEN, body)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_login_body_that_is_not_an_object_is_400(technician):
    response = APIClient().post(TOKEN, ["tech1", "pw"], format="json")
    assert response.status_code == 400


# --- refresh & logout ----------------------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_is_dead(technician):
    pair = login("tech1")
    rotated = post(REFRESH, {"refresh": pair["refresh"]})
    assert rotated.status_code == 200, rotated.content
    new = rotated.json()
    assert set(new) == {"access", "refresh"}
    assert new["refresh"] != pair["refresh"]
    assert bearer(new["access"]).get(ME).status_code == 200
    reused = post(REFRESH, {"refresh": pair["refresh"]})
    assert reused.status_code == 401
    # The rotated token works once, too.
    assert post(REFRESH, {"refresh": new["refresh"]}).status_code == 200
    assert post(REFRESH, {"refresh": new["refresh"]}).status_code == 401


@pytest.mark.parametrize("body", [{}, {"refresh": 42}, {"refresh": None}, {"refresh": {"a": 1}}])
def test_refresh_bad_body_is_400(body):
    response = post(REFRESH, body)
    assert response.status_code == 400
    assert "refresh" in response.json()


@pytest.mark.parametrize("url", [REFRESH, LOGOUT])
def test_garbage_or_access_token_as_refresh_is_401(technician, url):
    pair = login("tech1")
    assert post(url, {"refresh": "not-a-jwt"}).status_code == 401
    assert post(url, {"refresh": pair["access"]}).status_code == 401


def test_logout_revokes_the_refresh_without_an_access_token(technician):
    pair = login("tech1")
    response = post(LOGOUT, {"refresh": pair["refresh"]})
    assert response.status_code == 204
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    assert post(LOGOUT, {"refresh": pair["refresh"]}).status_code == 401


def test_deactivated_user_tokens_stop_at_once(technician, admin_user):
    pair = login("tech1")
    client = bearer(pair["access"])
    assert client.get(ME).status_code == 200
    services.user_update(actor=admin_user, user_id=technician.pk, data={"is_active": False})
    assert client.get(ME).status_code == 401
    assert client.get("/api/equipment/").status_code == 401
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    # Reactivation does not revive the old session: deactivation revoked its refresh token.
    services.user_update(actor=admin_user, user_id=technician.pk, data={"is_active": True})
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    # Nor its access token: deactivation moved the user's "tokens valid after" instant past it.
    assert client.get(ME).status_code == 401


def test_deleted_user_refresh_is_401_not_500(admin_user):
    user = UserFactory(username="gone")
    pair = login("gone")
    services.user_delete(actor=admin_user, user_id=user.pk)
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401
    assert bearer(pair["access"]).get(ME).status_code == 401


def test_role_comes_from_the_database_not_the_token(technician, admin_user):
    pair = login("tech1")
    client = bearer(pair["access"])
    assert client.get("/api/users/").status_code == 403
    services.user_update(actor=admin_user, user_id=technician.pk, data={"role": "admin"})
    assert client.get("/api/users/").status_code == 200


# --- me ------------------------------------------------------------------------------------------------------------


def test_me_get_shape(sales_agent):
    response = client_for(sales_agent).get(ME)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "username", "email", "first_name", "last_name", "phone", "role"}
    assert body["role"] == "sales_agent"


def test_me_anonymous_is_401():
    assert APIClient().get(ME).status_code == 401
    assert APIClient().patch(ME, {"first_name": "x"}, format="json").status_code == 401
    assert post(PASSWORD, {"old_password": "a", "new_password": "b"}).status_code == 401


def test_me_patch_ignores_role_and_is_active(technician):
    client = client_for(technician)
    response = client.patch(
        ME,
        {
            "first_name": "Ada",
            "phone": "+44 20 7946 0958",
            "role": "admin",
            "is_active": False,
            "is_staff": True,
            "id": 999,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "technician"
    assert response.json()["first_name"] == "Ada"
    technician.refresh_from_db()
    assert (technician.role, technician.is_active, technician.is_staff) == ("technician", True, False)
    assert (technician.first_name, technician.phone) == ("Ada", "+442079460958")
    entries = list(AuditEntry.objects.filter(object_type="user", object_id=technician.pk))
    assert [e.action for e in entries] == ["user.updated"]
    assert set(entries[0].changes) == {"first_name", "phone"}
    assert entries[0].actor_id == technician.pk


def test_me_patch_validation(technician, other_technician):
    client = client_for(technician)
    taken = client.patch(ME, {"username": "tech2"}, format="json")
    assert taken.status_code == 400 and "username" in taken.json()
    assert client.patch(ME, {"email": "not-an-email"}, format="json").status_code == 400
    assert client.patch(ME, {"first_name": 5}, format="json").status_code == 400
    assert client.patch(ME, {"username": "bad name!"}, format="json").status_code == 400
    # Sending your own current username is not a conflict.
    assert client.patch(ME, {"username": "tech1"}, format="json").status_code == 200
    assert not AuditEntry.objects.exists()


# --- password ------------------------------------------------------------------------------------------------------


def test_password_change(technician):
    old_refresh = login("tech1")["refresh"]
    client = client_for(technician)
    response = client.post(PASSWORD, {"old_password": DEFAULT_PASSWORD, "new_password": "Brand-new-pass-77"})
    assert response.status_code == 204, response.content
    # the new password ends earlier sessions: a refresh token issued before it no longer works
    assert post(REFRESH, {"refresh": old_refresh}).status_code == 401
    assert post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}).status_code == 401
    login("tech1", "Brand-new-pass-77")
    entry = AuditEntry.objects.get(action="user.password_changed")
    assert entry.object_id == technician.pk and entry.changes == {}
    assert "pbkdf2" not in str(entry.changes) and "md5" not in str(entry.changes)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"old_password": "wrong", "new_password": "Brand-new-pass-77"}, "old_password"),
        ({"old_password": DEFAULT_PASSWORD, "new_password": "short"}, "new_password"),
        ({"old_password": DEFAULT_PASSWORD, "new_password": "12345678901"}, "new_password"),
        ({"old_password": DEFAULT_PASSWORD, "new_password": "password123"}, "new_password"),
        ({"old_password": DEFAULT_PASSWORD, "new_password": "tech1@example.com"}, "new_password"),
        ({"old_password": DEFAULT_PASSWORD}, "new_password"),
        ({"new_password": "Brand-new-pass-77"}, "old_password"),
        ({"old_password": DEFAULT_PASSWORD, "new_password": 12345678}, "new_password"),
    ],
)
def test_password_change_validation(technician, body, field):
    response = client_for(technician).post(PASSWORD, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    technician.refresh_from_db()
    assert technician.check_password(DEFAULT_PASSWORD)
    assert not AuditEntry.objects.exists()


# --- throttles -----------------------------------------------------------------------------------------------------


@pytest.fixture
def rates(settings):
    def set_rates(ip="100/min", user="100/min"):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"login_ip": ip, "login_user": user, "login_failures": "1000/hour"},
        }

    # The throttles count in fixed windows: the clock stands still so that no test straddles two.
    with time_machine.travel(timezone.now(), tick=False):
        yield set_rates


def test_login_throttled_per_username_and_client(technician, rates):
    rates(user="3/min")
    for _ in range(3):
        response = post(TOKEN, {"username": "tech1", "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
        assert response.status_code == 401
    blocked = post(TOKEN, {"username": "TECH1", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers
    # Another username from the same client is not affected, nor the same username from another client (no lockout
    # by strangers: tests/security/test_f4_lockout.py).
    assert post(TOKEN, {"username": "other", "password": "x"}, REMOTE_ADDR="10.0.0.1").status_code == 401
    assert post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.0.0.2").status_code == 200


def test_login_throttled_per_ip_across_usernames(technician, rates):
    rates(ip="3/min")
    for n in range(3):
        assert post(TOKEN, {"username": f"u{n}", "password": "x"}, REMOTE_ADDR="10.1.1.1").status_code == 401
    assert post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.1.1.1").status_code == 429
    assert post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="10.1.1.2").status_code == 200


def test_default_login_rates_come_from_settings(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["login_ip"] == "30/min" and rates["login_user"] == "10/min"
    assert rates["login_failures"] == "100/hour"


def test_password_change_shares_the_username_bucket(technician, rates):
    rates(user="2/min")
    client = client_for(technician)
    for _ in range(2):
        assert client.post(PASSWORD, {"old_password": "bad", "new_password": "Brand-new-pass-77"}).status_code == 400
    assert (
        client.post(PASSWORD, {"old_password": DEFAULT_PASSWORD, "new_password": "Brand-new-pass-77"}).status_code
        == 429
    )
    assert post(TOKEN, {"username": "tech1", "password": DEFAULT_PASSWORD}).status_code == 429
    assert User.objects.get(pk=technician.pk).check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize("phone", ["+44 1", "12345", "+1 555 0100", "not a number", "+999 123456"])
def test_me_phone_must_be_a_valid_international_number(api_client, technician, phone):
    response = api_client(technician).patch("/api/auth/me/", {"phone": phone}, format="json")
    assert response.status_code == 400 and "phone" in response.json()


def test_me_phone_is_stored_in_e164_and_blank_clears_it(api_client, technician):
    client = api_client(technician)
    response = client.patch("/api/auth/me/", {"phone": "+1 (415) 555-2671"}, format="json")
    assert response.status_code == 200 and response.json()["phone"] == "+14155552671"
    assert client.patch("/api/auth/me/", {"phone": ""}, format="json").json()["phone"] == ""
