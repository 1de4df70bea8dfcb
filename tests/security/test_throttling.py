"""Login throttling (OWASP API2 "anti-brute force"): per (username, client), per client and per username's budget of
failures, 429 with Retry-After, then recovery (the no-lockout rules: test_f4_lockout.py).

The rates are lowered with ``override_settings`` (DRF reloads its settings on the signal) so a test needs a
handful of requests; the clock is moved with time-machine to prove the limit lifts once the window has passed.
"""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"


def _rates(settings_rf: dict, *, ip: str, user: str, failures: str = "1000/hour") -> dict:
    return {
        **settings_rf,
        "DEFAULT_THROTTLE_RATES": {
            **settings_rf["DEFAULT_THROTTLE_RATES"],
            "login_ip": ip,
            "login_user": user,
            "login_failures": failures,
        },
    }


def _login(username: str, password: str, ip: str):
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip)


@pytest.fixture
def low_rates(settings):
    with override_settings(REST_FRAMEWORK=_rates(settings.REST_FRAMEWORK, ip="6/min", user="3/min")):
        yield


@pytest.fixture
def target(db):
    return UserFactory(username="target", role=User.Role.TECHNICIAN)


def test_per_username_throttle_then_recovery(low_rates, target):
    start = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        # Three wrong guesses at one username from one client: 401, 401, 401 ...
        for attempt in range(3):
            assert _login("target", f"guess-{attempt}", ip="10.1.0.1").status_code == 401
        # ... then that client's bucket for the username is empty: even the right password is refused.
        throttled = _login("target", DEFAULT_PASSWORD, ip="10.1.0.1")
        assert throttled.status_code == 429
        assert int(throttled["Retry-After"]) > 0
        assert throttled["Content-Type"].startswith("application/json")
        assert "detail" in throttled.json()
        # Case variants of the username share the bucket.
        assert _login("TARGET", DEFAULT_PASSWORD, ip="10.1.0.1").status_code == 429
        # Another account is not affected, nor this one from another client.
        UserFactory(username="bystander", role=User.Role.TECHNICIAN)
        assert _login("bystander", DEFAULT_PASSWORD, ip="10.1.0.1").status_code == 200
        assert _login("target", DEFAULT_PASSWORD, ip="10.1.0.99").status_code == 200
    with time_machine.travel(start + datetime.timedelta(seconds=61), tick=False):
        assert _login("target", DEFAULT_PASSWORD, ip="10.1.0.1").status_code == 200


def test_distributed_guessing_spends_the_usernames_failure_budget(settings, target):
    rates = _rates(settings.REST_FRAMEWORK, ip="100/min", user="100/min", failures="3/hour")
    start = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    with override_settings(REST_FRAMEWORK=rates), time_machine.travel(start, tick=False):
        for attempt in range(3):
            assert _login("target", f"guess-{attempt}", ip=f"10.5.0.{attempt}").status_code == 401
        assert _login("target", DEFAULT_PASSWORD, ip="10.5.0.99").status_code == 429
    with override_settings(REST_FRAMEWORK=rates), time_machine.travel(start + datetime.timedelta(hours=1, seconds=1)):
        assert _login("target", DEFAULT_PASSWORD, ip="10.5.0.99").status_code == 200


def test_per_ip_throttle_then_recovery(low_rates, target):
    start = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        # Six attempts at six different usernames from one IP (spraying): the seventh is throttled.
        for index in range(6):
            assert _login(f"spray-{index}", "password-spray", ip="10.2.0.1").status_code == 401
        throttled = _login("target", DEFAULT_PASSWORD, ip="10.2.0.1")
        assert throttled.status_code == 429
        assert int(throttled["Retry-After"]) > 0
        # Another IP still gets through.
        assert _login("target", DEFAULT_PASSWORD, ip="10.2.0.2").status_code == 200
    with time_machine.travel(start + datetime.timedelta(seconds=61), tick=False):
        assert _login("target", DEFAULT_PASSWORD, ip="10.2.0.1").status_code == 200


def test_malformed_login_bodies_count_against_the_ip(low_rates):
    """Garbage bodies are 400s, but they still spend the IP's budget (no free probing)."""
    start = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        client = APIClient()
        for _ in range(6):
            response = client.post(TOKEN, {"username": ["not", "a", "string"]}, format="json", REMOTE_ADDR="10.3.0.1")
            assert response.status_code == 400
        assert client.post(TOKEN, {}, format="json", REMOTE_ADDR="10.3.0.1").status_code == 429


def test_forwarded_for_header_does_not_bypass_the_ip_throttle(low_rates):
    """With NUM_PROXIES=0 (no trusted proxy) a client cannot pick its own IP through X-Forwarded-For."""
    start = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        for index in range(6):
            response = APIClient().post(
                TOKEN,
                {"username": f"spray-{index}", "password": "x"},
                format="json",
                REMOTE_ADDR="10.4.0.1",
                HTTP_X_FORWARDED_FOR=f"192.0.2.{index}",
            )
            assert response.status_code == 401
        response = APIClient().post(
            TOKEN,
            {"username": "spray-x", "password": "x"},
            format="json",
            REMOTE_ADDR="10.4.0.1",
            HTTP_X_FORWARDED_FOR="198.51.100.7",
        )
        assert response.status_code == 429
