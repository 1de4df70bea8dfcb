"""A username is ASCII letters, digits and ``@ . + - _`` (``accounts.models.UsernameValidator``): the rule the
schema publishes as the field's ``pattern`` is the one the API, the admin site and the model check."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import User
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REFUSED = ["ï", "josé", "Ωmega", "tech one", "tech/1", "ｔｅｃｈ", "٣", "tech\u200b1"]  # noqa: RUF001 - on purpose
ACCEPTED = ["jose", "Tech_1", "a.b@c+d-e", "0"]


@pytest.mark.parametrize("name", REFUSED)
def test_own_profile_refuses_a_name_outside_the_rule(technician, name):
    response = client_for(technician).patch("/api/auth/me/", {"username": name}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["username"] == ["Enter a valid username: letters A-Z and a-z, digits and @ . + - _ only."]
    technician.refresh_from_db()
    assert technician.username == "tech1"


@pytest.mark.parametrize("name", REFUSED)
def test_admin_cannot_create_a_name_outside_the_rule(admin_user, name):
    response = client_for(admin_user).post(
        "/api/users/", {"username": name, "password": "Some-long-pass-99"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "username" in response.json()
    assert not User.objects.filter(username=name).exists()


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_inside_the_rule_are_taken(technician, name):
    response = client_for(technician).patch("/api/auth/me/", {"username": name}, format="json")
    assert response.status_code == 200, response.content
    technician.refresh_from_db()
    assert technician.username == name


def test_the_model_checks_the_same_rule():
    with pytest.raises(ValidationError) as caught:
        UserFactory.build(username="ï", password="x").full_clean()
    assert "username" in caught.value.message_dict


def test_a_name_from_before_the_rule_round_trips_until_it_changes():
    """Django's default allowed any Unicode letter, so an existing account may be called "josé": a whole-profile
    PATCH that sends it back unchanged is fine, a new name must follow the rule."""
    legacy = UserFactory(username="josé", role=User.Role.TECHNICIAN)
    client = client_for(legacy)
    kept = client.patch("/api/auth/me/", {"username": "josé", "first_name": "José"}, format="json")
    assert kept.status_code == 200, kept.content
    assert kept.json()["username"] == "josé"
    assert kept.json()["first_name"] == "José"

    changed = client.patch("/api/auth/me/", {"username": "josé2"}, format="json")
    assert changed.status_code == 400, changed.content
    assert "username" in changed.json()
    legacy.refresh_from_db()
    assert legacy.username == "josé"
