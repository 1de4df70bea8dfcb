"""What the schema fuzzing found, one regression test per find, through the API as the fuzzer sent it.

Each test names the run that found it (check, seed, request). They run on SQLite and PostgreSQL without a live
server; ``tests/security/test_text_input.py`` tests the rules behind them on every write serializer's text fields.
A find in the fuzz harness itself (not in the API) is pinned by a test of the harness's configuration.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from django.conf import settings

from equipment.models import Equipment
from tests.conftest import client_for
from tests.fuzz.test_schemathesis import RUN_TIMEOUT

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin_user):
    return client_for(admin_user)


@pytest.mark.parametrize("char", ["\u001d", "\u001c", "\u0085", "\u3000", " "])
def test_st201_equipment_description_over_max_length_in_stripped_characters_is_400(admin_client, char):
    """Outside run (all checks, 15 examples per operation, a seed other than CI's 2026): ``POST /api/equipment/``
    accepted a ``description`` of 10,001 U+001D (``maxLength: 10000``) with 201 and stored ``""``: DRF trimmed
    first (``str.strip()`` removes U+001C-U+001F, U+0085, U+3000 ...), then checked the length of what was left."""
    body = {"name": "Drill", "serial_number": "ST201", "description": char * 10_001}
    response = admin_client.post("/api/equipment/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "Ensure this field has no more than 10000 characters." in response.json()["description"]
    assert not Equipment.objects.filter(serial_number="ST201").exists()


def test_st201_trailing_characters_past_the_limit_are_400_not_trimmed_away(admin_client):
    """The same order of checks on a non-blank text: 10,000 letters and a trailing U+001F passed as
    the 10,000 letters."""
    body = {"name": "Drill", "serial_number": "ST201b", "description": "x" * 10_000 + "\u001f"}
    response = admin_client.post("/api/equipment/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "Ensure this field has no more than 10000 characters." in response.json()["description"]


def test_seed_3_identities_log_in_once_per_run():
    """Seed 3 (on a loaded machine): every role whose run took longer than st's default re-login interval (300 s)
    failed with "Authentication Error: Token fetch failed", because its fuzzing had renamed its own user (PATCH
    /api/auth/me/ {"username": "0"}) and the re-login by name was refused. Each identity logs in once per run."""
    access_seconds = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
    for role in ("technician", "sales_agent", "admin"):
        config = tomllib.loads((Path(__file__).parent / f"st-{role}.toml").read_text())
        interval = config["auth"]["wfc"]["refresh_interval"]
        assert RUN_TIMEOUT < interval < access_seconds, (role, interval, RUN_TIMEOUT, access_seconds)
