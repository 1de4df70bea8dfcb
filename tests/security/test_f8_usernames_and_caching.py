"""Finding 8 (informational, decided): a username that differs from an existing one only by case or by Unicode
compatibility form is refused (no look-alikes in the audit trail); authenticated API responses and token responses
carry ``Cache-Control: no-store``."""

import pytest

from tests.conftest import client_for

from .conftest import TOKEN, login, post

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["ADMIN1", "Admin1", "ａｄｍｉｎ１"])  # noqa: RUF001 - look-alikes on purpose
def test_lookalike_of_an_existing_username_is_refused(admin_user, technician, name):
    response = client_for(technician).patch("/api/auth/me/", {"username": name}, format="json")
    assert response.status_code == 400, response.content
    assert "username" in response.json()
    technician.refresh_from_db()
    assert technician.username == "tech1"


def test_admin_cannot_create_a_lookalike_either(admin_user, technician):
    response = client_for(admin_user).post(
        "/api/users/", {"username": "TECH1", "password": "Some-long-pass-99"}, format="json"
    )
    assert response.status_code == 400
    assert "username" in response.json()


def test_changing_the_case_of_ones_own_name_is_fine(technician):
    response = client_for(technician).patch("/api/auth/me/", {"username": "Tech1"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "Tech1"


def test_authenticated_responses_are_not_stored(technician):
    assert "no-store" in client_for(technician).get("/api/auth/me/")["Cache-Control"]
    assert "no-store" in client_for(technician).get("/api/equipment/")["Cache-Control"]
    assert "no-store" in post(TOKEN, {"username": "tech1", "password": "Test-pass-1234!"})["Cache-Control"]
    refresh = login("tech1")["refresh"]
    assert "no-store" in post("/api/auth/token/refresh/", {"refresh": refresh})["Cache-Control"]
