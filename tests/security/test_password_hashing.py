"""Passwords are hashed with Argon2id at OWASP's minimum parameters or stronger; PBKDF2 hashes made before the switch
still log in and are upgraded at that login."""

import pytest
from django.conf import settings
from django.contrib.auth.hashers import identify_hasher, make_password

from accounts.models import User
from jobops.settings import base
from tests.factories import DEFAULT_PASSWORD, UserFactory

from .conftest import login

pytestmark = pytest.mark.django_db


def test_production_hasher_is_argon2id_at_owasp_minimum_or_stronger():
    from django.utils.module_loading import import_string

    first = import_string(base.PASSWORD_HASHERS[0])()
    assert first.algorithm == "argon2"
    params = first.params()
    assert params.type.name == "ID"
    # OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1 (or an equivalent trade-off).
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in base.PASSWORD_HASHERS  # old hashes still verify


def test_pbkdf2_hash_is_upgraded_at_the_next_login(settings):
    settings.PASSWORD_HASHERS = base.PASSWORD_HASHERS
    user = UserFactory(username="legacy")
    User.objects.filter(pk=user.pk).update(password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256"))
    assert identify_hasher(User.objects.get(pk=user.pk).password).algorithm == "pbkdf2_sha256"
    login("legacy")
    upgraded = User.objects.get(pk=user.pk).password
    assert identify_hasher(upgraded).algorithm == "argon2"
    assert upgraded.startswith("argon2$argon2id$")
    login("legacy")  # and the new hash logs in


def test_the_tests_keep_a_fast_hasher():
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
