"""Finding 6: the Django admin shows no refresh token and cannot delete a blacklist row (which would revive a
logged-out token)."""

import pytest
from django.contrib import admin
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from .conftest import login

pytestmark = pytest.mark.django_db


def test_token_models_are_not_in_the_admin(admin_user):
    assert not admin.site.is_registered(OutstandingToken)
    assert not admin.site.is_registered(BlacklistedToken)
    pair = login("admin1")
    client = Client()
    client.force_login(admin_user)
    for url in ("/admin/token_blacklist/outstandingtoken/", "/admin/token_blacklist/blacklistedtoken/"):
        assert client.get(url).status_code == 404
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"token_blacklist" not in index.content
    assert pair["refresh"].encode() not in index.content
